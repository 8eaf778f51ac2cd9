'use strict'
// assertNoLeak(): run a scenario many times and fail when some class of objects grows
// with the calls. Runs on the JS thread of the test (the scenario must run there); the
// snapshots are taken inline and read by leakguard's analysis (lib/testing/counts.js).
//
// The verdict, and why it resists false alarms:
// - warm-up calls first (caches fill, code is compiled, lazy singletons are made); once
//   per process a throw-away snapshot (leakguard's own first-use allocations);
// - then rounds of `iterations` calls, a full collection and a snapshot after each;
// - per round and class, the instances made during the round and still alive after the
//   collection (diff by node id of consecutive snapshots: not hidden by older instances
//   of the class being freed meanwhile); a class is suspected when they number at least
//   `threshold` (default: the iterations, i.e. one object per call), and stays suspected
//   only while it does so in every round; once no class is suspected the test passes;
// - after `rounds` rounds the suspects must keep growing through `confirmRounds` more
//   rounds, and at the end the objects made over all rounds that are still alive must
//   number `threshold` per round (and the class's net count have grown by half that): a cache that fills up or churns, a pool that reaches
//   its size, a JIT tier-up grows for a while or keeps only its last entries; a leak keeps
//   them all.
//
// Between snapshots only the previous snapshot's path and the few suspects are kept, so
// the helper's own bookkeeping does not grow with the rounds.

const { performance } = require('node:perf_hooks')
const V = require('../validate')
const { invalidOption } = require('../errors')
const { collectGarbage } = require('./gc')
const counts = require('./counts')
const { LeakError } = require('./errors')
const { acquire } = require('./lock')
const { makeWorkDir, removeWorkDir, snapshotsIn } = require('./workdir')
const { formatGrowth } = require('./report')

const KEYS = ['warmup', 'iterations', 'rounds', 'confirmRounds', 'threshold', 'retainers', 'dir', 'ignore']
const DEFAULTS = Object.freeze({ warmup: 10, iterations: 20, rounds: 3, confirmRounds: 2, retainers: 3 })

function normalizeOptions (options) {
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, KEYS, 'options')
  const int = (k, min, max) => V.optNumber(o, k, { min, max, integer: true })
  const out = {
    warmup: int('warmup', 0, 1e6) ?? DEFAULTS.warmup,
    iterations: int('iterations', 1, 1e6) ?? DEFAULTS.iterations,
    rounds: int('rounds', 1, 1000) ?? DEFAULTS.rounds,
    confirmRounds: int('confirmRounds', 0, 1000) ?? DEFAULTS.confirmRounds,
    threshold: int('threshold', 1, 1e9),
    retainers: int('retainers', 0, 100) ?? DEFAULTS.retainers,
    dir: V.optString(o, 'dir'),
    ignore: []
  }
  if (out.threshold === undefined) out.threshold = out.iterations
  if (o.ignore !== undefined) {
    if (!Array.isArray(o.ignore) || !o.ignore.every((s) => typeof s === 'string' && s.length > 0)) {
      throw invalidOption('ignore', 'an array of class names', o.ignore)
    }
    out.ignore = [...o.ignore]
  }
  return out
}

async function callN (scenario, n) {
  for (let i = 0; i < n; i++) {
    const r = scenario()
    if (r !== null && (typeof r === 'object' || typeof r === 'function') && typeof r.then === 'function') await r
  }
}

let primed = false

/**
 * Never counted: `code` is V8's compiled code, which grows while the JIT tiers up the
 * scenario and the helper (+100 to +300 per round for the first rounds of a clean 20 MB
 * process, measured); `object shape` (V8 maps) and Node's embedder nodes (`Node / …`,
 * rebuilt with fresh ids by every snapshot: +98 `Node / std::basic_string` per round in a
 * clean process) are internals a test cannot leak but through a JS object that is counted.
 */
const NEVER = new Set(['code', 'object shape'])
const counted = (c) => !NEVER.has(c.type) && !(c.type === 'native' && c.name.startsWith('Node / '))

/**
 * One round: the classes whose new, still-alive instances since the previous snapshot
 * number at least the threshold, and whose count grew at all (V8 and leakguard replace a
 * few dozen heap numbers each round: new every time, never more), in the first round
 * among all classes, after it among the suspects.
 * Between rounds only the previous snapshot's path is kept.
 */
async function measure (prevPath, curPath, suspects, opts, ignore) {
  const grown = await counts.newSurvivors(prevPath, curPath)
  const next = new Map()
  for (const k of suspects ? suspects.keys() : grown.keys()) {
    const c = grown.get(k)
    if (!c || c.count < opts.threshold || c.net <= 0 || ignore.has(c.name) || !counted(c)) continue
    const s = suspects ? suspects.get(k) : { name: c.name, type: c.type, deltas: [], bytes: [] }
    s.deltas.push(c.count)
    s.bytes.push(c.bytes)
    next.set(k, s)
  }
  return next
}

/**
 * Report order: objects a user's code makes (its classes, closures, native objects) first,
 * then values they usually hang off (strings, numbers…), then V8's internals; by growth
 * per call within each tier.
 */
