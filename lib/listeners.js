'use strict'
// Listener auditing (issue #5): find listeners leaked onto long-lived emitters, and the
// line that adds them.
//
// What runs where:
// - Hot path (JS, every add/remove on an audited emitter): the original method, then a
//   few integer checks. Nothing reaches Rust and nothing is allocated unless a pair is
//   suspicious and its per-tick stack budget is not spent.
// - Tick (JS then Rust, once per sampling interval): count the listeners of every audited
//   (emitter, event) pair, hand the counts to the Rust ledger in one batch, which keeps
//   the series and judges growth; hand over the call sites found since the last tick.
// - Next turn of the event loop after a capture (an unref'd immediate): format the few
//   captured stacks into call sites (`file:line:column` of the first user frame).
//
// Nothing here retains an audited emitter or its listeners: emitters are held through
// WeakRefs, per-emitter state sits in a WeakMap keyed by the emitter (and, while it has a
// suspicious pair, under a module-private symbol on it, pointing back only weakly),
// captured stacks are formatted and dropped on the next turn of the loop, and call-site
// records are keyed weakly by the listener function.

const { EventEmitter, getEventListeners } = require('node:events')
const path = require('node:path')
const { fileURLToPath } = require('node:url')
const { performance } = require('node:perf_hooks')
const V = require('./validate')
const { coded, invalidOption } = require('./errors')
const { binding, call } = require('./native')

const LISTENER_KEYS = ['emitters', 'auditListeners', 'listenerAudit']

/** The auditor's own tick interval when WatchOptions.intervalMs is not given (ms). */
const DEFAULT_INTERVAL_MS = 1000

/** Tunables of `listenerAudit` (all counts of samples or listeners: they scale with the interval). */
const TUNABLES = {
  windowSamples: { def: 60, min: 8, max: 10000 }, // samples judged per pair (long window)
  minGrowth: { def: 5, min: 1, max: 1e6 }, // net listeners a window must grow by
  suspectGrowth: { def: 10, min: 1, max: 1e6 }, // growth over the first count that makes a pair suspect
  confirmSamples: { def: 2, min: 1, max: 1000 }, // consecutive growing evaluations before a report
  stacksPerTick: { def: 8, min: 0, max: 1000 }, // stacks captured per suspicious pair per tick
  stackFrames: { def: 10, min: 1, max: 200 }, // Error.stackTraceLimit while capturing
  maxCallSites: { def: 5, min: 0, max: 32 }, // call sites per reported pair
  registerAt: { def: 5, min: 1, max: 1e6 } // 'all': an emitter is audited once one event has this many
}

/** At most this many unformatted stacks wait to be formatted. */
const MAX_PENDING = 512

const LIB_DIR = __dirname + path.sep
const ENTRY = path.join(__dirname, '..', 'index.js')

const EMITTER_ADDS = ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener']
const EMITTER_REMOVES = ['removeListener', 'off']

// ---------------------------------------------------------------------------------------
// Options

/**
 * Validate the WatchOptions keys this module owns (throws coded errors at the call).
 * `intervalMs` belongs to the monitor, which validates it; it is only read here.
 */
function normalizeListenerOptions (o) {
  const auditListeners = V.optEnum(o, 'auditListeners', ['tracked', 'all']) || 'tracked'
  const emitters = []
  if (o.emitters !== undefined) {
    const e = V.plainObject(o.emitters, 'emitters')
    for (const name of Object.keys(e)) {
      if (name.length === 0) throw invalidOption('emitters', 'an object whose keys are non-empty names', name)
      if (kindOf(e[name]) === null) throw notAnEmitter(`emitters.${name}`, e[name])
      // held weakly: options live as long as the guard and must not keep an emitter alive
      emitters.push({ name, ref: new WeakRef(e[name]) })
    }
  }
  const la = V.plainObject(o.listenerAudit, 'listenerAudit')
  V.knownKeys(la, Object.keys(TUNABLES), 'listenerAudit')
  const tun = {}
  for (const [k, t] of Object.entries(TUNABLES)) {
    const v = V.optNumber(la, k, { name: `listenerAudit.${k}`, min: t.min, max: t.max, integer: true })
    tun[k] = v === undefined ? t.def : v
  }
  const iv = o.intervalMs
  const intervalMs = typeof iv === 'number' && Number.isFinite(iv) && iv > 0 ? iv : DEFAULT_INTERVAL_MS
  return { auditListeners, emitters, intervalMs, ...tun }
}

