'use strict'
// One measured analysis in a fresh process, for the peers that run in Node:
//
//   node benchmark/analysis-peer.js <peer> <op> <out.json> <file> [file2]
//
// peer: memlab | leakguard; op: summarize (one file) | diff (before, after). Writes a small
// result (node count, the top classes) to out.json for the cross-check; the parent
// measures wall time and peak RSS from outside (GNU time's maxrss of this process).
//
// memlab has no summarize or two-snapshot diff of its own (its leak finder takes three
// snapshots of a browser scenario), so its side is what one builds on its public API:
// `getFullHeapFromFile` (parse, dominators, retained sizes) and a per-class aggregate of
// the nodes, then the per-class delta for diff. The aggregate is a few seconds of a
// minute-long load; the load is what is compared.

const fs = require('node:fs')

const [peer, op, out, ...files] = process.argv.slice(2)

/** DevTools' class key: objects and closures by name, everything else by `(type)`. */
function classKey (type, name) {
  return type === 'object' || type === 'closure' ? name : `(${type})`
}

async function memlabAggregate (file) {
  const { getFullHeapFromFile } = require('@memlab/heap-analysis')
  const heap = await getFullHeapFromFile(file)
  const classes = new Map()
  let nodes = 0
  let totalBytes = 0
  heap.nodes.forEach((n) => {
    nodes++
    totalBytes += n.self_size
    const k = classKey(n.type, n.name)
    let c = classes.get(k)
    if (!c) classes.set(k, (c = { name: k, count: 0, shallowBytes: 0, retainedBytes: 0 }))
    c.count++
    c.shallowBytes += n.self_size
    c.retainedBytes += n.retainedSize
  })
  return { nodes, totalBytes, classes }
}

async function memlab () {
  const { config } = require('@memlab/core')
  config.muteConsole = true
  if (op === 'summarize') {
    const s = await memlabAggregate(files[0])
    const top = [...s.classes.values()].sort((a, b) => b.retainedBytes - a.retainedBytes).slice(0, 5)
    return { nodes: s.nodes, totalBytes: s.totalBytes, top }
  }
  const a = await memlabAggregate(files[0])
  const b = await memlabAggregate(files[1])
  const deltas = []
  for (const [k, cb] of b.classes) {
    const ca = a.classes.get(k) || { count: 0, shallowBytes: 0 }
    deltas.push({ name: k, countDelta: cb.count - ca.count, shallowDelta: cb.shallowBytes - ca.shallowBytes })
  }
  deltas.sort((x, y) => y.shallowDelta - x.shallowDelta)
  return { nodes: b.nodes, top: deltas.slice(0, 5) }
}

async function leakguard () {
  // The analysis module alone (what `require('leakguard')` re-exports and what
  // `npx leakguard` loads), as memlab's side loads @memlab/heap-analysis rather than the
  // memlab CLI: the server agent's modules (watch, admin, metrics, upload) are not part
  // of what an analysis costs (~9 MiB of RSS, ~35 ms of start-up).
  const lg = require('../lib/analysis')
  if (op === 'summarize') {
    const s = await lg.summarize(files[0])
    return { nodes: s.nodes, totalBytes: s.totalBytes, top: s.classes.slice(0, 5) }
  }
  const d = await lg.diff(files[0], files[1])
  return {
    method: d.method,
    top: d.classes.slice(0, 5).map(({ retainers, ...c }) => ({ ...c, path: retainers && retainers[0] ? retainers[0].text : null }))
  }
}

async function main () {
  const run = { memlab, leakguard }[peer]
  if (!run || !['summarize', 'diff'].includes(op) || files.length !== (op === 'diff' ? 2 : 1)) {
    throw new Error('usage: analysis-peer.js memlab|leakguard summarize|diff out.json file [file2]')
  }
  const result = await run()
  fs.writeFileSync(out, JSON.stringify(result) + '\n')
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
