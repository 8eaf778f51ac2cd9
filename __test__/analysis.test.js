'use strict'
// leakguard's analysis against two independent implementations on real snapshots of
// several heap shapes, each written by a child node process (helpers/analysis-shapes.js):
//   - DevTools' own heap snapshot worker (npm `heap-snapshot-toolkit`): dominators,
//     retained sizes and distances node by node; the class table's counts and shallow
//     sizes against its aggregates, and every class's retained size against the figure
//     recomputed here from DevTools' per-node dominator tree and retained sizes;
//   - memlab (`@memlab/heap-analysis` getFullHeapFromFile): node and edge counts, per class
//     the instance count and shallow size, and dominators and retained sizes node by node.
//     memlab's dominator rules differ from DevTools' (see `withMemlabRules`): its numbers
//     must equal DevTools' algorithm run under memlab's rules at every node, so every
//     difference from leakguard is the one those rules predict. memlab computes no
//     distances (its `pathEdge` is a preference-ordered path search, not a BFS depth).
// DevTools' worker is run with its display-only `calculateShallowSizes` step switched off
// (it moves arrays' and internals' self sizes into their single owner; leakguard, like
// memlab and V8, reports V8's self sizes) — everything else is DevTools' code as shipped.

const { test, before } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const { execFileSync } = require('node:child_process')

const leakguard = require('..')
const { binding } = require('../lib/native')

const SHAPES = ['map', 'bigarray', 'strings', 'closures', 'weakmap', 'express', 'typescript']
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-analysis-'))
const files = {}

let toolkit
let JSHeapSnapshot // DevTools' JSHeapSnapshot.prototype
async function devtools (file) {
  if (!toolkit) {
    toolkit = await import('heap-snapshot-toolkit')
    // Switch off the display-only size transfer (see the header) on the class itself.
    const first = await toolkit.parse(fs.createReadStream(file))
    JSHeapSnapshot = Object.getPrototypeOf(first)
    JSHeapSnapshot.calculateShallowSizes = function () {}
  }
  return toolkit.parse(fs.createReadStream(file))
}

/**
 * DevTools' worker with its three dominator rules replaced by memlab 2.0.5's
 * (@memlab/core dist/paths/TraceFinder.js `calculateAllNodesRetainedSizes`, whose
 * Lengauer–Tarjan is DevTools' own, step for step):
 * 1. Page-owned nodes (edges from a non-page-owned node into a page-owned one are skipped):
 *    DevTools marks what is reachable from the root's `shortcut` edges (the user global)
 *    and the `(Document DOM trees)` element; memlab's `flagReachableNodesFromWindow` marks
 *    the complement of those entry points: every other root edge ((GC roots), C++ roots…),
 *    so nearly the whole heap. Both then follow non-weak edges.
 * 2. WeakMap values: DevTools skips the table → value `internal` edge (`… pair in WeakMap
 *    (table @id)` from the table) and keeps the key → value one; memlab's `isEssential`
 *    keeps both, so a value hangs under the common dominator of its key and the table.
 * 3. Unreached nodes DFS'd from the root: DevTools' `hasOnlyWeakRetainers` means no
 *    essential retainer; memlab's `hasOnlyWeakReferrers` means every referrer `weak` or
 *    `shortcut`.
 */
