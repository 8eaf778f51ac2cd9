'use strict'
// Renders benchmark results as Markdown and writes them into the docs between markers:
//
//   node benchmark/readme.js [section] [results.json ...]
//
// section: capture (default), headroom, levels or fork; results: files written by
// benchmark/capture.js (default benchmark/out/capture-latest.json), their runs merged
// (machine and configuration from the first). Exactly one of README.md and docs/*.md holds
// `<!-- bench:<section>:start -->` … `<!-- bench:<section>:end -->` (capture and fork live in
// docs/benchmarks.md, headroom and levels in docs/how-it-works.md); only what is between them
// is replaced, in whichever file has them, so a section can move between docs freely.

const fs = require('node:fs')
const path = require('node:path')

const { summarize } = require('./capture')

const MiB = 1024 * 1024
const ROOT = path.join(__dirname, '..')

const LABELS = {
  floor: 'floor: `v8.writeHeapSnapshot(\'/dev/null\')`',
  'v8-file': '`v8.writeHeapSnapshot(file)`',
  'v8-gzip': '`v8.getHeapSnapshot()` → `zlib.createGzip()` → file',
  heapdump: 'npm `heapdump`',
  'leakguard-inline': 'leakguard inline',
  'leakguard-fork': 'leakguard fork'
}

const ms = (v) => (v == null ? '–' : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`)
const mb = (v) => (v == null ? '–' : `${(v / MiB).toFixed(v >= 100 * MiB ? 0 : 1)} MiB`)
const x = (v, d = 2) => (v == null ? '–' : `${v.toFixed(d)}×`)

function label (row) {
  const base = LABELS[row.peer] || row.peer
  return row.peer.startsWith('leakguard') && row.level != null ? `${base} (level ${row.level})` : base
}

function machineLine (report) {
  const m = report.machine
  return `Measured ${report.startedAt.slice(0, 10)} on ${m.cores} cores (${m.cpuModel}), ` +
    `${(m.memBytes / 2 ** 30).toFixed(0)} GiB RAM, ${m.platform}, Node ${m.node}; ` +
    `load average ${m.loadAvgAtStart.map((v) => v.toFixed(2)).join(' ')} at the start (a shared machine).`
}

function groups (report) {
  const out = new Map()
  for (const row of report.summary) {
    const k = `${row.shape}|${row.sizeMB}`
    if (!out.has(k)) out.set(k, [])
    out.get(k).push(row)
  }
  return out
}

const ORDER = ['floor', 'v8-file', 'v8-gzip', 'heapdump', 'leakguard-inline', 'leakguard-fork']
const byPeer = (a, b) => ORDER.indexOf(a.peer) - ORDER.indexOf(b.peer) || (a.level ?? 0) - (b.level ?? 0)

const SHAPES = ['small', 'tiny', 'bigarray', 'strings']

function shapeName (shape) {
  return {
    strings: 'of 512 KiB strings',
    tiny: 'of `{ a, b }` objects in arrays of 50,000',
    bigarray: 'of `{ a, b }` objects in one array'
  }[shape] || 'of many small objects'
}

/** The main table: every peer against the floor, per heap. */
function renderCapture (report) {
  const lines = [machineLine(report), '']
  const reps = report.config.reps
  lines.push(`Medians of ${report.config.sizes.map((s, i) => `${reps[i]} runs at ${s} MB`).join(', ')}, each in a fresh process, ` +
    'peers interleaved. *Stall*: the longest gap between beats of a 5 ms `setInterval` in the capturing process. ' +
    '*JS CPU*: that thread\'s CPU time from the call until the file is complete; *CPU wait*: the time it was ready ' +
    'but waited for a CPU (`schedstat`) — other processes\' load, not the peer\'s doing; *less CPU wait*: the stall ' +
    '(or the time to complete) minus that wait, what it would be on an idle machine (low for the `createGzip` peer\'s stall, ' +
    'whose CPU wait after the stall is subtracted too). *Peak RSS growth*: VmHWM after the ' +
    'capture − VmRSS before it (VmHWM reset through `/proc/self/clear_refs`), read by the benchmark\'s parent. ' +
    '*Complete*: from the call until the file is complete (for the floor: until the call returns). ' +
    `The \`createGzip\` peer uses zlib's default level ${report.config.gzipLevel ?? 6}; leakguard its own level.`, '')
  for (const [k, rows] of groups(report)) {
    const [shape, size] = k.split('|')
    const heap = rows.find((r) => r.heapUsed)
    lines.push(`**Heap ${shapeName(shape)}, ~${size} MB** (heapUsed ${heap ? mb(heap.heapUsed) : '–'})`, '')
    lines.push('| | stall | ÷ floor | less CPU wait, ÷ floor | JS CPU | CPU wait | peak RSS growth | complete | ÷ floor | less CPU wait, ÷ floor | output |')
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const r of rows.filter((r) => r.peer !== 'leakguard-fork').sort(byPeer)) {
      if (r.n === 0) {
        lines.push(`| ${label(r)} | failed: ${r.errors[0] || 'no run'} | | | | | | | | | |`)
        continue
      }
      lines.push(`| ${label(r)} | ${ms(r.stallMs)} | ${x(r.stallRatio)} | ${x(r.busyRatio)} | ${ms(r.jsCpuMs)} | ${ms(r.runQueueWaitMs)} | ${mb(r.peakGrowth)} (${x(r.growthPerHeapUsed, 1)} heapUsed) | ` +
        `${ms(r.completeMs)} | ${x(r.completeRatio)} | ${x(r.busyCompleteRatio)} | ${r.bytes == null ? '–' : mb(r.bytes)} |`)
    }
    const fork = rows.filter((r) => r.peer === 'leakguard-fork')
    if (!report.config.peers.includes('leakguard-fork')) {
      // not part of this run
    } else if (fork.length === 0) {
      lines.push('| leakguard fork | not measured in this run (fork capture was not available in the build measured); see the fork section | | | | | | | | | |')
    } else {
      for (const r of fork) {
        const ratio = r.stallRatio != null && r.stallRatio < 0.01 ? `${(r.stallRatio * 100).toFixed(2)} %` : x(r.stallRatio)
        lines.push(`| ${label(r)} | ${ms(r.stallMs)} | ${ratio} | ${x(r.busyRatio)} | ${ms(r.jsCpuMs)} | ${ms(r.runQueueWaitMs)} | ` +
          `parent's RSS ${mb(r.rssAfter - r.rssBefore)} after − before; parent + child peak ${mb(r.treePeakPss)} PSS ` +
          `(${mb(r.treePeakRss)} RSS), ${mb(r.treeGrowthPss)} above the parent's RSS before | ` +
          `${ms(r.completeMs)} | ${x(r.completeRatio)} | ${x(r.busyCompleteRatio)} | ${mb(r.bytes)} |`)
      }
    }
    lines.push('')
  }
  const targets = targetLines(report)
  if (targets.length) lines.push(...targets, '')
  if (report.config.peers.includes('leakguard-fork') && !report.config.fork.ok) lines.push(`leakguard fork: not measured in this run (\`${report.config.fork.code || report.config.fork.message}\` in the build measured); fork capture has its own section below.`, '')
  return lines.join('\n').trimEnd()
}