const TIER = { object: 0, closure: 0, native: 0, string: 1, 'concatenated string': 1, 'sliced string': 1, regexp: 1, number: 1, bigint: 1, symbol: 1 }
const tier = (type) => TIER[type] ?? 2

/**
 * The promise of a whole leak test. `release` frees the lock at the end whatever happens.
 */
async function run (scenario, opts, release) {
  const t0 = performance.now()
  const dir = makeWorkDir(opts.dir)
  let keep = false
  try {
    await callN(scenario, opts.warmup)
    if (!primed) {
      // Once per process, a throw-away snapshot: leakguard's own first-use allocations
      // (the addon, the capture pipeline) then precede every counted one.
      await collectGarbage()
      await counts.snapshot(dir, { discard: true })
      primed = true
    }
    await collectGarbage()
    let prev = await counts.snapshot(dir)
    const first = prev
    const ignore = new Set(opts.ignore)
    // key -> { name, type, deltas: number[], bytes: number[] }, the classes grown in every round so far
    let suspects = null
    const total = opts.rounds + opts.confirmRounds
    const trace = process.env.LEAKGUARD_TESTING_TRACE ? (m) => process.stderr.write(`leakguard/testing: ${m} (${Math.round(performance.now() - t0)} ms)\n`) : null
    for (let round = 1; round <= total; round++) {
      await callN(scenario, opts.iterations)
      await collectGarbage()
      const cur = await counts.snapshot(dir)
      suspects = await measure(prev, cur, suspects, opts, ignore)
      prev = cur
      if (trace) trace(`round ${round}: ${[...suspects.values()].map((s) => `${s.name} +${s.deltas.at(-1)}`).join(', ') || 'nothing grew'}`)
      if (suspects.size === 0) return
    }
    // Confirmation over the whole run: of the objects made in all the rounds, those still
    // alive at the end. A leak keeps every round's; a cache that churns through more
    // entries than a round's threshold keeps only its last ones.
    const calls = total * opts.iterations
    // The class's net count must have grown by half that too: objects made every round
    // and dropped a few rounds later (a large LRU) are new at every look but do not add up.
    const survived = await counts.newSurvivors(first, prev)
    for (const [k, s] of suspects) {
      const c = survived.get(k)
      if (!c || c.count < opts.threshold * total || c.net < (opts.threshold * total) / 2) suspects.delete(k)
      else Object.assign(s, { grown: c.count, grownBytes: c.bytes })
    }
    if (trace) trace(`first to last: ${[...suspects.values()].map((s) => `${s.name} +${s.grown}`).join(', ') || 'nothing survived'}`)
    if (suspects.size === 0) return
    keep = true
    const rows = [...suspects.values()].map((s) => ({
      name: s.name, type: s.type, perCall: s.grown / calls, bytesPerCall: s.grownBytes / calls, grown: s.grown, bytes: s.grownBytes, deltas: s.deltas
    }))
    rows.sort((a, b) => (tier(a.type) - tier(b.type)) || (b.perCall - a.perCall) || (b.bytesPerCall - a.bytesPerCall))
    const snapshots = snapshotsIn(dir)
    const last = prev
    for (const row of rows.slice(0, opts.retainers)) {
      row.retainer = await newInstancesPath(first, last, row.name)
    }
    const message = formatGrowth(rows, { rounds: total, iterations: opts.iterations, threshold: opts.threshold, snapshots, dir })
    throw new LeakError('TEST_LEAK', message, {
      classes: rows,
      snapshots,
      dir,
      rounds: total,
      iterations: opts.iterations,
      durationMs: Math.round(performance.now() - t0)
    })
  } finally {
    if (!keep) removeWorkDir(dir)
    release()
  }
}

/**
 * The retainer path of the instances that appeared between the first counted snapshot
 * and the last: of the paths merged by class, the one whose count grew the most (the
 * class's old instances usually sit on other paths).
 */
async function newInstancesPath (first, last, className) {
  try {
    const [before, after] = await Promise.all([counts.pathsFor(first, className, 50), counts.pathsFor(last, className, 50)])
    const old = new Map(before.map((p) => [p.text, p.count]))
    let best = null
    let bestGrowth = -Infinity
    for (const p of after) {
      const g = p.count - (old.get(p.text) || 0)
      if (g > bestGrowth) {
        best = p
        bestGrowth = g
      }
    }
    return best && { text: best.text, count: best.count, growth: bestGrowth, retainedBytes: best.retainedBytes, steps: best.steps }
  } catch (err) {
    return { error: err.message }
  }
}

/** Validate at the call (a bad option throws synchronously), then run. */
function assertNoLeak (scenario, options) {
  if (typeof scenario !== 'function') throw invalidOption('scenario', 'a function', scenario)
  const opts = normalizeOptions(options)
  let release
  try {
    release = acquire('assertNoLeak()')
  } catch (err) {
    return Promise.reject(err)
  }
  return run(scenario, opts, release).then(() => undefined)
}

module.exports = { assertNoLeak, normalizeOptions, DEFAULTS }
