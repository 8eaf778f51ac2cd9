'use strict'
// How long a whole assertNoLeak() takes on a small test process (< 50 MB heap), and an
// expectCollected() that fails, each in a fresh child process; clean and leaking
// scenarios interleaved. `node benchmark/testing.js [runs=5] [--heap-mb=N]`
//
// Prints a JSON line per run and a table of medians. No timing is asserted anywhere.

const { spawn } = require('node:child_process')
const os = require('node:os')

const runs = Number(process.argv.find((a) => /^\d+$/.test(a)) || 5)
const heapMb = Number((process.argv.find((a) => a.startsWith('--heap-mb=')) || '--heap-mb=20').split('=')[1])

const CHILD = `
const { assertNoLeak, expectCollected } = require(${JSON.stringify(require.resolve('../testing.js'))})
const { performance } = require('node:perf_hooks')
// Ballast so the heap is the size asked for: ${heapMb} MB of small live objects.
const ballast = []
while (process.memoryUsage().heapUsed < ${heapMb} * 1024 * 1024) ballast.push({ a: ballast.length, b: 'x' + ballast.length })
class Leaked { constructor (i) { this.i = i } }
const kept = []
const keptSet = new Set()
const scenarios = {
  clean: () => { const o = []; for (let i = 0; i < 50; i++) o.push({ i }); return o.length },
  leak: () => { kept.push(new Leaked(kept.length)) }
}
;(async () => {
  const which = process.argv[1]
  const heapUsed = process.memoryUsage().heapUsed
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  let outcome = 'passed'
  let snapshots = null
  try {
    if (which === 'notCollected') await expectCollected(() => { const o = new Leaked(1); keptSet.add(o); return o })
    else await assertNoLeak(scenarios[which])
  } catch (err) {
    outcome = err.code
    snapshots = err.snapshots.length
    require('node:fs').rmSync(err.dir, { recursive: true, force: true })
  }
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  // CPU time of every thread of the process (the JS thread, capture and analysis threads):
  // on a shared machine it says more than the wall time.
  console.log(JSON.stringify({ which, ms: Math.round(ms), cpuMs: Math.round((cpu.user + cpu.system) / 1000), heapUsedMb: +(heapUsed / 1048576).toFixed(1), outcome, snapshots }))
})()
`

function once (which) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', CHILD, which], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    c.stdout.on('data', (d) => { out += d })
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`child exited ${code}: ${out}`))))
  })
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }

;(async () => {
  const all = { clean: [], leak: [], notCollected: [] }
  for (let i = 0; i < runs; i++) {
    for (const which of Object.keys(all)) {
      const r = await once(which)
      console.log(JSON.stringify(r))
      all[which].push(r)
    }
  }
  console.log(`\nNode ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (shared machine)`)
  console.log('| run | heapUsed MB | outcome | snapshots | median wall ms | min ms | max ms | median CPU ms (all threads) |')
  console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |')
  for (const [which, rs] of Object.entries(all)) {
    const ms = rs.map((r) => r.ms)
    console.log(`| ${which} | ${median(rs.map((r) => r.heapUsedMb))} | ${rs[0].outcome} | ${rs[0].snapshots ?? '-'} | ${median(ms)} | ${Math.min(...ms)} | ${Math.max(...ms)} | ${median(rs.map((r) => r.cpuMs))} |`)
  }
})()
