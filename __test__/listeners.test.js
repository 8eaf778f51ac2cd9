'use strict'
// Listener auditing (issue #5) against real servers, real emitters and real requests.

const test = require('node:test')
const assert = require('node:assert/strict')
const { EventEmitter } = require('node:events')
const EventEmitter3 = require('eventemitter3')
const leakguard = require('..')
const { sleep, siteOf, serve, get, drive } = require('./helpers')

const { codes } = leakguard
const HERE = __filename

/** Collect 'listener-leak' events of `guard`. */
function leaksOf (guard) {
  const seen = []
  guard.on('listener-leak', (l) => seen.push(l))
  return seen
}

/** Wait (bounded by `max` rounds of `ms`) until `cond()`; returns cond(). */
async function until (cond, { ms = 50, max = 200 } = {}) {
  for (let i = 0; i < max && !cond(); i++) await sleep(ms)
  return cond()
}

// A module-level emitter that lives as long as the server: the classic leak target.
const db = new EventEmitter()
db.setMaxListeners(0) // people silence the warning; the auditor must not need it

test('a real http server leaking a listener per request is reported with its handler line', async (t) => {
  db.removeAllListeners()
  const guard = leakguard.watch({ intervalMs: 100, emitters: { db } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  const { server, url } = await serve((req, res) => {
    db.on('data', () => res.writableEnded) // LEAK-SITE-HTTP
    res.end('ok')
  })
  t.after(() => server.close())

  const sent = await drive(url, { max: 600, gapMs: 15, done: () => seen.length > 0 })
  assert.ok(seen.length > 0, `no listener-leak after ${sent} requests`)
  const leak = seen[0]
  assert.equal(leak.emitter, 'db')
  assert.equal(leak.event, 'data')
  assert.ok(leak.count >= 5 && leak.count <= sent, `count ${leak.count}, sent ${sent}`)
  assert.ok(leak.ratePerMinute > 0)
  assert.ok(leak.callSites.length >= 1)
  assert.equal(leak.callSites[0].location, siteOf(HERE, 'LEAK-SITE-HTTP', 'db.on('))
  assert.ok(leak.callSites[0].count >= 1)

  const report = guard.listenerReport()
  assert.equal(report.leaks.length, 1)
  assert.equal(report.leaks[0].emitter, 'db')
  assert.equal(report.leaks[0].event, 'data')
  assert.equal(report.leaks[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-HTTP', 'db.on('))
  assert.equal(guard.status().listeners.leaks.length, 1)
})

test('a leak driven hard for only a few intervals, then idle, is still reported', async (t) => {
  db.removeAllListeners()
  const guard = leakguard.watch({ intervalMs: 100, emitters: { db } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  const { server, url } = await serve((req, res) => {
    db.on('data', () => res.writableEnded) // LEAK-SITE-BURST
    res.end('ok')
  })
  t.after(() => server.close())
  // four bursts of 40 back-to-back requests, each in a later sampling interval
  for (let burst = 0; burst < 4; burst++) {
    await drive(url, { max: 40, gapMs: 0 })
    await sleep(150)
  }
  assert.ok(await until(() => seen.length > 0, { max: 40 }), 'no listener-leak after the bursts')
  assert.equal(seen[0].emitter, 'db')
  assert.equal(seen[0].event, 'data')
  assert.ok(seen[0].count >= 80 && seen[0].count <= 160, `count ${seen[0].count}`)
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-BURST', 'db.on('))
  assert.ok(await until(() => guard.listenerReport().leaks[0].count === 160), 'the report does not follow the count')
  // idle now: still a leak (the listeners are still there), with the rate it grew at
  await until(() => !guard.listenerReport().leaks[0].growing)
  const idle = guard.listenerReport().leaks[0]
  assert.equal(idle.growing, false)
  assert.ok(idle.ratePerMinute > 0)
})

test('a slow leak, too slow for a window of readings, is found in the coarse floors', async (t) => {
  const bus = new EventEmitter()
  bus.setMaxListeners(0)
  const guard = leakguard.watch({ intervalMs: 100, emitters: { bus } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  // one listener every 2 s: 3 per 60-reading window (6 s), under the default minGrowth of 5,
  // so only the floors of 10 readings (1 s each here) can show it
  for (let i = 0; i < 40 && seen.length === 0; i++) {
    bus.on('tick', () => i) // LEAK-SITE-SLOW
    await sleep(2000)
  }
  assert.equal(seen.length, 1, 'the slow leak was not reported')
  assert.equal(seen[0].emitter, 'bus')
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-SLOW', 'bus.on('))
  assert.ok(seen[0].count >= 5, `count ${seen[0].count}`)
  // about one listener per 2 s
  assert.ok(seen[0].ratePerMinute > 15 && seen[0].ratePerMinute < 60, `rate ${seen[0].ratePerMinute}`)
})

test('the same server removing its listener at the end of the request reports nothing', async (t) => {
  db.removeAllListeners()
  const guard = leakguard.watch({ intervalMs: 100, emitters: { db } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  const { server, url } = await serve((req, res) => {
    const onData = () => res.writableEnded
    db.on('data', onData)
    res.on('finish', () => db.off('data', onData))
    res.end('ok')
  })
  t.after(() => server.close())

  // as many requests, over as many samples, as the leaking server needed and more
  await drive(url, { max: 200, gapMs: 15 })
  await sleep(300)
  const report = guard.listenerReport()
  assert.ok(report.ticks >= 20, `only ${report.ticks} samples were taken`)
  assert.equal(report.emitters, 1, 'db was not audited')
  assert.deepEqual(report.leaks, [])
  assert.deepEqual(seen, [])
  assert.equal(db.listenerCount('data'), 0)
})

test('once() listeners that fire, and removeAllListeners, do not report', async (t) => {
  db.removeAllListeners()
  const bus = new EventEmitter()
  bus.setMaxListeners(0)
  const guard = leakguard.watch({ intervalMs: 100, auditListeners: 'all', emitters: { db, bus } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  const { server, url } = await serve((req, res) => {
    db.once('data', () => res.end('ok'))
    bus.on('job', () => {})
    // every tenth request resets the bus
    if (bus.listenerCount('job') >= 10) bus.removeAllListeners('job')
    setImmediate(() => db.emit('data'))
  })
  t.after(() => server.close())

  await drive(url, { max: 200, gapMs: 15 })
  const report = guard.listenerReport()
  assert.ok(report.ticks >= 20, `only ${report.ticks} samples were taken`)
  assert.deepEqual(report.leaks, [])
  assert.deepEqual(seen, [])
  assert.equal(db.listenerCount('data'), 0)
  assert.ok(bus.listenerCount('job') < 10)
})

test('fan-out at start-up, then flat, is a suspect for a while, never a leak', async (t) => {
  const bus = new EventEmitter()
  bus.setMaxListeners(0)
  const guard = leakguard.watch({ intervalMs: 100, emitters: { bus } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  bus.on('config', () => 'first')
  await until(() => guard.listenerReport().ticks >= 3)
  for (let i = 0; i < 200; i++) bus.on('config', () => i) // fan-out: 200 more subscribers at once
  const suspectNow = () => guard.listenerReport().suspects.find((x) => x.emitter === 'bus' && x.event === 'config')
  assert.ok(await until(suspectNow), 'the fan-out was not seen at all')
  assert.equal(suspectNow().count, 201)
  assert.equal(suspectNow().floor, 1)
  // flat afterwards: let go after a quarter window of quiet readings (15 at the defaults)
  assert.ok(await until(() => !suspectNow()), 'still a suspect after staying flat')
  const report = guard.listenerReport()
  assert.ok(report.ticks >= 18)
  assert.deepEqual(report.leaks, [])
  assert.deepEqual(seen, [])
  assert.equal(bus.listenerCount('config'), 201)
})

test('a confirmed leak clears once its listeners are removed', async (t) => {
  const bus = new EventEmitter()
  bus.setMaxListeners(0)
  const guard = leakguard.watch({ intervalMs: 100, emitters: { bus } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    bus.on('tick', () => i)
    await sleep(10)
  }
  assert.equal(seen.length, 1)
  assert.equal(guard.listenerReport().leaks.length, 1)
  bus.removeAllListeners('tick')
  assert.ok(await until(() => guard.listenerReport().leaks.length === 0), 'still reported after removeAllListeners')
})

test('eventemitter3 (duck-typed, not a Node EventEmitter) is audited, with call sites', async (t) => {
  const ee3 = new EventEmitter3()
  assert.ok(!(ee3 instanceof EventEmitter))
  const guard = leakguard.watch({ intervalMs: 100 })
  t.after(() => guard.stop())
  guard.track(ee3, 'ee3bus')
  const seen = leaksOf(guard)
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    ee3.on('message', () => i) // LEAK-SITE-EE3
    await sleep(10)
  }
  assert.equal(seen.length, 1)
  assert.equal(seen[0].emitter, 'ee3bus')
  assert.equal(seen[0].event, 'message')
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-EE3', 'ee3.on('))
  // the wrappers pass every argument through: eventemitter3's removeListener(event, fn, context, once)
  const fn = () => {}
  ee3.on('x', fn)
  ee3.once('x', fn)
  ee3.removeListener('x', fn, undefined, true)
  assert.equal(ee3.listenerCount('x'), 1)
  guard.stop()
  assert.ok(!Object.prototype.hasOwnProperty.call(ee3, 'on'), 'instance patch left behind')
  assert.equal(ee3.on, EventEmitter3.prototype.on)
})

test('a minimal duck-typed emitter (on, removeListener, listeners; no eventNames) is audited', async (t) => {
  class Mini {
    constructor () { this.m = new Map() }
    on (type, fn) { this.m.set(type, [...(this.m.get(type) || []), fn]); return this }
    removeListener (type, fn) { this.m.set(type, (this.m.get(type) || []).filter((f) => f !== fn)); return this }
    listeners (type) { return (this.m.get(type) || []).slice() }
  }
  const mini = new Mini()
  const guard = leakguard.watch({ intervalMs: 100, emitters: { mini } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    mini.on('job', () => i) // LEAK-SITE-MINI
    await sleep(10)
  }
  assert.equal(seen.length, 1)
  assert.equal(seen[0].emitter, 'mini')
  assert.equal(seen[0].event, 'job')
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-MINI', 'mini.on('))
})

test('an AbortSignal that collects abort listeners is reported, and Node\'s warning is attributed', async (t) => {
  const controller = new AbortController()
  const signal = controller.signal // one long-lived signal shared by every operation
  const guard = leakguard.watch({ intervalMs: 100, emitters: { shutdown: signal } })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    signal.addEventListener('abort', () => i) // LEAK-SITE-SIGNAL
    await sleep(10)
  }
  const site = siteOf(HERE, 'LEAK-SITE-SIGNAL', 'signal.addEventListener(')
  assert.equal(seen.length, 1)
  assert.equal(seen[0].emitter, 'shutdown')
  assert.equal(seen[0].event, 'abort')
  assert.equal(seen[0].callSites[0].location, site)
  const report = guard.listenerReport()
  if (require('node:events').getMaxListeners(signal) > 0) {
    // Node 20 warns at 11 listeners on an AbortSignal: the warning is attributed to the same line
    const w = report.warnings.find((x) => x.emitter === 'shutdown')
    assert.ok(w, 'MaxListenersExceededWarning was not attributed')
    assert.equal(w.event, 'abort')
    assert.equal(w.location, site)
    assert.equal(report.leaks[0].warned, true)
  } else {
    // Node 22 sets no limit on AbortSignals: found by growth alone
    assert.deepEqual(report.warnings, [])
    assert.equal(report.leaks[0].warned, false)
  }
})

test('an AbortSignal whose warning limit was lifted is still reported', async (t) => {
  const signal = new AbortController().signal
  require('node:events').setMaxListeners(0, signal) // no MaxListenersExceededWarning to lean on
  const guard = leakguard.watch({ intervalMs: 100 })
  t.after(() => guard.stop())
  guard.track(signal, 'quiet')
  const seen = leaksOf(guard)
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    signal.addEventListener('abort', () => i, { once: true }) // LEAK-SITE-QUIET
    await sleep(10)
  }
  assert.equal(seen.length, 1)
  assert.equal(seen[0].emitter, 'quiet')
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-QUIET', 'signal.addEventListener('))
  assert.deepEqual(guard.listenerReport().warnings, [])
})

test("Node's MaxListenersExceededWarning on an untracked emitter becomes an attributed suspect", async (t) => {
  const guard = leakguard.watch({ intervalMs: 100 })
  t.after(() => guard.stop())
  class Pool extends EventEmitter {}
  const pool = new Pool()
  for (let i = 0; i < 11; i++) pool.on('release', () => i) // WARN-SITE
  await until(() => guard.listenerReport().warnings.length > 0)
  const report = guard.listenerReport()
  const w = report.warnings[0]
  assert.equal(w.emitter, 'Pool')
  assert.equal(w.event, 'release')
  assert.equal(w.count, 11)
  assert.equal(w.location, siteOf(HERE, 'WARN-SITE', 'pool.on('))
  const s = report.suspects.find((x) => x.emitter === 'Pool')
  assert.ok(s && s.warned, 'the warned pair is not a suspect')
  assert.equal(s.callSites[0].location, w.location)
  assert.deepEqual(report.leaks, [], 'a warning alone is a candidate, not proof')
  // the warned emitter is audited from then on: if it keeps growing, it is a leak
  const seen = leaksOf(guard)
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    pool.on('release', () => i) // LEAK-SITE-POOL
    await sleep(10)
  }
  assert.equal(seen.length, 1)
  assert.equal(seen[0].emitter, 'Pool')
  assert.equal(seen[0].event, 'release')
  assert.equal(seen[0].warned, true)
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-POOL', 'pool.on('))
})

test("'all' audits untracked emitters and restores EventEmitter.prototype on stop()", async (t) => {
  const P = EventEmitter.prototype
  const before = Object.fromEntries(['on', 'addListener', 'prependListener', 'once', 'prependOnceListener', 'removeListener', 'off', 'removeAllListeners'].map((k) => [k, P[k]]))
  const guard = leakguard.watch({ intervalMs: 100, auditListeners: 'all' })
  t.after(() => guard.stop())
  assert.notEqual(P.on, before.on, 'not patched')
  assert.equal(P.on, P.addListener, 'on and addListener must stay the same function')
  assert.equal(P.off, P.removeListener)
  const seen = leaksOf(guard)
  class Cache extends EventEmitter {}
  const cache = new Cache()
  cache.setMaxListeners(0)
  // Node's own argument errors come through unchanged, and leave the wrappers usable
  assert.throws(() => cache.once('evict', 42), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => cache.on('evict', null), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => cache.prependOnceListener('evict'), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.equal(cache.on('other', () => {}), cache, 'on() must return the emitter')
  for (let i = 0; i < 400 && seen.length === 0; i++) {
    cache.prependListener('evict', () => i) // LEAK-SITE-ALL
    await sleep(10)
  }
  assert.equal(seen.length, 1)
  assert.equal(seen[0].emitter, 'Cache')
  assert.equal(seen[0].event, 'evict')
  assert.equal(seen[0].callSites[0].location, siteOf(HERE, 'LEAK-SITE-ALL', 'cache.prependListener('))
  // behaviour is unchanged under the patch
  const e = new EventEmitter()
  const order = []
  e.on('x', () => order.push('on'))
  e.prependOnceListener('x', () => order.push('prependOnce'))
  e.once('x', () => order.push('once'))
  e.emit('x')
  e.emit('x')
  assert.deepEqual(order, ['prependOnce', 'on', 'once', 'on'])
  guard.stop()
  for (const [k, fn] of Object.entries(before)) assert.equal(P[k], fn, `EventEmitter.prototype.${k} not restored`)
})

test('bad input throws a coded error at the call', (t) => {
  const guard = leakguard.watch({ intervalMs: 100 })
  t.after(() => guard.stop())
  const E = new EventEmitter()
  assert.throws(() => guard.track(null, 'x'), (e) => e instanceof TypeError && e.code === codes.LISTENERS_NOT_AN_EMITTER)
  assert.throws(() => guard.track({}, 'x'), (e) => e.code === codes.LISTENERS_NOT_AN_EMITTER)
  assert.throws(() => guard.track({ on () {} }, 'x'), (e) => e.code === codes.LISTENERS_NOT_AN_EMITTER)
  assert.throws(() => guard.track(42, 'x'), (e) => e.code === codes.LISTENERS_NOT_AN_EMITTER)
  assert.throws(() => guard.track(E, 42), (e) => e instanceof TypeError && e.code === codes.OPTIONS_INVALID)
  assert.throws(() => guard.track(E, ''), (e) => e.code === codes.OPTIONS_INVALID)
  assert.throws(() => guard.track(E), (e) => e.code === codes.OPTIONS_INVALID)
  guard.track(E, 'fine')
  guard.track(new EventTarget(), 'target')
  guard.stop()
  assert.throws(() => guard.track(E, 'late'), (e) => e.code === codes.LISTENERS_STOPPED)
  assert.throws(() => leakguard.watch({ auditListeners: 'everything' }), (e) => e instanceof RangeError && e.code === codes.OPTIONS_INVALID)
  assert.throws(() => leakguard.watch({ emitters: { x: 1 } }), (e) => e.code === codes.LISTENERS_NOT_AN_EMITTER)
  assert.throws(() => leakguard.watch({ emitters: 'db' }), (e) => e.code === codes.OPTIONS_INVALID)
  assert.throws(() => leakguard.watch({ listenerAudit: { minGrowht: 3 } }), (e) => e.code === codes.OPTIONS_INVALID)
  assert.throws(() => leakguard.watch({ listenerAudit: { minGrowth: 0 } }), (e) => e instanceof RangeError && e.code === codes.OPTIONS_INVALID)
})

test('the error codes of the auditor are in leakguard.codes', () => {
  for (const k of ['LISTENERS_NOT_AN_EMITTER', 'LISTENERS_PATCH_BUSY', 'LISTENERS_STOPPED']) {
    assert.equal(codes[k], `ERR_LEAKGUARD_${k}`)
  }
})

test('an http keep-alive socket collecting a close listener per request is found in all mode', async (t) => {
  const guard = leakguard.watch({ intervalMs: 100, auditListeners: 'all' })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  const { server, url } = await serve((req, res) => {
    req.socket.on('close', () => {}) // LEAK-SITE-SOCKET
    res.end('ok')
  })
  t.after(() => server.close())
  const agent = new (require('node:http').Agent)({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  for (let i = 0; i < 600 && !seen.some((l) => l.emitter === 'Socket'); i++) {
    await new Promise((resolve, reject) => {
      require('node:http').get(url, { agent }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
    })
    await sleep(10)
  }
  const leak = seen.find((l) => l.emitter === 'Socket' && l.event === 'close')
  assert.ok(leak, `no leak on the socket: ${JSON.stringify(seen)}`)
  assert.equal(leak.callSites[0].location, siteOf(HERE, 'LEAK-SITE-SOCKET', 'req.socket.on('))
  void get
})

test("a healthy keep-alive http server under 'all' reports nothing", async (t) => {
  const http = require('node:http')
  const guard = leakguard.watch({ intervalMs: 100, auditListeners: 'all' })
  t.after(() => guard.stop())
  const seen = leaksOf(guard)
  const { server, url } = await serve((req, res) => {
    req.on('data', () => {})
    req.on('end', () => res.end('ok'))
  })
  t.after(() => server.close())
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.after(() => agent.destroy())
  const one = (a) => new Promise((resolve, reject) => {
    http.get(url, { agent: a }, (res) => { res.resume(); res.on('end', resolve) }).on('error', reject)
  })
  for (let i = 0; i < 150; i++) {
    await Promise.all([one(agent), one(agent), one(undefined), one(agent)])
    await sleep(10)
  }
  const report = guard.listenerReport()
  assert.ok(report.ticks >= 10, `only ${report.ticks} samples were taken`)
  assert.deepEqual(report.leaks, [])
  assert.deepEqual(seen, [])
  assert.equal(report.warnings.length, 0)
})
