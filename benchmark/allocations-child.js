'use strict'
// Child of benchmark/allocations.js.
//   serve <off|samplingInterval|inspector:samplingInterval>: an Express service (a bounded
//     per-request cache, JSON answers) with watch() at its default interval and allocations
//     off, on through the native sampler, or on through the inspector; IPC
//     'memory' answers with rss, heapUsed and the allocations status.
//   read <MiB> <native|inspector>: fill the heap to ~MiB of live objects, then time 7
//     profile reads (the guard's real read()), a plain full GC of the same heap
//     (--expose-gc) and, for the inspector, its call alone; prints one JSON line.

const { performance } = require('node:perf_hooks')
const leakguard = require('..')

const [mode, arg] = process.argv.slice(2)

if (mode === 'serve') {
  const express = require('express')
  const inspectorSource = String(arg).startsWith('inspector:')
  const allocations = arg === 'off' ? false : { source: inspectorSource ? 'inspector' : 'native', samplingInterval: Number(inspectorSource ? arg.slice(10) : arg) }
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
} else if (mode === 'read') (async () => {
  const target = Number(arg) * 1048576
  const keep = []
  class Session { constructor (i) { this.id = `s${i}`; this.at = i; this.data = { user: i, roles: ['r'] } } }
  function fillRecords (k) { for (let i = 0; i < k; i++) keep.push(new Session(i)) }
  function fillStrings (k) { for (let i = 0; i < k; i++) keep.push('p'.repeat(200) + i) }
  const source = process.argv[4] || 'native'
  const guard = leakguard.watch({ allocations: { source, maxReadMs: 3600e3, maxDuty: 1 }, autoCapture: false })
  if (guard.status().allocations.source !== source) throw new Error(`asked for ${source}: ${JSON.stringify(guard.status().allocations)}`)
  while (process.memoryUsage().heapUsed < target) { fillRecords(50000); fillStrings(10000) }
  const rows = []
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  for (let k = 0; k < 7; k++) {
    // The read first, 300 ms after the last GC (as an automatic read lands at a random point,
    // not on the heels of a forced GC, when V8 may still be sweeping), then the GC's time.
    await sleep(300)
    const t0 = performance.now(); guard.allocations.read(); const readMs = performance.now() - t0
    global.gc()
    const g0 = performance.now(); global.gc(); const gcMs = performance.now() - g0
    let postMs = null
    let jsonBytes = null
    if (source === 'inspector') {
      // The parts: the inspector call alone (its forced GC included) and the JSON it answers.
      const s = guard.allocations.session
      const p0 = performance.now()
      let res
      s.post('HeapProfiler.getSamplingProfile', (e, r) => { res = r })
      postMs = performance.now() - p0
      jsonBytes = JSON.stringify(res).length
    }
    rows.push({ readMs, gcMs, postMs, jsonBytes })
  }
  const st = guard.status().allocations
  const mu = process.memoryUsage()
  console.log(JSON.stringify({ source: st.source, heapUsed: mu.heapUsed, rows, samples: st.samples, sites: st.sites, historyBytes: st.historyBytes, liveBytes: st.liveBytes }))
  guard.stop()
})().catch((err) => { console.error(err); process.exitCode = 1 })
