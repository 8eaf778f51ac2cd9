'use strict'
// Memory sampling, the leak verdict, heap pressure, the stall watchdog and the NDJSON log
// (issue #4). The JS thread only reads figures (lib/sampler.js) and emits events; the ring
// buffer, the verdicts and pressure rules run in Rust (src/monitor/), the watchdog and the
// log writer on their own Rust threads (src/watchdog.rs, src/log.rs).

const { EventEmitter } = require('node:events')
const V = require('./validate')
const { invalidOption } = require('./errors')
const { binding, call } = require('./native')
const { Sampler, gc, toSample, FIELDS } = require('./sampler')

const MONITOR_KEYS = ['intervalMs', 'autoCapture', 'pressure', 'stallThresholdMs', 'logFile', 'verdict']

/**
 * Defaults. intervalMs 10 s: the verdict's time constants are multiples of it (warm-up 90,
 * window 720, hold 180 intervals), which at 10 s are HEURISTICS' measured 15 min / 2 h /
 * 30 min; at `intervalMs: 100` the same rules call a fast leak in about half a minute.
 * 10 s also keeps the sampler's cost invisible (< 30 µs per sample).
 */
const DEFAULTS = Object.freeze({
  intervalMs: 10000,
  stallThresholdMs: 1000,
  pressure: Object.freeze({ heapFraction: 0.7, gcFraction: 0.5, majorGcPerSecond: 3 }),
  autoCapture: Object.freeze({ onLeak: true, onPressure: false, cooldownMs: 10 * 60e3, maxPerHour: 2 }),
  logMaxBytes: 10 * 1024 * 1024,
  logFiles: 3
})

const CHANGED_HEAP = 1
const CHANGED_NATIVE = 2
const CHANGED_PRESSURE = 4
const LEVELS = { none: 0, warn: 1, critical: 2 }

/** Validate the WatchOptions keys this module owns (throws coded errors at the call). */
function normalizeMonitorOptions (o) {
  const intervalMs = V.optNumber(o, 'intervalMs', { min: 100, max: 3600e3, integer: true }) ?? DEFAULTS.intervalMs
  const stallThresholdMs = V.optNumber(o, 'stallThresholdMs', { min: 50, max: 3600e3, integer: true }) ?? DEFAULTS.stallThresholdMs

  let autoCapture = null
  if (o.autoCapture !== undefined && o.autoCapture !== false) {
    const a = V.plainObject(o.autoCapture, 'autoCapture')
    V.knownKeys(a, ['onLeak', 'onPressure', 'cooldownMs', 'maxPerHour'], 'autoCapture')
    autoCapture = {
      onLeak: V.optBoolean(a, 'onLeak', 'autoCapture.onLeak') ?? DEFAULTS.autoCapture.onLeak,
      onPressure: V.optBoolean(a, 'onPressure', 'autoCapture.onPressure') ?? DEFAULTS.autoCapture.onPressure,
      cooldownMs: V.optNumber(a, 'cooldownMs', { name: 'autoCapture.cooldownMs', min: 0, max: 7 * 24 * 3600e3, integer: true }) ?? DEFAULTS.autoCapture.cooldownMs,
      maxPerHour: V.optNumber(a, 'maxPerHour', { name: 'autoCapture.maxPerHour', min: 1, max: 3600, integer: true }) ?? DEFAULTS.autoCapture.maxPerHour
    }
  }

  const p = V.plainObject(o.pressure, 'pressure')
  V.knownKeys(p, ['heapFraction', 'gcFraction', 'majorGcPerSecond'], 'pressure')
  const fraction = (k) => {
    const v = V.optNumber(p, k, { name: `pressure.${k}`, min: 0, max: 1 })
    if (v === 0) throw invalidOption(`pressure.${k}`, 'a number > 0 and ≤ 1', v, RangeError)
    return v ?? DEFAULTS.pressure[k]
  }
  const pressure = {
    heapFraction: fraction('heapFraction'),
    gcFraction: fraction('gcFraction'),
    majorGcPerSecond: V.optNumber(p, 'majorGcPerSecond', { name: 'pressure.majorGcPerSecond', min: 0.01, max: 1e6 }) ?? DEFAULTS.pressure.majorGcPerSecond
  }

  const vd = V.plainObject(o.verdict, 'verdict')
  V.knownKeys(vd, ['warmUpMs', 'windowMs', 'holdMs'], 'verdict')
  const ms = (k) => V.optNumber(vd, k, { name: `verdict.${k}`, min: 1, max: 365 * 24 * 3600e3 })
  const verdict = { warmUpMs: ms('warmUpMs'), windowMs: ms('windowMs'), holdMs: ms('holdMs') }

  let logFile = null
  if (o.logFile !== undefined) {
    if (typeof o.logFile === 'string') {
      logFile = { path: V.optString(o, 'logFile'), maxBytes: DEFAULTS.logMaxBytes, files: DEFAULTS.logFiles }
    } else {
      const l = V.plainObject(o.logFile, 'logFile')
      V.knownKeys(l, ['path', 'maxBytes', 'files'], 'logFile')
      const path = V.optString(l, 'path', { name: 'logFile.path' })
      if (path === undefined) throw invalidOption('logFile.path', 'a non-empty string', undefined)
      logFile = {
        path,
        maxBytes: V.optNumber(l, 'maxBytes', { name: 'logFile.maxBytes', min: 4096, max: Number.MAX_SAFE_INTEGER, integer: true }) ?? DEFAULTS.logMaxBytes,
        files: V.optNumber(l, 'files', { name: 'logFile.files', min: 0, max: 100, integer: true }) ?? DEFAULTS.logFiles
      }
    }
  }
  return { intervalMs, stallThresholdMs, autoCapture, pressure, verdict, logFile }
}

