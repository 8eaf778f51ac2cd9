'use strict'
// The class histogram a capture carries (`result.classes`, `result.classTotals`, also in
// its manifest) and the comparison of two captures' histograms: `classGrowth(a, b)`, the
// classes that grew between them with count and byte growth per hour. Pure JS over small
// arrays (≤ ~100 classes each): microseconds, on whichever thread calls it.

const fs = require('node:fs')
const { invalidOption } = require('./errors')

const HOUR_MS = 3600e3
/** A manifest larger than this is not leakguard's (one with 100 classes is ~20 KiB). */
const MANIFEST_MAX_BYTES = 4 * 1024 * 1024

function checkCapture (c, name) {
  if (c === null || typeof c !== 'object') throw invalidOption(name, 'a capture result or manifest (an object)', c)
  if (!Array.isArray(c.classes)) throw invalidOption(name, 'a capture with a class histogram (`classes` array; captures since leakguard 0.1 with the histogram)', c.classes === null ? null : typeof c.classes)
  const t = Date.parse(c.createdAt)
  if (Number.isNaN(t)) throw invalidOption(name + '.createdAt', 'an ISO date', c.createdAt)
  return t
}

const key = (c) => `${c.type}\u0000${c.name}`

/**
 * What a class not in `c.classes` had at most: the list holds the top classes by self size
 * and by count, so a missing one is below both cut-offs. Zero when the list is complete.
 */
function ceilingOf (c) {
  const total = c.classTotals && c.classTotals.classes
  if (typeof total === 'number' && total <= c.classes.length) return { count: 0, selfSize: 0, exact: true }
  let count = Infinity
  let selfSize = Infinity
  for (const k of c.classes) {
    count = Math.min(count, k.count)
    selfSize = Math.min(selfSize, k.selfSize)
  }
  return { count: Number.isFinite(count) ? count : 0, selfSize: Number.isFinite(selfSize) ? selfSize : 0, exact: false }
}

/**
 * The classes that grew from capture `a` to capture `b` (either order: the older one is
 * the baseline), largest byte growth first:
 * `{ from, to, hours, classes: [{ name, type, count, selfSize, countGrowth, bytesGrowth,
 *   countPerHour, bytesPerHour, approximate }] }` where `count`/`selfSize` are the newer
 * capture's. `approximate` is true when the class was not among the older capture's listed
 * classes (its baseline is then that list's cut-off, so the growth is a lower bound).
 * Options: `{ limit }` (default 50) classes at most.
 */
function classGrowth (a, b, options = {}) {
  let ta = checkCapture(a, 'a')
  let tb = checkCapture(b, 'b')
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options)
  const limit = options.limit === undefined ? 50 : options.limit
  if (!Number.isInteger(limit) || limit < 1) throw invalidOption('limit', 'a positive integer', limit, RangeError)
  if (tb < ta) { [a, b] = [b, a]; [ta, tb] = [tb, ta] }
  const hours = (tb - ta) / HOUR_MS
  const before = new Map(a.classes.map((c) => [key(c), c]))
  const ceiling = ceilingOf(a)
  const out = []
  for (const c of b.classes) {
    const old = before.get(key(c))
    const base = old || ceiling
    const countGrowth = c.count - base.count
    const bytesGrowth = c.selfSize - base.selfSize
    if (countGrowth <= 0 && bytesGrowth <= 0) continue
    out.push({
      name: c.name,
      type: c.type,
      count: c.count,
      selfSize: c.selfSize,
      countGrowth,
      bytesGrowth,
      countPerHour: hours > 0 ? countGrowth / hours : null,
      bytesPerHour: hours > 0 ? bytesGrowth / hours : null,
      approximate: !old && !ceiling.exact
    })
  }
  out.sort((x, y) => y.bytesGrowth - x.bytesGrowth || y.countGrowth - x.countGrowth || (x.name < y.name ? -1 : 1))
  return { from: new Date(ta).toISOString(), to: new Date(tb).toISOString(), hours, classes: out.slice(0, limit) }
}

/**
 * `{ classes, classTotals }` from the manifest beside a snapshot (`<base>.json`), or nulls
 * when it is missing, not a regular file, too large or not leakguard's.
 */
async function manifestClasses (snapshotPath) {
  const file = snapshotPath.replace(/\.heapsnapshot(\.gz)?$/, '.json')
  const none = { classes: null, classTotals: null }
  try {
    const st = await fs.promises.lstat(file)
    if (!st.isFile() || st.size > MANIFEST_MAX_BYTES) return none
    const m = JSON.parse(await fs.promises.readFile(file, 'utf8'))
    return { classes: Array.isArray(m.classes) ? m.classes : null, classTotals: m.classTotals && typeof m.classTotals === 'object' ? m.classTotals : null }
  } catch {
    return none
  }
}

module.exports = { classGrowth, manifestClasses }
