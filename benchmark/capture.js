'use strict'
// benchmark/capture: what one heap capture costs the process that takes it, for leakguard
// and the plain-Node and npm alternatives, in fresh processes, interleaved, medians.
//
//   npm run bench:capture                 # the default matrix (~15 min on 2 cores)
//   BENCH_SIZES=100 BENCH_REPS=3 npm run bench:capture
//   node benchmark/readme.js              # write the last run's table into docs/benchmarks.md
//
// Environment (all optional):
//   BENCH_SIZES   heap sizes in MB, comma-separated              (default 100,500)
//   BENCH_REPS    repetitions, one number or one per size         (default 5,3)
//   BENCH_PEERS   comma-separated subset of PEERS below           (default all)
//   BENCH_SHAPES  small (many small objects), tiny ({ a, b } objects in arrays of 50,000),
//                 bigarray (the same in one array), strings (512 KiB strings) (default small)
//   BENCH_LEVELS  leakguard gzip levels; one leakguard row per level (default 1)
//   BENCH_GZIP_LEVEL  level for the getHeapSnapshot→createGzip peer (default: zlib's, 6)
//   BENCH_TIMEOUT_S   a run that takes longer is killed and reported (default 600)
//   BENCH_OUT     results file (default benchmark/out/capture-<time>.json; also -latest)
//   BENCH_PEERS may add leakguard-inline-nohist / leakguard-fork-nohist (not in the default set):
//                 the same build with LEAKGUARD_NO_HISTOGRAM=1, no class histogram
//   BENCH_HEARTBEAT_MS  the stall observer's interval (default 5; a gap overstates a stall
//                 by up to one interval, so use 1–2 for fork captures' ~10–20 ms stalls)
//
// Each run is a fresh `node --expose-gc benchmark/capture-child.js` that builds the heap,
// then takes one capture. The child measures the stall (a 5 ms heartbeat and
// monitorEventLoopDelay), its JS thread's CPU time and the time until the file is
// complete; this process polls the child's /proc/<pid>/status (VmRSS, and VmHWM, which the
// child resets through /proc/self/clear_refs just before the capture) for peak memory,
// and for fork captures also the child's own children (RSS and PSS), summed.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const OUT_DIR = path.join(__dirname, 'out')
const MiB = 1024 * 1024

/** Peers, in table order. `floor` is the baseline every ratio is taken against. */
const PEERS = ['floor', 'v8-file', 'v8-gzip', 'heapdump', 'leakguard-inline', 'leakguard-fork']
const EXTRA_PEERS = ['leakguard-inline-nohist', 'leakguard-fork-nohist']

function envList (name, def) {
  const v = process.env[name]
  return (v == null || v.trim() === '' ? def : v).split(',').map((s) => s.trim()).filter(Boolean)
}

function config () {
  const sizes = envList('BENCH_SIZES', '100,500').map(Number)
  const repsList = envList('BENCH_REPS', '5,3').map(Number)
  const reps = sizes.map((_, i) => repsList[Math.min(i, repsList.length - 1)])
  const peers = envList('BENCH_PEERS', PEERS.join(','))
  for (const p of peers) if (!PEERS.includes(p) && !EXTRA_PEERS.includes(p)) throw new Error(`unknown peer ${p}; known: ${PEERS.join(', ')}`)
  if (peers.includes('heapdump')) {
    try {
      require('./peer-heapdump').loadHeapdump() // build it once here, not in a measured child
    } catch (err) {
      console.error(`benchmark: leaving out heapdump, which could not be built here: ${err.message}`)
      peers.splice(peers.indexOf('heapdump'), 1)
    }
  }
  const shapes = envList('BENCH_SHAPES', 'small')
  for (const s of shapes) if (!['small', 'tiny', 'bigarray', 'strings'].includes(s)) throw new Error(`unknown shape ${s}`)
  const levels = envList('BENCH_LEVELS', '1').map(Number)
  const gzipLevel = process.env.BENCH_GZIP_LEVEL ? Number(process.env.BENCH_GZIP_LEVEL) : null
  const timeoutMs = Number(process.env.BENCH_TIMEOUT_S || 600) * 1000
  if (sizes.some((s) => !(s > 0)) || reps.some((r) => !(r >= 1))) throw new Error('BENCH_SIZES and BENCH_REPS must be positive')
  const heartbeatMs = Number(process.env.BENCH_HEARTBEAT_MS) || 5
  return { sizes, reps, peers, shapes, levels, gzipLevel, timeoutMs, heartbeatMs }
}

