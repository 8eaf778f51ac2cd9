'use strict'
// The benchmark's bookkeeping (not its timings): README sections are replaced only between
// their markers, medians and the interleaved schedule are what the README says they are.

const test = require('node:test')
const assert = require('node:assert/strict')

const { replaceSection } = require('../benchmark/readme')
const { median, schedule } = require('../benchmark/capture')

test('README sections are replaced only between their own markers', () => {
  const text = 'intro\n<!-- bench:capture:start -->\nold\n<!-- bench:capture:end -->\nmiddle\n<!-- bench:levels:start -->\nkeep\n<!-- bench:levels:end -->\n'
  const out = replaceSection(text, 'capture', 'new table')
  assert.equal(out, 'intro\n<!-- bench:capture:start -->\nnew table\n<!-- bench:capture:end -->\nmiddle\n<!-- bench:levels:start -->\nkeep\n<!-- bench:levels:end -->\n')
  assert.equal(replaceSection(out, 'capture', 'new table'), out, 'idempotent')
  assert.throws(() => replaceSection('no markers', 'capture', 'x'), /markers/)
})

test('median ignores failed runs and averages the middle pair', () => {
  assert.equal(median([3, 1, 2]), 2)
  assert.equal(median([4, 1, 3, 2]), 2.5)
  assert.equal(median([null, 5, NaN]), 5)
  assert.equal(median([]), null)
})

test('the schedule interleaves peers, rotates their order per repetition and skips fork when unavailable', () => {
  const cfg = { sizes: [100, 500], reps: [2, 1], peers: ['floor', 'v8-file', 'leakguard-inline', 'leakguard-fork'], shapes: ['small'], levels: [1] }
  const runs = schedule(cfg, false)
  assert.equal(runs.filter((r) => r.peer === 'leakguard-fork').length, 0)
  assert.equal(runs.filter((r) => r.sizeMB === 100).length, 6)
  assert.equal(runs.filter((r) => r.sizeMB === 500).length, 3)
  const firsts = runs.filter((r) => r.sizeMB === 100).map((r) => r.peer)
  assert.deepEqual(firsts, ['floor', 'v8-file', 'leakguard-inline', 'v8-file', 'leakguard-inline', 'floor'])
  assert.equal(schedule(cfg, true).filter((r) => r.peer === 'leakguard-fork').length, 3)
})
