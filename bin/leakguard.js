#!/usr/bin/env node
'use strict'
// `npx leakguard summarize FILE | diff BEFORE AFTER | retainers FILE CLASS` — see docs/cli.md.

// Exit once stdout has taken the output: a CLI is done when its answer is out, whatever
// else is still pending in the process.
require('../lib/cli').main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
  process.stdout.write('', () => process.exit(code))
}, (err) => {
  process.stderr.write(`leakguard: internal error: ${err && err.stack ? err.stack : err}\n`)
  process.exitCode = 3
})
