'use strict'
// One benchmark run in a fresh process: build a heap, take one capture with one peer,
// report what an independent observer in this process saw. Spawned by capture.js with
// `--expose-gc` and an IPC channel; never run on its own.
//
// Protocol: child → {type:'ready', …} ; parent → {type:'go'} (after it has read the
// baseline from /proc) ; child → {type:'done', …} ; parent → {type:'exit'} (after its
// last /proc reading, so VmHWM is read while the process still exists).
//
// What is measured here (the parent measures memory from /proc/<pid>/status):
// - stall: the longest gap between heartbeats of a 5 ms setInterval, from just before the
//   capture starts until the file is complete, and monitorEventLoopDelay's max as a check;
// - JS-thread CPU: this thread's run time from /proc/thread-self/schedstat (ns), or
//   process.threadCpuUsage where Node has it, or utime+stime of /proc/thread-self/stat;
//   and from schedstat too, how long the thread waited for a CPU (contention);
// - time until the file is complete (ms from the start of the call), output size.

const fs = require('node:fs')
const path = require('node:path')
const v8 = require('node:v8')
const zlib = require('node:zlib')
const { pipeline } = require('node:stream/promises')
const { performance, monitorEventLoopDelay, PerformanceObserver } = require('node:perf_hooks')

const MiB = 1024 * 1024
const HEARTBEAT_MS = Number(process.env.BENCH_HEARTBEAT_MS) || 5

const cfg = JSON.parse(process.argv[2])
const retained = [] // the heap under test: kept alive until exit
// Loaded before the measurement starts, so loading an addon is not timed.
const heapdump = cfg.peer === 'heapdump' ? require('./peer-heapdump').loadHeapdump() : null
// '-nohist' peers: the same build with LEAKGUARD_NO_HISTOGRAM=1 (set by capture.js), to
// measure what counting classes on the capture thread costs.
const leakguard = cfg.peer.startsWith('leakguard') ? require('..') : null

// heapUsed per small object below, measured on Node 20 (48 B object, 8 B array slot, a
// quarter of a ~24 B string). The heap is built by count, not until heapUsed reaches the
// target, so that every peer sees the same heap (a heapUsed check sees uncollected
// garbage, and heaps then differed by 6 %).
const BYTES_PER_OBJECT = 62

/** Many small objects (3 properties, a quarter with a unique short string), ~targetBytes. */
function buildSmall (targetBytes) {
  const tags = Array.from({ length: 64 }, (_, i) => `tag-${i}`)
  const total = Math.round(targetBytes / BYTES_PER_OBJECT)
  let i = 0
  while (i < total) {
    const chunk = new Array(Math.min(50000, total - i))
    let prev = null
    for (let k = 0; k < chunk.length; k++, i++) {
      prev = chunk[k] = { id: i, name: (i & 3) === 0 ? `u${i}` : tags[i & 63], next: prev }
    }
    retained.push(chunk)
  }
  return i
}

/**
 * Tiny objects `{ a, b }` (40 B, and an 8 B array slot): the most objects per byte, the
 * shape of the tests' fixtures (__test__/fixtures), the worst case for snapshot memory.
 */
function buildTiny (targetBytes) {
  const total = Math.round(targetBytes / 48)
  let i = 0
  while (i < total) {
    const chunk = new Array(Math.min(50000, total - i))
    for (let k = 0; k < chunk.length; k++, i++) chunk[k] = { a: i, b: null }
    retained.push(chunk)
  }
  return i
}

/**
 * The same tiny objects held by one array (a cache, a queue, a test fixture's `keep`):
 * the worst shape measured. A snapshot costs ~30× heapUsed here against ~8× for the same
 * objects in arrays of 50,000.
 */
function buildBigArray (targetBytes) {
  const total = Math.round(targetBytes / 48)
  const all = new Array(total)
  for (let i = 0; i < total; i++) all[i] = { a: i, b: null }
  retained.push(all)
  return total
}

/**
 * Big strings: 512 KiB each, unique contents, ~targetBytes. (Node makes strings of more
 * than ~1 MB decoded from a Buffer external, outside heapUsed; these stay on the heap.)
 */
function buildStrings (targetBytes) {
  const crypto = require('node:crypto')
  const total = Math.round(targetBytes / (MiB / 2))
  for (let n = 0; n < total; n++) retained.push(crypto.randomBytes(MiB / 4).toString('hex'))
  return total
}

/** Milliseconds this thread was runnable but waited for a CPU (schedstat), or NaN. */
function runQueueWaitMs () {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1]) / 1e6
  } catch {
    return NaN
  }
}

/** This thread's CPU time in ms, and where it came from. */
function threadCpuMs () {
  if (typeof process.threadCpuUsage === 'function') {
    const u = process.threadCpuUsage()
    return { ms: (u.user + u.system) / 1000, source: 'process.threadCpuUsage' }
  }
  try {
    const ns = Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0])
    if (ns > 0) return { ms: ns / 1e6, source: 'schedstat' }
  } catch {}
  try {
    const f = fs.readFileSync('/proc/thread-self/stat', 'utf8')
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ')
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field.
    return { ms: (Number(rest[11]) + Number(rest[12])) * 10, source: 'stat (10 ms ticks)' }
  } catch {}
  return { ms: NaN, source: 'none' }
}

function fileBytes (p) {
  try {
    return fs.statSync(p).size
  } catch {
    return null
  }
}

