'use strict'
// Cost of listener auditing on the add/remove hot path: an on()/off() pair on a Node
// EventEmitter, unpatched against each way leakguard can be watching it.
//
//   node benchmark/listeners.js [--rounds 5] [--ops 1000000]
//
// Each variant runs in its own child process (a fresh JIT: no variant inherits another's
// feedback); variants are interleaved round by round and each child reports the median
// of its repetitions. The table gives the median over rounds and the ratio to
// `unpatched` measured in the same run. Writes benchmark/out/listeners.json.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const VARIANTS = {
  unpatched: 'plain EventEmitter, no leakguard',
  all: "auditListeners: 'all', no suspicious pair anywhere",
  'all-suspect-elsewhere': "'all', a suspicious pair on another emitter",
  'all-suspect': "'all', on/off on a suspicious pair (default budget: 8 stacks per pair per tick)",
  tracked: 'the emitter tracked (instance wrappers), not suspicious',
  'tracked-suspect': 'tracked, on/off on a suspicious pair (default budget)',
  capture: "'all', suspicious pair, a stack captured on ~40 % of adds (budget 1000, tick every 1000 ops)"
}

function arg (name, def) {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}

if (process.argv[2] === '--child') child(process.argv[3], Number(process.argv[4]))
else parent()

function parent () {
  const rounds = arg('rounds', 5)
  const ops = arg('ops', 1e6)
  const results = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, []]))
  const mins = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, []]))
  const captures = {}
  for (let r = 0; r < rounds; r++) {
    for (const v of Object.keys(VARIANTS)) {
      const out = spawnSync(process.execPath, [__filename, '--child', v, String(ops)], { encoding: 'utf8', timeout: 120e3 })
      if (out.status !== 0) throw new Error(`${v}: ${out.stderr || out.signal}`)
      const res = JSON.parse(out.stdout)
      results[v].push(res.nsPerOp)
      mins[v].push(res.minNsPerOp)
      if (res.captures !== undefined) (captures[v] = captures[v] || []).push(res)
    }
    process.stderr.write(`round ${r + 1}/${rounds}\n`)
  }
  const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2 }
  const base = med(results.unpatched)
  const minBase = med(mins.unpatched)
  const rows = Object.keys(VARIANTS).map((v) => ({
    variant: v, what: VARIANTS[v], nsPerPair: med(results[v]), ratio: med(results[v]) / base, minNsPerPair: med(mins[v]), minRatio: med(mins[v]) / minBase
  }))
  // cost of one captured stack: the capture variant against the suspect one, per capture
  // cost of one captured stack on the adding call (capture vs all-suspect, per capture),
  // and of formatting it at the next tick (tick time per capture)
  let usPerStack = null
  let usPerFormat = null
  if (captures.capture) {
    const perOpExtra = med(results.capture) - med(results['all-suspect'])
    const capturesPerOp = med(captures.capture.map((c) => c.captures / c.measuredOps))
    usPerStack = capturesPerOp > 0 ? perOpExtra / capturesPerOp / 1000 : null
    usPerFormat = med(captures.capture.map((c) => c.tickNs / Math.max(1, c.captures) / 1000))
  }
  const machine = `${os.cpus()[0].model.trim()}, ${os.cpus().length} cores, ${os.platform()} ${os.arch()}, Node ${process.version}`
  const table = [
    `Listener audit hot path, one \`on()\` + \`off()\` pair (${machine}; ${rounds} interleaved rounds of ${ops} pairs, medians):`,
    '',
    '| variant | what | ns per on/off pair | × unpatched | best-of-5 ns | best × unpatched |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| \`${r.variant}\` | ${r.what} | ${r.nsPerPair.toFixed(1)} | ${r.ratio.toFixed(2)} | ${r.minNsPerPair.toFixed(1)} | ${r.minRatio.toFixed(2)} |`),
    '',
    usPerStack === null ? '' : `One captured stack (10 frames, unformatted) costs ≈ ${usPerStack.toFixed(2)} µs on the adding call, and ≈ ${usPerFormat.toFixed(2)} µs more at the next tick (formatting, locating the user frame, the ledger update).`
  ].join('\n')
  fs.mkdirSync(path.join(__dirname, 'out'), { recursive: true })
  fs.writeFileSync(path.join(__dirname, 'out', 'listeners.json'), JSON.stringify({ machine, rounds, ops, rows, usPerStack, usPerFormat, raw: results, rawMins: mins }, null, 2))
  process.stdout.write(table + '\n')
}