async function withMemlabRules (file) {
  // Only for DevTools' prototype: a parse whose result nobody reads is seconds on big shapes.
  if (!JSHeapSnapshot) await devtools(file)
  const HeapSnapshot = Object.getPrototypeOf(JSHeapSnapshot).constructor
  const saved = [JSHeapSnapshot.markPageOwnedNodes, HeapSnapshot.prototype.computeIsEssentialEdge, HeapSnapshot.hasOnlyWeakRetainers]
  let snap = null
  JSHeapSnapshot.markPageOwnedNodes = function () {
    snap = this
    const { containmentEdges: ce, edgeTypeOffset, edgeToNodeOffset, edgeFieldsCount, nodeFieldCount, firstEdgeIndexes, flags } = this
    const flag = this.nodeFlags.pageObject
    const node = this.createNode(0)
    const stack = []
    for (let e = firstEdgeIndexes[0]; e < firstEdgeIndexes[1]; e += edgeFieldsCount) {
      const type = ce.getValue(e + edgeTypeOffset)
      const to = ce.getValue(e + edgeToNodeOffset) / nodeFieldCount
      if (type === this.edgeShortcutType) continue
      node.nodeIndex = to * nodeFieldCount
      if (type === this.edgeElementType && node.isDocumentDOMTreesRoot()) continue
      stack.push(to)
      flags[to] |= flag
    }
    while (stack.length) {
      const v = stack.pop()
      for (let e = firstEdgeIndexes[v]; e < firstEdgeIndexes[v + 1]; e += edgeFieldsCount) {
        const to = ce.getValue(e + edgeToNodeOffset) / nodeFieldCount
        if ((flags[to] & flag) || ce.getValue(e + edgeTypeOffset) === this.edgeWeakType) continue
        stack.push(to)
        flags[to] |= flag
      }
    }
  }
  HeapSnapshot.prototype.computeIsEssentialEdge = function (nodeIndex, edgeIndex, { map, flag }) {
    const type = this.containmentEdges.getValue(edgeIndex + this.edgeTypeOffset)
    const to = this.containmentEdges.getValue(edgeIndex + this.edgeToNodeOffset)
    if (nodeIndex === to || type === this.edgeWeakType) return false
    if (nodeIndex === this.rootNodeIndex) return true
    if (type === this.edgeShortcutType) return false
    return !(map[to / this.nodeFieldCount] & flag) || (map[nodeIndex / this.nodeFieldCount] & flag) !== 0
  }
  HeapSnapshot.hasOnlyWeakRetainers = function ({ retainingEdges, firstRetainerIndex }, ordinal) {
    for (let i = firstRetainerIndex[ordinal]; i < firstRetainerIndex[ordinal + 1]; i++) {
      const type = snap.containmentEdges.getValue(retainingEdges[i] + snap.edgeTypeOffset)
      if (type !== snap.edgeWeakType && type !== snap.edgeShortcutType) return false
    }
    return true
  }
  try {
    return await toolkit.parse(fs.createReadStream(file))
  } finally {
    [JSHeapSnapshot.markPageOwnedNodes, HeapSnapshot.prototype.computeIsEssentialEdge, HeapSnapshot.hasOnlyWeakRetainers] = saved
  }
}

before(() => {
  for (const shape of SHAPES) {
    files[shape] = path.join(dir, `${shape}.heapsnapshot`)
    execFileSync(process.execPath, [path.join(__dirname, 'helpers', 'analysis-shapes.js'), shape, files[shape]], { stdio: 'inherit', timeout: 120000 })
  }
})

/** Our class key for a DevTools node: the `class_name` rule on its raw type and name. */
function classKey (type, rawName) {
  const name = type === 'object' || type === 'native' ? rawName : type === 'hidden' ? '(system)' : type === 'code' ? '(compiled code)' : `(${type})`
  return `${type}\0${name}`
}

/**
 * Per class key, the retained size by leakguard's documented rule (src/analysis/summary.rs,
 * which is DevTools' `calculateClassesRetainedSize`), recomputed from DevTools' per-node
 * arrays: the sum of the retained sizes of a class's instances that have no dominator-tree
 * ancestor instance of the same class. Instances are the nodes with a self size (size-0
 * nodes belong to no class: they neither count nor hide their descendants).
 */
function classRetained (dt) {
  const n = dt.nodeCount
  const node = dt.createNode(0)
  const keyIds = new Map()
  const keyOf = new Uint32Array(n)
  const sized = new Uint8Array(n)
  for (let v = 0; v < n; v++) {
    node.nodeIndex = v * dt.nodeFieldCount
    const k = classKey(node.type(), node.rawName())
    if (!keyIds.has(k)) keyIds.set(k, keyIds.size)
    keyOf[v] = keyIds.get(k)
    sized[v] = node.selfSize() !== 0 ? 1 : 0
  }
  // Children lists of the dominator tree (CSR) from `dominatorsTree` alone.
  const first = new Uint32Array(n + 1)
  for (let v = 1; v < n; v++) first[dt.dominatorsTree[v] + 1]++
  for (let i = 0; i < n; i++) first[i + 1] += first[i]
  const children = new Uint32Array(n)
  const fill = first.slice()
  for (let v = 1; v < n; v++) children[fill[dt.dominatorsTree[v]]++] = v
  // Iterative DFS with a per-key count of counting instances on the path from the root.
  const onPath = new Uint32Array(keyIds.size)
  const sums = new Array(keyIds.size).fill(0)
  const stack = [0]
  while (stack.length) {
    const x = stack.pop()
    if (x < 0) {
      onPath[keyOf[~x]]--
      continue
    }
    const counts = sized[x] && onPath[keyOf[x]] === 0
    if (counts) {
      sums[keyOf[x]] += dt.retainedSizes[x]
      onPath[keyOf[x]]++
      stack.push(~x)
    }
    for (let i = first[x]; i < first[x + 1]; i++) stack.push(children[i])
  }
  const out = new Map()
  for (const [k, id] of keyIds) out.set(k, sums[id])
  return out
}

