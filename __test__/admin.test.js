'use strict'
// adminHandler(): over real HTTP on loopback with node:http, Express, Fastify and Koa —
// auth, capture (read back with gunzip + an independent parser), single flight under 50
// concurrent requests, cooldown, no headroom, traversal, download as curl --compressed
// gets it, metrics through a real Prometheus text parser, loopback-only mode.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const zlib = require('node:zlib')
const { execFile, execFileSync } = require('node:child_process')
const parsePrometheus = require('parse-prometheus-text-format')

const leakguard = require('..')
const admin = require('../lib/admin')
const { countObjects, countWithParser } = require('./helpers/snapshot')
const { PREFIX, startServer, request, json, listen, close } = require('./helpers/http')

const { codes } = leakguard
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-admin-test-'))
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
let dirSeq = 0
const freshDir = (label) => path.join(tmpRoot, `${label}-${++dirSeq}`)
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

const TOKEN = 'test-token-0123456789-abcdef'
const AUTH = { authorization: `Bearer ${TOKEN}` }

class AdminThing {
  constructor (i) { this.i = i }
}
const THINGS = 3210
const things = Array.from({ length: THINGS }, (_, i) => new AdminThing(i))

function assertNoToken (r) {
  assert.ok(!r.body.toString('latin1').includes(TOKEN), 'the token never appears in an answer')
  for (const v of Object.values(r.headers)) assert.ok(!String(v).includes(TOKEN))
}

function assertError (r, status, key) {
  assert.equal(r.status, status, r.body.toString().slice(0, 300))
  const body = json(r)
  assert.equal(body.error.code, codes[key])
  assert.equal(typeof body.error.message, 'string')
  assertNoToken(r)
}

test('options are checked at the call with coded errors; the token never shows in them', () => {
  const bad = (opts, Base, key) => {
    assert.throws(() => leakguard.adminHandler(opts), (err) => {
      assert.ok(err instanceof Base, `${err.name} for ${JSON.stringify(opts)}`)
      assert.equal(err.code, codes[key])
      if (typeof opts === 'object' && opts && typeof opts.token === 'string' && opts.token) assert.ok(!err.message.includes(opts.token))
      return true
    })
  }
  bad(undefined, TypeError, 'ADMIN_NO_TOKEN')
  bad({}, TypeError, 'ADMIN_NO_TOKEN')
  bad({ token: '' }, TypeError, 'ADMIN_NO_TOKEN')
  bad({ allowUnauthenticated: false }, TypeError, 'ADMIN_NO_TOKEN')
  bad({ token: 'short-secret' }, RangeError, 'OPTIONS_INVALID')
  bad({ token: 'has a space in it, 123456' }, RangeError, 'OPTIONS_INVALID')
  bad({ token: 12345678901234567890 }, TypeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, allowUnauthenticated: true }, TypeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, prefx: '/x' }, TypeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, prefix: 'debug' }, RangeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, prefix: '/debug/' }, RangeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, prefix: '/a/../b' }, RangeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, cooldownMs: -1 }, RangeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, allowDownload: 'yes' }, TypeError, 'OPTIONS_INVALID')
  bad({ token: TOKEN, capture: { level: 12 } }, RangeError, 'OPTIONS_INVALID')
  bad({ allowUnauthenticated: 'true' }, TypeError, 'OPTIONS_INVALID')
  assert.equal(typeof leakguard.adminHandler({ token: TOKEN }), 'function')
  assert.equal(typeof leakguard.adminHandler({ allowUnauthenticated: true }), 'function')
})

