'use strict'
// upload(): ship a leakguard capture (snapshot, manifest, allocation profile) to object
// storage. The JS thread validates the destination, names the objects (service, pod or
// host, time, pid), asks a pre-sign function for URLs when one is given, and polls the
// job; the bytes move on the `leakguard-upload` Rust thread (src/upload/), one upload at a
// time, multipart with bounded memory, retried with backoff under a deadline. A failed
// upload keeps every local file and rejects with ERR_LEAKGUARD_UPLOAD_FAILED.

const os = require('node:os')
const path = require('node:path')

const { binding, call } = require('./native')
const { coded, invalidOption } = require('./errors')
const V = require('./validate')
const { uploadCounted } = require('./stats')

const MiB = 1024 * 1024
const DEST_KEYS = ['url', 'bucket', 'prefix', 'endpoint', 'region', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'presign', 'deleteLocal', 'wait', 'retries', 'backoffMs', 'maxBackoffMs', 'timeoutMs', 'partSize', 'service', 'instance', 'signal']
const DEST_DEFAULTS = Object.freeze({ deleteLocal: true, wait: false, retries: 3, backoffMs: 1000, maxBackoffMs: 30000, timeoutMs: 30 * 60e3, partSize: 8 * MiB })
/** How often the JS thread looks whether an upload ended (the bytes move on their own thread). */
const POLL_MS = 25
/** Outcomes remembered for status(). */
const KEEP_RECENT = 20
const NORMALIZED = Symbol('leakguard.uploadDestination')

/** Whether this build has uploads (the `upload` Cargo feature, on in the npm build). */
function supported () {
  return typeof binding.uploadStart === 'function'
}

