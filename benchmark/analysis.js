'use strict'
// benchmark/analysis: what summarize and diff of a heap snapshot cost, for leakguard and
// the two anchors (memlab, the JS tool; heap-snapshot, a Rust port of DevTools' worker),
// each run in a fresh process, interleaved, medians, reported as ratios.
//
//   npm run bench:analysis                     # 100 MB and 500 MB heaps (~30 min on 2 cores)
//   BENCH_SIZES=100 BENCH_REPS=2 npm run bench:analysis
//   node benchmark/analysis-report.js          # write the last run into docs/benchmarks-analysis.md
//
// Environment (all optional):
//   BENCH_SIZES    heap sizes in MB (heapUsed of the process captured)   (default 100,500)
//   BENCH_REPS     repetitions, one number or one per size               (default 3,2)
//   BENCH_PEERS    subset of PEERS below                                 (default all)
//   BENCH_OPS      summarize,diff                                        (default both)
//   BENCH_TIMEOUT_S  a run that takes longer is killed and reported      (default 1200)
//   BENCH_OUT      results file (default benchmark/out/analysis-<time>.json; also -latest)
//   BENCH_HEAP_SNAPSHOT_SRC  a source checkout of heap-snapshot to build when crates.io
//                  has none (default benchmark/.tools/src/heap-snapshot when present)
//
// Inputs, made once and cached in benchmark/.data/<size>MB (gitignored): one process of
// small `UserRecord`s (benchmark/analysis-heap.js) captured by leakguard (inline, gzip
// level 1) as `before`, 5 % more records leaked, captured again as `after`; both also
// unpacked, because memlab and heap-snapshot read only uncompressed files. leakguard
// reads the `.gz` it wrote (row "leakguard"), and, for comparison, the unpacked file too
// ("leakguard (unpacked)").
//
// Measured from outside each run: wall time from spawn to exit (process start included,
// the same for every peer) and peak RSS, the child's ru_maxrss as GNU time reports it
// (`/usr/bin/time -f '%e %M'`, which waits for the child with wait4).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const { spawn, spawnSync } = require('node:child_process')
const { pipeline } = require('node:stream/promises')
const { performance } = require('node:perf_hooks')

const ROOT = path.join(__dirname, '..')
const OUT_DIR = path.join(__dirname, 'out')
const DATA_DIR = path.join(__dirname, '.data')
const TOOLS_DIR = path.join(__dirname, '.tools')
const TIME = '/usr/bin/time'

/** Peers in table order; the first two are the anchors every ratio is taken against. */
const PEERS = ['memlab', 'heap-snapshot', 'leakguard', 'leakguard-raw']
const OPS = ['summarize', 'diff']

function envList (name, def) {
  const v = process.env[name]
  return (v == null || v.trim() === '' ? def : v).split(',').map((s) => s.trim()).filter(Boolean)
}

function config () {
  const sizes = envList('BENCH_SIZES', '100,500').map(Number)
  const repsList = envList('BENCH_REPS', '3,2').map(Number)
  const reps = sizes.map((_, i) => repsList[Math.min(i, repsList.length - 1)])
  const peers = envList('BENCH_PEERS', PEERS.join(','))
  for (const p of peers) if (!PEERS.includes(p)) throw new Error(`unknown peer ${p}; known: ${PEERS.join(', ')}`)
  const ops = envList('BENCH_OPS', OPS.join(','))
  for (const o of ops) if (!OPS.includes(o)) throw new Error(`unknown op ${o}; known: ${OPS.join(', ')}`)
  if (sizes.some((s) => !(s > 0)) || reps.some((r) => !(r >= 1))) throw new Error('BENCH_SIZES and BENCH_REPS must be positive')
  const timeoutMs = Number(process.env.BENCH_TIMEOUT_S || 1200) * 1000
  return { sizes, reps, peers, ops, timeoutMs }
}

/** Runs in order: per size, per repetition, per op, every peer, the peers' order rotated per repetition. */
function schedule (cfg) {
  const runs = []
  cfg.sizes.forEach((sizeMB, si) => {
    for (let rep = 0; rep < cfg.reps[si]; rep++) {
      for (const op of cfg.ops) {
        const order = cfg.peers.map((_, i) => cfg.peers[(i + rep) % cfg.peers.length])
        for (const peer of order) runs.push({ sizeMB, rep, op, peer })
      }
    }
  })
  return runs
}

