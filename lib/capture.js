'use strict'
// capture(): the JS-thread half of a heap capture. The JS thread does only what must run
// here — read the heap figures, check headroom, call `v8.writeHeapSnapshot` into the
// addon's pipe — and everything else (gzip, tmp file, fsync, rename, manifest, retention)
// runs on Rust threads (`leakguard-capture`, then a libuv worker for the commit).

const v8 = require('node:v8')
const os = require('node:os')
const path = require('node:path')
const fs = require('node:fs')
const { performance } = require('node:perf_hooks')
const { isMainThread } = require('node:worker_threads')

const { binding, call, fromNative } = require('./native')
const { coded } = require('./errors')
const V = require('./validate')

const VERSION = require('../package.json').version
const MODES = ['auto', 'fork', 'inline']
const CAPTURE_KEYS = ['dir', 'mode', 'level', 'reason', 'maxSnapshots', 'maxBytes', 'force', 'fallback', 'forkTimeoutMs', 'signal']
const DEFAULTS = Object.freeze({ dir: 'heapsnapshots', level: 1, maxSnapshots: 5, fallback: 'inline', forkTimeoutMs: 30000, mode: 'auto' })
const MiB = 1024 * 1024

/** Validate capture options; throws a coded TypeError/RangeError at the call. */
function normalizeCaptureOptions (options, name = 'options') {
  const o = V.plainObject(options, name)
  V.knownKeys(o, CAPTURE_KEYS, name)
  const p = (k) => `${name === 'options' ? '' : name + '.'}${k}`
  return {
    dir: V.optString(o, 'dir', { name: p('dir') }),
    mode: V.optEnum(o, 'mode', MODES, p('mode')),
    level: V.optNumber(o, 'level', { name: p('level'), min: 0, max: 9, integer: true }),
    reason: V.optString(o, 'reason', { name: p('reason'), nonEmpty: false, maxLength: 4096 }),
    maxSnapshots: V.optNumber(o, 'maxSnapshots', { name: p('maxSnapshots'), min: 1, max: 1e6, integer: true }),
    maxBytes: V.optNumber(o, 'maxBytes', { name: p('maxBytes'), min: 1, max: Number.MAX_SAFE_INTEGER, integer: true }),
    force: V.optBoolean(o, 'force', p('force')),
    fallback: V.optEnum(o, 'fallback', ['inline', 'none'], p('fallback')),
    forkTimeoutMs: V.optNumber(o, 'forkTimeoutMs', { name: p('forkTimeoutMs'), min: 100, max: 24 * 3600e3, integer: true }),
    signal: V.optSignal(o, 'signal', p('signal'))
  }
}

/** Merge validated option sets: later ones win where they set a value. */
function mergeCaptureOptions (...sets) {
  const out = { ...DEFAULTS }
  for (const s of sets) {
    if (!s) continue
    for (const [k, v] of Object.entries(s)) if (v !== undefined) out[k] = v
  }
  out.dir = path.resolve(out.dir)
  return out
}

function abortError (signal) {
  return coded(Error, 'CAPTURE_ABORTED', 'leakguard: the capture was aborted', { cause: signal && signal.reason })
}

/** Resolves with how long the loop took to turn since `since` (performance.now() ms). */
function nextTurn (since) {
  return new Promise((resolve) => setImmediate(() => resolve(performance.now() - since)))
}

/** The nearest existing ancestor of `dir` (for the free-disk check before mkdir). */
function existingAncestor (dir) {
  let d = dir
  for (;;) {
    try {
      if (fs.statSync(d).isDirectory()) return d
    } catch {}
    const up = path.dirname(d)
    if (up === d) return d
    d = up
  }
}

/**
 * The memory and disk check. Returns a description for the manifest, or throws
 * CAPTURE_NO_HEADROOM with both numbers in the message.
 */
