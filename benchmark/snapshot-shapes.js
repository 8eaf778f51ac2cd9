'use strict'
// Extra peak RSS of a leakguard inline capture for one container layout of the same
// `{ a, b }` objects: how a snapshot's memory depends on the largest container, which
// heapUsed cannot show. One JSON line per run; ad-hoc companion to capture.js's shapes.
//
//   node --expose-gc benchmark/snapshot-shapes.js <push|prealloc|map|chunk<N>> [sizeMB=50]

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

function status () {
  const t = fs.readFileSync('/proc/self/status', 'utf8')
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)[1]) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

const mode = process.argv[2] || 'prealloc'
const sizeMB = Number(process.argv[3] || 50)
const n = Math.round(sizeMB * 1024 * 1024 / 48)
let keep
if (mode === 'push') {
  keep = []
  for (let i = 0; i < n; i++) keep.push({ a: i, b: null })
} else if (mode === 'prealloc') {
  keep = new Array(n)
  for (let i = 0; i < n; i++) keep[i] = { a: i, b: null }
} else if (mode === 'map') {
  keep = new Map()
  for (let i = 0; i < n; i++) keep.set(i, { a: i, b: null })
} else if (/^chunk\d+$/.test(mode)) {
  const c = Number(mode.slice(5))
  keep = []
  for (let i = 0; i < n;) {
    const chunk = new Array(Math.min(c, n - i))
    for (let k = 0; k < chunk.length; k++, i++) chunk[k] = { a: i, b: null }
    keep.push(chunk)
  }
} else {
  throw new Error(`unknown layout ${mode}`)
}
global.gc()
global.gc()
fs.writeFileSync('/proc/self/clear_refs', '5') // VmHWM := VmRSS, so it shows the capture's peak
const before = status()
const heapUsed = process.memoryUsage().heapUsed
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-shapes-'))
require('..').capture({ dir, mode: 'inline', force: true }).then((r) => {
  const after = status()
  fs.rmSync(dir, { recursive: true, force: true })
  console.log(JSON.stringify({
    layout: mode,
    objects: n,
    heapUsedMiB: +(heapUsed / 2 ** 20).toFixed(1),
    growthPerHeapUsed: +((after.hwm - before.rss) / heapUsed).toFixed(2),
    stallMs: Math.round(r.stallMs),
    rawPerHeapUsed: +(r.rawBytes / heapUsed).toFixed(2),
    keep: (keep.length ?? keep.size) > 0 // keeps the objects alive until here
  }))
})
