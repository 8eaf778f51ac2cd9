'use strict'
// watch(): the signal trigger (a real SIGUSR2 to a real child), stop() leaving nothing
// behind (listeners, async resources — unref'd ones too —, threads; the child then exits
// by itself), a second watch(), and the signal option's validation.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')

const leakguard = require('..')
const { countObjects, gunzipText } = require('./helpers/snapshot')

const { codes } = leakguard
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-guard-test-'))
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
let dirSeq = 0
const freshDir = (label) => path.join(tmpRoot, `${label}-${++dirSeq}`)
const posixSignals = process.platform !== 'win32'

/**
 * Run fixtures/watch-child.js, send `signal` once it is ready, and wait for it to exit by
 * itself. A bounded wait: a child still alive after `timeoutMs` is killed and the test fails.
 */
function signalChild (opts, signal, extraArg) {
  const timeoutMs = 90000
  return new Promise((resolve, reject) => {
    const file = path.join(__dirname, 'fixtures', 'watch-child.js')
    // --expose-gc: the child collects garbage before it looks for what outlived stop(), so a
    // disabled handle that is merely not collected yet is not taken for a leftover.
    const child = spawn(process.execPath, ['--expose-gc', file, JSON.stringify(opts), ...(extraArg ? [extraArg] : [])], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let signalled = false
    let timedOut = false
    child.stdout.on('data', (d) => {
      stdout += d
      if (!signalled && stdout.includes('"ready":true')) {
        signalled = true
        child.kill(signal)
      }
    })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, timeoutMs)
    child.on('error', reject)
    child.on('exit', (code, sig) => {
      clearTimeout(timer)
      const lines = stdout.trim().split('\n').filter(Boolean)
      let json = null
      try { json = JSON.parse(lines[lines.length - 1]) } catch {}
      resolve({ code, signal: sig, timedOut, signalled, stdout, stderr, json })
    })
  })
}

function assertCleanExit (res) {
  assert.equal(res.signalled, true, `the child became ready: ${res.stderr}`)
  assert.equal(res.timedOut, false, `the child did not exit by itself after stop(): ${res.stdout} ${res.stderr}`)
  assert.equal(res.code, 0, res.stderr)
  assert.equal(res.signal, null)
  const j = res.json
  assert.ok(j && j.event, `a report: ${res.stdout}`)
  assert.equal(j.listenersWhileWatching, j.listenersBefore + 1, 'watch() added one signal listener')
  assert.equal(j.listenersAfter, j.listenersBefore, 'stop() removed it')
  assert.deepEqual(j.liveResources, [], 'no async resource created by the guard outlives stop()')
  assert.deepEqual(j.threads, [], 'no leakguard thread outlives stop()')
}

test('a real SIGUSR2 makes a capture file; after stop() nothing is left and the child exits by itself', { skip: !posixSignals && 'POSIX signals' }, async () => {
  const dir = freshDir('sigusr2')
  // Everything on: fast sampling, the NDJSON log, listener auditing of every emitter.
  const logFile = path.join(tmpRoot, `log-${++dirSeq}.ndjson`)
  const res = await signalChild({ signal: 'SIGUSR2', capture: { dir }, intervalMs: 100, logFile, auditListeners: 'all' }, 'SIGUSR2')
  assertCleanExit(res)
  const j = res.json
  assert.equal(j.event, 'capture')
  assert.equal(j.reason, 'signal SIGUSR2')
  assert.equal(path.dirname(j.path), dir)
  assert.deepEqual(j.files.filter((f) => f.endsWith('.heapsnapshot.gz')), [path.basename(j.path)])
  assert.equal(countObjects(JSON.parse(gunzipText(j.path)), 'SignalThing'), j.things)
})

test('a signal capture that fails is an \'error\' event; the process keeps running and exits by itself', { skip: !posixSignals && 'POSIX signals' }, async () => {
  const base = freshDir('sigfail')
  fs.mkdirSync(base, { recursive: true })
  fs.writeFileSync(path.join(base, 'a-file'), '')
  const dir = path.join(base, 'a-file', 'snaps') // a directory under a regular file: cannot exist
  const res = await signalChild({ signal: 'SIGUSR2', capture: { dir } }, 'SIGUSR2')
  assertCleanExit(res)
  assert.equal(res.json.event, 'error')
  assert.equal(res.json.code, codes.CAPTURE_WRITE_FAILED)
})

