'use strict'
// adminHandler(): the authenticated HTTP admin route — capture, status, metrics, the
// snapshot list and (opt-in) download. One `(req, res, next?)` function serves plain
// node:http, Express and (through the adapters below) Fastify and Koa.
//
// Security invariants:
// - without a token the handler is never made, unless `allowUnauthenticated: true`, and
//   then it answers loopback clients only, and never a request a proxy forwarded;
// - the token is kept only as a SHA-256 digest and compared in constant time; no answer,
//   error or log line holds it;
// - a download serves only a regular file (not a symlink) in the capture directory whose
//   name is exactly leakguard's own pattern, taken from the raw (undecoded) path.

const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const zlib = require('node:zlib')
const { pipeline } = require('node:stream')

const V = require('./validate')
const { coded, codes, invalidOption } = require('./errors')
const { manifestClasses } = require('./classes')
const captureLib = require('./capture')
const metricsLib = require('./metrics')
const { counted, captureCounts } = require('./stats')

const ADMIN_KEYS = ['token', 'allowUnauthenticated', 'prefix', 'cooldownMs', 'allowDownload', 'dir', 'capture']
const DEFAULT_COOLDOWN_MS = 30000
const MIN_TOKEN_LENGTH = 16
const MAX_TOKEN_LENGTH = 4096
/** The exact name of a leakguard snapshot (src/capture/files.rs base_name + SNAPSHOT_EXT). */
const SNAPSHOT_NAME = /^heap-\d{8}T\d{6}Z-\d{1,10}-\d{1,20}\.heapsnapshot\.gz$/
/**
 * A download name: the file's name, or the same without `.gz` (what the client saves:
 * `curl --compressed -O …/heap-….heapsnapshot` names the file after the URL).
 */
const DOWNLOAD_NAME = /^heap-\d{8}T\d{6}Z-\d{1,10}-\d{1,20}\.heapsnapshot(?:\.gz)?$/
/** How many capture results the route remembers for /status when no guard runs. */
const KEEP_CAPTURES = 20

const LOOPBACK = new net.BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addSubnet('::1', 128, 'ipv6')
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6')

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses; false for anything else. */
function isLoopback (address) {
  if (typeof address !== 'string') return false
  const a = address.replace(/%.*$/, '') // a zone index (fe80::1%eth0) is never loopback's
  const family = net.isIPv4(a) ? 'ipv4' : net.isIPv6(a) ? 'ipv6' : null
  return family !== null && LOOPBACK.check(a, family)
}

/** Headers that mean a proxy forwarded the request (the peer address is the proxy's). */
const FORWARDED_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip', 'x-forwarded-host', 'x-client-ip']

const sha256 = (s) => crypto.createHash('sha256').update(s, 'utf8').digest()

/** Validate the options at the call; the token is kept only as its digest. */
function normalizeAdminOptions (options) {
  if (options === undefined) {
    throw coded(TypeError, 'ADMIN_NO_TOKEN', 'leakguard: adminHandler() needs options.token (a secret of at least 16 characters, e.g. from an environment variable), or allowUnauthenticated: true to answer loopback clients only')
  }
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, ADMIN_KEYS, 'options')
  const allowUnauthenticated = V.optBoolean(o, 'allowUnauthenticated') || false
  let tokenDigest = null
  const token = o.token
  if (token === undefined || token === '') {
    if (!allowUnauthenticated) {
      throw coded(TypeError, 'ADMIN_NO_TOKEN', `leakguard: adminHandler() needs options.token (${token === '' ? 'it is empty — is the environment variable set?' : 'a secret of at least 16 characters'}), or allowUnauthenticated: true to answer loopback clients only`)
    }
  } else {
    // Never show the value: it is (or looks like) a secret.
    if (typeof token !== 'string') throw coded(TypeError, 'OPTIONS_INVALID', `leakguard: option "token" must be a string; got ${token === null ? 'null' : typeof token}`, { option: 'token' })
    if (token.length < MIN_TOKEN_LENGTH || token.length > MAX_TOKEN_LENGTH) {
      throw coded(RangeError, 'OPTIONS_INVALID', `leakguard: option "token" must be ${MIN_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} characters long (use a random secret, e.g. crypto.randomBytes(32).toString('base64url'))`, { option: 'token' })
    }
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw coded(RangeError, 'OPTIONS_INVALID', 'leakguard: option "token" must be printable ASCII without spaces (it travels in an Authorization: Bearer header)', { option: 'token' })
    }
    if (allowUnauthenticated) {
      throw coded(TypeError, 'OPTIONS_INVALID', 'leakguard: pass either options.token or allowUnauthenticated: true, not both', { option: 'allowUnauthenticated' })
    }
    tokenDigest = sha256(token)
  }
  const prefix = V.optString(o, 'prefix', { nonEmpty: false, maxLength: 1024 }) ?? ''
  if (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/') || /[?#\s%\\]/.test(prefix) || prefix.split('/').some((s) => s === '.' || s === '..'))) {
    throw invalidOption('prefix', "'' or a path such as '/debug/leakguard' (leading slash, no trailing slash, no '?', '#', '%', '..')", prefix, RangeError)
  }
  return {
    tokenDigest,
    allowUnauthenticated,
    prefix,
    cooldownMs: V.optNumber(o, 'cooldownMs', { min: 0, max: 24 * 3600e3, integer: true }) ?? DEFAULT_COOLDOWN_MS,
    allowDownload: V.optBoolean(o, 'allowDownload') || false,
    dir: V.optString(o, 'dir'),
    capture: o.capture === undefined ? {} : captureLib.normalizeCaptureOptions(o.capture, 'capture')
  }
}

