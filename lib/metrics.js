'use strict'
// Prometheus metrics: one schema of metric families, read from a status-like object
// (Guard.status() or the admin route's own) plus live process/V8 figures, rendered as the
// text exposition format 0.0.4 (renderText) or fed to a prom-client registry (lib/prom.js).
//
// Pure: no timers, no state. Monitor-owned figures (GC by kind, event-loop delay, the
// verdicts, pressure) are read defensively: a field that is missing, null or not a finite
// number yields no sample rather than a made-up zero.

const v8 = require('node:v8')

/** At most this many (emitter, event) series for the listener counts: bounded cardinality. */
const TOP_LISTENERS = 10
/** At most this many allocation sites in the site gauges: bounded cardinality. */
const TOP_SITES = 10
/** Label values are cut to this many characters (emitter names come from users). */
const MAX_LABEL_LENGTH = 120
const LEAK_STATES = ['warming-up', 'healthy', 'growing', 'leak']
const GC_KINDS = [['minor', 'minor'], ['major', 'major'], ['incremental', 'incremental'], ['weakCallbacks', 'weakcb']]

const finite = (v) => typeof v === 'number' && Number.isFinite(v)
const obj = (v) => (v !== null && typeof v === 'object' ? v : null)
const one = (value, labels = {}) => (finite(value) ? [{ labels, value }] : [])
const sec = (ms) => (finite(ms) ? ms / 1000 : undefined)

/** Verdict series: [label, LeakReport] for the ones the status has. */
function verdicts (status) {
  const out = []
  for (const series of ['heap', 'native']) {
    const r = obj(status[series])
    if (r) out.push([series, r])
  }
  return out
}

/** Top listener series by count, from the report's leaks and suspects. */
function topListeners (report) {
  const r = obj(report)
  if (!r) return []
  const all = []
  for (const key of ['leaks', 'suspects']) {
    if (!Array.isArray(r[key])) continue
    for (const l of r[key]) {
      if (obj(l) && finite(l.count)) all.push(l)
    }
  }
  all.sort((a, b) => b.count - a.count)
  const seen = new Set()
  const out = []
  for (const l of all) {
    const labels = { emitter: String(l.emitter ?? ''), event: String(l.event ?? '') }
    const k = `${labels.emitter}\0${labels.event}`
    if (seen.has(k)) continue
    seen.add(k)
    out.push({ labels, value: l.count })
    if (out.length === TOP_LISTENERS) break
  }
  return out
}

/** Up to TOP_SITES `{ labels: { site }, value }` of the sites that pass `keep`, by distinct name. */
function topSites (sites, keep, value) {
  if (!Array.isArray(sites)) return []
  const out = []
  const seen = new Set()
  for (const s of sites) {
    if (!obj(s) || !keep(s) || !finite(value(s))) continue
    const site = String(s.name ?? '')
    if (seen.has(site)) continue
    seen.add(site)
    out.push({ labels: { site }, value: value(s) })
    if (out.length === TOP_SITES) break
  }
  return out
}

/**
 * Every family leakguard exports: name, type, help, label names and how to read its
 * samples from the context `{ status, memory, heap, counts }`.
 */
