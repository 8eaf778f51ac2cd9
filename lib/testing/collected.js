'use strict'
// expectCollected(): pass when an object can be collected, fail with the path that still
// holds it otherwise. Runs on the JS thread of the test.
//
// The helper holds the target only through a WeakRef, made in a synchronous frame that
// returns before any collection (the promise it hands back never references the target).
// To find the target again in a snapshot it is tagged with a non-enumerable symbol
// property holding an instance of a class named uniquely for this call
// (`LeakguardCollectMarker_<n>_<random>`): the marker is reachable only through the
// target, so the retainer path of the marker is the target's path plus one step.

const crypto = require('node:crypto')
const { performance } = require('node:perf_hooks')
const V = require('../validate')
const { invalidOption } = require('../errors')
const { collectGarbage, turn } = require('./gc')
const counts = require('./counts')
const { LeakError } = require('./errors')
const { acquire } = require('./lock')
const { makeWorkDir, removeWorkDir } = require('./workdir')

const KEYS = ['timeoutMs', 'dir', 'name']
const MARK = Symbol('leakguard.expectCollected')
let seq = 0

function normalizeOptions (options) {
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, KEYS, 'options')
  return {
    timeoutMs: V.optNumber(o, 'timeoutMs', { min: 0, max: 600000, integer: true }) ?? 500,
    dir: V.optString(o, 'dir'),
    name: V.optString(o, 'name', { maxLength: 200 })
  }
}

const isObject = (v) => v !== null && (typeof v === 'object' || typeof v === 'function')

/** Tag `obj` with a fresh marker; returns the marker's class name, or null when `obj` is not extensible. */
function tag (obj) {
  const markerName = `LeakguardCollectMarker_${++seq}_${crypto.randomBytes(4).toString('hex')}`
  // A class declared with this name: V8's snapshot names an instance by its
  // constructor's declared name (a name set at run time is not seen). markerName is
  // [A-Za-z0-9_] only.
  // eslint-disable-next-line no-new-func
  const Marker = new Function(`return class ${markerName} {}`)()
  try {
    Object.defineProperty(obj, MARK, { value: new Marker(), enumerable: false, configurable: true, writable: false })
    return markerName
  } catch {
    return null // frozen or sealed: collectable all the same, only the path cannot be shown
  }
}

/** A WeakRef to the (tagged) target; the target itself goes no further than this frame. */
function weakTarget (obj, what) {
  if (!isObject(obj)) throw invalidOption(what, 'an object (or a function returning one)', obj)
  return { ref: new WeakRef(obj), markerName: tag(obj) }
}

async function weakFromFactory (factory) {
  return weakTarget(await factory(), 'the value returned by target()')
}

async function wait (pending, opts, release) {
  const t0 = performance.now()
  let dir = null
  let keep = false
  try {
    const { ref, markerName } = await pending
    // The job that made the WeakRef keeps its target; let it end before collecting.
    await turn()
    let collections = 0
    do {
      await collectGarbage()
      collections++
      if (ref.deref() === undefined) return
      await turn() // deref() kept it for this job too
    } while (performance.now() - t0 < opts.timeoutMs)

    const waitedMs = Math.round(performance.now() - t0)
    dir = makeWorkDir(opts.dir)
    const snapshot = await counts.snapshot(dir)
    if (ref.deref() === undefined) return // released while the snapshot was taken
    keep = true
    let retainer = null
    if (markerName) {
      try {
        const [p] = await counts.pathsFor(snapshot, markerName, 1)
        if (p) retainer = { text: counts.withoutLastStep(p), steps: p.steps.slice(0, -1) }
      } catch (err) {
        retainer = { error: err.message }
      }
    }
    const what = opts.name ? `"${opts.name}"` : 'the object'
    const lines = [`leakguard: ${what} was not collected after ${collections} full ${collections === 1 ? 'collection' : 'collections'} in ${waitedMs} ms.`]
    if (retainer && retainer.text) lines.push('', 'It is still reachable through:', `  ${retainer.text}`)
    else if (retainer && retainer.error) lines.push('', `(no retainer path: ${retainer.error})`)
    else if (!markerName) lines.push('', '(no retainer path: the object is frozen or sealed, so it could not be tagged)')
    else lines.push('', '(no retainer path found from the GC roots in the snapshot)')
    lines.push('', `Snapshot kept: ${snapshot} (delete it when done: it holds every string of the test process).`)
    throw new LeakError('TEST_NOT_COLLECTED', lines.join('\n'), { retainer, snapshots: [snapshot], dir, collections })
  } finally {
    if (dir && !keep) removeWorkDir(dir)
    release()
  }
}

/**
 * `target` is an object, or a function returning one (or a promise of one). Validated at
 * the call; resolves when the object was collected, rejects with a LeakError
 * (TEST_NOT_COLLECTED) naming its retainer path otherwise.
 */
function expectCollected (target, options) {
  if (!isObject(target)) throw invalidOption('target', 'an object or a function returning one', target)
  const opts = normalizeOptions(options)
  let release
  try {
    release = acquire('expectCollected()')
  } catch (err) {
    return Promise.reject(err)
  }
  let pending
  try {
    pending = typeof target === 'function' ? weakFromFactory(target) : Promise.resolve(weakTarget(target, 'target'))
  } catch (err) {
    release()
    throw err
  }
  target = null // this frame keeps no reference either
  return wait(pending, opts, release)
}

module.exports = { expectCollected }