// --- /proc readings (Linux) ---

function readStatus (pid) {
  try {
    const t = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k) => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t)
      return m ? Number(m[1]) * 1024 : null
    }
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
  } catch {
    return null
  }
}

function readPss (pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

/** All descendants of `pid` (scans /proc: CONFIG_PROC_CHILDREN is not everywhere). */
function descendants (pid) {
  const parent = new Map()
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      parent.set(Number(d), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {}
  }
  const out = []
  const want = new Set([pid])
  let grew = true
  while (grew) {
    grew = false
    for (const [p, pp] of parent) {
      if (want.has(pp) && !want.has(p)) {
        want.add(p)
        out.push(p)
        grew = true
      }
    }
  }
  return out
}

// --- one run ---

function runOne (c, cfg) {
  fs.mkdirSync(OUT_DIR, { recursive: true })
  const out = fs.mkdtempSync(path.join(OUT_DIR, 'run-'))
  const childCfg = { peer: c.peer, sizeMB: c.sizeMB, shape: c.shape, level: c.level, gzipLevel: cfg.gzipLevel, out }
  const forkPeer = c.peer.startsWith('leakguard-fork')
  return new Promise((resolve) => {
    const child = fork(path.join(__dirname, 'capture-child.js'), [JSON.stringify(childCfg)], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, NODE_HEAPDUMP_OPTIONS: 'nosignal', ...(c.peer.endsWith('-nohist') ? { LEAKGUARD_NO_HISTOGRAM: '1' } : {}) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc']
    })
    const pid = child.pid
    let ready = null
    let base = null
    let poll = null
    let tree = null
    let maxRss = 0
    let maxTreeRss = 0
    let maxTreePss = 0
    let settled = false
    const timer = setTimeout(() => finish({ error: { message: `timed out after ${cfg.timeoutMs / 1000} s` } }, true), cfg.timeoutMs)

    const sample = () => {
      const s = readStatus(pid)
      if (s && s.rss > maxRss) maxRss = s.rss
      if (!forkPeer || !s) return
      const kids = descendants(pid)
      let rss = s.rss
      let pss = readPss(pid) ?? 0
      for (const k of kids) {
        const ks = readStatus(k)
        if (ks) rss += ks.rss
        pss += readPss(k) ?? 0
      }
      if (rss > maxTreeRss) maxTreeRss = rss
      if (pss > maxTreePss) maxTreePss = pss
    }

    function finish (done, kill) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (poll) clearInterval(poll)
      const end = readStatus(pid)
      if (kill) {
        for (const k of descendants(pid)) try { process.kill(k, 'SIGKILL') } catch {}
        child.kill('SIGKILL')
      } else if (child.connected) {
        child.send({ type: 'exit' })
      }
      child.once('exit', () => {
        fs.rmSync(out, { recursive: true, force: true })
        const peakRss = ready && ready.hwmReset && end && end.hwm != null ? end.hwm : Math.max(maxRss, end ? end.rss : 0)
        resolve({
          ...c,
          error: done.error || null,
          heapUsed: ready ? ready.heapUsed : null,
          heapTotal: ready ? ready.heapTotal : null,
          objects: ready ? ready.objects : null,
          buildMs: ready ? ready.buildMs : null,
          rssBefore: base ? base.rss : null,
          rssAfter: end ? end.rss : null,
          peakRss,
          peakGrowth: base ? peakRss - base.rss : null,
          polledPeakGrowth: base ? maxRss - base.rss : null,
          peakSource: ready && ready.hwmReset ? 'VmHWM after clear_refs' : 'polled VmRSS',
          treePeakRss: forkPeer ? maxTreeRss : null,
          treePeakPss: forkPeer ? maxTreePss : null,
          completeMs: done.completeMs ?? null,
          stallMs: done.stallMs ?? null,
          eldMaxMs: done.eldMaxMs ?? null,
          stallAtMs: done.stallAtMs ?? null,
          heartbeatMs: done.heartbeatMs ?? null,
          gcs: done.gcs ?? null,
          jsCpuMs: done.jsCpuMs ?? null,
          cpuSource: done.cpuSource ?? null,
          runQueueWaitMs: done.runQueueWaitMs ?? null,
          // Neither running nor waiting for a CPU: blocked (for leakguard inline, mostly V8
          // waiting on a full pipe because gzip fell behind).
          blockedMs: done.completeMs != null && done.runQueueWaitMs != null ? done.completeMs - done.jsCpuMs - done.runQueueWaitMs : null,
          loadAvg: os.loadavg()[0],
          processCpuMs: done.processCpuMs ?? null,
          bytes: done.bytes ?? null,
          leakguard: done.leakguard ?? null
        })
      })
      if (child.exitCode !== null || child.signalCode !== null) child.emit('exit')
    }

    child.on('message', (m) => {
      if (m.type === 'ready') {
        ready = m
        base = readStatus(pid)
        poll = setInterval(sample, forkPeer ? 50 : 20)
        child.send({ type: 'go' })
      } else if (m.type === 'done') {
        sample()
        finish(m, false)
      }
    })
    child.on('exit', (code, signal) => {
      if (!settled) finish({ error: { message: `child exited early (code ${code}, signal ${signal})` } }, false)
    })
  })
}

