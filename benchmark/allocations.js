'use strict'
// What allocation sampling costs an Express service, and what one profile read costs the
// JS thread.
//
//   node benchmark/allocations.js [--rounds 40] [--seconds 0.5] [--clients 4] [--big 1024]
//
// - Throughput and latency: one child per variant (sampling off; the native sampler at
//   512 KiB, the default, at 128 KiB and at 32 KiB, V8's inspector default; the inspector
//   at 512 KiB, the fallback where native cannot run), all started once, loaded one at a time with the same bounded
//   keep-alive loopback load (`clients` concurrent, `seconds` per slice), variants in a
//   new shuffled order each round. Short slices, many rounds: on a shared machine other
//   load changes on a scale of seconds, and adjacent slices see about the same of it. Each slice gives requests/s and p99 latency; the table
//   shows each variant's median over rounds of its ratio to the 'off' slice of that round.
//   The guard runs at its default 10 s interval (a native read every 10 s, an inspector
//   read every minute, so a slice measures mostly the sampling itself; reads are below).
// - Reads: a child per source fills ~100 MiB and ~`big` MiB of live heap and times the
//   guard's read() (7 times: median and max), a plain full GC of the same heap and, for
//   the inspector, its call alone.
// - Memory: RSS of each serving child after the load, the site history's bytes.
// Writes benchmark/results/allocations.json and prints the docs' table.

const { fork, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const { performance } = require('node:perf_hooks')

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : def }
const ROUNDS = arg('rounds', 40)
const SECONDS = arg('seconds', 0.5)
const CLIENTS = arg('clients', 4)
const BIG = arg('big', 1024)
const READS = arg('reads', 1)
const VARIANTS = ['off', '524288', '131072', '32768', 'inspector:524288']
const DEFAULT = '524288'
const label = (v) => v === 'off' ? 'off' : v.startsWith('inspector:') ? `inspector, every ${Number(v.slice(10)) / 1024} KiB` : `native, every ${Number(v) / 1024} KiB${v === DEFAULT ? ' (default)' : ''}`
const child = path.join(__dirname, 'allocations-child.js')
const iqr = (xs) => { const s = [...xs].sort((a, b) => a - b); return [s[Math.floor(s.length / 4)], s[Math.floor((s.length * 3) / 4)]] }
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }

function start (variant) {
  return new Promise((resolve, reject) => {
    const c = fork(child, ['serve', variant], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    c.once('message', (m) => resolve({ c, port: m.port, variant }))
    c.once('exit', (code) => reject(new Error(`${variant} exited ${code}`)))
  })
}

async function slice (k) {
  const port = k.port
  const c0 = await ask(k, 'cpu')
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS })
  const lat = []
  const end = performance.now() + SECONDS * 1000
  let n = 0
  const one = () => new Promise((resolve) => {
    const t0 = performance.now()
    http.get({ host: '127.0.0.1', port, path: `/item/${n++}`, agent }, (res) => {
      res.resume()
      res.on('end', () => { lat.push(performance.now() - t0); resolve() })
    }).on('error', resolve)
  })
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CLIENTS }, async () => { while (performance.now() < end) await one() }))
  const s = (performance.now() - t0) / 1000
  agent.destroy()
  const c1 = await ask(k, 'cpu')
  lat.sort((a, b) => a - b)
  // Server CPU per request: less sensitive to other load on a shared machine than wall rates.
  return { rps: lat.length / s, p99: lat[Math.floor(lat.length * 0.99)], cpuUsPerRequest: (c1.us - c0.us) / Math.max(1, c1.served - c0.served) }
}

const ask = (k, type) => new Promise((resolve) => { k.c.once('message', resolve); k.c.send({ type }) })

