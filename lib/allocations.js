'use strict'
// Live allocation sites (issue #10). V8's sampling heap profiler runs while the guard runs;
// the JS thread only reads the profile — every verdict interval or few, and on demand — and
// Rust (src/sites/) keeps the bounded history per site and judges growth.
//
// Two sources, one profiler per isolate:
// - 'native' (the default where built): src/binding/sampler.cc starts V8's sampler through
//   its C++ API without the inspector's kSamplingForceGC, and a read walks V8's tree in C++
//   straight into Rust: no GC, no JSON, no JS objects (measured 0.06 ms median at ~100 MiB of
//   live heap, 0.14 ms at ~1 GiB). V8's C++ classes are only stable within one Node major, so it is
//   used only when the versions it was compiled against (samplerAbi()) equal the running
//   process's (Node major, V8 major.minor, NODE_MODULE_VERSION).
// - 'inspector': an in-process inspector.Session (HeapProfiler.startSampling). V8's inspector
//   agent starts the profiler with kSamplingForceGC, so every getSamplingProfile runs a
//   full, non-incremental major GC on this thread (~150–190 ms at ~100 MB, 1.4–1.9 s at
//   ~1 GB). Automatic reads therefore keep a budget: at most maxDuty of wall time, and none
//   while the next read is predicted to take longer than `maxReadMs`.
// report() and allocationProfile() always read: the caller asked. docs/allocations.md.
//
// Coexistence: if someone (a debugger, an APM agent, --heap-prof) already runs the
// profiler, the state is 'unavailable' and nothing of theirs is touched. If another session
// stops it while we run, the next read finds it stopped: 'unavailable' again, and stop()
// leaves it alone. Worker threads: each thread's guard samples its own isolate's heap.

const V = require('./validate')
const { invalidOption } = require('./errors')
const { binding, call } = require('./native')
const { gc } = require('./sampler')

const ALLOCATION_KEYS = ['source', 'samplingInterval', 'stackDepth', 'readIntervals', 'maxReadMs', 'maxDuty']
const SOURCES = ['auto', 'native', 'inspector']
const DEFAULTS = Object.freeze({
  /** 'auto': native where samplerAbi() matches this process, else the inspector. */
  source: 'auto',
  /**
   * Bytes between samples on average. 512 KiB (V8's own default): benchmark/allocations.js
   * measured the throughput cost within the ≤ 2 % target there, and above it at smaller
   * intervals (docs/allocations.md has the run that chose this).
   */
  samplingInterval: 524288,
  /** Frames per site, leaf first. */
  stackDepth: 16,
  /**
   * Automatic reads every this many verdict intervals: every interval with the native
   * source (a read costs well under a millisecond), every 6 (1 min at the default 10 s)
   * with the inspector's forced GC. `null` here: chosen by source at start.
   */
  readIntervals: null,
  /** No automatic read predicted to stall the loop longer than this, ms. */
  maxReadMs: 250,
  /** Automatic reads take at most this fraction of wall time (their forced GC included). */
  maxDuty: 0.005
})
const MAX_DUTY = DEFAULTS.maxDuty
/** Sites in a report, and in the metrics. */
const REPORT_SITES = 20

const INSPECTOR_READ_INTERVALS = 6

/**
 * Whether the direct sampler was built for this very process: `{ ok, abi, reason }`.
 * Only the ABI probe is called (it touches no V8 symbol).
 */
function nativeSampler () {
  let abi = null
  try { abi = typeof binding.samplerAbi === 'function' ? binding.samplerAbi() : null } catch {}
  if (!abi) return { ok: false, abi: null, reason: 'this build of leakguard has no direct sampler (no C++ compiler or Node headers when it was built, or a platform without it)' }
  const [v8Major, v8Minor] = process.versions.v8.split('.').map(Number)
  const nodeMajor = Number(process.versions.node.split('.')[0])
  const modules = Number(process.versions.modules)
  if (abi.nodeMajor !== nodeMajor || abi.v8Major !== v8Major || abi.v8Minor !== v8Minor || abi.nodeModuleVersion !== modules) {
    return { ok: false, abi, reason: `the direct sampler was built for Node ${abi.nodeMajor} (V8 ${abi.v8Major}.${abi.v8Minor}, modules ${abi.nodeModuleVersion}), this is Node ${process.versions.node} (V8 ${process.versions.v8}, modules ${modules}): rebuild leakguard here (npm rebuild leakguard)` }
  }
  return { ok: true, abi, reason: null }
}

