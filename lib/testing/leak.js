'use strict'
// assertNoLeak(): run a scenario many times and fail when some class of objects grows
// with the calls. Runs on the JS thread of the test (the scenario must run there); the
// snapshots are taken inline and read by leakguard's analysis (lib/testing/counts.js).
//
// The verdict, and why it resists false alarms:
// - warm-up calls first (caches fill, code is compiled, lazy singletons are made), then
//   one snapshot that is thrown away (leakguard's own first-use allocations and the
//   bookkeeping of a previous round are then in every counted snapshot alike);
// - then rounds of `iterations` calls, a full collection and a snapshot after each;
// - a class is suspected when its instance count grew by at least `threshold` (default:
//   the iterations, i.e. one object per call) in a round, and it stays suspected only
//   while it does so in every round; once no class is suspected the test passes;
// - after `rounds` rounds the suspects must keep growing through `confirmRounds` more
//   rounds before the test fails. A cache that fills up, a pool that reaches its size or
//   a JIT tier-up grows for a while and then stops; a leak does not stop.
//
// Only the previous round's counts are kept between snapshots (constant in size), so the
// helper's own bookkeeping does not grow with the rounds.

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
 * Node types never counted: `code` is V8's compiled code, which grows while the JIT
 * tiers up the scenario and the helper (+100 to +300 per round for the first rounds of a
 * clean 20 MB process, measured) and is not what a test can leak.
 */
const NEVER = new Set(['code'])

/**
 * The previous round's counts in three heap objects (one string of keys, one
 * Float64Array), whatever the number of classes: what is kept between snapshots must not
 * itself show as growth in the next one. A Map of per-class objects would add hundreds of
 * Objects and strings to the first round.
 */
function compact (counts) {
  const keys = []
  const nums = new Float64Array(counts.size * 2)
  let i = 0
  for (const [k, c] of counts) {
    keys.push(k)
    nums[i++] = c.count
    nums[i++] = c.bytes
  }
  return { keys: keys.join('\u0001'), nums }
}

function expand ({ keys, nums }) {
  const m = new Map()
  if (keys.length === 0) return m
  let i = 0
  for (const k of keys.split('\u0001')) {
    m.set(k, { count: nums[i], bytes: nums[i + 1] })
    i += 2
  }
  return m
}

/**
 * One round's snapshot compared with the previous one: the classes that grew by at least
 * the threshold (all of them in the first round, only the suspects after). In a frame of
 * its own so that nothing of this round's counts is alive at the next snapshot.
 */
async function measure (dir, prev, suspects, opts, ignore) {
  const cur = (await counts.takeCounts(dir)).counts
  const before = expand(prev)
  const next = new Map()
  for (const k of suspects ? suspects.keys() : cur.keys()) {
    const c = cur.get(k)
    if (!c) continue
    const p = before.get(k)
    const delta = c.count - (p ? p.count : 0)
    if (delta < opts.threshold || ignore.has(c.name) || NEVER.has(c.type)) continue
    const s = suspects ? suspects.get(k) : { name: c.name, type: c.type, deltas: [], bytes: [] }
    s.deltas.push(delta)
    s.bytes.push(c.bytes - (p ? p.bytes : 0))
    next.set(k, s)
  }
  return { prev: compact(cur), suspects: next }
}

/** Types whose growth a user's code causes directly; ranked first in the report. */
const USER_TYPES = new Set(['object', 'closure', 'native', 'string', 'concatenated string', 'sliced string', 'regexp', 'number', 'bigint', 'symbol'])

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
      await counts.takeCounts(dir, { discard: true })
      primed = true
    }
    await collectGarbage()
    let prev = compact((await counts.takeCounts(dir)).counts)
    const first = snapshotsIn(dir).at(-1)
    const ignore = new Set(opts.ignore)
    // key -> { name, type, deltas: number[], bytes: number[] }, the classes grown in every round so far
    let suspects = null
    const total = opts.rounds + opts.confirmRounds
    let round = 0
    for (round = 1; round <= total; round++) {
      await callN(scenario, opts.iterations)
      await collectGarbage()
      ;({ prev, suspects } = await measure(dir, prev, suspects, opts, ignore))
      if (process.env.LEAKGUARD_TESTING_TRACE) process.stderr.write(`leakguard/testing: round ${round}: ${[...suspects.values()].map((s) => `${s.name} +${s.deltas.at(-1)}`).join(", ") || "nothing grew"} (${Math.round(performance.now() - t0)} ms)\n`)
      if (suspects.size === 0) return { passed: true, rounds: round, ms: performance.now() - t0 }
    }
    round = total
    keep = true
    const calls = total * opts.iterations
    const rows = [...suspects.values()].map((s) => {
      const grown = s.deltas.reduce((a, b) => a + b, 0)
      const bytes = s.bytes.reduce((a, b) => a + b, 0)
      return { name: s.name, type: s.type, perCall: grown / calls, bytesPerCall: bytes / calls, grown, bytes, deltas: s.deltas }
    })
    rows.sort((a, b) => (USER_TYPES.has(b.type) - USER_TYPES.has(a.type)) || (b.perCall - a.perCall) || (b.bytesPerCall - a.bytesPerCall))
    const snapshots = snapshotsIn(dir)
    const last = snapshots.at(-1)
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
