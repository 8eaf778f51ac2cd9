'use strict'
// The count source of the leak tests: a heap snapshot of this isolate, its instance count
// and bytes per class, and retainer paths for one class. Everything else in
// lib/testing/ sees only this interface:
//
//   takeCounts(dir) -> Promise<{ path, counts: Map<key, { name, type, count, bytes }> }>
//   pathsFor(path, className, limit) -> Promise<RetainerPath[]>
//
// TEMPORARY STAND-IN (to be replaced by leakguard's own capture histogram / summarize()
// and retainers() once they land): parses v8.writeHeapSnapshot() output with JSON.parse
// on the JS thread.

const v8 = require('node:v8')
const fs = require('node:fs')
const path = require('node:path')

let seq = 0

/** DevTools' className() rule, as src/snapshot/mod.rs's class_name. */
function className (type, name) {
  if (type === 'object' || type === 'native') return name
  if (type === 'hidden') return '(system)'
  if (type === 'code') return '(compiled code)'
  return `(${type})`
}

const classKey = (type, name) => `${type}\u0000${name}`

function load (file) {
  const s = JSON.parse(fs.readFileSync(file, 'utf8'))
  const m = s.snapshot.meta
  return { s, nf: m.node_fields.length, ef: m.edge_fields.length, nodeTypes: m.node_types[0], edgeTypes: m.edge_types[0] }
}

async function takeCounts (dir, { discard = false } = {}) {
  const file = path.join(dir, `round-${String(++seq).padStart(4, '0')}.heapsnapshot`)
  v8.writeHeapSnapshot(file)
  fs.chmodSync(file, 0o600)
  const { s, nf, nodeTypes } = load(file)
  const counts = new Map()
  const nodes = s.nodes
  for (let i = 0; i < nodes.length; i += nf) {
    const type = nodeTypes[nodes[i]]
    const name = className(type, s.strings[nodes[i + 1]])
    const k = classKey(type, name)
    const c = counts.get(k)
    if (c) {
      c.count++
      c.bytes += nodes[i + 3]
    } else {
      counts.set(k, { name, type, count: 1, bytes: nodes[i + 3] })
    }
  }
  if (discard) fs.rmSync(file, { force: true })
  return { path: file, counts }
}

async function pathsFor (file, wanted, limit = 3) {
  const { s, nf, ef, nodeTypes, edgeTypes } = load(file)
  const n = s.nodes.length / nf
  const firstEdge = new Uint32Array(n + 1)
  for (let i = 0; i < n; i++) firstEdge[i + 1] = firstEdge[i] + s.nodes[i * nf + 4]
  const parentNode = new Int32Array(n).fill(-1)
  const parentEdge = new Int32Array(n).fill(-1)
  parentNode[0] = 0
  const queue = new Uint32Array(n)
  let head = 0
  let tail = 0
  queue[tail++] = 0
  while (head < tail) {
    const u = queue[head++]
    for (let e = firstEdge[u]; e < firstEdge[u + 1]; e++) {
      const et = edgeTypes[s.edges[e * ef]]
      if (et === 'weak') continue
      const v = s.edges[e * ef + 2] / nf
      if (parentNode[v] !== -1) continue
      parentNode[v] = u
      parentEdge[v] = e
      queue[tail++] = v
    }
  }
  const nodeClass = (i) => className(nodeTypes[s.nodes[i * nf]], s.strings[s.nodes[i * nf + 1]])
  const groups = new Map()
  for (let i = 0; i < n; i++) {
    if (nodeClass(i) !== wanted || parentNode[i] === -1) continue
    const steps = []
    for (let v = i; v !== 0; v = parentNode[v]) {
      const e = parentEdge[v]
      const et = edgeTypes[s.edges[e * ef]]
      const raw = s.edges[e * ef + 1]
      const edge = et === 'element' || et === 'hidden' ? '[]' : String(s.strings[raw])
      steps.unshift({ node: nodeClass(v), type: nodeTypes[s.nodes[v * nf]], edge, edgeType: et })
    }
    const text = formatSteps(steps)
    const g = groups.get(text)
    if (g) {
      g.count++
      g.retainedBytes += s.nodes[i * nf + 3]
    } else {
      groups.set(text, { className: wanted, count: 1, retainedBytes: s.nodes[i * nf + 3], steps, text })
    }
  }
  return [...groups.values()].sort((a, b) => b.count - a.count).slice(0, limit)
}

function formatSteps (steps) {
  return steps.map((st, j) => (j === 0 ? st.node : `${st.edge} (${st.edgeType}) → ${st.node}`)).join(' → ')
}

/** A path's text without its last step (the marker an expectCollected() target holds). */
function withoutLastStep (p) {
  return formatSteps(p.steps.slice(0, -1))
}

module.exports = { takeCounts, pathsFor, classKey, withoutLastStep }
