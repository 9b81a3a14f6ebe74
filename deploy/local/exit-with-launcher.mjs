// Loaded into every service the launcher starts (`node --import`). The children run in process groups of
// their own (a terminal's Ctrl-C reaches only the launcher, which stops them in order), so nothing would
// stop them if the launcher died without doing so (SIGKILL, a crash). The launcher keeps an IPC channel
// open to each child; when it closes, the child stops itself as on SIGTERM (its own graceful shutdown).
// The channel is unref'd so that it never keeps a child alive by itself.
if (process.channel) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'))
  process.channel.unref()
}
