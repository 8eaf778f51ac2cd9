'use strict'
// `npm run demo` end to end, as the README's main command: the leaky Express service is
// found out (heap verdict 'leak', the listener leak at the handler's exact line), a
// capture through the admin route holds the leaking class, and the demo exits 0 by itself.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')

const demo = path.join(__dirname, '..', 'examples', 'demo.js')
const server = path.join(__dirname, '..', 'examples', 'leaky-server.js')

test('the demo finds both planted leaks and captures evidence through the admin route', { timeout: 180000 }, async () => {
  const lines = fs.readFileSync(server, 'utf8').split('\n')
  const line = lines.findIndex((l) => l.includes("priceFeed.on('price'")) + 1
  assert.ok(line > 0)
  const out = await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [demo], {
      env: { ...process.env, LEAKGUARD_DEMO_JSON: '1', LEAKGUARD_DEMO_SECONDS: '110' },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    let stdout = ''
    child.stdout.on('data', (d) => { stdout += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the demo did not exit by itself')) }, 170000)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout }) })
  })
  const summary = JSON.parse(out.stdout.trim().split('\n').pop())
  summary.text = out.stdout
  assert.equal(out.code, 0, out.stdout.slice(-2000))
  assert.equal(summary.ok, true)
  assert.equal(summary.heap.state, 'leak')
  assert.ok(summary.heap.slopeBytesPerHour > 0)
  assert.equal(summary.listenerLeak.emitter, 'priceFeed')
  assert.equal(summary.listenerLeak.event, 'price')
  assert.ok(summary.listenerLeak.callSites.some((c) => c.location.startsWith(`${server}:${line}:`)), JSON.stringify(summary.listenerLeak.callSites))
  assert.ok(['fork', 'inline'].includes(summary.capture.mode))
  assert.ok(summary.capture.bytes > 0 && summary.capture.rawBytes > summary.capture.bytes)
  assert.ok(summary.quotesInSnapshot > 1000, `Quote objects in the snapshot: ${summary.quotesInSnapshot}`)
  assert.equal(summary.requestErrors, 0)
  // The diff of two captures through the admin route names the cache's class and its path.
  assert.ok(summary.analysis && summary.analysis.quote, JSON.stringify(summary.analysis))
  assert.ok(summary.analysis.quote.countDelta > 0 && summary.analysis.quote.shallowDelta > 0)
  // Through the server's module-level `quoteCache` (a variable of its module closure's
  // context) and its Map's table, to the Quote; what leads to that context (which
  // closure, which of Node's internals) is V8's and Node's to change, so not asserted.
  assert.match(summary.analysis.quote.path, /(^| → )quoteCache \(context\) → Map → table \(internal\) → .+ → Quote$/)
  assert.ok(['id', 'aggregate'].includes(summary.analysis.method))
  // The report names the leaking handler (or the Quote it stores) by file:line.
  const handler = lines.findIndex((l) => l.includes("app.get('/quote/:symbol'")) + 1
  const quote = lines.findIndex((l) => l.includes('constructor (symbol, n)')) + 1
  const m = /^(.+):(\d+)$/.exec(summary.allocationSite.at)
  assert.ok(m, summary.allocationSite.at)
  assert.equal(path.resolve(m[1]), server)
  assert.ok([handler, quote].includes(Number(m[2])), `${summary.allocationSite.at}: handler line ${handler} or Quote line ${quote}`)
  assert.ok(summary.allocationSite.growthBytesPerHour > 0 && summary.allocationSite.share > 0 && summary.allocationSite.share <= 1)
  // Figures as a person reads them.
  assert.match(summary.text, /confidence \d{1,3}\.\d\d %/)
  assert.doesNotMatch(summary.text, /confidence 0\.\d{5,}/)
  assert.doesNotMatch(summary.text, /\d{4}-\d\d-\d\dT\d\d:/, 'no ISO timestamps')
  assert.match(summary.text, new RegExp(`growing allocations at ${summary.allocationSite.at.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
  assert.ok(!fs.existsSync(summary.dir), 'the demo cleans up its capture directory')
})