function median (values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

// --- the heap-snapshot CLI, built from source on demand ---

/** The heap-snapshot binary: built into benchmark/.tools with cargo on first use, or null and why. */
function heapSnapshotTool () {
  const bin = path.join(TOOLS_DIR, 'bin', 'heap-snapshot')
  if (fs.existsSync(bin)) return { bin }
  const env = { ...process.env, CARGO_TARGET_DIR: path.join(TOOLS_DIR, 'target') }
  const common = ['install', '--locked', '--root', TOOLS_DIR, '--bin', 'heap-snapshot']
  const tries = [['crates.io', [...common, 'heap-snapshot']]]
  const src = process.env.BENCH_HEAP_SNAPSHOT_SRC || path.join(TOOLS_DIR, 'src', 'heap-snapshot')
  if (fs.existsSync(path.join(src, 'Cargo.toml'))) tries.unshift([src, [...common, '--path', src]])
  const failures = []
  for (const [from, args] of tries) {
    console.error(`benchmark: building heap-snapshot from ${from} (cargo ${args.join(' ')}) …`)
    const r = spawnSync('cargo', args, { env, stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' })
    if (r.status === 0 && fs.existsSync(bin)) return { bin }
    failures.push(`${from}: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`)
  }
  return { bin: null, reason: failures.join('; ') }
}

// --- inputs ---

async function gunzipTo (src, dst) {
  const tmp = `${dst}.tmp`
  await pipeline(fs.createReadStream(src), zlib.createGunzip(), fs.createWriteStream(tmp, { mode: 0o600 }))
  fs.renameSync(tmp, dst)
}

/** The cached inputs for one size, made on first use. */
async function inputs (sizeMB) {
  const dir = path.join(DATA_DIR, `${sizeMB}MB`)
  const metaPath = path.join(dir, 'meta.json')
  const files = {
    beforeGz: path.join(dir, 'before.heapsnapshot.gz'),
    afterGz: path.join(dir, 'after.heapsnapshot.gz'),
    before: path.join(dir, 'before.heapsnapshot'),
    after: path.join(dir, 'after.heapsnapshot')
  }
  if (fs.existsSync(metaPath) && Object.values(files).every((f) => fs.existsSync(f))) {
    return { ...JSON.parse(fs.readFileSync(metaPath, 'utf8')), files }
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  console.error(`benchmark: making the ${sizeMB} MB heap's two snapshots (once; cached in ${path.relative(ROOT, dir)}) …`)
  const capDir = path.join(dir, 'captures')
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'analysis-heap.js'), JSON.stringify({ sizeMB, dir: capDir })], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 1 << 20
  })
  if (r.status !== 0) throw new Error(`analysis-heap.js failed (status ${r.status}, signal ${r.signal})`)
  const made = JSON.parse(r.stdout.trim().split('\n').pop())
  fs.renameSync(made.before.path, files.beforeGz)
  fs.renameSync(made.after.path, files.afterGz)
  fs.rmSync(capDir, { recursive: true, force: true })
  await gunzipTo(files.beforeGz, files.before)
  await gunzipTo(files.afterGz, files.after)
  const meta = { ...made, before: { ...made.before, path: undefined }, after: { ...made.after, path: undefined } }
  fs.writeFileSync(metaPath, JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 })
  return { ...meta, files }
}

// --- one run ---

/** The command line for one run: [file, args]. */
function command (run, input, tool, out) {
  const f = input.files
  const peerScript = path.join(__dirname, 'analysis-peer.js')
  switch (run.peer) {
    case 'memlab':
      // memlab holds the whole graph as JS objects: give it the heap it needs.
      return [process.execPath, ['--max-old-space-size=16384', peerScript, 'memlab', run.op, out, ...(run.op === 'diff' ? [f.before, f.after] : [f.after])]]
    case 'heap-snapshot':
      // `diff MAIN BASELINE`: the newer snapshot first.
      return [tool.bin, run.op === 'diff' ? ['diff', f.after, f.before] : ['summary', f.after]]
    case 'leakguard':
      return [process.execPath, [peerScript, 'leakguard', run.op, out, ...(run.op === 'diff' ? [f.beforeGz, f.afterGz] : [f.afterGz])]]
    case 'leakguard-raw':
      return [process.execPath, [peerScript, 'leakguard', run.op, out, ...(run.op === 'diff' ? [f.before, f.after] : [f.after])]]
  }
  throw new Error(`unknown peer ${run.peer}`)
}

/** Spawn under GNU time; resolves { wallMs, maxRss, status, stderr, result }. */
function measure (file, args, out, stdoutFile, timeoutMs) {
  return new Promise((resolve) => {
    const timeFile = `${out}.time`
    for (const p of [out, timeFile]) fs.rmSync(p, { force: true })
    const stdoutFd = fs.openSync(stdoutFile, 'w', 0o600)
    const t0 = performance.now()
    const child = spawn(TIME, ['-f', '%e %M', '-o', timeFile, file, ...args], { stdio: ['ignore', stdoutFd, 'pipe'], detached: true })
    fs.closeSync(stdoutFd)
    let stderr = ''
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000) })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try { process.kill(-child.pid, 'SIGKILL') } catch {}
    }, timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const wallMs = performance.now() - t0
      let maxRss = null
      try {
        // GNU time writes "Command exited with non-zero status N" first when it did.
        const line = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()
        maxRss = Number(line.split(' ')[1]) * 1024
      } catch {}
      let result = null
      try { result = JSON.parse(fs.readFileSync(out, 'utf8')) } catch {}
      resolve({ wallMs, maxRss, status: code, signal, timedOut, stderr: code === 0 ? '' : stderr.trim().split('\n').slice(-6).join('\n'), result })
    })
  })
}

// --- the whole run ---

