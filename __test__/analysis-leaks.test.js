'use strict'
// Planted leaks found by diff: a child process (helpers/analysis-leak-app.js) grows leaks
// hung on one module's exports — a Map of PlantedRecord, an emitter's 'tick' listeners
// each holding a ListenerState, a closure whose captured array holds ClosureRecord, a Set
// on a module-level object, plain objects used as maps (string keys; integer keys), a Map
// of id → name and name → id — between two leakguard.capture() calls, inline and fork,
// beside a Set and an object that do not grow. Plus progress, malformed files,
// cancellation and option errors through the public API.

const { test, after: afterAll } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const { execFileSync } = require('node:child_process')

const leakguard = require('..')
const { codes } = leakguard

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-leaks-'))
// The captures and the generated snapshots (~100 MB) go with the run.
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }))

const made = new Map()
/** The two captures of one child (made once per mode; the tests only read them). */
function captures (mode) {
  if (!made.has(mode)) {
    const dir = path.join(tmp, mode)
    const out = execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'analysis-leak-app.js'), mode, dir], { timeout: 180000 })
    made.set(mode, JSON.parse(out))
  }
  return made.get(mode)
}

function checkPlanted (report, mode) {
  const byName = (n) => report.classes.find((c) => c.name === n)
  const planted = [
    ['PlantedRecord', 1234, /exports \(property\) → Object → sessions \(property\) → Map → table \(internal\)/],
    ['ListenerState', 300, /exports \(property\) → Object → bus \(property\) → EventEmitter → _events \(property\) → Object → tick \(property\) → Array/],
    ['ClosureRecord', 777, /exports \(property\) → Object → track \(property\) → track\(\) @ .*analysis-leak-module\.js:\d+:\d+ → context \(internal\) → system \/ Context → seen \(context\) → Array/]
  ]
  for (const [name, delta, via] of planted) {
    const c = byName(name)
    assert.ok(c, `${mode}: diff names ${name}`)
    assert.equal(c.countDelta, delta, `${mode}: ${name} count delta`)
    assert.ok(c.retainers && c.retainers.length > 0, `${mode}: ${name} has retainer paths`)
    const p = c.retainers[0]
    assert.equal(p.className, name)
    assert.match(p.text, via, `${mode}: ${name} path`)
    assert.equal(p.steps[0].edge, null)
    assert.equal(p.steps.at(-1).node, name)
    // By id the paths hold the new instances; by aggregate every instance.
    assert.equal(p.count, report.method === 'id' ? delta : c.afterCount, `${mode}: ${name} instances on the path`)
    if (report.method === 'id') {
      assert.equal(c.newCount, delta)
      assert.equal(c.deletedCount, 0)
    }
  }
  const closureStep = byName('ClosureRecord').retainers[0].steps.findLast((s) => s.type === 'closure')
  assert.equal(closureStep.name, 'track')
  assert.match(closureStep.location, /analysis-leak-module\.js:\d+:\d+$/)

  const det = (kind) => report.detectors.find((d) => d.kind === kind && (kind !== 'listeners' || d.event === 'tick'))
  const map = det('map')
  assert.ok(map, `${mode}: the Map detector fires`)
  assert.deepEqual([map.className, map.before, map.after], ['Map', 10, 1244])
  assert.match(map.path.text, /exports \(property\) → Object → sessions \(property\) → Map$/)
  assert.match(map.advice, /bound or expire/)
  const listeners = det('listeners')
  assert.ok(listeners, `${mode}: the listener detector fires`)
  assert.deepEqual([listeners.className, listeners.before, listeners.after], ['EventEmitter', 5, 305])
  assert.match(listeners.path.text, /bus \(property\) → EventEmitter$/)
  assert.match(listeners.advice, /remove the listener/)
  const array = report.detectors.find((d) => d.kind === 'array' && /seen \(context\) → Array$/.test(d.path.text))
  assert.ok(array, `${mode}: the closure's array is detected`)
  assert.deepEqual([array.before, array.after], [7, 784])
  // The listener array is reported once, as listeners.
  assert.ok(!report.detectors.some((d) => d.kind === 'array' && /_events/.test(d.path.text)))

  // A Set on a module-level object, and a plain object used as a map keyed per request.
  const owned = (kind, tail) => report.detectors.filter((d) => d.kind === kind && d.path && d.path.text.endsWith(tail))
  const [set, ...moreSets] = owned('set', 'exports (property) → Object → registry (property) → Object → visitors (property) → Set')
  assert.ok(set, `${mode}: the Set detector fires`)
  assert.equal(moreSets.length, 0)
  assert.deepEqual([set.className, set.before, set.after, set.after - set.before], ['Set', 12, 567, 555])
  assert.equal(set.path.steps[0].edge, null)
  assert.deepEqual(set.path.steps.at(-1), { node: 'Set', type: 'object', edge: 'visitors', edgeType: 'property' })
  assert.equal(set.advice, 'bound or expire the cache: delete entries when their owner is done, cap its size (an LRU), or key per-object metadata by the object in a WeakMap')
  const [object, ...moreObjects] = owned('object', 'exports (property) → Object → byRequest (property) → Object')
  assert.ok(object, `${mode}: the plain-object detector fires`)
  assert.equal(moreObjects.length, 0)
  assert.deepEqual([object.className, object.before, object.after, object.after - object.before], ['Object', 9, 441, 432])
  assert.equal(object.path.steps[0].edge, null)
  assert.deepEqual(object.path.steps.at(-1), { node: 'Object', type: 'object', edge: 'byRequest', edgeType: 'property' })
  assert.equal(object.advice, 'an object used as a map that only grows: delete keys when done, use a bounded Map (an LRU), or a WeakMap for per-object metadata')
  // Keyed by integer ids, an object's entries are elements, not properties: still a map.
  const [byId] = owned('object', 'exports (property) → Object → byUserId (property) → Object')
  assert.ok(byId, `${mode}: an object keyed by integer ids is detected`)
  assert.deepEqual([byId.before, byId.after], [9, 441])
  // A Map whose keys are small integers in some entries (not in the heap graph) and
  // strings in others: every entry counts.
  const [lookup] = owned('map', 'exports (property) → Object → lookup (property) → Map')
  assert.ok(lookup, `${mode}: the id ↔ name Map is detected`)
  assert.deepEqual([lookup.before, lookup.after], [18, 882])
  // Collections that hold as many entries at both captures are not reported: a Set whose
  // entries were replaced (deleted slots are holes in its table), an object whose values
  // changed, and the module's exports object (more than 8 properties, none added).
  for (const d of report.detectors) {
    assert.doesNotMatch(d.path.text, /stable \(property\) → Set$|settings \(property\) → Object$|exports \(property\) → Object$/, `${mode}: ${d.kind} ${d.before} → ${d.after} not reported`)
    assert.ok(d.after - d.before >= 10, `${mode}: growth below minGrowth reported`)
  }

  // Classes largest growth first: by retained delta, then shallow, then count, then name
  // (src/analysis/diff.rs's key, names compared as bytes), then type.
  const key = (a, b) => (b.retainedDelta - a.retainedDelta) || (b.shallowDelta - a.shallowDelta) || (b.countDelta - a.countDelta) ||
    Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)) || Buffer.compare(Buffer.from(a.type), Buffer.from(b.type))
  for (let i = 1; i < report.classes.length; i++) {
    const [a, b] = [report.classes[i - 1], report.classes[i]]
    assert.ok(key(a, b) < 0, `${mode}: classes out of order at ${i}: ${JSON.stringify(a)} before ${JSON.stringify(b)}`)
  }
  assert.ok(report.classes.length > 10 && report.classes[0].retainedDelta > 0 && report.classes[0].retainedDelta >= Math.max(...report.classes.map((c) => c.retainedDelta)))
}

