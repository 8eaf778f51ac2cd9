'use strict'
// The JS-thread half of sampling: read what only the JS thread can read (process and V8
// figures, GC observer entries, event-loop delay and utilization) into a Float64Array laid
// out as the Rust monitor's sample (binding.sampleFields()). No statistics here.

const v8 = require('node:v8')
const os = require('node:os')
const { PerformanceObserver, monitorEventLoopDelay, performance, constants } = require('node:perf_hooks')

const { binding } = require('./native')

const FIELDS = binding.sampleFields()
/** Index of each figure in a sample array, by its JS name. */
const F = Object.freeze(Object.fromEntries(FIELDS.map((n, i) => [n, i])))
const MiB = 1024 * 1024
/** Event-loop delay histogram resolution, ms (Node's default). */
const LOOP_RESOLUTION_MS = 10

const { NODE_PERFORMANCE_GC_MAJOR: MAJOR, NODE_PERFORMANCE_GC_MINOR: MINOR, NODE_PERFORMANCE_GC_INCREMENTAL: INCREMENTAL, NODE_PERFORMANCE_GC_WEAKCB: WEAKCB } = constants

/**
 * The young generation's share of `heap_size_limit`, bytes: V8 sizes the heap as the
 * old-generation limit plus 3 semi-spaces (two semi-spaces and the new large-object space),
 * 48 MiB by default on 64-bit Node 20 whatever --max-old-space-size says (checked for
 * 32–2048 MiB; HEURISTICS.md). An explicit --max-old-space-size or --max-semi-space-size wins.
 */
function youngReserve (heapSizeLimit) {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS || '').split(/\s+/)]
  let old = 0
  let semi = 0
  for (const f of flags) {
    const m = /^--max[-_]old[-_]space[-_]size=(\d+)$/.exec(f)
    if (m) old = Number(m[1]) * MiB
    const s = /^--max[-_]semi[-_]space[-_]size=(\d+)$/.exec(f)
    if (s) semi = Number(s[1]) * MiB
  }
  if (old > 0 && old < heapSizeLimit) return heapSizeLimit - old
  if (semi > 0) return 3 * semi
  return 48 * MiB
}

/** The memory the process may use, bytes: the cgroup limit when there is one, else RAM. */
function memoryLimit () {
  const total = os.totalmem()
  const c = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0
  return c > 0 && c < total ? c : total
}

/** Old-space usage: every space but the young generation's (HEURISTICS.md). */
function oldSpaceUsed () {
  let used = 0
  for (const s of v8.getHeapSpaceStatistics()) {
    if (s.space_name !== 'new_space' && s.space_name !== 'new_large_object_space') used += s.space_used_size
  }
  return used
}

/**
 * Process-wide GC totals from one PerformanceObserver: counts and pause time by kind,
 * marking time (from an incremental-marking entry to the major GC that ends it) and the
 * old-space floor read after each batch that holds a major GC.
 */
class GcTracker {
  constructor () {
    this.count = { minor: 0, major: 0, incremental: 0, weak: 0 }
    this.ms = { minor: 0, major: 0, incremental: 0, weak: 0 }
    this.markingMs = 0
    this.markStart = null
    this.floor = NaN
    this.listener = null
    this.users = 0
    this.observer = null
  }

  acquire () {
    if (this.users++ === 0) {
      this.observer = new PerformanceObserver((list) => this._batch(list.getEntries()))
      this.observer.observe({ entryTypes: ['gc'] })
    }
  }

  release () {
    if (--this.users === 0) {
      this.observer.disconnect()
      this.observer = null
    }
  }

  pauseMs () {
    return this.ms.minor + this.ms.major + this.ms.incremental + this.ms.weak
  }

  _batch (entries) {
    let majors = 0
    for (const e of entries) {
      const kind = e.detail ? e.detail.kind : e.kind
      const d = e.duration
      if (kind === MAJOR) {
        this.count.major++
        this.ms.major += d
        this.markingMs += this.markStart === null ? d : Math.max(0, e.startTime + d - this.markStart)
        this.markStart = null
        majors++
      } else if (kind === INCREMENTAL) {
        this.count.incremental++
        this.ms.incremental += d
        if (this.markStart === null) this.markStart = e.startTime
      } else if (kind === WEAKCB) {
        this.count.weak++
        this.ms.weak += d
      } else {
        // MINOR (scavenge) and V8's minor mark-compact.
        this.count.minor++
        this.ms.minor += d
      }
    }
    if (majors === 0) return
    this.floor = oldSpaceUsed()
    if (this.listener) this.listener(Date.now(), this.floor)
  }
}

const gc = new GcTracker()

/** Reads samples into a Float64Array; owns the loop-delay and ELU windows. */
class Sampler {
  constructor () {
    this.buf = new Float64Array(FIELDS.length)
    this.eld = null
    this.elu = null
    this.prevTime = 0
    const h = v8.getHeapStatistics()
    this.young = youngReserve(h.heap_size_limit)
    this.memLimit = memoryLimit()
    this.started = false
  }

