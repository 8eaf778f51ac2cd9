'use strict'
// The admin route's POST …/diff?before=NAME&after=NAME over real HTTP on loopback, with
// real captures in the capture directory (made in a child process): the diff names the
// planted class, only names exactly as GET …/snapshots lists them are accepted (400 for
// anything else, 404 for one not listed, a symlink is never listed), it is authenticated
// like the other routes, one diff at a time (409), and it answers through Express and
// Fastify too.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const leakguard = require('..')
const { tmpDir, capturePair } = require('./helpers/analysis')
const { PREFIX, startServer, request, json } = require('./helpers/http')

const { codes } = leakguard
const TOKEN = 'diff-test-token-0123456789abcdef'
const AUTH = { authorization: `Bearer ${TOKEN}` }

let root
let dir
let names
let pair

test.before(async () => {
  root = tmpDir('leakguard-admin-diff-')
  dir = path.join(root, 'snapshots')
  pair = await capturePair(dir, { bulk: 200000 })
  names = { before: path.basename(pair.before), after: path.basename(pair.after) }
  // A symlink with a valid name, pointing at a real snapshot: never listed, never read.
  fs.symlinkSync(pair.after, path.join(dir, 'heap-20990101T000000Z-1-1.heapsnapshot.gz'))
})

test.after(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true })
})

const url = (q) => `${PREFIX}/diff${q === undefined ? `?before=${names.before}&after=${names.after}` : q}`

function assertError (r, status, code) {
  assert.equal(r.status, status, r.body.toString().slice(0, 400))
  assert.equal(json(r).error.code, code)
}

test('POST …/diff diffs two listed snapshots in a child and names the planted class', async () => {
  const srv = await startServer('http', { token: TOKEN, dir })
  try {
    const list = json(await request(srv, 'GET', `${PREFIX}/snapshots`, { headers: AUTH }))
    const listed = list.snapshots.map((s) => s.name)
    assert.ok(listed.includes(names.before) && listed.includes(names.after))
    assert.ok(!listed.includes('heap-20990101T000000Z-1-1.heapsnapshot.gz'), 'a symlink is not listed')
    const rss = process.memoryUsage.rss()
    const r = await request(srv, 'POST', url(), { headers: AUTH })
    assert.equal(r.status, 200, r.body.toString().slice(0, 500))
    const d = json(r)
    assert.deepEqual(d.snapshots, names)
    assert.equal(d.method, 'id')
    const leaky = d.classes.find((c) => c.name === 'LeakyThing')
    assert.equal(leaky.countDelta, pair.leakAdded)
    assert.ok(leaky.retainers.some((p) => /cache/.test(p.text)))
    // The graph lived in the child, not here (a 200k-object snapshot's arrays are tens of MiB).
    assert.ok(process.memoryUsage.rss() - rss < 48 * 1024 * 1024, `server RSS grew by ${process.memoryUsage.rss() - rss}`)
  } finally {
    await srv.close()
  }
})

test('only names exactly as listed: 400 for anything else, 404 for a name not listed', async () => {
  const srv = await startServer('http', { token: TOKEN, dir })
  try {
    const bad = [
      '', '?before=' + names.before, '?after=' + names.after,
      `?before=${names.before}&after=${names.after}&x=1`,
      `?before=${names.before}&before=${names.before}&after=${names.after}`,
      `?before=../../etc/passwd&after=${names.after}`,
      `?before=${encodeURIComponent(path.join(dir, names.before))}&after=${names.after}`,
      `?before=${names.before.replace('.gz', '')}&after=${names.after}`,
      `?before=${names.before}%00&after=${names.after}`,
      `?before=${names.after}&after=${names.after}`,
      `?before=${names.before}/&after=${names.after}`
    ]
    for (const q of bad) assertError(await request(srv, 'POST', url(q), { headers: AUTH }), 400, codes.OPTIONS_INVALID)
    assertError(await request(srv, 'POST', url(`?before=heap-20000101T000000Z-1-1.heapsnapshot.gz&after=${names.after}`), { headers: AUTH }), 404, codes.ADMIN_NOT_FOUND)
    assertError(await request(srv, 'POST', url(`?before=${names.before}&after=heap-20990101T000000Z-1-1.heapsnapshot.gz`), { headers: AUTH }), 404, codes.ADMIN_NOT_FOUND)
  } finally {
    await srv.close()
  }
})

test('authenticated like the other routes, and POST only', async () => {
  const srv = await startServer('http', { token: TOKEN, dir })
  try {
    assertError(await request(srv, 'POST', url()), 401, codes.ADMIN_UNAUTHORIZED)
    assertError(await request(srv, 'POST', url(), { headers: { authorization: 'Bearer wrong-token-0123456789' } }), 401, codes.ADMIN_UNAUTHORIZED)
    const get = await request(srv, 'GET', url(), { headers: AUTH })
    assertError(get, 405, codes.ADMIN_METHOD_NOT_ALLOWED)
    assert.equal(get.headers.allow, 'POST')
  } finally {
    await srv.close()
  }
})

test('one diff at a time: a second request while one runs gets 409', async () => {
  const srv = await startServer('http', { token: TOKEN, dir })
  try {
    const first = request(srv, 'POST', url(), { headers: AUTH })
    await new Promise((resolve) => setTimeout(resolve, 150)) // the first has listed and spawned
    const second = await request(srv, 'POST', url(), { headers: AUTH })
    assertError(second, 409, codes.ANALYSIS_IN_PROGRESS)
    assert.equal((await first).status, 200)
    assert.equal((await request(srv, 'POST', url(), { headers: AUTH })).status, 200, 'free again afterwards')
  } finally {
    await srv.close()
  }
})

test('the same route through Express and Fastify', async () => {
  for (const kind of ['express', 'fastify']) {
    const srv = await startServer(kind, { token: TOKEN, dir })
    try {
      const r = await request(srv, 'POST', url(), { headers: AUTH })
      assert.equal(r.status, 200, `${kind}: ${r.body.toString().slice(0, 300)}`)
      assert.equal(json(r).classes.find((c) => c.name === 'LeakyThing').countDelta, pair.leakAdded)
    } finally {
      await srv.close()
    }
  }
})
