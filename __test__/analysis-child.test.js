'use strict'
// Analysis in a child process (lib/analysis-child.js), as watch()'s side and the admin route
// use it: the same answers as the in-process API on real captures, a memory budget that a
// big analysis cannot exceed (the child dies alone, a coded rejection), one child at a
// time, cancellation by AbortSignal, and the budget taken from the capture's.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const leakguard = require('..')
const child = require('../lib/analysis-child')
const { tmpDir, capturePair } = require('./helpers/analysis')

let dir
let pair
let big

test.before(async () => {
  dir = tmpDir()
  pair = await capturePair(path.join(dir, 'small'))
  big = await capturePair(path.join(dir, 'big'), { bulk: 400000 })
})

test.after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('diff and summarize in a child give what the in-process API gives', async () => {
  const inChild = await child.diffInChild(pair.before, pair.after)
  const here = await leakguard.diff(pair.before, pair.after)
  assert.deepEqual(inChild, JSON.parse(JSON.stringify(here)))
  const leaky = inChild.classes.find((c) => c.name === 'LeakyThing')
  assert.equal(leaky.countDelta, pair.leakAdded)
  const s = await child.summarizeInChild(pair.after, { top: 5 })
  const sHere = await leakguard.summarize(pair.after)
  assert.equal(s.nodes, sHere.nodes)
  assert.deepEqual(s.classes, JSON.parse(JSON.stringify(sHere.classes.slice(0, 5))))
  const r = await child.retainersInChild(pair.after, 'LeakyThing', { limit: 2 })
  assert.deepEqual(r, JSON.parse(JSON.stringify(await leakguard.retainers(pair.after, { className: 'LeakyThing', limit: 2 }))))
})

test('a child whose analysis needs more than its budget dies alone and rejects with ANALYSIS_OUT_OF_MEMORY', { skip: process.platform !== 'linux' && 'RLIMIT_AS is read and set on Linux only' }, async () => {
  const before = process.memoryUsage.rss()
  await assert.rejects(child.diffInChild(big.before, big.after, { memoryBudget: 16 * 1024 * 1024 }), (err) => {
    assert.equal(err.code, leakguard.codes.ANALYSIS_OUT_OF_MEMORY, `${err.code}: ${err.message}`)
    assert.equal(err.budgetBytes, 16 * 1024 * 1024)
    return true
  })
  // This process is untouched and can run the next analysis.
  assert.ok(process.memoryUsage.rss() < before + 64 * 1024 * 1024)
  assert.equal(child.analysisRunning(), false)
  const ok = await child.diffInChild(big.before, big.after, { top: 3 })
  assert.ok(ok.classes.length <= 3)
})

test('one analysis child at a time: a second call rejects with ANALYSIS_IN_PROGRESS', async () => {
  const first = child.diffInChild(big.before, big.after)
  assert.equal(child.analysisRunning(), true)
  await assert.rejects(child.summarizeInChild(pair.after), { code: leakguard.codes.ANALYSIS_IN_PROGRESS })
  await first
  assert.equal(child.analysisRunning(), false)
})

test('an AbortSignal ends the child and rejects with ANALYSIS_ABORTED', async () => {
  const ac = new AbortController()
  const p = child.diffInChild(big.before, big.after, { signal: ac.signal })
  setTimeout(() => ac.abort(), 100)
  await assert.rejects(p, { code: 'ERR_LEAKGUARD_ANALYSIS_ABORTED' })
  assert.equal(child.analysisRunning(), false)
  const already = AbortSignal.abort()
  await assert.rejects(child.diffInChild(pair.before, pair.after, { signal: already }), { code: 'ERR_LEAKGUARD_ANALYSIS_ABORTED' })
})

test('a file the child cannot analyze rejects with the analysis\'s own code', async () => {
  const bad = path.join(dir, 'bad.heapsnapshot')
  fs.writeFileSync(bad, '{"snapshot": 12}')
  await assert.rejects(child.summarizeInChild(bad), { code: 'ERR_LEAKGUARD_ANALYSIS_INVALID_SNAPSHOT' })
})

test('the budget is the capture budget: available memory less this process\'s RSS, a reserve and a margin', () => {
  const b = child.analysisBudget()
  if (b.available == null) return // no readable figure on this platform: no limit
  assert.ok(b.bytes < b.available - process.memoryUsage.rss(), JSON.stringify(b))
  assert.ok(b.bytes > 0)
  assert.equal(child.analysisBudget(1024 * 1024).bytes, 1024 * 1024, 'a lower request wins')
  const high = child.analysisBudget(Number.MAX_SAFE_INTEGER)
  assert.ok(high.bytes < high.available, 'a higher request does not raise it past what is available')
})