function mismatches (a, b) {
  let n = 0
  let first = null
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (first === null) first = i
      n++
    }
  }
  return { n, first }
}

for (const shape of SHAPES) {
  test(`${shape}: dominators, retained sizes, distances and classes equal DevTools' worker`, async (t) => {
    const file = files[shape]
    const dt = await devtools(file)
    const ours = binding.analysisNodeArrays(file)
    assert.equal(ours.dominators.length, dt.nodeCount)
    const dom = mismatches(ours.dominators, dt.dominatorsTree)
    assert.equal(dom.n, 0, `dominators differ at ${dom.n} nodes (first ordinal ${dom.first})`)
    const ret = mismatches(ours.retained, dt.retainedSizes)
    assert.equal(ret.n, 0, `retained sizes differ at ${ret.n} nodes (first ordinal ${ret.first})`)
    const dist = mismatches(ours.distances, dt.nodeDistances)
    assert.equal(dist.n, 0, `distances differ at ${dist.n} nodes (first ordinal ${dist.first})`)

    // The class table: DevTools' aggregates (split by constructor location, plain objects
    // renamed by shape) regrouped under leakguard's key through their node indexes.
    const summary = await leakguard.summarize(file)
    assert.equal(summary.nodes, dt.nodeCount)
    assert.equal(summary.edges, dt.containmentEdges.length / dt.edgeFieldsCount)
    const node = dt.createNode(0)
    let total = 0
    for (let i = 0; i < dt.nodeCount; i++) {
      node.nodeIndex = i * dt.nodeFieldCount
      total += node.selfSize()
    }
    assert.equal(summary.totalBytes, total)
    const expected = new Map()
    // DevTools' own two steps of the Summary view, keyed by its internal class keys
    // (`aggregatesWithFilter` then re-keys them by class name text, where an object class
    // named `Function` overwrites the closures' class, which DevTools also calls `Function`).
    const aggregates = dt.buildAggregates()
    dt.calculateClassesRetainedSize(aggregates)
    for (const agg of aggregates.values()) {
      let key = null
      for (const idx of agg.idxs) {
        node.nodeIndex = idx
        const k = classKey(node.type(), node.rawName())
        assert.ok(key === null || key === k, `one DevTools class holds two leakguard classes: ${key} and ${k}`)
        key = k
      }
      const e = expected.get(key) || { count: 0, shallowBytes: 0, parts: 0 }
      e.count += agg.count
      e.shallowBytes += agg.self
      e.parts++
      expected.set(key, e)
    }
    // Retained sizes per leakguard class, from DevTools' per-node dominators and retained
    // sizes (its aggregates' `maxRet` is per DevTools class, which splits some names).
    const retained = classRetained(dt)
    assert.equal(summary.classes.length, expected.size)
    let split = 0
    for (const c of summary.classes) {
      const e = expected.get(`${c.type}\0${c.name}`)
      assert.ok(e, `DevTools has no class ${c.type} ${c.name}`)
      assert.deepEqual({ count: c.count, shallowBytes: c.shallowBytes }, { count: e.count, shallowBytes: e.shallowBytes }, `${c.type} ${c.name}`)
      assert.equal(c.retainedBytes, retained.get(`${c.type}\0${c.name}`), `retained size of ${c.type} ${c.name}`)
      if (e.parts > 1) split++
    }
    t.diagnostic(`${dt.nodeCount} nodes, ${summary.classes.length} classes (${split} split by DevTools) compared exactly`)
    for (let i = 1; i < summary.classes.length; i++) {
      assert.ok(summary.classes[i - 1].retainedBytes >= summary.classes[i].retainedBytes, 'largest retained first')
    }
  })

  test(`${shape}: counts, shallow sizes, dominators and retained sizes equal memlab's`, async (t) => {
    const file = files[shape]
    const { getFullHeapFromFile } = require('@memlab/heap-analysis')
    const heap = await getFullHeapFromFile(file)
    const summary = await leakguard.summarize(file)
    assert.equal(summary.nodes, heap.nodes.length)
    assert.equal(summary.edges, heap.edges.length)

    // Node by node: memlab equals DevTools' algorithm under memlab's rules everywhere, and
    // leakguard (which equals DevTools under its own rules, above) wherever those agree.
    const dm = await withMemlabRules(file)
    const arrays = binding.analysisNodeArrays(file)
    const n = heap.nodes.length
    const mDom = new Uint32Array(n)
    const mRet = new Float64Array(n)
    heap.nodes.forEach((node) => {
      mDom[node.nodeIndex] = node.dominatorNode.nodeIndex
      mRet[node.nodeIndex] = node.retainedSize
    })
    const dom = mismatches(mDom, dm.dominatorsTree)
    assert.equal(dom.n, 0, `memlab's dominators differ from its rules' at ${dom.n} nodes (first ordinal ${dom.first})`)
    const ret = mismatches(mRet, dm.retainedSizes)
    assert.equal(ret.n, 0, `memlab's retained sizes differ from its rules' at ${ret.n} nodes (first ordinal ${ret.first})`)
    let domDiff = 0
    let retDiff = 0
    for (let i = 0; i < n; i++) {
      if (arrays.dominators[i] !== mDom[i]) domDiff++
      if (arrays.retained[i] !== mRet[i]) retDiff++
    }
    t.diagnostic(`${n} nodes: memlab equals its rules at every node; differs from leakguard (DevTools' rules) at ${domDiff} dominators and ${retDiff} retained sizes`)
    assert.equal(mRet[0], arrays.retained[0], 'the root retains the whole heap in both')

    const classes = new Map()
    let total = 0
    heap.nodes.forEach((n) => {
      total += n.self_size
      if (!n.self_size) return
      // memlab prefixes "Detached " on the nodes V8 marks detached; DevTools (and leakguard)
      // also on embedder nodes they reach: compare without the prefix.
      const k = classKey(n.type, n.name.replace(/^Detached /, ''))
      const c = classes.get(k) || { count: 0, shallowBytes: 0 }
      c.count++
      c.shallowBytes += n.self_size
      classes.set(k, c)
    })
    assert.equal(summary.totalBytes, total)
    const ours = new Map()
    for (const c of summary.classes) {
      const k = classKey(c.type, c.name.replace(/^Detached /, ''))
      const o = ours.get(k) || { count: 0, shallowBytes: 0 }
      o.count += c.count
      o.shallowBytes += c.shallowBytes
      ours.set(k, o)
    }
    assert.equal(ours.size, classes.size)
    for (const [k, o] of ours) assert.deepEqual(o, classes.get(k), k)
  })
}

