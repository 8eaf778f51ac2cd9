'use strict'
// Child of benchmark/allocations.js.
//   serve <off|samplingInterval>: an Express service (a bounded per-request cache, JSON
//     answers) with watch() at its default interval and allocations off or on; IPC
//     'memory' answers with rss, heapUsed and the allocations status.
//   read <MiB>: fill the heap to ~MiB of live objects, then time one profile read (the
//     guard's real read()), a plain full GC of the same heap (--expose-gc), and the
//     parts of the read; prints one JSON line.

const { performance } = require('node:perf_hooks')
const leakguard = require('..')

const [mode, arg] = process.argv.slice(2)

if (mode === 'serve') {
  const express = require('express')
  const allocations = arg === 'off' ? false : { samplingInterval: Number(arg) }
  const guard = leakguard.watch({ allocations, autoCapture: false })
  const app = express()
  const cache = new Map()
  let n = 0
  app.get('/item/:id', (req, res) => {
    const id = req.params.id
    cache.set(n++ % 2000, { id, at: Date.now(), tags: ['a', 'b', id], body: `item ${id} `.repeat(8) })
    res.json({ id, size: cache.size, ok: true })
  })
  process.on('message', (m) => {
    if (m.type === 'cpu') {
      const c = process.cpuUsage()
      process.send({ type: 'cpu', us: c.user + c.system, served: n })
    }
    if (m.type === 'memory') {
      if (guard.allocations) guard.allocations.read() // the history holds at least one read
      const mu = process.memoryUsage()
      process.send({ type: 'memory', rss: mu.rss, heapUsed: mu.heapUsed, allocations: guard.status().allocations })
    }
  })
  const server = app.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }))
  process.on('disconnect', () => { guard.stop(); server.close() })
} else if (mode === 'read') {
  const target = Number(arg) * 1048576
  const keep = []
  class Session { constructor (i) { this.id = `s${i}`; this.at = i; this.data = { user: i, roles: ['r'] } } }
  function fillRecords (k) { for (let i = 0; i < k; i++) keep.push(new Session(i)) }
  function fillStrings (k) { for (let i = 0; i < k; i++) keep.push('p'.repeat(200) + i) }
  const guard = leakguard.watch({ allocations: { maxReadMs: 3600e3, maxDuty: 1 }, autoCapture: false })
  while (process.memoryUsage().heapUsed < target) { fillRecords(50000); fillStrings(10000) }
  const rows = []
  for (let k = 0; k < 3; k++) {
    global.gc()
    const g0 = performance.now(); global.gc(); const gcMs = performance.now() - g0
    const t0 = performance.now(); guard.allocations.read(); const readMs = performance.now() - t0
    // The parts: the inspector call alone (its forced GC included) and the JSON it answers.
    const s = guard.allocations.session
    const p0 = performance.now()
    let res
    s.post('HeapProfiler.getSamplingProfile', (e, r) => { res = r })
    const postMs = performance.now() - p0
    rows.push({ readMs, gcMs, postMs, jsonBytes: JSON.stringify(res).length })
  }
  const st = guard.status().allocations
  const mu = process.memoryUsage()
  console.log(JSON.stringify({ heapUsed: mu.heapUsed, rows, samples: st.samples, sites: st.sites, historyBytes: st.historyBytes, liveBytes: st.liveBytes }))
  guard.stop()
}