async function main () {
  const kids = {}
  for (const v of VARIANTS) kids[v] = await start(v)
  // Warm-up: one slice each (JIT, caches), not counted.
  for (let i = 0; i < 4; i++) for (const v of VARIANTS) await slice(kids[v])
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const order = [...VARIANTS].sort(() => Math.random() - 0.5)
    const row = {}
    for (const v of order) row[v] = await slice(kids[v])
    rounds.push(row)
    if ((r + 1) % 10 === 0) process.stderr.write(`round ${r + 1}: ${VARIANTS.map((v) => `${v} ${Math.round(row[v].rps)}/s p99 ${row[v].p99.toFixed(2)}ms`).join(', ')}\n`)
  }
  const memory = {}
  for (const v of VARIANTS) memory[v] = await ask(kids[v], 'memory')
  for (const v of VARIANTS) kids[v].c.disconnect()
  const load = {}
  for (const v of VARIANTS) {
    load[v] = {
      rps: med(rounds.map((x) => x[v].rps)),
      p99: med(rounds.map((x) => x[v].p99)),
      rpsRatio: med(rounds.map((x) => x[v].rps / x.off.rps)),
      p99Ratio: med(rounds.map((x) => x[v].p99 / x.off.p99)),
      // Spread of the ratio: its interquartile range over rounds.
      rpsRatioIqr: iqr(rounds.map((x) => x[v].rps / x.off.rps)),
      cpuUsPerRequest: med(rounds.map((x) => x[v].cpuUsPerRequest)),
      cpuRatio: med(rounds.map((x) => x[v].cpuUsPerRequest / x.off.cpuUsPerRequest)),
      cpuRatioIqr: iqr(rounds.map((x) => x[v].cpuUsPerRequest / x.off.cpuUsPerRequest)),
      rss: memory[v].rss,
      historyBytes: memory[v].allocations.historyBytes || 0
    }
  }
  const reads = {}
  for (const mib of READS ? [100, BIG] : []) {
    for (const source of ['native', 'inspector']) {
      const key = `${source} ${mib}`
      const r = spawnSync(process.execPath, ['--expose-gc', `--max-old-space-size=${Math.max(512, mib * 3)}`, child, 'read', String(mib), source], { encoding: 'utf8', timeout: 900000 })
      if (r.status !== 0) { reads[key] = { source, error: r.stderr.slice(-500) }; continue }
      const o = JSON.parse(r.stdout.trim().split('\n').pop())
      const post = o.rows.filter((x) => x.postMs != null)
      reads[key] = { source: o.source, heapUsed: o.heapUsed, readMs: med(o.rows.map((x) => x.readMs)), readMaxMs: Math.max(...o.rows.map((x) => x.readMs)), gcMs: med(o.rows.map((x) => x.gcMs)), postMs: post.length ? med(post.map((x) => x.postMs)) : null, jsonBytes: post.length ? med(post.map((x) => x.jsonBytes)) : null, samples: o.samples, sites: o.sites, historyBytes: o.historyBytes, rows: o.rows }
      process.stderr.write(`read at ${mib} MiB (${source}): median ${reads[key].readMs.toFixed(2)} ms, max ${reads[key].readMaxMs.toFixed(2)} ms, gc ${reads[key].gcMs.toFixed(0)} ms\n`)
    }
  }
  const loadavg = os.loadavg()
  const out = { node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0].model, loadavg, rounds: ROUNDS, seconds: SECONDS, clients: CLIENTS, load, reads, raw: rounds }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'results', 'allocations.json'), JSON.stringify(out, null, 2) + '\n')
  const lines = []
  const log = (line) => { lines.push(line); console.log(line) }
  const pct = (x) => `${((x - 1) * 100).toFixed(1)} %`
  const MiB = (b) => `${(b / 1048576).toFixed(1)} MiB`
  log(`Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}; ${ROUNDS} rounds × ${SECONDS} s × ${CLIENTS} clients, interleaved; load average at the end ${loadavg.map((x) => x.toFixed(1)).join(' / ')}\n`)
  log('| sampling | requests/s (median) | throughput vs off (median ratio − 1; IQR) | p99 vs off | server CPU per request | CPU vs off (IQR) | RSS after load | site history |')
  log('|---|---|---|---|---|---|---|---|')
  for (const v of VARIANTS) {
    const l = load[v]
    log(`| ${label(v)} | ${Math.round(l.rps)} | ${v === 'off' ? '—' : `${pct(l.rpsRatio)} (${pct(l.rpsRatioIqr[0])} … ${pct(l.rpsRatioIqr[1])})`} | ${v === 'off' ? '—' : pct(l.p99Ratio)} | ${l.cpuUsPerRequest.toFixed(0)} µs | ${v === 'off' ? '—' : `${pct(l.cpuRatio)} (${pct(l.cpuRatioIqr[0])} … ${pct(l.cpuRatioIqr[1])})`} | ${MiB(l.rss)} | ${v === 'off' ? '—' : `${(l.historyBytes / 1024).toFixed(0)} KiB`} |`)
  }
  log('\n| source | live heap | one read on the JS thread (median; max of 7) | a plain full GC | inspector call alone | profile JSON | samples | site history |')
  log('|---|---|---|---|---|---|---|---|')
  const ms = (x) => x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`
  for (const [key, r] of Object.entries(reads)) {
    if (r.error) { log(`| ${r.source} | ~${key.split(' ')[1]} MiB | failed: ${r.error.slice(0, 80)} |`); continue }
    log(`| ${r.source} | ${MiB(r.heapUsed)} | ${ms(r.readMs)}; ${ms(r.readMaxMs)} | ${ms(r.gcMs)} | ${r.postMs == null ? '— (no inspector)' : ms(r.postMs)} | ${r.jsonBytes == null ? '— (no JSON)' : `${(r.jsonBytes / 1024).toFixed(0)} KiB`} | ${r.samples} | ${(r.historyBytes / 1024).toFixed(0)} KiB |`)
  }
  // The docs' table (docs/allocations.md, between its bench:allocations markers).
  const docs = path.join(__dirname, '..', 'docs', 'allocations.md')
  if (fs.existsSync(docs)) {
    const { replaceSection } = require('./readme')
    fs.writeFileSync(docs, replaceSection(fs.readFileSync(docs, 'utf8'), 'allocations', lines.join('\n')))
  }
}

main().catch((err) => { console.error(err); process.exitCode = 1 })