for (const kind of ['http', 'express', 'fastify', 'koa']) {
  test(`${kind}: no token → 401, wrong token → 401, right token → a capture holding every AdminThing`, async () => {
    const dir = freshDir(`auth-${kind}`)
    const srv = await startServer(kind, { token: TOKEN, dir, cooldownMs: 0 })
    try {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-0123456789-abcdef' }, { authorization: `Basic ${Buffer.from('u:' + TOKEN).toString('base64')}` }, { authorization: TOKEN }, { authorization: `Bearer ${TOKEN}x` }]) {
        for (const [m, p] of [['POST', '/capture'], ['GET', '/status'], ['GET', '/metrics'], ['GET', '/snapshots']]) {
          const r = await request(srv, m, PREFIX + p, { headers })
          assertError(r, 401, 'ADMIN_UNAUTHORIZED')
          assert.match(r.headers['www-authenticate'], /^Bearer /)
        }
      }
      assert.deepEqual(fs.existsSync(dir) ? fs.readdirSync(dir) : [], [], 'no capture without the token')

      // With a JSON content type and no body, as some clients send: no framework's body parser answers first.
      const r = await request(srv, 'POST', PREFIX + '/capture?reason=test%20run', { headers: { ...AUTH, 'content-type': 'application/json' } })
      assert.equal(r.status, 200, r.body.toString())
      assert.match(r.headers['content-type'], /^application\/json/)
      const result = json(r)
      assert.equal(path.dirname(result.path), dir)
      assert.equal(result.reason, 'admin route: test run')
      const text = zlib.gunzipSync(fs.readFileSync(result.path)).toString('utf8')
      assert.equal(countObjects(JSON.parse(text), 'AdminThing'), things.length)
      assert.equal(await countWithParser(text, 'AdminThing'), things.length)

      const st = await request(srv, 'GET', PREFIX + '/status', { headers: { authorization: `bearer  ${TOKEN}` } })
      assert.equal(st.status, 200)
      const status = json(st)
      assert.equal(status.watching, false)
      assert.equal(status.captures.at(-1).path, result.path)
      assert.ok(status.latest.heapUsed > 0)

      const list = json(await request(srv, 'GET', PREFIX + '/snapshots', { headers: AUTH }))
      assert.deepEqual(list.snapshots.map((s) => s.name), [path.basename(result.path)])
      assert.equal(list.snapshots[0].bytes, result.bytes)

      if (kind !== 'http') {
        const other = await request(srv, 'GET', PREFIX + '/other')
        assert.equal(other.status, 200, 'unknown paths under the prefix reach the app (next())')
        assert.equal(other.body.toString(), 'app route')
      } else {
        assertError(await request(srv, 'GET', PREFIX + '/other', { headers: AUTH }), 404, 'ADMIN_NOT_FOUND')
      }
      assertNoToken(r)
    } finally {
      await srv.close()
    }
  })
}

test('wrong method → 405 with Allow', async () => {
  const srv = await startServer('http', { token: TOKEN, dir: freshDir('405') })
  try {
    for (const [m, p, allow] of [['GET', '/capture', 'POST'], ['DELETE', '/status', 'GET, HEAD'], ['POST', '/metrics', 'GET, HEAD'], ['PUT', '/snapshots', 'GET, HEAD']]) {
      const r = await request(srv, m, PREFIX + p, { headers: AUTH })
      assertError(r, 405, 'ADMIN_METHOD_NOT_ALLOWED')
      assert.equal(r.headers.allow, allow)
    }
  } finally {
    await srv.close()
  }
})

/**
 * A server that holds every request until `n` have arrived, then hands them all to the
 * handler in one turn: the 50 requests are really concurrent, whatever the scheduling.
 */
async function barrierServer (handlers, n) {
  const held = []
  const server = http.createServer((req, res) => {
    held.push([req, res])
    if (held.length === n) held.forEach(([rq, rs], i) => handlers[i % handlers.length](rq, rs))
  })
  await listen(server)
  return { server, host: '127.0.0.1', port: server.address().port, close: () => close(server) }
}

test('50 concurrent capture requests → exactly one capture, the other 49 answer 409', async () => {
  const dir = freshDir('fifty')
  const h = leakguard.adminHandler({ token: TOKEN, dir, cooldownMs: 0 })
  const srv = await barrierServer([h], 50)
  try {
    const rs = await Promise.all(Array.from({ length: 50 }, () => request(srv, 'POST', '/capture', { headers: AUTH })))
    const ok = rs.filter((r) => r.status === 200)
    const busy = rs.filter((r) => r.status === 409)
    assert.equal(ok.length, 1)
    assert.equal(busy.length, 49)
    for (const r of busy) assertError(r, 409, 'CAPTURE_IN_PROGRESS')
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot.gz')), [path.basename(json(ok[0]).path)])
  } finally {
    await srv.close()
  }
})

