'use strict'
// Makes the analysis benchmark's input: one process builds a heap of small records, takes
// a leakguard capture ("before"), leaks 5 % more records into the same store, takes a
// second capture ("after"), and prints what it did as one JSON line on stdout.
//
//   node --expose-gc benchmark/analysis-heap.js '{"sizeMB":100,"dir":"…"}'
//
// Spawned by benchmark/analysis.js (which caches the files under benchmark/.data); never
// timed. Both captures come from one process and are inline, so node ids are comparable
// and leakguard's diff can match objects by id, as it would for a server's two captures.

const v8 = require('node:v8')
const leakguard = require('..')

const MiB = 1024 * 1024
const cfg = JSON.parse(process.argv[2])

/** The leaking class: what the diff must name. Four fields, one unique short string. */
class UserRecord {
  constructor (i) {
    this.id = i
    this.name = `user-${i}`
    this.score = (i % 1000) / 7
    this.next = null
  }
}

/** A module-level store, as a server keeps one: chunks of records in plain arrays. */
const store = { sessions: [] }
let count = 0

function addRecords (n) {
  let chunk = store.sessions[store.sessions.length - 1]
  for (let k = 0; k < n; k++, count++) {
    if (!chunk || chunk.length >= 50000) {
      chunk = []
      store.sessions.push(chunk)
    }
    const r = new UserRecord(count)
    r.next = chunk.length > 0 ? chunk[chunk.length - 1] : null
    chunk.push(r)
  }
}

function heapUsed () {
  global.gc()
  return process.memoryUsage().heapUsed
}

async function main () {
  const target = cfg.sizeMB * MiB
  // Grow in steps until heapUsed reaches the target (garbage collected first).
  while (heapUsed() < target) addRecords(Math.max(10000, Math.round((target - heapUsed()) / 120)))
  const before = { records: count, heapUsed: heapUsed() }
  const opts = { dir: cfg.dir, mode: 'inline', level: 1, maxSnapshots: 1000, force: true, reason: 'analysis benchmark: before' }
  const a = await leakguard.capture(opts)
  const leaked = Math.round(count * 0.05)
  addRecords(leaked)
  const after = { records: count, heapUsed: heapUsed() }
  const b = await leakguard.capture({ ...opts, reason: 'analysis benchmark: after' })
  process.stdout.write(JSON.stringify({
    sizeMB: cfg.sizeMB,
    node: process.version,
    heapSizeLimit: v8.getHeapStatistics().heap_size_limit,
    leakedRecords: leaked,
    before: { ...before, path: a.path, bytes: a.bytes, rawBytes: a.rawBytes },
    after: { ...after, path: b.path, bytes: b.bytes, rawBytes: b.rawBytes }
  }) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
