'use strict'
// Renders a benchmark/analysis.js run as Markdown into docs/benchmarks-analysis.md:
//
//   node benchmark/analysis-report.js [results.json ...]
//
// Default input: benchmark/out/analysis-latest.json. Several files are merged (their runs
// pooled, machine and inputs from the first) — e.g. a 100 MB run and a 500 MB run. The
// document holds `<!-- bench:analysis:start -->` … `<!-- bench:analysis:end -->`; only
// what is between the markers is replaced (the prose around it is kept).

const fs = require('node:fs')
const path = require('node:path')

const { summarizeRuns } = require('./analysis')

const DOC = path.join(__dirname, '..', 'docs', 'benchmarks-analysis.md')
const MiB = 1024 * 1024

const LABELS = {
  memlab: 'memlab 2.0.5 (`getFullHeapFromFile`), unpacked file',
  'heap-snapshot': 'heap-snapshot 0.0.10 (Rust, mmap), unpacked file',
  leakguard: 'leakguard, **the `.gz` it wrote**',
  'leakguard-raw': 'leakguard, unpacked file'
}
const ORDER = ['memlab', 'heap-snapshot', 'leakguard', 'leakguard-raw']

const sec = (ms) => (ms == null ? '–' : `${(ms / 1000).toFixed(ms >= 10000 ? 1 : 2)} s`)
const mib = (b) => (b == null ? '–' : `${Math.round(b / MiB).toLocaleString('en-US')} MiB`)
const x = (v) => (v == null ? '–' : v >= 10 ? `${v.toFixed(1)}×` : `${v.toFixed(2)}×`)
const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(0)} %`)

function merge (reports) {
  const first = reports[0]
  const runs = reports.flatMap((r) => r.runs)
  const inputs = Object.assign({}, ...reports.map((r) => r.inputs))
  const merged = { ...first, runs, inputs, startedAt: first.startedAt, finishedAt: reports[reports.length - 1].finishedAt }
  merged.summary = summarizeRuns(merged)
  return merged
}

function machineLine (report) {
  const m = report.machine
  return `Measured ${report.startedAt.slice(0, 10)} on ${m.cores} cores (${m.cpuModel}), ` +
    `${(m.memBytes / 2 ** 30).toFixed(0)} GiB RAM, ${m.platform}, Node ${m.node}; load average ` +
    `${m.loadAvgAtStart.map((v) => v.toFixed(2)).join(' ')} at the start: a machine shared with other builds ` +
    'and tests, so absolute times are noisy and the ratios (peers interleaved in one run) are what to read.'
}

/** Target verdicts for one size and op: `{ text, met }[]`. */
function targets (rows) {
  const lg = rows.find((r) => r.peer === 'leakguard')
  const out = []
  if (lg && lg.vsMemlab) {
    const met = lg.vsMemlab.speedup >= 10 && lg.vsMemlab.rss <= 0.25
    out.push({ met, text: `vs memlab: ${x(lg.vsMemlab.speedup)} faster (target ≥ 10×), ${pct(lg.vsMemlab.rss)} of its peak RSS (target ≤ 25 %)` })
  }
  if (lg && lg.vsHeapSnapshot) {
    const met = lg.vsHeapSnapshot.speedup >= 1 && lg.vsHeapSnapshot.rss <= 0.5
    out.push({ met, text: `.gz vs heap-snapshot on the unpacked file: ${x(lg.vsHeapSnapshot.speedup)} its speed (target ≥ 1×), ${pct(lg.vsHeapSnapshot.rss)} of its peak RSS (target ≤ 50 %)` })
  }
  return out
}

function render (report) {
  const sizes = [...new Set(report.summary.map((r) => r.sizeMB))].sort((a, b) => a - b)
  let md = `${machineLine(report)}\n\n`
  md += 'Each cell is the median of the runs (count in the last column); wall time is from spawn to exit, ' +
    'peak RSS is the process\'s `ru_maxrss` (GNU time). Speed ratio = anchor\'s time ÷ this row\'s; memory ratio = this row\'s peak ÷ the anchor\'s.\n\n'
  for (const sizeMB of sizes) {
    const inp = report.inputs[sizeMB] || {}
    md += `### ~${sizeMB} MB heap\n\n`
    if (inp.records) {
      md += `${inp.records.toLocaleString('en-US')} \`UserRecord\`s (${inp.leakedRecords.toLocaleString('en-US')} leaked between the captures), ` +
        `heapUsed ${mib(inp.heapUsed)}; the \`after\` snapshot is ${mib(inp.rawBytes)} of JSON, ${mib(inp.gzBytes)} gzipped (leakguard capture, level 1).\n\n`
    }
    for (const op of ['summarize', 'diff']) {
      const rows = report.summary.filter((r) => r.sizeMB === sizeMB && r.op === op).sort((a, b) => ORDER.indexOf(a.peer) - ORDER.indexOf(b.peer))
      if (rows.length === 0) continue
      md += `**${op}**${op === 'diff' ? ' (two snapshots: before and after)' : ' (the after snapshot)'}\n\n`
      md += '| tool | wall | peak RSS | vs memlab: speed | vs memlab: memory | vs heap-snapshot: speed | vs heap-snapshot: memory | runs |\n'
      md += '|---|---:|---:|---:|---:|---:|---:|---:|\n'
      for (const r of rows) {
        const vm = r.peer === 'memlab' ? null : r.vsMemlab
        const vh = r.peer === 'heap-snapshot' ? null : r.vsHeapSnapshot
        const runs = r.ok === r.runs ? String(r.runs) : `${r.ok}/${r.runs} ok`
        md += `| ${LABELS[r.peer] || r.peer} | ${sec(r.wallMs)} | ${mib(r.maxRss)} | ${vm ? x(vm.speedup) : '–'} | ${vm ? pct(vm.rss) : '–'} | ${vh ? x(vh.speedup) : '–'} | ${vh ? pct(vh.rss) : '–'} | ${runs} |\n`
      }
      const failed = rows.filter((r) => r.error)
      for (const r of failed) md += `\n${r.peer} failed: \`${String(r.error).split('\n')[0].slice(0, 200)}\``
      const t = targets(rows)
      if (t.length) md += `\n${t.map((v) => `- ${v.met ? 'met' : '**not met**'}: ${v.text}`).join('\n')}\n`
      md += '\n'
    }
  }
  return md.trimEnd() + '\n'
}

function replaceSection (text, body) {
  const start = '<!-- bench:analysis:start -->'
  const end = '<!-- bench:analysis:end -->'
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) throw new Error(`the document has no ${start} … ${end} markers`)
  return `${text.slice(0, i + start.length)}\n${body}${text.slice(j)}`
}

function main () {
  const files = process.argv.slice(2)
  const inputs = files.length ? files : [path.join(__dirname, 'out', 'analysis-latest.json')]
  const report = merge(inputs.map((f) => JSON.parse(fs.readFileSync(f, 'utf8'))))
  fs.writeFileSync(DOC, replaceSection(fs.readFileSync(DOC, 'utf8'), render(report)))
  console.error(`wrote ${path.relative(process.cwd(), DOC)}`)
}

if (require.main === module) main()

module.exports = { render, merge, replaceSection, targets }