/** Runs one capture with the named peer. Resolves when the file is complete. */
async function runPeer (peer, out) {
  switch (peer) {
    case 'floor':
      v8.writeHeapSnapshot('/dev/null')
      return { bytes: null }
    case 'v8-file': {
      const p = path.join(out, 'snap.heapsnapshot')
      v8.writeHeapSnapshot(p)
      return { bytes: fileBytes(p) }
    }
    case 'v8-gzip': {
      const p = path.join(out, 'snap.heapsnapshot.gz')
      const opts = cfg.gzipLevel == null ? {} : { level: cfg.gzipLevel }
      await pipeline(v8.getHeapSnapshot(), zlib.createGzip(opts), fs.createWriteStream(p))
      return { bytes: fileBytes(p) }
    }
    case 'heapdump': {
      const p = path.join(out, 'snap.heapsnapshot')
      let err = null
      heapdump.writeSnapshot(p, (e) => { err = e })
      if (err) throw err
      return { bytes: fileBytes(p) }
    }
    case 'leakguard-inline':
    case 'leakguard-fork':
    case 'leakguard-inline-nohist':
    case 'leakguard-fork-nohist': {
      const mode = peer.startsWith('leakguard-fork') ? 'fork' : 'inline'
      // force: this measures the capture, not the headroom check, which is sized for the
      // worst heap shape and refuses a ~500 MB heap without ~18.5 GiB available.
      const opts = { dir: out, mode, level: cfg.level, maxSnapshots: 1000, force: true }
      if (mode === 'fork') opts.fallback = 'none'
      const r = await leakguard.capture(opts)
      if (r.mode !== mode) throw new Error(`asked for a ${mode} capture, got ${r.mode} (${r.modeReason})`)
      if ((r.classes === null) !== peer.endsWith('-nohist')) throw new Error(`${peer}: classes ${r.classes === null ? 'missing' : 'present'}`)
      return { bytes: r.bytes, leakguard: r }
    }
    default:
      throw new Error(`unknown peer ${peer}`)
  }
}

async function main () {
  const target = cfg.sizeMB * MiB
  const tb = performance.now()
  const build = { small: buildSmall, tiny: buildTiny, bigarray: buildBigArray, strings: buildStrings }[cfg.shape]
  const count = build(target)
  global.gc()
  global.gc()
  const buildMs = performance.now() - tb
  await new Promise((resolve) => setTimeout(resolve, 200))

  // Reset VmHWM to the current RSS so the parent reads this capture's peak, not the build's.
  let hwmReset = false
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5')
    hwmReset = true
  } catch {}

  const mu = process.memoryUsage()
  process.send({ type: 'ready', heapUsed: mu.heapUsed, heapTotal: mu.heapTotal, rss: mu.rss, objects: count, buildMs, hwmReset })
  await new Promise((resolve) => process.once('message', resolve))

  // The independent observer: a heartbeat and Node's loop-delay histogram.
  const eld = monitorEventLoopDelay({ resolution: 10 })
  let last = performance.now()
  let maxGap = 0
  let maxGapAt = 0 // when the longest gap began, ms after the call
  let t0 = 0
  const beat = setInterval(() => {
    const now = performance.now()
    if (now - last > maxGap) {
      maxGap = now - last
      maxGapAt = last - t0
    }
    last = now
  }, HEARTBEAT_MS)
  // This process's own GCs during the capture: in fork mode a GC while the child lives
  // pays copy-on-write faults, and that, not the fork, can be the longest stall.
  const gcs = []
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ at: e.startTime - t0, kind: e.detail ? e.detail.kind : e.kind, ms: e.duration })
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  eld.enable()
  await new Promise((resolve) => setTimeout(resolve, 50))

  const cpu0 = threadCpuMs()
  const wait0 = runQueueWaitMs()
  const pcpu0 = process.cpuUsage()
  last = performance.now()
  maxGap = 0
  t0 = performance.now()
  gcs.length = 0
  let result
  let error = null
  try {
    result = await runPeer(cfg.peer, cfg.out)
  } catch (err) {
    error = { message: err.message, code: err.code }
  }
  const completeMs = performance.now() - t0
  const cpu1 = threadCpuMs()
  const wait1 = runQueueWaitMs()
  const pcpu = process.cpuUsage(pcpu0)
  // One more beat, so a stall that ends with the call is seen by the heartbeat.
  await new Promise((resolve) => setTimeout(resolve, 3 * HEARTBEAT_MS))
  clearInterval(beat)
  eld.disable()
  gcObserver.disconnect()

  const after = process.memoryUsage()
  process.send({
    type: 'done',
    error,
    completeMs,
    stallMs: maxGap,
    stallAtMs: maxGapAt,
    heartbeatMs: HEARTBEAT_MS,
    gcs: gcs.filter((g) => g.at >= 0 && g.at <= completeMs).map((g) => ({ at: Math.round(g.at), kind: g.kind, ms: Math.round(g.ms * 10) / 10 })),
    eldMaxMs: eld.max / 1e6,
    jsCpuMs: cpu1.ms - cpu0.ms,
    cpuSource: cpu1.source,
    // Time the JS thread was ready to run but other threads (here or in other processes)
    // had the CPUs: on a shared machine this is the part of a stall nobody's code caused.
    runQueueWaitMs: wait1 - wait0,
    processCpuMs: (pcpu.user + pcpu.system) / 1000,
    bytes: result ? result.bytes : null,
    leakguard: result && result.leakguard ? pick(result.leakguard) : null,
    rssAfter: after.rss,
    heapUsedAfter: after.heapUsed
  })
  await new Promise((resolve) => process.once('message', resolve))
  process.exit(0)
}

function pick (r) {
  return { mode: r.mode, bytes: r.bytes, rawBytes: r.rawBytes, level: r.level, stallMs: r.stallMs, durationMs: r.durationMs, phases: r.phases, fork: r.fork }
}

main().catch((err) => {
  process.send({ type: 'done', error: { message: err.stack || String(err), code: err.code } })
  process.exit(1)
})