/**
 * Who may ask: `null` when allowed, else `{ status, key, message, headers? }`.
 * Exported for tests, which call it with real requests on real sockets.
 */
function authorize (req, o) {
  if (o.tokenDigest) {
    const h = req.headers.authorization
    const m = typeof h === 'string' ? /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i.exec(h) : null
    // Equal-length digests: timingSafeEqual then takes the same time whatever was sent.
    if (m && crypto.timingSafeEqual(sha256(m[1]), o.tokenDigest)) return null
    return {
      status: 401,
      key: 'ADMIN_UNAUTHORIZED',
      message: 'leakguard: this route needs the header "Authorization: Bearer <token>" with the configured token',
      headers: { 'WWW-Authenticate': 'Bearer realm="leakguard"' }
    }
  }
  // allowUnauthenticated: loopback peers only, and no proxy in between.
  const peer = req.socket && req.socket.remoteAddress
  if (!isLoopback(peer)) {
    return { status: 403, key: 'ADMIN_FORBIDDEN', message: 'leakguard: this route has no token and answers loopback clients only' }
  }
  for (const name of FORWARDED_HEADERS) {
    if (req.headers[name] !== undefined) {
      return { status: 403, key: 'ADMIN_FORBIDDEN', message: `leakguard: this route has no token and refuses proxied requests (${name} header): the proxy's loopback address says nothing about the client` }
    }
  }
  return null
}

const ROUTES = {
  '/capture': ['POST'],
  '/status': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/snapshots': ['GET', 'HEAD'],
  '/diff': ['POST'],
  '/report': ['GET', 'HEAD'],
  '/allocations': ['GET', 'HEAD']
}

/** `{ route, name?, query }` when the raw URL is one of ours under `prefix`, else null. */
function match (rawUrl, prefix) {
  if (typeof rawUrl !== 'string') return null
  const q = rawUrl.indexOf('?')
  const p = q < 0 ? rawUrl : rawUrl.slice(0, q)
  const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1))
  if (prefix && !p.startsWith(prefix + '/')) return null
  const rest = p.slice(prefix.length)
  if (ROUTES[rest]) return { route: rest, query }
  if (rest.startsWith('/snapshots/')) return { route: '/snapshots/:name', name: rest.slice('/snapshots/'.length), query }
  return null
}

const SECURITY_HEADERS = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' }

function send (res, status, type, body, headers) {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

function sendJson (res, status, value, headers) {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value) + '\n', headers)
}

function sendError (res, status, code, message, headers) {
  sendJson(res, status, { error: { code, message } }, headers)
}

/** HTTP status for an error a capture rejected with. */
function captureErrorStatus (code) {
  const c = codes
  switch (code) {
    case c.CAPTURE_IN_PROGRESS: return 409
    case c.CAPTURE_COOLDOWN: return 429
    case c.CAPTURE_NO_HEADROOM: return 507
    case c.CAPTURE_OUT_OF_BUDGET: return 507
    case c.OPTIONS_INVALID: return 400
    default: return 500
  }
}

