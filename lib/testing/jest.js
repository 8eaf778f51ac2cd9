'use strict'
// The `toLeak` matcher for Jest's and Vitest's `expect`:
//
//   await expect(scenario).not.toLeak(options?)
//
// `.not.toLeak()` passes when assertNoLeak(scenario) resolves and fails with its table
// and retainer paths when it rejects with TEST_LEAK; any other error (a bad option, the
// scenario throwing, TEST_BUSY) fails the test as that error. `.toLeak()` is the inverse
// (for a test that proves a reproduction leaks).

const { assertNoLeak } = require('./leak')
const { codes } = require('../errors')

async function toLeak (received, options) {
  const where = this && this.utils && typeof this.utils.matcherHint === 'function'
    ? this.utils.matcherHint(`${this.isNot ? '.not' : ''}.toLeak`, 'scenario', '') + '\n\n'
    : ''
  try {
    await assertNoLeak(received, options)
  } catch (err) {
    if (err && err.code === codes.TEST_LEAK) {
      return { pass: true, message: () => where + err.message, leak: err }
    }
    throw err
  }
  return { pass: false, message: () => where + 'leakguard: no class of objects grew with the calls (the scenario does not leak)' }
}

const matchers = Object.freeze({ toLeak })

/** expect.extend({ toLeak }) on the given `expect` (or the global one, as Jest has). */
function install (expect = globalThis.expect) {
  if (!expect || typeof expect.extend !== 'function') {
    throw new TypeError('leakguard/testing/jest: no expect.extend here; call install(expect) with your runner\'s expect (import { expect } from \'vitest\')')
  }
  expect.extend(matchers)
  return expect
}

module.exports = { matchers, toLeak, install }
