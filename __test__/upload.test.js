'use strict'
// upload() and capture/watch({ upload }) against a real S3 implementation on loopback:
// moto's S3 with IAM authentication (every SigV4 signature checked, the multipart rules
// enforced), installed by scripts/setup-s3.sh. What arrives is read back with boto3 (an
// independent S3 client) and compared byte for byte with the local file; pre-signed URLs
// come from boto3's signer. A server that dies mid-upload is a real kill of the server
// process behind a counting TCP proxy.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { once } = require('node:events')

const leakguard = require('..')
const { codes } = leakguard
const { ensureS3, startS3, startProxy } = require('./helpers/s3')

const MiB = 1024 * 1024
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-upload-test-'))
test.after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))
let dirSeq = 0
const freshDir = (label) => path.join(tmpRoot, `${label}-${++dirSeq}`)
const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')

const unavailable = ensureS3()
if (unavailable) console.error(`\n!!! upload.test.js: SKIPPING the object-store tests: ${unavailable}\n`)
const s3test = (name, fn) => test(name, { skip: unavailable ? `no S3 test server: ${unavailable}` : false }, fn)

let s3
test.before(async () => { if (!unavailable) s3 = await startS3() })
test.after(async () => { if (s3) await s3.stop() })

/** The destination options for the shared server, with overrides. */
const dest = (over = {}) => ({
  url: `s3://${s3.info.bucket}/uploads`,
  endpoint: s3.info.endpoint,
  region: s3.info.region,
  accessKeyId: s3.info.accessKeyId,
  secretAccessKey: s3.info.secretAccessKey,
  backoffMs: 50,
  ...over
})

/** A fake but well-formed leakguard capture: snapshot of `bytes` random bytes + manifest. */
let fakeSeq = 0
function fakeCapture (dir, bytes, seq = ++fakeSeq) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const base = `heap-20260102T030405Z-${process.pid}-${seq}`
  const snap = path.join(dir, `${base}.heapsnapshot.gz`)
  fs.writeFileSync(snap, crypto.randomBytes(bytes), { mode: 0o600 })
  const manifest = path.join(dir, `${base}.json`)
  fs.writeFileSync(manifest, JSON.stringify({ path: snap, bytes }), { mode: 0o600 })
  return { snap, manifest, base }
}

// Big enough that a snapshot of this heap spans several 5 MiB parts (random base64 only
// compresses to ~3/4).
let ballast = null
function growHeap () {
  ballast = []
  for (let i = 0; i < 20000; i++) ballast.push(crypto.randomBytes(675).toString('base64')) // 900 chars: V8 cuts longer strings in snapshots
}

test('bad destinations throw synchronously with OPTIONS_INVALID; a missing file rejects UPLOAD_NOT_FOUND', async () => {
  const bad = [undefined, 42, '', 'http://bucket/x', 'gs://bucket/x', 's3://', 's3://B_/x', {}, { url: 's3://bkt/x', nope: 1 },
    { url: 's3://bkt/x', partSize: 1024 }, { url: 's3://bkt/x', retries: -1 }, { url: 's3://bkt/x', endpoint: 'ftp://x' },
    { url: 's3://bkt/x', accessKeyId: 'a' }, { presign: 'nope' }, { url: 's3://bkt/x', presign: () => 'x' }, { url: 's3://bkt/../x' }]
  for (const d of bad) {
    assert.throws(() => leakguard.upload('/tmp/x.heapsnapshot.gz', d), (e) => e.code === codes.OPTIONS_INVALID && (e instanceof TypeError || e instanceof RangeError), JSON.stringify(d))
  }
  assert.throws(() => leakguard.upload(7, 's3://bkt/x'), (e) => e.code === codes.OPTIONS_INVALID)
  assert.throws(() => leakguard.capture({ upload: 'gs://b/x' }), (e) => e.code === codes.OPTIONS_INVALID)
  assert.throws(() => leakguard.watch({ upload: { url: 's3://bkt', wait: 'yes' } }), (e) => e.code === codes.OPTIONS_INVALID)
  await assert.rejects(leakguard.upload(path.join(tmpRoot, 'missing.heapsnapshot.gz'), 's3://bkt/x'), (e) => e.code === codes.UPLOAD_NOT_FOUND)
  for (const k of ['UPLOAD_FAILED', 'UPLOAD_ABORTED', 'UPLOAD_NOT_FOUND', 'UPLOAD_PRESIGN_FAILED', 'UPLOAD_UNSUPPORTED']) {
    assert.equal(codes[k], `ERR_LEAKGUARD_${k}`)
  }
})

