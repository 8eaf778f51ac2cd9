'use strict'
// The snapshot analysis in guard.report(): when two captures exist, the diff of the two
// newest (run in a child process under the capture budget, lib/analysis-child.js) gives
// the report's `classes` (the top growing classes) and `retainers` (the paths that retain
// them). `analysisReport(guard)` is the whole of it; report() calls it through the
// 'classes' and 'retainers' sections when lib/report.js (issue #10) is present.
//
// Invariants: one diff per pair of files — the result is kept until a newer capture
// exists, so a report asked for every minute does not rerun it; the server's memory never
// holds the graph; a failure (no memory budget, a bad file) rejects with a coded error
// (report() records it in `report.errors`).

const fs = require('node:fs')
const path = require('node:path')

const { diffInChild } = require('./analysis-child')

/** Growing classes the report keeps, and retainer paths per class. */
const TOP_CLASSES = 10
const PATHS_PER_CLASS = 3

let memo = null // { key, promise }

/** The two newest snapshot files of the guard, oldest first; null when fewer exist. */
function lastTwo (guard) {
  const fromGuard = (guard.status().captures || []).map((c) => c.path).filter((p) => typeof p === 'string' && fs.existsSync(p))
  if (fromGuard.length >= 2) return fromGuard.slice(-2)
  // Captures of an earlier process in the same directory (the admin route lists them too).
  const dir = guard._opts && guard._opts.capture && guard._opts.capture.dir
  if (!dir) return null
  const { SNAPSHOT_NAME } = require('./admin')
  let names
  try {
    names = fs.readdirSync(dir).filter((n) => SNAPSHOT_NAME.test(n)).sort()
  } catch {
    return null
  }
  const files = names.map((n) => path.join(dir, n)).filter((p) => {
    try { return fs.lstatSync(p).isFile() } catch { return false }
  })
  return files.length >= 2 ? files.slice(-2) : null
}

/**
 * `{ classes, retainers, diffOf: { before, after, method } }` from the diff of the guard's
 * two newest captures, or `{}` when there are fewer than two. `options.signal` cancels.
 */
async function analysisReport (guard, options = {}) {
  const files = lastTwo(guard)
  if (!files) return {}
  const key = files.join('\n')
  if (!memo || memo.key !== key) {
    const budget = guard._opts && guard._opts.capture ? guard._opts.capture.memoryBudget : undefined
    const promise = diffInChild(files[0], files[1], { top: 4 * TOP_CLASSES, retainers: TOP_CLASSES, memoryBudget: budget, signal: options.signal })
    memo = { key, promise }
    promise.catch(() => { if (memo && memo.promise === promise) memo = null }) // a failure is not kept
  }
  const d = await memo.promise
  const growing = d.classes.filter((c) => c.shallowDelta > 0 || c.retainedDelta > 0 || c.countDelta > 0).slice(0, TOP_CLASSES)
  return {
    classes: growing.map(({ retainers, ...c }) => c),
    retainers: growing.flatMap((c) => (c.retainers || []).slice(0, PATHS_PER_CLASS)),
    diffOf: { before: files[0], after: files[1], method: d.method }
  }
}

/**
 * `report.classes` from the class histograms of the guard's two newest captures (issue #11:
 * microseconds, growth per hour), or null when fewer than two carry one.
 */
function histogramGrowth (guard) {
  const withClasses = (guard.status().captures || []).filter((c) => c && Array.isArray(c.classes) && c.createdAt)
  if (withClasses.length < 2) return null
  const { classGrowth } = require('./classes')
  return classGrowth(withClasses[withClasses.length - 2], withClasses[withClasses.length - 1], { limit: TOP_CLASSES }).classes
}

/**
 * Plug the analysis into report() as its 'classes' and 'retainers' sections: classes from
 * the captures' histograms when they have them (no child process), else from the diff;
 * retainer paths always from the diff (in a child process under the capture budget).
 */
function registerReportSections (reportLib) {
  reportLib.registerSection('classes', async (guard) => histogramGrowth(guard) || (await analysisReport(guard)).classes)
  reportLib.registerSection('retainers', async (guard) => (await analysisReport(guard)).retainers)
}

try {
  registerReportSections(require('./report'))
} catch (err) {
  // lib/report.js (guard.report()'s sections) is not in this build yet: analysisReport()
  // stands alone until it is.
  if (!(err && err.code === 'MODULE_NOT_FOUND' && /['"]\.\/report['"]/.test(err.message))) throw err
}

module.exports = { analysisReport, registerReportSections, histogramGrowth, lastTwo, TOP_CLASSES }