function shown (v) {
  if (v === null) return 'null'
  if (typeof v === 'object') return `an object (${(v.constructor && v.constructor.name) || 'Object'})`
  if (typeof v === 'string') return JSON.stringify(v.slice(0, 80))
  return typeof v === 'function' ? 'a function' : String(v)
}

function notAnEmitter (what, v) {
  return coded(TypeError, 'LISTENERS_NOT_AN_EMITTER',
    `leakguard: ${what} must be an EventEmitter, an EventEmitter-like object (on, removeListener, listenerCount or listeners) or an EventTarget (addEventListener, removeEventListener); got ${shown(v)}`,
    { option: what })
}

/** 'emitter' (Node's EventEmitter or duck-typed, e.g. eventemitter3), 'target' (EventTarget), or null. */
function kindOf (e) {
  if (e === null || (typeof e !== 'object' && typeof e !== 'function')) return null
  if (typeof EventTarget === 'function' && e instanceof EventTarget) return 'target'
  if ((typeof e.on === 'function' || typeof e.addListener === 'function') &&
      (typeof e.removeListener === 'function' || typeof e.off === 'function') &&
      (typeof e.listenerCount === 'function' || typeof e.listeners === 'function')) return 'emitter'
  if (typeof e.addEventListener === 'function' && typeof e.removeEventListener === 'function') return 'target'
  return null
}

function defaultName (e) {
  if (e === process) return 'process'
  const c = e.constructor
  return (c && typeof c.name === 'string' && c.name) || 'Object'
}

// Node's EventTargets keep their listeners in a Map under a private symbol; the public
// getEventListeners() counts them but needs the type, and there is no public list of types.
const kEvents = (() => {
  try {
    return Object.getOwnPropertySymbols(new EventTarget()).find((s) => s.description === 'kEvents')
  } catch {
    return undefined
  }
})()

// ---------------------------------------------------------------------------------------
// Process-wide state shared with the hot path. One auditor runs at a time (watch() is
// process-wide); these are reset by its start() and stop().

let active = null // the running ListenerAuditor
let states = new WeakMap() // emitter → EmitterState
let suspects = 0 // suspicious pairs: 0 keeps the add path to two integer checks
let sitesLive = 0 // captured records still linked to a listener: 0 keeps removals to one check
let depth = 0 // > 0 inside a patched method (once() calls on(): count it once)
let registerAt = TUNABLES.registerAt.def
let stackFrames = TUNABLES.stackFrames.def
let pending = [] // captured, unformatted stacks (formatted on the next turn of the loop)
let flushScheduled = null // the immediate that formats `pending`
let addSeq = 0 // adds seen by the prototype wrappers (sampling of checkRegister)
let nextCheck = 0
let captured = 0 // stacks captured since start (the cost paid, for the report)
let siteOps = { ids: [], locs: [], deltas: [] } // call-site changes for the ledger
const siteOf = new WeakMap() // listener → [SiteRecord]
// On an emitter with a suspicious pair, its state under a module-private symbol: the
// add path finds it with one property load (a WeakMap lookup cost more than the rest of
// the wrapper). Set while the emitter has a suspicious pair, undefined after, deleted at stop().
const kHot = Symbol('leakguard.listeners.hot')
let proto = null // { saved, wrapperOn } while EventEmitter.prototype is patched

/**
 * Called after a listener was added to an emitter with a suspicious pair (`st` is its
 * state, found through the kHot property). Costs two loads once this tick's budget is spent.
 */
function noteAdd (st, type, listener, fn) {
  if (st.hotBudget === 0) return
  const p = st.pairs.get(type)
  if (p === undefined || !p.suspicious || p.budget === 0 || --p.skip > 0) return
  st.hotBudget--
  captureSite(p, listener, fn)
}

