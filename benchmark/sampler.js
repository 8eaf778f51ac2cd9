'use strict'
// benchmark/sampler: what the monitor costs the JS thread, the memory its ring holds, and
// how long each child-process scenario takes to reach its verdict at intervalMs 100.
//
//   node benchmark/sampler.js               # JS-thread cost and ring memory (≈ 10 s)
//   node benchmark/sampler.js --verdicts    # plus the three scenarios (≈ 2–3 min)
//
// Cost is measured per call with process.hrtime.bigint() around the monitor's own tick
// (read figures → Rust push → MemorySample → 'sample' event), interleaved with the
// plain-Node baseline every sampler must pay (process.memoryUsage() + v8.getHeapStatistics()).
// Results go to benchmark/out/sampler.json and a Markdown table on stdout.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const v8 = require('node:v8')
const { spawn } = require('node:child_process')

const leakguard = require('..')
const { oldSpaceUsed } = require('../lib/sampler')

const ROUNDS = 20
const PER_ROUND = 500

function stats (ns) {
  const a = ns.map(Number).sort((x, y) => x - y)
  const q = (p) => a[Math.min(a.length - 1, Math.floor(p * a.length))] / 1000
  return { medianUs: q(0.5), p90Us: q(0.9), p99Us: q(0.99), n: a.length }
}

function time (fn, out) {
  const t0 = process.hrtime.bigint()
  fn()
  out.push(process.hrtime.bigint() - t0)
}

function costs () {
  // A long interval: the guard's own timer stays out of the way; we drive its tick.
  const guard = leakguard.watch({ intervalMs: 3600e3, stallThresholdMs: 3600e3 })
  const mon = guard.monitor
  guard.on('sample', () => {})
  const tick = []
  const baseline = []
  const gcBatch = []
  const peek = []
  const beat = []
  // Warm up the JIT, then interleave rounds.
  for (let i = 0; i < 2000; i++) mon._tick()
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < PER_ROUND; i++) time(() => mon._tick(), tick)
    for (let i = 0; i < PER_ROUND; i++) time(() => { process.memoryUsage(); v8.getHeapStatistics() }, baseline)
    for (let i = 0; i < PER_ROUND / 10; i++) time(() => { oldSpaceUsed(); mon._onGc(Date.now()) }, gcBatch)
    for (let i = 0; i < PER_ROUND / 10; i++) time(() => leakguard.sample(), peek)
    for (let i = 0; i < PER_ROUND; i++) time(() => mon._beat(), beat)
  }
  const ringBytes = guard.status().ringBytes
  const stored = guard.samples().length
  guard.stop()
  const t = stats(tick)
  const b = stats(baseline)
  return {
    tick: t,
    baseline: b,
    ratio: t.medianUs / b.medianUs,
    gcBatch: stats(gcBatch),
    sample: stats(peek),
    beat: stats(beat),
    ringBytes,
    ringSamples: stored
  }
}

function runChild (scenario, opts, nodeArgs, deadlineMs) {
  const fixture = path.join(__dirname, '..', '__test__', 'fixtures', 'monitor-child.js')
  return new Promise((resolve) => {
    const t0 = Date.now()
    const p = spawn(process.execPath, [...nodeArgs, fixture, scenario, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const events = []
    let buf = ''
    p.stdout.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push({ atMs: Date.now() - t0, ...JSON.parse(buf.slice(0, i)) })
        buf = buf.slice(i + 1)
      }
    })
    const timer = setTimeout(() => p.kill('SIGKILL'), deadlineMs)
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, events, totalMs: Date.now() - t0 })
    })
  })
}

async function verdicts () {
  const [leak, lru, pressure] = await Promise.all([
    runChild('leak', { runMs: 170000 }, [], 190000),
    runChild('lru', { runMs: 45000 }, [], 60000),
    runChild('pressure', {}, ['--max-old-space-size=64'], 90000)
  ])
  const at = (r, ev) => (r.events.find((e) => e.ev === ev) || {}).atMs ?? null
  const end = (r) => r.events.find((e) => e.ev === 'end') || {}
  const leakEv = leak.events.find((e) => e.ev === 'leak')
  return {
    leak: { leakAtMs: at(leak, 'leak'), tier: leakEv ? leakEv.report.tier : null },
    lru: { state: end(lru).heap ? end(lru).heap.state : null, healthySinceMs: end(lru).heap ? end(lru).heap.since : null, leakEvents: lru.events.filter((e) => e.ev === 'leak').length, runMs: lru.totalMs },
    pressure: { pressureAtMs: at(pressure, 'pressure'), level: (pressure.events.find((e) => e.ev === 'pressure') || {}).pressure?.level ?? null, diedAtMs: pressure.totalMs, died: pressure.code !== 0 || !!pressure.signal }
  }
}

async function main () {
  const result = {
    machine: `${os.cpus()[0].model} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    date: new Date().toISOString(),
    costs: costs()
  }
  if (process.argv.includes('--verdicts')) result.verdicts = await verdicts()
  fs.mkdirSync(path.join(__dirname, 'out'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'out', 'sampler.json'), JSON.stringify(result, null, 2))
  const c = result.costs
  const f = (x) => x.toFixed(1)
  const lines = [
    `Machine: ${result.machine}; Node ${result.node}; ${result.date.slice(0, 10)}.`,
    '',
    '| JS-thread cost per call | median µs | p90 µs | p99 µs |',
    '| --- | ---: | ---: | ---: |',
    `| monitor tick (read, Rust push, MemorySample, 'sample' event) | ${f(c.tick.medianUs)} | ${f(c.tick.p90Us)} | ${f(c.tick.p99Us)} |`,
    `| baseline: process.memoryUsage() + v8.getHeapStatistics() | ${f(c.baseline.medianUs)} | ${f(c.baseline.p90Us)} | ${f(c.baseline.p99Us)} |`,
    `| GC observer batch with a major GC (space stats, Rust gc) | ${f(c.gcBatch.medianUs)} | ${f(c.gcBatch.p90Us)} | ${f(c.gcBatch.p99Us)} |`,
    `| leakguard.sample() while watching | ${f(c.sample.medianUs)} | ${f(c.sample.p90Us)} | ${f(c.sample.p99Us)} |`,
    `| watchdog heartbeat (every min(intervalMs, stallThresholdMs / 2)) | ${f(c.beat.medianUs)} | ${f(c.beat.p90Us)} | ${f(c.beat.p99Us)} |`,
    '',
    `Tick / baseline (medians): ${c.ratio.toFixed(2)}×. Ring buffer: ${c.ringBytes} bytes for ${c.ringSamples} samples.`
  ]
  if (result.verdicts) {
    const v = result.verdicts
    const s = (ms) => (ms == null ? 'never' : `${(ms / 1000).toFixed(1)} s`)
    lines.push('', '| scenario (child process, intervalMs 100) | result |', '| --- | --- |',
      `| retained-Map leak (4 GiB limit) | 'leak' after ${s(v.leak.leakAtMs)} (tier ${v.leak.tier}) |`,
      `| bounded LRU, same churn, ${s(v.lru.runMs)} | final state '${v.lru.state}', ${v.lru.leakEvents} leak events |`,
      `| fast leak, --max-old-space-size=64 | pressure '${v.pressure.level}' after ${s(v.pressure.pressureAtMs)}; ${v.pressure.died ? 'died' : 'survived'} at ${s(v.pressure.diedAtMs)} |`)
  }
  console.log(lines.join('\n'))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
