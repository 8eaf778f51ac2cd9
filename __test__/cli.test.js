'use strict'
// The command-line tool, run as a real child process (bin/leakguard.js) on real captures
// made by leakguard.capture in a child: --json output against an independent reading of
// the same files, the tables, exit codes (0, 1 over --fail-on-growth, 2 usage, 3 analysis
// error, 130 cancelled), the progress bar only on a TTY, and the memory limit.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')
const { EventEmitter } = require('node:events')
const { Writable } = require('node:stream')

const { tmpDir, capturePair, runCli, readSnapshot } = require('./helpers/analysis')
const cli = require('../lib/cli')
const fmt = require('../lib/format')

let dir
let pair
let forkPair
let big
let indep

test.before(async () => {
  dir = tmpDir()
  pair = await capturePair(path.join(dir, 'inline'))
  big = await capturePair(path.join(dir, 'big'), { bulk: 400000 })
  if (process.platform === 'linux') forkPair = await capturePair(path.join(dir, 'fork'), { mode: 'fork' })
  indep = { before: readSnapshot(pair.before), after: readSnapshot(pair.after) }
  fs.writeFileSync(path.join(dir, 'not-a-snapshot.txt'), 'hello, I am not JSON\n')
  const gz = fs.readFileSync(pair.after)
  fs.writeFileSync(path.join(dir, 'truncated.heapsnapshot.gz'), gz.subarray(0, gz.length >> 1))
  // Valid gzip of a JSON document that stops in the middle of the nodes array.
  const text = zlib.gunzipSync(gz).toString('utf8')
  fs.writeFileSync(path.join(dir, 'cut.heapsnapshot'), text.slice(0, text.indexOf('"edges"') - 1000))
})

test.after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('usage errors exit 2 with a message on stderr and nothing on stdout', async () => {
  const cases = [
    [],
    ['frobnicate'],
    ['summarize'],
    ['summarize', 'a', 'b'],
    ['diff', 'only-one'],
    ['summarize', '/no/such/file.heapsnapshot'],
    ['summarize', '--bogus', '/etc/hostname'],
    ['summarize', '--top', '0', '/etc/hostname'],
    ['summarize', '--top', 'ten', '/etc/hostname'],
    ['diff', '--fail-on-growth', '10XB', '/etc/hostname', '/etc/hostname'],
    ['diff', '--fail-on-growth', '-5', '/etc/hostname', '/etc/hostname'],
    ['retainers', '/etc/hostname', ''],
    ['summarize', '--memory-limit', '0', '/etc/hostname'],
    ['summarize', path.join(__dirname)],
    ['diff', '--method', 'guess', '/etc/hostname', '/etc/hostname'],
    ['diff', '--retainers', '0', '/etc/hostname', '/etc/hostname'],
    ['help', 'nothing']
  ]
  for (const args of cases) {
    const r = await runCli(args)
    assert.equal(r.code, 2, `${JSON.stringify(args)} → ${r.code}: ${r.stderr}`)
    assert.equal(r.stdout, '', JSON.stringify(args))
    assert.match(r.stderr, /^leakguard: .+\nRun "leakguard --help" for usage\.\n$/, JSON.stringify(args))
  }
})

test('--help and help COMMAND print usage on stdout and exit 0', async () => {
  const main = await runCli(['--help'])
  assert.equal(main.code, 0)
  for (const word of ['summarize FILE', 'diff BEFORE AFTER', 'retainers FILE CLASS', '--json', 'Exit codes']) assert.ok(main.stdout.includes(word), word)
  const diff = await runCli(['help', 'diff'])
  assert.equal(diff.code, 0)
  assert.match(diff.stdout, /--fail-on-growth BYTES/)
  const sub = await runCli(['retainers', '--help'])
  assert.equal(sub.code, 0)
  assert.match(sub.stdout, /--limit N/)
})

test('summarize --json matches an independent reading of the same .gz', async () => {
  const r = await runCli(['summarize', pair.after, '--json'])
  assert.equal(r.code, 0, r.stderr)
  const s = r.json
  assert.equal(s.nodes, indep.after.nodes)
  assert.equal(s.edges, indep.after.edges)
  assert.equal(s.totalBytes, indep.after.totalBytes)
  const leaky = s.classes.find((c) => c.name === 'LeakyThing')
  assert.ok(leaky, 'LeakyThing is a class')
  assert.equal(leaky.count, pair.leakBefore + pair.leakAdded)
  assert.equal(leaky.count, indep.after.byName.get('LeakyThing').count)
  assert.equal(leaky.shallowBytes, indep.after.byName.get('LeakyThing').selfSize)
  assert.ok(leaky.retainedBytes >= leaky.shallowBytes)
  // Largest retained first; the class totals add up to the snapshot's.
  for (let i = 1; i < s.classes.length; i++) assert.ok(s.classes[i - 1].retainedBytes >= s.classes[i].retainedBytes)
  assert.equal(s.classes.reduce((a, c) => a + c.shallowBytes, 0), s.totalBytes)
  const top = await runCli(['summarize', pair.after, '--json', '--top', '3'])
  assert.equal(top.json.classes.length, 3)
  assert.deepEqual(top.json.classes, s.classes.slice(0, 3))
})