function captureSite (p, listener, fn) {
  p.budget--
  p.skip = 1 + ((Math.random() * 4) | 0)
  if (pending.length >= MAX_PENDING) return
  // runs inside the user's add: whatever happens here must not reach it
  const limit = Error.stackTraceLimit
  try {
    const holder = {}
    Error.stackTraceLimit = stackFrames
    Error.captureStackTrace(holder, fn) // unformatted: cheap; formatted by formatPending()
    Error.stackTraceLimit = limit
    captured++
    const rec = { pair: p, epoch: p.epoch, holder, loc: null, dead: false, linked: false }
    pending.push(rec)
    if (flushScheduled === null) {
      flushScheduled = setImmediate(formatPending)
      flushScheduled.unref()
    }
    if (typeof listener === 'function' || (listener !== null && typeof listener === 'object')) {
      const list = siteOf.get(listener)
      if (list === undefined) siteOf.set(listener, [rec])
      else list.push(rec)
      rec.linked = true
      sitesLive++
    }
  } catch {
    try { Error.stackTraceLimit = limit } catch {}
  }
}

/**
 * Format every captured stack into a call site. Runs on the next turn of the event loop
 * after a capture (an unref'd immediate), and at each tick: an unformatted stack holds its
 * frames' functions and receivers, so it must not wait a whole interval.
 */
function formatPending () {
  flushScheduled = null
  if (pending.length === 0) return
  const batch = pending
  pending = []
  withRawStacks(() => {
    for (const rec of batch) {
      let loc = null
      try { loc = locate(rec.holder.stack) } catch {}
      rec.holder = null
      rec.loc = loc || '<unknown>'
      if (!rec.dead && rec.epoch === rec.pair.epoch) pushSite(rec.pair.id, rec.loc, 1)
    }
  })
}

/** Called after `listener` was removed from `em`: its sampled call site no longer counts. */
function noteRemove (listener) {
  try {
    unlinkListener(listener)
  } catch {} // runs inside the user's removal: never throw into it
}

function unlinkListener (listener) {
  if (listener === null || (typeof listener !== 'function' && typeof listener !== 'object')) return
  let list = siteOf.get(listener)
  let key = listener
  if (list === undefined && typeof listener.listener === 'function') {
    // once(): Node removes its wrapper, whose .listener is the function the user added
    key = listener.listener
    list = siteOf.get(key)
  }
  if (list === undefined) return
  const rec = list.pop()
  if (list.length === 0) siteOf.delete(key)
  unlink(rec)
}

function unlink (rec) {
  if (rec.dead) return
  rec.dead = true
  if (rec.linked && sitesLive > 0) sitesLive--
  if (rec.loc !== null && rec.epoch === rec.pair.epoch) pushSite(rec.pair.id, rec.loc, -1)
}

function pushSite (id, loc, delta) {
  siteOps.ids.push(id)
  siteOps.locs.push(loc)
  siteOps.deltas.push(delta)
}

/** removeAllListeners([type]): every sampled site of the pair(s) is gone. */
function noteRemoveAll (em, hasType, type) {
  const st = states.get(em)
  if (st === undefined) return
  for (const p of st.pairs.values()) {
    if (hasType && p.type !== type) continue
    p.epoch++
    p.clear = true
  }
}

// ---------------------------------------------------------------------------------------
// Patches. Both kinds wrap the original with the same shape: call it, then note the
// add/remove. `once` and `prependOnceListener` call `on`/`prependListener` inside Node:
// `depth` makes the outer call the one that counts, so the stack is cut at the user's call.

// The prototype wrappers keep Node's fixed signatures (fast, no `arguments`); instance
// wrappers pass every argument through (eventemitter3's removeListener takes four).

function makeProtoAdd (orig, nests) {
  // on/addListener/prependListener call no other add method: no depth bookkeeping, only
  // a check that no outer wrapper (once, an instance wrapper) is already counting
  const wrapper = nests
    ? function leakguardAdd (type, listener) {
      if (depth !== 0) return orig.call(this, type, listener)
      depth++
      let r
      try {
        r = orig.call(this, type, listener)
      } finally {
        depth--
      }
      if (suspects !== 0) { const st = this[kHot]; if (st !== undefined) noteAdd(st, type, listener, wrapper) }
      if (++addSeq >= nextCheck) checkRegister(this, type)
      return r
    }
    : function leakguardAdd (type, listener) {
      const r = orig.call(this, type, listener)
      if (depth === 0) {
        if (suspects !== 0) { const st = this[kHot]; if (st !== undefined) noteAdd(st, type, listener, wrapper) }
        if (++addSeq >= nextCheck) checkRegister(this, type)
      }
      return r
    }
  return wrapper
}