/** `s3://bucket/some/prefix` → { bucket, prefix }; throws a coded TypeError/RangeError. */
function parseUrl (url, name) {
  const m = /^([a-z0-9]+):\/\/([^/?#]+)(\/[^?#]*)?$/i.exec(url)
  if (!m) throw invalidOption(name, "a URL such as 's3://bucket/prefix'", url)
  const scheme = m[1].toLowerCase()
  if (scheme !== 's3') {
    throw invalidOption(name, `an s3:// URL (leakguard's uploads speak the S3 API; ${scheme}:// is not supported — use an S3-compatible endpoint or a pre-signed URL function)`, url, RangeError)
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[2])) throw invalidOption(name, 'an S3 bucket name (3–63 lowercase letters, digits, dots, hyphens)', url, RangeError)
  return { bucket: m[2], prefix: cleanPrefix(m[3] || '') }
}

function cleanPrefix (p) {
  const parts = p.split('/').filter((s) => s.length > 0)
  if (parts.some((s) => s === '.' || s === '..')) throw invalidOption('upload.prefix', "a key prefix without '.' or '..' segments", p, RangeError)
  return parts.join('/')
}

/**
 * Validate a destination: an `s3://` URL string, a pre-sign function `(key, file) =>
 * Promise<string>`, or an options object. Returns a frozen normalized form (accepted again
 * as it is), or null for `false`/`undefined` (no upload). Throws a coded TypeError/RangeError.
 */
function normalizeDestination (dest, name = 'destination') {
  if (dest === undefined || dest === false || dest === null) return null
  if (dest && dest[NORMALIZED]) return dest
  let o
  if (typeof dest === 'string') o = { url: dest }
  else if (typeof dest === 'function') o = { presign: dest }
  else {
    o = V.plainObject(dest, name)
    V.knownKeys(o, DEST_KEYS, name)
  }
  const p = (k) => `${name}.${k}`
  const out = { ...DEST_DEFAULTS, [NORMALIZED]: true }
  const url = V.optString(o, 'url', { name: typeof dest === 'string' ? name : p('url'), maxLength: 2048 })
  if (o.presign !== undefined && typeof o.presign !== 'function') throw invalidOption(p('presign'), 'a function (key, file) => Promise<string> returning a pre-signed PUT URL', o.presign)
  const bucket = V.optString(o, 'bucket', { name: p('bucket'), maxLength: 63 })
  if (o.presign) {
    if (url !== undefined || bucket !== undefined) throw invalidOption(p('presign'), 'given alone: a pre-sign function replaces url and bucket', 'both', TypeError)
    out.presign = o.presign
    out.bucket = null
    out.prefix = cleanPrefix(V.optString(o, 'prefix', { name: p('prefix'), nonEmpty: false, maxLength: 512 }) || '')
  } else if (url !== undefined) {
    Object.assign(out, parseUrl(url, typeof dest === 'string' ? name : p('url')))
    const extra = V.optString(o, 'prefix', { name: p('prefix'), nonEmpty: false, maxLength: 512 })
    if (extra) out.prefix = [out.prefix, cleanPrefix(extra)].filter(Boolean).join('/')
  } else if (bucket !== undefined) {
    Object.assign(out, parseUrl(`s3://${bucket}`, p('bucket')))
    out.prefix = cleanPrefix(V.optString(o, 'prefix', { name: p('prefix'), nonEmpty: false, maxLength: 512 }) || '')
  } else {
    throw invalidOption(name, "an s3:// URL, a pre-sign function, or an object with url (or bucket) or presign", typeof dest === 'object' ? '{}' : dest)
  }
  const endpoint = V.optString(o, 'endpoint', { name: p('endpoint'), maxLength: 2048 })
  if (endpoint !== undefined && !/^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/i.test(endpoint)) throw invalidOption(p('endpoint'), "an http(s) URL such as 'https://minio.example:9000'", endpoint, RangeError)
  out.endpoint = endpoint
  out.region = V.optString(o, 'region', { name: p('region'), maxLength: 64 })
  out.accessKeyId = V.optString(o, 'accessKeyId', { name: p('accessKeyId'), maxLength: 256 })
  out.secretAccessKey = V.optString(o, 'secretAccessKey', { name: p('secretAccessKey'), maxLength: 1024 })
  out.sessionToken = V.optString(o, 'sessionToken', { name: p('sessionToken'), maxLength: 8192 })
  if ((out.accessKeyId === undefined) !== (out.secretAccessKey === undefined)) {
    throw invalidOption(out.accessKeyId === undefined ? p('accessKeyId') : p('secretAccessKey'), 'given together with ' + (out.accessKeyId === undefined ? 'secretAccessKey' : 'accessKeyId'), undefined)
  }
  const set = (k, v) => { if (v !== undefined) out[k] = v }
  set('deleteLocal', V.optBoolean(o, 'deleteLocal', p('deleteLocal')))
  set('wait', V.optBoolean(o, 'wait', p('wait')))
  set('retries', V.optNumber(o, 'retries', { name: p('retries'), min: 0, max: 100, integer: true }))
  set('backoffMs', V.optNumber(o, 'backoffMs', { name: p('backoffMs'), min: 0, max: 3600e3, integer: true }))
  set('maxBackoffMs', V.optNumber(o, 'maxBackoffMs', { name: p('maxBackoffMs'), min: 0, max: 3600e3, integer: true }))
  set('timeoutMs', V.optNumber(o, 'timeoutMs', { name: p('timeoutMs'), min: 100, max: 7 * 24 * 3600e3, integer: true }))
  set('partSize', V.optNumber(o, 'partSize', { name: p('partSize'), min: 5 * MiB, max: 5 * 1024 * MiB, integer: true }))
  out.service = V.optString(o, 'service', { name: p('service'), maxLength: 200 })
  out.instance = V.optString(o, 'instance', { name: p('instance'), maxLength: 200 })
  out.signal = V.optSignal(o, 'signal', p('signal'))
  return Object.freeze(out)
}

/** One key segment: letters, digits, `.`, `_`, `-`; never empty, `.` or `..`. */
function segment (s, fallback) {
  const v = String(s || '').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '').slice(0, 100)
  return v || fallback
}

/** The service name: the option, LEAKGUARD_SERVICE, OTEL_SERVICE_NAME, npm_package_name, the script. */
function serviceName (dest, env = process.env) {
  const script = process.argv[1] ? path.basename(process.argv[1]).replace(/\.[cm]?js$/, '') : ''
  return segment(dest.service || env.LEAKGUARD_SERVICE || env.OTEL_SERVICE_NAME || env.npm_package_name || script, 'node')
}

