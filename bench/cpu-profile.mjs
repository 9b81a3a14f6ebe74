// `BENCH_CPU_PROF=<dir> pnpm bench …` loads this into every process (NODE_OPTIONS=--import, where
// --cpu-prof is not allowed): a V8 CPU profile from start to exit, written as <dir>/<pid>.cpuprofile.
import { Session } from 'node:inspector'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

const dir = process.env.BENCH_CPU_PROF
if (dir) {
  const session = new Session()
  session.connect()
  session.post('Profiler.enable')
  session.post('Profiler.setSamplingInterval', { interval: 200 })
  session.post('Profiler.start')
  process.on('exit', () => {
    // a session on the main thread answers synchronously
    session.post('Profiler.stop', (error, result) => {
      if (!error)
        writeFileSync(
          join(dir, `${process.argv[process.argv.length - 1].replace(/\W+/g, '_')}-${process.pid}.cpuprofile`),
          JSON.stringify(result.profile)
        )
    })
  })
}