/**
 * 'all': an emitter is audited from the first time one of its events is seen holding
 * `registerAt` listeners (Node keeps a function for one listener, an array for more).
 * Looking is sampled, one add in 1–16 at random (8.5 on average): a dictionary lookup on
 * every add was the largest part of the wrapper's cost, and a growing event is seen a few
 * additions later all the same. Random gaps cannot lock onto a periodic pattern of adds.
 */
function checkRegister (em, type) {
  nextCheck = addSeq + 1 + ((Math.random() * 16) | 0)
  const evs = em._events
  if (evs === undefined || evs === null) return
  const l = evs[type]
  if (l !== undefined && typeof l !== 'function' && l.length >= registerAt && active !== null && !states.has(em)) {
    try {
      active._register(em, null, false)
    } catch {} // runs inside the user's add: never throw into it
  }
}

function makeProtoRemove (orig) {
  return function leakguardRemove (type, listener) {
    const r = orig.call(this, type, listener)
    if (sitesLive !== 0 && this[kHot] !== undefined) noteRemove(listener)
    return r
  }
}

function makeAdd (orig, st) {
  if (st.fixed) {
    // a Node EventEmitter: Node's fixed signatures, no `arguments`
    const fixed = function leakguardAdd (type, listener) {
      if (depth !== 0) return orig.call(this, type, listener)
      depth++
      let r
      try {
        r = orig.call(this, type, listener)
      } finally {
        depth--
      }
      if (suspects !== 0) { const st = this[kHot]; if (st !== undefined) noteAdd(st, type, listener, fixed) }
      return r
    }
    return fixed
  }
  const wrapper = function leakguardAdd (type, listener) {
    if (depth !== 0) return orig.apply(this, arguments)
    depth++
    let r
    try {
      r = orig.apply(this, arguments)
    } finally {
      depth--
    }
    if (st.tally !== null) tally(st, type, 1)
    else if (st.seeTypes) st.types.add(type)
    if (suspects !== 0) { const st = this[kHot]; if (st !== undefined) noteAdd(st, type, listener, wrapper) }
    return r
  }
  return wrapper
}

function makeRemove (orig, st) {
  if (st.fixed) {
    return function leakguardRemove (type, listener) {
      const r = orig.call(this, type, listener)
      if (sitesLive !== 0 && this[kHot] !== undefined) noteRemove(listener)
      return r
    }
  }
  return function leakguardRemove (type, listener) {
    const r = orig.apply(this, arguments)
    if (st.tally !== null) tally(st, type, -1)
    if (sitesLive !== 0 && this[kHot] !== undefined) noteRemove(listener)
    return r
  }
}

/** EventTargets that are not Node's: no way to count, so count the adds and removes we see. */
function tally (st, type, d) {
  st.types.add(type)
  st.tally.set(type, Math.max(0, (st.tally.get(type) || 0) + d))
}

function makeRemoveAll (orig) {
  return function leakguardRemoveAll (type) {
    const r = orig.apply(this, arguments)
    // Node tells removeAllListeners() from removeAllListeners(undefined) by arguments.length
    if (sitesLive !== 0 || suspects !== 0) noteRemoveAll(this, arguments.length !== 0, type)
    return r
  }
}

/**
 * Wrap the listener methods of `target`: EventEmitter.prototype (st null) or one
 * audited instance. Returns the undo record.
 */
function wrapMethods (target, st) {
  const saved = []
  const made = new Map() // original → wrapper, so that on === addListener stays true
  const add = st === null ? (o, name) => makeProtoAdd(o, name === 'once' || name === 'prependOnceListener') : (o) => makeAdd(o, st)
  const remove = st === null ? makeProtoRemove : (o) => makeRemove(o, st)
  const groups = [[EMITTER_ADDS, add], [EMITTER_REMOVES, remove], [['removeAllListeners'], makeRemoveAll]]
  if (st !== null && st.kind === 'target') groups.splice(0, 3, [['addEventListener'], add], [['removeEventListener'], remove])
  for (const [names, make] of groups) {
    for (const name of names) {
      const orig = target[name]
      if (typeof orig !== 'function') continue
      let w = made.get(orig)
      if (w === undefined) {
        w = make(orig, name)
        made.set(orig, w)
      }
      const own = Object.getOwnPropertyDescriptor(target, name)
      Object.defineProperty(target, name, { value: w, writable: true, configurable: true, enumerable: own ? own.enumerable : false })
      saved.push({ name, own, wrapper: w })
    }
  }
  return saved
}

