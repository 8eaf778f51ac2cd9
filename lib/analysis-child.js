'use strict'
// Analysis in a child process, for a server: summarize/diff/retainers of snapshot files
// run as `node bin/leakguard.js … --json` under a memory limit equal to the capture budget,
// never in the server's own memory. Used by the admin route's POST …/diff and by the
// guard's report (lib/report-analysis.js).
//
// Invariants:
// - one analysis child at a time in this process (a second call rejects with
//   ANALYSIS_IN_PROGRESS), so two budgets are never spent at once;
// - the child limits its own address space (`--memory-limit`: RLIMIT_AS = its address
//   space at start + the budget, src/rlimit.rs) and its JS heap (`--max-old-space-size`);
//   a child that runs out dies alone and the call rejects with ANALYSIS_OUT_OF_MEMORY;
// - the child runs at a lower CPU priority (nice +10) than the server;
// - an AbortSignal ends the child (SIGTERM: the CLI cancels its analysis; SIGKILL after
//   a grace period) and rejects with ANALYSIS_ABORTED;
// - what the child prints is bounded (stdout MAX_STDOUT, stderr the last 8 KiB).

const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')

const { binding } = require('./native')
const { codes } = require('./errors')

const BIN = path.join(__dirname, '..', 'bin', 'leakguard.js')
const MiB = 1024 * 1024
/** The child's JS heap: it holds the result's JSON, not the graph (that is Rust memory). */
const CHILD_JS_HEAP_MB = 256
const MAX_STDOUT = 64 * MiB
const KILL_GRACE_MS = 2000
/** Fallback numbers for the budget, as in src/capture/headroom.rs's fork budget. */
const PARENT_RESERVE = 64 * MiB
const MIN_MARGIN = 32 * MiB
/** Below this the child cannot even start its analysis. */
const MIN_BUDGET = 16 * MiB

let running = null

/** A coded error; a key the table does not (yet) know still yields its code string. */
function codedError (key, message, extra) {
  const err = new Error(message)
  err.code = codes[key] || `ERR_LEAKGUARD_${key}`
  return Object.assign(err, extra)
}

/**
 * The memory budget of an analysis child, bytes: the fork capture's budget (what is
 * available, less the server's RSS, a reserve for its own growth and a 5 % margin), or
 * `requested` when that is lower. `{ bytes, available, source }`.
 */
function analysisBudget (requested) {
  const avail = binding.memoryAvailable(typeof process.availableMemory === 'function' ? process.availableMemory() : undefined)
  const rss = process.memoryUsage.rss()
  let bytes
  if (avail.bytes == null) {
    bytes = requested ?? null // nothing readable: what was asked, or no limit
  } else if (typeof binding.forkBudget === 'function') {
    bytes = binding.forkBudget(avail.bytes, rss, 0, 0, requested ?? undefined).bytes
  } else {
    const margin = Math.max(avail.bytes / 20, MIN_MARGIN)
    bytes = Math.max(0, avail.bytes - rss - PARENT_RESERVE - margin)
    if (requested != null) bytes = Math.min(bytes, requested)
  }
  return { bytes: bytes == null ? null : Math.floor(bytes), available: avail.bytes ?? null, source: avail.source }
}

/** Did the child die of memory? Its exit (a signal, or a message on stderr) says so. */
function outOfMemory (signal, stderr) {
  return signal === 'SIGABRT' || signal === 'SIGKILL' || signal === 'SIGSEGV' ||
    /memory allocation of \d+ bytes failed|out of memory|Allocation failed|std::bad_alloc|Cannot allocate memory|ENOMEM/i.test(stderr)
}

/**
 * Run `leakguard <command> <flags> --json -- <positionals>` in a child. `options`:
 * `{ signal?, memoryBudget?, timeoutMs? }`.
 * Resolves with the parsed JSON; rejects with a coded error: the analysis's own code when
 * the child reported one (ANALYSIS_INVALID_SNAPSHOT, …), ANALYSIS_OUT_OF_MEMORY,
 * ANALYSIS_ABORTED, ANALYSIS_IN_PROGRESS or ANALYSIS_CHILD_FAILED.
 */
