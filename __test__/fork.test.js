'use strict'
// Fork capture (Linux): the snapshot is taken in a forked child. Real children, real
// faults injected into the child (hang, spin without progress, crash), no zombies, no
// temporary files, fallback to inline or a coded rejection; Node 22 as well as 20.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Worker } = require('node:worker_threads')

const leakguard = require('..')
const { gunzipText, countObjects, countWithParser } = require('./helpers/snapshot')
const { runFixture } = require('./helpers/child')
const { nodeBinary } = require('./helpers/node-versions')
const { makeCgroup } = require('./helpers/cgroup')

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-fork-test-'))
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
let seq = 0
const freshDir = (l) => path.join(tmpRoot, `${l}-${++seq}`)
const linux = process.platform === 'linux'
const forkReason = linux ? false : 'fork capture is Linux-only'

function assertClean (out) {
  assert.deepEqual(out.children, [], 'no child left: no zombie, no orphan')
  assert.deepEqual(out.files.filter((f) => f.endsWith('.tmp')), [], 'no temporary file')
}

test('a fork capture parses and holds the exact count of a class; the result says fork', { skip: forkReason }, async () => {
  const dir = freshDir('count')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork' })])).json
  const r = out.results[0]
  assert.equal(r.ok, true, JSON.stringify(r))
  assert.equal(r.mode, 'fork')
  assert.equal(typeof r.fork.pid, 'number')
  // The fast opening pass ran: a few madvise calls over spans, no per-mapping pass.
  assert.equal(r.fork.openPass, 'spans', JSON.stringify(r.fork))
  assert.equal(r.fork.exactPassReason, null)
  assert.ok(r.fork.rangesOpened >= 1)
  const text = gunzipText(r.path)
  assert.equal(countObjects(JSON.parse(text), 'ForkThing'), 4321)
  assert.equal(await countWithParser(text, 'ForkThing'), 4321)
  assertClean(out)
})

test('when the span pass fails, the exact pass opens every mapping and the child still gets the whole heap', { skip: forkReason }, async () => {
  const dir = freshDir('exact')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork', fallback: 'none' })], { env: { LEAKGUARD_TEST_FAULT: 'spans-fail' } })).json
  const r = out.results[0]
  assert.equal(r.ok, true, JSON.stringify(r))
  assert.equal(r.mode, 'fork')
  assert.equal(r.fork.openPass, 'exact')
  assert.match(r.fork.exactPassReason, /madvise over a span failed/)
  // One call per anonymous mapping: many more than the spans.
  assert.ok(r.fork.rangesOpened > 20, `rangesOpened ${r.fork.rangesOpened}`)
  assert.equal(countObjects(JSON.parse(gunzipText(r.path)), 'ForkThing'), 4321)
  assertClean(out)
})

test("mode 'auto' forks on Linux and says why", { skip: forkReason }, async () => {
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir: freshDir('auto') })])).json
  assert.equal(out.results[0].mode, 'fork')
  assert.match(out.results[0].modeReason, /^auto/)
  assertClean(out)
})

test('a hung child is detected within seconds, killed, and the capture falls back to inline', { skip: forkReason }, async () => {
  const dir = freshDir('hang')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork', forkTimeoutMs: 600000 })], { env: { LEAKGUARD_TEST_FAULT: 'child-hang' } })).json
  const r = out.results[0]
  assert.equal(r.ok, true, JSON.stringify(r))
  assert.equal(r.mode, 'inline')
  assert.match(r.modeReason, /^fallback: the fork child was killed: hung/)
  assert.equal(countObjects(JSON.parse(gunzipText(r.path)), 'ForkThing'), 4321)
  assertClean(out)
})

test('a child making no progress is killed after forkTimeoutMs; fallback says why', { skip: forkReason }, async () => {
  const dir = freshDir('spin')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork', forkTimeoutMs: 500 })], { env: { LEAKGUARD_TEST_FAULT: 'child-spin' } })).json
  const r = out.results[0]
  assert.equal(r.ok, true, JSON.stringify(r))
  assert.equal(r.mode, 'inline')
  assert.match(r.modeReason, /no progress through the pipe/)
  assertClean(out)
})

