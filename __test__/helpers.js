'use strict'
// Shared helpers for the node:test suites (not a test file itself).

const fs = require('node:fs')
const http = require('node:http')
const { once } = require('node:events')
const { spawn } = require('node:child_process')
const path = require('node:path')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * `file:line:column` of `call` (e.g. "db.on(") on the line of `file` that holds `marker`,
 * with V8's column convention: a method call is located at the property name.
 */
function siteOf (file, marker, call) {
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  const i = lines.findIndex((l) => l.includes(marker) && l.includes(call))
  if (i < 0) throw new Error(`marker ${marker} not found in ${file}`)
  const dot = call.lastIndexOf('.')
  const col = lines[i].indexOf(call) + (dot >= 0 ? dot + 1 : 0) + 1
  return `${file}:${i + 1}:${col}`
}

/** Start `handler` on an ephemeral loopback port; resolves to { server, url }. */
async function serve (handler) {
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, url: `http://127.0.0.1:${server.address().port}/` }
}

/** One GET; resolves to the body. */
function get (url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

/**
 * Send requests one after another, `gapMs` apart, until `done()` is true or `max` were
 * sent. Returns the number sent.
 */
async function drive (url, { max, gapMs, done = () => false }) {
  let n = 0
  while (n < max && !done()) {
    await get(url)
    n++
    await sleep(gapMs)
  }
  return n
}

/** Run a fixture with this node; resolves to { code, signal, stdout, stderr }. Killed after `timeoutMs`. */
function runFixture (name, { args = [], nodeArgs = [], timeoutMs = 30000, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, path.join(__dirname, 'fixtures', name), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c) => { stdout += c })
    child.stderr.on('data', (c) => { stderr += c })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

module.exports = { sleep, siteOf, serve, get, drive, runFixture }
