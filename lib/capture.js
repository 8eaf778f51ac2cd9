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
const { normalizeDestination } = require('./upload')

const VERSION = require('../package.json').version
const MODES = ['auto', 'fork', 'inline']
const CAPTURE_KEYS = ['dir', 'mode', 'level', 'reason', 'maxSnapshots', 'maxBytes', 'force', 'fallback', 'forkTimeoutMs', 'signal', 'upload', 'memoryBudget']
const DEFAULTS = Object.freeze({ dir: 'heapsnapshots', level: 1, maxSnapshots: 5, fallback: 'inline', forkTimeoutMs: 120000, mode: 'auto' })
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
    signal: V.optSignal(o, 'signal', p('signal')),
    // false turns off an upload the guard's options would make; undefined leaves them.
    upload: o.upload === false ? false : o.upload === undefined ? undefined : normalizeDestination(o.upload, p('upload')),
    memoryBudget: V.optNumber(o, 'memoryBudget', { name: p('memoryBudget'), min: 1, max: Number.MAX_SAFE_INTEGER, integer: true })
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

const mb = (b) => `${Math.round(b / MiB)} MiB`

/** CAPTURE_NO_HEADROOM when the disk under `dir` has less free than the snapshot needs. */
function checkDisk (dir, disk, needs) {
  if (disk != null && disk < needs.disk) {
    throw coded(Error, 'CAPTURE_NO_HEADROOM',
      `leakguard: not enough disk for a heap snapshot in ${dir}: it needs about ${mb(needs.disk)} but only ${mb(disk)} is free. ` +
      'Free space, choose another dir, or pass force: true to risk it.',
      { neededBytes: needs.disk, availableBytes: disk })
  }
}

/**
 * The memory and disk check. Returns a description for the manifest, or throws
 * CAPTURE_NO_HEADROOM with both numbers in the message.
 */
function checkHeadroom (mode, figures, dir, force, level, memoryBudget) {
  if (mode === 'fork') return checkForkBudget(figures, dir, force, level, memoryBudget)
  const needs = binding.captureNeeds(figures.heapUsed, figures.heapTotal, level)
  const needed = needs.inline
  const avail = binding.memoryAvailable(typeof process.availableMemory === 'function' ? process.availableMemory() : undefined)
  const disk = binding.diskFree(existingAncestor(dir))
  const info = { neededBytes: needed, availableBytes: avail.bytes ?? null, source: avail.source, diskNeededBytes: needs.disk, diskFreeBytes: disk ?? null, forced: !!force, oomGroup: avail.oomGroup ?? null }
  if (force) return info
  // memoryBudget bounds an inline capture too: its estimate must fit under it.
  if (memoryBudget != null && memoryBudget < needed) {
    throw coded(Error, 'CAPTURE_NO_HEADROOM',
      `leakguard: an ${mode} heap snapshot needs about ${mb(needed)} (heapUsed ${mb(figures.heapUsed)}), more than memoryBudget (${mb(memoryBudget)}). ` +
      'Capture when the heap is smaller, raise memoryBudget, or use a fork capture (bounded by its budget).',
      { neededBytes: needed, availableBytes: memoryBudget })
  }
  if (avail.bytes != null && avail.bytes < needed) {
    throw coded(Error, 'CAPTURE_NO_HEADROOM',
      `leakguard: not enough memory for a ${mode} heap snapshot: it needs about ${mb(needed)} ` +
      `(heapUsed ${mb(figures.heapUsed)}) but only ${mb(avail.bytes)} is available (${avail.source}). ` +
      'Capture when the heap is smaller, raise the memory limit, or pass force: true to risk it.',
      { neededBytes: needed, availableBytes: avail.bytes })
  }
  checkDisk(dir, disk, needs)
  return info
}

/** A forced fork capture runs with at least this budget (its child fails alone below it). */
const MIN_FORCED_BUDGET = 16 * MiB

/**
 * Fork mode: the child's memory budget (docs/budget.md). The capture is attempted when
 * the budget covers what an ordinary heap of this size needs; the child runs under it
 * (RLIMIT_AS) and fails alone, CAPTURE_OUT_OF_BUDGET, if this heap needs more.
 */
