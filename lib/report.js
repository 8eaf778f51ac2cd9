'use strict'
// guard.report(): the leak report, assembled from sections. Each section is a named
// contributor `(guard, ctx) → value | Promise<value>`; report() runs them in order and a
// failing section is recorded in `report.errors` instead of failing the whole report.
// Allocation sites are one section (lib/allocations.js); class growth and retainer paths
// plug in the same way with registerSection('classes', …) / registerSection('retainers', …).

const sections = []

/** Add (or replace) a section of every report. `collect(guard, ctx)`; undefined omits it. */
function registerSection (name, collect, { before } = {}) {
  if (typeof name !== 'string' || !name || typeof collect !== 'function') throw new TypeError('registerSection(name, collect)')
  const i = sections.findIndex((s) => s.name === name)
  if (i >= 0) sections.splice(i, 1)
  const at = before ? sections.findIndex((s) => s.name === before) : -1
  if (at >= 0) sections.splice(at, 0, { name, collect })
  else sections.push({ name, collect })
}

function sectionNames () {
  return sections.map((s) => s.name)
}

/**
 * The report: `{ createdAt, heap, native, …sections }`. `ctx.fresh` (default true) lets a
 * section refresh what it reads (the allocation profile) rather than use its last reading.
 */
async function buildReport (guard, ctx = {}) {
  const status = guard.status()
  const report = { createdAt: Date.now(), heap: status.heap, native: status.native }
  const c = { fresh: true, ...ctx, status }
  for (const s of sections) {
    try {
      const v = await s.collect(guard, c)
      if (v !== undefined) report[s.name] = v
    } catch (err) {
      if (!report.errors) report.errors = []
      report.errors.push({ section: s.name, code: (err && err.code) || null, message: String((err && err.message) || err) })
    }
  }
  return report
}

// Allocation sites: growing first, each with its share of the heap floor's growth.
registerSection('sites', (guard, ctx) => {
  const a = guard.allocations
  if (!a) return []
  if (ctx.fresh) a.read()
  const slope = ctx.status.heap ? ctx.status.heap.slopeBytesPerHour : 0
  return a.sites(slope)
})

module.exports = { registerSection, buildReport, sectionNames }
