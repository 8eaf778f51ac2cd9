'use strict'
// The largest heap of each shape that leakguard captures in a 1, 2 and 4 GiB memory
// cgroup, before (the worst-case check: another build, LEAKGUARD_BEFORE=/path/to/checkout)
// and after (the fork child's memory budget, this checkout). Root on Linux (it creates the
// cgroups). Each (container, shape, build) runs one server process in the cgroup that grows
// its heap by 1.2x steps and takes a default capture ('auto') at each until one fails; the
// cgroup's OOM-kill count is read after each. Writes benchmark/results/budget-<host>.json
// and prints a Markdown table (docs/budget.md).
//
//   node benchmark/budget.js [--gib 1,2,4] [--shapes small,map,strings] [--quick] [--merge]
//
// --quick starts each ladder at ~50 % of what the rule should allow (the factors below)
// and steps by 1.15x, instead of from 4 MB by 1.2x; --merge keeps the results file's rows
// for other container sizes (one run per size).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { makeCgroup } = require('../__test__/helpers/cgroup')

const MiB = 1024 * 1024
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? process.argv[i + 1] : d }
const gibs = arg('--gib', '1,2,4').split(',').map(Number)
const shapes = arg('--shapes', 'small,map,strings').split(',')
const builds = { before: process.env.LEAKGUARD_BEFORE, after: process.env.LEAKGUARD_AFTER || path.join(__dirname, '..') }
if (!builds.before) console.error('LEAKGUARD_BEFORE not set: measuring after only')

function ladder (from, to, step) {
  const out = []
  for (let s = from; s <= to; s *= step) out.push(Math.round(s * 10) / 10)
  return out
}

/** Container MiB per heap MB the rule allows, roughly (for --quick starts only). */
const PER_MB = { before: { small: 55, map: 55, strings: 55 }, after: { small: 10, map: 26, strings: 4.6 } }
const quick = process.argv.includes('--quick')

function run (cg, args) {
  return new Promise((resolve) => {
    const file = path.join(__dirname, '..', '__test__', 'fixtures', 'budget-server.js')
    const child = spawn('sh', ['-c', `echo $$ > ${cg.dir}/cgroup.procs && exec "$@"`, 'sh', process.execPath, '--expose-gc', file, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    child.on('exit', (code, signal) => {
      let json = null
      try { json = JSON.parse(stdout.trim().split('\n').pop()) } catch {}
      resolve({ code, signal, json, stderr: stderr.slice(-2000) })
    })
  })
}

async function main () {
  const rows = []
  const t0 = Date.now()
  for (const gib of gibs) {
    for (const shape of shapes) {
      for (const [build, lib] of Object.entries(builds)) {
        if (!lib) continue
        const cg = makeCgroup(gib * 1024 * MiB)
        if (!cg.dir) throw new Error(cg.reason)
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-budget-bench-'))
        const top = shape === 'strings' ? gib * 400 : gib * 200
        const t = Date.now()
        const from = quick ? Math.max(4, 0.5 * gib * 1024 / PER_MB[build][shape]) : 4
        // --quick (a loaded machine): 'fork' without inline fallback, busy forks retried,
        // a long no-progress timeout (the child sends nothing while V8 builds the graph).
        const runs = quick && build === 'after' ? [{ mode: 'fork', fallback: 'none', forkTimeoutMs: 1800000 }] : [{ mode: 'auto' }]
        const res = await run(cg, { dir, shape, sizesMb: ladder(from, top, quick ? 1.15 : 1.2), runs, stopOnFailure: true, removeFiles: true, retryBusy: 3, lib })
        const oomKills = cg.oomKills()
        cg.cleanup()
        fs.rmSync(dir, { recursive: true, force: true })
        const results = (res.json && res.json.results) || []
        const ok = results.filter((r) => r.ok)
        const last = ok[ok.length - 1]
        const fail = results.find((r) => !r.ok)
        const row = {
          gib,
          shape,
          build,
          largestHeapUsedMiB: last ? Math.round(last.heapUsed / MiB) : 0,
          largestMode: last ? last.mode : null,
          childPeakBudgetUsedMiB: last && last.headroom.childPeakBudgetUsed != null ? Math.round(last.headroom.childPeakBudgetUsed / MiB) : null,
          budgetMiB: last && last.headroom.budgetBytes != null ? Math.round(last.headroom.budgetBytes / MiB) : null,
          largestDurationMs: last ? last.durationMs : null,
          stoppedBy: fail ? { heapUsedMiB: Math.round(fail.heapUsed / MiB), code: fail.code.replace('ERR_LEAKGUARD_', ''), message: fail.message.slice(0, 300) } : 'ladder end',
          oomKills,
          serverExit: res.signal || res.code,
          seconds: Math.round((Date.now() - t) / 1000)
        }
        rows.push(row)
        console.error(JSON.stringify(row))
      }
    }
  }
  const file = path.join(__dirname, 'results', 'budget-linux-x64.json')
  if (process.argv.includes('--merge')) {
    try {
      const old = JSON.parse(fs.readFileSync(file, 'utf8')).rows
      for (const r of old) if (!gibs.includes(r.gib)) rows.push(r)
    } catch {}
    rows.sort((a, b) => a.gib - b.gib)
  }
  const out = { host: os.hostname(), node: process.version, cpus: os.cpus().length, note: 'shared 2-core machine (other builds and tests ran at the same time)', minutes: Math.round((Date.now() - t0) / 60000), rows }
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true })
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n')
  console.log('| container | shape | before: largest heapUsed | after: largest heapUsed | after: stopped by |')
  console.log('|---|---|---|---|---|')
  for (const gib of [...new Set(rows.map((r) => r.gib))]) {
    for (const shape of shapes) {
      const b = rows.find((r) => r.gib === gib && r.shape === shape && r.build === 'before')
      const a = rows.find((r) => r.gib === gib && r.shape === shape && r.build === 'after')
      const stop = (r) => r ? (typeof r.stoppedBy === 'string' ? r.stoppedBy : `${r.stoppedBy.code} at ${r.stoppedBy.heapUsedMiB} MiB`) : '–'
      console.log(`| ${gib} GiB | ${shape} | ${b ? b.largestHeapUsedMiB + ' MiB' : '–'} | ${a ? a.largestHeapUsedMiB + ' MiB' : '–'} | ${stop(a)} |`)
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
