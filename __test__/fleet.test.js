'use strict'
// The fleet files in deploy/: the Prometheus rules are checked by promtool (check rules) and
// unit-tested by it on synthetic series (test rules: they fire on leaks, stay silent on
// sawtooths and flapping verdicts; mutated copies of the rules make those tests fail, so they
// can); every metric the rules and the Grafana dashboard name is in a real /metrics answer
// of leakguard (watch() and adminHandler() on loopback, read with a third-party parser); the
// dashboard's queries parse as PromQL (promtool) and are filtered by its job and instance
// variables.
//
// promtool comes from Debian's prometheus package: scripts/ensure-promtool.sh finds it or
// unpacks it into .tools/bin. Where that cannot work (no apt, no mirror), the promtool tests
// are skipped with the reason printed loudly; the metric-name tests run regardless.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const { spawnSync } = require('node:child_process')
const YAML = require('yaml')
const parsePrometheus = require('parse-prometheus-text-format')

const leakguard = require('..')
const metricsLib = require('../lib/metrics')

const ROOT = path.join(__dirname, '..')
const RULES = path.join(ROOT, 'deploy', 'prometheus', 'leakguard-rules.yml')
const RULE_TESTS = path.join(ROOT, 'deploy', 'prometheus', 'tests')
const DASHBOARD = path.join(ROOT, 'deploy', 'grafana', 'leakguard-dashboard.json')
const TOKEN = 'fleet-test-token-0123456789'

const ALERTS = ['LeakguardMemoryLeak', 'LeakguardMemoryLimitSoon', 'LeakguardFleetGrowing', 'LeakguardHeapPressureCritical', 'LeakguardListenerLeak']

// --- promtool -------------------------------------------------------------------------------

const promtoolPath = (() => {
  const r = spawnSync('sh', [path.join(ROOT, 'scripts', 'ensure-promtool.sh')], { encoding: 'utf8', timeout: 300_000 })
  if (r.status === 0 && r.stdout.trim()) return { path: r.stdout.trim() }
  const reason = (r.stderr || '').trim() || (r.error && r.error.message) || `exit ${r.status}`
  console.log(`#\n# !!! SKIPPING the promtool tests of deploy/prometheus: promtool is not available.\n# !!! ${reason.split('\n').join('\n# !!! ')}\n#`)
  return { skip: `promtool unavailable: ${reason}` }
})()

function promtool (...args) {
  const r = spawnSync(promtoolPath.path, args, { encoding: 'utf8', timeout: 120_000 })
  assert.ok(!r.error, r.error && r.error.message)
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

const ruleTestFiles = () => fs.readdirSync(RULE_TESTS).filter((f) => f.endsWith('.test.yml')).sort().map((f) => path.join(RULE_TESTS, f))

/** Names of the test groups promtool reports as failed (`name: <group>,` lines). */
function failedGroups (out) {
  return new Set([...out.matchAll(/^\s*name: (.+),\s*$/gm)].map((m) => m[1]))
}

/** deploy/prometheus copied to a temporary directory with the rules file rewritten by `mutate`. */
function mutatedCopy (t, mutate) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-rules-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.cpSync(path.join(ROOT, 'deploy', 'prometheus'), dir, { recursive: true })
  const rules = path.join(dir, 'leakguard-rules.yml')
  const before = fs.readFileSync(rules, 'utf8')
  const after = mutate(before)
  assert.notEqual(after, before, 'the mutation changed the rules')
  fs.writeFileSync(rules, after)
  return { rules, tests: fs.readdirSync(path.join(dir, 'tests')).filter((f) => f.endsWith('.test.yml')).sort().map((f) => path.join(dir, 'tests', f)) }
}

// --- PromQL: the metric names and label matchers a query uses ----------------------------------

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan'])

/** `label_values(selector, label)` (a Grafana variable query) → the selector. */
function unwrapLabelValues (q) {
  const m = /^\s*label_values\(\s*(.*?)\s*(?:,\s*[a-zA-Z_]\w*\s*)?\)\s*$/s.exec(q)
  return m ? m[1] : q
}

/** Every metric name in a PromQL expression (not functions, aggregations, keywords or labels). */
function metricNames (expr) {
  let s = unwrapLabelValues(expr)
  s = s.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
  s = s.replace(/\{[^}]*\}/g, ' ') // label matchers
  s = s.replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
  const out = new Set()
  for (const m of s.matchAll(/(?<![\w:.$])([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1].toLowerCase())) continue
    out.add(m[1])
  }
  return out
}

/** `[{ metric, label, op, value }]` for every matcher on a named selector. */
function matchers (expr) {
  const out = []
  for (const m of unwrapLabelValues(expr).matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    for (const l of m[2].matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      out.push({ metric: m[1], label: l[1], op: l[2], value: l[3] })
    }
  }
  return out
}

