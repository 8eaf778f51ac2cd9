'use strict'
// The class histogram in every capture: counted by the capture thread as the snapshot
// streams to gzip, checked against an independent parse of the same file (JSON.parse of
// the gunzipped file and DevTools' class rule, every class, exact), a class of our own
// found with its exact count (fork and inline), the totals, the manifest, the admin
// route's listing, status().captures, and classGrowth between two captures.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const leakguard = require('..')
const { gunzipText, countWithParser } = require('./helpers/snapshot')
const { runFixture } = require('./helpers/child')
const { startServer } = require('./helpers/http')

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-classes-test-'))
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
let seq = 0
const freshDir = (l) => path.join(tmpRoot, `${l}-${++seq}`)
const linux = process.platform === 'linux'

class HistoThing { constructor (i) { this.i = i } }

/** Every class of a snapshot, by DevTools' className() rule, from the flat arrays. */
function independentHistogram (snap) {
  const meta = snap.snapshot.meta
  const f = meta.node_fields
  const [ti, ni, si] = ['type', 'name', 'self_size'].map((k) => f.indexOf(k))
  const types = meta.node_types[0]
  const out = new Map()
  let count = 0
  let selfSize = 0
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const type = types[snap.nodes[i + ti]]
    const raw = snap.strings[snap.nodes[i + ni]]
    const name = type === 'object' || type === 'native' ? raw : type === 'hidden' ? '(system)' : type === 'code' ? '(compiled code)' : `(${type})`
    const k = `${type}\u0000${name}`
    const e = out.get(k) || { name, type, count: 0, selfSize: 0 }
    e.count++
    e.selfSize += snap.nodes[i + si]
    out.set(k, e)
    count++
    selfSize += snap.nodes[i + si]
  }
  return { classes: out, count, selfSize }
}

function assertMatches (r, label) {
  const ind = independentHistogram(JSON.parse(gunzipText(r.path)))
  assert.ok(Array.isArray(r.classes) && r.classes.length > 0, label)
  assert.deepEqual(r.classTotals, { count: ind.count, selfSize: ind.selfSize, classes: ind.classes.size }, `${label}: totals`)
  for (const c of r.classes) {
    const e = ind.classes.get(`${c.type}\u0000${c.name}`)
    assert.ok(e, `${label}: ${c.type} ${c.name} is in the file`)
    assert.deepEqual({ count: c.count, selfSize: c.selfSize }, { count: e.count, selfSize: e.selfSize }, `${label}: ${c.type} ${c.name}`)
  }
  return ind
}

test('every class of the histogram equals an independent parse of the same file, exact (fork and inline, all classes)', async () => {
  for (const mode of linux ? ['fork', 'inline'] : ['inline']) {
    const dir = freshDir(`all-${mode}`)
    const res = await runFixture('fork-child.js', [JSON.stringify({ dir, mode })], { env: { LEAKGUARD_TEST_CLASSES_TOP: '1000000', FIXTURE_HEAP_MB: '5' } })
    const r = res.json.results[0]
    assert.equal(r.ok, true, JSON.stringify(r).slice(0, 300))
    const m = JSON.parse(fs.readFileSync(r.path.replace(/\.heapsnapshot\.gz$/, '.json'), 'utf8'))
    const ind = assertMatches(m, mode)
    assert.equal(m.classes.length, ind.classes.size, 'every class is listed')
    assert.equal(m.classes.find((c) => c.name === 'ForkThing').count, 4321)
    assert.equal(typeof m.phases.histogramMs, 'number')
  }
})

test('a capture of a heap with a class of our own gives its exact count in result.classes; top 50 by size and by count, deduplicated', async () => {
  const things = Array.from({ length: 23456 }, (_, i) => new HistoThing(i))
  for (const mode of linux ? ['fork', 'inline'] : ['inline']) {
    const r = await leakguard.capture({ dir: freshDir(`own-${mode}`), mode })
    const mine = r.classes.filter((c) => c.name === 'HistoThing')
    assert.deepEqual(mine.map((c) => [c.type, c.count]), [['object', 23456]], mode)
    assert.equal(await countWithParser(gunzipText(r.path), 'HistoThing'), 23456, 'the third-party parser agrees')
    assertMatches(r, mode)
    const keys = r.classes.map((c) => `${c.type}/${c.name}`)
    assert.equal(new Set(keys).size, keys.length, 'no class twice')
    assert.ok(r.classes.length >= 50 && r.classes.length <= 100, `${r.classes.length} classes`)
    for (let i = 1; i < r.classes.length; i++) assert.ok(r.classes[i - 1].selfSize >= r.classes[i].selfSize, 'largest self size first')
    const m = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'))
    assert.deepEqual(m.classes, r.classes)
    assert.deepEqual(m.classTotals, r.classTotals)
  }
  assert.equal(things.length, 23456)
})

// A stream cut right after a '}' (which the first/last-byte check alone took for whole)
// is covered on the pump itself: src/capture/writer.rs,
// the_pump_counts_classes_on_the_way_and_a_stream_cut_after_a_brace_is_not_whole.
test('LEAKGUARD_NO_HISTOGRAM=1 (the benchmark\'s same-binary switch): a whole file, classes null in the result and the manifest', async () => {
  for (const mode of linux ? ['inline', 'fork'] : ['inline']) {
    const dir = freshDir(`nohist-${mode}`)
    const res = await runFixture('capture-child.js', [JSON.stringify({ dir, mode, fallback: 'none' })], { env: { LEAKGUARD_NO_HISTOGRAM: '1', FIXTURE_THINGS: '3000' } })
    assert.equal(res.code, 0, res.stderr)
    assert.equal(res.json.ok, true, res.json.message)
    const r = res.json.result
    assert.equal(r.mode, mode)
    assert.equal(r.classes, null)
    assert.equal(r.classTotals, null)
    const manifest = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'))
    assert.equal(manifest.classes, null)
    // The file is whole: DevTools' rule finds the fixture's 3,000 instances in it.
    const ind = independentHistogram(JSON.parse(gunzipText(r.path)))
    assert.equal(ind.classes.get('object\u0000FixtureThing').count, 3000)
  }
})