test('50 concurrent requests without a barrier: one capture, the rest 409 (running) or 429 (cooldown)', async () => {
  const dir = freshDir('fifty-free')
  // A long cooldown: a request that arrives after the capture ended gets 429, never a second capture.
  const srv = await startServer('http', { token: TOKEN, dir, cooldownMs: 3600e3 })
  try {
    const rs = await Promise.all(Array.from({ length: 50 }, () => request(srv, 'POST', PREFIX + '/capture', { headers: AUTH })))
    assert.equal(rs.filter((r) => r.status === 200).length, 1)
    for (const r of rs.filter((x) => x.status !== 200)) {
      assertError(r, r.status, r.status === 409 ? 'CAPTURE_IN_PROGRESS' : 'CAPTURE_COOLDOWN')
      assert.ok([409, 429].includes(r.status), `status ${r.status}`)
    }
    assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot.gz')).length, 1)
  } finally {
    await srv.close()
  }
})

test('a capture already running elsewhere in the process (capture()) makes the route answer 409', async () => {
  const dir = freshDir('elsewhere')
  const srv = await startServer('http', { token: TOKEN, dir, cooldownMs: 0 })
  try {
    // capture() claims the process-wide single flight synchronously, before its first await;
    // the route's request is sent after that, so its capture meets it in Rust.
    const running = leakguard.capture({ dir })
    const r = await request(srv, 'POST', PREFIX + '/capture', { headers: AUTH })
    assertError(r, 409, 'CAPTURE_IN_PROGRESS')
    await running
  } finally {
    await srv.close()
  }
})

test('cooldown: a capture within cooldownMs of the last one → 429 with Retry-After', async () => {
  const dir = freshDir('cooldown')
  const srv = await startServer('express', { token: TOKEN, dir, cooldownMs: 3600e3 })
  try {
    assert.equal((await request(srv, 'POST', PREFIX + '/capture', { headers: AUTH })).status, 200)
    const r = await request(srv, 'POST', PREFIX + '/capture', { headers: AUTH })
    assertError(r, 429, 'CAPTURE_COOLDOWN')
    const retry = Number(r.headers['retry-after'])
    assert.ok(retry > 3500 && retry <= 3600, `Retry-After ${r.headers['retry-after']}`)
    assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.gz')).length, 1)
  } finally {
    await srv.close()
  }
})

test('no headroom (a 1 MiB tmpfs as the capture dir) → 507 CAPTURE_NO_HEADROOM, no file', async (t) => {
  if (process.platform !== 'linux' || !isRoot) {
    t.skip('needs root on Linux to mount a small tmpfs')
    return
  }
  const mnt = freshDir('tmpfs')
  fs.mkdirSync(mnt, { recursive: true })
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt])
  try {
    const dir = path.join(mnt, 'snaps')
    const srv = await startServer('http', { token: TOKEN, dir, cooldownMs: 0 })
    try {
      const r = await request(srv, 'POST', PREFIX + '/capture', { headers: AUTH })
      assertError(r, 507, 'CAPTURE_NO_HEADROOM')
      assert.deepEqual(fs.existsSync(dir) ? fs.readdirSync(dir) : [], [])
    } finally {
      await srv.close()
    }
  } finally {
    execFileSync('umount', [mnt])
  }
})