/**
 * The allocations option: false, or the normalized settings. `defaultOn` applies when the
 * option is absent: true, false, or 'native' (on only where the native sampler runs here;
 * the settings carry `implicit: true` and the sampler stays off otherwise).
 */
function normalizeAllocationsOptions (value, defaultOn) {
  if (value === undefined) {
    if (defaultOn === 'native') return { ...DEFAULTS, source: 'native', implicit: true }
    value = defaultOn
  }
  if (value === false) return false
  if (value === true) return { ...DEFAULTS }
  const o = V.plainObject(value, 'allocations')
  V.knownKeys(o, ALLOCATION_KEYS, 'allocations')
  if (o.source !== undefined && !SOURCES.includes(o.source)) {
    throw invalidOption('allocations.source', SOURCES.map((x) => `'${x}'`).join(', '), o.source)
  }
  return {
    source: o.source ?? DEFAULTS.source,
    samplingInterval: V.optNumber(o, 'samplingInterval', { name: 'allocations.samplingInterval', min: 1024, max: 1 << 30, integer: true }) ?? DEFAULTS.samplingInterval,
    stackDepth: V.optNumber(o, 'stackDepth', { name: 'allocations.stackDepth', min: 1, max: 64, integer: true }) ?? DEFAULTS.stackDepth,
    readIntervals: V.optNumber(o, 'readIntervals', { name: 'allocations.readIntervals', min: 1, max: 10000, integer: true }) ?? null,
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
    this.lastMajor = -1 // gc.count.major at the last read: a read after a new one is clean
    this.lastReadMs = null
    this.lastHeapUsed = 0
    this.paused = null
    this.cache = null
    this.readError = null
    this.source = null
    this.sourceReason = null
    this.readIntervals = opts.readIntervals
  }

  start () {
    if (this.state !== 'off') return this
    const want = this.opts.source
    const nat = want === 'inspector' ? null : nativeSampler()
    if (nat && nat.ok) {
      const r = call(() => binding.samplerStart(this.opts.samplingInterval, this.opts.stackDepth))
      if (r === 1) return this._sampling('native', null)
      if (r === 0) return this._unavailable('another inspector session or agent already runs the sampling heap profiler (a debugger, an APM agent or --heap-prof): leakguard leaves it alone')
      // -1 (no isolate on this thread) or -2 (not built): the inspector may still work.
      this.sourceReason = `the direct sampler could not start here (${r})`
    } else if (nat) {
      this.sourceReason = nat.reason
    }
    if (this.opts.implicit) {
      // On by default only where reads cost no GC: elsewhere, ask for it.
      this.reason = `${this.sourceReason}; watch({ allocations: true }) samples through the inspector, whose reads force a full GC`
      return this
    }
    if (want === 'native') return this._unavailable(`allocations.source 'native': ${this.sourceReason}`)
    return this._startInspector()
  }

  _startInspector () {
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
    return this._sampling('inspector', this.sourceReason)
  }

  _sampling (source, why) {
    this.source = source
    this.sourceReason = why
    if (this.readIntervals == null) this.readIntervals = source === 'native' ? 1 : INSPECTOR_READ_INTERVALS
    this.native = call((o) => new binding.NativeSites(o), {
      depth: this.opts.stackDepth,
      windowMs: this.timing.windowMs,
      cwd: process.cwd(),
      samplingInterval: this.opts.samplingInterval
    })
    this.state = 'sampling'
    const every = this.timing.intervalMs * this.readIntervals
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
    // A native read walks the live samples, not the heap: the last read predicts the next.
    if (this.source === 'native') return this.lastReadMs
    const used = process.memoryUsage().heapUsed
    return this.lastReadMs * Math.max(1, used / Math.max(1, this.lastHeapUsed))
  }

  /** An automatic read, within the budget; never throws. */
  _auto () {
    if (this.state !== 'sampling') return
    const now = Date.now()
    const predicted = this.predictedReadMs()
    if (predicted != null && predicted > this.opts.maxReadMs) {
      this.paused = `${this.source === 'native' ? 'a read' : 'a read forces a full GC,'} predicted at ${Math.round(predicted)} ms > maxReadMs ${this.opts.maxReadMs}: automatic reads wait (report() still reads)`
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
    // Clean: the first read since a major GC — the profile holds no samples of objects that
    // died before it (src/sites/mod.rs). The inspector's read forces a full GC: always clean.
    const major = gc.count.major
    const clean = this.source !== 'native' || (major !== this.lastMajor && this.lastMajor >= 0)
    this.lastMajor = major
    if (this.source === 'native') {
      let ok
      try {
        ok = this.native.readNative(Date.now(), clean)
      } catch (err) {
        // Not a stopped profiler (that is `false`): this read is lost, sampling goes on.
        this.readError = String(err && err.message)
        return false
      }
      if (!ok) {
        // Stopped under us: another session's stopSampling (a debugger, an APM agent).
        this._unavailable('the sampling heap profiler was stopped by another inspector session or agent; leakguard does not restart it')
        this._teardown(false)
        return false
      }
    } else {
      let res
      try {
        res = postSync(this.session, 'HeapProfiler.getSamplingProfile')
      } catch (err) {
        // Stopped under us: another session's stopSampling (a debugger, an APM agent).
        this._unavailable(`the sampling heap profiler was stopped by another inspector session (${err && err.message}); leakguard does not restart it`)
        this._teardown(false)
        return false
      }
      this._push(res.profile, Date.now(), clean)
    }
    this.lastReadMs = performance.now() - t0
    this.lastReadAt = Date.now()
    // Only the inspector's read scales with the heap (its forced GC). process.memoryUsage()
    // itself can take ~10 ms at 1 GiB right after a GC (measured): not paid for native.
    if (this.source !== 'native') this.lastHeapUsed = process.memoryUsage().heapUsed
    this.reads++
    this.cache = null
    return true
  }

  /** Walk the tree in pre-order, intern new frames, hand typed arrays to Rust. */
  _push (profile, now, clean) {
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
    this.native.push(now, Uint32Array.from(ids), Int32Array.from(parents), Uint32Array.from(frames), Float64Array.from(selfBytes), samples, clean)
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
      return await this.native.exportJob(format, path).run()
    } catch (err) {
      throw require('./native').fromNative(err)
    }
  }

  status () {
    const n = this.native
    return {
      state: this.state,
      ...(this.reason ? { reason: this.reason } : {}),
      source: this.source,
      ...(this.sourceReason ? { sourceReason: this.sourceReason } : {}),
      samplingInterval: this.opts.samplingInterval,
      stackDepth: this.opts.stackDepth,
      readEveryMs: this.timing.intervalMs * (this.readIntervals ?? INSPECTOR_READ_INTERVALS),
      maxReadMs: this.opts.maxReadMs,
      maxDuty: this.opts.maxDuty,
      reads: this.reads,
      lastReadAt: this.lastReadAt,
      lastReadMs: this.lastReadMs,
      paused: this.paused,
      ...(this.readError ? { readError: this.readError } : {}),
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
    if (this.source === 'native' && stopSampling) {
      try { binding.samplerStop() } catch {}
    }
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

module.exports = { AllocationSampler, normalizeAllocationsOptions, nativeSampler, ALLOCATION_KEYS, SOURCES, DEFAULTS, MAX_DUTY, REPORT_SITES, postSync }