/** Undo `saved` where our wrapper is still in place; returns the names someone re-patched since. */
function unwrapMethods (target, saved) {
  const left = []
  for (const { name, own, wrapper } of saved) {
    const now = Object.getOwnPropertyDescriptor(target, name)
    if (!now || now.value !== wrapper) {
      left.push(name)
      continue
    }
    if (own) Object.defineProperty(target, name, own)
    else delete target[name]
  }
  return left
}

// ---------------------------------------------------------------------------------------
// Call sites

function rawCallSites (_err, callSites) { return callSites }

function isOurs (file) {
  return file === ENTRY || file.startsWith(LIB_DIR)
}

function isInternal (file) {
  return file.startsWith('node:') || file.startsWith('internal/') || !file.includes('/') && !file.includes('\\')
}

function toPath (file) {
  if (file.startsWith('file://')) {
    try { return fileURLToPath(file) } catch { return file }
  }
  return file
}

/** The first frame outside Node's internals and leakguard, as `file:line:column`. */
function locate (stack) {
  const frames = []
  if (Array.isArray(stack)) {
    for (const cs of stack) {
      const f = cs && typeof cs.getFileName === 'function' ? cs.getFileName() : null
      if (!f) continue
      frames.push({ file: toPath(f), line: cs.getLineNumber(), col: cs.getColumnNumber() })
    }
  } else if (typeof stack === 'string') {
    // already formatted by someone else: "    at fn (file:line:col)" or "    at file:line:col"
    for (const line of stack.split('\n')) {
      const m = /^\s*at (?:.*\()?(.+?):(\d+):(\d+)\)?$/.exec(line)
      if (m) frames.push({ file: toPath(m[1]), line: Number(m[2]), col: Number(m[3]) })
    }
  }
  let fallback = null
  for (const fr of frames) {
    if (isOurs(fr.file)) continue
    const loc = `${fr.file}:${fr.line}:${fr.col}`
    if (!isInternal(fr.file)) return loc
    if (fallback === null) fallback = loc
  }
  return fallback
}

/** Read `.stack` of each holder with structured call sites (Node's formatting is not run). */
function withRawStacks (fn) {
  const desc = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace')
  try {
    Error.prepareStackTrace = rawCallSites
  } catch {
    return fn()
  }
  try {
    return fn()
  } finally {
    if (desc) Object.defineProperty(Error, 'prepareStackTrace', desc)
    else delete Error.prepareStackTrace
  }
}

/** Point kHot of `st`'s emitter at `value` (its state, or undefined). Frozen emitters get no call sites. */
function setHot (st, value) {
  const em = st.ref.deref()
  if (em === undefined || em[kHot] === value) return
  try {
    if (Object.prototype.hasOwnProperty.call(em, kHot)) em[kHot] = value
    else if (value !== undefined) Object.defineProperty(em, kHot, { value, writable: true, configurable: true, enumerable: false })
  } catch {}
}

// ---------------------------------------------------------------------------------------

/**
 * Events: 'listener-leak' (ListenerLeak), once per pair each time it is confirmed.
 *
 * The auditor takes one reading per tick. The guard calls `tick()` once per sampling
 * interval; until something does, `start()` runs an unref'd timer of its own every
 * `intervalMs` (WatchOptions.intervalMs, default 1000 ms), and the first outside call of
 * `tick()` stops that timer and hands the clock to the caller.
 */
