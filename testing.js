'use strict'
// require('leakguard/testing'): leak tests for node:test, Jest, Vitest and Mocha.
// Types in testing.d.ts; guide in docs/testing.md.
module.exports = require('./lib/testing')
