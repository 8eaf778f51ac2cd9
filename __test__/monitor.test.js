'use strict'
// Sampling, the leak verdict, heap pressure, the stall watchdog and the NDJSON log
// (issue #4), through the public entry and real child processes (intervalMs 100).
// Every child ends on its own; each also has a hard deadline here.

const { test, describe, before } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')

const leakguard = require('..')

const FIXTURE = path.join(__dirname, 'fixtures', 'monitor-child.js')

/** Run the fixture; resolves { code, signal, events, stderr } when it exits (or is killed at the deadline). */
function child (scenario, opts = {}, { nodeArgs = [], deadlineMs = 150000 } = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...nodeArgs, FIXTURE, scenario, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => { out += d })
    p.stderr.on('data', (d) => { err += d })
    const timer = setTimeout(() => p.kill('SIGKILL'), deadlineMs)
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      const events = out.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      resolve({ code, signal, events, stderr: err })
    })
  })
}

/**
 * Wait for `n` 'sample' events. leakguard's timers are unref'd (it never keeps a process
 * alive), so the test holds the loop open meanwhile.
 */
async function samples (g, n) {
  const keep = setInterval(() => {}, 1000)
  const seen = []
  try {
    while (seen.length < n) seen.push(await new Promise((resolve) => g.once('sample', resolve)))
  } finally {
    clearInterval(keep)
  }
  return seen
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-monitor-'))

describe('options are validated at the call', () => {
  const bad = [
    { intervalMs: 50 },
    { intervalMs: 'fast' },
    { intervalMs: 150.5 },
    { stallThresholdMs: 10 },
    { pressure: { heapFraction: 1.5 } },
    { pressure: { gcFraction: 0 } },
    { pressure: { bogus: 1 } },
    { autoCapture: { onLeak: 'yes' } },
    { autoCapture: { cooldownMs: -1 } },
    { autoCapture: { maxPerHour: 0 } },
    { autoCapture: { everyMinute: true } },
    { logFile: 5 },
    { logFile: '' },
    { logFile: { maxBytes: 10000 } },
    { logFile: { path: 'x.ndjson', maxBytes: 10 } },
    { verdict: { windowMs: -1 } },
    { verdict: { hold: 5 } }
  ]
  for (const o of bad) {
    test(`rejects ${JSON.stringify(o)}`, () => {
      assert.throws(() => leakguard.watch(o), (err) => {
        assert.equal(err.code, leakguard.codes.OPTIONS_INVALID)
        assert.ok(err instanceof TypeError || err instanceof RangeError)
        return true
      })
    })
  }

  test('a log file that cannot be opened fails watch() with WATCH_LOG_FAILED, and no guard is left running', () => {
    const file = path.join(tmp, 'missing-dir', 'nested', 'lg.ndjson')
    assert.throws(() => leakguard.watch({ logFile: file }), (err) => err.code === leakguard.codes.WATCH_LOG_FAILED)
    const g = leakguard.watch({ intervalMs: 100 })
    try {
      assert.equal(g.status().intervalMs, 100, 'the failed call did not leave its guard behind')
    } finally {
      g.stop()
    }
  })
})

describe('sample() and the guard in this process', () => {
  test('sample() mirrors Node\'s names and adds the heap limit, GC, loop delay and ELU', () => {
    const s = leakguard.sample()
    const m = process.memoryUsage()
    for (const k of ['rss', 'heapUsed', 'heapTotal', 'external', 'arrayBuffers']) {
      assert.equal(typeof s[k], 'number', k)
      assert.ok(s[k] >= 0, k)
    }
    // Independent reader: same order of magnitude as process.memoryUsage() just after.
    assert.ok(s.heapTotal > 0 && s.heapTotal <= m.heapTotal * 2 && s.heapTotal >= m.heapTotal / 2)
    const h = require('node:v8').getHeapStatistics()
    assert.equal(s.heapSizeLimit, h.heap_size_limit)
    assert.ok(s.oldGenerationLimit > 0 && s.oldGenerationLimit < s.heapSizeLimit)
    for (const k of ['totalAvailableSize', 'mallocedMemory', 'numberOfNativeContexts', 'numberOfDetachedContexts']) assert.equal(typeof s[k], 'number', k)
    for (const kind of ['minor', 'major', 'incremental', 'weakCallbacks']) {
      assert.equal(typeof s.gc[kind].count, 'number')
      assert.equal(typeof s.gc[kind].pauseMs, 'number')
    }
    assert.ok('p50Ms' in s.loopDelay && 'p99Ms' in s.loopDelay && 'maxMs' in s.loopDelay)
    assert.ok(s.elu === null || (s.elu >= 0 && s.elu <= 1))
    assert.ok(Math.abs(s.time - Date.now()) < 60000)
  })

  test('the guard samples on its interval, keeps samples, and reports warming-up at first', async () => {
    const g = leakguard.watch({ intervalMs: 100 })
    try {
      const seen = await samples(g, 3)
      const st = g.status()
      assert.equal(st.heap.state, 'warming-up')
      assert.equal(st.native.state, 'warming-up')
      for (const k of ['slopeBytesPerHour', 'confidence', 'floorBytes']) assert.equal(typeof st.heap[k], 'number')
      assert.equal(st.heap.projectedLimitAt, null)
      assert.equal(st.pressure, null)
      assert.deepEqual(Object.keys(st.latest), Object.keys(seen[seen.length - 1]))
      const stored = g.samples()
      assert.ok(stored.length >= 3)
      assert.ok(stored.every((s, i) => i === 0 || s.time >= stored[i - 1].time), 'oldest first')
      // sample() while watching peeks at the running windows.
      assert.equal(typeof leakguard.sample().rss, 'number')
    } finally {
      g.stop()
    }
  })
})

describe('verdicts and pressure in child processes', () => {
  let leak, lru, pressure, native
  before(() => {
    // Started together (they mostly sleep); each test awaits its own.
    leak = child('leak', { runMs: 160000 }, { deadlineMs: 180000 })
    lru = child('lru', { runMs: 45000 })
    pressure = child('pressure', {}, { nodeArgs: ['--max-old-space-size=64'] })
    native = child('native', {})
  })

  test('a retained-Map leak is called leak', async () => {
    const r = await leak
    const ev = r.events.find((e) => e.ev === 'leak')
    assert.ok(ev, `no leak event: ${JSON.stringify(r.events.at(-1))} ${r.stderr}`)
    assert.equal(ev.report.state, 'leak')
    assert.equal(ev.report.series, 'heap')
    assert.ok(ev.report.slopeBytesPerHour > 0)
    assert.ok(ev.report.confidence > 0.5 && ev.report.confidence <= 1)
    assert.ok(ev.report.floorBytes > 10 * 1024 * 1024)
    assert.ok(ev.report.projectedLimitAt === null || ev.report.projectedLimitAt > Date.now() - 600000)
    const end = r.events.find((e) => e.ev === 'end')
    assert.equal(end.heap.state, 'leak')
    assert.notEqual(end.native.state, 'leak', 'V8\'s own growth with the heap is not a native leak')
    assert.equal(r.code, 0)
  })

  test('retained Buffers are a native leak, not a heap leak', async () => {
    const r = await native
    const ev = r.events.find((e) => e.ev === 'native-leak')
    assert.ok(ev, `no native-leak event: ${JSON.stringify(r.events.at(-1))} ${r.stderr}`)
    assert.equal(ev.report.state, 'leak')
    assert.equal(ev.report.series, 'native')
    assert.ok(['rss-heapTotal', 'external'].includes(ev.report.source))
    assert.ok(ev.report.slopeBytesPerHour > 0)
    assert.equal(r.events.filter((e) => e.ev === 'leak').length, 0)
    const end = r.events.find((e) => e.ev === 'end')
    assert.notEqual(end.heap.state, 'leak')
  })

  test('a bounded LRU under the same churn stays healthy', async () => {
    const r = await lru
    const end = r.events.find((e) => e.ev === 'end')
    assert.ok(end, r.stderr)
    assert.equal(r.events.filter((e) => e.ev === 'leak').length, 0)
    assert.equal(end.size, 5000)
    assert.equal(end.heap.state, 'healthy', JSON.stringify(end.heap))
    assert.ok(end.samples > 100)
  })

  test('a small --max-old-space-size raises pressure before the process dies', async () => {
    const r = await pressure
    const i = r.events.findIndex((e) => e.ev === 'pressure')
    assert.ok(i >= 0, `no pressure event; stderr: ${r.stderr.slice(-500)}`)
    const p = r.events[i].pressure
    assert.ok(['warn', 'critical'].includes(p.level))
    assert.ok(p.reasons.length > 0)
    assert.ok(p.oldGenerationLimitBytes > 0 && p.oldGenerationLimitBytes <= 64 * 1024 * 1024)
    assert.ok(p.heapFraction > 0)
    assert.ok(!r.events.some((e) => e.ev === 'survived'), 'the fixture leaks until V8 aborts')
    assert.ok(r.code !== 0 || r.signal, 'the process died of the leak')
    assert.match(r.stderr, /heap limit|out of memory/i)
  })
})

describe('watchdog, log and autoCapture in child processes', () => {
  test('a 600 ms synchronous loop is a stall, seen while it happens and logged', async () => {
    const logFile = path.join(tmp, 'stall.ndjson')
    const r = await child('stall', { logFile }, { deadlineMs: 30000 })
    const ev = r.events.find((e) => e.ev === 'stall')
    assert.ok(ev, r.stderr)
    const s = ev.stall
    assert.ok(s.durationMs >= 200, `durationMs ${s.durationMs}`)
    assert.equal(s.thresholdMs, 200)
    assert.equal(s.observed, true)
    if (process.platform === 'linux') {
      assert.ok(s.rss > 0)
      assert.equal(typeof s.cpuMs, 'number')
    }
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    const types = new Set(lines.map((l) => l.type))
    for (const t of ['sample', 'stall-begin', 'stall']) assert.ok(types.has(t), `log has ${t}: ${[...types]}`)
    assert.ok(lines.findIndex((l) => l.type === 'stall-begin') < lines.findIndex((l) => l.type === 'stall'))
    const sample = lines.find((l) => l.type === 'sample')
    assert.equal(typeof sample.heapUsed, 'number')
    assert.equal(typeof sample.rss, 'number')
  })

  test('watch() with every feature on never keeps the process alive', async () => {
    const logFile = path.join(tmp, 'idle.ndjson')
    const r = await child('idle', { logFile }, { deadlineMs: 20000 })
    assert.equal(r.signal, null, 'exited by itself, not killed at the deadline')
    assert.equal(r.code, 0)
    assert.ok(r.events.some((e) => e.ev === 'watching'))
    assert.ok(fs.existsSync(logFile))
  })

  test('the log rotates by size and every line is JSON', async () => {
    const logFile = path.join(tmp, 'rot.ndjson')
    const g = leakguard.watch({ intervalMs: 100, logFile: { path: logFile, maxBytes: 4096, files: 2 } })
    try {
      await samples(g, 12)
    } finally {
      g.stop()
    }
    assert.ok(fs.existsSync(logFile + '.1'), 'rotated once at least')
    assert.ok(!fs.existsSync(logFile + '.3'), 'two rotated files kept')
    for (const f of [logFile, logFile + '.1']) {
      assert.ok(fs.statSync(f).size <= 4096)
      for (const l of fs.readFileSync(f, 'utf8').trim().split('\n')) assert.equal(typeof JSON.parse(l).type, 'string')
    }
  })

  test('autoCapture onPressure captures a snapshot through capture()', async () => {
    const dir = path.join(tmp, 'auto')
    const r = await child('autocapture', { dir }, { nodeArgs: ['--max-old-space-size=96'], deadlineMs: 90000 })
    const cap = r.events.find((e) => e.ev === 'capture')
    assert.ok(cap, `no capture: ${JSON.stringify(r.events.at(-1))} ${r.stderr.slice(-500)}`)
    assert.ok(r.events.findIndex((e) => e.ev === 'pressure') < r.events.findIndex((e) => e.ev === 'capture'))
    const manifest = JSON.parse(fs.readFileSync(cap.result.manifestPath, 'utf8'))
    assert.match(manifest.reason, /^auto: pressure/)
    // Independent reader: the file gunzips to a heap snapshot.
    const head = zlib.gunzipSync(fs.readFileSync(cap.result.path)).subarray(0, 64).toString()
    assert.match(head, /^\{"snapshot":/)
  })

  test('a failed automatic capture is an error event and a capture-failed log line', async () => {
    const logFile = path.join(tmp, 'autofail.ndjson')
    // /proc has no free space for a snapshot: capture()'s own disk check refuses.
    const r = await child('autocapture', { dir: '/proc/leakguard-no-such-dir', logFile }, { nodeArgs: ['--max-old-space-size=96'], deadlineMs: 90000 })
    const err = r.events.find((e) => e.ev === 'error')
    assert.ok(err, `no error event: ${JSON.stringify(r.events.at(-1))}`)
    assert.equal(err.code, leakguard.codes.CAPTURE_NO_HEADROOM)
    assert.equal(r.code, 4)
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    const failed = lines.find((l) => l.type === 'capture-failed')
    assert.ok(failed)
    assert.equal(failed.trigger, 'pressure')
    assert.equal(failed.code, leakguard.codes.CAPTURE_NO_HEADROOM)
    assert.ok(lines.some((l) => l.type === 'pressure' && l.level === 'warn'), 'the pressure change is logged too')
  })

  test('sample() sees major GCs and the floor after them', async () => {
    const r = await child('sample', {}, { nodeArgs: ['--expose-gc'], deadlineMs: 20000 })
    const { before: a, after: b } = r.events.find((e) => e.ev === 'samples')
    assert.ok(b.gc.major.count >= a.gc.major.count + 1)
    assert.ok(b.gc.majorFloorBytes > 0 && b.gc.majorFloorBytes <= b.heapTotal)
    assert.ok(b.windowMs >= 0)
  })
})