/** Does the request's Accept-Encoding take gzip? */
function acceptsGzip (header) {
  if (typeof header !== 'string') return false
  for (const part of header.split(',')) {
    const [coding, ...params] = part.trim().toLowerCase().split(';')
    if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== '*') continue
    const q = params.map((s) => s.trim()).find((s) => s.startsWith('q='))
    if (!q || Number(q.slice(2)) > 0) return true
  }
  return false
}

/** The sample for /status without a guard: the monitor's one-off reading if it has one. */
function sampleNow () {
  const monitor = require('./monitor')
  if (typeof monitor.sample === 'function') {
    try { return monitor.sample() } catch {}
  }
  const m = process.memoryUsage()
  const h = require('node:v8').getHeapStatistics()
  return { time: Date.now(), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, heapSizeLimit: h.heap_size_limit }
}

/** Time of a snapshot from its name's UTC stamp, ms since the epoch. */
function stampTime (name) {
  const s = name.slice(5, 21)
  return Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8), +s.slice(9, 11), +s.slice(11, 13), +s.slice(13, 15))
}

/** leakguard's snapshots in `dir`, newest first: regular files with leakguard's names only. */
async function listSnapshots (dir) {
  let names
  try {
    names = await fs.promises.readdir(dir)
  } catch (err) {
    if (err.code === 'ENOENT') return []
    throw err
  }
  const out = []
  for (const name of names) {
    if (!SNAPSHOT_NAME.test(name)) continue
    let st
    try { st = await fs.promises.lstat(path.join(dir, name)) } catch { continue }
    if (!st.isFile()) continue
    // The class histogram, from the manifest beside it (null for older captures).
    const { classes, classTotals } = await manifestClasses(path.join(dir, name))
    out.push({ name, bytes: st.size, createdAt: new Date(stampTime(name)).toISOString(), mtime: st.mtime.toISOString(), classes, classTotals })
  }
  out.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0))
  return out
}

/** Open a snapshot for reading: a regular file, never through a symlink. */
async function openSnapshot (file) {
  const st = await fs.promises.lstat(file)
  if (!st.isFile()) return null
  const flags = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0)
  const fh = await fs.promises.open(file, flags)
  const fst = await fh.stat()
  if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) {
    await fh.close()
    return null // replaced between the two looks
  }
  return { fh, size: fst.size }
}

/**
 * The admin route. See docs/admin.md for the routes, the status codes and
 * the security model.
 */