function checkForkBudget (figures, dir, force, level, memoryBudget) {
  const needs = binding.captureNeeds(figures.heapUsed, figures.heapTotal, level)
  const avail = binding.memoryAvailable(typeof process.availableMemory === 'function' ? process.availableMemory() : undefined)
  const disk = binding.diskFree(existingAncestor(dir))
  // Nothing readable (no /proc): the child's budget is what was asked, or the estimate.
  const available = avail.bytes ?? (memoryBudget || binding.forkBudget(0, 0, figures.heapUsed, figures.largeObjectUsed).ordinaryNeed) + figures.rss + 64 * MiB + 32 * MiB
  const b = binding.forkBudget(available, figures.rss, figures.heapUsed, figures.largeObjectUsed, memoryBudget)
  const info = {
    neededBytes: b.ordinaryNeed,
    availableBytes: avail.bytes ?? null,
    source: avail.source,
    budgetBytes: force ? Math.max(b.bytes, MIN_FORCED_BUDGET) : b.bytes,
    budget: { cowReserveBytes: b.cowReserve, parentReserveBytes: b.parentReserve, marginBytes: b.margin, requestedBytes: b.requested ?? null },
    largeObjectUsed: figures.largeObjectUsed,
    diskNeededBytes: needs.disk,
    diskFreeBytes: disk ?? null,
    forced: !!force,
    oomGroup: avail.oomGroup ?? null
  }
  if (force) return info
  if (b.bytes < b.ordinaryNeed) {
    throw coded(Error, 'CAPTURE_NO_HEADROOM',
      `leakguard: not enough memory for a fork heap snapshot: an ordinary heap of this size needs about ${mb(b.ordinaryNeed)} ` +
      `(heapUsed ${mb(figures.heapUsed)}) but only ${mb(available)} is available (${avail.source}), which leaves the child a budget of ${mb(b.bytes)} ` +
      `after holding back the process's RSS (${mb(b.cowReserve)}, for copy-on-write), a ${mb(b.parentReserve)} reserve and a ${mb(b.margin)} margin` +
      (b.requested != null ? ` (memoryBudget ${mb(b.requested)})` : '') + '. ' +
      'Capture when the heap is smaller, raise the memory limit, or pass force: true to try within the budget (only the child fails if it does not fit).',
      { neededBytes: b.ordinaryNeed, availableBytes: available, budgetBytes: b.bytes })
  }
  checkDisk(dir, disk, needs)
  return info
}

function heapFigures () {
  const m = process.memoryUsage()
  const h = v8.getHeapStatistics()
  let largeObjectUsed = 0
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_name.includes('large_object')) largeObjectUsed += s.space_used_size
  return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers, heapSizeLimit: h.heap_size_limit, largeObjectUsed }
}

/** Why fork capture cannot run in this thread/process, or null when it can. */
function forkUnsupportedReason () {
  if (!isMainThread) return 'fork capture never runs from a worker thread'
  return binding.forkUnsupportedReason()
}

/**
 * Which mode runs, and why, given what was asked, the platform and the headroom for each.
 * Throws CAPTURE_FORK_UNSUPPORTED / CAPTURE_NO_HEADROOM as the contract says.
 */
function chooseMode (opts, figures) {
  if (opts.mode === 'inline') {
    return { mode: 'inline', modeReason: 'requested', headroom: checkHeadroom('inline', figures, opts.dir, opts.force, opts.level, opts.memoryBudget) }
  }
  const unsupported = forkUnsupportedReason()
  if (opts.mode === 'fork') {
    if (unsupported) throw coded(Error, 'CAPTURE_FORK_UNSUPPORTED', `leakguard: ${unsupported}; use mode: 'inline' or 'auto'`)
    return { mode: 'fork', modeReason: 'requested', headroom: checkHeadroom('fork', figures, opts.dir, opts.force, opts.level, opts.memoryBudget) }
  }
  if (unsupported) {
    return { mode: 'inline', modeReason: `auto: ${unsupported}`, headroom: checkHeadroom('inline', figures, opts.dir, opts.force, opts.level, opts.memoryBudget) }
  }
  try {
    return { mode: 'fork', modeReason: 'auto: fork supported here', headroom: checkHeadroom('fork', figures, opts.dir, opts.force, opts.level, opts.memoryBudget) }
  } catch (err) {
    if (err.code !== codes().CAPTURE_NO_HEADROOM) throw err
    // Inline's conservative estimate rarely fits where the fork budget did not; if it
    // does not either, the fork budget's message (the better mode's) is the answer.
    let headroom
    try {
      headroom = checkHeadroom('inline', figures, opts.dir, opts.force, opts.level, opts.memoryBudget)
    } catch (inlineErr) {
      if (inlineErr.code !== codes().CAPTURE_NO_HEADROOM) throw inlineErr
      throw err
    }
    return { mode: 'inline', modeReason: `auto: not enough memory for a fork child (${err.message.replace(/^leakguard: /, '')})`, headroom }
  }
}

