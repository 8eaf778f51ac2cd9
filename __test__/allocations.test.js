'use strict'
// Allocation sites (issue #10) in real child processes at a 100 ms interval: an Express
// service under loopback load whose leak is express-session's default MemoryStore, the same
// service with a bounded lru-cache, a closure keeping a large object alive; a second
// inspector session beside leakguard's; the .heapprofile and pprof exports read back by
// JSON.parse and by an independent pprof decoder (pprof-format).

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const zlib = require('node:zlib')
const { fork, spawnSync } = require('node:child_process')
const { Profile } = require('pprof-format')
const leakguard = require('..')

const fixture = path.join(__dirname, 'fixtures', 'alloc-server.js')
const root = path.join(__dirname, '..')

/** Start the fixture; returns { child, port, next(type, ms) }. */
async function start (mode, execArgv = []) {
  const child = fork(fixture, [], { cwd: root, execArgv, env: { ...process.env, LEAK_MODE: mode }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const queue = []
  const waiters = []
  child.on('message', (m) => {
    const w = waiters.findIndex((x) => x.type === m.type)
    if (w >= 0) waiters.splice(w, 1)[0].resolve(m)
    else queue.push(m)
  })
  const next = (type, ms = 60000) => {
    const i = queue.findIndex((m) => m.type === type)
    if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0])
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${type} message within ${ms} ms`)), ms)
      waiters.push({ type, resolve: (m) => { clearTimeout(t); resolve(m) } })
    })
  }
  const { port } = await next('listening', 20000)
  return { child, port, next }
}

/** Loopback load: `clients` keep-alive loops until `stop()` or `max` requests. */
function load (port, { clients = 2, max = 400000 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
  let n = 0
  let stopped = false
  const one = () => new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: `/item/${n}`, agent }, (res) => { res.resume(); res.on('end', resolve) }).on('error', resolve)
  })
  const loops = Array.from({ length: clients }, async () => {
    while (!stopped && n < max) { n++; await one() }
  })
  return { stop: async () => { stopped = true; await Promise.all(loops); agent.destroy(); return n } }
}

async function end (c) {
  c.child.disconnect()
  await new Promise((resolve) => { const t = setTimeout(() => { c.child.kill('SIGKILL'); resolve() }, 5000); c.child.once('exit', () => { clearTimeout(t); resolve() }) })
}

const fileOf = (s) => s.frames.map((f) => f.file)

/** The 'leak-report' of the 'leak' verdict (the one of 'growing' may come first, when a site has few points). */
async function leakReport (c, ms = 100000) {
  const until = Date.now() + ms
  for (;;) {
    const { report } = await c.next('leak-report', Math.max(1, until - Date.now()))
    if (report.heap.state === 'leak') return report
  }
}

test("express-session's MemoryStore: the leak-report's top growing site is express-session's code", { timeout: 120000 }, async () => {
  const c = await start('session')
  const l = load(c.port)
  try {
    const report = await leakReport(c)
    assert.ok(['growing', 'leak'].includes(report.heap.state))
    const top = report.sites[0]
    assert.ok(top && top.growing, JSON.stringify(report.sites.slice(0, 3)))
    assert.ok(fileOf(top).some((f) => f.includes('node_modules/express-session/')), JSON.stringify(top.frames))
    assert.ok(top.growthBytesPerHour > 0 && top.liveBytes > 0)
    assert.ok(top.share > 0 && top.share <= 1, String(top.share))
    for (const f of top.frames) {
      assert.ok(!path.isAbsolute(f.file) || !f.file.startsWith(root + path.sep), `file relative to the cwd: ${f.file}`)
      assert.ok(Number.isInteger(f.line) && Number.isInteger(f.column))
    }
    assert.ok(typeof report.createdAt === 'number' && report.native)
  } finally {
    await l.stop()
    await end(c)
  }
})

test('the same service caching in a bounded lru-cache has no growing site', { timeout: 120000 }, async () => {
  const c = await start('lru')
  const l = load(c.port)
  try {
    await new Promise((resolve) => setTimeout(resolve, 30000))
    c.child.send({ type: 'report' })
    const { report, status } = await c.next('report')
    assert.ok(status.allocations.reads >= 20, JSON.stringify(status.allocations))
    const growing = report.sites.filter((s) => s.growing)
    assert.deepEqual(growing.map((s) => s.name), [])
    // Not vacuous: the site holding the most live bytes (the cache's entries) was judged on
    // enough points. (A small site may be new: a stack that changed when V8 optimised it.)
    const biggest = [...report.sites].sort((a, b) => b.liveBytes - a.liveBytes)[0]
    assert.ok(biggest && biggest.points >= 5 && biggest.liveBytes > 1e6, JSON.stringify(report.sites.slice(0, 5).map((s) => [s.name, s.liveBytes, s.points])))
  } finally {
    await l.stop()
    await end(c)
  }
})

test("a closure keeping a large object alive: the top growing site is the closure's maker", { timeout: 120000 }, async () => {
  // V8's sampling profiler records only the outermost frame of optimized code: a function
  // TurboFan inlined has its allocations attributed to the caller it was inlined into. In
  // this fixture that moves the closure's objects to the route handler (makeCallback
  // inlined) or, when TurboFan also inlines the handler into the router, to
  // `next node_modules/router/index.js` — CI saw the latter once (the site then names the
  // router's code, correctly by V8's record, and this test failed). That is V8's choice of
  // what to inline on a given run, not leakguard's attribution, which this test is about:
  // the fixture runs with TurboFan's inlining off so the stack V8 records is the source's.
  const c = await start('closure', ['--no-turbo-inlining'])
  const l = load(c.port)
  try {
    const report = await leakReport(c)
    const lines = fs.readFileSync(fixture, 'utf8').split('\n')
    const maker = lines.findIndex((x) => x.includes('function makeCallback')) + 1
    const top = report.sites[0]
    assert.ok(top && top.growing, JSON.stringify(report.sites.slice(0, 3)))
    const named = top.name.match(/^(\S+) (.+):(\d+):(\d+)$/)
    assert.ok(named, top.name)
    assert.deepEqual([named[1], named[2], Number(named[3])], ['makeCallback', '__test__/fixtures/alloc-server.js', maker], top.name)
    assert.equal(top.frames[top.frames.length - 1].functionName, 'makeCallback', JSON.stringify(top.frames))
    // The closure's objects are most of the growth. Other growing sites are real too: the id
    // strings the closure keeps were allocated by the router and node's HTTP parser, so at a
    // fast interval those sites grow as well (one run on a loaded machine: the closure's
    // sites held 70 % of the growing sites' growth).
    const growing = report.sites.filter((s) => s.growing)
    const total = growing.reduce((a, s) => a + s.growthBytesPerHour, 0)
    const ours = growing.filter((s) => s.name.includes('alloc-server.js')).reduce((a, s) => a + s.growthBytesPerHour, 0)
    assert.ok(ours > 0.5 * total, JSON.stringify(growing.map((s) => [s.name, Math.round(s.growthBytesPerHour)])))
  } finally {
    await l.stop()
    await end(c)
  }
})

test('the .heapprofile parses and totals the sampled live bytes; pprof-format decodes the pprof with the same sites and bytes', { timeout: 60000 }, async () => {
  const c = await start('session')
  const l = load(c.port)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-alloc-'))
  try {
    await new Promise((resolve) => setTimeout(resolve, 4000))
    await l.stop()
    c.child.send({ type: 'profile', format: 'heapprofile', dir })
    const hp = await c.next('profile')
    assert.equal(fs.statSync(hp.path).mode & 0o777, 0o600)
    const json = JSON.parse(fs.readFileSync(hp.path, 'utf8'))
    const live = new Map()
    const walk = (n, stack) => {
      const s = n.callFrame.functionName === '(root)' ? stack : [...stack, n.callFrame.functionName]
      if (n.selfSize > 0) live.set(s.join('<'), (live.get(s.join('<')) || 0) + n.selfSize)
      n.children.forEach((k) => walk(k, s))
    }
    walk(json.head, [])
    const total = [...live.values()].reduce((a, b) => a + b, 0)
    assert.equal(total, hp.status.allocations.liveBytes)
    assert.ok(json.samples.length > 0 && json.samples.length === hp.status.allocations.samples)
    assert.ok(json.samples.every((s) => typeof s.size === 'number' && typeof s.nodeId === 'number'))

    // No load in between: the next read sees the same live objects but GC moves nothing
    // in or out only approximately, so compare pprof against its own read's status.
    c.child.send({ type: 'profile', format: 'pprof', dir })
    const pp = await c.next('profile')
    assert.equal(fs.statSync(pp.path).mode & 0o777, 0o600)
    const prof = Profile.decode(zlib.gunzipSync(fs.readFileSync(pp.path)))
    const str = (i) => prof.stringTable.strings[Number(i)]
    assert.deepEqual(prof.sampleType.map((t) => [str(t.type), str(t.unit)]), [['objects', 'count'], ['space', 'bytes']])
    const fnName = new Map(prof.function.map((f) => [Number(f.id), str(f.name)]))
    const locFn = new Map(prof.location.map((x) => [Number(x.id), fnName.get(Number(x.line[0].functionId))]))
    const pSites = new Map()
    for (const s of prof.sample) {
      const key = s.locationId.map((id) => locFn.get(Number(id))).reverse().join('<')
      pSites.set(key, (pSites.get(key) || 0) + Number(s.value[1]))
    }
    const pTotal = [...pSites.values()].reduce((a, b) => a + b, 0)
    assert.ok(Math.abs(pTotal - pp.status.allocations.liveBytes) <= prof.sample.length, `${pTotal} vs ${pp.status.allocations.liveBytes}`)
    // The same sites as the heapprofile's (stacks by function name, anonymous named so).
    const norm = (k) => k.split('<').map((x) => x || '(anonymous)').join('<')
    const hpKeys = new Set([...live.keys()].map(norm))
    const shared = [...pSites.keys()].filter((k) => hpKeys.has(norm(k)))
    assert.ok(shared.length >= Math.min(pSites.size, hpKeys.size) * 0.8, `${shared.length} of ${pSites.size} / ${hpKeys.size}`)
  } finally {
    await end(c)
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

for (const order of ['after', 'before']) {
  test(`a second inspector session started ${order} leakguard's: nothing throws into the app, theirs keeps working`, { timeout: 60000 }, () => {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'fixtures', 'alloc-coexist.js')], { env: { ...process.env, LEAK_ORDER: order }, encoding: 'utf8', timeout: 50000 })
    assert.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout.trim().split('\n').pop())
    assert.deepEqual(out.errors, [])
    assert.ok(out.theirSamples > 0 && out.theirStop > 0, JSON.stringify(out))
    assert.equal(out.theirsAgain, true)
    if (order === 'before') {
      assert.equal(out.afterWatch.state, 'unavailable')
      assert.match(out.afterWatch.reason, /another inspector session/)
      assert.equal(out.reportSites, 0)
    } else {
      assert.equal(out.afterWatch.state, 'sampling')
      // Their stopSampling stopped the one profiler: leakguard says so and leaves it.
      assert.equal(out.afterTheirStop.state, 'unavailable')
      assert.match(out.afterTheirStop.reason, /stopped by another inspector session/)
    }
  })
}