test('a .heapsnapshot.gz gives the same summary as the plain file', async () => {
  const gz = path.join(dir, 'map.heapsnapshot.gz')
  fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(files.map), { level: 1 }))
  assert.deepEqual(await leakguard.summarize(gz), await leakguard.summarize(files.map))
})

test('closures in retainer paths carry file:line:column from the snapshot', async () => {
  const paths = await leakguard.retainers(files.closures, { className: 'Captured', limit: 3 })
  assert.equal(paths[0].count, 5000)
  const closure = paths[0].steps.find((s) => s.type === 'closure')
  assert.ok(closure, paths[0].text)
  assert.equal(closure.name, 'handler')
  assert.match(closure.location, /analysis-shapes\.js:\d+:\d+$/)
  const [file, line] = closure.location.split(/:(?=\d+:\d+$)/)
  const src = fs.readFileSync(path.join(__dirname, 'helpers', 'analysis-shapes.js'), 'utf8').split('\n')
  assert.ok(file.endsWith('analysis-shapes.js'))
  assert.match(src[Number(line.split(':')[0]) - 1], /function handler/)
  // The whole path, the closure placed by the location checked above. Node 20's V8 gives
  // the loop's block context an unnamed slot (`hidden` edge 0) for `c`; a V8 that names it
  // gives a `c` context edge instead.
  const head = `global → shapeRoot (property) → ShapeRoot → data (property) → Array → [] (element) → handler() @ ${closure.location} → context (internal) → system / Context → `
  assert.ok([`${head}[] (hidden) → Captured`, `${head}c (context) → Captured`].includes(paths[0].text), paths[0].text)
})

test('the express app: its Map of records is found with its path', async () => {
  const paths = await leakguard.retainers(files.express, { className: 'Small' })
  assert.equal(paths.reduce((n, p) => n + p.count, 0), 200)
  assert.match(paths[0].text, /Map → table \(internal\)/)
})
