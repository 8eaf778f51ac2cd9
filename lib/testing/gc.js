'use strict'
// collectGarbage(): a full, reliable collection from any test runner, with or without
// --expose-gc. Runs on the JS thread (a collection can only be asked for there).
//
// Without --expose-gc, Node's documented way is used once: turn the V8 flag on, read `gc`
// from a fresh context (V8 installs it in contexts created while the flag is on), then
// turn the flag off again so no later context sees a `gc` global the user did not ask
// for. The function works for the whole isolate, so it is kept.
//
// Timers come from node:timers, never the globals: Jest's and Vitest's fake timers
// replace the globals, and a collection must not wait on a clock the test has stopped.

const v8 = require('node:v8')
const vm = require('node:vm')
const timers = require('node:timers')

let gcFn = null

/** Whether the process itself was started with --expose-gc (execArgv or NODE_OPTIONS). */
function startedWithExposeGc () {
  const flags = [...process.execArgv, ...String(process.env.NODE_OPTIONS || '').split(/\s+/)]
  return flags.some((f) => f === '--expose-gc' || f === '--expose_gc')
}

/** The isolate's `gc` function, enabling it the documented way when not exposed. */
function gcFunction () {
  if (gcFn) return gcFn
  if (typeof globalThis.gc === 'function') {
    gcFn = globalThis.gc
    return gcFn
  }
  const already = startedWithExposeGc()
  v8.setFlagsFromString('--expose-gc')
  try {
    gcFn = vm.runInNewContext('gc')
  } finally {
    if (!already) v8.setFlagsFromString('--no-expose-gc')
  }
  if (typeof gcFn !== 'function') {
    gcFn = null
    throw new Error('leakguard internal: V8 did not expose gc() after --expose-gc')
  }
  return gcFn
}

const turn = () => new Promise((resolve) => timers.setImmediate(resolve))
const tick = () => new Promise((resolve) => timers.setTimeout(resolve, 1))

/** Most event-loop turns to wait for the sentinel's finalizer before giving up on it. */
const MAX_FINALIZER_TURNS = 20

/**
 * Two major collections with event-loop turns between, so that WeakRefs are released
 * (V8 keeps a WeakRef's target alive until the end of the job that made or read it),
 * FinalizationRegistry callbacks run and the objects they released are collected too.
 * Then waits (bounded) until a sentinel of its own has been finalized: the cleanup task
 * has run.
 */
async function collectGarbage () {
  const gc = gcFunction()
  let finalized = false
  const registry = new FinalizationRegistry(() => { finalized = true })
  const token = {}
  registry.register({}, 0, token)
  for (let i = 0; i < 2; i++) {
    await turn()
    gc()
    await tick()
  }
  for (let i = 0; !finalized && i < MAX_FINALIZER_TURNS; i++) {
    await tick()
    if (i % 5 === 4) gc()
  }
  registry.unregister(token) // also keeps the registry alive until here
  await turn()
  return undefined
}

module.exports = { collectGarbage, gcFunction, turn }
