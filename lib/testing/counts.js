'use strict'
// The count source of the leak tests, on leakguard's own capture and analysis. Everything
// else in lib/testing/ sees only this interface:
//
//   snapshot(dir, { discard? }) -> Promise<path>
//   newSurvivors(before, after) -> Promise<Map<key, { name, type, count, bytes }>>
//   pathsFor(path, className, limit) -> Promise<RetainerPath[]>
//   withoutLastStep(path) -> string
//
// A snapshot is an inline capture (lib/capture.js: V8 serializes on this thread — a test
// process may pause — while gzip, the file and its fsync run on leakguard's capture
// thread), into the test's private directory. What grew between two of them comes from
// diff() by node id (inline captures of one process keep V8's ids): per class, the
// instances present in `after` and not in `before` — the objects made in between that
// are still alive. Unlike a net count, it is not hidden by older instances of the same
// class being freed meanwhile (a runner dropping the previous test's closures). Retainer
// paths come from retainers(). Both run on `leakguard-analysis` threads, with the same
// class keys and paths as the rest of leakguard.

const fs = require('node:fs')
const { runCapture, mergeCaptureOptions, normalizeCaptureOptions } = require('../capture')
const { diff, retainers, manifestPath } = require('../analysis')
const { codes } = require('../errors')

const classKey = (type, name) => `${type}\u0000${name}`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref())

/** Attempts while another capture of this process (a watch() trigger, say) is running. */
const BUSY_RETRIES = 50
const BUSY_PAUSE_MS = 100

async function capture (dir) {
  const opts = mergeCaptureOptions(normalizeCaptureOptions({ dir, mode: 'inline', level: 1, maxSnapshots: 1e6, reason: 'leakguard/testing' }))
  for (let i = 0; ; i++) {
    try {
      return await runCapture(opts)
    } catch (err) {
      if (err.code !== codes.CAPTURE_IN_PROGRESS || i >= BUSY_RETRIES) throw err
      await sleep(BUSY_PAUSE_MS)
    }
  }
}

/** An inline capture into `dir`; its path (`discard`: removed at once, with its manifest). */
async function snapshot (dir, { discard = false } = {}) {
  const { path } = await capture(dir)
  if (discard) {
    fs.rmSync(path, { force: true })
    const m = manifestPath(path)
    if (m) fs.rmSync(m, { force: true })
  }
  return path
}

/** Per class, the instances in `after` that were not in `before` (count and self bytes), and the net change of the class's count (`net`). */
async function newSurvivors (before, after) {
  const report = await diff(before, after, { method: 'id', top: 0 })
  const out = new Map()
  for (const c of report.classes) {
    if (!c.newCount) continue
    const k = classKey(c.type, c.name)
    const had = out.get(k)
    if (had) {
      had.count += c.newCount
      had.bytes += c.allocatedBytes || 0
      had.net += c.countDelta
    } else {
      out.set(k, { name: c.name, type: c.type, count: c.newCount, bytes: c.allocatedBytes || 0, net: c.countDelta })
    }
  }
  return out
}

function pathsFor (file, className, limit = 3) {
  return retainers(file, { className, limit })
}

/** A path's text without its last step (the marker an expectCollected() target holds). */
function withoutLastStep (p) {
  const last = p.steps.at(-1)
  if (!last || last.edge == null) return p.text
  const cut = p.text.lastIndexOf(` → ${last.edge} (${last.edgeType}) → `)
  return cut > 0 ? p.text.slice(0, cut) : p.text
}

module.exports = { snapshot, newSurvivors, pathsFor, classKey, withoutLastStep }