function adminHandler (options) {
  const o = normalizeAdminOptions(options)
  const state = { inFlight: null, lastDoneAt: 0, captures: [] }
  const guardNow = () => require('./guard').currentGuard()

  /** The snapshot directory: the option, else the capture option, the guard's, the default. */
  function dirNow () {
    const g = guardNow()
    const guardDir = g && g._opts && g._opts.capture ? g._opts.capture.dir : undefined
    return path.resolve(o.dir ?? o.capture.dir ?? guardDir ?? captureLib.DEFAULTS.dir)
  }

  function statusNow () {
    const g = guardNow()
    if (g) return { watching: true, ...g.status() }
    return { watching: false, heap: null, native: null, pressure: null, latest: sampleNow(), listeners: null, captures: state.captures.slice(), captureCounts: captureCounts() }
  }

  function capture (req, res, query) {
    if (state.inFlight) {
      return sendError(res, 409, codes.CAPTURE_IN_PROGRESS, 'leakguard: a capture is already running; try again when it has finished')
    }
    const wait = state.lastDoneAt + o.cooldownMs - Date.now()
    if (wait > 0) {
      const s = Math.ceil(wait / 1000)
      return sendError(res, 429, codes.CAPTURE_COOLDOWN, `leakguard: the last capture finished less than ${o.cooldownMs} ms ago (cooldownMs); try again in ${s} s`, { 'Retry-After': String(s) })
    }
    const reason = query.get('reason')
    if (reason !== null && (reason.length > 200 || /[\x00-\x1f\x7f]/.test(reason))) {
      return sendError(res, 400, codes.OPTIONS_INVALID, 'leakguard: the reason query parameter must be at most 200 printable characters')
    }
    const opts = { ...o.capture, dir: dirNow(), reason: reason ? `admin route: ${reason}` : 'admin route' }
    let p
    try {
      const g = guardNow()
      p = g ? g.capture(opts) : counted(captureLib.runCapture(captureLib.mergeCaptureOptions(opts)))
    } catch (err) {
      p = Promise.reject(err)
    }
    const flight = p.then((r) => {
      state.lastDoneAt = Date.now()
      state.captures.push(r)
      if (state.captures.length > KEEP_CAPTURES) state.captures.shift()
      sendJson(res, 200, r)
    }, (err) => {
      const code = err && typeof err.code === 'string' && err.code.startsWith('ERR_LEAKGUARD_') ? err.code : codes.ADMIN_INTERNAL
      sendError(res, captureErrorStatus(code), code, err && err.message ? String(err.message) : 'leakguard: the capture failed')
    }).finally(() => { if (state.inFlight === flight) state.inFlight = null })
    state.inFlight = flight
  }

  // POST …/diff (lib/admin-diff.js): two listed snapshots, diffed in a child process.
  const diffRoute = require('./admin-diff').makeDiffRoute({
    dirNow,
    listSnapshots,
    sendJson,
    sendError,
    namePattern: SNAPSHOT_NAME,
    memoryBudget: () => {
      const g = guardNow()
      return (g && g._opts && g._opts.capture && g._opts.capture.memoryBudget) ?? o.capture.memoryBudget
    }
  })

  async function download (req, res, name) {
    if (!o.allowDownload) {
      return sendError(res, 403, codes.ADMIN_DOWNLOAD_DISABLED, 'leakguard: downloads are off; make the handler with allowDownload: true to serve snapshot files')
    }
    const notFound = () => sendError(res, 404, codes.ADMIN_NOT_FOUND, 'leakguard: no snapshot by that name (names are exactly heap-<yyyymmddThhmmssZ>-<pid>-<seq>.heapsnapshot[.gz], as listed by /snapshots)')
    if (!DOWNLOAD_NAME.test(name)) return notFound()
    const file = name.endsWith('.gz') ? name : `${name}.gz`
    let opened
    try {
      opened = await openSnapshot(path.join(dirNow(), file))
    } catch (err) {
      if (err.code === 'ENOENT' || err.code === 'ELOOP' || err.code === 'ENOTDIR') return notFound()
      throw err
    }
    if (!opened) return notFound()
    const gzip = acceptsGzip(req.headers['accept-encoding'])
    const headers = {
      ...SECURITY_HEADERS,
      'Content-Type': 'application/octet-stream',
      'Content-Disposition': `attachment; filename="${file.replace(/\.gz$/, '')}"`,
      Vary: 'Accept-Encoding'
    }
    // With gzip the file goes out as it is; without, zlib inflates it (on the libuv pool).
    if (gzip) Object.assign(headers, { 'Content-Encoding': 'gzip', 'Content-Length': opened.size })
    res.writeHead(200, headers)
    if (req.method === 'HEAD') {
      await opened.fh.close()
      return res.end()
    }
    const src = opened.fh.createReadStream({ autoClose: true })
    const done = (err) => { if (err && !res.destroyed) res.destroy(err) }
    if (gzip) pipeline(src, res, done)
    else pipeline(src, zlib.createGunzip(), res, done)
  }

  /** The guard's report as JSON; 503 without a running guard. */
  async function reportRoute (req, res) {
    const g = guardNow()
    if (!g) return sendError(res, 503, codes.ALLOCATIONS_UNAVAILABLE, 'leakguard: no guard runs in this process: call leakguard.watch() for a report')
    return sendJson(res, 200, await g.report())
  }

  /** The allocation profile as a download named by pid and time. */
  async function allocationsRoute (req, res, query) {
    const g = guardNow()
    const format = query.get('format') || 'heapprofile'
    if (format !== 'heapprofile' && format !== 'pprof') {
      return sendError(res, 400, codes.OPTIONS_INVALID, "leakguard: format must be 'heapprofile' or 'pprof'")
    }
    if (!g) return sendError(res, 503, codes.ALLOCATIONS_UNAVAILABLE, 'leakguard: no guard runs in this process: call leakguard.watch({ allocations: true })')
    let body
    try {
      body = await g.allocationProfile({ format })
    } catch (err) {
      if (err && err.code === codes.ALLOCATIONS_UNAVAILABLE) return sendError(res, 503, err.code, err.message)
      throw err
    }
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
    const name = `allocations-${stamp}-${process.pid}.${format === 'pprof' ? 'pb.gz' : 'heapprofile'}`
    const type = format === 'pprof' ? 'application/octet-stream' : 'application/json; charset=utf-8'
    return send(res, 200, type, req.method === 'HEAD' ? '' : body, { 'Content-Disposition': `attachment; filename="${name}"`, ...(req.method === 'HEAD' ? { 'Content-Length': body.length } : {}) })
  }

  async function dispatch (req, res, m) {
    switch (m.route) {
      case '/capture': return capture(req, res, m.query)
      case '/status': return sendJson(res, 200, statusNow())
      case '/metrics': {
        const g = guardNow()
        const text = g ? g.metrics() : metricsLib.render(statusNow(), captureCounts())
        return send(res, 200, metricsLib.CONTENT_TYPE, text)
      }
      case '/snapshots': {
        const dir = dirNow()
        return sendJson(res, 200, { dir, allowDownload: o.allowDownload, snapshots: await listSnapshots(dir) })
      }
      case '/snapshots/:name': return download(req, res, m.name)
      case '/diff': return diffRoute(req, res, m.query)
      case '/report': return reportRoute(req, res)
      case '/allocations': return allocationsRoute(req, res, m.query)
    }
  }

  function handler (req, res, next) {
    const m = match(req.url, o.prefix)
    if (!m) {
      if (typeof next === 'function') return next()
      return sendError(res, 404, codes.ADMIN_NOT_FOUND, 'leakguard: no such admin route (capture, status, metrics, snapshots, report, allocations, diff)')
    }
    const denied = authorize(req, o)
    if (denied) return sendError(res, denied.status, codes[denied.key], denied.message, denied.headers)
    const methods = ROUTES[m.route] || ['GET', 'HEAD']
    if (!methods.includes(req.method)) {
      return sendError(res, 405, codes.ADMIN_METHOD_NOT_ALLOWED, `leakguard: ${m.route} answers ${methods.join(', ')}`, { Allow: methods.join(', ') })
    }
    dispatch(req, res, m).catch((err) => {
      if (res.headersSent) return res.destroy()
      sendError(res, 500, codes.ADMIN_INTERNAL, `leakguard: the admin route failed: ${err && err.code ? err.code : 'error'}`)
    })
  }
  return handler
}

