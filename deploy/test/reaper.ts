import { spawn } from 'node:child_process'

// A detached watchdog holding an IPC channel to the test process. The channel closes when the test process
// ends, however it ends (tap's timeout, kill -9); the watchdog then signals the process it guards, if that is
// still the same program (its command line still holds `marker`: a pid reused meanwhile is left alone).
const WATCHDOG = `
const [pid, signal, marker] = process.argv.slice(1)
process.on('disconnect', () => {
  let commandLine = ''
  try { commandLine = require('node:fs').readFileSync('/proc/' + pid + '/cmdline', 'utf8').split('\\0').join(' ') } catch {}
  if (commandLine.includes(marker)) try { process.kill(Number(pid), signal) } catch {}
})
`

/**
 * Stops `pid` (a nats-server or postgres a test started itself, in a process group of its own) when this
 * test process ends without its teardown having run. Services started with `startSystem` need no reaper:
 * they stop themselves when their parent's IPC channel closes (`deploy/local/exit-with-launcher.mjs`).
 */
export function stopWhenTestDies(pid: number, marker: string, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (pid <= 0) return
  const watchdog = spawn(process.execPath, ['-e', WATCHDOG, String(pid), signal, marker], {
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    detached: true
  })
  // Neither the watchdog nor its channel keeps this process alive.
  watchdog.unref()
  watchdog.channel?.unref()
}
