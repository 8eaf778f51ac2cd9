'use strict'
// The generated binding, loaded once, with its errors turned into coded JS errors.
// Rust errors cross as `[ERR_LEAKGUARD_…] message` (see src/binding/mod.rs).

const binding = require('../binding.js')

const CODED = /^\[(ERR_LEAKGUARD_[A-Z_]+)\] ([\s\S]*)$/

/** Turn a napi error carrying a leakguard code into an Error with `err.code`. */
function fromNative (err) {
  const m = err && typeof err.message === 'string' && CODED.exec(err.message)
  if (!m) return err
  const e = new Error(m[2])
  e.code = m[1]
  return e
}

/** Call a binding function, rethrowing coded errors. */
function call (fn, ...args) {
  try {
    return fn(...args)
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = { binding, call, fromNative }
