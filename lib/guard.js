'use strict'
// watch() and the Guard: wires the monitor (sampling, verdict, pressure, watchdog, log),
// the listener auditor and capture settings into one process-wide EventEmitter.

const { EventEmitter } = require('node:events')
const V = require('./validate')
const { coded } = require('./errors')
const captureLib = require('./capture')
const { Monitor, normalizeMonitorOptions, MONITOR_KEYS } = require('./monitor')
const { ListenerAuditor, normalizeListenerOptions, LISTENER_KEYS } = require('./listeners')

const WATCH_KEYS = ['capture', 'signal', ...MONITOR_KEYS, ...LISTENER_KEYS]

function normalizeWatchOptions (options) {
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, WATCH_KEYS, 'options')
  let signal = o.signal
  if (signal !== undefined && signal !== false && (typeof signal !== 'string' || !/^SIG[A-Z0-9]+$/.test(signal))) {
    throw require('./errors').invalidOption('signal', "a signal name such as 'SIGUSR2', or false", signal)
  }
  return {
    capture: o.capture === undefined ? {} : captureLib.normalizeCaptureOptions(o.capture, 'capture'),
    signal: signal || false,
    monitor: normalizeMonitorOptions(o),
    listeners: normalizeListenerOptions(o)
  }
}

class Guard extends EventEmitter {
  constructor (opts) {
    super()
    this._opts = opts
    this._captures = []
    this._stopped = false
    this.monitor = new Monitor(opts.monitor, { capture: (reason) => this.capture({ reason }) })
    this.listeners = new ListenerAuditor(opts.listeners)
    for (const ev of ['sample', 'leak', 'native-leak', 'pressure', 'stall', 'error']) {
      this.monitor.on(ev, (x) => this._emitSafe(ev, x))
    }
    this.listeners.on('listener-leak', (x) => this._emitSafe('listener-leak', x))
  }

  _emitSafe (ev, x) {
    // 'error' without a listener would throw into leakguard's timers: keep it quiet then.
    if (ev === 'error' && this.listenerCount('error') === 0) return
    this.emit(ev, x)
  }

  start () {
    this.monitor.start()
    this.listeners.start()
    return this
  }

  status () {
    return { ...this.monitor.status(), listeners: this.listeners.report(), captures: this._captures.slice() }
  }

  samples () { return this.monitor.samples() }
  listenerReport () { return this.listeners.report() }
  track (emitter, name) { this.listeners.track(emitter, name) }

  capture (options) {
    const opts = captureLib.mergeCaptureOptions(this._opts.capture, captureLib.normalizeCaptureOptions(options))
    return captureLib.runCapture(opts).then((r) => {
      this._captures.push(r)
      if (this._captures.length > 20) this._captures.shift()
      this.monitor.recordCapture(r)
      this._emitSafe('capture', r)
      return r
    })
  }

  metrics () { return '' }

  stop () {
    if (this._stopped) return
    this._stopped = true
    this.monitor.stop()
    this.listeners.stop()
    if (current === this) current = null
  }
}

let current = null

/** Start watching (process-wide): a second call returns the same Guard. */
function watch (options) {
  const opts = normalizeWatchOptions(options)
  if (current) {
    if (options !== undefined) {
      process.emitWarning('leakguard.watch() was called again; the running guard is returned and the new options are ignored', { code: 'LEAKGUARD_WATCH_AGAIN' })
    }
    return current
  }
  current = new Guard(opts).start()
  return current
}

module.exports = { watch, Guard, normalizeWatchOptions, coded }
