'use strict'
// A real S3 server on loopback for the upload tests: moto's S3 with IAM authentication
// (scripts/s3-server.py), installed by scripts/setup-s3.sh; and a TCP proxy that can kill
// that server once a number of request bytes have passed through it (a server that stops
// mid-upload).

const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const readline = require('node:readline')
const { spawn, execFileSync } = require('node:child_process')
const { once } = require('node:events')

const ROOT = path.join(__dirname, '..', '..')
const VENV = process.env.LEAKGUARD_S3_VENV || path.join(ROOT, 'node_modules', '.cache', 'leakguard-s3')

/** Install (idempotent) and report: null when ready, else the reason it is not. */
function ensureS3 () {
  execFileSync('sh', [path.join(ROOT, 'scripts', 'setup-s3.sh')], { stdio: ['ignore', 'inherit', 'inherit'] })
  try {
    return fs.readFileSync(`${VENV}.unavailable`, 'utf8').trim() || 'unknown reason'
  } catch {
    return null
  }
}

/** Start one server (`auth: false`: no authentication); resolves to { info, cmd(obj) → Promise<answer>, kill(), stop() }. */
async function startS3 ({ auth = true } = {}) {
  const child = spawn(path.join(VENV, 'bin', 'python'), [path.join(ROOT, 'scripts', 's3-server.py'), ...(auth ? [] : ['--no-auth'])], { stdio: ['pipe', 'pipe', 'ignore'] })
  const lines = readline.createInterface({ input: child.stdout })
  const waiting = new Map()
  let seq = 0
  let first
  const ready = new Promise((resolve, reject) => {
    first = resolve
    child.once('exit', (code) => reject(new Error(`the S3 server exited (${code}) before it was ready`)))
  })
  lines.on('line', (line) => {
    const msg = JSON.parse(line)
    if (first) { const f = first; first = null; return f(msg) }
    const w = waiting.get(msg.id)
    if (w) { waiting.delete(msg.id); w(msg) }
  })
  const info = await ready
  const cmd = (c) => new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return reject(new Error('the S3 server is not running'))
    const id = ++seq
    waiting.set(id, resolve)
    child.stdin.write(JSON.stringify({ ...c, id }) + '\n')
  })
  const kill = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const gone = once(child, 'exit')
    child.stdin.end()
    kill()
    await gone
  }
  return { info, cmd, kill, stop, child }
}

/**
 * A loopback TCP proxy to `port`. Once `cutAfter` bytes from clients have passed,
 * `onCut()` runs (e.g. kill the server) and the proxy destroys every connection and stops
 * listening, so later connects are refused.
 */
async function startProxy (port, { cutAfter = Infinity, onCut = () => {} } = {}) {
  let seen = 0
  let cut = false
  const sockets = new Set()
  const server = net.createServer((client) => {
    if (cut) return client.destroy()
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client); sockets.add(upstream)
    const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('error', drop); upstream.on('error', drop); client.on('close', drop); upstream.on('close', drop)
    upstream.pipe(client)
    client.on('data', (chunk) => {
      seen += chunk.length
      if (!cut && seen >= cutAfter) {
        cut = true
        onCut()
        server.close()
        for (const s of sockets) s.destroy()
        return
      }
      upstream.write(chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: server.address().port,
    bytes: () => seen,
    wasCut: () => cut,
    close: () => { server.close(); for (const s of sockets) s.destroy() }
  }
}

module.exports = { ensureS3, startS3, startProxy }
