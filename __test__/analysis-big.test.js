'use strict'
// Multi-GB snapshots for real (issue #12: "64-bit offsets so multi-GB files work"): a
// `.heapsnapshot.gz` whose JSON is ~4.7 GiB — 600 strings of 8 MiB, then the names of a
// class and of an edge that lie past the 4 GiB mark of the file and of the string table —
// read by summarize and retainers through the public API. The cargo tests cross the
// string table's 32-bit offsets with 8-bit ones; this crosses the real ones.
//
// Behind LEAKGUARD_BIG=1 (the reader holds the 4.7 GiB of strings: ~5 GiB of memory, ~1
// minute); skipped otherwise, with the reason in the test output.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')

const leakguard = require('..')

const BIG = process.env.LEAKGUARD_BIG === '1'
const STRINGS = 600
const STRING_BYTES = 8 * 1024 * 1024
const TAILS = 1000

/** Write the snapshot through gzip (level 1), streaming: never the whole JSON in memory. */
async function writeBig (file) {
  const gz = zlib.createGzip({ level: 1 })
  const out = fs.createWriteStream(file, { mode: 0o600 })
  const done = new Promise((resolve, reject) => { out.on('finish', resolve); out.on('error', reject); gz.on('error', reject) })
  gz.pipe(out)
  const write = (chunk) => (gz.write(chunk) ? null : new Promise((resolve) => gz.once('drain', resolve)))
  // Nodes: 0 root (synthetic) → 1 Holder → STRINGS strings, TAILS BigTail objects.
  // Strings: 0 "", 1 "holder", 2 "Holder", 3 … STRINGS+2 the big ones, then "BigTail", "tail".
  const iBigTail = 3 + STRINGS
  const iTail = iBigTail + 1
  const nodeCount = 2 + STRINGS + TAILS
  const nodes = []
  const edges = []
  nodes.push([9, 0, 1, 0, 1, 0, 0]) // synthetic root, one edge
  edges.push([2, 1, 7]) // property "holder" → node 1
  nodes.push([3, 2, 3, 32, STRINGS + TAILS, 0, 0]) // Holder
  for (let i = 0; i < STRINGS; i++) edges.push([1, i, (2 + i) * 7]) // element i → string
  for (let i = 0; i < TAILS; i++) edges.push([2, iTail, (2 + STRINGS + i) * 7]) // property "tail" → BigTail
  for (let i = 0; i < STRINGS; i++) nodes.push([2, 3 + i, 5 + 2 * i, STRING_BYTES + 16, 0, 0, 0])
  for (let i = 0; i < TAILS; i++) nodes.push([3, iBigTail, 5 + 2 * (STRINGS + i), 48, 0, 0, 0])
  const meta = {
    node_fields: ['type', 'name', 'id', 'self_size', 'edge_count', 'trace_node_id', 'detachedness'],
    node_types: [['hidden', 'array', 'string', 'object', 'code', 'closure', 'regexp', 'number', 'native', 'synthetic', 'concatenated string', 'sliced string', 'symbol', 'bigint', 'object shape'], 'string', 'number', 'number', 'number', 'number', 'number'],
    edge_fields: ['type', 'name_or_index', 'to_node'],
    edge_types: [['context', 'element', 'property', 'internal', 'hidden', 'shortcut', 'weak'], 'string_or_number', 'node'],
    trace_function_info_fields: ['function_id', 'name', 'script_name', 'script_id', 'line', 'column'],
    trace_node_fields: ['id', 'function_info_index', 'count', 'size', 'children'],
    sample_fields: ['timestamp_us', 'last_assigned_id'],
    location_fields: ['object_index', 'script_id', 'line', 'column']
  }
  await write(`{"snapshot":{"meta":${JSON.stringify(meta)},"node_count":${nodeCount},"edge_count":${edges.length},"trace_function_count":0},\n`)
  await write(`"nodes":[${nodes.map((n) => n.join(',')).join(',\n')}],\n"edges":[${edges.map((e) => e.join(',')).join(',\n')}],\n`)
  await write('"trace_function_infos":[],"trace_tree":[],"samples":[],"locations":[],\n"strings":["","holder","Holder"')
  const body = Buffer.alloc(STRING_BYTES, 0x61) // 'a'
  let rawBytes = 0
  for (let i = 0; i < STRINGS; i++) {
    body.write(String(i).padStart(8, '0'), 0) // each string its own
    await write(',"')
    await write(Buffer.from(body)) // a copy: gzip may hold the chunk
    await write('"')
    rawBytes += STRING_BYTES + 3
  }
  await write(',"BigTail","tail"]}\n')
  gz.end()
  await done
  return { stringBytes: rawBytes, nodeCount, edgeCount: edges.length }
}

test('a snapshot of 4.7 GiB of JSON: names past the 4 GiB mark read back (summarize and retainers)', { skip: BIG ? false : 'set LEAKGUARD_BIG=1 (needs ~5 GiB of memory and ~1 minute)', timeout: 900000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-big-'))
  try {
    const file = path.join(dir, 'big.heapsnapshot.gz')
    const w = await writeBig(file)
    assert.ok(w.stringBytes > 4.5 * 2 ** 30, `${w.stringBytes} bytes of strings`)
    let lastRead = null
    const summary = await leakguard.summarize(file, { onProgress: (p) => { if (p.phase === 'read') lastRead = p } })
    assert.equal(summary.nodes, w.nodeCount)
    assert.equal(summary.edges, w.edgeCount)
    const byName = new Map(summary.classes.map((c) => [`${c.type} ${c.name}`, c]))
    assert.equal(byName.get('object BigTail').count, TAILS, JSON.stringify(summary.classes))
    assert.equal(byName.get('object BigTail').shallowBytes, TAILS * 48)
    assert.equal(byName.get('string (string)').count, STRINGS)
    assert.equal(summary.totalBytes, 32 + STRINGS * (STRING_BYTES + 16) + TAILS * 48)
    // The progress counted the compressed file's bytes to its end (a u64 all the way).
    assert.equal(lastRead && lastRead.done, fs.statSync(file).size)
    const paths = await leakguard.retainers(file, { className: 'BigTail', limit: 1 })
    assert.equal(paths[0].count, TAILS)
    // "tail" and "BigTail" are the table's last strings, past its 4 GiB mark.
    assert.equal(paths[0].text, 'Holder → tail (property) → BigTail')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
