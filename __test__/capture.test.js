'use strict'
// capture(): real snapshots, read back with gunzip + two parsers; coded errors for bad
// options; failures against real failing filesystems and injected faults leave no file
// and the process running; retention; file modes; abort; headroom; workers; exit.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')

const leakguard = require('..')
const { gunzipText, countObjects, countWithParser } = require('./helpers/snapshot')
const { runFixture } = require('./helpers/child')
const { makeCgroup } = require('./helpers/cgroup')

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-capture-test-'))
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
let dirSeq = 0
const freshDir = (label) => path.join(tmpRoot, `${label}-${++dirSeq}`)
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

class CountedThing {
  constructor (i) { this.i = i }
}

function leftovers (dir) {
  try { return fs.readdirSync(dir) } catch { return [] }
}

test('a capture gunzips to a snapshot holding the exact count of a class, by two parsers', async () => {
  const things = Array.from({ length: 12345 }, (_, i) => new CountedThing(i))
  const dir = freshDir('count')
  const r = await leakguard.capture({ dir, reason: 'count test' })
  const text = gunzipText(r.path)
  const snap = JSON.parse(text)
  assert.equal(countObjects(snap, 'CountedThing'), 12345)
  assert.equal(await countWithParser(text, 'CountedThing'), 12345)
  assert.equal(r.rawBytes, Buffer.byteLength(text))
  assert.equal(r.bytes, fs.statSync(r.path).size)
  assert.ok(r.bytes < r.rawBytes / 2, 'gzip shrinks it')
  assert.equal(things.length, 12345)
})

test('result and manifest carry the documented fields', async () => {
  const dir = freshDir('manifest')
  const r = await leakguard.capture({ dir, reason: 'manifest fields' })
  assert.match(path.basename(r.path), /^heap-\d{8}T\d{6}Z-\d+-\d+\.heapsnapshot\.gz$/)
  assert.equal(path.dirname(r.path), dir)
  assert.equal(r.manifestPath, r.path.replace(/\.heapsnapshot\.gz$/, '.json'))
  const m = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'))
  for (const k of ['path', 'manifestPath', 'mode', 'modeReason', 'bytes', 'rawBytes', 'stallMs', 'durationMs', 'heapUsed', 'heapTotal', 'rss']) {
    assert.ok(k in r, `result has ${k}`)
    assert.deepEqual(m[k], r[k], `manifest ${k}`)
  }
  assert.equal(m.pid, process.pid)
  assert.equal(m.hostname, os.hostname())
  assert.equal(m.nodeVersion, process.version)
  assert.equal(m.leakguardVersion, require('../package.json').version)
  assert.equal(m.reason, 'manifest fields')
  assert.ok(!Number.isNaN(Date.parse(m.createdAt)))
  assert.ok(['inline', 'fork'].includes(r.mode))
  assert.equal(typeof r.modeReason, 'string')
  assert.ok(r.stallMs > 0 && r.durationMs >= r.stallMs * 0.5)
  assert.ok(r.heapUsed > 0 && r.heapTotal >= r.heapUsed && r.rss > r.heapTotal)
  for (const k of ['prepareMs', 'takeMs', 'fsyncMs']) assert.equal(typeof r.phases[k], 'number', `phases.${k}`)
  assert.deepEqual(m.headroom, r.headroom)
  assert.equal(r.headroom.oomGroup, expectedOomGroup(), 'memory.oom.group as read independently here')
})

/** memory.oom.group read here, independently: true/false on a cgroup v2 host, else null. */
function expectedOomGroup () {
  let text
  try { text = fs.readFileSync('/proc/self/cgroup', 'utf8') } catch { return null }
  const lines = text.trim().split('\n')
  if (lines.some((l) => /^\d+:[^:]*memory[^:]*:/.test(l))) return null // v1 memory controller
  const v2 = lines.find((l) => l.startsWith('0::'))
  if (!v2) return null
  let dir = path.join('/sys/fs/cgroup', v2.slice(3))
  let seen = false
  for (;;) {
    try {
      if (fs.readFileSync(path.join(dir, 'memory.oom.group'), 'utf8').trim() === '1') return true
      seen = true
    } catch {}
    if (dir === '/sys/fs/cgroup') break
    dir = path.dirname(dir)
  }
  return seen ? false : null
}

test('files are 0600 and a directory leakguard creates is 0700', { skip: process.platform === 'win32' && 'POSIX modes' }, async () => {
  const dir = path.join(freshDir('modes'), 'nested', 'deeper')
  const r = await leakguard.capture({ dir })
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700)
  assert.equal(fs.statSync(path.dirname(dir)).mode & 0o777, 0o700)
  assert.equal(fs.statSync(r.path).mode & 0o777, 0o600)
  assert.equal(fs.statSync(r.manifestPath).mode & 0o777, 0o600)
})