  start () {
    if (this.started) return
    this.started = true
    gc.acquire()
    this.eld = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
    this.eld.enable()
    this.elu = performance.eventLoopUtilization()
    this.prevTime = Date.now()
  }

  stop () {
    if (!this.started) return
    this.started = false
    gc.release()
    this.eld.disable()
    this.eld = null
  }

  /**
   * Fill and return the sample array. `advance` ends the loop-delay and ELU windows here
   * (the monitor's tick); without it the windows are only peeked at.
   */
  read (advance) {
    const a = this.buf
    const now = Date.now()
    const m = process.memoryUsage()
    const h = v8.getHeapStatistics()
    a[F.time] = now
    a[F.rss] = m.rss
    a[F.heapTotal] = m.heapTotal
    a[F.heapUsed] = m.heapUsed
    a[F.external] = m.external
    a[F.arrayBuffers] = m.arrayBuffers
    a[F.heapSizeLimit] = h.heap_size_limit
    a[F.totalAvailableSize] = h.total_available_size
    a[F.mallocedMemory] = h.malloced_memory
    a[F.numberOfNativeContexts] = h.number_of_native_contexts
    a[F.numberOfDetachedContexts] = h.number_of_detached_contexts
    a[F.youngGenerationReserve] = this.young
    a[F.oldGenerationLimit] = Math.max(0, h.heap_size_limit - this.young)
    a[F.memoryLimit] = this.memLimit
    a[F.gcMinorCount] = gc.count.minor
    a[F.gcMajorCount] = gc.count.major
    a[F.gcIncrementalCount] = gc.count.incremental
    a[F.gcWeakCallbacksCount] = gc.count.weak
    a[F.gcMinorMs] = gc.ms.minor
    a[F.gcMajorMs] = gc.ms.major
    a[F.gcIncrementalMs] = gc.ms.incremental
    a[F.gcWeakCallbacksMs] = gc.ms.weak
    a[F.gcMarkingMs] = gc.markingMs
    a[F.majorFloorBytes] = gc.floor
    const eld = this.eld
    if (eld && eld.count > 0) {
      a[F.loopDelayP50Ms] = Math.max(0, eld.percentile(50) / 1e6 - LOOP_RESOLUTION_MS)
      a[F.loopDelayP99Ms] = Math.max(0, eld.percentile(99) / 1e6 - LOOP_RESOLUTION_MS)
      a[F.loopDelayMaxMs] = Math.max(0, eld.max / 1e6 - LOOP_RESOLUTION_MS)
    } else {
      a[F.loopDelayP50Ms] = a[F.loopDelayP99Ms] = a[F.loopDelayMaxMs] = NaN
    }
    const cur = this.elu ? performance.eventLoopUtilization(this.elu) : null
    a[F.elu] = cur ? cur.utilization : NaN
    a[F.windowMs] = this.prevTime ? now - this.prevTime : NaN
    if (advance) {
      if (eld) eld.reset()
      if (this.elu) this.elu = performance.eventLoopUtilization()
      this.prevTime = now
    }
    return a
  }
}

const num = (v) => (Number.isNaN(v) ? null : v)

/** The public MemorySample for a sample array at `o` (Node's names; bytes and ms). */
function toSample (a, o = 0) {
  return {
    time: a[o + F.time],
    rss: a[o + F.rss],
    heapTotal: a[o + F.heapTotal],
    heapUsed: a[o + F.heapUsed],
    external: a[o + F.external],
    arrayBuffers: a[o + F.arrayBuffers],
    heapSizeLimit: a[o + F.heapSizeLimit],
    totalAvailableSize: a[o + F.totalAvailableSize],
    mallocedMemory: a[o + F.mallocedMemory],
    numberOfNativeContexts: a[o + F.numberOfNativeContexts],
    numberOfDetachedContexts: a[o + F.numberOfDetachedContexts],
    oldGenerationLimit: a[o + F.oldGenerationLimit],
    youngGenerationReserve: a[o + F.youngGenerationReserve],
    memoryLimit: a[o + F.memoryLimit],
    gc: {
      minor: { count: a[o + F.gcMinorCount], pauseMs: a[o + F.gcMinorMs] },
      major: { count: a[o + F.gcMajorCount], pauseMs: a[o + F.gcMajorMs] },
      incremental: { count: a[o + F.gcIncrementalCount], pauseMs: a[o + F.gcIncrementalMs] },
      weakCallbacks: { count: a[o + F.gcWeakCallbacksCount], pauseMs: a[o + F.gcWeakCallbacksMs] },
      markingMs: a[o + F.gcMarkingMs],
      majorFloorBytes: num(a[o + F.majorFloorBytes])
    },
    loopDelay: { p50Ms: num(a[o + F.loopDelayP50Ms]), p99Ms: num(a[o + F.loopDelayP99Ms]), maxMs: num(a[o + F.loopDelayMaxMs]) },
    elu: num(a[o + F.elu]),
    windowMs: num(a[o + F.windowMs])
  }
}

module.exports = { Sampler, GcTracker, gc, toSample, F, FIELDS, youngReserve, oldSpaceUsed }
