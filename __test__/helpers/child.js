'use strict'
// Run a fixture in a real child process, bounded in time, and parse its last JSON line.

const { spawn } = require('node:child_process')
const path = require('node:path')

function runFixture (script, args, { env = {}, timeoutMs = 60000, wrap, execArgv = [], node = true } = {}) {
  return new Promise((resolve, reject) => {
    const file = path.join(__dirname, '..', 'fixtures', script)
    const cmd = wrap ? wrap.cmd : process.execPath
    const argv = wrap ? [...wrap.args, ...(node ? [process.execPath] : []), ...execArgv, file, ...args] : [...execArgv, file, ...args]
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`fixture ${script} timed out; stderr: ${stderr}`)) }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const lines = stdout.trim().split('\n').filter(Boolean)
      let json = null
      try { json = JSON.parse(lines[lines.length - 1]) } catch {}
      resolve({ code, signal, stdout, stderr, json, pid: child.pid })
    })
  })
}

module.exports = { runFixture }