test('summarize prints a readable table with human units and thousands separators', async () => {
  const r = await runCli(['summarize', pair.after])
  assert.equal(r.code, 0, r.stderr)
  assert.ok(r.stdout.startsWith(`${pair.after}: ${fmt.count(indep.after.nodes)} nodes`), r.stdout.slice(0, 200))
  assert.match(r.stdout, /Class\s+Type\s+Count\s+Shallow\s+Retained/)
  const line = r.stdout.split('\n').find((l) => l.startsWith('LeakyThing'))
  assert.ok(line, 'a LeakyThing row')
  assert.ok(line.includes('3,500'), line)
  assert.match(line, /\d (B|KiB|MiB)/)
  assert.equal(r.stderr, '', 'no progress bar when stderr is not a terminal')
})

test('diff --json names the planted class with its exact delta and a path through the Map\'s owner', async () => {
  const r = await runCli(['diff', pair.before, pair.after, '--json'])
  assert.equal(r.code, 0, r.stderr)
  const d = r.json
  assert.equal(d.method, 'id', 'two inline captures of one process are matched by id')
  const leaky = d.classes.find((c) => c.name === 'LeakyThing')
  assert.ok(leaky)
  assert.equal(leaky.countDelta, pair.leakAdded)
  assert.equal(leaky.shallowDelta, indep.after.byName.get('LeakyThing').selfSize - indep.before.byName.get('LeakyThing').selfSize)
  assert.ok(Array.isArray(leaky.retainers) && leaky.retainers.length > 0, 'the top growing class has retainer paths')
  assert.ok(leaky.retainers.some((p) => /cache/.test(p.text) && /Map/.test(p.text)), leaky.retainers.map((p) => p.text).join('\n'))
  assert.ok(d.classes.indexOf(leaky) < 10, 'LeakyThing is among the top growing classes')
  const table = await runCli(['diff', pair.before, pair.after])
  assert.equal(table.code, 0)
  assert.match(table.stdout, /objects matched by node id/)
  assert.ok(table.stdout.split('\n').some((l) => l.startsWith('LeakyThing') && l.includes('+2,500')), table.stdout)
  assert.match(table.stdout, /Retained by:\n[\s\S]*cache/)
})