function targetLines (report) {
  const out = []
  for (const r of report.summary.filter((r) => r.peer === 'leakguard-inline' && r.n > 0)) {
    const s = r.stallRatio
    const c = r.completeRatio
    if (s == null || c == null) continue
    const verdict = (v, t) => (v == null ? '–' : `${x(v)} (${v <= t ? 'met' : 'missed'})`)
    out.push(`- heap ${shapeName(r.shape)}, ~${r.sizeMB} MB, level ${r.level}: stall ÷ floor ${verdict(s, 1.03)}, ` +
      `less CPU wait ${verdict(r.busyRatio, 1.03)}; complete .gz ÷ floor ${verdict(c, 1.15)}, less CPU wait ${verdict(r.busyCompleteRatio, 1.15)}`)
  }
  return out.length ? ['Targets for leakguard inline (stall ≤ 1.03 × floor, complete .gz ≤ 1.15 × floor):', '', ...out] : []
}

/** Headroom: extra peak RSS of a leakguard inline capture (level 1) per byte of heapUsed. */
function renderHeadroom (report) {
  const lines = [machineLine(report), '']
  lines.push('| heap | heapUsed | runs | peak RSS growth | ÷ heapUsed (median) | per run | RSS after − before | snapshot JSON ÷ heapUsed | .gz ÷ heapUsed |')
  lines.push('|---|---:|---:|---:|---:|---|---:|---:|---:|')
  const rows = report.summary.filter((r) => r.peer === 'leakguard-inline' && r.level === 1 && r.n > 0)
    .sort((a, b) => SHAPES.indexOf(a.shape) - SHAPES.indexOf(b.shape) || a.sizeMB - b.sizeMB)
  for (const r of rows) {
    const per = report.runs.filter((u) => u.peer === r.peer && u.shape === r.shape && u.sizeMB === r.sizeMB && u.level === r.level && !u.error)
      .map((u) => (u.peakGrowth / u.heapUsed).toFixed(2)).join(', ')
    lines.push(`| ${shapeName(r.shape)}, ~${r.sizeMB} MB | ${mb(r.heapUsed)} | ${r.n} | ${mb(r.peakGrowth)} | ${x(r.growthPerHeapUsed)} | ${per} | ${mb(r.rssAfter - r.rssBefore)} | ` +
      `${r.rawBytes ? x(r.rawBytes / r.heapUsed) : '–'} | ${r.bytes ? x(r.bytes / r.heapUsed) : '–'} |`)
  }
  return lines.join('\n')
}