const FAMILIES = [
  { name: 'leakguard_rss_bytes', type: 'gauge', help: 'Resident set size of the process, bytes (process.memoryUsage().rss).', labelNames: [], samples: (c) => one(c.memory.rss) },
  { name: 'leakguard_heap_used_bytes', type: 'gauge', help: 'V8 heap used, bytes (process.memoryUsage().heapUsed).', labelNames: [], samples: (c) => one(c.memory.heapUsed) },
  { name: 'leakguard_heap_total_bytes', type: 'gauge', help: 'V8 heap committed, bytes (process.memoryUsage().heapTotal).', labelNames: [], samples: (c) => one(c.memory.heapTotal) },
  { name: 'leakguard_heap_size_limit_bytes', type: 'gauge', help: 'V8 heap size limit, bytes (v8.getHeapStatistics().heap_size_limit).', labelNames: [], samples: (c) => one(c.heap.heap_size_limit) },
  { name: 'leakguard_external_bytes', type: 'gauge', help: 'Memory of C++ objects bound to JS objects, bytes (process.memoryUsage().external).', labelNames: [], samples: (c) => one(c.memory.external) },
  { name: 'leakguard_array_buffers_bytes', type: 'gauge', help: 'Memory of ArrayBuffers and SharedArrayBuffers, bytes (process.memoryUsage().arrayBuffers).', labelNames: [], samples: (c) => one(c.memory.arrayBuffers) },
  {
    name: 'leakguard_gc_pause_seconds_total',
    type: 'counter',
    help: 'GC pause time since the monitor started, seconds, by kind (minor, major, incremental, weakcb).',
    labelNames: ['kind'],
    samples: (c) => gcSamples(c, 'pauseMs', sec)
  },
  {
    name: 'leakguard_gc_runs_total',
    type: 'counter',
    help: 'GC runs since the monitor started, by kind (minor, major, incremental, weakcb).',
    labelNames: ['kind'],
    samples: (c) => gcSamples(c, 'count', (v) => v)
  },
  { name: 'leakguard_event_loop_delay_p50_seconds', type: 'gauge', help: 'Event-loop delay, median over the last sampling window, seconds.', labelNames: [], samples: (c) => one(sec(loop(c).p50Ms)) },
  { name: 'leakguard_event_loop_delay_p99_seconds', type: 'gauge', help: 'Event-loop delay, 99th percentile over the last sampling window, seconds.', labelNames: [], samples: (c) => one(sec(loop(c).p99Ms)) },
  { name: 'leakguard_event_loop_delay_max_seconds', type: 'gauge', help: 'Event-loop delay, maximum over the last sampling window, seconds.', labelNames: [], samples: (c) => one(sec(loop(c).maxMs)) },
  {
    name: 'leakguard_leak_state',
    type: 'gauge',
    help: 'Leak verdict: 1 for the current state (warming-up, healthy, growing, leak) of each series (heap, native), else 0.',
    labelNames: ['series', 'state'],
    samples: (c) => {
      const out = []
      for (const [series, r] of verdicts(c.status)) {
        if (typeof r.state !== 'string') continue
        const states = LEAK_STATES.includes(r.state) ? LEAK_STATES : [...LEAK_STATES, r.state]
        for (const state of states) out.push({ labels: { series, state }, value: state === r.state ? 1 : 0 })
      }
      return out
    }
  },
  {
    name: 'leakguard_leak_slope_bytes_per_hour',
    type: 'gauge',
    help: 'Growth of the retained-memory floor the verdict sees, bytes per hour, by series (heap, native).',
    labelNames: ['series'],
    samples: (c) => verdicts(c.status).flatMap(([series, r]) => one(r.slopeBytesPerHour, { series }))
  },
  {
    name: 'leakguard_leak_confidence',
    type: 'gauge',
    help: 'Confidence of the leak verdict, 0..1, by series (heap, native).',
    labelNames: ['series'],
    samples: (c) => verdicts(c.status).flatMap(([series, r]) => one(r.confidence, { series }))
  },
  {
    name: 'leakguard_leak_projected_limit_timestamp_seconds',
    type: 'gauge',
    help: 'When the growth would reach the limit at the current slope, Unix time in seconds; absent when not growing.',
    labelNames: ['series'],
    samples: (c) => verdicts(c.status).flatMap(([series, r]) => one(finite(r.projectedLimitAt) ? r.projectedLimitAt / 1000 : undefined, { series }))
  },
  {
    name: 'leakguard_pressure',
    type: 'gauge',
    help: 'Heap pressure: 1 with the current level as a label (absent before the monitor has a reading).',
    labelNames: ['level'],
    samples: (c) => {
      const p = obj(c.status.pressure)
      return p && typeof p.level === 'string' ? [{ labels: { level: p.level }, value: 1 }] : []
    }
  },
  {
    name: 'leakguard_listener_count',
    type: 'gauge',
    help: `Listeners on the top ${TOP_LISTENERS} growing or suspect (emitter, event) pairs.`,
    labelNames: ['emitter', 'event'],
    samples: (c) => topListeners(c.status.listeners)
  },
  {
    name: 'leakguard_listener_leaks',
    type: 'gauge',
    help: '(emitter, event) pairs whose listener count is judged a leak.',
    labelNames: [],
    samples: (c) => {
      const r = obj(c.status.listeners)
      return r && Array.isArray(r.leaks) ? one(r.leaks.length) : []
    }
  },
  {
    name: 'leakguard_allocation_site_growth_bytes_per_hour',
    type: 'gauge',
    help: `Growth of the live bytes sampled at the top ${TOP_SITES} growing allocation sites, bytes per hour; label site = "function file:line:column" of the site's own-code frame.`,
    labelNames: ['site'],
    samples: (c) => topSites(c.status.allocationSites, (s) => s.growing, (s) => s.growthBytesPerHour)
  },
  {
    name: 'leakguard_allocation_site_live_bytes',
    type: 'gauge',
    help: `Live bytes sampled at the top ${TOP_SITES} growing allocation sites (estimate from V8's sampling heap profiler), bytes.`,
    labelNames: ['site'],
    samples: (c) => topSites(c.status.allocationSites, (s) => s.growing, (s) => s.liveBytes)
  },
  {
    name: 'leakguard_allocation_sampled_bytes',
    type: 'gauge',
    help: 'Live bytes in the last read of the sampling heap profiler (all sites), bytes.',
    labelNames: [],
    samples: (c) => one(obj(c.status.allocations) ? c.status.allocations.liveBytes : undefined)
  },
  {
    name: 'leakguard_captures_total',
    type: 'counter',
    help: 'Heap snapshots written by this process since leakguard loaded.',
    labelNames: [],
    samples: (c) => one(c.counts.done)
  },
  {
    name: 'leakguard_capture_failures_total',
    type: 'counter',
    help: 'Captures that failed or were refused, by error code (ERR_LEAKGUARD_*).',
    labelNames: ['code'],
    samples: (c) => Object.entries(c.counts.failed).map(([code, n]) => ({ labels: { code }, value: n }))
  },
  { name: 'leakguard_last_capture_stall_seconds', type: 'gauge', help: 'Longest event-loop stall the last capture caused, seconds.', labelNames: [], samples: (c) => one(sec(c.counts.last && c.counts.last.stallMs)) },
  { name: 'leakguard_last_capture_duration_seconds', type: 'gauge', help: 'Time the last capture took until its file was complete, seconds.', labelNames: [], samples: (c) => one(sec(c.counts.last && c.counts.last.durationMs)) },
  { name: 'leakguard_last_capture_bytes', type: 'gauge', help: 'Size of the last snapshot file (gzip), bytes.', labelNames: [], samples: (c) => one(c.counts.last && c.counts.last.bytes) },
  { name: 'leakguard_last_capture_timestamp_seconds', type: 'gauge', help: 'When the last capture completed, Unix time in seconds.', labelNames: [], samples: (c) => one(c.counts.lastAt ? c.counts.lastAt / 1000 : undefined) },
  {
    name: 'leakguard_uploads_total',
    type: 'counter',
    help: 'Uploads of captures to object storage since leakguard loaded, by result (ok, failed, aborted).',
    labelNames: ['result'],
    samples: (c) => {
      const u = obj(c.counts.uploads)
      return u ? ['ok', 'failed', 'aborted'].flatMap((result) => one(u[result], { result })) : []
    }
  },
  { name: 'leakguard_upload_bytes_total', type: 'counter', help: 'Bytes the object store confirmed, over every successful upload.', labelNames: [], samples: (c) => one(obj(c.counts.uploads) && c.counts.uploads.bytes) },
  { name: 'leakguard_last_upload_timestamp_seconds', type: 'gauge', help: 'When the last successful upload completed, Unix time in seconds.', labelNames: [], samples: (c) => one(obj(c.counts.uploads) && c.counts.uploads.lastAt ? c.counts.uploads.lastAt / 1000 : undefined) }
]

