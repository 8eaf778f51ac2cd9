'use strict'
// Helpers for the CLI, analysis-child and admin diff tests: real captures made in a child
// process (fixtures/analysis-pair.js), the CLI run as a real child, and an independent
// reading of a snapshot (gunzip + JSON.parse) to check the numbers against.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const { spawn } = require('node:child_process')

const { runFixture } = require('../helpers')

const BIN = path.join(__dirname, '..', '..', 'bin', 'leakguard.js')

function tmpDir (prefix = 'leakguard-analysis-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.chmodSync(d, 0o700)
  return d
}

/** Two captures with the planted leak between them; `{ before, after, leakBefore, leakAdded, mode }`. */
async function capturePair (dir, { mode = 'inline', bulk = 0 } = {}) {
  const r = await runFixture('analysis-pair.js', { args: [JSON.stringify({ dir, mode, bulk })], timeoutMs: 120000 })
  if (r.code !== 0) throw new Error(`analysis-pair.js failed (${r.code} ${r.signal}): ${r.stderr.slice(-2000)}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

/** Run `node bin/leakguard.js …`; resolves `{ code, signal, stdout, stderr, json }`. */
function runCli (args, { timeoutMs = 120000, nodeArgs = [], env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      let json = null
      try { json = JSON.parse(stdout) } catch {}
      resolve({ code, signal, stdout, stderr, json })
    })
  })
}

/**
 * An independent reading of a snapshot: node count, the sum of self sizes, and per
 * object name the count and self sizes — straight from the JSON, through `meta`.
 */
function readSnapshot (file) {
  const raw = fs.readFileSync(file)
  const text = (raw[0] === 0x1f && raw[1] === 0x8b ? zlib.gunzipSync(raw) : raw).toString('utf8')
  const snap = JSON.parse(text)
  const meta = snap.snapshot.meta
  const f = meta.node_fields
  const nf = f.length
  const types = meta.node_types[0]
  const iType = f.indexOf('type')
  const iName = f.indexOf('name')
  const iSize = f.indexOf('self_size')
  const byName = new Map()
  let totalBytes = 0
  for (let i = 0; i < snap.nodes.length; i += nf) {
    const size = snap.nodes[i + iSize]
    totalBytes += size
    if (types[snap.nodes[i + iType]] !== 'object') continue
    const name = snap.strings[snap.nodes[i + iName]]
    const c = byName.get(name) || { count: 0, selfSize: 0 }
    c.count++
    c.selfSize += size
    byName.set(name, c)
  }
  return { nodes: snap.nodes.length / nf, edges: snap.edges.length / meta.edge_fields.length, totalBytes, byName }
}

module.exports = { BIN, tmpDir, capturePair, runCli, readSnapshot }