/**
 * Gzip levels: leakguard inline at each level, per heap. *Blocked*: the JS thread neither
 * ran nor waited for a CPU — V8 waiting on a full pipe because gzip fell behind.
 */
function renderLevels (report) {
  const lines = [machineLine(report), '']
  lines.push('| heap | level | runs | raw JSON | .gz | ratio | stall | ÷ floor | JS thread blocked | CPU wait | complete | compressLagMs |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const rows = report.summary.filter((r) => r.peer === 'leakguard-inline' && r.n > 0)
    .sort((a, b) => a.sizeMB - b.sizeMB || a.level - b.level)
  for (const r of rows) {
    lines.push(`| ${shapeName(r.shape)}, ~${r.sizeMB} MB | ${r.level} | ${r.n} | ${mb(r.rawBytes)} | ${mb(r.bytes)} | ${x(r.rawBytes / r.bytes, 1)} | ` +
      `${ms(r.stallMs)} | ${x(r.stallRatio)} | ${ms(r.blockedMs)} | ${ms(r.runQueueWaitMs)} | ${ms(r.completeMs)} | ${ms(r.compressLagMs)} |`)
  }
  return lines.join('\n')
}

/** Fork capture against the floor and inline, per heap: the issue's targets, each run's phases. */
function renderFork (report) {
  const lines = [machineLine(report), '']
  const GiB = 2 ** 30
  const pct = (v) => `${(v * 100).toFixed(v < 0.01 ? 2 : 1)} %`
  const range = (vs, f) => (vs.length > 1 ? ` (${f(Math.min(...vs))}–${f(Math.max(...vs))})` : '')
  lines.push(`Medians of ${report.config.reps.join('/')} runs per peer, interleaved, each in a fresh process; ` +
    `stall: the longest gap between beats of a ${report.config.heartbeatMs || 5} ms \`setInterval\` from the call until the file is complete ` +
    '(a gap overstates the stall by up to one interval). Per GB: per GiB of `heapUsed`.', '')
  for (const [k, rows] of groups(report)) {
    const [shape, size] = k.split('|')
    const floor = rows.find((r) => r.peer === 'floor' && r.n > 0)
    const inline = rows.find((r) => r.peer === 'leakguard-inline' && r.n > 0)
    const fork = rows.find((r) => r.peer === 'leakguard-fork' && r.n > 0)
    if (!fork) continue
    const runs = report.runs.filter((u) => u.peer === 'leakguard-fork' && u.shape === shape && u.sizeMB === Number(size) && !u.error)
    const stalls = runs.map((u) => u.stallMs)
    const perGb = fork.stallMs / (fork.heapUsed / GiB)
    const rssDelta = fork.rssAfter - fork.rssBefore
    lines.push(`**Heap ${shapeName(shape)}, ~${size} MB** (heapUsed ${mb(fork.heapUsed)})`, '')
    lines.push('| | floor | leakguard inline | leakguard fork |', '|---|---:|---:|---:|')
    lines.push(`| longest event-loop stall | ${floor ? ms(floor.stallMs) : '–'} | ${inline ? ms(inline.stallMs) : '–'} | ${ms(fork.stallMs)}${range(stalls, ms)} |`)
    lines.push(`| ÷ floor | 1 | ${inline && floor ? x(inline.stallMs / floor.stallMs) : '–'} | ${floor ? pct(fork.stallMs / floor.stallMs) : '–'} |`)
    lines.push(`| per GB of heap | | | ${ms(perGb)} |`)
    lines.push(`| time to a complete file | ${floor ? ms(floor.completeMs) : '–'} | ${inline ? ms(inline.completeMs) : '–'} | ${ms(fork.completeMs)} |`)
    lines.push(`| parent RSS after − before | | ${inline ? mb(inline.rssAfter - inline.rssBefore) : '–'} | ${mb(rssDelta)} (${pct(rssDelta / fork.rssBefore)} of ${mb(fork.rssBefore)}) |`)
    lines.push(`| peak memory above the RSS before | ${floor ? mb(floor.peakGrowth) : '–'} | ${inline ? mb(inline.peakGrowth) : '–'} | parent + child ${mb(fork.treeGrowthPss)} PSS |`)
    lines.push('')
    lines.push('| run | stall | began after the call | parent GC in that gap | leakguard `stallMs` | `fork()` | madvise pass | quiet wait | attempts | `madvise` calls | complete |')
    lines.push('|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|')
    for (const u of runs) {
      const f = (u.leakguard && u.leakguard.fork) || {}
      const gc = (u.gcs || []).filter((g) => u.stallAtMs != null && g.at >= u.stallAtMs - 1 && g.at <= u.stallAtMs + u.stallMs)
      const kinds = { 1: 'scavenge', 2: 'minor mark', 4: 'mark-compact', 8: 'incremental marking', 16: 'weak callbacks' }
      const gcText = gc.length ? gc.map((g) => `${kinds[g.kind] || g.kind} ${ms(g.ms)}`).join(', ') : 'none'
      lines.push(`| ${u.rep} | ${ms(u.stallMs)} | ${u.stallAtMs == null ? '–' : ms(u.stallAtMs)} | ${gcText} | ${ms(u.leakguard && u.leakguard.stallMs)} | ` +
        `${ms(f.forkMs)} | ${ms(f.madviseMs)} | ${ms(f.quietWaitMs)} | ${f.attempts ?? '–'} | ${f.rangesOpened ?? '–'} (${f.openPass || 'exact'}) | ${ms(u.completeMs)} |`)
    }
    lines.push('')
    const verdict = (ok) => (ok ? 'met' : '**missed**')
    lines.push('Targets (issue #3):', '')
    if (floor) lines.push(`- stall ≤ 1 % of the floor: ${pct(fork.stallMs / floor.stallMs)} (${verdict(fork.stallMs <= 0.01 * floor.stallMs)})`)
    lines.push(`- stall ≤ 50 ms per GB of heap: ${ms(perGb)} per GiB (${verdict(perGb <= 50)})`)
    lines.push(`- parent RSS after within 5 % of before: ${pct(rssDelta / fork.rssBefore)} (${verdict(Math.abs(rssDelta) <= 0.05 * fork.rssBefore)})`)
    lines.push('')
  }
  return lines.join('\n').trimEnd()
}

const RENDER = { capture: renderCapture, headroom: renderHeadroom, levels: renderLevels, fork: renderFork }

/** Replace the text between the section's markers in `text`. */
function replaceSection (text, section, body) {
  const start = `<!-- bench:${section}:start -->`
  const end = `<!-- bench:${section}:end -->`
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) throw new Error(`no ${start} … ${end} markers`)
  return `${text.slice(0, i + start.length)}\n${body}\n${text.slice(j)}`
}