function latest (c) {
  return obj(c.status.latest) || {}
}

function loop (c) {
  return obj(latest(c).loopDelay) || {}
}

function gcSamples (c, field, conv) {
  const gc = obj(latest(c).gc)
  if (!gc) return []
  const out = []
  for (const [key, kind] of GC_KINDS) {
    const k = obj(gc[key])
    if (k) out.push(...one(conv(k[field]), { kind }))
  }
  return out
}

/** The context every family reads: the status plus live figures read now. */
function context (status, counts) {
  return {
    status: obj(status) || {},
    memory: process.memoryUsage(),
    heap: v8.getHeapStatistics(),
    counts: counts || { done: 0, failed: {}, last: null, lastAt: 0 }
  }
}

/** `[{ name, type, help, labelNames, samples: [{ labels, value }] }]` for every family. */
function collect (status, counts) {
  const c = context(status, counts)
  return FAMILIES.map((f) => ({ name: f.name, type: f.type, help: f.help, labelNames: f.labelNames, samples: f.samples(c) }))
}

function escapeHelp (s) {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function escapeLabel (s) {
  const v = String(s).slice(0, MAX_LABEL_LENGTH)
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function formatValue (v) {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

/** The text exposition format 0.0.4 for collected families. */
function renderText (families) {
  let out = ''
  for (const f of families) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`
    for (const s of f.samples) {
      const keys = Object.keys(s.labels)
      const labels = keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(s.labels[k])}"`).join(',')}}` : ''
      out += `${f.name}${labels} ${formatValue(s.value)}\n`
    }
  }
  return out
}

/** Prometheus text for a status-like object and capture counts. */
function render (status, counts) {
  return renderText(collect(status, counts))
}

/** The Content-Type of the text exposition format. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

module.exports = { FAMILIES, collect, render, renderText, escapeLabel, CONTENT_TYPE, TOP_LISTENERS, TOP_SITES, MAX_LABEL_LENGTH }
