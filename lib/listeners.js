'use strict'
// Listener auditing (issue #5). Placeholder with the interface lib/guard.js relies on.

const { EventEmitter } = require('node:events')
const V = require('./validate')

const LISTENER_KEYS = ['emitters', 'auditListeners']

/** Validate the WatchOptions keys this module owns (throws coded errors at the call). */
function normalizeListenerOptions (o) {
  return {
    auditListeners: V.optEnum(o, 'auditListeners', ['tracked', 'all']),
    emitters: o.emitters === undefined ? undefined : V.plainObject(o.emitters, 'emitters')
  }
}

/** Events: 'listener-leak' (ListenerLeak). */
class ListenerAuditor extends EventEmitter {
  constructor (options) {
    super()
    this.options = options
  }

  start () {}
  stop () {}
  track (emitter, name) {}
  /** Take one reading of every tracked pair (the guard calls it once per sample). */
  tick () {}
  report () { return { leaks: [], tracked: 0 } }
}

module.exports = { ListenerAuditor, normalizeListenerOptions, LISTENER_KEYS }
