'use strict'
// A child process with the planted leaks (analysis-leak-module.js) and two leakguard captures around their
// growth: node analysis-leak-app.js MODE DIR  → prints { before, after } (CaptureResults).

const path = require('node:path')
const leakguard = require('../..')
const leaks = require('./analysis-leak-module')

async function main () {
  const [mode, dir] = process.argv.slice(2)
  leaks.leak(10)
  leaks.leakListeners(5)
  leaks.leakClosure(7)
  leaks.leakSet(12)
  leaks.leakObject(9)
  leaks.churn(3)
  const before = await leakguard.capture({ dir, mode, fallback: 'none', force: true, maxSnapshots: 10 })
  leaks.leak(1234)
  leaks.leakListeners(300)
  leaks.leakClosure(777)
  leaks.leakSet(555)
  leaks.leakObject(432)
  leaks.churn(100)
  const after = await leakguard.capture({ dir, mode, fallback: 'none', force: true, maxSnapshots: 10 })
  process.stdout.write(JSON.stringify({ before, after, module: path.join(__dirname, 'analysis-leak-module.js') }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