/** Does this build take fork captures? A tiny capture in a fresh process says. */
function probeFork () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-probe-'))
  const code = `
    require(${JSON.stringify(ROOT)}).capture({ mode: 'fork', fallback: 'none', dir: ${JSON.stringify(dir)} })
      .then((r) => { console.log(JSON.stringify({ ok: r.mode === 'fork', mode: r.mode })) },
            (e) => { console.log(JSON.stringify({ ok: false, code: e.code || null, message: e.message })) })`
  const { execFileSync } = require('node:child_process')
  try {
    const lines = execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60000 }).trim().split('\n')
    return JSON.parse(lines[lines.length - 1])
  } catch (err) {
    return { ok: false, code: err.code || null, message: String(err.message).split('\n')[0] }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// --- schedule, medians ---

function caseKey (c) {
  return `${c.peer}${c.peer.startsWith('leakguard') ? ` L${c.level}` : ''}|${c.shape}|${c.sizeMB}`
}

/** Every (peer, level) for one size and shape; the order rotates with the repetition and
 *  runs backwards on odd repetitions (ABBA: a peer and its neighbour each go first equally
 *  often, so a load that drifts over the run does not favour either, e.g. -nohist pairs). */
function schedule (cfg, forkOk) {
  const kinds = []
  for (const peer of cfg.peers) {
    if (peer.startsWith('leakguard-fork') && !forkOk) continue
    if (peer.startsWith('leakguard')) for (const level of cfg.levels) kinds.push({ peer, level })
    else kinds.push({ peer, level: null })
  }
  const runs = []
  const maxReps = Math.max(...cfg.reps)
  for (let rep = 0; rep < maxReps; rep++) {
    cfg.sizes.forEach((sizeMB, si) => {
      if (rep >= cfg.reps[si]) return
      for (const shape of cfg.shapes) {
        const k = kinds.length
        const ks = rep % 2 ? [...kinds].reverse() : kinds
        const turn = rep >> 1
        for (let j = 0; j < k; j++) runs.push({ ...ks[(j + turn) % k], sizeMB, shape, rep })
      }
    })
  }
  return runs
}

function median (xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

const METRICS = ['stallMs', 'eldMaxMs', 'jsCpuMs', 'runQueueWaitMs', 'blockedMs', 'loadAvg', 'processCpuMs', 'peakGrowth', 'polledPeakGrowth', 'completeMs', 'bytes',
  'heapUsed', 'rssBefore', 'rssAfter', 'treePeakRss', 'treePeakPss']

function summarize (runs) {
  const groups = new Map()
  for (const r of runs) {
    const k = caseKey(r)
    if (!groups.has(k)) groups.set(k, [])
    groups.get(k).push(r)
  }
  const rows = []
  for (const [key, rs] of groups) {
    const ok = rs.filter((r) => !r.error)
    const row = { key, peer: rs[0].peer, level: rs[0].level, shape: rs[0].shape, sizeMB: rs[0].sizeMB, n: ok.length, errors: rs.filter((r) => r.error).map((r) => r.error.message) }
    for (const m of METRICS) row[m] = median(ok.map((r) => r[m]))
    row.rawBytes = median(ok.map((r) => r.leakguard && r.leakguard.rawBytes))
    row.lgStallMs = median(ok.map((r) => r.leakguard && r.leakguard.stallMs))
    row.compressLagMs = median(ok.map((r) => r.leakguard && r.leakguard.phases && r.leakguard.phases.compressLagMs))
    row.takeMs = median(ok.map((r) => r.leakguard && r.leakguard.phases && r.leakguard.phases.takeMs))
    row.fsyncMs = median(ok.map((r) => r.leakguard && r.leakguard.phases && r.leakguard.phases.fsyncMs))
    row.growthPerHeapUsed = median(ok.map((r) => r.peakGrowth / r.heapUsed))
    // The stall without the time the JS thread waited for a CPU: what it would be on an idle
    // machine. The wait is counted until the file is complete; for the peers that block
    // the thread until then, and for leakguard (its thread sleeps after the stall, and a
    // sleeping thread does not wait for a CPU), that is the stall's own wait; the
    // createGzip peer keeps working after its stall, so its figure reads low.
    // A fork capture's JS thread runs on while the child works: its CPU wait is not the
    // stall's, so there is no such estimate for it.
    const busy = (r, t) => (r.runQueueWaitMs == null || r.peer.startsWith('leakguard-fork') ? null : t - r.runQueueWaitMs)
    row.busyMs = median(ok.map((r) => busy(r, r.stallMs)))
    row.busyCompleteMs = median(ok.map((r) => busy(r, r.completeMs)))
    row.treeGrowthPss = median(ok.map((r) => (r.treePeakPss == null ? null : r.treePeakPss - r.rssBefore)))
    rows.push(row)
  }
  // Ratios against the floor of the same size and shape.
  for (const row of rows) {
    const floor = rows.find((r) => r.peer === 'floor' && r.shape === row.shape && r.sizeMB === row.sizeMB)
    row.stallRatio = floor && floor.stallMs && row.stallMs != null ? row.stallMs / floor.stallMs : null
    row.completeRatio = floor && floor.completeMs && row.completeMs != null ? row.completeMs / floor.completeMs : null
    row.cpuRatio = floor && floor.jsCpuMs && row.jsCpuMs != null ? row.jsCpuMs / floor.jsCpuMs : null
    row.busyRatio = floor && floor.busyMs && row.busyMs != null ? row.busyMs / floor.busyMs : null
    row.busyCompleteRatio = floor && floor.busyCompleteMs && row.busyCompleteMs != null ? row.busyCompleteMs / floor.busyCompleteMs : null
  }
  return rows
}

function machine () {
  const cpus = os.cpus()
  return {
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0] ? cpus[0].model.trim() : 'unknown',
    cores: cpus.length,
    memBytes: os.totalmem(),
    loadAvgAtStart: os.loadavg()
  }
}

async function main () {
  const cfg = config()
  const forkProbe = cfg.peers.some((p) => p.startsWith('leakguard-fork')) ? probeFork() : { ok: false, message: 'not requested' }
  const runs = schedule(cfg, forkProbe.ok)
  const startedAt = new Date().toISOString()
  console.error(`capture benchmark: ${runs.length} runs; fork capture: ${forkProbe.ok ? 'available' : `not available in this build (${forkProbe.code || forkProbe.message})`}`)
  const results = []
  for (const [i, c] of runs.entries()) {
    const t = Date.now()
    const r = await runOne(c, cfg)
    results.push(r)
    console.error(`[${i + 1}/${runs.length}] ${caseKey(c)} rep ${c.rep}: ` +
      (r.error ? `error: ${r.error.message}` : `stall ${r.stallMs.toFixed(0)} ms, complete ${r.completeMs.toFixed(0)} ms, ` +
        `peak +${(r.peakGrowth / MiB).toFixed(0)} MiB (${(r.peakGrowth / r.heapUsed).toFixed(2)}× heapUsed ${(r.heapUsed / MiB).toFixed(0)} MiB), ` +
        `cpu ${r.jsCpuMs.toFixed(0)} ms, cpu wait ${r.runQueueWaitMs.toFixed(0)} ms, blocked ${r.blockedMs.toFixed(0)} ms`) + ` [${((Date.now() - t) / 1000).toFixed(1)} s]`)
  }
  const report = {
    benchmark: 'capture',
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: { ...machine(), loadAvgAtEnd: os.loadavg() },
    config: { ...cfg, fork: forkProbe },
    summary: summarize(results),
    runs: results
  }
  const stamp = startedAt.replace(/[-:]/g, '').replace(/\..*/, '')
  const file = process.env.BENCH_OUT || path.join(OUT_DIR, `capture-${stamp}.json`)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  fs.writeFileSync(path.join(OUT_DIR, 'capture-latest.json'), JSON.stringify(report, null, 2) + '\n')
  console.log(require('./readme').renderCapture(report))
  console.error(`results: ${path.relative(process.cwd(), file)}`)
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { median, schedule, summarize, caseKey }
