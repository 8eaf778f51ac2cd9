'use strict'
// The count source of the leak tests, on leakguard's own capture and analysis. Everything
// else in lib/testing/ sees only this interface:
//
//   takeCounts(dir, { discard? }) -> Promise<{ path, counts: Map<key, { name, type, count, bytes }> }>
//   pathsFor(path, className, limit) -> Promise<RetainerPath[]>
//   withoutLastStep(path) -> string
//
// A snapshot is an inline capture (lib/capture.js: V8 serializes on this thread — a test
// process may pause — while gzip, the file and its fsync run on leakguard's capture
// thread), into the test's private directory. Its counts per class come from
// summarize() (every class, exact counts, read on a `leakguard-analysis` thread), and
// retainer paths from retainers(): the same class keys and paths as the rest of
// leakguard.

const fs = require('node:fs')
const { runCapture, mergeCaptureOptions, normalizeCaptureOptions } = require('../capture')
const { summarize, retainers, manifestPath } = require('../analysis')
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

async function takeCounts (dir, { discard = false } = {}) {
  const { path } = await capture(dir)
  const summary = await summarize(path)
  const counts = new Map()
  for (const c of summary.classes) {
    const k = classKey(c.type, c.name)
    const had = counts.get(k)
    if (had) {
      had.count += c.count
      had.bytes += c.shallowBytes
    } else {
      counts.set(k, { name: c.name, type: c.type, count: c.count, bytes: c.shallowBytes })
    }
  }
  if (discard) {
    fs.rmSync(path, { force: true })
    const m = manifestPath(path)
    if (m) fs.rmSync(m, { force: true })
  }
  return { path, counts }
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

module.exports = { takeCounts, pathsFor, classKey, withoutLastStep }