test('a second capture while one runs rejects with CAPTURE_IN_PROGRESS', async () => {
  const dir = freshDir('concurrent')
  const first = leakguard.capture({ dir })
  const second = leakguard.capture({ dir })
  await assert.rejects(second, { code: leakguard.codes.CAPTURE_IN_PROGRESS })
  const r = await first
  assert.ok(fs.existsSync(r.path))
  // The flight is released: a third one works.
  const third = await leakguard.capture({ dir })
  assert.notEqual(third.path, r.path)
})

test('every bad option throws its coded error at the call', () => {
  const bad = [
    ['not an object', 42, TypeError],
    ['null', null, TypeError],
    ['unknown key', { dri: '/tmp' }, TypeError],
    ['dir empty', { dir: '' }, TypeError],
    ['dir not a string', { dir: 5 }, TypeError],
    ['dir with NUL', { dir: 'a\0b' }, TypeError],
    ['mode unknown', { mode: 'clone' }, RangeError],
    ['level too high', { level: 10 }, RangeError],
    ['level negative', { level: -1 }, RangeError],
    ['level fractional', { level: 1.5 }, RangeError],
    ['level string', { level: '1' }, TypeError],
    ['reason not a string', { reason: 7 }, TypeError],
    ['maxSnapshots zero', { maxSnapshots: 0 }, RangeError],
    ['maxSnapshots NaN', { maxSnapshots: NaN }, TypeError],
    ['maxBytes negative', { maxBytes: -5 }, RangeError],
    ['maxBytes Infinity', { maxBytes: Infinity }, RangeError],
    ['force not boolean', { force: 'yes' }, TypeError],
    ['fallback unknown', { fallback: 'retry' }, RangeError],
    ['forkTimeoutMs tiny', { forkTimeoutMs: 1 }, RangeError],
    ['signal not a signal', { signal: {} }, TypeError]
  ]
  for (const [label, opts, Ctor] of bad) {
    assert.throws(() => leakguard.capture(opts), (err) => {
      assert.equal(err.code, leakguard.codes.OPTIONS_INVALID, label)
      assert.ok(err instanceof Ctor, `${label}: ${err.constructor.name}`)
      return true
    }, label)
  }
})

test('codes are stable strings with the leakguard prefix, and frozen', () => {
  assert.ok(Object.isFrozen(leakguard.codes))
  for (const [k, v] of Object.entries(leakguard.codes)) assert.equal(v, `ERR_LEAKGUARD_${k}`)
  for (const k of ['CAPTURE_IN_PROGRESS', 'CAPTURE_NO_HEADROOM', 'CAPTURE_FORK_FAILED', 'OPTIONS_INVALID', 'CAPTURE_ABORTED']) {
    assert.ok(k in leakguard.codes, k)
  }
})

test('abort: an aborted signal rejects at once; aborting before the write finishes keeps nothing', async () => {
  const dir = freshDir('abort')
  await assert.rejects(leakguard.capture({ dir, signal: AbortSignal.abort() }), { code: leakguard.codes.CAPTURE_ABORTED })
  const ac = new AbortController()
  const p = leakguard.capture({ dir, signal: ac.signal })
  ac.abort() // the snapshot is taken; compression/commit is still running
  await assert.rejects(p, { code: leakguard.codes.CAPTURE_ABORTED })
  assert.deepEqual(leftovers(dir).filter((f) => f !== '.'), [])
  // Aborting after the capture finished changes nothing.
  const ac2 = new AbortController()
  const r = await leakguard.capture({ dir, signal: ac2.signal })
  ac2.abort()
  assert.ok(fs.existsSync(r.path))
})

test('retention keeps the newest maxSnapshots and never touches other files', async () => {
  const dir = freshDir('retention')
  fs.mkdirSync(dir, { recursive: true })
  const strangers = ['notes.txt', 'heap-mine.heapsnapshot.gz', 'heap-20200101T000000Z-1-1.heapsnapshot', 'other.json']
  for (const f of strangers) fs.writeFileSync(path.join(dir, f), 'x')
  const made = []
  for (let i = 0; i < 4; i++) made.push(await leakguard.capture({ dir, maxSnapshots: 2 }))
  const left = leftovers(dir).sort()
  const kept = made.slice(2).flatMap((r) => [path.basename(r.path), path.basename(r.manifestPath)])
  assert.deepEqual(left, [...kept, ...strangers].sort())
  // maxBytes: the budget holds one file; the newest is always kept.
  const r = await leakguard.capture({ dir, maxBytes: 1 })
  assert.deepEqual(leftovers(dir).sort(), [path.basename(r.path), path.basename(r.manifestPath), ...strangers].sort())
  assert.ok(r.pruned.length >= 2)
})