/** How often the heartbeat beats, ms: often enough to see a stall of the threshold. */
function beatPeriod (o) {
  return Math.max(25, Math.min(o.intervalMs, Math.floor(o.stallThresholdMs / 2)))
}

let running = null

/**
 * Events: 'sample' (MemorySample), 'leak' (LeakReport, when the heap verdict becomes
 * 'leak'), 'native-leak' (the native verdict becomes 'leak'), 'pressure' (the level rises),
 * 'stall' (after the loop resumes), 'error'.
 * `hooks.capture(reason)` runs an automatic capture (returns a Promise).
 */
class Monitor extends EventEmitter {
  constructor (options, hooks) {
    super()
    this.options = options
    this.hooks = hooks || {}
    this._native = null
    this._sampler = null
    this._timer = null
    this._beatTimer = null
    this._latest = null
    this._heapState = 'warming-up'
    this._nativeState = 'warming-up'
    this._level = 'none'
    this._auto = { last: 0, times: [], busy: false }
    this._heap = null
    this._nativeReport = null
    this._pressure = null
  }

  start () {
    if (this._native) return this
    const o = this.options
    this._native = call((opts, now) => new binding.NativeMonitor(opts, now), {
      intervalMs: o.intervalMs,
      warmUpMs: o.verdict.warmUpMs,
      windowMs: o.verdict.windowMs,
      holdMs: o.verdict.holdMs,
      heapFraction: o.pressure.heapFraction,
      gcFraction: o.pressure.gcFraction,
      majorGcPerSecond: o.pressure.majorGcPerSecond,
      stallThresholdMs: o.stallThresholdMs,
      beatPeriodMs: beatPeriod(o),
      logFile: o.logFile ? o.logFile.path : undefined,
      logMaxBytes: o.logFile ? o.logFile.maxBytes : undefined,
      logFiles: o.logFile ? o.logFile.files : undefined
    }, Date.now())
    this._sampler = new Sampler()
    this._sampler.start()
    gc.listener = (now) => this._safe(() => this._onGc(now))
    running = this
    this._native.beat()
    this._tick()
    this._timer = setInterval(() => this._safe(() => this._tick()), o.intervalMs).unref()
    this._beatTimer = setInterval(() => this._safe(() => this._beat()), beatPeriod(o)).unref()
    return this
  }

  stop () {
    if (!this._native) return
    clearInterval(this._timer)
    clearInterval(this._beatTimer)
    if (gc.listener) gc.listener = null
    this._sampler.stop()
    this._heap = this._native.heapReport()
    this._nativeReport = this._native.nativeReport()
    this._pressure = this._native.pressure()
    this._native.stop()
    this._stoppedNative = this._native
    this._native = null
    if (running === this) running = null
  }

  _safe (fn) {
    try {
      fn()
    } catch (err) {
      this.emit('error', err)
    }
  }

  _onGc (now) {
    const t = gc
    const flags = this._native.gc(now, t.count.major, t.markingMs, t.pauseMs(), new Float64Array([now, t.floor]))
    if (flags) this._changes(flags)
  }

  _tick () {
    const a = this._sampler.read(true)
    const flags = this._native.push(a)
    this._latest = toSample(a)
    if (flags) this._changes(flags)
    this.emit('sample', this._latest)
  }

  _beat () {
    const s = this._native.beat()
    if (!s) return
    this.emit('stall', {
      startedAt: s.startedAt,
      durationMs: s.durationMs,
      thresholdMs: this.options.stallThresholdMs,
      observed: s.observed,
      rss: s.rss ?? null,
      cpuMs: s.cpuMs ?? null
    })
  }

  _changes (flags) {
    if (flags & CHANGED_HEAP) {
      const r = this._native.heapReport()
      const was = this._heapState
      this._heapState = r.state
      if (r.state !== was) this.emit('heap-state', publicReport(r), was)
      if (r.state === 'leak' && was !== 'leak') {
        const report = leakReport(r, 'heap', was)
        this.emit('leak', report)
        this._autoCapture('leak', report)
      }
    }
    if (flags & CHANGED_NATIVE) {
      const r = this._native.nativeReport()
      const was = this._nativeState
      this._nativeState = r.state
      if (r.state === 'leak' && was !== 'leak') this.emit('native-leak', leakReport(r, 'native', was))
    }
    if (flags & CHANGED_PRESSURE) {
      const p = this._native.pressure()
      const level = p ? p.level : 'none'
      const rose = LEVELS[level] > LEVELS[this._level]
      this._level = level
      if (rose) {
        const ev = pressureEvent(p)
        this.emit('pressure', ev)
        // Never capture in a GC spiral: a snapshot there needs memory the process lacks.
        if (level === 'warn') this._autoCapture('pressure', ev)
      }
    }
  }