s3test('nothing uploads when no upload is configured', async () => {
  const dir = freshDir('none')
  const before = (await s3.cmd({ op: 'list' })).keys
  const r = await leakguard.capture({ dir })
  assert.equal(r.upload, undefined)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.deepEqual((await s3.cmd({ op: 'list' })).keys, before)
  assert.ok(fs.existsSync(r.path) && fs.existsSync(r.manifestPath), 'the capture stays on disk')
  const m = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'))
  assert.equal(m.upload, undefined)
})

s3test('a multi-part snapshot from capture({ upload, wait }) arrives byte-identical, manifest amended, local kept with deleteLocal: false', async () => {
  growHeap()
  const dir = freshDir('multipart')
  const r = await leakguard.capture({ dir, upload: dest({ wait: true, deleteLocal: false, partSize: 5 * MiB, service: 'billing-api', instance: 'pod-7' }) })
  ballast = null
  assert.ok(r.bytes > 5 * MiB, `snapshot of ${r.bytes} bytes spans ≥ 2 parts`)
  const u = r.upload
  assert.ok(u, 'result.upload is set when wait: true')
  assert.equal(u.destination, `s3://${s3.info.bucket}/uploads`)
  assert.deepEqual(u.files.map((f) => f.role), ['snapshot', 'manifest'])
  const snap = u.files[0]
  assert.equal(snap.key, `uploads/billing-api/pod-7/${path.basename(r.path)}`)
  assert.equal(snap.parts, Math.ceil(r.bytes / (5 * MiB)))
  // S3's multipart ETag is md5-of-part-md5s with "-<parts>": the store says it was multipart.
  assert.match(snap.etag, new RegExp(`-${snap.parts}"?$`))
  const got = await s3.cmd({ op: 'get', key: snap.key })
  assert.equal(got.ok, true, got.error)
  assert.equal(got.bytes, r.bytes)
  assert.equal(got.sha256, sha256(r.path), 'byte-identical')
  assert.equal(got.contentType, 'application/gzip')
  // The uploaded manifest says where everything went; the kept local one says the same.
  const man = await s3.cmd({ op: 'get', key: u.files[1].key, text: true })
  const remote = JSON.parse(man.text)
  assert.equal(remote.path, r.path)
  assert.equal(remote.upload.destination, u.destination)
  assert.equal(remote.upload.files[0].key, snap.key)
  assert.equal(remote.upload.files[0].url, `s3://${s3.info.bucket}/${snap.key}`)
  assert.equal(remote.upload.service, 'billing-api')
  const local = JSON.parse(fs.readFileSync(r.manifestPath, 'utf8'))
  assert.deepEqual(local.upload, remote.upload)
  assert.equal(fs.statSync(r.manifestPath).mode & 0o777, 0o600)
  assert.equal(u.deletedLocal, false)
  assert.ok(fs.existsSync(r.path))
  assert.equal((await s3.cmd({ op: 'uploads' })).uploads, 0, 'no multipart upload left open')
})

s3test('deleteLocal (the default) removes snapshot, profile and manifest only after the store confirmed them', async () => {
  const dir = freshDir('delete')
  const c = fakeCapture(dir, 1234567)
  const profile = path.join(dir, `${c.base}.heapprofile`)
  fs.writeFileSync(profile, '{"head":{}}', { mode: 0o600 })
  const hashes = [sha256(c.snap), sha256(profile)]
  const u = await leakguard.upload(c.manifest, dest({ instance: 'del' }))
  assert.deepEqual(u.files.map((f) => f.role), ['snapshot', 'profile', 'manifest'])
  assert.equal(u.deletedLocal, true)
  assert.deepEqual(fs.readdirSync(dir), [], 'every local file removed')
  assert.equal((await s3.cmd({ op: 'get', key: u.files[0].key })).sha256, hashes[0])
  assert.equal((await s3.cmd({ op: 'get', key: u.files[1].key })).sha256, hashes[1])
  assert.equal(u.bytes, u.files.reduce((a, f) => a + f.bytes, 0))
  // Idle: the upload thread is gone (it exits when its queue is empty).
  assert.deepEqual(await threadsNamed('leakguard-upload'), [], 'no upload thread left behind')
})

/** This process's threads named `name` now (Linux keeps 15 bytes of a thread name). */
function threadsNow (name) {
  if (process.platform !== 'linux') return []
  return fs.readdirSync('/proc/self/task').filter((t) => {
    try { return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === name.slice(0, 15) } catch { return false }
  })
}

