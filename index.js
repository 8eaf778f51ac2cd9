'use strict'
// leakguard's public entry. The API is described in index.d.ts and the README.

const { codes } = require('./lib/errors')
const captureLib = require('./lib/capture')
const { watch } = require('./lib/guard')
const { counted } = require('./lib/stats')
const admin = require('./lib/admin')
const { promCollector } = require('./lib/prom')
const { sample } = require('./lib/monitor')
const { classGrowth } = require('./lib/classes')

/**
 * Take a gzip-compressed heap snapshot. Options are validated at the call (a bad option
 * throws synchronously); the capture itself resolves to a CaptureResult or rejects with a
 * coded error, leaving no partial file.
 */
function capture (options) {
  const opts = captureLib.mergeCaptureOptions(captureLib.normalizeCaptureOptions(options))
  return counted(captureLib.runCapture(opts))
}

/** The admin route: `(req, res, next?)` for node:http and Express; `.koa()` and `.fastify` adapters. */
function adminHandler (options) {
  return admin.adminHandler(options)
}
adminHandler.koa = admin.koa
adminHandler.fastify = admin.fastify

module.exports = { watch, capture, sample, adminHandler, promCollector, codes, classGrowth }