function machine () {
  const cpus = os.cpus()
  return {
    cores: cpus.length,
    cpuModel: cpus[0] ? cpus[0].model.trim() : 'unknown',
    memBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAvgAtStart: os.loadavg()
  }
}

function summarizeRuns (report) {
  const groups = new Map()
  for (const r of report.runs) {
    const k = `${r.sizeMB}|${r.op}|${r.peer}`
    if (!groups.has(k)) groups.set(k, [])
    groups.get(k).push(r)
  }
  const rows = []
  for (const [k, runs] of groups) {
    const [sizeMB, op, peer] = k.split('|')
    const ok = runs.filter((r) => r.status === 0)
    rows.push({
      sizeMB: Number(sizeMB),
      op,
      peer,
      runs: runs.length,
      ok: ok.length,
      wallMs: median(ok.map((r) => r.wallMs)),
      maxRss: median(ok.map((r) => r.maxRss)),
      error: ok.length === runs.length ? null : (runs.find((r) => r.status !== 0) || {}).error || null,
      result: ok.length ? ok[ok.length - 1].result : null
    })
  }
  // Ratios against the two anchors, per size and op.
  for (const row of rows) {
    const anchor = (p) => rows.find((x) => x.sizeMB === row.sizeMB && x.op === row.op && x.peer === p)
    for (const [p, key] of [['memlab', 'vsMemlab'], ['heap-snapshot', 'vsHeapSnapshot']]) {
      const a = anchor(p)
      row[key] = a && a.wallMs && row.wallMs && a.maxRss && row.maxRss
        ? { speedup: a.wallMs / row.wallMs, rss: row.maxRss / a.maxRss }
        : null
    }
  }
  return rows
}

async function main () {
  const cfg = config()
  if (!fs.existsSync(TIME)) throw new Error(`${TIME} (GNU time) is needed to read each run's peak RSS: apt-get install time`)
  let tool = { bin: null, reason: 'not asked for' }
  if (cfg.peers.includes('heap-snapshot')) {
    tool = heapSnapshotTool()
    if (!tool.bin) {
      console.error(`benchmark: leaving out heap-snapshot, which could not be built: ${tool.reason}`)
      cfg.peers = cfg.peers.filter((p) => p !== 'heap-snapshot')
    }
  }
  fs.mkdirSync(OUT_DIR, { recursive: true })
  const startedAt = new Date().toISOString()
  const report = { startedAt, machine: machine(), config: cfg, inputs: {}, runs: [] }
  for (const sizeMB of cfg.sizes) {
    const input = await inputs(sizeMB)
    const sizeOf = (f) => fs.statSync(f).size
    report.inputs[sizeMB] = {
      records: input.after.records,
      leakedRecords: input.leakedRecords,
      heapUsed: input.after.heapUsed,
      gzBytes: sizeOf(input.files.afterGz),
      rawBytes: sizeOf(input.files.after),
      beforeGzBytes: sizeOf(input.files.beforeGz),
      beforeRawBytes: sizeOf(input.files.before),
      capturedWith: input.node
    }
  }
  const runs = schedule(cfg)
  const scratch = path.join(OUT_DIR, 'analysis-scratch')
  fs.mkdirSync(scratch, { recursive: true })
  for (const [i, run] of runs.entries()) {
    const input = await inputs(run.sizeMB)
    const out = path.join(scratch, `${run.peer}-${run.op}-${run.sizeMB}.json`)
    const [file, args] = command(run, input, tool, out)
    const m = await measure(file, args, out, path.join(scratch, `${run.peer}-${run.op}-${run.sizeMB}.stdout`), cfg.timeoutMs)
    const rec = {
      ...run,
      wallMs: m.wallMs,
      maxRss: m.maxRss,
      status: m.timedOut ? null : m.status,
      error: m.timedOut ? `timed out after ${cfg.timeoutMs} ms` : m.status === 0 ? null : `exit ${m.status}${m.signal ? ` (${m.signal})` : ''}: ${m.stderr}`,
      result: m.result
    }
    report.runs.push(rec)
    const mib = (b) => (b == null ? '?' : `${Math.round(b / 2 ** 20)} MiB`)
    console.error(`[${i + 1}/${runs.length}] ${run.sizeMB} MB ${run.op} ${run.peer}: ${rec.error ? rec.error.split('\n')[0] : `${(m.wallMs / 1000).toFixed(2)} s, peak RSS ${mib(m.maxRss)}`}`)
  }
  report.finishedAt = new Date().toISOString()
  report.summary = summarizeRuns(report)
  const outFile = process.env.BENCH_OUT || path.join(OUT_DIR, `analysis-${startedAt.replace(/[:.]/g, '-')}.json`)
  const text = JSON.stringify(report, null, 2) + '\n'
  fs.writeFileSync(outFile, text)
  fs.writeFileSync(path.join(OUT_DIR, 'analysis-latest.json'), text)
  console.error(`benchmark: wrote ${path.relative(process.cwd(), outFile)}; render it with node benchmark/analysis-report.js`)
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err && err.stack ? err.stack : err)
    process.exit(1)
  })
}

module.exports = { schedule, median, summarizeRuns, PEERS, OPS }
