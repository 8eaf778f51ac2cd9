'use strict'
// The leak tests' errors. A failed test throws a LeakError: an AssertionError (so every
// runner reports it as a failed assertion, not a crash) carrying leakguard's code, the
// figures and the paths of the snapshots kept for it.

const { AssertionError } = require('node:assert')
const { codes, coded } = require('../errors')

class LeakError extends AssertionError {
  /** `key` is TEST_LEAK or TEST_NOT_COLLECTED; `extra` is copied onto the error. */
  constructor (key, message, extra) {
    // operator 'fail': runners that re-format node's AssertionErrors (Jest) then print the
    // message as it is, with no actual/expected diff around it.
    super({ message, operator: 'fail' })
    this.name = 'LeakError'
    this.code = codes[key]
    this.generatedMessage = false
    this.showDiff = false // Mocha: nothing to diff
    Object.assign(this, extra)
    // AssertionError formatted the stack's first line with its own name and code.
    Error.captureStackTrace(this, LeakError)
  }
}

/** Refused: another leak test is running in this process (module registry). */
function busyError (what, running) {
  return coded(Error, 'TEST_BUSY',
    `leakguard: ${what} cannot start while ${running} is running in this process: ` +
    'concurrent leak tests disturb each other\'s counts and collections. ' +
    'Run leak tests one at a time (in node:test, not in a concurrent suite; in Jest/Vitest, not with test.concurrent).')
}

module.exports = { LeakError, busyError }