/** `[{ where, expr }]`: every query of the rules file. */
function ruleQueries () {
  const doc = YAML.parse(fs.readFileSync(RULES, 'utf8'))
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert || r.record}`, expr: r.expr, rule: r })))
}

/** `[{ where, expr }]`: every query of the dashboard (panel targets, variables, annotations). */
function dashboardQueries (dash) {
  const out = []
  for (const p of dash.panels) for (const t of p.targets || []) out.push({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr, panel: true })
  for (const v of dash.templating.list) {
    if (v.type !== 'query') continue
    out.push({ where: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query, variable: v.name })
  }
  for (const a of dash.annotations.list) if (a.expr) out.push({ where: `annotation ${a.name}`, expr: a.expr, panel: true })
  return out
}

// --- a real /metrics answer ---------------------------------------------------------------------

async function get (port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
  })
}

/** Families of a real /metrics answer from watch() + adminHandler() on loopback: name → family. */
async function exportedFamilies (t) {
  const guard = leakguard.watch({ intervalMs: 100, emitters: {} })
  t.after(() => guard.stop())
  const handler = leakguard.adminHandler({ token: TOKEN, prefix: '/debug/leakguard', dir: fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-fleet-')) })
  const server = http.createServer((req, res) => handler(req, res))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  const port = server.address().port
  let fams
  for (let i = 0; i < 100; i++) { // the verdict series appear after the first sample (pressure after a major GC)
    const r = await get(port, '/debug/leakguard/metrics')
    assert.equal(r.status, 200)
    assert.match(r.type, /^text\/plain; version=0\.0\.4/)
    fams = new Map(parsePrometheus(r.body).map((f) => [f.name, f]))
    if (fams.get('leakguard_leak_state')?.metrics.length) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.ok(fams.get('leakguard_leak_state').metrics.length > 0, 'the verdict series are exported after a few samples')
  return fams
}

/** Label names a family has: from its samples in the answer, else as leakguard declares them. */
function labelNamesOf (fam) {
  const names = new Set(fam.metrics.flatMap((m) => Object.keys(m.labels || {})))
  if (names.size === 0) for (const n of metricsLib.FAMILIES.find((f) => f.name === fam.name)?.labelNames || []) names.add(n)
  return names
}

function checkAgainstExport (queries, fams) {
  const problems = []
  for (const q of queries) {
    const names = metricNames(q.expr)
    if (names.size === 0) problems.push(`${q.where}: no metric in ${JSON.stringify(q.expr)}`)
    for (const n of names) if (!fams.has(n)) problems.push(`${q.where}: ${n} is not exported by leakguard`)
    for (const m of matchers(q.expr)) {
      const fam = fams.get(m.metric)
      if (!fam || m.label === 'job' || m.label === 'instance') continue // job, instance: Prometheus adds them
      if (!labelNamesOf(fam).has(m.label)) problems.push(`${q.where}: ${m.metric} has no label ${m.label}`)
      if (m.label === 'state' && (m.op === '=' || m.op === '=~')) {
        const states = new Set(fam.metrics.map((x) => x.labels.state))
        for (const v of m.value.split('|')) if (!states.has(v)) problems.push(`${q.where}: ${m.metric} has no state "${v}" (exports ${[...states].join(', ')})`)
      }
    }
  }
  return problems
}

// --- tests ----------------------------------------------------------------------------------------

test('the PromQL reader finds metric names and matchers, not functions, labels or keywords', () => {
  const expr = 'sum by (instance, kind) (rate(http_requests_total{job=~"$job",code!="200"}[$__rate_interval])) / on (job) group_left up\n  and max_over_time(foo:bar[5m:1m] offset 1h) > 1e3 * 4 unless time() - vector(0)'
  assert.deepEqual([...metricNames(expr)].sort(), ['foo:bar', 'http_requests_total', 'up'])
  assert.deepEqual(matchers(expr), [{ metric: 'http_requests_total', label: 'job', op: '=~', value: '$job' }, { metric: 'http_requests_total', label: 'code', op: '!=', value: '200' }])
  assert.deepEqual([...metricNames('label_values(leakguard_leak_state{job=~"$job"}, instance)')], ['leakguard_leak_state'])
})

test('promtool check rules: the rules file is valid and has the five alerts', { skip: promtoolPath.skip }, () => {
  const r = promtool('check', 'rules', RULES)
  assert.equal(r.status, 0, r.out)
  assert.match(r.out, new RegExp(`SUCCESS: ${ALERTS.length} rules found`))
  assert.deepEqual(ruleQueries().map((q) => q.rule.alert), ALERTS)
  for (const q of ruleQueries()) {
    assert.ok(q.rule.labels && ['warning', 'critical'].includes(q.rule.labels.severity), `${q.where} has a severity`)
    assert.ok(q.rule.annotations && q.rule.annotations.summary && q.rule.annotations.description, `${q.where} has a summary and a description`)
    assert.ok(q.rule.for, `${q.where} waits (for:) before it fires`)
  }
})

test('promtool test rules: the alerts fire on synthetic leaks and stay silent on sawtooths and flapping verdicts', { skip: promtoolPath.skip }, () => {
  const files = ruleTestFiles()
  assert.ok(files.length >= 3, 'rule test files in deploy/prometheus/tests')
  const r = promtool('test', 'rules', ...files)
  assert.equal(r.status, 0, r.out)
  assert.equal((r.out.match(/SUCCESS/g) || []).length, files.length, r.out)
  // Every alert is expected to fire somewhere and to be silent somewhere.
  const fires = new Set()
  const silent = new Set()
  for (const f of files) {
    for (const group of YAML.parse(fs.readFileSync(f, 'utf8')).tests) {
      for (const a of group.alert_rule_test || []) (a.exp_alerts && a.exp_alerts.length ? fires : silent).add(a.alertname)
    }
  }
  assert.deepEqual([...fires].sort(), [...ALERTS].sort(), 'every alert has a test where it fires')
  assert.deepEqual([...silent].sort(), [...ALERTS].sort(), 'every alert has a test where it stays silent')
})

test('the rule tests can fail: without for: the sawtooth and flapping series fire; with no leakguard series nothing fires', { skip: promtoolPath.skip }, (t) => {
  const SILENT = ['a sawtooth and flapping verdicts stay silent', 'instances taking turns, and a job of one', 'flapping pressure and a blip of listeners stay silent']
  const FIRING = ['a leaking instance', 'a bad deploy', 'a death spiral and a listener leak']
  const noFor = mutatedCopy(t, (s) => s.replace(/^\s+for: \S+\n/gm, ''))
  const a = promtool('test', 'rules', ...noFor.tests)
  assert.notEqual(a.status, 0, a.out)
  const failedA = failedGroups(a.out)
  for (const g of SILENT) assert.ok(failedA.has(g), `without for:, "${g}" fires (${[...failedA].join('; ')})`)
  const renamed = mutatedCopy(t, (s) => s.replace(/\bleakguard_(\w+)/g, 'notleakguard_$1'))
  const b = promtool('test', 'rules', ...renamed.tests)
  assert.notEqual(b.status, 0, b.out)
  assert.deepEqual([...failedGroups(b.out)].sort(), [...FIRING].sort(), 'exactly the groups that expect alerts fail')
})

test('every metric and label the rules and the dashboard use is in a real /metrics answer', async (t) => {
  const fams = await exportedFamilies(t)
  for (const name of fams.keys()) assert.match(name, /^leakguard_/)
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'))
  const rules = ruleQueries()
  const board = dashboardQueries(dash)
  assert.deepEqual(checkAgainstExport(rules, fams), [])
  assert.deepEqual(checkAgainstExport(board, fams), [])
  // What the dashboard does not show yet (new families land here first): reported, not failed.
  const shown = new Set(board.flatMap((q) => [...metricNames(q.expr)]))
  const unshown = [...fams.keys()].filter((n) => !shown.has(n))
  if (unshown.length) console.log(`# exported but on no dashboard panel: ${unshown.join(', ')}`)
})

