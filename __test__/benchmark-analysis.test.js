'use strict'
// The analysis benchmark's bookkeeping (not its timings): the interleaved schedule, the
// medians and ratios against the two anchors, the target verdicts and the document's
// section replaced only between its markers.

const test = require('node:test')
const assert = require('node:assert/strict')

const { schedule, summarizeRuns } = require('../benchmark/analysis')
const { render, replaceSection, targets } = require('../benchmark/analysis-report')

test('the schedule interleaves every peer per op and rotates their order per repetition', () => {
  const runs = schedule({ sizes: [100, 500], reps: [2, 1], peers: ['memlab', 'heap-snapshot', 'leakguard'], ops: ['summarize', 'diff'] })
  assert.equal(runs.length, 2 * 2 * 3 + 1 * 2 * 3)
  const first = runs.filter((r) => r.sizeMB === 100 && r.op === 'summarize').map((r) => r.peer)
  assert.deepEqual(first, ['memlab', 'heap-snapshot', 'leakguard', 'heap-snapshot', 'leakguard', 'memlab'])
  // Sizes in order, each size's runs together.
  assert.deepEqual([...new Set(runs.map((r) => r.sizeMB))], [100, 500])
})

function run (peer, op, wallMs, maxRss, status = 0) {
  return { sizeMB: 100, rep: 0, op, peer, wallMs, maxRss, status, error: status === 0 ? null : 'exit 1: boom', result: null }
}

test('medians skip failed runs; ratios are taken against memlab and heap-snapshot', () => {
  const report = {
    runs: [
      run('memlab', 'summarize', 10000, 1000), run('memlab', 'summarize', 12000, 1200), run('memlab', 'summarize', 99, 1, 1),
      run('heap-snapshot', 'summarize', 1000, 600),
      run('leakguard', 'summarize', 800, 200), run('leakguard', 'summarize', 1000, 240)
    ]
  }
  const rows = summarizeRuns(report)
  const m = rows.find((r) => r.peer === 'memlab')
  assert.equal(m.wallMs, 11000)
  assert.equal(m.ok, 2)
  assert.equal(m.runs, 3)
  assert.match(m.error, /boom/)
  const lg = rows.find((r) => r.peer === 'leakguard')
  assert.equal(lg.wallMs, 900)
  assert.equal(lg.maxRss, 220)
  assert.equal(lg.vsMemlab.speedup, 11000 / 900)
  assert.equal(lg.vsMemlab.rss, 220 / 1100)
  assert.equal(lg.vsHeapSnapshot.speedup, 1000 / 900)
  assert.equal(lg.vsHeapSnapshot.rss, 220 / 600)
  const t = targets(rows)
  assert.equal(t.length, 2)
  assert.equal(t[0].met, true) // 12.2× faster, 20 % of memlab's memory
  assert.equal(t[1].met, true) // 1.11× heap-snapshot's speed, 37 % of its memory
  const slow = summarizeRuns({ runs: [run('heap-snapshot', 'diff', 1000, 600), run('leakguard', 'diff', 1200, 200)] })
  assert.equal(targets(slow)[0].met, false, 'slower than heap-snapshot misses the target')
})

test('the rendered table names the machine and every peer; only the marked section is replaced', () => {
  const report = {
    startedAt: '2026-12-02T04:00:00.000Z',
    machine: { cores: 2, cpuModel: 'Test CPU', memBytes: 8 * 2 ** 30, platform: 'linux x64', node: 'v20.0.0', loadAvgAtStart: [1, 2, 3] },
    inputs: { 100: { records: 1000, leakedRecords: 50, heapUsed: 2 ** 20, gzBytes: 2 ** 20, rawBytes: 2 ** 22 } },
    runs: [run('memlab', 'summarize', 10000, 2 ** 30), run('leakguard', 'summarize', 500, 2 ** 28)]
  }
  report.summary = summarizeRuns(report)
  const md = render(report)
  assert.match(md, /Node v20\.0\.0/)
  assert.match(md, /2 cores \(Test CPU\)/)
  assert.match(md, /memlab 2\.0\.5/)
  assert.match(md, /leakguard, \*\*the `\.gz` it wrote\*\* \| 0\.50 s \| 256 MiB \| 20\.0× \| 25 %/)
  const doc = 'intro\n<!-- bench:analysis:start -->\nold\n<!-- bench:analysis:end -->\noutro\n'
  const out = replaceSection(doc, 'new\n')
  assert.equal(out, 'intro\n<!-- bench:analysis:start -->\nnew\n<!-- bench:analysis:end -->\noutro\n')
  assert.equal(replaceSection(out, 'new\n'), out)
  assert.throws(() => replaceSection('no markers', 'x'), /markers/)
})

// The table in docs/benchmarks-analysis.md is what `node benchmark/analysis-report.js` renders
// from the newest run committed in benchmark/results/, and the README's analysis bullet quotes
// that run's speed ratios against memlab (the headline target), so neither drifts from the data.
test('docs/benchmarks-analysis.md and the README quote the newest committed analysis run', () => {
  const fs = require('node:fs')
  const path = require('node:path')
  const { merge } = require('../benchmark/analysis-report')
  const root = path.join(__dirname, '..')
  const dir = path.join(root, 'benchmark', 'results')
  const newest = fs.readdirSync(dir).filter((f) => /^analysis-\d{4}-\d\d-\d\d.*\.json$/.test(f)).sort().pop()
  assert.ok(newest, 'a dated analysis run in benchmark/results')
  const report = merge([JSON.parse(fs.readFileSync(path.join(dir, newest), 'utf8'))])
  const doc = fs.readFileSync(path.join(root, 'docs', 'benchmarks-analysis.md'), 'utf8')
  const start = '<!-- bench:analysis:start -->\n'
  assert.equal(doc.slice(doc.indexOf(start) + start.length, doc.indexOf('<!-- bench:analysis:end -->')), render(report), newest)
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const bullet = readme.slice(readme.indexOf('- **Analysis**'), readme.indexOf('\n- **', readme.indexOf('- **Analysis**') + 1))
  for (const r of report.summary.filter((x) => x.peer === 'leakguard')) {
    const ratio = `${r.vsMemlab.speedup.toFixed(1)}×`
    assert.ok(bullet.includes(ratio), `README's analysis bullet quotes ${r.sizeMB} MB ${r.op} at ${ratio} memlab's speed (${newest})`)
  }
})