test('inline captures: diff by id names the planted classes with exact deltas and paths through their owner', async () => {
  const { before, after } = captures('inline')
  assert.equal(before.mode, 'inline')
  const report = await leakguard.diff(before.path, after.path)
  assert.equal(report.method, 'id', report.methodReason)
  assert.match(report.methodReason, /inline captures of one process/)
  assert.ok(report.newCount > 0 && report.after.nodes > report.before.nodes)
  checkPlanted(report, 'inline')
  // Forcing aggregate on the same files gives the same deltas.
  const agg = await leakguard.diff(before.path, after.path, { method: 'aggregate' })
  assert.equal(agg.method, 'aggregate')
  assert.equal(agg.newCount, undefined)
  checkPlanted(agg, 'inline, aggregate')
})

test('fork captures: diff by aggregate (a fork child numbers its own ids) finds the same leaks', { skip: process.platform !== 'linux' && 'fork capture is Linux-only' }, async () => {
  const { before, after } = captures('fork')
  assert.equal(before.mode, 'fork')
  const report = await leakguard.diff(before.path, after.path)
  assert.equal(report.method, 'aggregate', report.methodReason)
  assert.match(report.methodReason, /fork/)
  checkPlanted(report, 'fork')
  // Without the manifests the data decides, and the fork children's ids do not match.
  const a = path.join(tmp, 'a.heapsnapshot.gz')
  const b = path.join(tmp, 'b.heapsnapshot.gz')
  fs.copyFileSync(before.path, a)
  fs.copyFileSync(after.path, b)
  const data = await leakguard.diff(a, b)
  assert.match(data.methodReason, /from the data/)
  checkPlanted(data, 'fork, no manifests')
})

