'use strict'
// Cost of listener auditing on the add/remove hot path: an on()/off() pair on a Node
// EventEmitter, unpatched against each way leakguard can be watching it.
//
//   node benchmark/listeners.js [--rounds 3] [--slices 300] [--slice 50000]
//
// Design (paired, so that other load on a shared machine cancels out):
// - each variant runs in its own child process (fresh JIT feedback), variants interleaved
//   round by round;
// - in the child, leakguard is installed once (watch(), track(), a suspect made as the
//   variant needs); then slices of `slice` on/off pairs alternate between Node's own
//   methods (A) and leakguard's installed wrappers (B: the same function objects each
//   time, swapped in on the prototype or the instance), `slices` times each;
// - the child reports the median of the per-slice B/A ratios and the median ns of each;
//   the parent reports the median over rounds.
// `unpatched` swaps Node's methods for themselves: its ratio is the harness's noise floor.
// Ticks (every 100 ms of B time, as a 100 ms interval would) are not timed.
// Writes benchmark/out/listeners.json and prints the table for docs/listeners.md (Costs).

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const VARIANTS = {
  unpatched: 'control: Node\'s methods swapped for themselves',
  all: "`auditListeners: 'all'`, no suspicious pair anywhere",
  'all-suspect-elsewhere': "`'all'`, a suspicious pair on another emitter",
  'all-suspect': "`'all'`, on/off on a suspicious pair (default budget: 8 stacks per pair per tick)",
  tracked: 'the emitter tracked (instance wrappers; Node\'s side has the same own properties), not suspicious',
  'tracked-suspect': 'tracked, on/off on a suspicious pair (default budget)',
  capture: "`'all'`, suspicious pair, budget 1000 stacks per tick and a tick every 1000 pairs (a stack on ~40 % of adds)"
}

function arg (name, def) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}

const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

if (process.argv[2] === '--child') child(process.argv[3], Number(process.argv[4]), Number(process.argv[5]))
else parent()

function parent () {
  const rounds = arg('rounds', 3)
  const slices = arg('slices', 300)
  const slice = arg('slice', 50000)
  const raw = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, []]))
  for (let r = 0; r < rounds; r++) {
    for (const v of Object.keys(VARIANTS)) {
      // the capture variant is ~40× slower per pair: a tenth of the slices gives it as many captures as it needs
      const n = v === 'capture' ? Math.max(10, Math.round(slices / 10)) : slices
      const out = spawnSync(process.execPath, [__filename, '--child', v, String(n), String(slice)], { encoding: 'utf8', timeout: 300e3 })
      if (out.status !== 0) throw new Error(`${v}: ${out.stderr || out.signal}`)
      raw[v].push(JSON.parse(out.stdout))
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`)
  }
  const rows = Object.keys(VARIANTS).map((v) => ({
    variant: v,
    what: VARIANTS[v],
    ratio: med(raw[v].map((x) => x.ratio)),
    nsA: med(raw[v].map((x) => x.nsA)),
    nsB: med(raw[v].map((x) => x.nsB))
  }))
  // one captured stack: the capture variant's extra time per pair over its own A slices,
  // divided by the stacks taken per pair; formatting it at the tick, per stack
  const c = raw.capture
  const usPerStack = med(c.map((x) => (x.nsB - x.nsA) / (x.captures / x.opsB) / 1000))
  const usPerFormat = med(c.map((x) => x.tickNs / Math.max(1, x.captures) / 1000))
  const machine = `${os.cpus()[0].model.trim()}, ${os.cpus().length} cores, ${os.platform()} ${os.arch()}, Node ${process.version}`
  const table = [
    `One \`on()\` + \`off()\` pair on an EventEmitter that already has a listener for the event (${machine}; ` +
      `${rounds} rounds × ${slices} paired slices of ${slice} pairs, medians; the machine was shared with other work):`,
    '',
    '| variant | what | Node (ns) | with leakguard (ns) | × Node (paired) |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows.map((r) => `| \`${r.variant}\` | ${r.what} | ${r.nsA.toFixed(1)} | ${r.nsB.toFixed(1)} | ${r.ratio.toFixed(3)} |`),
    '',
    `One captured stack (${10} frames, unformatted) costs ≈ ${usPerStack.toFixed(1)} µs on the adding call, and ≈ ` +
      `${usPerFormat.toFixed(1)} µs more when it is formatted (finding the user frame, the ledger update).`
  ].join('\n')
  fs.mkdirSync(path.join(__dirname, 'out'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'out', 'listeners.json'), JSON.stringify({ machine, rounds, slices, slice, rows, usPerStack, usPerFormat, raw }, null, 2))
  process.stdout.write(table + '\n')
}

