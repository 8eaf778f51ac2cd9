'use strict'
// Stable error codes. The table lives in Rust (src/error.rs) so JS and Rust can never
// disagree: `codes` is built from it once at load.

const { binding } = require('./native')

/** `{ CAPTURE_IN_PROGRESS: 'ERR_LEAKGUARD_CAPTURE_IN_PROGRESS', … }`, frozen. */
const codes = Object.freeze({ ...binding.errorCodes() })

/**
 * A coded error. `Base` is Error, TypeError or RangeError; `key` is a key of `codes`.
 * Extra properties (numbers for messages, a `cause`) are copied onto the error.
 */
function coded (Base, key, message, extra) {
  const code = codes[key]
  if (!code) throw new Error(`leakguard internal: unknown error code key ${key}`)
  const { cause, ...rest } = extra || {}
  const err = cause === undefined ? new Base(message) : new Base(message, { cause })
  err.code = code
  Object.assign(err, rest)
  return err
}

/** Bad option: TypeError (wrong type) or RangeError (out of range), code OPTIONS_INVALID. */
function invalidOption (name, expected, value, Base = TypeError) {
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value === 'object' ? (value === null ? 'null' : 'an object') : String(value)
  return coded(Base, 'OPTIONS_INVALID', `leakguard: option "${name}" must be ${expected}; got ${shown}`, { option: name })
}

module.exports = { codes, coded, invalidOption }