test("fallback: 'none' rejects with CAPTURE_FORK_FAILED and keeps nothing", { skip: forkReason }, async () => {
  const dir = freshDir('none')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork', fallback: 'none', forkTimeoutMs: 500 })], { env: { LEAKGUARD_TEST_FAULT: 'child-spin' } })).json
  const r = out.results[0]
  assert.equal(r.ok, false)
  assert.equal(r.code, leakguard.codes.CAPTURE_FORK_FAILED)
  assert.deepEqual(out.files, [])
  assertClean(out)
})

test('a crashing child is reaped and the capture falls back', { skip: forkReason }, async () => {
  const dir = freshDir('crash')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork' })], { env: { LEAKGUARD_TEST_FAULT: 'child-crash' } })).json
  const r = out.results[0]
  assert.equal(r.ok, true, JSON.stringify(r))
  assert.equal(r.mode, 'inline')
  assert.match(r.modeReason, /signal 6/)
  assertClean(out)
})

test('aborting a fork capture kills the child and keeps nothing', { skip: forkReason }, async () => {
  const dir = freshDir('abort')
  const out = (await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork', abortAfterMs: 300 })], { env: { FIXTURE_HEAP_MB: '20' } })).json
  const r = out.results[0]
  assert.equal(r.ok, false, JSON.stringify(r))
  assert.equal(r.code, leakguard.codes.CAPTURE_ABORTED)
  assert.deepEqual(out.files, [])
  assertClean(out)
})

test("from a worker thread, 'fork' rejects with CAPTURE_FORK_UNSUPPORTED (never forks a worker)", async () => {
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    const leakguard = require(${JSON.stringify(path.join(__dirname, '..'))})
    leakguard.capture({ dir: ${JSON.stringify(freshDir('worker'))}, mode: 'fork' })
      .then((r) => parentPort.postMessage({ mode: r.mode }), (e) => parentPort.postMessage({ code: e.code }))
  `, { eval: true })
  const msg = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
  await worker.terminate()
  assert.equal(msg.code, leakguard.codes.CAPTURE_FORK_UNSUPPORTED)
})

function forkThingIds (file) {
  const snap = JSON.parse(gunzipText(file))
  const f = snap.snapshot.meta.node_fields
  const objectType = snap.snapshot.meta.node_types[0].indexOf('object')
  const found = []
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    if (snap.strings[snap.nodes[i + f.indexOf('name')]] === 'ForkThing' && snap.nodes[i + f.indexOf('type')] === objectType) found.push(snap.nodes[i + f.indexOf('id')])
  }
  return found.sort((a, b) => a - b)
}

test('node ids: stable across inline captures, not across fork captures (documented)', { skip: forkReason }, async () => {
  const env = { FIXTURE_THINGS: '3' }
  const inline = (await runFixture('fork-child.js', [JSON.stringify({ dir: freshDir('ids-inline'), mode: 'inline', count: 2 })], { env })).json
  const fork = (await runFixture('fork-child.js', [JSON.stringify({ dir: freshDir('ids-fork'), mode: 'fork', count: 2 })], { env })).json
  const [i1, i2] = inline.results.map((r) => forkThingIds(r.path))
  const [f1, f2] = fork.results.map((r) => { assert.equal(r.mode, 'fork'); return forkThingIds(r.path) })
  assert.equal(i1.length, 3)
  assert.deepEqual(i1, i2, 'in-process captures share V8\'s id map: same object, same id')
  assert.equal(f1.length, 3)
  // Each child numbers the heap afresh and its id map dies with it; the parent's heap
  // changed between the captures, so the same objects got other ids. DevTools'
  // Comparison view of two fork captures is valid per constructor (# Delta, Size Delta)
  // but its per-object New/Deleted columns are not (docs/how-it-works.md "Node ids").
  assert.notDeepEqual(f1, f2)
})

test('fork capture works on Node 22 too', { skip: forkReason, timeout: 240000 }, async (t) => {
  const node22 = await nodeBinary(22)
  if (!node22.path) {
    t.skip(`Node 22 is not installable here: ${node22.reason}`)
    return
  }
  const dir = freshDir('node22')
  const res = await runFixture('fork-child.js', [JSON.stringify({ dir, mode: 'fork', count: 3 })], { wrap: { cmd: node22.path, args: [] }, node: false })
  const out = res.json
  assert.ok(out, res.stderr)
  assert.match(out.version, /^v22\./)
  for (const r of out.results) {
    assert.equal(r.ok, true, JSON.stringify(r))
    assert.equal(r.mode, 'fork')
    assert.equal(countObjects(JSON.parse(gunzipText(r.path)), 'ForkThing'), 4321)
  }
  assertClean(out)
})

test("headroom: where the fork budget does not cover an ordinary heap, 'fork' and 'auto' are refused up front with the budget's numbers", { skip: forkReason, timeout: 180000 }, async (t) => {
  // The budget is decided from the cgroup: limit − usage − the process's RSS (copy-on-
  // write) − a reserve − a margin. In 320 MiB, a 40 MB heap (RSS ~110 MB) leaves the child
  // well under the ~8x heapUsed an ordinary heap needs; inline's conservative estimate
  // does not fit either, so 'auto' gives the fork budget's reason.
  const cg = makeCgroup(320 * 1024 ** 2)
  if (!cg.dir) return t.skip(cg.reason)
  const inCgroup = { cmd: 'sh', args: ['-c', `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`, 'sh'] }
  try {
    for (const mode of ['fork', 'auto']) {
      const res = await runFixture('fork-child.js', [JSON.stringify({ dir: freshDir('cg'), mode })], { env: { FIXTURE_HEAP_MB: '40' }, wrap: inCgroup })
      assert.ok(res.json, `exit ${res.code} signal ${res.signal}: ${res.stderr.slice(-500)}`)
      const r = res.json.results[0]
      assert.equal(r.code, leakguard.codes.CAPTURE_NO_HEADROOM, JSON.stringify(r))
      assert.match(r.message, /an ordinary heap of this size needs about \d+ MiB .* only \d+ MiB is available \((cgroup limit|process\.availableMemory\(\))\), which leaves the child a budget of \d+ MiB/)
      assert.deepEqual(res.json.files, [])
      assertClean(res.json)
    }
  } finally {
    cg.cleanup()
  }
})

// The stress run: 50 fork captures in a row while the process allocates and serves HTTP
// on loopback under a bounded load, on Node 20 (this node) and Node 22. About 2 minutes
// per Node version on a 2-core machine, so it runs when LEAKGUARD_STRESS=1 is set;
// the README and the issue notes carry its figures.
const stress = process.env.LEAKGUARD_STRESS === '1'
for (const major of ['current', 22]) {
  test(`stress: 50 fork captures under HTTP load on Node ${major} — all complete or fall back, no zombie, no tmp`, {
    skip: !linux ? forkReason : !stress && 'set LEAKGUARD_STRESS=1 to run (about 2 minutes per Node version)',
    timeout: 900000
  }, async (t) => {
    let wrap
    if (major !== 'current') {
      const bin = await nodeBinary(major)
      if (!bin.path) return t.skip(`Node ${major} is not installable here: ${bin.reason}`)
      wrap = { cmd: bin.path, args: [] }
    }
    const dir = freshDir(`stress-${major}`)
    const res = await runFixture('stress-server.js', [dir, '50', 'fork'], { wrap, node: !wrap, timeoutMs: 840000 })
    const out = res.json
    assert.ok(out, res.stderr)
    t.diagnostic(`stress ${out.version}: ${JSON.stringify(out)}`)
    assert.deepEqual(out.failures, [])
    assert.equal((out.byMode.fork || 0) + (out.byMode.inline || 0), 50)
    assert.equal(out.zombiesDuring, 0)
    assert.deepEqual(out.zombiesAfter, [])
    assert.deepEqual(out.tmpFiles, [])
    assert.equal(out.client.errors, 0, 'the server answered throughout')
    assert.ok(out.client.requests > 100)
  })
}