/** Quiet-wait tuning: per attempt on the JS thread, pause between, and the deadline. */
const FORK_ATTEMPT_BUDGET_MS = 3
const FORK_RETRY_PAUSE_MS = 15
const FORK_QUIET_DEADLINE_MS = 3000
/** How often to look whether the pump and the fork child are done. */
const SETTLE_POLL_MS = 20

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The child's whole life after fork(): write the snapshot into the pipe, then _exit.
 * No event-loop turn, no exit handlers, no output.
 */
function childTakeSnapshot (job) {
  let code = 3
  try {
    v8.writeHeapSnapshot(job.writePath)
    code = 0
  } finally {
    binding.childExit(code) // never returns; any binding call in the child exits too
  }
}

/**
 * Fork: prepare off-thread, then bounded attempts with event-loop turns between. Returns
 * { forked: true, stallMs } or { forked: false, reason, stallMs } (threads stayed busy).
 */
async function forkSnapshot (job, memoryBudget) {
  await job.prepareFork()
  const deadline = performance.now() + FORK_QUIET_DEADLINE_MS
  let stallMs = 0
  let reason = ''
  for (;;) {
    if (this.signal && this.signal.aborted) return { forked: false, reason: 'aborted', stallMs }
    const s = performance.now()
    const r = job.forkAttempt(FORK_ATTEMPT_BUDGET_MS, this.forkTimeoutMs, memoryBudget)
    if (r.role === 'child') childTakeSnapshot(job) // never returns
    stallMs = Math.max(stallMs, await nextTurn(s))
    if (r.role === 'parent') return { forked: true, stallMs, pid: r.pid }
    reason = r.reason
    if (performance.now() > deadline) return { forked: false, reason, stallMs }
    await sleep(FORK_RETRY_PAUSE_MS)
  }
}

/** Inline: V8's take and serialize on this thread, into the pipe. */
async function inlineSnapshot (job) {
  const s = performance.now()
  let writeError = null
  try {
    v8.writeHeapSnapshot(job.writePath)
  } catch (err) {
    writeError = err
  }
  job.closeWriteEnd()
  const takeMs = performance.now() - s
  return { takeMs, writeError, stallMs: await nextTurn(s) }
}

/**
 * Take a heap snapshot now. `opts` are validated and merged options. Rejects with a coded
 * error; never leaves a partial file.
 */
