'use strict'
// The private directory a leak test keeps its snapshots in: 0700, under os.tmpdir() or
// the `dir` option, removed when the test passes and kept (with its path in the error)
// when it fails. Heap snapshots hold every string of the process.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

function makeWorkDir (parent) {
  const base = parent ? path.resolve(parent) : os.tmpdir()
  fs.mkdirSync(base, { recursive: true, mode: 0o700 })
  const dir = fs.mkdtempSync(path.join(base, 'leakguard-test-'))
  fs.chmodSync(dir, 0o700)
  return dir
}

function removeWorkDir (dir) {
  fs.rmSync(dir, { recursive: true, force: true })
}

/** Every snapshot file in `dir` (the manifests beside them are not listed). */
function snapshotsIn (dir) {
  let names = []
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  // In the order they were taken: by the sequence number that ends each name (not
  // padded in capture names, so not by string order).
  const seq = (n) => Number((/(\d+)\.heapsnapshot(\.gz)?$/.exec(n) || [0, 0])[1])
  return names.filter((n) => /\.heapsnapshot(\.gz)?$/.test(n)).sort((a, b) => seq(a) - seq(b) || (a < b ? -1 : 1)).map((n) => path.join(dir, n))
}

module.exports = { makeWorkDir, removeWorkDir, snapshotsIn }