/** Threads named `name` after they had up to 2 s to exit. */
async function threadsNamed (name) {
  let found = []
  for (let i = 0; i < 100; i++) {
    found = threadsNow(name)
    if (found.length === 0) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return found
}

s3test('wrong credentials: ERR_LEAKGUARD_UPLOAD_FAILED (auth), not retried, every local file kept', async () => {
  const dir = freshDir('auth')
  const c = fakeCapture(dir, 200000)
  const err = await leakguard.upload(c.snap, dest({ secretAccessKey: 'wrong-secret-wrong-secret-wrong-secret00' })).then(() => null, (e) => e)
  assert.ok(err, 'rejected')
  assert.equal(err.code, codes.UPLOAD_FAILED)
  assert.equal(err.reason, 'auth')
  assert.equal(err.attempts, 1, 'a refusal of the credentials is not retried')
  assert.ok(fs.existsSync(c.snap) && fs.existsSync(c.manifest), 'local files kept')
  assert.deepEqual(err.kept.sort(), [c.manifest, c.snap].sort())
  assert.ok(!(await s3.cmd({ op: 'list' })).keys.some((k) => k.includes(c.base)))
})

s3test('the server stops mid-upload: retried with backoff, then UPLOAD_FAILED, file kept', async () => {
  const dying = await startS3()
  try {
    const dir = freshDir('dies')
    const c = fakeCapture(dir, 12 * MiB)
    // The proxy passes the first part and a bit, then kills the server for good.
    const proxy = await startProxy(dying.info.port, { cutAfter: 6 * MiB, onCut: () => dying.kill() })
    const t0 = Date.now()
    const err = await leakguard.upload(c.snap, {
      url: `s3://${dying.info.bucket}`,
      endpoint: `http://127.0.0.1:${proxy.port}`,
      accessKeyId: dying.info.accessKeyId,
      secretAccessKey: dying.info.secretAccessKey,
      partSize: 5 * MiB,
      retries: 2,
      backoffMs: 100
    }).then(() => null, (e) => e)
    proxy.close()
    assert.ok(proxy.wasCut(), 'the server was stopped mid-upload')
    assert.ok(err, 'rejected')
    assert.equal(err.code, codes.UPLOAD_FAILED)
    assert.equal(err.reason, 'network')
    assert.equal(err.attempts, 3, 'the first attempt and both retries')
    assert.ok(Date.now() - t0 >= 100 + 200, 'backed off between attempts')
    assert.ok(fs.existsSync(c.snap) && fs.existsSync(c.manifest), 'local files kept')
    assert.equal(sha256(c.snap).length, 64)
  } finally {
    await dying.stop()
  }
})

s3test('a pre-signed-URL function: boto3-signed PUTs, no credentials in the process', async (t) => {
  // moto cannot authenticate query-string signatures (it answers 500): this server runs
  // without authentication; the URLs are still boto3's real pre-signed ones.
  const open = await startS3({ auth: false })
  t.after(() => open.stop())
  const dir = freshDir('presign')
  const c = fakeCapture(dir, 3 * MiB)
  const want = sha256(c.snap)
  const asked = []
  const u = await leakguard.upload(c.snap, async (key, file) => {
    asked.push([key, file.role, file.bytes])
    const r = await open.cmd({ op: 'presign', key })
    assert.match(r.url, /X-Amz-Signature=/)
    return r.url
  })
  assert.deepEqual(asked.map((a) => a[1]), ['snapshot', 'manifest'])
  assert.equal(asked[0][2], 3 * MiB)
  assert.equal(u.destination, 'presigned')
  assert.ok(!u.files.some((f) => f.url.includes('Signature')), 'no signature in the result')
  const got = await open.cmd({ op: 'get', key: asked[0][0] })
  assert.equal(got.sha256, want, 'byte-identical')
  assert.equal(got.bytes, 3 * MiB)
  const man = JSON.parse((await open.cmd({ op: 'get', key: asked[1][0], text: true })).text)
  assert.equal(man.upload.destination, 'presigned')
  assert.equal(fs.existsSync(c.snap), false, 'deleted after success')
  // A function that throws or answers nonsense: PRESIGN_FAILED, nothing sent, file kept.
  const c2 = fakeCapture(freshDir('presign-bad'), 1000)
  await assert.rejects(leakguard.upload(c2.snap, () => { throw new Error('no') }), (e) => e.code === codes.UPLOAD_PRESIGN_FAILED)
  await assert.rejects(leakguard.upload(c2.snap, async () => 42), (e) => e.code === codes.UPLOAD_PRESIGN_FAILED)
  assert.ok(fs.existsSync(c2.snap))
})

/** A loopback HTTP server that takes PUTs and never answers (a store that hangs). */
async function hangingServer () {
  const seen = []
  const server = http.createServer((req) => { seen.push(req.url); req.resume() })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${server.address().port}`
  return { url, seen, close: () => { server.closeAllConnections(); server.close() } }
}

test('the deadline ends a hung upload with UPLOAD_FAILED (deadline); the file is kept', async () => {
  const hang = await hangingServer()
  try {
    const c = fakeCapture(freshDir('deadline'), 100000)
    const p = leakguard.upload(c.snap, { presign: (key) => `${hang.url}/${key}?sig=1`, timeoutMs: 2000 })
    while (hang.seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
    if (process.platform === 'linux') assert.equal(threadsNow('leakguard-upload').length, 1, 'one named upload thread while it runs')
    assert.equal(leakguard.watch().status().uploads.pending, 1)
    leakguard.watch().stop()
    const err = await p.then(() => null, (e) => e)
    assert.equal(err && err.code, codes.UPLOAD_FAILED)
    assert.equal(err.reason, 'deadline')
    assert.ok(hang.seen.length >= 1, 'the PUT reached the server')
    assert.ok(fs.existsSync(c.snap) && fs.existsSync(c.manifest))
  } finally {
    hang.close()
  }
})

s3test('watch({ upload }): every capture ships in the background; upload event, status().uploads, metrics; stop() cancels', async () => {
  const dir = freshDir('watch')
  const guard = leakguard.watch({ intervalMs: 1000, capture: { dir }, upload: dest({ instance: 'watched' }) })
  try {
    const uploaded = once(guard, 'upload')
    const r = await guard.capture({ reason: 'test' })
    assert.ok(fs.existsSync(r.path), 'the capture resolves with the file on disk (upload still running)')
    const [u] = await uploaded
    assert.equal(u.files[0].key, `uploads/${u.service}/watched/${path.basename(r.path)}`)
    assert.equal((await s3.cmd({ op: 'get', key: u.files[0].key })).bytes, r.bytes)
    assert.equal(fs.existsSync(r.path), false, 'deleteLocal by default')
    const st = guard.status()
    const last = st.uploads.recent.at(-1)
    assert.equal(last.ok, true)
    assert.equal(last.path, r.path)
    assert.equal(st.uploads.pending, 0)
    const text = guard.metrics()
    const ok = /^leakguard_uploads_total\{result="ok"\} (\d+)$/m.exec(text)
    assert.ok(ok && Number(ok[1]) >= 1, text.slice(-800))
    assert.match(text, /^leakguard_upload_bytes_total \d+$/m)
    const lastAt = /^leakguard_last_upload_timestamp_seconds (\S+)$/m.exec(text)
    assert.ok(lastAt && Math.abs(Number(lastAt[1]) * 1000 - last.at) < 1000)

    // upload: false per capture turns it off.
    const r2 = await guard.capture({ upload: false })
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.ok(fs.existsSync(r2.path))
  } finally {
    guard.stop()
  }

  // stop() cancels a running background upload: 'error' with UPLOAD_ABORTED, file kept.
  const hang = await hangingServer()
  const g2 = leakguard.watch({ capture: { dir: freshDir('stop') }, upload: { presign: (key) => `${hang.url}/${key}` } })
  try {
    const failed = once(g2, 'error')
    const r = await g2.capture()
    while (hang.seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
    g2.stop()
    const [err] = await failed
    assert.equal(err.code, codes.UPLOAD_ABORTED)
    assert.ok(fs.existsSync(r.path) && fs.existsSync(r.manifestPath), 'kept')
    assert.match(leakguard.watch().metrics(), /^leakguard_uploads_total\{result="aborted"\} [1-9]/m)
  } finally {
    g2.stop()
    leakguard.watch().stop()
    hang.close()
  }
})

s3test('object keys: service from npm_package_name, instance from POD_NAME, foreign names get time and pid', () => {
  const { objectKeys } = require('../lib/upload')
  const d = { prefix: 'p/q' }
  const plan = [{ name: 'heap-20260102T030405Z-77-3.heapsnapshot.gz' }, { name: 'odd name.bin' }]
  const keys = objectKeys(plan, d, { npm_package_name: '@acme/billing', POD_NAME: 'billing-5d9c-x2' })
  assert.equal(keys[0], 'p/q/acme-billing/billing-5d9c-x2/heap-20260102T030405Z-77-3.heapsnapshot.gz')
  assert.match(keys[1], new RegExp(`^p/q/acme-billing/billing-5d9c-x2/\\d{8}T\\d{6}Z-${process.pid}-odd-name\\.bin$`))
  assert.match(objectKeys(plan, {}, { HOSTNAME: '../..' })[0], /^[^/]+\/host\/heap-/)
})