/** The instance: the option, Kubernetes' downward-API POD_NAME, HOSTNAME, os.hostname(). */
function instanceName (dest, env = process.env) {
  return segment(dest.instance || env.POD_NAME || env.K8S_POD_NAME || env.HOSTNAME || os.hostname(), 'host')
}

const LEAKGUARD_NAME = /^heap-\d{8}T\d{6}Z-\d+-\d+\./

/** `yyyymmddThhmmssZ` for now, as in the snapshot names. */
function stamp (d = new Date()) {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
}

/**
 * Object keys for a plan: `<prefix>/<service>/<instance>/<file>`. leakguard's own names
 * carry the capture's time and pid already; any other name gets `<time>-<pid>-` before it.
 */
function objectKeys (plan, dest, env = process.env) {
  const dir = [dest.prefix, serviceName(dest, env), instanceName(dest, env)].filter(Boolean).join('/')
  const tag = `${stamp()}-${process.pid}-`
  return plan.map((f) => `${dir}/${LEAKGUARD_NAME.test(f.name) ? '' : tag}${segment(f.name, 'file')}`)
}

/** Where the objects go, as recorded in the manifest and the result (no secrets). */
function describe (dest) {
  if (dest.presign) return 'presigned'
  return `s3://${dest.bucket}${dest.prefix ? '/' + dest.prefix : ''}`
}

// Process-wide: recent outcomes and what runs, for status().
const recent = []
let pending = 0

function remember (entry) {
  recent.push(entry)
  if (recent.length > KEEP_RECENT) recent.shift()
}

/** `{ pending, thread, recent: [...] }`: what status() shows of uploads. */
function uploadStatus () {
  const q = supported() ? binding.uploadQueue() : { waiting: 0, thread: false }
  return { pending, thread: q.thread, recent: recent.slice() }
}

function abortError (signal) {
  return coded(Error, 'UPLOAD_ABORTED', 'leakguard: the upload was cancelled; the local files were kept', { cause: signal && signal.reason })
}

/** Ask the pre-sign function for each object's URL; a bad answer rejects PRESIGN_FAILED. */
async function presignAll (dest, plan, keys) {
  const urls = []
  for (let i = 0; i < plan.length; i++) {
    const f = plan[i]
    let u
    try {
      u = await dest.presign(keys[i], { role: f.role, path: f.path, bytes: f.bytes, contentType: f.contentType })
    } catch (err) {
      throw coded(Error, 'UPLOAD_PRESIGN_FAILED', `leakguard: the pre-sign function threw for ${keys[i]}: ${err && err.message}; nothing was uploaded`, { cause: err })
    }
    if (typeof u !== 'string' || !/^https?:\/\/\S+$/i.test(u)) {
      throw coded(Error, 'UPLOAD_PRESIGN_FAILED', `leakguard: the pre-sign function must resolve to an http(s) URL for ${keys[i]}; got ${typeof u === 'string' ? JSON.stringify(u.slice(0, 80)) : typeof u}; nothing was uploaded`)
    }
    urls.push(u)
  }
  return urls
}

/**
 * Upload the capture `file` belongs to. `dest` is normalized; `extra.signal` (an
 * AbortSignal) cancels; `extra.ref === false` lets the process exit while it runs.
 */