/**
 * Koa: `app.use(leakguard.adminHandler.koa({ token, prefix: '/debug/leakguard' }))`.
 * Koa passes no mount-stripped URL, so give the prefix. Unknown paths go on to `next`.
 */
function koa (options) {
  const h = adminHandler(options)
  return function leakguardAdmin (ctx, next) {
    let passed = false
    h(ctx.req, ctx.res, () => { passed = true })
    if (passed) return next()
    ctx.respond = false // the handler answers on ctx.res itself
    return new Promise((resolve) => {
      if (ctx.res.writableFinished || ctx.res.destroyed) return resolve()
      ctx.res.once('finish', resolve)
      ctx.res.once('close', resolve)
    })
  }
}

/**
 * Fastify plugin: `fastify.register(leakguard.adminHandler.fastify, { token, prefix: '/debug/leakguard' })`.
 * Fastify's own `prefix` registration option places the routes; the handler answers on the
 * raw request and response (reply.hijack()).
 */
function fastify (instance, options, done) {
  let h
  try {
    // Fastify's own registration options are not ours; the rest are checked as usual.
    const { prefix, logLevel, logSerializers, ...own } = options || {}
    h = adminHandler({ ...own, prefix: instance.prefix || '' })
  } catch (err) {
    return done(err)
  }
  const route = (request, reply) => {
    reply.hijack()
    h(request.raw, reply.raw)
  }
  // The routes take no body: within this plugin Fastify parses none (an empty JSON body
  // would otherwise be Fastify's 400 before the route answers).
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', (request, payload, next) => next(null))
  for (const url of ['/capture', '/status', '/metrics', '/snapshots', '/snapshots/*', '/report', '/allocations', '/diff']) {
    instance.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'], url, handler: route, exposeHeadRoute: false })
  }
  done()
}

module.exports = { adminHandler, koa, fastify, isLoopback, authorize, normalizeAdminOptions, acceptsGzip, match, listSnapshots, SNAPSHOT_NAME, DOWNLOAD_NAME, DEFAULT_COOLDOWN_MS }
