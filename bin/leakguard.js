#!/usr/bin/env node
'use strict'
// `npx leakguard summarize FILE | diff BEFORE AFTER | retainers FILE CLASS` — see docs/cli.md.

require('../lib/cli').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
}, (err) => {
  process.stderr.write(`leakguard: internal error: ${err && err.stack ? err.stack : err}\n`)
  process.exitCode = 3
})
