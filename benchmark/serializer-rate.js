'use strict'
// How fast V8's serializer produces snapshot JSON: the rate a gzip level must sustain to
// keep pace. Builds a heap of many small objects (the benchmark's), writes the snapshot
// into a FIFO that a separate reader process drains at once, and reports when the first
// and the last byte arrived: before the first byte V8 builds the snapshot graph (nothing
// to compress yet); from the first to the last it serializes.
//
//   node --expose-gc benchmark/serializer-rate.js [sizeMB=100]

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const v8 = require('node:v8')
const { spawn, execFileSync } = require('node:child_process')
const { performance } = require('node:perf_hooks')

const sizeMB = Number(process.argv[2] || 100)
const retained = []

/** The heap of capture-child.js: 62 B of heapUsed per object, built by count. */
function build (targetBytes) {
  const tags = Array.from({ length: 64 }, (_, i) => `tag-${i}`)
  const total = Math.round(targetBytes / 62)
  let i = 0
  while (i < total) {
    const chunk = new Array(Math.min(50000, total - i))
    let prev = null
    for (let k = 0; k < chunk.length; k++, i++) prev = chunk[k] = { id: i, name: (i & 3) === 0 ? `u${i}` : tags[i & 63], next: prev }
    retained.push(chunk)
  }
}

const READER = `
  const fs = require('fs'); const { performance } = require('perf_hooks')
  const now = () => performance.timeOrigin + performance.now()
  const fd = fs.openSync(process.argv[1], 'r'); const buf = Buffer.allocUnsafe(1 << 20)
  let first = null, n = 0, r
  while ((r = fs.readSync(fd, buf, 0, buf.length, null)) > 0) { if (first === null) first = now(); n += r }
  process.stdout.write(JSON.stringify({ first, last: now(), bytes: n }))`

async function main () {
  build(sizeMB * 1024 * 1024)
  global.gc()
  global.gc()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-serializer-'))
  const fifo = path.join(dir, 'snap.fifo')
  execFileSync('mkfifo', [fifo])
  const reader = spawn(process.execPath, ['-e', READER, fifo], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  reader.stdout.on('data', (d) => { out += d })
  const exited = new Promise((resolve) => reader.on('exit', resolve))
  await new Promise((resolve) => setTimeout(resolve, 300))
  const heapUsed = process.memoryUsage().heapUsed
  const t0 = performance.timeOrigin + performance.now()
  v8.writeHeapSnapshot(fifo)
  const t1 = performance.timeOrigin + performance.now()
  await exited
  fs.rmSync(dir, { recursive: true, force: true })
  const r = JSON.parse(out)
  const serializeMs = r.last - r.first
  console.log(JSON.stringify({
    sizeMB,
    heapUsed,
    rawBytes: r.bytes,
    callMs: Math.round(t1 - t0),
    takeMs: Math.round(r.first - t0),
    serializeMs: Math.round(serializeMs),
    serializeMiBps: Math.round(r.bytes / 1048576 / (serializeMs / 1000)),
    loadAvg: os.loadavg()[0]
  }))
}

main()