test('retainers() and summarize() on a capture', async () => {
  const { after } = captures('inline')
  const s = await leakguard.summarize(after.path)
  const rec = s.classes.find((c) => c.name === 'PlantedRecord')
  assert.equal(rec.count, 1244)
  assert.ok(rec.retainedBytes >= rec.shallowBytes)
  const paths = await leakguard.retainers(after.path, { className: 'PlantedRecord', limit: 2 })
  assert.equal(paths[0].count, 1244)
  assert.ok(paths.length <= 2)
  assert.deepEqual(await leakguard.retainers(after.path, { className: 'NoSuchClass' }), [])
})

function bigSnapshot () {
  const file = path.join(tmp, 'big.heapsnapshot')
  if (!fs.existsSync(file)) execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'analysis-shapes.js'), 'bigarray', file], { timeout: 120000 })
  return file
}

test('an AbortSignal aborts a running analysis with ANALYSIS_ABORTED', async () => {
  const file = bigSnapshot()
  const ac = new AbortController()
  const phases = []
  const p = leakguard.summarize(file, {
    signal: ac.signal,
    onProgress: (e) => {
      phases.push(e.phase)
      if (e.phase === 'read' && e.done > 0) ac.abort()
    }
  })
  await assert.rejects(p, (e) => e.code === codes.ANALYSIS_ABORTED)
  assert.ok(phases.includes('read'))
  assert.ok(!phases.includes('classes'), 'stopped before the end')
  // Aborted before the call: rejects at once.
  await assert.rejects(leakguard.diff(file, file, { signal: AbortSignal.abort() }), (e) => e.code === codes.ANALYSIS_ABORTED)
})

test('analysis runs on a leakguard-analysis thread and reports progress by phase', { skip: process.platform !== 'linux' && '/proc is Linux-only' }, async () => {
  const file = bigSnapshot()
  let seen = false
  const progress = []
  await leakguard.summarize(file, {
    onProgress: (e) => {
      progress.push(e)
      if (!seen) {
        for (const t of fs.readdirSync('/proc/self/task')) {
          const comm = fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim()
          if (comm.startsWith('leakguard-analy')) seen = true
        }
      }
    }
  })
  assert.ok(seen, 'a thread named leakguard-analysis(…) was running')
  for (const phase of ['read', 'dominators', 'classes']) {
    const last = progress.filter((e) => e.phase === phase).at(-1)
    assert.ok(last, `phase ${phase}`)
    assert.equal(last.done, last.total)
  }
  // summarize reports no distances, so it skips the distance BFS and its phase.
  assert.ok(!progress.some((e) => e.phase === 'distances'), 'no distances phase in summarize')
})

/**
 * One analysis's progress events (of one file): every phase one contiguous run whose
 * fraction never falls, stays within [0, 1] and ends complete (done === total); `read`
 * first and done before any other phase starts. Returns the phases in order.
 */