function checkHeadroom (mode, figures, dir, force) {
  const needs = binding.captureNeeds(figures.heapUsed, figures.heapTotal)
  const needed = mode === 'fork' ? needs.fork : needs.inline
  const avail = binding.memoryAvailable(typeof process.availableMemory === 'function' ? process.availableMemory() : undefined)
  const disk = binding.diskFree(existingAncestor(dir))
  const info = { neededBytes: needed, availableBytes: avail.bytes ?? null, source: avail.source, diskNeededBytes: needs.disk, diskFreeBytes: disk ?? null, forced: !!force }
  if (force) return info
  const mb = (b) => `${Math.round(b / MiB)} MiB`
  if (avail.bytes != null && avail.bytes < needed) {
    throw coded(Error, 'CAPTURE_NO_HEADROOM',
      `leakguard: not enough memory for a ${mode} heap snapshot: it needs about ${mb(needed)} ` +
      `(heapUsed ${mb(figures.heapUsed)}) but only ${mb(avail.bytes)} is available (${avail.source}). ` +
      'Capture when the heap is smaller, raise the memory limit, or pass force: true to risk it.',
      { neededBytes: needed, availableBytes: avail.bytes })
  }
  if (disk != null && disk < needs.disk) {
    throw coded(Error, 'CAPTURE_NO_HEADROOM',
      `leakguard: not enough disk for a heap snapshot in ${dir}: it needs about ${mb(needs.disk)} but only ${mb(disk)} is free. ` +
      'Free space, choose another dir, or pass force: true to risk it.',
      { neededBytes: needs.disk, availableBytes: disk })
  }
  return info
}

function heapFigures () {
  const m = process.memoryUsage()
  const h = v8.getHeapStatistics()
  return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers, heapSizeLimit: h.heap_size_limit }
}

/** Which mode runs, and why. Fork capture arrives with issue #3; until then inline. */
function chooseMode (requested) {
  if (requested === 'fork') {
    throw coded(Error, 'CAPTURE_FORK_UNSUPPORTED', 'leakguard: fork capture is not available in this build; use mode: \'inline\' or \'auto\'')
  }
  if (requested === 'inline') return { mode: 'inline', modeReason: 'requested' }
  return { mode: 'inline', modeReason: 'auto: fork capture is not available in this build' }
}

/**
 * Take a heap snapshot now. `opts` are validated and merged options. Rejects with a coded
 * error; never leaves a partial file.
 */
async function runCapture (opts) {
  const t0 = performance.now()
  if (opts.signal && opts.signal.aborted) throw abortError(opts.signal)
  const figures = heapFigures()
  const { mode, modeReason } = chooseMode(opts.mode)
  const headroom = checkHeadroom(mode, figures, opts.dir, opts.force)
  const job = call(binding.startCapture, { dir: opts.dir, level: opts.level, maxSnapshots: opts.maxSnapshots, maxBytes: opts.maxBytes })
  const prepareMs = performance.now() - t0

  // The only heavy work on the JS thread: V8's take and serialize, into the pipe.
  const s0 = performance.now()
  let writeError = null
  try {
    v8.writeHeapSnapshot(job.writePath)
  } catch (err) {
    writeError = err
  }
  job.closeWriteEnd()
  const takeMs = performance.now() - s0
  const stallMs = await nextTurn(t0)

  const onAbort = () => job.abort()
  if (opts.signal) {
    if (opts.signal.aborted) job.abort()
    else opts.signal.addEventListener('abort', onAbort, { once: true })
  }
  const meta = {
    mode,
    modeReason,
    reason: opts.reason ?? null,
    stallMs: round(stallMs),
    heapUsed: figures.heapUsed,
    heapTotal: figures.heapTotal,
    rss: figures.rss,
    external: figures.external,
    arrayBuffers: figures.arrayBuffers,
    heapSizeLimit: figures.heapSizeLimit,
    pid: process.pid,
    hostname: os.hostname(),
    thread: isMainThread ? 'main' : 'worker',
    nodeVersion: process.version,
    leakguardVersion: VERSION,
    createdAt: new Date().toISOString(),
    headroom,
    phases: { prepareMs: round(prepareMs), takeMs: round(takeMs) }
  }
  let text
  try {
    text = await job.finish(JSON.stringify(meta))
  } catch (err) {
    const e = fromNative(err)
    // When the pump failed first (disk full, a panic), V8's EPIPE is only its echo: the
    // pump's error is the cause. A stream that merely ended early is V8's failure.
    if (writeError && e.code === codes().CAPTURE_INCOMPLETE) {
      throw coded(Error, 'CAPTURE_PIPE_FAILED', `leakguard: V8 could not write the snapshot (${writeError.message}); nothing was kept`, { cause: writeError })
    }
    throw e
  } finally {
    if (opts.signal) opts.signal.removeEventListener('abort', onAbort)
  }
  if (writeError) {
    // The pump saw a whole snapshot but V8 reported an error: keep the file, say so.
    text = text.replace(/}\s*$/, `,"writeWarning":${JSON.stringify(writeError.message)}}`)
  }
  return JSON.parse(text)
}

function codes () {
  return require('./errors').codes
}

function round (ms) {
  return Math.round(ms * 1000) / 1000
}

module.exports = { normalizeCaptureOptions, mergeCaptureOptions, runCapture, DEFAULTS, CAPTURE_KEYS }
