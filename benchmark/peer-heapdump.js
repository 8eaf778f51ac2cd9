'use strict'
// The npm `heapdump` peer, installed on demand into node_modules/.cache (not a
// devDependency: its node-gyp build needs Node's headers, which a fresh machine may not
// have, and `npm install` of the project must never fail for a benchmark peer).
// Returns the module, or throws with the reason it could not be built.

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const prefix = path.join(__dirname, '..', 'node_modules', '.cache', 'leakguard-heapdump')

function loadHeapdump () {
  const dir = path.join(prefix, 'node_modules', 'heapdump')
  if (!fs.existsSync(path.join(dir, 'build'))) {
    fs.mkdirSync(prefix, { recursive: true })
    // npm 11 runs a dependency's install script only when allowScripts approves it.
    fs.writeFileSync(path.join(prefix, 'package.json'), JSON.stringify({ private: true, allowScripts: { heapdump: true } }))
    execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['install', '--no-audit', '--no-fund', 'heapdump@0.3.15'], { cwd: prefix, stdio: 'inherit' })
  }
  return require(dir)
}

module.exports = { loadHeapdump }