async function runUpload (file, dest, extra = {}) {
  if (!supported()) throw coded(Error, 'UPLOAD_UNSUPPORTED', 'leakguard: this build has no uploads (built without the "upload" Cargo feature)')
  const signals = [dest.signal, extra.signal].filter(Boolean)
  if (signals.some((s) => s.aborted)) throw abortError(signals.find((s) => s.aborted))
  const plan = call(binding.uploadPlan, path.resolve(file))
  const keys = objectKeys(plan, dest)
  const urls = dest.presign ? await presignAll(dest, plan, keys) : []
  if (signals.some((s) => s.aborted)) throw abortError(signals.find((s) => s.aborted))
  const record = {
    destination: describe(dest),
    endpoint: dest.endpoint ?? process.env.AWS_ENDPOINT_URL ?? null,
    service: serviceName(dest),
    instance: instanceName(dest),
    namespace: process.env.POD_NAMESPACE || null,
    node: process.env.NODE_NAME || null,
    pid: process.pid
  }
  const job = call(binding.uploadStart, {
    target: dest.presign ? 'presigned' : 's3',
    bucket: dest.bucket ?? undefined,
    endpoint: dest.endpoint,
    region: dest.region,
    accessKeyId: dest.accessKeyId,
    secretAccessKey: dest.secretAccessKey,
    sessionToken: dest.sessionToken,
    files: plan.map((f, i) => ({ role: f.role, path: f.path, key: keys[i], url: urls[i], contentType: f.contentType })),
    recordJson: JSON.stringify(record),
    deleteLocal: dest.deleteLocal,
    retries: dest.retries,
    backoffMs: dest.backoffMs,
    maxBackoffMs: Math.max(dest.maxBackoffMs, dest.backoffMs),
    deadlineMs: dest.timeoutMs,
    partSize: dest.partSize
  })
  pending++
  const onAbort = () => job.cancel()
  for (const s of signals) s.addEventListener('abort', onAbort, { once: true })
  let text
  try {
    text = await new Promise((resolve) => {
      const tick = () => {
        const o = job.outcome
        if (o != null) return resolve(o)
        const t = setTimeout(tick, POLL_MS)
        if (extra.ref === false) t.unref()
      }
      tick()
    })
  } finally {
    pending--
    for (const s of signals) s.removeEventListener('abort', onAbort)
  }
  const out = JSON.parse(text)
  const at = Date.now()
  if (!out.ok) {
    const key = out.code === 'ERR_LEAKGUARD_UPLOAD_ABORTED' ? 'UPLOAD_ABORTED' : 'UPLOAD_FAILED'
    remember({ ok: false, path: path.resolve(file), code: out.code, reason: out.reason, message: out.message, attempts: out.attempts, at })
    throw coded(Error, key, `leakguard: ${out.message}`, { reason: out.reason, attempts: out.attempts, kept: out.kept, uploadedKeys: out.uploadedKeys, path: path.resolve(file) })
  }
  delete out.ok
  remember({ ok: true, path: path.resolve(file), destination: out.destination, keys: out.files.map((f) => f.key), bytes: out.bytes, attempts: out.attempts, at })
  return out
}

/** The public upload(): validate at the call, count the outcome for the metrics. */
function upload (file, destination) {
  if (typeof file !== 'string' || file.length === 0 || file.includes('\0')) throw invalidOption('path', 'the path of a leakguard file (a non-empty string)', file)
  const dest = normalizeDestination(destination, 'destination')
  if (!dest) throw invalidOption('destination', "an s3:// URL, a pre-sign function, or UploadOptions", destination)
  return uploadCounted(runUpload(file, dest))
}

/**
 * After a capture with `upload`: with `wait`, resolve after the upload (result.upload) or
 * reject with its error (err.capture is the capture); else start it in the background and
 * report through `report(err, uploadResult, capture)`. Never throws for a background upload.
 */
async function afterCapture (result, dest, { signal, report } = {}) {
  if (!dest) return result
  const p = uploadCounted(runUpload(result.path, dest, { signal, ref: dest.wait }))
  if (dest.wait) {
    try {
      result.upload = await p
    } catch (err) {
      err.capture = result
      throw err
    }
    if (report) report(null, result.upload, result)
    return result
  }
  p.then((u) => {
    result.upload = u
    if (report) report(null, u, result)
  }, (err) => {
    if (report) report(err, null, result)
    else process.emitWarning(`leakguard: the upload of ${result.path} failed (${err && err.code}): ${err && err.message}`, { code: 'LEAKGUARD_UPLOAD_FAILED' })
  })
  return result
}

module.exports = { upload, runUpload, afterCapture, normalizeDestination, objectKeys, serviceName, instanceName, uploadStatus, supported, DEST_DEFAULTS }
