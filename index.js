'use strict'
// leakguard's public entry. The API is described in index.d.ts and the README.

const { codes } = require('./lib/errors')
const captureLib = require('./lib/capture')
const { watch } = require('./lib/guard')
const { sample } = require('./lib/monitor')

/**
 * Take a gzip-compressed heap snapshot. Options are validated at the call (a bad option
 * throws synchronously); the capture itself resolves to a CaptureResult or rejects with a
 * coded error, leaving no partial file.
 */
function capture (options) {
  const opts = captureLib.mergeCaptureOptions(captureLib.normalizeCaptureOptions(options))
  return captureLib.runCapture(opts)
}

module.exports = { watch, capture, sample, codes }
