'use strict'
// Metrics: the text exposition read back with a third-party Prometheus parser, for a full
// status (every monitor-owned field), an empty or malformed one (no made-up values), the
// running guard's, and the same families through a real prom-client registry.

const test = require('node:test')
const assert = require('node:assert/strict')
const parsePrometheus = require('parse-prometheus-text-format')
const promClient = require('prom-client')

const leakguard = require('..')
const metrics = require('../lib/metrics')

const { codes } = leakguard

/** Every line by the exposition grammar (format 0.0.4), HELP and TYPE once, before the samples. */
function checkLines (text) {
  assert.ok(text.endsWith('\n'))
  const typed = new Set()
  const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"'
  const sample = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{${label}(?:,${label})*\\})? (?:[-+]?[0-9.eE+-]+|NaN|[+-]Inf)$`)
  for (const line of text.slice(0, -1).split('\n')) {
    let m
    if (line === '') continue // allowed between families (prom-client writes them)
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) continue
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter)$/.exec(line))) {
      assert.ok(!typed.has(m[1]), `one TYPE for ${m[1]}`)
      typed.add(m[1])
      continue
    }
    m = sample.exec(line)
    assert.ok(m, `a valid sample line: ${JSON.stringify(line)}`)
    assert.ok(typed.has(m[1]), `TYPE before samples of ${m[1]}`)
  }
}

function parse (text) {
  checkLines(text)
  const fams = parsePrometheus(text)
  const byName = Object.fromEntries(fams.map((f) => [f.name, f]))
  for (const f of fams) {
    assert.match(f.name, /^leakguard_[a-z0-9_]+$/)
    assert.ok(f.help.length > 0, `${f.name} HELP`)
    assert.ok(['GAUGE', 'COUNTER'].includes(f.type), `${f.name} TYPE`)
    for (const m of f.metrics) assert.ok(Number.isFinite(Number(m.value)), `${f.name} ${m.value}`)
  }
  return byName
}

const value = (fam, labels = {}) => {
  const m = fam.metrics.find((x) => Object.entries(labels).every(([k, v]) => (x.labels || {})[k] === v))
  return m ? Number(m.value) : undefined
}

/** A status shaped as the monitor and the listener auditor report it (issues #4, #5). */
function fullStatus () {
  const leaks = Array.from({ length: 15 }, (_, i) => ({ emitter: `emitter-${i}`, event: 'data', count: 100 + i, ratePerMinute: i, callSites: [] }))
  leaks.push({ emitter: 'odd "name"\\with\nnewline', event: 'ev', count: 1000, ratePerMinute: 1, callSites: [] })
  return {
    heap: { state: 'leak', slopeBytesPerHour: 123456789, confidence: 0.97, floorBytes: 5e7, projectedLimitAt: 1_900_000_000_000 },
    native: { state: 'healthy', slopeBytesPerHour: -5, confidence: 0.2, floorBytes: 1e7, projectedLimitAt: null },
    pressure: { level: 'high', reasons: ['heap'] },
    latest: {
      time: Date.now(),
      rss: 1,
      heapUsed: 2,
      gc: {
        minor: { count: 10, pauseMs: 50 },
        major: { count: 2, pauseMs: 250 },
        incremental: { count: 4, pauseMs: 8 },
        weakCallbacks: { count: 1, pauseMs: 0.5 }
      },
      loopDelay: { p50Ms: 1.5, p99Ms: 42, maxMs: 120 }
    },
    listeners: { leaks: leaks.slice(0, 12), suspects: leaks.slice(12) },
    captures: []
  }
}

test('a full status renders every family with values a Prometheus parser reads back', () => {
  const counts = { done: 3, failed: { [codes.CAPTURE_IN_PROGRESS]: 2 }, last: { stallMs: 45, durationMs: 1500, bytes: 4096 }, lastAt: 1_800_000_000_000, uploads: { ok: 2, failed: 1, aborted: 0, bytes: 5000, lastAt: 1_800_000_500_000 } }
  const m = parse(metrics.render(fullStatus(), counts))
  for (const f of metrics.FAMILIES) assert.ok(m[f.name], `${f.name} is rendered`)
  assert.equal(value(m.leakguard_gc_pause_seconds_total, { kind: 'major' }), 0.25)
  assert.equal(value(m.leakguard_gc_pause_seconds_total, { kind: 'weakcb' }), 0.0005)
  assert.equal(value(m.leakguard_gc_runs_total, { kind: 'minor' }), 10)
  assert.equal(value(m.leakguard_event_loop_delay_p99_seconds), 0.042)
  assert.equal(value(m.leakguard_event_loop_delay_max_seconds), 0.12)
  assert.equal(value(m.leakguard_leak_state, { series: 'heap', state: 'leak' }), 1)
  assert.equal(value(m.leakguard_leak_state, { series: 'heap', state: 'healthy' }), 0)
  assert.equal(value(m.leakguard_leak_state, { series: 'native', state: 'healthy' }), 1)
  assert.equal(m.leakguard_leak_state.metrics.reduce((s, x) => s + Number(x.value), 0), 2, 'one state per series')
  assert.equal(value(m.leakguard_leak_slope_bytes_per_hour, { series: 'heap' }), 123456789)
  assert.equal(value(m.leakguard_leak_projected_limit_timestamp_seconds, { series: 'heap' }), 1_900_000_000)
  assert.equal(value(m.leakguard_leak_projected_limit_timestamp_seconds, { series: 'native' }), undefined)
  assert.equal(value(m.leakguard_pressure, { level: 'high' }), 1)
  // Bounded cardinality: the top 10 by count, the odd name escaped and read back intact.
  assert.equal(m.leakguard_listener_count.metrics.length, metrics.TOP_LISTENERS)
  assert.equal(value(m.leakguard_listener_count, { emitter: 'odd "name"\\with\nnewline' }), 1000)
  assert.equal(value(m.leakguard_listener_count, { emitter: 'emitter-14' }), 114)
  assert.equal(value(m.leakguard_listener_count, { emitter: 'emitter-0' }), undefined)
  assert.equal(value(m.leakguard_listener_leaks), 12)
  assert.equal(value(m.leakguard_captures_total), 3)
  assert.equal(value(m.leakguard_capture_failures_total, { code: codes.CAPTURE_IN_PROGRESS }), 2)
  assert.equal(value(m.leakguard_last_capture_stall_seconds), 0.045)
  assert.equal(value(m.leakguard_last_capture_timestamp_seconds), 1_800_000_000)
  assert.equal(value(m.leakguard_uploads_total, { result: 'ok' }), 2)
  assert.equal(value(m.leakguard_uploads_total, { result: 'failed' }), 1)
  assert.equal(value(m.leakguard_uploads_total, { result: 'aborted' }), 0)
  assert.equal(value(m.leakguard_upload_bytes_total), 5000)
  assert.equal(value(m.leakguard_last_upload_timestamp_seconds), 1_800_000_500)
  assert.ok(value(m.leakguard_heap_size_limit_bytes) > value(m.leakguard_heap_used_bytes))
})

test('missing or malformed monitor fields give no sample, never a made-up value', () => {
  for (const status of [undefined, null, {}, { heap: null, latest: null, listeners: null }, { heap: { state: 7, slopeBytesPerHour: 'x' }, latest: { gc: { major: { pauseMs: NaN } }, loopDelay: { p50Ms: null, p99Ms: Infinity } }, listeners: { leaks: 'no' } }]) {
    const m = parse(metrics.render(status))
    for (const n of ['leakguard_gc_pause_seconds_total', 'leakguard_event_loop_delay_p50_seconds', 'leakguard_event_loop_delay_p99_seconds', 'leakguard_leak_state', 'leakguard_leak_slope_bytes_per_hour', 'leakguard_listener_count', 'leakguard_pressure']) {
      assert.equal(m[n].metrics.length, 0, `${n} for ${JSON.stringify(status)}`)
    }
    assert.ok(value(m.leakguard_rss_bytes) > 0, 'live figures are always there')
    assert.equal(value(m.leakguard_captures_total), 0)
  }
})

test('guard.metrics() parses, and a prom-client registry gets the same families', async () => {
  const g = leakguard.watch()
  try {
    const own = parse(g.metrics())
    const register = new promClient.Registry()
    const c = leakguard.promCollector(register)
    assert.deepEqual(c.names, metrics.FAMILIES.map((f) => f.name))
    const viaProm = parse(await register.metrics())
    assert.deepEqual(Object.keys(viaProm).sort(), Object.keys(own).sort())
    for (const name of Object.keys(own)) {
      assert.equal(viaProm[name].type, own[name].type, name)
      assert.equal(viaProm[name].metrics.length, own[name].metrics.length, `${name}: same samples (none made up by prom-client)`)
    }
    assert.equal(value(viaProm.leakguard_captures_total), value(own.leakguard_captures_total))
    assert.ok(value(viaProm.leakguard_heap_used_bytes) > 0)
    // Twice into one registry: a coded error, not prom-client's.
    assert.throws(() => leakguard.promCollector(register), (err) => err.code === codes.OPTIONS_INVALID)
    c.unregister()
    assert.equal(register.getSingleMetric('leakguard_rss_bytes'), undefined)
    leakguard.promCollector(register, { client: promClient }).unregister()
    // The default registry, as most applications use it.
    const d = leakguard.promCollector(promClient.register)
    try {
      assert.ok(parse(await promClient.register.metrics()).leakguard_rss_bytes)
    } finally {
      d.unregister()
    }
  } finally {
    g.stop()
  }
})

test('promCollector: bad arguments are coded errors at the call', () => {
  for (const [args, Base] of [[[undefined], TypeError], [[{}], TypeError], [[new promClient.Registry(), { client: {} }], TypeError], [[new promClient.Registry(), { clinet: promClient }], TypeError]]) {
    assert.throws(() => leakguard.promCollector(...args), (err) => err instanceof Base && err.code === codes.OPTIONS_INVALID)
  }
})