class ListenerAuditor extends EventEmitter {
  constructor (options) {
    super()
    this.options = options || normalizeListenerOptions({})
    this._running = false
    this._stopped = false
    this._timer = null
    this._ledger = null
    this._entries = new Set() // EmitterState (each holds its emitter weakly)
    this._pairs = new Map() // pair id → Pair
    this._nextPair = 1
    this._nextEmitter = 1
    this._queued = [] // track() before start(): { name, ref }
    this._warnings = []
    this._announce = new Map() // leak pair id → ticks it waited for a call site
    this._ticks = 0
    this._captured = 0
    this._leftPatched = []
    this._lastError = null
    this._onWarning = (w) => this._warning(w)
  }

  start () {
    if (this._running) return this
    if (this._stopped) throw coded(Error, 'LISTENERS_STOPPED', 'leakguard: this listener auditor was stopped; call leakguard.watch() again for a new guard')
    if (active !== null) throw coded(Error, 'LISTENERS_PATCH_BUSY', 'leakguard: another listener auditor is running in this process; stop it first')
    const o = this.options
    this._ledger = new binding.ListenerLedger({
      windowSamples: o.windowSamples, minGrowth: o.minGrowth, suspectGrowth: o.suspectGrowth, confirmSamples: o.confirmSamples
    })
    active = this
    states = new WeakMap()
    suspects = 0
    sitesLive = 0
    pending = []
    captured = 0
    siteOps = { ids: [], locs: [], deltas: [] }
    registerAt = o.registerAt
    stackFrames = o.stackFrames
    this._running = true
    process.on('warning', this._onWarning)
    if (o.auditListeners === 'all') {
      const p = EventEmitter.prototype
      proto = { saved: wrapMethods(p, null), wrapperOn: null }
      proto.wrapperOn = p.on
    }
    for (const { name, ref } of [...o.emitters, ...this._queued]) {
      const em = ref.deref()
      if (em !== undefined) this._track(em, name)
    }
    this._queued = []
    this._timer = setInterval(() => this._tick(), o.intervalMs)
    this._timer.unref()
    return this
  }

  /** Uninstall every patch, stop the timer and the warning listener. The report stays readable. */
  stop () {
    if (this._stopped) return
    this._stopped = true
    if (!this._running) return
    this._running = false
    if (this._timer) clearInterval(this._timer)
    this._timer = null
    this._flushSites()
    if (flushScheduled !== null) clearImmediate(flushScheduled)
    flushScheduled = null
    process.removeListener('warning', this._onWarning)
    const left = []
    if (proto !== null) {
      for (const n of unwrapMethods(EventEmitter.prototype, proto.saved)) left.push(`EventEmitter.prototype.${n}`)
      proto = null
    }
    for (const st of this._entries) {
      const em = st.ref.deref()
      if (em !== undefined && Object.prototype.hasOwnProperty.call(em, kHot)) {
        try { delete em[kHot] } catch {}
      }
      if (em !== undefined && st.saved !== null) {
        for (const n of unwrapMethods(em, st.saved)) left.push(`${st.name}.${n}`)
      }
      st.saved = null
    }
    // Wrappers someone else wrapped over ours stay, and pass through: with no active
    // auditor and no suspects they only call the original.
    this._leftPatched = left
    this._captured = captured
    this._entries.clear()
    active = null
    states = new WeakMap()
    suspects = 0
    sitesLive = 0
    pending = []
  }

  /** Audit `emitter` under `name` (an EventEmitter, a duck-typed emitter or an EventTarget). */
  track (emitter, name) {
    if (kindOf(emitter) === null) throw notAnEmitter('emitter', emitter)
    if (typeof name !== 'string' || name.length === 0) throw invalidOption('name', 'a non-empty string', name)
    if (this._stopped) throw coded(Error, 'LISTENERS_STOPPED', 'leakguard: the guard was stopped; call leakguard.watch() again to track emitters')
    if (!this._running) {
      this._queued.push({ name, ref: new WeakRef(emitter) })
      return
    }
    this._track(emitter, name)
  }

  _track (em, name) {
    const st = states.get(em)
    if (st === undefined) {
      this._register(em, name, true)
      return
    }
    st.name = name
    for (const p of st.pairs.values()) this._ledger.rename(p.id, name)
    if (st.saved === null && this._needsPatch(em, st.kind)) st.saved = tryWrap(em, st)
  }

  _needsPatch (em, kind) {
    return !(kind === 'emitter' && proto !== null && em.on === proto.wrapperOn)
  }

