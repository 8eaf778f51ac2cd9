'use strict'
// The module whose exports the planted leaks hang on (analysis-leaks.test.js): a Map of
// records, an emitter's listeners, a closure's captured array, a Set on a module-level
// object, plain objects used as maps keyed per request, and a Map of id ↔ name. Beside
// them a Set and an object that hold as many entries at both captures (one of them
// churned), which the detectors must not report.

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

// A module-level object holding a Set that only grows (strings: V8 keeps small integers
// out of the heap graph, so a Set of numbers would show no entries).
const registry = { visitors: new Set(), stable: new Set() }
for (let i = 0; i < 40; i++) registry.stable.add(`stable-${i}`)
// Plain objects used as maps, one key per request: by name, and by integer id (V8 keeps
// those as the object's elements, not its properties); and one of constant size.
const byRequest = {}
const byUserId = {}
// Both ways between id and name: a small-integer key (not in the heap graph) in one entry,
// a string key in the next.
const lookup = new Map()
const settings = {}
for (let i = 0; i < 20; i++) settings[`opt${i}`] = `value-${i}`

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

let visits = 0
function leakSet (n) {
  for (let i = 0; i < n; i++) registry.visitors.add(`visitor-${visits++}`)
}

let requests = 0
function leakObject (n) {
  for (let i = 0; i < n; i++) {
    const k = requests++
    byRequest[`req-${k}`] = `body of request ${k}`
    byUserId[1000 + k] = `user ${k}`
    lookup.set(1000 + k, byUserId[1000 + k])
    lookup.set(byUserId[1000 + k], 1000 + k)
  }
}

// The stable Set keeps its size but its entries change (deleted slots become holes in
// its table until a rehash); the settings object only changes values.
let churned = 40
function churn (n) {
  for (let i = 0; i < n; i++) {
    registry.stable.delete(registry.stable.values().next().value)
    registry.stable.add(`stable-${churned++}`)
    settings[`opt${i % 20}`] = `value-${churned}`
  }
}

module.exports = { sessions, bus, track, registry, byRequest, byUserId, lookup, settings, leak, leakListeners, leakClosure, leakSet, leakObject, churn }
