'use strict'
// Live allocation sites (issue #10). V8's sampling heap profiler runs in an in-process
// inspector.Session (HeapProfiler.startSampling) while the guard runs; the JS thread only
// reads the profile — every few verdict intervals, and on demand — and hands a compact form
// (interned frames once, then per read typed arrays of nodes and samples) to Rust
// (src/sites/), which keeps the bounded history per site and judges growth.
//
// What one read costs: V8's inspector agent starts the profiler with kSamplingForceGC, so
// every getSamplingProfile runs a full, non-incremental major GC on this thread before it
// answers (measured: ~150–190 ms at ~100 MB of live heap, 1.4–1.9 s at ~1 GB; the JSON
// itself is ~100 KB / 1 MB and parses in < 1 ms / ~30 ms). Automatic reads therefore keep a
// budget: at most MAX_DUTY of wall time, and none while the next read is predicted to take
// longer than `maxReadMs` (the prediction scales the last read's time with heapUsed).
// report() and allocationProfile() always read: the caller asked. docs/allocations.md.
//
// Coexistence: the sampling profiler is one per isolate. Before starting, a probe read says
// whether someone (a debugger, an APM agent, --heap-prof) already runs it: then the state is
// 'unavailable' and nothing of theirs is touched. If another session stops it while we run,
// the next read fails: 'unavailable' again, and stop() leaves it alone.
// Worker threads: an inspector.Session samples the isolate of the thread that made it, so a
// guard started in a worker samples that worker's heap.

const V = require('./validate')
const { invalidOption } = require('./errors')
const { binding, call } = require('./native')

const ALLOCATION_KEYS = ['samplingInterval', 'stackDepth', 'readIntervals', 'maxReadMs', 'maxDuty']
const DEFAULTS = Object.freeze({
  /**
   * Bytes between samples on average. 128 KiB: server CPU per request rose ~8 % at 32 KiB
   * (V8's inspector default), ~20 % at 8 KiB, and was within noise at 512 KiB
   * (benchmark/allocations.js; docs/allocations.md has the run that chose this).
   */
  samplingInterval: 131072,
  /** Frames per site, leaf first. */
  stackDepth: 16,
  /** Automatic reads every this many verdict intervals (1 min at the default 10 s). */
  readIntervals: 6,
  /** No automatic read predicted to stall the loop longer than this, ms. */
  maxReadMs: 250,
  /** Automatic reads take at most this fraction of wall time (their forced GC included). */
  maxDuty: 0.005
})
const MAX_DUTY = DEFAULTS.maxDuty
/** Sites in a report, and in the metrics. */
const REPORT_SITES = 20

/** The allocations option: false, or the normalized settings. */
function normalizeAllocationsOptions (value, defaultOn) {
  if (value === undefined) value = defaultOn
  if (value === false) return false
  if (value === true) return { ...DEFAULTS }
  const o = V.plainObject(value, 'allocations')
  V.knownKeys(o, ALLOCATION_KEYS, 'allocations')
  return {
    samplingInterval: V.optNumber(o, 'samplingInterval', { name: 'allocations.samplingInterval', min: 1024, max: 1 << 30, integer: true }) ?? DEFAULTS.samplingInterval,
    stackDepth: V.optNumber(o, 'stackDepth', { name: 'allocations.stackDepth', min: 1, max: 64, integer: true }) ?? DEFAULTS.stackDepth,
    readIntervals: V.optNumber(o, 'readIntervals', { name: 'allocations.readIntervals', min: 1, max: 10000, integer: true }) ?? DEFAULTS.readIntervals,
    maxReadMs: V.optNumber(o, 'maxReadMs', { name: 'allocations.maxReadMs', min: 1, max: 3600e3 }) ?? DEFAULTS.maxReadMs,
    maxDuty: V.optNumber(o, 'maxDuty', { name: 'allocations.maxDuty', min: 1e-6, max: 1 }) ?? DEFAULTS.maxDuty
  }
}

/** Post to an in-process session; its answer comes back synchronously. Throws its error. */
function postSync (session, method, params) {
  let done = false
  let error = null
  let result
  session.post(method, params || {}, (err, res) => { done = true; error = err; result = res })
  if (!done) throw new Error(`the inspector answered ${method} asynchronously`)
  if (error) throw error
  return result
}

