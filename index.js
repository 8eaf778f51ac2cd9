'use strict'
// leakguard's public entry. The API is described in index.d.ts and the README.

const { codes } = require('./lib/errors')
const captureLib = require('./lib/capture')
const { watch } = require('./lib/guard')
const { counted } = require('./lib/stats')
const admin = require('./lib/admin')
const { promCollector } = require('./lib/prom')
const { sample } = require('./lib/monitor')
const analysis = require('./lib/analysis')
const uploadLib = require('./lib/upload')
const { classGrowth } = require('./lib/classes')

/**
 * Take a gzip-compressed heap snapshot. Options are validated at the call (a bad option
 * throws synchronously); the capture itself resolves to a CaptureResult or rejects with a
 * coded error, leaving no partial file.
 */
function capture (options) {
  const opts = captureLib.mergeCaptureOptions(captureLib.normalizeCaptureOptions(options))
  return counted(captureLib.runCapture(opts)).then((r) => uploadLib.afterCapture(r, opts.upload || null))
}

/**
 * Upload a leakguard capture (the snapshot, its manifest, any allocation profile beside
 * it) to object storage: an `s3://bucket/prefix` URL, UploadOptions, or a function that
 * returns a pre-signed PUT URL per object. Rejects with ERR_LEAKGUARD_UPLOAD_FAILED and
 * keeps the local files when the store does not confirm.
 */
function upload (path, destination) {
  return uploadLib.upload(path, destination)
}

/** The admin route: `(req, res, next?)` for node:http and Express; `.koa()` and `.fastify` adapters. */
function adminHandler (options) {
  return admin.adminHandler(options)
}
adminHandler.koa = admin.koa
adminHandler.fastify = admin.fastify

/** Summary of a snapshot file (.heapsnapshot or .gz): classes with counts, shallow and retained sizes. */
function summarize (path, options) {
  return analysis.summarize(path, options)
}

/** Diff two snapshot files: class deltas, retainer paths of what grew, growth detectors. */
function diff (before, after, options) {
  return analysis.diff(before, after, options)
}

/** Merged shortest retainer paths to the instances of one class. */
function retainers (path, options) {
  return analysis.retainers(path, options)
}

module.exports = { watch, capture, upload, sample, summarize, diff, retainers, classGrowth, adminHandler, promCollector, codes }
