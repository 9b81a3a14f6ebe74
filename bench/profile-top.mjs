// `node bench/profile-top.mjs <file.cpuprofile> [window] [count]`: the top functions of a V8 CPU profile by
// self time and by total time (a function counted once per sample however deep it recurses), in % of the
// samples that were not idle. With BENCH_CPU_PROF, `pnpm bench` writes windows.json beside the profiles
// (the monotonic start and end of each measured load): `window` (a label's prefix) keeps only its samples.
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'

const [file, label, countText] = process.argv.slice(2)
const count = Number(countText ?? 15)
const profile = JSON.parse(readFileSync(file, 'utf8'))
let range = null
if (label) {
  const windowsFile = join(dirname(file), 'windows.json')
  const windows = existsSync(windowsFile) ? JSON.parse(readFileSync(windowsFile, 'utf8')) : []
  const found = windows.find((w) => w.label.startsWith(label))
  if (!found) throw new Error(`no window "${label}" in ${windowsFile}`)
  range = found
}
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const keyOf = (n) => {
  const f = n.callFrame
  const where = f.url
    ? `${relative(process.cwd(), f.url.replace(/^file:\/\//, '')).replace(/^.*node_modules\/\.pnpm\/([^/]+)\/node_modules\//, '$1 ')}:${f.lineNumber + 1}`
    : ''
  return `${f.functionName || '(anonymous)'} ${where}`.trim()
}
const stackKeys = new Map()
const keysOf = (id) => {
  let keys = stackKeys.get(id)
  if (keys) return keys
  const own = keyOf(byId.get(id))
  const up = parent.has(id) ? keysOf(parent.get(id)) : []
  keys = up.includes(own) ? up : [...up, own]
  stackKeys.set(id, keys)
  return keys
}
const self = new Map()
const total = new Map()
let time = profile.startTime
let busy = 0
for (let i = 0; i < profile.samples.length; i++) {
  time += profile.timeDeltas[i]
  if (range && (time < range.start || time > range.end)) continue
  const node = byId.get(profile.samples[i])
  const name = node.callFrame.functionName
  if (name === '(idle)') continue
  const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i]
  busy += dt
  const key = keyOf(node)
  self.set(key, (self.get(key) ?? 0) + dt)
  for (const k of keysOf(node.id)) total.set(k, (total.get(k) ?? 0) + dt)
}
// Dispatch frames every sample passes through (the event loop, Node's streams, Fastify's hook runner) say
// nothing about where the time goes: left out of the total-time table.
const PLUMBING =
  /^\((root|program)\)|^runMicrotasks|node:internal\/(process\/task_queues|streams|async_hooks|timers)|node:events|fastify\/lib\/(hooks|handle-request|route|wrap-thenable)\.js/
const top = (map, skip) =>
  [...map]
    .filter(([k]) => !skip?.test(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([k, v]) => `| ${((100 * v) / busy).toFixed(1)} % | \`${k.replace(/\|/g, '\\|')}\` |`)
    .join('\n')
console.log(`${relative(process.cwd(), file)}${range ? ` (${range.label})` : ''}: ${(busy / 1000).toFixed(0)} ms busy`)
console.log(`\nself time\n\n| % | function |\n| --- | --- |\n${top(self)}`)
console.log(`\ntotal time\n\n| % | function |\n| --- | --- |\n${top(total, PLUMBING)}`)