class AllocationSampler {
  /**
   * @param {object} opts normalized allocations options
   * @param {{ intervalMs: number, windowMs: number }} timing the verdict's
   */
  constructor (opts, timing) {
    this.opts = opts
    this.timing = timing
    this.state = 'off'
    this.reason = null
    this.session = null
    this.native = null
    this.frameIds = new Map()
    this.timer = null
    this.reads = 0
    this.lastReadAt = null
    this.lastReadMs = null
    this.lastHeapUsed = 0
    this.paused = null
    this.cache = null
    this.readError = null
  }

  start () {
    if (this.state !== 'off') return this
    let inspector
    try {
      inspector = require('node:inspector')
      this.session = new inspector.Session()
      this.session.connect()
    } catch (err) {
      return this._unavailable(`no in-process inspector session (${err && err.code ? err.code : err && err.message})`)
    }
    // Someone else's profiler answers a read; ours is not started yet, so a read that
    // succeeds means a debugger, an APM agent or --heap-prof owns it. Not running, the
    // probe costs nothing (no profile, no GC).
    try {
      postSync(this.session, 'HeapProfiler.getSamplingProfile')
      return this._unavailable('another inspector session already runs the sampling heap profiler (a debugger, an APM agent or --heap-prof): leakguard leaves it alone')
    } catch {}
    try {
      postSync(this.session, 'HeapProfiler.startSampling', { samplingInterval: this.opts.samplingInterval })
    } catch (err) {
      return this._unavailable(`HeapProfiler.startSampling failed: ${err && err.message}`)
    }
    this.native = call((o) => new binding.NativeSites(o), {
      depth: this.opts.stackDepth,
      windowMs: this.timing.windowMs,
      cwd: process.cwd(),
      samplingInterval: this.opts.samplingInterval
    })
    this.state = 'sampling'
    const every = this.timing.intervalMs * this.opts.readIntervals
    this.timer = setInterval(() => this._auto(), every).unref()
    return this
  }

  _unavailable (reason) {
    this.state = 'unavailable'
    this.reason = reason
    if (this.session && !this.native) {
      try { this.session.disconnect() } catch {}
      this.session = null
    }
    return this
  }

  /** The predicted stall of a read now, ms (the last read's, scaled by heapUsed). */
  predictedReadMs () {
    if (this.lastReadMs == null) return null
    const used = process.memoryUsage().heapUsed
    return this.lastReadMs * Math.max(1, used / Math.max(1, this.lastHeapUsed))
  }

  /** An automatic read, within the budget; never throws. */
  _auto () {
    if (this.state !== 'sampling') return
    const now = Date.now()
    const predicted = this.predictedReadMs()
    if (predicted != null && predicted > this.opts.maxReadMs) {
      this.paused = `a read forces a full GC, predicted at ${Math.round(predicted)} ms > maxReadMs ${this.opts.maxReadMs}: automatic reads wait (report() still reads)`
      return
    }
    const duty = this.opts.maxDuty
    if (this.lastReadMs != null && now - this.lastReadAt < this.lastReadMs / duty) {
      this.paused = `duty cap: the last read took ${Math.round(this.lastReadMs)} ms; reads stay under ${duty * 100} % of the time`
      return
    }
    this.paused = null
    try { this.read() } catch {}
  }

  /** Read the profile now and hand it to Rust. Returns false when not sampling. */
  read () {
    if (this.state !== 'sampling') return false
    const t0 = performance.now()
    let res
    try {
      res = postSync(this.session, 'HeapProfiler.getSamplingProfile')
    } catch (err) {
      // Stopped under us: another session's stopSampling (a debugger, an APM agent).
      this._unavailable(`the sampling heap profiler was stopped by another inspector session (${err && err.message}); leakguard does not restart it`)
      this._teardown(false)
      return false
    }
    this._push(res.profile, Date.now())
    this.lastReadMs = performance.now() - t0
    this.lastReadAt = Date.now()
    this.lastHeapUsed = process.memoryUsage().heapUsed
    this.reads++
    this.cache = null
    return true
  }

