'use strict'
// Reading captures back, for tests: gunzip, JSON.parse, count objects by constructor —
// with our own few lines over the snapshot's meta and with the third-party
// `v8-heapsnapshot` parser, so a capture is checked by a reader leakguard did not write.

const fs = require('node:fs')
const zlib = require('node:zlib')
const v8hs = require('v8-heapsnapshot')

function gunzipText (file) {
  return zlib.gunzipSync(fs.readFileSync(file)).toString('utf8')
}

/** Count nodes of type `object` named `name`, straight from the flat arrays. */
function countObjects (snapshot, name) {
  const meta = snapshot.snapshot.meta
  const fields = meta.node_fields
  const stride = fields.length
  const typeIdx = fields.indexOf('name') >= 0 ? fields.indexOf('type') : -1
  const nameIdx = fields.indexOf('name')
  const objectType = meta.node_types[0].indexOf('object')
  const nameId = snapshot.strings.indexOf(name)
  let n = 0
  const nodes = snapshot.nodes
  for (let i = 0; i < nodes.length; i += stride) {
    if (nodes[i + typeIdx] === objectType && snapshot.strings[nodes[i + nameIdx]] === name) n++
  }
  return nameId < 0 ? 0 : n
}

/** Count with the independent parser. */
async function countWithParser (text, name) {
  const snap = await v8hs.parseSnapshot(text)
  let n = 0
  for (const node of snap.nodes) if (node.type === 'object' && node.name === name) n++
  return n
}

module.exports = { gunzipText, countObjects, countWithParser }