function runAnalysisChild (command, positionals, flags, options = {}) {
  if (running) return Promise.reject(codedError('ANALYSIS_IN_PROGRESS', 'leakguard: an analysis is already running in a child of this process; try again when it has finished'))
  const { signal, memoryBudget, timeoutMs } = options
  if (signal && signal.aborted) return Promise.reject(codedError('ANALYSIS_ABORTED', 'leakguard: the analysis was aborted'))
  const budget = analysisBudget(memoryBudget)
  if (budget.bytes != null && budget.bytes < MIN_BUDGET) {
    return Promise.reject(codedError('ANALYSIS_OUT_OF_MEMORY',
      `leakguard: not enough memory for an analysis child: its budget would be ${Math.round(budget.bytes / MiB)} MiB ` +
      `(${budget.available == null ? '?' : Math.round(budget.available / MiB)} MiB available, ${budget.source}); analyze the files on another machine with npx leakguard`,
      { budgetBytes: budget.bytes }))
  }
  const heapMb = budget.bytes == null ? CHILD_JS_HEAP_MB : Math.max(32, Math.min(CHILD_JS_HEAP_MB, Math.floor(budget.bytes / MiB / 4)))
  const argv = [`--max-old-space-size=${heapMb}`, BIN, command, ...flags, '--json', '--no-progress']
  if (budget.bytes != null) argv.push('--memory-limit', String(budget.bytes))
  argv.push('--', ...positionals) // a file or class name that starts with '-' stays a name

  const p = new Promise((resolve, reject) => {
    // One malloc arena from the start: threads' arenas reserved before the limit is set
    // are address space the limit cannot see (up to 64 MiB each of slack, measured).
    const env = { ...process.env, MALLOC_ARENA_MAX: '1' }
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true, env })
    try { os.setPriority(child.pid, Math.min(19, os.getPriority(child.pid) + 10)) } catch {}
    const out = []
    let outBytes = 0
    let tooMuch = false
    let stderr = ''
    let aborted = false
    let timedOut = false
    let killTimer = null
    child.stdout.on('data', (d) => {
      outBytes += d.length
      if (outBytes > MAX_STDOUT) {
        if (!tooMuch) child.kill('SIGKILL')
        tooMuch = true
      } else {
        out.push(d)
      }
    })
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-8192) })
    const stop = () => {
      child.kill('SIGTERM') // the CLI aborts its analysis and exits 130
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS)
      killTimer.unref()
    }
    const onAbort = () => { aborted = true; stop() }
    if (signal) signal.addEventListener('abort', onAbort, { once: true })
    const timer = timeoutMs ? setTimeout(() => { timedOut = true; stop() }, timeoutMs) : null
    if (timer) timer.unref()
    child.on('error', (err) => {
      if (signal) signal.removeEventListener('abort', onAbort)
      reject(codedError('ANALYSIS_CHILD_FAILED', `leakguard: could not start the analysis child: ${err.message}`, { cause: err }))
    })
    child.on('close', (code, sig) => {
      if (signal) signal.removeEventListener('abort', onAbort)
      clearTimeout(timer)
      clearTimeout(killTimer)
      const text = Buffer.concat(out).toString('utf8')
      const tail = stderr.trim().split('\n').slice(-3).join(' | ')
      if (aborted) return reject(codedError('ANALYSIS_ABORTED', 'leakguard: the analysis was aborted'))
      if (timedOut) return reject(codedError('ANALYSIS_CHILD_FAILED', `leakguard: the analysis child took longer than ${timeoutMs} ms and was stopped`))
      if (tooMuch) return reject(codedError('ANALYSIS_CHILD_FAILED', `leakguard: the analysis child printed more than ${MAX_STDOUT} bytes`))
      let json = null
      try { json = JSON.parse(text) } catch {}
      if (code === 0 && json) return resolve(json)
      if (json && json.error && typeof json.error.code === 'string') {
        const oom = /OUT_OF_MEMORY/.test(json.error.code) || outOfMemory(null, json.error.message)
        const key = oom ? 'ANALYSIS_OUT_OF_MEMORY' : null
        const err = key ? codedError(key, `leakguard: the analysis ran out of its memory budget (${mbText(budget.bytes)}): ${json.error.message}`, { budgetBytes: budget.bytes }) : new Error(json.error.message)
        if (!key) err.code = json.error.code
        return reject(err)
      }
      if (outOfMemory(sig, stderr)) {
        return reject(codedError('ANALYSIS_OUT_OF_MEMORY',
          `leakguard: the analysis child ran out of its memory budget (${mbText(budget.bytes)}) and ${sig ? `was ended by ${sig}` : `exited with ${code}`}; the server was not affected. ` +
          'Analyze the files on a machine with more memory (npx leakguard diff BEFORE AFTER).', { budgetBytes: budget.bytes, signal: sig }))
      }
      reject(codedError('ANALYSIS_CHILD_FAILED', `leakguard: the analysis child failed (${sig ? `signal ${sig}` : `exit ${code}`})${tail ? `: ${tail}` : ''}`))
    })
  })
  running = p
  const clear = () => { if (running === p) running = null }
  p.then(clear, clear)
  return p
}

function mbText (b) {
  return b == null ? 'no limit' : `${Math.round(b / MiB)} MiB`
}

/** True while an analysis child runs. */
function analysisRunning () {
  return running !== null
}

/** `diff(before, after)` in a child (`top`: classes kept, `retainers`: classes given paths); resolves with the DiffReport. */
function diffInChild (before, after, options = {}) {
  const flags = []
  if (options.top) flags.push('--top', String(options.top))
  if (options.retainers) flags.push('--retainers', String(options.retainers))
  return runAnalysisChild('diff', [before, after], flags, options)
}

/** `summarize(file)` in a child; resolves with the SnapshotSummary. */
function summarizeInChild (file, options = {}) {
  return runAnalysisChild('summarize', [file], options.top ? ['--top', String(options.top)] : [], options)
}

/** `retainers(file, { className, limit })` in a child; resolves with RetainerPath[]. */
function retainersInChild (file, className, options = {}) {
  return runAnalysisChild('retainers', [file, className], options.limit ? ['--limit', String(options.limit)] : [], options)
}

module.exports = { runAnalysisChild, diffInChild, summarizeInChild, retainersInChild, analysisBudget, analysisRunning, outOfMemory }
