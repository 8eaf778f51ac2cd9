'use strict'
// Process-wide capture counts for metrics: every capture that leakguard runs (capture(),
// Guard.capture(), the admin route, the signal trigger, auto-captures) passes through
// `counted`. Error codes are a closed set, so the failure labels stay bounded.

const counts = { done: 0, failed: Object.create(null), last: null, lastAt: 0 }

/** Count the outcome of a capture promise; returns a promise with the same outcome. */
function counted (promise) {
  return promise.then((r) => {
    counts.done++
    counts.last = r
    counts.lastAt = Date.now()
    return r
  }, (err) => {
    const code = err && typeof err.code === 'string' && /^ERR_[A-Z0-9_]+$/.test(err.code) ? err.code : 'other'
    counts.failed[code] = (counts.failed[code] || 0) + 1
    throw err
  })
}

// Uploads likewise (upload() and every capture's `upload`): by result, bytes, last time.
const uploads = { ok: 0, failed: 0, aborted: 0, bytes: 0, lastAt: 0 }

/** Count the outcome of an upload promise; returns a promise with the same outcome. */
function uploadCounted (promise) {
  return promise.then((r) => {
    uploads.ok++
    uploads.bytes += r.bytes
    uploads.lastAt = Date.now()
    return r
  }, (err) => {
    if (err && err.code === 'ERR_LEAKGUARD_UPLOAD_ABORTED') uploads.aborted++
    else uploads.failed++
    throw err
  })
}

/** A copy of the counts: `{ done, failed: { code: n }, last: CaptureResult | null, lastAt, uploads }`. */
function captureCounts () {
  return { done: counts.done, failed: { ...counts.failed }, last: counts.last, lastAt: counts.lastAt, uploads: { ...uploads } }
}

module.exports = { counted, captureCounts, uploadCounted }
