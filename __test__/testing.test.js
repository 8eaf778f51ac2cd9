'use strict'
// leakguard/testing under each real runner: node:test, Jest, Vitest and Mocha, each run as
// its own CLI in a child process on the fixtures in __test__/fixtures/testing/. The
// fixtures assert the outcomes themselves (a leak rejects with the class and its owner in
// the path, a clean scenario and a bounded cache pass, expectCollected...); here the
// runner's own machine-readable report must show every one of those tests passed. A
// second, "red" run per runner writes the leak test naively and must fail, with the
// runner printing the table and the path, and the snapshots left on disk.
//
// LEAKGUARD_TESTING_SOAK=1: every green run 10 times in a row (flake hunt; ~10x longer).
// LEAKGUARD_TESTING_RUNNERS=node,jest,vitest,mocha: only those runners (default: all).

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const FIX = path.join(__dirname, 'fixtures', 'testing')
const SOAK = process.env.LEAKGUARD_TESTING_SOAK === '1'
const REPEAT = SOAK ? 10 : 1
const TIMEOUT_MS = 15 * 60 * 1000
const ONLY = process.env.LEAKGUARD_TESTING_RUNNERS ? new Set(process.env.LEAKGUARD_TESTING_RUNNERS.split(',').map((r) => (r === 'node' ? 'node:test' : r))) : null
const skip = (name) => (ONLY && !ONLY.has(name) ? `not in LEAKGUARD_TESTING_RUNNERS=${process.env.LEAKGUARD_TESTING_RUNNERS}` : false)