test('downloads: off by default (403); traversal, encoded, absolute, wrong-pattern names and symlinks → 404', async () => {
  const dir = freshDir('traversal')
  const r0 = await leakguard.capture({ dir })
  const good = path.basename(r0.path)
  // A secret beside the capture dir, a symlink and a directory with leakguard's name pattern.
  const secret = path.join(path.dirname(dir), 'secret.txt')
  fs.writeFileSync(secret, 'SECRET-CONTENT')
  const linkName = 'heap-20200101T000000Z-1-1.heapsnapshot.gz'
  fs.symlinkSync(secret, path.join(dir, linkName))
  const dirName = 'heap-20200101T000000Z-1-2.heapsnapshot.gz'
  fs.mkdirSync(path.join(dir, dirName))
  fs.writeFileSync(path.join(dir, 'notes.heapsnapshot.gz'), 'not ours')

  const off = await startServer('http', { token: TOKEN, dir })
  try {
    assertError(await request(off, 'GET', `${PREFIX}/snapshots/${good}`, { headers: AUTH }), 403, 'ADMIN_DOWNLOAD_DISABLED')
    const list = json(await request(off, 'GET', PREFIX + '/snapshots', { headers: AUTH }))
    assert.deepEqual(list.snapshots.map((s) => s.name), [good], 'only leakguard\'s regular files are listed')
  } finally {
    await off.close()
  }

  for (const kind of ['http', 'express', 'fastify', 'koa']) {
    const srv = await startServer(kind, { token: TOKEN, dir, allowDownload: true })
    try {
      const attempts = [
        '..%2fsecret.txt',
        '..%2F..%2F..%2Fetc%2Fpasswd',
        '../secret.txt',
        '../../../../etc/passwd',
        '%2e%2e%2fsecret.txt',
        '%2e%2e/secret.txt',
        '..%5csecret.txt',
        '%2Fetc%2Fpasswd',
        '/etc/passwd',
        `${good}/../../secret.txt`,
        `..%2f${path.basename(dir)}%2f${good}`,
        encodeURIComponent(good).replace(/-/g, '%2D'),
        `${good}%00`,
        `${good}.json`,
        good.replace('.gz', '.json'),
        `${good}.gz`,
        linkName.replace(/\.gz$/, ''),
        good.replace(/-\d+\.heapsnapshot/, '-x.heapsnapshot'),
        'heap-2026-01-01-1-1.heapsnapshot.gz',
        linkName,
        dirName,
        'notes.heapsnapshot.gz',
        'heap-20300101T000000Z-1-1.heapsnapshot.gz'
      ]
      for (const a of attempts) {
        const r = await request(srv, 'GET', `${PREFIX}/snapshots/${a}`, { headers: { ...AUTH, 'accept-encoding': 'gzip' } })
        assert.ok(!r.body.toString('latin1').includes('SECRET-CONTENT'), a)
        assertError(r, 404, 'ADMIN_NOT_FOUND')
      }
    } finally {
      await srv.close()
    }
  }
})

test('download: gzip on the wire (curl --compressed), a .heapsnapshot name, and plain when gzip is not accepted', async () => {
  const dir = freshDir('download')
  const r0 = await leakguard.capture({ dir })
  const name = path.basename(r0.path)
  for (const kind of ['http', 'express', 'fastify', 'koa']) {
    const srv = await startServer(kind, { token: TOKEN, dir, allowDownload: true })
    try {
      const r = await request(srv, 'GET', `${PREFIX}/snapshots/${name}`, { headers: { ...AUTH, 'accept-encoding': 'deflate, gzip;q=1.0, br' } })
      assert.equal(r.status, 200, `${kind}: ${r.body.toString().slice(0, 200)}`)
      assert.equal(r.headers['content-encoding'], 'gzip')
      assert.equal(r.headers['content-disposition'], `attachment; filename="${name.replace(/\.gz$/, '')}"`)
      assert.equal(Number(r.headers['content-length']), r0.bytes)
      assert.ok(r.body.equals(fs.readFileSync(r0.path)), 'the file as it is')
      const text = zlib.gunzipSync(r.body).toString('utf8') // what curl --compressed writes
      assert.equal(countObjects(JSON.parse(text), 'AdminThing'), things.length)

      const plain = await request(srv, 'GET', `${PREFIX}/snapshots/${name}`, { headers: { ...AUTH, 'accept-encoding': 'gzip;q=0, identity' } })
      assert.equal(plain.status, 200)
      assert.equal(plain.headers['content-encoding'], undefined)
      assert.equal(plain.body.toString('utf8'), text)

      const head = await request(srv, 'HEAD', `${PREFIX}/snapshots/${name}`, { headers: { ...AUTH, 'accept-encoding': 'gzip' } })
      assert.equal(head.status, 200)
      assert.equal(head.body.length, 0)
    } finally {
      await srv.close()
    }
  }
})

/** Parse with the third-party parser, check HELP/TYPE on every family; `{ name: family }`. */
function parseMetrics (text) {
  const families = parsePrometheus(text)
  const byName = Object.fromEntries(families.map((f) => [f.name, f]))
  for (const f of families) {
    assert.match(f.name, /^leakguard_[a-z0-9_]+$/)
    assert.ok(f.help.length > 0, `${f.name} has HELP`)
    assert.ok(['GAUGE', 'COUNTER'].includes(f.type), `${f.name} has TYPE`)
    for (const m of f.metrics) assert.ok(Number.isFinite(Number(m.value)), `${f.name} value ${m.value}`)
  }
  return byName
}