  /** Start auditing `em`; `patch`: wrap its methods unless the prototype patch covers it. */
  _register (em, name, patch) {
    const kind = kindOf(em)
    if (kind === null) return null
    const st = {
      id: this._nextEmitter++,
      name: name || defaultName(em),
      kind,
      ref: new WeakRef(em),
      pairs: new Map(), // type → Pair
      types: new Set(), // types seen (duck-typed emitters without eventNames, EventTargets)
      saved: null,
      // no way to list its event types (EventTargets, emitters without eventNames()): note them on add
      seeTypes: kind === 'target' || typeof em.eventNames !== 'function',
      hotPairs: 0, // suspicious pairs
      hotBudget: 0, // stacks left to capture this tick over all of them
      fixed: kind === 'emitter' && em instanceof EventEmitter, // Node's signatures: wrap without `arguments`
      tally: kind === 'target' && !(typeof EventTarget === 'function' && em instanceof EventTarget) ? new Map() : null
    }
    states.set(em, st)
    this._entries.add(st)
    if (patch && this._needsPatch(em, kind)) st.saved = tryWrap(em, st)
    return st
  }

  _pair (st, type) {
    let p = st.pairs.get(type)
    if (p === undefined) {
      p = { id: this._nextPair++, type, st, suspicious: false, budget: 0, skip: 1, epoch: 0, clear: false }
      st.pairs.set(type, p)
      this._pairs.set(p.id, p)
      this._ledger.addPair(p.id, st.name, typeof type === 'symbol' ? type.toString() : String(type))
    }
    return p
  }

  _dropEmitter (st) {
    st.hotPairs = 0
    for (const p of st.pairs.values()) {
      if (p.suspicious) suspects--
      p.suspicious = false
      this._ledger.removePair(p.id)
      this._pairs.delete(p.id)
    }
    this._entries.delete(st)
  }

  _apply (ch, leaks) {
    const p = this._pairs.get(ch.id)
    if (p === undefined) return
    if (ch.suspicious !== p.suspicious) {
      suspects += ch.suspicious ? 1 : -1
      p.suspicious = ch.suspicious
      p.budget = this.options.stacksPerTick
      p.skip = 1
      const st = p.st
      st.hotPairs += ch.suspicious ? 1 : -1
      if (ch.suspicious) st.hotBudget += p.budget
      setHot(st, st.hotPairs > 0 ? st : undefined)
      if (!ch.suspicious) {
        // back at its floor: the sampled sites are history; their records go stale
        p.epoch++
        p.clear = true
        // with no suspect left every record is stale: removals can skip the lookup again
        if (suspects === 0) sitesLive = 0
      }
    }
    if (ch.newLeak && leaks) leaks.push(p.id)
  }

  /** Take one reading of every audited pair. The guard calls it once per sample. */
  tick () {
    if (this._timer) {
      clearInterval(this._timer)
      this._timer = null
    }
    this._tick()
  }

  _tick () {
    if (!this._running) return
    const leaks = []
    try {
      this._ticks++
      this._flushSites()
      const ids = []
      const counts = []
      const budget = this.options.stacksPerTick
      for (const st of this._entries) {
        const em = st.ref.deref()
        if (em === undefined) {
          this._dropEmitter(st)
          continue
        }
        for (const type of eventTypes(em, st)) this._pair(st, type)
        st.hotBudget = st.hotPairs * budget
        for (const p of st.pairs.values()) {
          const c = countOf(em, st, p.type)
          ids.push(p.id)
          counts.push(c)
          p.budget = budget
          if (c === 0) p.clear = true // listeners removed where we could not see it (once, signal)
          if (p.clear) {
            p.clear = false
            this._ledger.clearSites(p.id)
          }
        }
      }
      for (const ch of call(() => this._ledger.observe(ids, counts, performance.now()))) this._apply(ch, leaks)
    } catch (err) {
      this._lastError = err
    }
    // A new leak is announced with its call sites: a slow leak may be confirmed before
    // any of its adds was sampled, so it waits for the first (at most a window of readings).
    const due = []
    for (const id of leaks) this._announce.set(id, 0)
    for (const [id, waited] of this._announce) {
      const r = this._ledger.reportPair(id, this.options.maxCallSites)
      if (!r || r.state !== 'leak') this._announce.delete(id)
      else if (r.callSites.length > 0 || waited >= this.options.windowSamples) {
        this._announce.delete(id)
        due.push(r)
      } else this._announce.set(id, waited + 1)
    }
    // user handlers run outside the try: their exceptions are theirs
    for (const r of due) this.emit('listener-leak', toLeak(r))
  }