function checkPhases (events, label) {
  assert.ok(events.length > 0, `${label}: progress was reported`)
  const runs = []
  for (const e of events) {
    assert.ok(Number.isFinite(e.done) && Number.isFinite(e.total) && e.done >= 0 && e.done <= e.total, `${label}: ${JSON.stringify(e)}`)
    if (runs.length === 0 || runs.at(-1).phase !== e.phase) runs.push({ phase: e.phase, events: [] })
    runs.at(-1).events.push(e)
  }
  const phases = runs.map((r) => r.phase)
  assert.equal(new Set(phases).size, phases.length, `${label}: each phase runs once: ${phases.join(', ')}`)
  assert.equal(phases[0], 'read', label)
  for (const { phase, events } of runs) {
    const fractions = events.map((e) => e.total === 0 ? 1 : e.done / e.total)
    for (let i = 1; i < fractions.length; i++) {
      assert.ok(fractions[i] >= fractions[i - 1], `${label}: ${phase} went back: ${JSON.stringify(events)}`)
      assert.equal(events[i].total, events[0].total, `${label}: ${phase}'s total changed`)
    }
    const last = events.at(-1)
    assert.equal(last.done, last.total, `${label}: ${phase} completes`)
  }
  return phases
}

test('diff reports progress per file: all of before, then all of after, each phase complete, paths last', async () => {
  const { before, after } = captures('inline')
  const events = []
  const report = await leakguard.diff(before.path, after.path, { onProgress: (e) => events.push(e) })
  assert.ok(events.every((e) => e.snapshot === 'before' || e.snapshot === 'after'), 'every event says which file')
  const firstAfter = events.findIndex((e) => e.snapshot === 'after')
  assert.ok(firstAfter > 0, 'before first')
  assert.ok(events.slice(firstAfter).every((e) => e.snapshot === 'after'), 'before is done with when after starts')
  const b = checkPhases(events.slice(0, firstAfter), 'before')
  const a = checkPhases(events.slice(firstAfter), 'after')
  // before is reduced to its facts (no dominators needed for paths there, but for its
  // retained sizes); after's paths come last, once its dominators are known.
  assert.deepEqual([...b].sort(), ['classes', 'distances', 'dominators', 'read'])
  assert.deepEqual([...a].sort(), ['classes', 'distances', 'dominators', 'paths', 'read'])
  assert.equal(a.at(-1), 'paths')
  assert.ok(a.indexOf('dominators') < a.indexOf('paths'))
  // The units: bytes of each file for read, nodes for the graph phases.
  const total = (which, phase) => events.find((e) => e.snapshot === which && e.phase === phase).total
  assert.equal(total('before', 'read'), fs.statSync(before.path).size)
  assert.equal(total('after', 'read'), fs.statSync(after.path).size)
  assert.equal(total('before', 'dominators'), report.before.nodes)
  assert.equal(total('after', 'dominators'), report.after.nodes)
})

test('retainers reports progress: read, the graph phases, then paths over the class\'s instances', async () => {
  const { after } = captures('inline')
  const events = []
  const paths = await leakguard.retainers(after.path, { className: 'PlantedRecord', onProgress: (e) => events.push(e) })
  assert.ok(events.every((e) => !('snapshot' in e)), 'no snapshot field outside a diff')
  const phases = checkPhases(events, 'retainers')
  assert.deepEqual([...phases].sort(), ['classes', 'distances', 'dominators', 'paths', 'read'])
  assert.equal(phases.at(-1), 'paths')
  const p = events.filter((e) => e.phase === 'paths')
  assert.equal(p.at(-1).total, paths.reduce((n, x) => n + x.count, 0), 'paths counts the instances')
  assert.equal(p.at(-1).total, 1244)
})

function meshSnapshot () {
  const file = path.join(tmp, 'mesh.heapsnapshot')
  if (!fs.existsSync(file)) execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'analysis-shapes.js'), 'mesh', file], { timeout: 180000 })
  return file
}

