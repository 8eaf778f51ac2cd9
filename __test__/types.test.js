'use strict'
// index.d.ts and testing.d.ts checked by the real TypeScript compiler (`typescript`, a
// devDependency) in one program, three ways:
//   - a user's program (fixtures/types/usage.ts), importing the package by its own name
//     through package.json "exports", compiles under --strict;
//   - a program of wrong calls (fixtures/types/bad.ts) fails on exactly its marked lines, so
//     the declarations are specific and the check can fail;
//   - what the API really returns (summarize, diff with detectors and paths, retainers, a
//     capture, sample, status, report) is written out as object literals typed with the
//     declared interfaces: tsc's excess-property and missing-property checks then fail on
//     any field the code returns and the types do not declare, or the other way round.
// And the module's runtime exports are exactly the names index.d.ts / testing.d.ts declare.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const ts = require('typescript')

const leakguard = require('..')
const { tmpDir, capturePair } = require('./helpers/analysis')

const root = path.join(__dirname, '..')
const fixtures = path.join(__dirname, 'fixtures', 'types')
const OPTIONS = { noEmit: true, strict: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, types: ['node'] }
const usage = path.join(fixtures, 'usage.ts')
const bad = path.join(fixtures, 'bad.ts')
let results = null // written by before(), inside the package so `leakguard` resolves to it
let program = null

/** tsc's diagnostics for one root file, as `line: message` (1-based lines). */
function diagnostics (file) {
  const sf = program.getSourceFile(file)
  assert.ok(sf, file)
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map((d) => {
    const where = d.file ? `${path.relative(root, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '?'
    return { file: d.file && d.file.fileName, line: d.file ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0, text: `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}` }
  })
}

before(async () => {
  // What the API really returns, typed with the declared interfaces.
  const dir = tmpDir('leakguard-types-')
  try {
    const pair = await capturePair(dir, { mode: 'inline' })
    const values = {}
    values.summary = ['SnapshotSummary', await leakguard.summarize(pair.after, { limit: 30 })]
    const d = await leakguard.diff(pair.before, pair.after, { top: 3, pathLimit: 2, minGrowth: 5 })
    assert.ok(d.detectors.length > 0 && d.classes.some((c) => c.retainers && c.retainers.length), 'the diff has detectors and paths to check')
    values.diff = ['DiffReport', d]
    values.aggregate = ['DiffReport', await leakguard.diff(pair.before, pair.after, { method: 'aggregate', top: 2 })]
    values.retainers = ['RetainerPath[]', await leakguard.retainers(pair.after, { className: 'LeakyThing', limit: 2 })]
    values.sample = ['MemorySample', leakguard.sample()]
    const guard = leakguard.watch({ intervalMs: 200, capture: { dir, mode: 'inline' } })
    try {
      await new Promise((resolve) => setTimeout(resolve, 600))
      values.capture = ['CaptureResult', await guard.capture({ force: true, reason: 'types' })]
      values.status = ['Status', guard.status()]
      values.report = ['Report', await guard.report()]
    } finally {
      guard.stop()
    }
    const src = ["import type * as L from 'leakguard'"]
    for (const [name, [type, value]] of Object.entries(values)) {
      src.push(`export const ${name}: L.${type} = ${JSON.stringify(value, null, 1)}`)
    }
    results = path.join(fs.mkdtempSync(path.join(fixtures, 'tmp-')), 'results.ts')
    fs.writeFileSync(results, src.join('\n') + '\n')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  // One program for every check (a tsc start costs seconds): the package resolves itself by
  // name through package.json "exports", as in a user's project.
  program = ts.createProgram([usage, bad, results, path.join(root, 'index.d.ts'), path.join(root, 'testing.d.ts')], OPTIONS)
})

after(() => { if (results) fs.rmSync(path.dirname(results), { recursive: true, force: true }) })

test('a TypeScript user of the public API (leakguard and leakguard/testing) compiles under --strict', () => {
  assert.deepEqual(diagnostics(usage).map((d) => d.text), [])
  // The declarations themselves, as the program saw them through the imports.
  for (const f of ['index.d.ts', 'testing.d.ts']) assert.deepEqual(diagnostics(path.join(root, f)).map((d) => d.text), [], f)
})

test('wrong calls fail to compile on exactly the marked lines', () => {
  const marked = fs.readFileSync(bad, 'utf8').split('\n').map((l, i) => (l.includes('// EXPECT-ERROR') ? i + 1 : 0)).filter(Boolean)
  assert.ok(marked.length >= 5)
  const found = diagnostics(bad)
  assert.deepEqual([...new Set(found.map((d) => d.line))], marked, found.map((d) => d.text).join('\n'))
})

test("the API's real results conform to the declared interfaces (no field missing, none undeclared)", () => {
  assert.deepEqual(diagnostics(results).map((d) => d.text).slice(0, 20), [])
})

test('the runtime exports are the names the declarations export', () => {
  const checker = program.getTypeChecker()
  const declared = (file) => checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file)))
    // Values only: interfaces and types have no runtime counterpart.
    .filter((s) => ((s.flags & ts.SymbolFlags.Alias) ? checker.getAliasedSymbol(s) : s).flags & ts.SymbolFlags.Value)
    .map((s) => s.name).filter((n) => n !== 'default').sort()
  assert.deepEqual(Object.keys(leakguard).sort(), declared(path.join(root, 'index.d.ts')))
  assert.deepEqual(Object.keys(require('../testing')).filter((n) => n !== 'default').sort(), declared(path.join(root, 'testing.d.ts')))
})