test('failure: RLIMIT_FSIZE (no root needed) → CAPTURE_WRITE_FAILED, no file, the process lives', { skip: process.platform === 'win32' && 'ulimit' }, async () => {
  const dir = freshDir('fsize')
  const res = await runFixture('capture-child.js', [JSON.stringify({ dir })], {
    wrap: { cmd: 'bash', args: ['-c', 'ulimit -f 256 && exec "$@"', 'bash'] }
  })
  assert.equal(res.signal, null, `killed by ${res.signal} (SIGXFSZ would mean we wrote past the limit)`)
  assert.equal(res.code, 0, res.stderr)
  assert.equal(res.json.ok, false)
  assert.equal(res.json.code, leakguard.codes.CAPTURE_WRITE_FAILED)
  assert.deepEqual(res.json.files, [])
})

test('failure: a full filesystem (tmpfs, ENOSPC) → CAPTURE_WRITE_FAILED, no file, next capture works', async (t) => {
  if (process.platform !== 'linux' || !isRoot) {
    t.skip('needs root on Linux to mount a small tmpfs; RLIMIT_FSIZE covers the same path without root')
    return
  }
  const mnt = freshDir('tmpfs')
  fs.mkdirSync(mnt, { recursive: true })
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt])
  } catch (err) {
    t.skip(`mount tmpfs failed here (${err.message.split('\n')[0]}); RLIMIT_FSIZE covers the same path`)
    return
  }
  try {
    const dir = path.join(mnt, 'snaps')
    const res = await runFixture('capture-child.js', [JSON.stringify({ dir, force: true }), freshDir('after-enospc')])
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.json.ok, false)
    assert.equal(res.json.code, leakguard.codes.CAPTURE_WRITE_FAILED)
    assert.match(res.json.message, /space/i)
    assert.deepEqual(res.json.files, [])
    assert.equal(res.json.second.ok, true)
  } finally {
    execFileSync('umount', [mnt])
  }
})

for (const [fault, key] of [['writer-panic', 'CAPTURE_INTERNAL'], ['pipe-close', 'CAPTURE_PIPE_FAILED'], ['rename-fail', 'CAPTURE_WRITE_FAILED']]) {
  test(`failure: injected ${fault} → ${key}, no file, the next capture works`, async () => {
    const dir = freshDir(fault)
    const res = await runFixture('capture-child.js', [JSON.stringify({ dir }), freshDir(`${fault}-after`)], {
      env: { LEAKGUARD_TEST_FAULT: fault, FIXTURE_THINGS: '20000' }
    })
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.json.ok, false)
    assert.equal(res.json.code, leakguard.codes[key])
    assert.deepEqual(res.json.files, [])
    assert.equal(res.json.second.ok, true)
  })
}

test('headroom: in a 256 MiB cgroup a 40 MB heap is refused with CAPTURE_NO_HEADROOM and both numbers', async (t) => {
  const cg = makeCgroup(256 * 1024 * 1024)
  if (!cg.dir) {
    t.skip(cg.reason)
    return
  }
  try {
    const dir = freshDir('headroom')
    const res = await runFixture('capture-child.js', [JSON.stringify({ dir })], {
      env: { FIXTURE_HEAP_MB: '40' },
      wrap: { cmd: 'sh', args: ['-c', `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`, 'sh'] }
    })
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.json.ok, false, JSON.stringify(res.json).slice(0, 300))
    assert.equal(res.json.code, leakguard.codes.CAPTURE_NO_HEADROOM)
    // The cgroup binds, read by leakguard or by process.availableMemory() (lower wins).
    assert.match(res.json.message, /needs about \d+ MiB .* only \d+ MiB is available \((cgroup limit|process\.availableMemory\(\))\)/)
    assert.deepEqual(res.json.files, [])
  } finally {
    cg.cleanup()
  }
})

test('capture from a worker thread takes that thread\'s heap inline', async () => {
  const dir = freshDir('worker')
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    const leakguard = require(${JSON.stringify(path.join(__dirname, '..'))})
    class WorkerThing { constructor (i) { this.i = i } }
    const keep = Array.from({ length: 777 }, (_, i) => new WorkerThing(i))
    leakguard.capture({ dir: ${JSON.stringify(dir)}, mode: 'auto' })
      .then((r) => parentPort.postMessage({ r, n: keep.length }), (e) => parentPort.postMessage({ code: e.code, message: e.message }))
  `, { eval: true })
  const msg = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
  await worker.terminate()
  assert.ok(msg.r, JSON.stringify(msg))
  assert.equal(msg.r.mode, 'inline')
  assert.equal(msg.r.thread, 'worker')
  const snap = JSON.parse(gunzipText(msg.r.path))
  assert.equal(countObjects(snap, 'WorkerThing'), 777)
  assert.equal(countObjects(snap, 'CountedThing'), 0, 'the main thread\'s heap is not in it')
})

test('idle, the addon keeps nothing alive: a process that captured exits by itself', async () => {
  const res = await runFixture('capture-child.js', [JSON.stringify({ dir: freshDir('exit') })], { timeoutMs: 30000 })
  assert.equal(res.code, 0, res.stderr)
  assert.equal(res.json.ok, true)
})