test('with no \'error\' listener a failed signal capture is a process warning, never a crash', { skip: !posixSignals && 'POSIX signals' }, async () => {
  const base = freshDir('sigwarn')
  fs.mkdirSync(base, { recursive: true })
  fs.writeFileSync(path.join(base, 'a-file'), '')
  const res = await signalChild({ signal: 'SIGUSR2', capture: { dir: path.join(base, 'a-file', 'x') } }, 'SIGUSR2', 'no-error-listener')
  assertCleanExit(res)
  assert.equal(res.json.event, 'warning')
  assert.equal(res.json.code, 'LEAKGUARD_SIGNAL_CAPTURE_FAILED')
})

test('the signal option: a name this platform has, never one whose default matters; coded errors', () => {
  const bad = (signal, Base) => assert.throws(() => leakguard.watch({ signal }), (err) => {
    assert.ok(err instanceof Base, `${err.name} for ${signal}`)
    assert.equal(err.code, codes.OPTIONS_INVALID)
    return true
  })
  bad(123, TypeError)
  bad('usr2', TypeError)
  bad(true, TypeError)
  bad('SIGNOPE', RangeError)
  for (const s of ['SIGKILL', 'SIGSTOP', 'SIGINT', 'SIGTERM', 'SIGSEGV', 'SIGUSR1']) bad(s, RangeError)
  // Node's own --heapsnapshot-signal on the same signal would write a blocking snapshot too.
  const saved = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = `${saved || ''} --heapsnapshot-signal=SIGUSR2`
  try {
    bad('SIGUSR2', RangeError)
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS
    else process.env.NODE_OPTIONS = saved
  }
})

/** Warnings with `code` emitted within a few turns (warnings are emitted on nextTick). */
async function warningsDuring (code, fn) {
  const seen = []
  const on = (w) => { if (w.code === code) seen.push(w) }
  process.on('warning', on)
  try {
    fn()
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.removeListener('warning', on)
  }
  return seen
}

test('a second watch() returns the same guard, warning only when its options really differ', async () => {
  const dir = freshDir('again')
  const before = process.listenerCount('SIGUSR2')
  const g = leakguard.watch({ signal: 'SIGUSR2', capture: { dir, level: 1 } })
  try {
    assert.equal(process.listenerCount('SIGUSR2'), before + 1)
    let again
    assert.equal((await warningsDuring('LEAKGUARD_WATCH_AGAIN', () => { again = leakguard.watch({ capture: { level: 1, dir }, signal: 'SIGUSR2' }) })).length, 0)
    assert.equal(again, g)
    assert.equal((await warningsDuring('LEAKGUARD_WATCH_AGAIN', () => { again = leakguard.watch() })).length, 0)
    assert.equal(again, g)
    assert.equal((await warningsDuring('LEAKGUARD_WATCH_AGAIN', () => { again = leakguard.watch({ signal: 'SIGUSR2', capture: { dir, level: 6 } }) })).length, 1)
    assert.equal(again, g)
    assert.equal(process.listenerCount('SIGUSR2'), before + 1, 'no second signal listener')
  } finally {
    g.stop()
  }
  assert.equal(process.listenerCount('SIGUSR2'), before)
  const g2 = leakguard.watch({ capture: { dir } })
  try {
    assert.notEqual(g2, g, 'after stop() watch() starts a new guard')
  } finally {
    g2.stop()
  }
})

test('guard.metrics() counts captures done and failed (by code) through Guard.capture', async () => {
  const dir = freshDir('counts')
  const g = leakguard.watch({ capture: { dir } })
  try {
    const c0 = g.status().captureCounts
    const r = await g.capture()
    const busy = [g.capture(), g.capture()]
    const settled = await Promise.allSettled(busy)
    assert.deepEqual(settled.map((s) => s.status).sort(), ['fulfilled', 'rejected'])
    assert.equal(settled.find((s) => s.status === 'rejected').reason.code, codes.CAPTURE_IN_PROGRESS)
    const c = g.status().captureCounts
    assert.equal(c.done, c0.done + 2)
    assert.equal(c.failed[codes.CAPTURE_IN_PROGRESS], (c0.failed[codes.CAPTURE_IN_PROGRESS] || 0) + 1)
    const text = g.metrics()
    assert.match(text, new RegExp(`^leakguard_captures_total ${c.done}$`, 'm'))
    assert.match(text, new RegExp(`^leakguard_capture_failures_total\\{code="${codes.CAPTURE_IN_PROGRESS}"\\} ${c.failed[codes.CAPTURE_IN_PROGRESS]}$`, 'm'))
    assert.ok(r.bytes > 0)
  } finally {
    g.stop()
  }
})