test('an abort inside the dominator pass rejects promptly with ANALYSIS_ABORTED; the file then analyses in full', async (t) => {
  const file = meshSnapshot()
  const ac = new AbortController()
  const seen = []
  let abortedAt = 0
  const started = performance.now()
  const p = leakguard.summarize(file, {
    signal: ac.signal,
    onProgress: (e) => {
      seen.push(e)
      if (e.phase === 'dominators' && !abortedAt) {
        abortedAt = performance.now()
        ac.abort()
      }
    }
  })
  await assert.rejects(p, (e) => e.code === codes.ANALYSIS_ABORTED)
  const latency = performance.now() - abortedAt
  assert.ok(abortedAt > 0, 'the dominator pass was reported')
  // Anything the analysis thread queued before it stopped has arrived by now.
  await new Promise((resolve) => setTimeout(resolve, 100))
  const dominators = seen.filter((e) => e.phase === 'dominators')
  assert.ok(dominators.every((e) => e.done < e.total), `stopped inside the dominator pass: ${JSON.stringify(dominators)}`)

  // The same file, again, to the end: a cancelled run leaves nothing behind.
  const times = {}
  const t0 = performance.now()
  const s = await leakguard.summarize(file, {
    onProgress: (e) => { if (e.phase === 'dominators') times[e.done === e.total ? 'end' : 'start'] ??= performance.now() }
  })
  const fullMs = performance.now() - t0
  assert.equal(s.classes.find((c) => c.name === 'MeshNode').count, 300000)
  assert.equal(s.classes.find((c) => c.name === 'ShapeRoot').retainedBytes > 300000 * 32, true)
  const passMs = times.end - times.start
  // The cancel flag is read every ~64 K steps: far sooner than the pass would have ended.
  assert.ok(latency < Math.max(250, passMs), `abort took ${latency.toFixed(0)} ms; the whole pass takes ${passMs.toFixed(0)} ms`)
  t.diagnostic(`abort → reject ${latency.toFixed(1)} ms (aborted ${(abortedAt - started).toFixed(0)} ms in); full summarize ${fullMs.toFixed(0)} ms, its dominator pass ${passMs.toFixed(0)} ms`)
})

test('malformed and missing files reject with coded errors', async () => {
  const good = fs.readFileSync(bigSnapshot())
  const cases = {
    'not JSON': Buffer.from('hello, not a snapshot'),
    truncated: good.subarray(0, Math.floor(good.length / 2)),
    'truncated in strings': good.subarray(0, good.length - 100),
    'bad gzip': Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]),
    'gzip of garbage': zlib.gzipSync(Buffer.from('[1,2,3]')),
    empty: Buffer.alloc(0)
  }
  for (const [name, bytes] of Object.entries(cases)) {
    const f = path.join(tmp, `bad-${name.replace(/\W/g, '_')}.heapsnapshot`)
    fs.writeFileSync(f, bytes)
    await assert.rejects(leakguard.summarize(f), (e) => e.code === codes.ANALYSIS_INVALID_SNAPSHOT, name)
    await assert.rejects(leakguard.diff(f, f), (e) => e.code === codes.ANALYSIS_INVALID_SNAPSHOT, name)
  }
  await assert.rejects(leakguard.summarize(path.join(tmp, 'missing.heapsnapshot')), (e) => e.code === codes.ANALYSIS_NOT_FOUND)
  await assert.rejects(leakguard.retainers(path.join(tmp, 'missing.heapsnapshot'), { className: 'X' }), (e) => e.code === codes.ANALYSIS_NOT_FOUND)
  await assert.rejects(leakguard.summarize(tmp), (e) => e.code === codes.ANALYSIS_READ_FAILED)
})

test('bad arguments throw OPTIONS_INVALID synchronously', () => {
  const bad = [
    () => leakguard.summarize(),
    () => leakguard.summarize(42),
    () => leakguard.summarize(''),
    () => leakguard.summarize('x', { nope: 1 }),
    () => leakguard.summarize('x', { signal: {} }),
    () => leakguard.summarize('x', { onProgress: 'no' }),
    () => leakguard.summarize('x', { limit: -1 }),
    () => leakguard.diff('x'),
    () => leakguard.diff('x', 'y', { method: 'by-name' }),
    () => leakguard.diff('x', 'y', { top: 1.5 }),
    () => leakguard.retainers('x'),
    () => leakguard.retainers('x', { className: '' }),
    () => leakguard.retainers('x', { className: 'A', limit: 0 })
  ]
  for (const f of bad) {
    assert.throws(f, (e) => e.code === codes.OPTIONS_INVALID && (e instanceof TypeError || e instanceof RangeError), String(f))
  }
})
