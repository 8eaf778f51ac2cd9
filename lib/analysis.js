'use strict'
// summarize / diff / retainers: options validated here, at the call (a bad option throws
// synchronously); the analysis itself runs in Rust on its own `leakguard-analysis` thread
// and settles a promise. An AbortSignal sets the run's cancel flag (rejects with
// ANALYSIS_ABORTED); `onProgress({ phase, done, total, snapshot? })` is called on the JS
// thread at most ~10 times a second per phase and never keeps the process alive.

const fsp = require('node:fs/promises')
const { binding, fromNative } = require('./native')
const { coded } = require('./errors')
const V = require('./validate')
const { invalidOption } = require('./errors')

const METHODS = ['auto', 'id', 'aggregate']
const SUMMARIZE_KEYS = ['signal', 'onProgress', 'limit']
const DIFF_KEYS = ['signal', 'onProgress', 'method', 'top', 'pathLimit', 'minGrowth']
const RETAINERS_KEYS = ['signal', 'onProgress', 'className', 'limit']

function snapshotPath (value, name) {
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw invalidOption(name, 'a non-empty string (the path of a .heapsnapshot or .heapsnapshot.gz file)', value)
  }
  return value
}

function common (o, name) {
  const signal = V.optSignal(o, 'signal', `${name}.signal`)
  const onProgress = o.onProgress
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw invalidOption(`${name}.onProgress`, 'a function', onProgress)
  }
  return { signal, onProgress }
}

/** Start one native analysis with cancellation and progress wired. */
function run (start, { signal, onProgress }) {
  if (signal && signal.aborted) {
    return Promise.reject(coded(Error, 'ANALYSIS_ABORTED', 'leakguard: snapshot analysis aborted before it started'))
  }
  const control = new binding.AnalysisControl()
  const progress = onProgress
    ? (args) => {
        // The binding passes (phase, done, total, snapshot) as one array.
        const [phase, done, total, snapshot] = args
        try {
          onProgress(snapshot ? { phase, done, total, snapshot } : { phase, done, total })
        } catch {
          // A throwing progress callback must not take the process down.
        }
      }
    : undefined
  const onAbort = () => control.cancel()
  if (signal) signal.addEventListener('abort', onAbort, { once: true })
  let promise
  try {
    promise = start(control, progress)
  } catch (err) {
    if (signal) signal.removeEventListener('abort', onAbort)
    return Promise.reject(fromNative(err))
  }
  return promise.then(
    (text) => {
      if (signal) signal.removeEventListener('abort', onAbort)
      return JSON.parse(text)
    },
    (err) => {
      if (signal) signal.removeEventListener('abort', onAbort)
      throw fromNative(err)
    }
  )
}

/** summarize(path, { signal?, onProgress?, limit? }) → Promise<SnapshotSummary> */
function summarize (path, options) {
  snapshotPath(path, 'path')
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, SUMMARIZE_KEYS, 'options')
  const limit = V.optNumber(o, 'limit', { name: 'options.limit', min: 0, integer: true })
  const c = common(o, 'options')
  return run((control, progress) => binding.analysisSummarize(path, control, progress), c).then((s) => {
    if (limit !== undefined) s.classes = s.classes.slice(0, limit)
    return s
  })
}

/** retainers(path, { className, limit?, signal?, onProgress? }) → Promise<RetainerPath[]> */
function retainers (path, options) {
  snapshotPath(path, 'path')
  if (options === undefined) throw invalidOption('options', 'an object with a className', options)
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, RETAINERS_KEYS, 'options')
  const className = V.optString(o, 'className', { name: 'options.className', maxLength: 4096 })
  if (className === undefined) throw invalidOption('options.className', 'a non-empty string', undefined)
  const limit = V.optNumber(o, 'limit', { name: 'options.limit', min: 1, max: 10000, integer: true }) ?? 10
  const c = common(o, 'options')
  return run((control, progress) => binding.analysisRetainers(path, className, limit, control, progress), c)
}

/** `<dir>/<name>.heapsnapshot(.gz)` → `<dir>/<name>.json` (the capture manifest). */
function manifestPath (path) {
  const m = /^(.*)\.heapsnapshot(\.gz)?$/.exec(path)
  return m ? `${m[1]}.json` : null
}

async function readManifest (path) {
  const p = manifestPath(path)
  if (!p) return null
  try {
    const m = JSON.parse(await fsp.readFile(p, 'utf8'))
    return m && typeof m === 'object' && typeof m.pid === 'number' && typeof m.mode === 'string' ? m : null
  } catch {
    return null
  }
}

/**
 * Whether node ids can be compared, from leakguard's capture manifests: only inline
 * captures of one process keep V8's HeapObjectsMap (a fork child numbers its heap afresh).
 * Without both manifests the native side decides from the data.
 */
async function chooseMethod (before, after) {
  const [a, b] = await Promise.all([readManifest(before), readManifest(after)])
  if (!a || !b) return { method: 'auto', reason: undefined }
  if (a.mode === 'fork' || b.mode === 'fork') {
    return { method: 'aggregate', reason: `manifests: ${a.mode} then ${b.mode} capture; a fork child assigns its own node ids` }
  }
  if (a.pid !== b.pid || a.hostname !== b.hostname) {
    return { method: 'aggregate', reason: `manifests: different processes (pid ${a.pid} and ${b.pid})` }
  }
  return { method: 'id', reason: `manifests: inline captures of one process (pid ${a.pid}); node ids are stable` }
}

/** diff(before, after, { method?, top?, pathLimit?, minGrowth?, signal?, onProgress? }) → Promise<DiffReport> */
function diff (before, after, options) {
  snapshotPath(before, 'before')
  snapshotPath(after, 'after')
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, DIFF_KEYS, 'options')
  const method = V.optEnum(o, 'method', METHODS, 'options.method') ?? 'auto'
  const top = V.optNumber(o, 'top', { name: 'options.top', min: 0, max: 1000, integer: true }) ?? 5
  const pathLimit = V.optNumber(o, 'pathLimit', { name: 'options.pathLimit', min: 1, max: 1000, integer: true }) ?? 3
  const minGrowth = V.optNumber(o, 'minGrowth', { name: 'options.minGrowth', min: 1, integer: true }) ?? 10
  const c = common(o, 'options')
  const chosen = method === 'auto' ? chooseMethod(before, after) : Promise.resolve({ method, reason: 'requested' })
  return chosen.then(({ method, reason }) =>
    run((control, progress) => binding.analysisDiff(before, after, { method, reason, top, pathLimit, minGrowth }, control, progress), c)
  )
}

module.exports = { summarize, diff, retainers, manifestPath }