test('bad allocation options throw at the call with the options code', () => {
  for (const allocations of [1, 'yes', { samplingInterval: 10 }, { stackDepth: 0 }, { nope: 1 }]) {
    assert.throws(() => leakguard.watch({ allocations }), (e) => e.code === leakguard.codes.OPTIONS_INVALID, JSON.stringify(allocations))
  }
  const g = leakguard.watch({ allocations: false })
  try {
    assert.deepEqual(g.status().allocations, { state: 'off' })
    assert.throws(() => g.allocationProfile({ format: 'svg' }), (e) => e.code === leakguard.codes.OPTIONS_INVALID)
    return assert.rejects(g.allocationProfile(), (e) => e.code === leakguard.codes.ALLOCATIONS_UNAVAILABLE)
  } finally {
    g.stop()
  }
})

test('admin routes: GET …/report and …/allocations[?format=pprof] (authenticated, named by pid and time); metrics carry the sampled bytes', { timeout: 60000 }, async () => {
  const token = 'a-test-token-of-some-length'
  const g = leakguard.watch({ intervalMs: 100, allocations: { readIntervals: 1, maxReadMs: 60000, maxDuty: 1 }, autoCapture: false })
  const admin = leakguard.adminHandler({ token, prefix: '/lg' })
  const server = http.createServer((req, res) => admin(req, res))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const keep = []
  const get = (p, auth = true) => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, path: p, headers: auth ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    }).on('error', reject)
  })
  try {
    for (let i = 0; i < 20000; i++) keep.push({ i, s: `v${i}`.repeat(10) })
    assert.equal((await get('/lg/report', false)).status, 401)
    assert.equal((await get('/lg/allocations', false)).status, 401)
    const r = await get('/lg/report')
    assert.equal(r.status, 200)
    const report = JSON.parse(r.body)
    assert.ok(Array.isArray(report.sites) && report.sites.length > 0 && report.heap && report.createdAt > 0)
    const hp = await get('/lg/allocations')
    assert.equal(hp.status, 200)
    assert.match(hp.headers['content-disposition'], new RegExp(`^attachment; filename="allocations-\\d{8}T\\d{6}Z-${process.pid}\\.heapprofile"$`))
    assert.ok(JSON.parse(hp.body).head.children.length > 0)
    const pp = await get('/lg/allocations?format=pprof')
    assert.match(pp.headers['content-disposition'], new RegExp(`allocations-\\d{8}T\\d{6}Z-${process.pid}\\.pb\\.gz"$`))
    const prof = Profile.decode(zlib.gunzipSync(pp.body))
    assert.ok(prof.sample.length > 0)
    assert.equal((await get('/lg/allocations?format=svg')).status, 400)
    assert.match(g.metrics(), /^leakguard_allocation_sampled_bytes \d+/m)
  } finally {
    g.stop()
    server.close()
  }
  assert.equal(keep.length, 20000)
})

