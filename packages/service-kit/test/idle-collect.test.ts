import t from 'tap'
import { GROWTH_BYTES, IdleCollector, fullCollection } from '../src/idle-collect.js'

const MB = 1024 * 1024

/** A collector on a clock, a CPU counter and a heap of the test's own; `collections` counts its collections. */
function harness(quietMs = 10_000) {
  const state = { now: 0, cpuMicros: 0, heap: 90 * MB, collections: 0, afterCollection: 40 * MB }
  const facts: { heapBeforeMb: number; heapAfterMb: number }[] = []
  const collector = new IdleCollector(
    {
      quietMs,
      cpuMicros: () => state.cpuMicros,
      heapBytes: () => state.heap,
      collect: () => {
        state.collections++
        state.heap = state.afterCollection
        // the collection's own CPU
        state.cpuMicros += 50_000
      },
      collected: (fact) => facts.push(fact)
    },
    state.now
  )
  /** `ms` later, with `busyShare` of a core used meanwhile. */
  const step = (ms: number, busyShare: number) => {
    state.now += ms
    state.cpuMicros += ms * 1000 * busyShare
    return collector.tick(state.now)
  }
  return { state, facts, step }
}

t.test('a busy process is never collected', async (t) => {
  const { state, step } = harness()
  for (let i = 0; i < 20; i++) t.notOk(step(5000, 0.5))
  t.equal(state.collections, 0)
})

t.test('after the quiet spell, one collection; then none while the heap stays', async (t) => {
  const { state, facts, step } = harness()
  t.notOk(step(5000, 0.8), 'busy')
  t.notOk(step(5000, 0.03), 'quiet for 5 s')
  t.ok(step(5000, 0.01), 'quiet for 10 s: collected')
  t.same(facts[0] && { before: facts[0].heapBeforeMb, after: facts[0].heapAfterMb }, { before: 90, after: 40 })
  for (let i = 0; i < 10; i++) t.notOk(step(5000, 0.005), 'still quiet, the heap as it was left')
  t.equal(state.collections, 1)
})

t.test('the heap left by start-up is collected too (no load needed)', async (t) => {
  const { state, step } = harness()
  step(5000, 0)
  step(5000, 0)
  t.equal(state.collections, 1)
})

t.test('load in between ends the quiet spell, and a grown heap is collected in the next one', async (t) => {
  const { state, step } = harness()
  step(5000, 0)
  step(5000, 0)
  t.equal(state.collections, 1)
  // load: the heap grows past the threshold
  step(5000, 0.9)
  state.heap += GROWTH_BYTES + MB
  t.notOk(step(5000, 0.01), 'quiet again, but only for 5 s')
  t.ok(step(5000, 0.01), 'quiet for 10 s: collected again')
  t.equal(state.collections, 2)
})

t.test('a heap grown by less than the threshold is left alone', async (t) => {
  const { state, step } = harness()
  step(5000, 0)
  step(5000, 0)
  step(5000, 0.9)
  state.heap += GROWTH_BYTES - MB
  for (let i = 0; i < 5; i++) step(5000, 0)
  t.equal(state.collections, 1)
})

t.test('just over 5 % of a core is not quiet', async (t) => {
  const { state, step } = harness()
  for (let i = 0; i < 10; i++) step(5000, 0.051)
  t.equal(state.collections, 0)
  step(5000, 0.049)
  step(5000, 0.049)
  t.equal(state.collections, 1)
})

t.test("V8's own full collection, without a global gc anywhere", async (t) => {
  const collect = fullCollection()
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'no global gc in this context')
  // Garbage that only a collection frees: a weakly held object's target is gone after it.
  let target: object | undefined = { payload: new Array(10_000).fill('x') }
  const ref = new WeakRef(target)
  target = undefined
  // WeakRef targets survive until the end of the current job: collect in a later one.
  await new Promise((resolve) => setImmediate(resolve))
  collect()
  t.equal(ref.deref(), undefined, 'the unreachable object was collected')
})
