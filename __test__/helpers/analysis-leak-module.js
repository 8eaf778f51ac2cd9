'use strict'
// The module whose exports three planted leaks hang on (analysis-leaks.test.js):
// a Map of records, an emitter's listeners, and a closure's captured array.

const { EventEmitter } = require('node:events')

class PlantedRecord {
  constructor (i) {
    this.id = i
    this.name = `user-${i}`
  }
}

class ListenerState {
  constructor (i) {
    this.i = i
  }
}

class ClosureRecord {
  constructor (i) {
    this.i = i
  }
}

const sessions = new Map()
const bus = new EventEmitter()
bus.setMaxListeners(0)

function makeTracker () {
  const seen = []
  return function track (i) {
    seen.push(new ClosureRecord(i))
  }
}

const track = makeTracker()

function leak (n) {
  for (let i = 0; i < n; i++) {
    const k = sessions.size
    sessions.set(`s${k}`, new PlantedRecord(k))
  }
}

function leakListeners (n) {
  for (let i = 0; i < n; i++) {
    const state = new ListenerState(i)
    bus.on('tick', () => state.i)
  }
}

function leakClosure (n) {
  for (let i = 0; i < n; i++) track(i)
}

module.exports = { sessions, bus, track, leak, leakListeners, leakClosure }