function run (args, { env = {}, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    // Each runner as a user starts it: not as a subtest of this node:test process.
    const base = { ...process.env }
    delete base.NODE_TEST_CONTEXT
    const child = spawn(process.execPath, args, {
      cwd,
      env: { ...base, FORCE_COLOR: '0', NO_COLOR: '1', CI: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { out += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${args.join(' ')} timed out:\n${out}`)) }, TIMEOUT_MS)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, out, ms: Date.now() - t0 })
    })
  })
}

const bin = (p) => path.join(ROOT, 'node_modules', p)

/**
 * Each runner: its command line (given a report file), and how to read
 * { passed: [names], failed: [names] } from its report.
 */
const RUNNERS = {
  'node:test': {
    args: (report, extra = []) => [...extra, '--test', '--test-reporter=tap', `--test-reporter-destination=${report}`, path.join(FIX, 'node-runner.test.js')],
    read: (report) => {
      const text = fs.readFileSync(report, 'utf8')
      const passed = [...text.matchAll(/^ok \d+ - (.*)$/gm)].map((m) => m[1])
      const failed = [...text.matchAll(/^not ok \d+ - (.*)$/gm)].map((m) => m[1])
      return { passed, failed }
    },
    expected: 11
  },
  jest: {
    args: (report) => [bin('jest/bin/jest.js'), '--config', path.join(FIX, 'jest.config.js'), '--runInBand', '--json', `--outputFile=${report}`],
    read: (report) => {
      const r = JSON.parse(fs.readFileSync(report, 'utf8'))
      const all = r.testResults.flatMap((f) => f.assertionResults)
      return { passed: all.filter((a) => a.status === 'passed').map((a) => a.title), failed: all.filter((a) => a.status !== 'passed').map((a) => a.title) }
    },
    expected: 8
  },
  vitest: {
    args: (report) => [bin('vitest/vitest.mjs'), 'run', '--root', FIX, '--reporter=json', `--outputFile=${report}`],
    read: (report) => {
      const r = JSON.parse(fs.readFileSync(report, 'utf8'))
      const all = r.testResults.flatMap((f) => f.assertionResults)
      return { passed: all.filter((a) => a.status === 'passed').map((a) => a.title), failed: all.filter((a) => a.status !== 'passed').map((a) => a.title) }
    },
    expected: 9
  },
  mocha: {
    args: (report) => [bin('mocha/bin/mocha.js'), '--reporter', 'json', '--reporter-option', `output=${report}`, path.join(FIX, 'mocha-runner.spec.js')],
    read: (report) => {
      const r = JSON.parse(fs.readFileSync(report, 'utf8'))
      return { passed: r.passes.map((t) => t.title), failed: r.failures.map((t) => t.title) }
    },
    expected: 7
  }
}

function tmp () {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lg-testing-runner-'))
  return { dir: d, report: path.join(d, 'report.out'), snapshots: fs.mkdtempSync(path.join(d, 'snapshots-')) }
}

async function green (name, { extra, label = name } = {}) {
  const r = RUNNERS[name]
  const times = []
  for (let i = 0; i < REPEAT; i++) {
    const t = tmp()
    try {
      const res = await run(r.args(t.report, extra), { env: { LEAKGUARD_FIXTURE_DIR: t.snapshots } })
      const rep = fs.existsSync(t.report) ? r.read(t.report) : { passed: [], failed: ['(no report)'] }
      assert.deepEqual(rep.failed, [], `${label} run ${i + 1}: failed tests ${rep.failed.join(', ')}\n${res.out}`)
      assert.equal(rep.passed.length, r.expected, `${label} run ${i + 1}: ${rep.passed.length} passed, expected ${r.expected}\n${res.out}`)
      assert.equal(res.code, 0, `${label} run ${i + 1} exit code\n${res.out}`)
      assert.deepEqual(fs.readdirSync(t.snapshots), [], 'every kept snapshot directory was removed by the fixture')
      times.push(res.ms)
      if (SOAK) console.log(`${label}: run ${i + 1}/${REPEAT} green (${res.ms} ms)`)
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true })
    }
  }
  console.log(`${label}: ${REPEAT} green run(s) in a row, all passed; wall ms ${times.join(', ')}`)
}

async function red (name, { mustShow }) {
  const r = RUNNERS[name]
  const t = tmp()
  try {
    const res = await run(r.args(t.report), { env: { LEAKGUARD_FIXTURE_DIR: t.snapshots, RED: '1' } })
    assert.notEqual(res.code, 0, `${name}: a leaking test fails the run\n${res.out}`)
    const rep = r.read(t.report)
    assert.equal(rep.passed.length, 0, `${name}: no red test passed`)
    assert.ok(rep.failed.length >= 1)
    const text = res.out + fs.readFileSync(t.report, 'utf8')
    for (const s of mustShow) assert.ok(text.includes(s), `${name} reports ${JSON.stringify(s)}:\n${res.out}`)
    // A failure keeps its snapshots, private.
    const kept = fs.readdirSync(t.snapshots)
    assert.ok(kept.length >= 1, 'the failure kept its snapshot directory')
    for (const k of kept) {
      const d = path.join(t.snapshots, k)
      assert.equal(fs.statSync(d).mode & 0o777, 0o700)
      const files = fs.readdirSync(d).filter((f) => /\.heapsnapshot(\.gz)?$/.test(f))
      assert.ok(files.length >= 2, `snapshots kept in ${d}`)
      for (const f of files) assert.equal(fs.statSync(path.join(d, f)).mode & 0o777, 0o600)
    }
  } finally {
    fs.rmSync(t.dir, { recursive: true, force: true })
  }
}

const LEAK_SHOWN = ['LeakedRecord', 'retainedRecords', 'grew by at least', 'Retained by']

test('node:test: every leak-test fixture passes (no --expose-gc)', { skip: skip('node:test'), timeout: TIMEOUT_MS * REPEAT }, () => green('node:test'))
test('node:test: the same with --expose-gc', { skip: skip('node:test'), timeout: TIMEOUT_MS * REPEAT }, () => green('node:test', { extra: ['--expose-gc'], label: 'node:test --expose-gc' }))
test('jest: every leak-test fixture passes', { skip: skip('jest'), timeout: TIMEOUT_MS * REPEAT }, () => green('jest'))
test('vitest: every leak-test fixture passes', { skip: skip('vitest'), timeout: TIMEOUT_MS * REPEAT }, () => green('vitest'))
test('mocha: every leak-test fixture passes', { skip: skip('mocha'), timeout: TIMEOUT_MS * REPEAT }, () => green('mocha'))

test('node:test reports a naive leak test as failed, with the table and the path', { skip: skip('node:test'), timeout: TIMEOUT_MS }, () => red('node:test', { mustShow: [...LEAK_SHOWN, 'ERR_LEAKGUARD_TEST_LEAK'] }))
test('jest reports naive leak tests (matcher and plain) as failed, with the table and the path', { skip: skip('jest'), timeout: TIMEOUT_MS }, () => red('jest', { mustShow: [...LEAK_SHOWN, '.not.toLeak', 'SessionBus'] }))
test('vitest reports naive leak tests (matcher and plain) as failed, with the table and the path', { skip: skip('vitest'), timeout: TIMEOUT_MS }, () => red('vitest', { mustShow: [...LEAK_SHOWN, 'SessionBus'] }))
test('mocha reports a naive leak test as failed, with the table and the path', { skip: skip('mocha'), timeout: TIMEOUT_MS }, () => red('mocha', { mustShow: [...LEAK_SHOWN, 'ERR_LEAKGUARD_TEST_LEAK'] }))
