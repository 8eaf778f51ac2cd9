'use strict'
// Option validation shared by every public entry: throw at the call with a coded
// TypeError/RangeError, so napi's own argument errors never reach users.

const { invalidOption } = require('./errors')

function plainObject (value, name) {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidOption(name, 'an object', value)
  }
  return value
}

/** Reject keys the API does not know (a typo must not be ignored silently). */
function knownKeys (obj, allowed, name) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw invalidOption(`${name}.${k}`, `one of the known options (${allowed.join(', ')})`, k)
  }
}

function optString (obj, key, { name = key, nonEmpty = true, maxLength = Infinity } = {}) {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string' || (nonEmpty && v.length === 0) || v.includes('\0')) {
    throw invalidOption(name, nonEmpty ? 'a non-empty string' : 'a string', v)
  }
  if (v.length > maxLength) throw invalidOption(name, `at most ${maxLength} characters`, v, RangeError)
  return v
}

function optBoolean (obj, key, name = key) {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw invalidOption(name, 'a boolean', v)
  return v
}

function optEnum (obj, key, values, name = key) {
  const v = obj[key]
  if (v === undefined) return undefined
  if (!values.includes(v)) throw invalidOption(name, `one of ${values.map((x) => `'${x}'`).join(', ')}`, v, typeof v === 'string' ? RangeError : TypeError)
  return v
}

/** A finite number, optionally an integer, within [min, max]. */
function optNumber (obj, key, { name = key, min = -Infinity, max = Infinity, integer = false } = {}) {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'number' || Number.isNaN(v)) throw invalidOption(name, integer ? 'an integer' : 'a number', v)
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    const range = `${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` and ≤ ${max}` : ''}`
    throw invalidOption(name, range, v, RangeError)
  }
  return v
}

function optSignal (obj, key, name = key) {
  const v = obj[key]
  if (v === undefined) return undefined
  if (v === null || typeof v !== 'object' || typeof v.aborted !== 'boolean' || typeof v.addEventListener !== 'function') {
    throw invalidOption(name, 'an AbortSignal', v)
  }
  return v
}

module.exports = { plainObject, knownKeys, optString, optBoolean, optEnum, optNumber, optSignal }
