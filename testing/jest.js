'use strict'
// require('leakguard/testing/jest'): adds `toLeak` to the global `expect` when there is
// one (Jest; Vitest with globals: true). Without a global expect, call
// `install(expect)` or `expect.extend(matchers)` yourself.
const matcher = require('../lib/testing/jest')

if (globalThis.expect && typeof globalThis.expect.extend === 'function') matcher.install(globalThis.expect)

module.exports = matcher