function child (variant, ops) {
  const { EventEmitter } = require('node:events')
  const leakguard = require('..')
  const e = new EventEmitter()
  e.setMaxListeners(0)
  let guard = null
  let tickEvery = 0
  const growing = []
  const auditListeners = variant.startsWith('all') || variant === 'capture' ? 'all' : 'tracked'
  if (variant !== 'unpatched') {
    guard = leakguard.watch({
      intervalMs: 100,
      auditListeners,
      listenerAudit: variant === 'capture' ? { stacksPerTick: 1000 } : {}
    })
    const auditor = guard.listeners
    auditor.tick() // the benchmark drives the clock from here on
    const makeSuspect = (em, name) => {
      // 'all' audits an emitter once a sampled check sees 5 listeners on one event
      for (let i = 0; i < 40; i++) em.on('data', () => i)
      if (auditListeners === 'tracked') guard.track(em, name)
      auditor.tick()
      auditor.tick()
      for (let i = 0; i < 20; i++) em.on('data', () => i) // grows past suspectGrowth
      auditor.tick()
      growing.push(em)
      const s = guard.listenerReport().suspects.find((x) => x.emitter === name || x.emitter === 'EventEmitter')
      if (!s) throw new Error(`${variant}: the pair did not become suspicious`)
    }
    if (variant === 'tracked') guard.track(e, 'bench')
    if (variant === 'all-suspect-elsewhere') makeSuspect(new EventEmitter(), 'other')
    if (variant === 'all-suspect' || variant === 'tracked-suspect' || variant === 'capture') makeSuspect(e, 'bench')
    // the default budget is per tick: tick as often as a 100 ms interval would
    tickEvery = variant === 'capture' ? 1000 : 0
  }
  const fn = () => {}
  const type = 'data'
  // a long-lived emitter already has a listener on the event (without one, Node swaps
  // `_events` for a fresh dictionary on every last removal and that dominates)
  e.on(type, () => {})
  let lastTick = performance.now()
  let tickNs = 0
  function run (n) {
    let opsNs = 0
    for (let i = 0; i < n; i += 1000) {
      const t0 = process.hrtime.bigint()
      for (let j = 0; j < 1000; j++) {
        e.on(type, fn)
        e.off(type, fn)
      }
      const t1 = process.hrtime.bigint()
      opsNs += Number(t1 - t0)
      if (guard !== null) {
        // the default budget is per tick: tick as often as a 100 ms interval would
        if (tickEvery || performance.now() - lastTick >= 100) {
          lastTick = performance.now()
          // a suspect that stops growing is let go: keep the suspect pairs growing
          for (const em of growing) em.on('data', () => {})
          guard.listeners.tick()
          tickNs += Number(process.hrtime.bigint() - t1)
        }
      }
    }
    return opsNs
  }
  run(Math.min(ops, 300000)) // warm-up
  for (const em of growing) {
    const name = em === e ? 'bench' : 'other'
    const s = guard.listenerReport().suspects.concat(guard.listenerReport().leaks)
    if (!s.some((x) => x.emitter === name || x.emitter === 'EventEmitter')) throw new Error(`${variant}: the pair is no longer suspicious`)
  }
  const before = guard ? guard.listenerReport().stacksCaptured : 0
  tickNs = 0
  const reps = []
  for (let r = 0; r < 5; r++) reps.push(run(ops) / ops)
  reps.sort((a, b) => a - b)
  const out = { variant, nsPerOp: reps[2], minNsPerOp: reps[0] }
  if (guard) {
    out.captures = guard.listenerReport().stacksCaptured - before
    out.measuredOps = 5 * ops
    out.tickNs = tickNs
    guard.stop()
  }
  process.stdout.write(JSON.stringify(out))
}
