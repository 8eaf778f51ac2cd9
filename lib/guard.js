'use strict'
// watch() and the Guard: wires the monitor (sampling, verdict, pressure, watchdog, log),
// the listener auditor and capture settings into one process-wide EventEmitter.

const { EventEmitter } = require('node:events')
const os = require('node:os')
const V = require('./validate')
const { coded, invalidOption } = require('./errors')
const captureLib = require('./capture')
const uploadLib = require('./upload')
const metricsLib = require('./metrics')
const { counted, captureCounts } = require('./stats')
const { Monitor, normalizeMonitorOptions, MONITOR_KEYS } = require('./monitor')
const { ListenerAuditor, normalizeListenerOptions, LISTENER_KEYS } = require('./listeners')
const allocationsLib = require('./allocations')
const reportLib = require('./report')
require('./report-analysis') // report()'s classes/retainers sections (the last two captures)

const WATCH_KEYS = ['capture', 'signal', 'upload', 'allocations', ...MONITOR_KEYS, ...LISTENER_KEYS]
/**
 * watch() samples allocation sites by default where the direct (native) sampler runs in
 * this process: its reads cost no GC and under a millisecond at 100 MB, and the sampling
 * costs ≤ 2 % throughput at the default interval (docs/allocations.md has the benchmark).
 * Elsewhere (inspector only: reads force a full GC) it samples only when asked
 * (`allocations: true`).
 */
const ALLOCATIONS_BY_DEFAULT = 'native'

function normalizeWatchOptions (options) {
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, WATCH_KEYS, 'options')
  return {
    capture: o.capture === undefined ? {} : captureLib.normalizeCaptureOptions(o.capture, 'capture'),
    signal: normalizeSignal(o.signal),
    upload: uploadLib.normalizeDestination(o.upload, 'upload') || undefined,
    monitor: normalizeMonitorOptions(o),
    listeners: normalizeListenerOptions(o),
    allocations: allocationsLib.normalizeAllocationsOptions(o.allocations, ALLOCATIONS_BY_DEFAULT)
  }
}

/**
 * Signals a capture trigger may not take, and why: uncatchable ones, the ones whose
 * default action users rely on to end or debug the process, and those Node reserves.
 */
const REFUSED_SIGNALS = {
  SIGKILL: 'it cannot be caught',
  SIGSTOP: 'it cannot be caught',
  SIGINT: 'a listener would stop Ctrl-C from ending the process',
  SIGTERM: 'a listener would stop SIGTERM from ending the process',
  SIGQUIT: 'a listener would stop SIGQUIT from ending the process',
  SIGSEGV: 'Node reserves it',
  SIGBUS: 'Node reserves it',
  SIGFPE: 'Node reserves it',
  SIGILL: 'Node reserves it',
  SIGABRT: 'it reports a crash',
  SIGUSR1: "Node's inspector uses it",
  SIGPIPE: 'Node ignores it on purpose',
  SIGCHLD: 'child processes use it',
  SIGPROF: 'profilers use it'
}

/** The signal option: false, or a signal name this platform knows and leakguard may take. */
function normalizeSignal (signal) {
  if (signal === undefined || signal === false) return false
  if (typeof signal !== 'string' || !/^SIG[A-Z0-9]+$/.test(signal)) {
    throw invalidOption('signal', "a signal name such as 'SIGUSR2', or false", signal)
  }
  if (!Object.prototype.hasOwnProperty.call(os.constants.signals, signal)) {
    throw invalidOption('signal', `a signal this platform has (${process.platform} has no ${signal})`, signal, RangeError)
  }
  if (REFUSED_SIGNALS[signal]) {
    throw invalidOption('signal', `a signal leakguard may take; not ${signal}: ${REFUSED_SIGNALS[signal]}`, signal, RangeError)
  }
  const flag = heapsnapshotSignalFlag()
  if (flag === signal) {
    throw invalidOption('signal', `a signal other than the one Node's --heapsnapshot-signal already takes (${flag}: Node would also write its own blocking snapshot)`, signal, RangeError)
  }
  return signal
}

/** The signal named by Node's --heapsnapshot-signal (argv or NODE_OPTIONS), or null. */
function heapsnapshotSignalFlag () {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS || '').split(/\s+/)]
  for (let i = 0; i < flags.length; i++) {
    const m = /^--heapsnapshot[-_]signal(?:=(.*))?$/.exec(flags[i])
    if (m) return m[1] !== undefined ? m[1] : flags[i + 1] || null
  }
  return null
}

class Guard extends EventEmitter {
  constructor (opts) {
    super()
    this._opts = opts
    this._captures = []
    this._stopped = false
    this._uploads = new AbortController() // aborted by stop(): cancels this guard's uploads
    this.monitor = new Monitor(opts.monitor, { capture: (reason) => this.capture({ reason }) })
    this.listeners = new ListenerAuditor(opts.listeners)
    for (const ev of ['sample', 'leak', 'native-leak', 'pressure', 'stall', 'error']) {
      this.monitor.on(ev, (x) => this._emitSafe(ev, x))
    }
    this.listeners.on('listener-leak', (x) => this._emitSafe('listener-leak', x))
    const m = opts.monitor
    this.allocations = opts.allocations
      ? new allocationsLib.AllocationSampler(opts.allocations, { intervalMs: m.intervalMs, windowMs: m.verdict.windowMs ?? 720 * m.intervalMs })
      : null
    // 'leak-report' when the heap verdict becomes growing or leak: the report as of then.
    this.monitor.on('heap-state', (r) => {
      if (r.state !== 'growing' && r.state !== 'leak') return
      const fresh = !this.allocations || this.allocations.predictedReadMs() == null || this.allocations.predictedReadMs() <= this.allocations.opts.maxReadMs
      reportLib.buildReport(this, { fresh, trigger: r.state }).then((rep) => this._emitSafe('leak-report', rep), (err) => this._emitSafe('error', err))
    })
  }