  _autoCapture (trigger, detail) {
    const ac = this.options.autoCapture
    if (!ac || !this.hooks.capture) return
    if ((trigger === 'leak' && !ac.onLeak) || (trigger === 'pressure' && !ac.onPressure)) return
    const a = this._auto
    const now = Date.now()
    a.times = a.times.filter((t) => now - t < 3600e3)
    let skipped = null
    if (a.busy) skipped = 'a capture is running'
    else if (a.last && now - a.last < ac.cooldownMs) skipped = `cooldown (${ac.cooldownMs} ms)`
    else if (a.times.length >= ac.maxPerHour) skipped = `maxPerHour (${ac.maxPerHour})`
    if (skipped) {
      this._log({ type: 'capture-skipped', time: now, trigger, why: skipped })
      return
    }
    a.last = now
    a.times.push(now)
    a.busy = true
    // Out of the sampler's turn: the capture's own checks (headroom, single flight) decide.
    setImmediate(() => {
      Promise.resolve()
        .then(() => this.hooks.capture(`auto: ${trigger}${detail && detail.state ? ` (${detail.state})` : detail && detail.level ? ` (${detail.level})` : ''}`))
        .catch((err) => {
          this._log({ type: 'capture-failed', time: Date.now(), trigger, code: err && err.code, message: err && err.message })
          this.emit('error', err)
        })
        .finally(() => { a.busy = false })
    }).unref()
  }

  _log (obj) {
    const n = this._native || this._stoppedNative
    if (n && this.options.logFile) n.logLine(JSON.stringify(obj))
  }

  /** Every stored sample, oldest first. */
  samples () {
    const n = this._native || this._stoppedNative
    if (!n) return []
    const flat = n.samples()
    const out = []
    for (let o = 0; o < flat.length; o += FIELDS.length) out.push(toSample(flat, o))
    return out
  }

  status () {
    const n = this._native
    return {
      heap: n ? publicReport(n.heapReport()) : this._heap && publicReport(this._heap),
      native: n ? publicReport(n.nativeReport()) : this._nativeReport && publicReport(this._nativeReport),
      pressure: n ? pressureEvent(n.pressure()) : pressureEvent(this._pressure),
      latest: this._latest,
      intervalMs: this.options.intervalMs,
      ringBytes: (n || this._stoppedNative) ? (n || this._stoppedNative).ringBytes() : 0
    }
  }

  /** One reading now without ending the sampler's windows (for leakguard.sample()). */
  peek () {
    return this._sampler ? toSample(this._sampler.read(false)) : null
  }

  /** Record a capture in the log (called by the guard). */
  recordCapture (result) {
    this._log({ type: 'capture', time: Date.now(), path: result.path, bytes: result.bytes, rawBytes: result.rawBytes, mode: result.mode, stallMs: result.stallMs, durationMs: result.durationMs })
  }
}

function publicReport (r) {
  return {
    state: r.state,
    slopeBytesPerHour: r.slopeBytesPerHour,
    slopeLowerBytesPerHour: r.slopeLowerBytesPerHour,
    confidence: r.confidence,
    floorBytes: r.floorBytes,
    projectedLimitAt: r.projectedLimitAt ?? null,
    targetBytes: r.targetBytes ?? null,
    tier: r.tier ?? null,
    points: r.points,
    since: r.since,
    evaluatedAt: r.evaluatedAt,
    detail: r.detail,
    ...(r.source ? { source: r.source } : {})
  }
}

function leakReport (r, series, previous) {
  return { ...publicReport(r), series, previousState: previous }
}

function pressureEvent (p) {
  if (!p) return null
  const eta = p.projectedLimitAt == null ? null : Math.max(0, p.projectedLimitAt - p.at)
  return {
    level: p.level,
    reasons: p.reasons,
    since: p.since,
    at: p.at,
    oldGenerationUsedBytes: p.oldGenerationUsedBytes,
    oldGenerationLimitBytes: p.oldGenerationLimitBytes,
    youngGenerationReserveBytes: p.youngGenerationReserveBytes,
    heapFraction: p.heapFraction,
    markingDuty: p.markingDuty,
    majorGcPerSecond: p.majorGcPerSecond,
    gcPauseFraction: p.gcPauseFraction,
    elu: p.elu,
    projectedLimitAt: p.projectedLimitAt ?? null,
    etaMs: eta
  }
}

let standalone = null

/** One MemorySample now. With a running monitor its windows are peeked, not ended. */
function sample () {
  if (running) return running.peek()
  if (!standalone) {
    // First use without watch(): start the GC observer and loop-delay histogram, which
    // stay on (unref'd, no timers of leakguard's own) so later readings have GC figures.
    standalone = new Sampler()
    standalone.start()
  }
  return toSample(standalone.read(true))
}

module.exports = { Monitor, normalizeMonitorOptions, MONITOR_KEYS, DEFAULTS, sample }