test('a stream cut short (the pipe closed after its first chunk) yields no histogram and no file', async () => {
  const dir = freshDir('truncated')
  const res = await runFixture('capture-child.js', [JSON.stringify({ dir, mode: 'inline' }), freshDir('truncated-after')], { env: { LEAKGUARD_TEST_FAULT: 'pipe-close', FIXTURE_THINGS: '20000' } })
  assert.equal(res.code, 0, res.stderr)
  assert.equal(res.json.ok, false)
  assert.equal(res.json.code, leakguard.codes.CAPTURE_PIPE_FAILED)
  assert.deepEqual(res.json.files, [], 'no file, no manifest, no temporary file')
  assert.equal(res.json.second.ok, true, 'the next capture works')
})

test('status().captures and the admin route\'s GET /snapshots carry the histogram; classGrowth names what grew, per hour', async () => {
  const dir = freshDir('admin')
  const guard = leakguard.watch({ capture: { dir } })
  const grow = []
  try {
    const a = await guard.capture({ reason: 'before' })
    for (let i = 0; i < 30000; i++) grow.push(new HistoThing(i))
    await new Promise((resolve) => setTimeout(resolve, 20))
    const b = await guard.capture({ reason: 'after' })
    const st = guard.status()
    assert.deepEqual(st.captures.slice(-2).map((c) => c.classes), [a.classes, b.classes])
    const srv = await startServer('http', { token: 'secret-token-123456', dir })
    try {
      const res = await fetch(`http://127.0.0.1:${srv.port}/debug/leakguard/snapshots`, { headers: { authorization: 'Bearer secret-token-123456' } })
      const body = await res.json()
      assert.equal(res.status, 200, JSON.stringify(body))
      const listed = body.snapshots.find((s) => s.name === b.name)
      assert.deepEqual(listed.classes, b.classes)
      assert.deepEqual(listed.classTotals, b.classTotals)
    } finally {
      await srv.close()
    }
    const g = leakguard.classGrowth(b, a) // either order: the older is the baseline
    assert.equal(g.from, a.createdAt)
    assert.equal(g.to, b.createdAt)
    const top = g.classes.find((c) => c.name === 'HistoThing')
    assert.ok(top, JSON.stringify(g.classes.slice(0, 5)))
    const before = a.classes.find((c) => c.name === 'HistoThing')
    assert.equal(top.count, 30000)
    if (before) assert.equal(top.countGrowth, top.count - before.count, 'exact growth when it was listed before')
    else assert.ok(top.countGrowth > 0 && top.countGrowth <= 30000, 'else a lower bound')
    assert.ok(top.bytesGrowth > 0 && top.bytesPerHour > 0 && top.countPerHour > 0)
    assert.equal(top.approximate, !before)
    for (let i = 1; i < g.classes.length; i++) assert.ok(g.classes[i - 1].bytesGrowth >= g.classes[i].bytesGrowth)
  } finally {
    guard.stop()
  }
  assert.equal(grow.length, 30000)
})

test('classGrowth: exact arithmetic on hand-made histograms, and coded errors for bad input', () => {
  const a = { createdAt: '2026-01-01T00:00:00.000Z', classes: [{ name: 'A', type: 'object', count: 10, selfSize: 100 }, { name: 'B', type: 'object', count: 5, selfSize: 50 }], classTotals: { classes: 2 } }
  const b = { createdAt: '2026-01-01T02:00:00.000Z', classes: [{ name: 'A', type: 'object', count: 30, selfSize: 300 }, { name: 'B', type: 'object', count: 5, selfSize: 50 }, { name: 'C', type: 'object', count: 4, selfSize: 40 }], classTotals: { classes: 3 } }
  const g = leakguard.classGrowth(a, b)
  assert.equal(g.hours, 2)
  assert.deepEqual(g.classes, [
    { name: 'A', type: 'object', count: 30, selfSize: 300, countGrowth: 20, bytesGrowth: 200, countPerHour: 10, bytesPerHour: 100, approximate: false },
    { name: 'C', type: 'object', count: 4, selfSize: 40, countGrowth: 4, bytesGrowth: 40, countPerHour: 2, bytesPerHour: 20, approximate: false }
  ])
  // A truncated older list: a new class's baseline is that list's cut-off.
  const g2 = leakguard.classGrowth({ ...a, classTotals: { classes: 500 } }, b)
  assert.deepEqual(g2.classes.find((c) => c.name === 'C'), undefined, 'C (4, 40) is below the cut-off (5, 50): not known to have grown')
  assert.equal(leakguard.classGrowth(a, b, { limit: 1 }).classes.length, 1)
  for (const [x, y] of [[null, b], [a, {}], [{ ...a, createdAt: 'no' }, b]]) {
    assert.throws(() => leakguard.classGrowth(x, y), (e) => e.code === leakguard.codes.OPTIONS_INVALID)
  }
  assert.throws(() => leakguard.classGrowth(a, b, { limit: 0 }), RangeError)
})
