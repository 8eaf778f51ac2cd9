'use strict'
// leakguard/testing: leak tests for any runner. Plain async functions that throw an
// AssertionError-compatible LeakError, so node:test, Jest, Vitest and Mocha all report a
// leak as a failed assertion. See docs/testing.md.

const { assertNoLeak } = require('./leak')
const { expectCollected } = require('./collected')
const { collectGarbage } = require('./gc')
const { LeakError } = require('./errors')

module.exports = { assertNoLeak, expectCollected, collectGarbage, LeakError }