test("a guard in a worker thread samples that worker's heap", { timeout: 60000 }, async () => {
  const { Worker } = require('node:worker_threads')
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads')
    const leakguard = require(${JSON.stringify(root)})
    const g = leakguard.watch({ intervalMs: 100, allocations: { readIntervals: 1, maxReadMs: 60000, maxDuty: 1 }, autoCapture: false })
    const keep = []
    function workerAlloc () { for (let i = 0; i < 50000; i++) keep.push({ i, s: 'w' + i }) }
    workerAlloc()
    g.report().then((r) => { parentPort.postMessage({ state: g.status().allocations.state, names: r.sites.slice(0, 3).map((s) => s.name) }); g.stop() })
  `, { eval: true })
  const m = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject) })
  await w.terminate()
  assert.equal(m.state, 'sampling')
  assert.match(m.names[0], /^workerAlloc /)
})

test('the native sampler: watch() samples by default, a read equals the inspector\'s read of the same profiler, and forces no GC', { timeout: 60000 }, () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', `
    const leakguard = require(${JSON.stringify(root)})
    const inspector = require('node:inspector')
    const { PerformanceObserver } = require('node:perf_hooks')
    const g = leakguard.watch({ intervalMs: 60000, autoCapture: false })
    const st = g.status().allocations
    const keep = []
    function nativeAlloc () { for (let i = 0; i < 200000; i++) keep.push({ i, s: 'n' + i }) }
    nativeAlloc()
    const session = new inspector.Session()
    session.connect()
    let theirs
    session.post('HeapProfiler.getSamplingProfile', (e, res) => { theirs = e ? { error: e.message } : res.profile })
    g.allocations.read()
    const ours = g.status().allocations
    let total = 0
    const walk = (n) => { total += n.selfSize; n.children.forEach(walk) }
    if (theirs.head) walk(theirs.head)
    const gcs = []
    const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push({ kind: e.detail ? e.detail.kind : e.kind, at: e.startTime }) })
    obs.observe({ entryTypes: ['gc'] })
    global.gc(); global.gc()
    let t0, t1
    setTimeout(() => {
      t0 = performance.now()
      for (let i = 0; i < 20; i++) g.allocations.read()
      t1 = performance.now()
    }, 100)
    setTimeout(async () => {
      obs.disconnect()
      const report = await g.report()
      const during = gcs.filter((e) => e.at >= t0 && e.at <= t1).map((e) => e.kind)
      console.log(JSON.stringify({ st, ours, theirTotal: total, theirSamples: theirs.samples && theirs.samples.length, gcs: during, allGcs: gcs.length, top: report.sites[0] && report.sites[0].name }))
      g.stop()
      session.post('HeapProfiler.getSamplingProfile', (e) => { console.log(JSON.stringify({ afterStop: e ? 'stopped' : 'running' })) })
    }, 400)
  `], { encoding: 'utf8', timeout: 50000 })
  assert.equal(r.status, 0, r.stderr)
  const [first, second] = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
  if (!require('../lib/allocations').nativeSampler().ok) {
    // Reported, not hidden: this build has no native sampler (see sourceReason).
    assert.equal(first.st.state, 'off', JSON.stringify(first.st))
    assert.ok(first.st.reason, 'off by default says why')
    return
  }
  assert.equal(first.st.state, 'sampling', JSON.stringify(first.st))
  assert.equal(first.st.source, 'native')
  assert.equal(first.st.samplingInterval, 524288)
  // The same profiler read by both at the same instant: the same live bytes and samples.
  assert.equal(first.ours.liveBytes, first.theirTotal)
  assert.equal(first.ours.samples, first.theirSamples)
  assert.ok(first.ours.liveBytes > 0)
  assert.deepEqual(first.gcs, [], '20 native reads ran no GC')
  assert.match(first.top, /^nativeAlloc /)
  assert.equal(second.afterStop, 'stopped', 'stop() stopped the profiler it started')
})

test('reads while an export is pending go on: the sampler keeps sampling and stop() stops the profiler it started', { timeout: 60000 }, async () => {
  // napi-rs keeps a method's `&self` borrowed until the task it returns settles: when the
  // export was such a task, every read during it threw, the sampler took that for its
  // profiler stopped by someone else and went 'unavailable' — leaving V8's profiler running
  // after stop() (this file's inspector test then found it busy, on CI too).
  const inspector = require('node:inspector')
  const running = () => {
    const s = new inspector.Session()
    s.connect()
    let r
    s.post('HeapProfiler.getSamplingProfile', (e) => { r = !e })
    s.disconnect()
    return r
  }
  if (!require('../lib/allocations').nativeSampler().ok) {
    // Reported, not hidden: without the native sampler there is no export borrow to test.
    const g0 = leakguard.watch({ intervalMs: 100, autoCapture: false })
    const st = g0.status().allocations
    g0.stop()
    assert.equal(st.state, 'off', JSON.stringify(st))
    return
  }
  assert.equal(running(), false)
  const g = leakguard.watch({ intervalMs: 100, allocations: { readIntervals: 1, maxReadMs: 60000, maxDuty: 1 }, autoCapture: false })
  const keep = []
  try {
    for (let i = 0; i < 50000; i++) keep.push({ i, s: `e${i}` })
    const reads = g.status().allocations.reads
    const pending = g.allocationProfile({ format: 'pprof' })
    assert.equal(g.allocations.read(), true, 'a read while the export runs')
    const buf = await pending
    assert.ok(Buffer.isBuffer(buf) && buf.length > 0)
    const st = g.status().allocations
    assert.equal(st.state, 'sampling', JSON.stringify(st))
    assert.equal(st.readError, undefined, st.readError)
    assert.ok(st.reads >= reads + 2, JSON.stringify(st))
  } finally {
    g.stop()
  }
  assert.equal(running(), false, 'stop() stopped the profiler leakguard started')
  assert.equal(keep.length, 50000)
})

test("allocations.source 'inspector' still samples through an inspector session; bad sources throw", { timeout: 60000 }, async () => {
  const g = leakguard.watch({ intervalMs: 100, allocations: { source: 'inspector', readIntervals: 1, maxReadMs: 60000, maxDuty: 1 }, autoCapture: false })
  const keep = []
  // ~20 MB, about 40 samples at the 512 KiB default: a site that cannot be missed by chance.
  function inspectorAlloc () { for (let i = 0; i < 400000; i++) keep.push({ i, s: 'q' + i }) }
  try {
    inspectorAlloc()
    const report = await g.report()
    const st = g.status().allocations
    assert.equal(st.state, 'sampling', JSON.stringify(st))
    assert.equal(st.source, 'inspector')
    assert.equal(st.samplingInterval, 524288)
    assert.ok(report.sites.some((s) => s.name.startsWith('inspectorAlloc ')), JSON.stringify(report.sites.slice(0, 3).map((s) => s.name)))
  } finally {
    g.stop()
  }
  assert.throws(() => leakguard.watch({ allocations: { source: 'v8' } }), (e) => e.code === leakguard.codes.OPTIONS_INVALID)
  assert.equal(keep.length, 400000)
})