test('diff of two fork captures compares class totals (their ids are unrelated)', { skip: process.platform !== 'linux' && 'fork capture is Linux-only' }, async () => {
  const r = await runCli(['diff', forkPair.before, forkPair.after, '--json'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.json.method, 'aggregate')
  const leaky = r.json.classes.find((c) => c.name === 'LeakyThing')
  assert.equal(leaky.countDelta, forkPair.leakAdded)
})

test('--fail-on-growth exits 1 above the threshold, 0 at or below it, and still prints the report', async () => {
  const d = (await runCli(['diff', pair.before, pair.after, '--json'])).json
  const grew = cli.netGrowth(d)
  assert.ok(grew > 0, `the heap grew: ${grew}`)
  const over = await runCli(['diff', pair.before, pair.after, '--json', '--fail-on-growth', String(grew - 1)])
  assert.equal(over.code, 1, over.stderr)
  assert.ok(over.json && over.json.classes.length > 0, 'the report is printed all the same')
  assert.match(over.stderr, /grew by .* more than --fail-on-growth/)
  const at = await runCli(['diff', pair.before, pair.after, '--json', '--fail-on-growth', String(grew)])
  assert.equal(at.code, 0, at.stderr)
  const units = await runCli(['diff', pair.before, pair.after, '--fail-on-growth', '1GiB'])
  assert.equal(units.code, 0)
})

test('retainers --json gives the merged paths from the roots to a class', async () => {
  const r = await runCli(['retainers', pair.after, 'LeakyThing', '--json', '--limit', '3'])
  assert.equal(r.code, 0, r.stderr)
  assert.ok(Array.isArray(r.json) && r.json.length >= 1 && r.json.length <= 3)
  const total = r.json.reduce((a, p) => a + p.count, 0)
  assert.ok(total <= pair.leakBefore + pair.leakAdded)
  assert.ok(r.json[0].count > 0 && r.json[0].steps.length > 0)
  assert.ok(r.json.some((p) => /cache/.test(p.text)), r.json.map((p) => p.text).join('\n'))
  const none = await runCli(['retainers', pair.after, 'NoSuchClassAnywhere', '--json'])
  assert.equal(none.code, 0)
  assert.deepEqual(none.json, [])
  const table = await runCli(['retainers', pair.after, 'LeakyThing'])
  assert.match(table.stdout, /what retains LeakyThing/)
})

test('a file that is not a snapshot or is cut short exits 3 with the coded error', async () => {
  for (const name of ['not-a-snapshot.txt', 'truncated.heapsnapshot.gz', 'cut.heapsnapshot']) {
    const r = await runCli(['summarize', path.join(dir, name), '--json'])
    assert.equal(r.code, 3, `${name}: ${r.stderr}`)
    assert.equal(r.json.error.code, 'ERR_LEAKGUARD_ANALYSIS_INVALID_SNAPSHOT', `${name}: ${r.stdout}`)
    assert.match(r.stderr, /ERR_LEAKGUARD_ANALYSIS_INVALID_SNAPSHOT/)
  }
  const d = await runCli(['diff', pair.before, path.join(dir, 'truncated.heapsnapshot.gz')])
  assert.equal(d.code, 3)
  assert.equal(d.stdout, '', 'no table for a failed diff')
})

/** A writable that keeps what it gets; `isTTY` as asked. */
function sink (isTTY) {
  const w = new Writable({ write (chunk, enc, cb) { w.text += chunk; cb() } })
  w.text = ''
  w.isTTY = isTTY
  w.columns = 100
  return w
}

test('Ctrl-C cancels a running analysis through its AbortSignal: exit 130', async () => {
  const proc = new EventEmitter()
  proc.exit = () => { throw new Error('exit() must not be needed for the first Ctrl-C') }
  const stdout = sink(false)
  const stderr = sink(false)
  const running = cli.main(['diff', big.before, big.after, '--json'], { stdout, stderr, process: proc })
  assert.equal(proc.listenerCount('SIGINT'), 1, 'the handler is installed while the analysis runs')
  proc.emit('SIGINT')
  assert.equal(await running, cli.EXIT.CANCELLED)
  assert.equal(stdout.text, '', 'nothing printed for a cancelled analysis')
  assert.match(stderr.text, /cancelling…\nleakguard: cancelled\n$/)
  assert.equal(proc.listenerCount('SIGINT'), 0, 'the handler is removed afterwards')
})

test('the progress bar is drawn on a TTY stderr only, and cleared before the result', async () => {
  const tty = sink(true)
  const out = sink(false)
  assert.equal(await cli.main(['summarize', big.after], { stdout: out, stderr: tty, process: new EventEmitter() }), 0)
  assert.match(tty.text, /\rsummarize .*\[[#-]{24}\]\s+\d+%/)
  assert.ok(tty.text.endsWith('\r\x1b[K'), 'the bar is cleared')
  assert.match(out.text, /LeakyThing/)
  const plain = sink(false)
  assert.equal(await cli.main(['summarize', big.after], { stdout: sink(false), stderr: plain, process: new EventEmitter() }), 0)
  assert.equal(plain.text, '')
  const off = sink(true)
  assert.equal(await cli.main(['summarize', big.after, '--no-progress'], { stdout: sink(false), stderr: off, process: new EventEmitter() }), 0)
  assert.equal(off.text, '')
})

test('--memory-limit: an analysis that needs more than the limit fails in its own process', { skip: process.platform !== 'linux' && 'RLIMIT_AS via /proc is Linux-only' }, async () => {
  // ~465k nodes: ~80 MiB beyond Node's own memory (peak RSS measured), not 16 MiB. One
  // malloc arena from the start, as the analysis child runs: no arena reserved before the
  // limit leaves room the limit cannot see.
  const env = { MALLOC_ARENA_MAX: '1' }
  const r = await runCli(['summarize', big.after, '--json', '--memory-limit', '16MiB'], { timeoutMs: 60000, env })
  assert.notEqual(r.code, 0, 'the analysis cannot fit in 16 MiB')
  // Either the allocator aborted the process or the analysis reported the failure.
  assert.ok(r.signal === 'SIGABRT' || (r.code === 3 && r.json.error.code === 'ERR_LEAKGUARD_ANALYSIS_OUT_OF_MEMORY'), `${r.code} ${r.signal} ${r.stdout} ${r.stderr.slice(-500)}`)
  // 256 MiB of address space is enough for the ~80 MiB it uses.
  const ok = await runCli(['summarize', big.after, '--json', '--top', '1', '--memory-limit', '256MiB'], { timeoutMs: 60000, env })
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal(ok.json.classes.length, 1)
})

test('byte sizes parse with binary and decimal units; numbers format for people', () => {
  assert.equal(fmt.parseBytes('4096'), 4096)
  assert.equal(fmt.parseBytes('512KiB'), 512 * 1024)
  assert.equal(fmt.parseBytes('10 MiB'), 10 * 1024 * 1024)
  assert.equal(fmt.parseBytes('1.5GB'), 1.5e9)
  assert.equal(fmt.parseBytes('10XB'), null)
  assert.equal(fmt.parseBytes('-1'), null)
  assert.equal(fmt.bytes(0), '0 B')
  assert.equal(fmt.bytes(1536), '1.5 KiB')
  assert.equal(fmt.bytes(-3 * 1024 * 1024), '-3.0 MiB')
  assert.equal(fmt.signedBytes(2048), '+2.0 KiB')
  assert.equal(fmt.count(1234567), '1,234,567')
  assert.equal(fmt.signedCount(2500), '+2,500')
  assert.equal(fmt.clip('a'.repeat(100), 10).length, 10)
})