  /** Format captured stacks into call sites and hand every pending change to the ledger. */
  _flushSites () {
    formatPending()
    if (siteOps.ids.length > 0 && this._ledger) {
      const ops = siteOps
      siteOps = { ids: [], locs: [], deltas: [] }
      this._ledger.addSites(ops.ids, ops.locs, ops.deltas)
    }
  }

  /** Node's MaxListenersExceededWarning: attribute it, make the pair a suspect, track the emitter. */
  _warning (w) {
    try {
      if (!w || w.name !== 'MaxListenersExceededWarning') return
      const em = w.emitter !== undefined ? w.emitter : w.target
      if (kindOf(em) === null || w.type === undefined) return
      const st = states.get(em) || this._register(em, null, true)
      if (st === null) return
      const p = this._pair(st, w.type)
      const count = Number.isInteger(w.count) ? w.count : 0
      const ch = this._ledger.markWarned(p.id, count)
      if (ch) this._apply(ch, null)
      // the warning was created inside the add that crossed the limit: its stack names it
      const loc = withRawStacks(() => locate(w.stack))
      if (loc) pushSite(p.id, loc, 1)
      this._warnings.push({ emitter: st.name, event: String(w.type), count, location: loc, at: Date.now() })
      if (this._warnings.length > 20) this._warnings.shift()
    } catch (err) {
      this._lastError = err
    }
  }

  /** ListenerReport: confirmed leaks, suspects, Node's warnings, and what is audited. */
  report () {
    const all = []
    if (this._ledger) {
      this._flushSites()
      for (const r of this._ledger.report(this.options.maxCallSites)) all.push(toLeak(r))
    }
    return {
      mode: this.options.auditListeners,
      running: this._running,
      intervalMs: this.options.intervalMs,
      ticks: this._ticks,
      stacksCaptured: this._running ? captured : this._captured,
      emitters: this._entries.size,
      pairs: this._ledger ? this._ledger.size : 0,
      leaks: all.filter((l) => l.state === 'leak'),
      suspects: all.filter((l) => l.state === 'suspect'),
      warnings: this._warnings.map((w) => ({ ...w })),
      patchesLeftInPlace: this._leftPatched.slice(),
      lastError: this._lastError ? String(this._lastError.message || this._lastError) : null
    }
  }
}

function tryWrap (em, st) {
  try {
    return wrapMethods(em, st)
  } catch {
    return null // frozen or exotic: counted, but no call sites
  }
}

function eventTypes (em, st) {
  if (st.kind === 'emitter') {
    if (typeof em.eventNames === 'function') return em.eventNames()
    return st.types
  }
  // Node's (Safe)Map of types under kEvents, or else the types seen through our wrapper
  const map = kEvents !== undefined ? em[kEvents] : undefined
  if (map != null && typeof map.keys === 'function') {
    for (const k of map.keys()) st.types.add(k)
  }
  return st.types
}

function countOf (em, st, type) {
  if (st.kind === 'emitter') {
    if (typeof em.listenerCount === 'function') return em.listenerCount(type) >>> 0
    const l = em.listeners(type)
    return Array.isArray(l) ? l.length : 0
  }
  if (st.tally !== null) return st.tally.get(type) || 0
  return getEventListeners(em, type).length
}

function toLeak (r) {
  return {
    emitter: r.emitter,
    event: r.event,
    count: r.count,
    ratePerMinute: Math.round(r.ratePerMinute * 100) / 100,
    growing: r.growing,
    callSites: r.callSites.map((s) => ({ location: s.location, count: s.count })),
    state: r.state,
    floor: r.floor,
    warned: r.warned,
    samples: r.samples,
    since: r.leakSinceMs == null ? null : Math.round(performance.timeOrigin + r.leakSinceMs)
  }
}

module.exports = { ListenerAuditor, normalizeListenerOptions, LISTENER_KEYS }