/** The Markdown files that may hold a section's markers: README.md and docs/*.md under `root`. */
function markdownFiles (root = ROOT) {
  const docs = path.join(root, 'docs')
  const inDocs = fs.existsSync(docs) ? fs.readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(docs, f)) : []
  return [path.join(root, 'README.md'), ...inDocs].filter((f) => fs.existsSync(f))
}

/** The one Markdown file under `root` that holds the section's start marker; throws for none or several. */
function targetFile (section, root = ROOT) {
  const start = `<!-- bench:${section}:start -->`
  const hits = markdownFiles(root).filter((f) => fs.readFileSync(f, 'utf8').includes(start))
  if (hits.length !== 1) {
    throw new Error(hits.length === 0
      ? `no file in README.md or docs/*.md has the ${start} marker`
      : `${start} is in more than one file: ${hits.map((f) => path.relative(root, f)).join(', ')}`)
  }
  return hits[0]
}

/** The reports' runs merged, the summary recomputed from them by the current code. */
function load (...files) {
  const reports = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')))
  const runs = reports.flatMap((r) => r.runs)
  return { ...reports[0], runs, summary: summarize(runs) }
}

function main () {
  const section = process.argv[2] || 'capture'
  if (!RENDER[section]) throw new Error(`unknown section ${section}; known: ${Object.keys(RENDER).join(', ')}`)
  const files = process.argv.length > 3 ? process.argv.slice(3) : [path.join(__dirname, 'out', 'capture-latest.json')]
  const report = load(...files)
  const target = targetFile(section)
  fs.writeFileSync(target, replaceSection(fs.readFileSync(target, 'utf8'), section, RENDER[section](report)))
  console.error(`${path.relative(ROOT, target)}: bench:${section} written from ${files.map((f) => path.relative(process.cwd(), f)).join(', ')}`)
}

if (require.main === module) main()

module.exports = { RENDER, renderCapture, renderHeadroom, renderLevels, renderFork, replaceSection, markdownFiles, targetFile, load }