test('GET /metrics: text exposition 0.0.4 that a real Prometheus text parser reads', async () => {
  const dir = freshDir('metrics')
  const srv = await startServer('fastify', { token: TOKEN, dir, cooldownMs: 0 })
  try {
    const before = leakguard.adminHandler && (await request(srv, 'GET', PREFIX + '/metrics', { headers: AUTH }))
    assert.equal(before.status, 200)
    assert.equal(before.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
    const m0 = parseMetrics(before.body.toString())
    const done0 = Number(m0.leakguard_captures_total.metrics[0].value)
    assert.equal((await request(srv, 'POST', PREFIX + '/capture', { headers: AUTH })).status, 200)
    const m = parseMetrics((await request(srv, 'GET', PREFIX + '/metrics', { headers: AUTH })).body.toString())
    for (const n of ['leakguard_heap_used_bytes', 'leakguard_heap_total_bytes', 'leakguard_heap_size_limit_bytes', 'leakguard_rss_bytes', 'leakguard_external_bytes']) {
      assert.ok(Number(m[n].metrics[0].value) > 0, n)
    }
    assert.equal(Number(m.leakguard_captures_total.metrics[0].value), done0 + 1)
    assert.ok(Number(m.leakguard_last_capture_stall_seconds.metrics[0].value) > 0)
    assert.ok(Number(m.leakguard_last_capture_bytes.metrics[0].value) > 0)
  } finally {
    await srv.close()
  }
})

test('allowUnauthenticated: loopback clients only — a real non-loopback peer is refused', async (t) => {
  const dir = freshDir('loopback')
  const opts = { allowUnauthenticated: true, dir }
  // Loopback: served without a token.
  const lo = await startServer('http', opts)
  try {
    assert.equal((await request(lo, 'GET', PREFIX + '/status')).status, 200)
    // A proxy on the same host would make every client look local: refused.
    assertError(await request(lo, 'GET', PREFIX + '/status', { headers: { 'x-forwarded-for': '203.0.113.9' } }), 403, 'ADMIN_FORBIDDEN')
    assertError(await request(lo, 'GET', PREFIX + '/status', { headers: { forwarded: 'for=203.0.113.9' } }), 403, 'ADMIN_FORBIDDEN')
  } finally {
    await lo.close()
  }
  // IPv6 loopback (::1) is loopback too, when this machine has it.
  if (Object.values(os.networkInterfaces()).flat().some((i) => i && i.address === '::1')) {
    const lo6 = await startServer('http', opts, { host: '::1' })
    try {
      assert.equal((await request(lo6, 'GET', PREFIX + '/status')).status, 200)
    } finally {
      await lo6.close()
    }
  }
  // The decision function with the real socket of a loopback request.
  const o = admin.normalizeAdminOptions(opts)
  const seen = []
  const server = http.createServer((req, res) => { seen.push([req.socket.remoteAddress, admin.authorize(req, o)]); res.end() })
  await listen(server, '127.0.0.1')
  try {
    await request({ host: '127.0.0.1', port: server.address().port }, 'GET', '/')
    assert.equal(seen[0][0], '127.0.0.1')
    assert.equal(seen[0][1], null)
  } finally {
    await close(server)
  }
  // A non-loopback peer: bind on this machine's own external address and connect from it.
  const ext = Object.values(os.networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4')
  if (!ext) {
    t.skip('this machine has no non-loopback IPv4 address to connect from (the classifier test still runs)')
    return
  }
  const far = await startServer('http', opts, { host: ext.address })
  try {
    const r = await request(far, 'GET', PREFIX + '/status', { localAddress: ext.address })
    assertError(r, 403, 'ADMIN_FORBIDDEN')
  } finally {
    await far.close()
  }
  const server2 = http.createServer((req, res) => { seen.push([req.socket.remoteAddress, admin.authorize(req, o)]); res.end() })
  await listen(server2, ext.address)
  try {
    await request({ host: ext.address, port: server2.address().port }, 'GET', '/', { localAddress: ext.address })
    assert.equal(seen[1][0], ext.address)
    assert.equal(seen[1][1].status, 403)
    assert.equal(seen[1][1].key, 'ADMIN_FORBIDDEN')
  } finally {
    await close(server2)
  }
})

test('address classifier: 127/8, ::1 and ::ffff:127.x are loopback; nothing else is', () => {
  for (const a of ['127.0.0.1', '127.255.255.254', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::FFFF:127.9.9.9', '::ffff:7f00:1']) {
    assert.equal(admin.isLoopback(a), true, a)
  }
  for (const a of ['128.0.0.1', '126.255.255.255', '10.0.0.1', '192.0.2.2', '0.0.0.0', '::', '::2', '::ffff:10.0.0.1', '::ffff:128.0.0.1', 'fe80::1', 'fe80::1%lo', 'fd00::1', '1::1', 'localhost', '', '127.0.0.1.evil', ' 127.0.0.1', undefined, null, 2130706433]) {
    assert.equal(admin.isLoopback(a), false, String(a))
  }
})

test('with watch(): /status is the guard\'s, the route\'s captures go through the guard (event, counts)', async () => {
  const dir = freshDir('guard')
  const guard = leakguard.watch({ capture: { dir } })
  try {
    const events = []
    guard.on('capture', (r) => events.push(r))
    const srv = await startServer('http', { token: TOKEN, cooldownMs: 0 }) // dir: the guard's
    try {
      const r = json(await request(srv, 'POST', PREFIX + '/capture', { headers: AUTH }))
      assert.equal(path.dirname(r.path), dir)
      assert.deepEqual(events.map((e) => e.path), [r.path])
      const status = json(await request(srv, 'GET', PREFIX + '/status', { headers: AUTH }))
      assert.equal(status.watching, true)
      for (const k of ['heap', 'native', 'pressure', 'latest', 'listeners', 'captures']) assert.ok(k in status, k)
      assert.equal(status.captures.at(-1).path, r.path)
      const list = json(await request(srv, 'GET', PREFIX + '/snapshots', { headers: AUTH }))
      assert.equal(list.dir, dir)
      const m = parseMetrics((await request(srv, 'GET', PREFIX + '/metrics', { headers: AUTH })).body.toString())
      assert.equal(Number(m.leakguard_last_capture_bytes.metrics[0].value), r.bytes)
    } finally {
      await srv.close()
    }
  } finally {
    guard.stop()
  }
})

test('curl --compressed -O saves a .heapsnapshot that parses (the real curl, when this machine has one)', async (t) => {
  let curl = null
  for (const p of ['/usr/bin/curl', '/usr/local/bin/curl', '/bin/curl']) if (fs.existsSync(p)) { curl = p; break }
  if (!curl) {
    t.skip('no curl binary here; the gzip download test covers the same bytes')
    return
  }
  const dir = freshDir('curl')
  const r0 = await leakguard.capture({ dir })
  const saved = freshDir('curl-out')
  fs.mkdirSync(saved, { recursive: true })
  const srv = await startServer('express', { token: TOKEN, dir, allowDownload: true })
  try {
    const run = (args) => new Promise((resolve) => {
      execFile(curl, ['-sS', '--fail', ...args], { cwd: saved, timeout: 60000, env: { ...process.env, HOME: saved } }, (err, stdout, stderr) => resolve({ err, stderr }))
    })
    const base = `http://127.0.0.1:${srv.port}${PREFIX}/snapshots`
    const snapName = path.basename(r0.path).replace(/\.gz$/, '')
    // docs/admin.md's two forms: the .heapsnapshot URL with -O, and the listed name with -OJ.
    const a = await run(['--compressed', '-O', '-H', `Authorization: Bearer ${TOKEN}`, `${base}/${snapName}`])
    assert.equal(a.err, null, a.stderr)
    const text = fs.readFileSync(path.join(saved, snapName), 'utf8')
    assert.equal(countObjects(JSON.parse(text), 'AdminThing'), things.length)
    fs.rmSync(path.join(saved, snapName))
    const b = await run(['--compressed', '-O', '-J', '-H', `Authorization: Bearer ${TOKEN}`, `${base}/${path.basename(r0.path)}`])
    assert.equal(b.err, null, b.stderr)
    assert.deepEqual(fs.readdirSync(saved), [snapName])
    assert.equal(fs.readFileSync(path.join(saved, snapName), 'utf8'), text)
  } finally {
    await srv.close()
  }
})
