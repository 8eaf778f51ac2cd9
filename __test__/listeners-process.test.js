'use strict'
// Listener auditing in child processes: no retention (with --expose-gc), and a process
// that exits by itself with the auditor running or stopped.

const test = require('node:test')
const assert = require('node:assert/strict')
const { runFixture } = require('./helpers')

for (const mode of ['all', 'tracked']) {
  test(`tracked emitters and their listeners are collectable (${mode})`, async () => {
    const r = await runFixture('retention.js', { nodeArgs: ['--expose-gc'], args: [mode] })
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    // the auditor was really auditing them, with stacks captured, when they were dropped
    const audited = mode === 'all' ? 5 : 4
    assert.equal(out.during.emitters, audited)
    assert.equal(out.during.pairs, audited)
    assert.ok(out.during.leaks.length >= 3, `few leaks seen: ${JSON.stringify(out.during)}`)
    for (const l of out.during.leaks) assert.ok(!l.endsWith(':0'), `no call site for ${l}`)
    // …and still every emitter and every listener was collected
    assert.deepEqual(out.alive, [])
    const expected = out.names.flatMap((n) => [n, `${n}:listener`]).sort()
    assert.deepEqual(out.collected, expected)
    // the ledger dropped their series
    assert.deepEqual(out.after, { emitters: 0, pairs: 0 })
  })
}

for (const how of ['running', 'stopped']) {
  test(`the process exits by itself with the auditor ${how}`, async () => {
    // bounded: a process kept alive by leakguard is killed after 20 s and fails here
    const r = await runFixture('exits.js', { args: [how], timeoutMs: 20000 })
    assert.equal(r.signal, null, 'the process had to be killed: something kept it alive')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^done ticked /)
    // after stop() the prototype method is Node's own again
    if (how === 'stopped') assert.match(r.stdout, /ticked addListener$/m)
  })
}
