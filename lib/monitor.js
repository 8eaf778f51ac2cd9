'use strict'
// Memory sampling, the leak verdict, heap pressure, the stall watchdog and the NDJSON
// log (issue #4). Placeholder with the interface lib/guard.js relies on.

const { EventEmitter } = require('node:events')
const V = require('./validate')

const MONITOR_KEYS = ['intervalMs', 'autoCapture', 'pressure', 'stallThresholdMs', 'logFile']

/** Validate the WatchOptions keys this module owns (throws coded errors at the call). */
function normalizeMonitorOptions (o) {
  return {
    intervalMs: V.optNumber(o, 'intervalMs', { min: 100, max: 3600e3, integer: true })
  }
}

/**
 * Events: 'sample' (MemorySample), 'leak' (LeakReport), 'pressure', 'stall', 'error'.
 * `hooks.capture(reason)` runs an automatic capture (returns a Promise).
 */
class Monitor extends EventEmitter {
  constructor (options, hooks) {
    super()
    this.options = options
    this.hooks = hooks
  }

  start () {}
  stop () {}
  samples () { return [] }
  status () { return { heap: null, native: null, pressure: null, latest: null } }
  /** Record a capture in the log (called by the guard). */
  recordCapture (result) {}
}

module.exports = { Monitor, normalizeMonitorOptions, MONITOR_KEYS }