  start () {
    this.monitor.start()
    if (this.allocations) this.allocations.start()
    this.listeners.start()
    if (this._opts.signal) {
      const sig = this._opts.signal
      this._onSignal = () => this._signalCapture(sig)
      process.on(sig, this._onSignal)
    }
    return this
  }

  /** A capture asked for by a signal: never throws; a failure is an 'error' event. */
  _signalCapture (sig) {
    if (this._stopped) return
    let p
    try {
      p = this.capture({ reason: `signal ${sig}` })
    } catch (err) {
      p = Promise.reject(err)
    }
    p.catch((err) => {
      if (this.listenerCount('error') === 0) {
        process.emitWarning(`leakguard: the capture that ${sig} asked for failed (${err && err.code}): ${err && err.message}`, { code: 'LEAKGUARD_SIGNAL_CAPTURE_FAILED' })
      }
      this._emitSafe('error', err)
    })
  }

  _emitSafe (ev, x) {
    // 'error' without a listener would throw into leakguard's timers: keep it quiet then.
    // A listener that throws must not reach leakguard's timers or signal handler either.
    if (ev === 'error' && this.listenerCount('error') === 0) return
    try {
      this.emit(ev, x)
    } catch (err) {
      if (ev !== 'error' && this.listenerCount('error') > 0) {
        try { this.emit('error', err) } catch {}
      }
    }
  }

  status () {
    return { ...this.monitor.status(), listeners: this.listeners.report(), captures: this._captures.slice(), captureCounts: captureCounts(), uploads: uploadLib.uploadStatus(), allocations: this.allocations ? this.allocations.status() : { state: 'off' } }
  }

  /** What grows and where it was allocated (lib/report.js assembles the sections). */
  report () {
    return reportLib.buildReport(this)
  }

  /**
   * The sampled allocation profile: `format` 'heapprofile' (DevTools' Memory tab) or
   * 'pprof' (gzip protobuf); a Buffer, or with `path` the file written (0600) and its path.
   */
  allocationProfile (options) {
    const o = V.plainObject(options, 'options')
    V.knownKeys(o, ['format', 'path'], 'options')
    const format = V.optEnum(o, 'format', ['heapprofile', 'pprof']) ?? 'heapprofile'
    const p = V.optString(o, 'path')
    if (!this.allocations) {
      return Promise.reject(coded(Error, 'ALLOCATIONS_UNAVAILABLE', 'leakguard: allocation sampling is off (watch({ allocations: true }))'))
    }
    return this.allocations.profile(format, p === undefined ? undefined : require('node:path').resolve(p))
  }

  samples () { return this.monitor.samples() }
  listenerReport () { return this.listeners.report() }
  track (emitter, name) { this.listeners.track(emitter, name) }

  capture (options) {
    const opts = captureLib.mergeCaptureOptions({ upload: this._opts.upload }, this._opts.capture, captureLib.normalizeCaptureOptions(options))
    return counted(captureLib.runCapture(opts)).then((r) => {
      this._captures.push(r)
      if (this._captures.length > 20) this._captures.shift()
      this.monitor.recordCapture(r)
      this._emitSafe('capture', r)
      return uploadLib.afterCapture(r, opts.upload || null, { signal: this._uploads.signal, report: (err, u) => this._emitSafe(err ? 'error' : 'upload', err || u) })
    })
  }

  /** Prometheus text exposition (format 0.0.4) of this guard's status and live figures. */
  metrics () {
    const st = this.status()
    if (this.allocations) st.allocationSites = this.allocations.sites(st.heap ? st.heap.slopeBytesPerHour : 0, metricsLib.TOP_SITES)
    return metricsLib.render(st, captureCounts())
  }

  /** Undo everything start() did: timers, observers, patches, the signal handler, threads. */
  stop () {
    if (this._stopped) return
    this._stopped = true
    this._uploads.abort()
    if (this._onSignal) {
      process.removeListener(this._opts.signal, this._onSignal)
      this._onSignal = null
    }
    this.monitor.stop()
    this.listeners.stop()
    if (this.allocations) this.allocations.stop()
    if (current === this) current = null
  }
}

let current = null

/** Start watching (process-wide): a second call returns the same Guard. */
function watch (options) {
  const opts = normalizeWatchOptions(options)
  if (current) {
    if (options !== undefined && !sameOptions(opts, current._opts)) {
      process.emitWarning('leakguard.watch() was called again with different options; the running guard is returned and the new options are ignored (stop() it first to change them)', { code: 'LEAKGUARD_WATCH_AGAIN' })
    }
    return current
  }
  current = new Guard(opts).start()
  return current
}

/** The running guard (from watch()), or null. */
function currentGuard () {
  return current
}

/** Deep equality of normalized options: plain objects and arrays by content, the rest by identity. */
function sameOptions (a, b) {
  if (a === b) return true
  if (a === undefined || b === undefined) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameOptions(x, b[i]))
  }
  const plain = (x) => x !== null && typeof x === 'object' && (Object.getPrototypeOf(x) === Object.prototype || Object.getPrototypeOf(x) === null)
  if (!plain(a) || !plain(b)) return Number.isNaN(a) && Number.isNaN(b)
  const ka = Object.keys(a).filter((k) => a[k] !== undefined)
  const kb = Object.keys(b).filter((k) => b[k] !== undefined)
  return ka.length === kb.length && ka.every((k) => sameOptions(a[k], b[k]))
}

module.exports = { watch, currentGuard, Guard, normalizeWatchOptions, sameOptions, heapsnapshotSignalFlag, coded }