function child (variant, slices, slice) {
  const { EventEmitter } = require('node:events')
  const P = EventEmitter.prototype
  const NAMES = ['on', 'addListener', 'off', 'removeListener']
  const nodeOwn = Object.fromEntries(NAMES.map((k) => [k, P[k]]))
  const leakguard = require('..')
  const e = new EventEmitter()
  e.setMaxListeners(0)
  const all = variant.startsWith('all') || variant === 'capture'
  const growing = []
  let guard = null
  if (variant !== 'unpatched') {
    guard = leakguard.watch({ intervalMs: 100, auditListeners: all ? 'all' : 'tracked', listenerAudit: variant === 'capture' ? { stacksPerTick: 1000 } : {} })
    guard.listeners.tick() // the benchmark drives the clock from here on
    const makeSuspect = (em, name) => {
      if (!all) guard.track(em, name)
      for (let i = 0; i < 40; i++) em.on('data', () => i) // 'all': seen by a sampled check at ≥ 5
      guard.listeners.tick()
      guard.listeners.tick()
      for (let i = 0; i < 20; i++) em.on('data', () => i) // grows past suspectGrowth
      guard.listeners.tick()
      growing.push([em, name])
    }
    if (variant === 'tracked') guard.track(e, 'bench')
    if (variant === 'all-suspect-elsewhere') makeSuspect(new EventEmitter(), 'other')
    if (variant === 'all-suspect' || variant === 'tracked-suspect' || variant === 'capture') makeSuspect(e, 'bench')
  }
  // a long-lived emitter already has a listener on the event (without one, Node swaps
  // `_events` for a fresh dictionary on every last removal, and that dominates)
  e.on('data', () => {})

  // B: what leakguard installed, on the prototype or on the instance
  const installed = all ? Object.fromEntries(NAMES.map((k) => [k, P[k]])) : null
  const own = !all && variant !== 'unpatched' ? Object.fromEntries(NAMES.map((k) => [k, Object.getOwnPropertyDescriptor(e, k)])) : null
  // instance wrappers are swapped by value (the own properties stay: deleting them would
  // turn the emitter into a dictionary-mode object and slow both sides down)
  const useNode = () => {
    if (installed) for (const k of NAMES) P[k] = nodeOwn[k]
    if (own) for (const k of NAMES) e[k] = nodeOwn[k]
  }
  const useLeakguard = () => {
    if (installed) for (const k of NAMES) P[k] = installed[k]
    if (own) for (const k of NAMES) e[k] = own[k].value
  }

  const fn = () => {}
  // two copies of the loop so that each keeps its own call feedback
  function runA (n) { for (let i = 0; i < n; i++) { e.on('data', fn); e.off('data', fn) } }
  function runB (n) { for (let i = 0; i < n; i++) { e.on('data', fn); e.off('data', fn) } }

  const tickEvery = variant === 'capture' ? 1000 : 0
  let bTime = 0
  let lastTick = 0
  let tickNs = 0
  function timedB (n) {
    let ns = 0
    for (let done = 0; done < n; done += tickEvery || n) {
      const t0 = process.hrtime.bigint()
      runB(tickEvery || n)
      ns += Number(process.hrtime.bigint() - t0)
      bTime += Number(process.hrtime.bigint() - t0) / 1e6
      if (guard !== null && (tickEvery || bTime - lastTick >= 100)) {
        lastTick = bTime
        const t1 = process.hrtime.bigint()
        for (const [em] of growing) em.on('data', () => {}) // a suspect that stops growing is let go
        guard.listeners.tick()
        tickNs += Number(process.hrtime.bigint() - t1)
      }
    }
    return ns
  }

  const a = []
  const b = []
  const warm = 10
  let capturedBefore = 0
  for (let s = 0; s < slices + warm; s++) {
    if (s === warm) {
      capturedBefore = guard ? guard.listenerReport().stacksCaptured : 0
      tickNs = 0
    }
    useNode()
    let t0 = process.hrtime.bigint()
    runA(slice)
    const nsA = Number(process.hrtime.bigint() - t0) / slice
    useLeakguard()
    t0 = process.hrtime.bigint()
    const nsB = timedB(slice) / slice
    if (s >= warm) {
      a.push(nsA)
      b.push(nsB)
    }
  }
  const out = { variant, ratio: med(b.map((x, i) => x / a[i])), nsA: med(a), nsB: med(b) }
  if (guard) {
    const report = guard.listenerReport()
    for (const [, name] of growing) {
      const s = report.suspects.concat(report.leaks)
      if (!s.some((x) => x.emitter === name || x.emitter === 'EventEmitter')) throw new Error(`${variant}: the pair is no longer suspicious`)
    }
    out.captures = report.stacksCaptured - capturedBefore
    out.opsB = slices * slice
    out.tickNs = tickNs
    guard.stop()
  }
  process.stdout.write(JSON.stringify(out))
}
