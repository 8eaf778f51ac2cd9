'use strict'
// guard.report()'s analysis (lib/report-analysis.js): with two real captures of this
// process and a planted leak between them, analysisReport(guard) names the class with its
// exact count delta and the path through the Map's owner — computed in a child process,
// once per pair of files; with fewer than two captures it adds nothing.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')

const leakguard = require('..')
const { analysisReport } = require('../lib/report-analysis')
const { analysisRunning } = require('../lib/analysis-child')
const { tmpDir } = require('./helpers/analysis')

class ReportedLeak {
  constructor (i) { this.i = i; this.tag = `r-${i}` }
}
const holder = { registry: new Map() }
globalThis.leakguardReportHolder = holder

test('analysisReport(guard): the top growing classes and their retainer paths from the last two captures', { timeout: 120000 }, async () => {
  const dir = tmpDir('leakguard-report-')
  const guard = leakguard.watch({ intervalMs: 1000, capture: { dir, mode: 'inline', maxSnapshots: 10 } })
  try {
    assert.deepEqual(await analysisReport(guard), {}, 'no captures: nothing to add')
    for (let i = 0; i < 500; i++) holder.registry.set(i, new ReportedLeak(i))
    await guard.capture({ force: true })
    assert.deepEqual(await analysisReport(guard), {}, 'one capture: nothing to add')
    for (let i = 500; i < 2500; i++) holder.registry.set(i, new ReportedLeak(i))
    const second = await guard.capture({ force: true })

    const rss = process.memoryUsage.rss()
    const r = await analysisReport(guard)
    assert.equal(r.diffOf.after, second.path)
    assert.equal(r.diffOf.method, 'id')
    const cls = r.classes.find((c) => c.name === 'ReportedLeak')
    assert.ok(cls, JSON.stringify(r.classes.map((c) => c.name)))
    assert.equal(cls.countDelta, 2000)
    assert.equal(cls.retainers, undefined, 'classes carry no paths; they are in retainers')
    const paths = r.retainers.filter((p) => p.className === 'ReportedLeak')
    assert.ok(paths.length > 0 && paths.some((p) => /registry/.test(p.text) && /Map/.test(p.text)), r.retainers.map((p) => p.text).join('\n'))
    assert.ok(process.memoryUsage.rss() - rss < 32 * 1024 * 1024, 'the graph was built in the child')

    // The same pair again: the kept result, no new child.
    const again = analysisReport(guard)
    assert.equal(analysisRunning(), false)
    assert.deepEqual(await again, r)
  } finally {
    guard.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('guard.report(): classes from the two captures\' histograms (growth per hour) and retainer paths from their diff', { timeout: 120000 }, async () => {
  const dir = tmpDir('leakguard-report-')
  const guard = leakguard.watch({ intervalMs: 1000, capture: { dir, mode: 'inline', maxSnapshots: 10 } })
  try {
    const none = await guard.report()
    assert.equal(none.classes, undefined, 'no captures: no classes section')
    holder.registry.clear()
    for (let i = 0; i < 300; i++) holder.registry.set(i, new ReportedLeak(i))
    const first = await guard.capture({ force: true })
    for (let i = 300; i < 1800; i++) holder.registry.set(i, new ReportedLeak(i))
    const second = await guard.capture({ force: true })
    const report = await guard.report()
    assert.equal(report.errors, undefined, JSON.stringify(report.errors))
    const cls = report.classes.find((c) => c.name === 'ReportedLeak')
    assert.ok(cls, JSON.stringify(report.classes.map((c) => c.name)))
    // The histogram's exact counts: the class of our own grew by exactly 1,500.
    assert.equal(cls.countGrowth, 1500)
    assert.equal(cls.count, second.classes.find((c) => c.name === 'ReportedLeak').count)
    const hours = (Date.parse(second.createdAt) - Date.parse(first.createdAt)) / 3600e3
    assert.ok(Math.abs(cls.countPerHour - 1500 / hours) / (1500 / hours) < 1e-9)
    assert.ok(report.retainers.some((p) => p.className === 'ReportedLeak' && /registry/.test(p.text)), report.retainers.map((p) => p.text).join('\n'))
  } finally {
    guard.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
