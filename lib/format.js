'use strict'
// Human-readable numbers and plain-text tables for the CLI (and anything else that prints
// an analysis): binary units (KiB, MiB, GiB), thousands separators, signed deltas.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

/** 1536 → "1.5 KiB"; 0 → "0 B"; negative numbers keep their sign. */
function bytes (n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–'
  const neg = n < 0
  let v = Math.abs(n)
  let u = 0
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024
    u++
  }
  const text = u === 0 ? String(Math.round(v)) : v >= 100 ? v.toFixed(0) : v.toFixed(1)
  return `${neg ? '-' : ''}${text} ${UNITS[u]}`
}

/** 1234567 → "1,234,567". */
function count (n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–'
  return Math.round(n).toLocaleString('en-US')
}

/** A delta with its sign: "+1.5 MiB", "-12 B", "0 B". */
function signedBytes (n) {
  return n > 0 ? `+${bytes(n)}` : bytes(n)
}

/** "+1,234", "-5", "0". */
function signedCount (n) {
  return n > 0 ? `+${count(n)}` : count(n)
}

/** Shorten to `max` characters with an ellipsis in the middle (class names can be long). */
function clip (s, max) {
  const t = String(s).replace(/[\x00-\x1f\x7f]/g, ' ')
  if (t.length <= max) return t
  const head = Math.ceil((max - 1) * 0.6)
  return `${t.slice(0, head)}…${t.slice(t.length - (max - 1 - head))}`
}

/**
 * A plain-text table. `columns`: `[{ title, align: 'left'|'right', max? }]`; `rows`: arrays
 * of strings. Two spaces between columns, a rule under the titles, no trailing spaces.
 */
function table (columns, rows) {
  const cells = rows.map((r) => r.map((c, i) => (columns[i].max ? clip(c, columns[i].max) : String(c))))
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i].length)))
  const line = (r) => r.map((c, i) => (columns[i].align === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').replace(/\s+$/, '')
  return [line(columns.map((c) => c.title)), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.map(line)].join('\n') + '\n'
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?$/i
const FACTORS = { b: 1, kb: 1e3, kib: 2 ** 10, mb: 1e6, mib: 2 ** 20, gb: 1e9, gib: 2 ** 30, tb: 1e12, tib: 2 ** 40 }

/** "10MiB" → 10485760, "1.5 GB" → 1.5e9, "4096" → 4096; null when it is not a size. */
function parseBytes (text) {
  const m = SIZE.exec(String(text).trim())
  if (!m) return null
  const v = Number(m[1]) * FACTORS[(m[2] || 'b').toLowerCase()]
  return Number.isFinite(v) && v <= Number.MAX_SAFE_INTEGER ? Math.round(v) : null
}

module.exports = { bytes, count, signedBytes, signedCount, clip, table, parseBytes }