  /** Walk the tree in pre-order, intern new frames, hand typed arrays to Rust. */
  _push (profile, now) {
    const ids = []
    const parents = []
    const frames = []
    const selfBytes = []
    const newFrames = { names: [], urls: [], scriptIds: [], lines: [], columns: [] }
    const stack = [profile.head, -1]
    while (stack.length) {
      const parent = stack.pop()
      const node = stack.pop()
      const cf = node.callFrame
      const key = `${cf.scriptId}\0${cf.url}\0${cf.lineNumber}\0${cf.columnNumber}\0${cf.functionName}`
      let fid = this.frameIds.get(key)
      if (fid === undefined) {
        fid = this.frameIds.size
        this.frameIds.set(key, fid)
        newFrames.names.push(cf.functionName || '')
        newFrames.urls.push(cf.url || '')
        newFrames.scriptIds.push(Number(cf.scriptId) || 0)
        newFrames.lines.push(cf.lineNumber >= 0 ? cf.lineNumber + 1 : 0)
        newFrames.columns.push(cf.columnNumber >= 0 ? cf.columnNumber + 1 : 0)
      }
      const index = ids.length
      ids.push(node.id)
      parents.push(parent)
      frames.push(fid)
      selfBytes.push(node.selfSize)
      const kids = node.children
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i], index)
    }
    if (newFrames.names.length) {
      this.native.addFrames(newFrames.names, newFrames.urls, Uint32Array.from(newFrames.scriptIds), Uint32Array.from(newFrames.lines), Uint32Array.from(newFrames.columns))
    }
    const s = profile.samples || []
    const samples = new Float64Array(s.length * 3)
    for (let i = 0; i < s.length; i++) {
      samples[3 * i] = s[i].size
      samples[3 * i + 1] = s[i].nodeId
      samples[3 * i + 2] = s[i].ordinal
    }
    this.native.push(now, Uint32Array.from(ids), Int32Array.from(parents), Uint32Array.from(frames), Float64Array.from(selfBytes), samples)
  }

  /** Sites, growing first (cached per read and heap slope). */
  sites (heapSlope, limit = REPORT_SITES) {
    if (!this.native) return []
    const slope = Number.isFinite(heapSlope) ? heapSlope : 0
    const c = this.cache
    if (c && c.slope === slope && c.limit >= limit) return c.sites.slice(0, limit)
    const sites = this.native.report(slope, limit).map(publicSite)
    this.cache = { slope, limit, sites }
    return sites.slice(0, limit)
  }

  /** The profile as a file or a Buffer; reads first so it is current. */
  async profile (format, path) {
    if (this.state === 'sampling') this.read()
    if (!this.native || this.reads === 0) {
      const { coded } = require('./errors')
      throw coded(Error, 'ALLOCATIONS_UNAVAILABLE', `leakguard: no allocation profile: ${this.reason || 'allocation sampling is off (watch({ allocations: true }))'}`)
    }
    try {
      return await this.native.export(format, path)
    } catch (err) {
      throw require('./native').fromNative(err)
    }
  }

  status () {
    const n = this.native
    return {
      state: this.state,
      ...(this.reason ? { reason: this.reason } : {}),
      samplingInterval: this.opts.samplingInterval,
      stackDepth: this.opts.stackDepth,
      readEveryMs: this.timing.intervalMs * this.opts.readIntervals,
      maxReadMs: this.opts.maxReadMs,
      maxDuty: this.opts.maxDuty,
      reads: this.reads,
      lastReadAt: this.lastReadAt,
      lastReadMs: this.lastReadMs,
      paused: this.paused,
      liveBytes: n && this.reads ? n.lastTotalBytes() : null,
      samples: n && this.reads ? n.lastSamples() : null,
      sites: n ? n.siteCount() : 0,
      frames: n ? n.frameCount() : 0,
      historyBytes: n ? n.bytes() : 0
    }
  }

  _teardown (stopSampling) {
    clearInterval(this.timer)
    this.timer = null
    if (this.session) {
      if (stopSampling) {
        try { postSync(this.session, 'HeapProfiler.stopSampling') } catch {}
      }
      try { this.session.disconnect() } catch {}
      this.session = null
    }
  }

  stop () {
    if (this.state === 'sampling') {
      this._teardown(true)
      this.state = 'stopped'
    } else {
      this._teardown(false)
    }
  }
}

function publicSite (s) {
  return {
    name: s.name,
    frames: s.frames.map((f) => ({ functionName: f.functionName, file: f.file, line: f.line, column: f.column })),
    liveBytes: s.liveBytes,
    growthBytesPerHour: s.growthBytesPerHour,
    growthLowerBytesPerHour: s.growthLowerBytesPerHour,
    share: s.share,
    growing: s.growing,
    confidence: s.confidence,
    points: s.points
  }
}

const { performance } = require('node:perf_hooks')

module.exports = { AllocationSampler, normalizeAllocationsOptions, ALLOCATION_KEYS, DEFAULTS, MAX_DUTY, REPORT_SITES, postSync }
