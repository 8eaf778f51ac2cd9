'use strict'
// The text of a failed leak test: a table of the classes that grew in every round, the
// path that retains the new instances of the top ones, and where the snapshots are.

function fmtBytes (n) {
  const a = Math.abs(n)
  if (a < 1024) return `${Math.round(n)} B`
  if (a < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

function fmtNum (n) {
  return Number.isInteger(n) ? String(n) : n.toFixed(2)
}

function table (header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(header), ...rows.map(line)].join('\n')
}

const MAX_ROWS = 12

function formatGrowth (rows, { rounds, iterations, threshold, snapshots, dir }) {
  const n = rows.length
  const out = []
  out.push(`leakguard: ${n} ${n === 1 ? 'class' : 'classes'} grew by at least ${threshold} ${threshold === 1 ? 'instance' : 'instances'} in every one of ${rounds} rounds of ${iterations} calls:`)
  out.push('')
  const shown = rows.slice(0, MAX_ROWS)
  out.push(table(['class', 'type', 'per call', 'bytes per call', 'per round'],
    shown.map((r) => [r.name, r.type, fmtNum(r.perCall), fmtBytes(r.bytesPerCall), r.deltas.map((d) => `+${d}`).join(' ')])))
  if (n > MAX_ROWS) out.push(`  … and ${n - MAX_ROWS} more (err.classes has them all)`)
  const withPath = rows.filter((r) => r.retainer)
  if (withPath.length) {
    out.push('')
    out.push('Retained by:')
    for (const r of withPath) {
      if (r.retainer.error) out.push(`  ${r.name}: (no path: ${r.retainer.error})`)
      else out.push(`  ${r.name} (${r.retainer.count} on this path): ${r.retainer.text}`)
    }
  }
  out.push('')
  out.push(`Snapshots kept in ${dir} (first and last: ${snapshots[0]}, ${snapshots.at(-1)}); delete them when done: they hold every string of the test process.`)
  return out.join('\n')
}

module.exports = { formatGrowth, fmtBytes }