async function runCapture (opts, fallbackFrom) {
  const t0 = performance.now()
  if (opts.signal && opts.signal.aborted) throw abortError(opts.signal)
  // Before the headroom check: a second capture is "in progress", not "no headroom".
  if (binding.captureInFlight()) {
    throw coded(Error, 'CAPTURE_IN_PROGRESS', 'leakguard: a heap capture is already running in this process; wait for it to finish')
  }
  const figures = heapFigures()
  let { mode, modeReason, headroom } = fallbackFrom
    ? { mode: 'inline', modeReason: fallbackFrom, headroom: checkHeadroom('inline', figures, opts.dir, opts.force, opts.level, opts.memoryBudget) }
    : chooseMode(opts, figures)
  const job = call(binding.startCapture, { dir: opts.dir, level: opts.level, maxSnapshots: opts.maxSnapshots, maxBytes: opts.maxBytes })
  const prepareMs = performance.now() - t0
  const phases = { prepareMs: round(prepareMs) }
  let stallMs = performance.now() - t0 // the synchronous part so far
  let writeError = null

  const onAbort = () => job.abort()
  if (opts.signal) opts.signal.addEventListener('abort', onAbort, { once: true })
  try {
    if (mode === 'fork') {
      let f
      try {
        f = await forkSnapshot.call(opts, job, headroom.budgetBytes)
      } catch (err) {
        // fork() or the watchdog failed, or the layout probe said no: this job's pipe is
        // not to be trusted for an inline capture any more. End it; fall back afresh.
        const reason = fromNative(err).message
        job.abort()
        await job.finish('{}').catch(() => {})
        if (opts.signal && opts.signal.aborted) throw abortError(opts.signal)
        if (opts.fallback === 'none' || fallbackFrom) {
          throw coded(Error, 'CAPTURE_FORK_FAILED', `leakguard: could not fork for the capture: ${reason}; nothing was kept`)
        }
        const r = await runCapture(opts, `fallback: could not fork: ${reason}`)
        r.stallMs = round(Math.max(r.stallMs, stallMs))
        return r
      }
      stallMs = Math.max(stallMs, f.stallMs)
      if (!f.forked && opts.signal && opts.signal.aborted) {
        job.abort()
        await job.finish('{}').catch(() => {})
        throw abortError(opts.signal)
      }
      if (!f.forked) {
        if (opts.fallback === 'none') {
          job.abort()
          await job.finish('{}').catch(() => {})
          throw coded(Error, 'CAPTURE_FORK_FAILED', `leakguard: could not fork for the capture: ${f.reason}; nothing was kept (fallback: 'none')`)
        }
        // The fork budget is not inline's: inline keeps its conservative estimate.
        try {
          headroom = checkHeadroom('inline', figures, opts.dir, opts.force, opts.level, opts.memoryBudget)
        } catch (err) {
          job.abort()
          await job.finish('{}').catch(() => {})
          throw err
        }
        mode = 'inline'
        modeReason = `fallback: could not fork: ${f.reason}`
      }
    }
    if (mode === 'inline') {
      if (opts.signal && opts.signal.aborted) job.abort()
      const r = await inlineSnapshot(job)
      stallMs = Math.max(stallMs, r.stallMs)
      writeError = r.writeError
      phases.takeMs = round(r.takeMs)
    }
    const meta = {
      mode,
      modeReason,
      reason: opts.reason ?? null,
      stallMs: round(stallMs),
      heapUsed: figures.heapUsed,
      heapTotal: figures.heapTotal,
      rss: figures.rss,
      rssAfter: process.memoryUsage.rss(),
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
      phases
    }
    // Wait without holding a libuv worker: finish() is then quick (manifest, rename).
    while (!job.settled) await sleep(SETTLE_POLL_MS)
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
      // Never fall back inline after the OOM killer took the child: inline needs the same
      // working set, in the server's own process.
      if (e.code === codes().CAPTURE_OUT_OF_BUDGET) {
        // Never retried inline: inline would need the same memory inside the server.
        e.budgetBytes = headroom.budgetBytes
        if (headroom.budget && headroom.budget.requestedBytes != null) {
          e.message += ` (memoryBudget ${Math.round(headroom.budget.requestedBytes / MiB)} MiB set this budget: raise it if the container can spare more)`
        }
        throw e
      }
      if (e.code === codes().CAPTURE_FORK_FAILED && opts.fallback !== 'none' && !fallbackFrom && !/OOM killer/.test(e.message)) {
        if (opts.signal) opts.signal.removeEventListener('abort', onAbort)
        const r = await runCapture(opts, `fallback: ${e.message.replace(/; nothing was kept$/, '')}`)
        r.stallMs = round(Math.max(r.stallMs, stallMs))
        return r
      }
      throw e
    }
    if (writeError) {
      // The pump saw a whole snapshot but V8 reported an error: keep the file, say so.
      text = text.replace(/}\s*$/, `,"writeWarning":${JSON.stringify(writeError.message)}}`)
    }
    return JSON.parse(text)
  } finally {
    if (opts.signal) opts.signal.removeEventListener('abort', onAbort)
  }
}

function codes () {
  return require('./errors').codes
}

function round (ms) {
  return Math.round(ms * 1000) / 1000
}

module.exports = { normalizeCaptureOptions, mergeCaptureOptions, runCapture, DEFAULTS, CAPTURE_KEYS }