test('the dashboard has job and instance variables, and every query is filtered by both', () => {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'))
  const vars = Object.fromEntries(dash.templating.list.map((v) => [v.name, v]))
  assert.equal(vars.datasource.type, 'datasource')
  assert.equal(vars.datasource.query, 'prometheus')
  for (const name of ['job', 'instance']) {
    assert.equal(vars[name].type, 'query', name)
    assert.equal(vars[name].multi, true, name)
    assert.equal(vars[name].includeAll, true, name)
  }
  assert.match(vars.instance.query.query, /job=~"\$job"/, 'instance choices follow the job')
  const ids = dash.panels.map((p) => p.id)
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids')
  for (const p of dash.panels) {
    assert.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel ${p.id} gridPos`)
    if (p.type === 'row') continue
    assert.ok(p.targets.length > 0, `panel ${p.id} has queries`)
    assert.equal(p.datasource.uid, '${datasource}', `panel ${p.id} uses the datasource variable`)
  }
  for (const q of dashboardQueries(dash).filter((q) => q.panel)) {
    const selectors = [...q.expr.matchAll(/\b(leakguard_\w+)(\{[^}]*\})?/g)]
    assert.ok(selectors.length > 0, q.where)
    for (const s of selectors) {
      assert.ok(s[2] && s[2].includes('job=~"$job"') && s[2].includes('instance=~"$instance"'), `${q.where}: ${s[0]} is filtered by $job and $instance`)
    }
  }
})

test("promtool parses every dashboard query as PromQL (Grafana's variables filled in)", { skip: promtoolPath.skip }, (t) => {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'))
  const fill = (e) => e.replace(/\$__rate_interval|\$__interval/g, '5m').replace(/\$\{?(job|instance)\}?/g, '.*')
  const queries = dashboardQueries(dash).filter((q) => !q.variable)
  const rules = { groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `leakguard_dashboard:query_${i}`, expr: fill(q.expr) })) }] }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-dash-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'dashboard-rules.yml')
  fs.writeFileSync(file, YAML.stringify(rules))
  const r = promtool('check', 'rules', file)
  assert.equal(r.status, 0, r.out)
  assert.match(r.out, new RegExp(`SUCCESS: ${queries.length} rules found`))
  // and a broken query would not pass
  fs.writeFileSync(file, YAML.stringify({ groups: [{ name: 'd', rules: [{ record: 'x:y', expr: 'sum(rate(leakguard_captures_total[5m])' }] }] }))
  assert.notEqual(promtool('check', 'rules', file).status, 0)
})
