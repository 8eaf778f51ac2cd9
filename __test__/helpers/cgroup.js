'use strict'
// A real memory cgroup (v1 or v2) with a limit, for headroom tests; root on Linux only.

const fs = require('node:fs')
const path = require('node:path')

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
let n = 0

/** A memory cgroup with a small limit, or a reason why none can be made here. */
function makeCgroup (limitBytes) {
  if (process.platform !== 'linux' || !isRoot) return { reason: 'needs root on Linux to create a memory cgroup' }
  const name = `leakguard-test-${process.pid}-${++n}`
  const candidates = [
    { dir: path.join('/sys/fs/cgroup/memory', name), limit: 'memory.limit_in_bytes' },
    { dir: path.join('/sys/fs/cgroup', name), limit: 'memory.max' }
  ]
  for (const c of candidates) {
    try {
      if (!fs.existsSync(path.dirname(c.dir))) continue
      if (c.limit === 'memory.max' && !fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) continue
      fs.mkdirSync(c.dir)
      fs.writeFileSync(path.join(c.dir, c.limit), String(limitBytes))
      const v2 = c.limit === 'memory.max'
      // cgroup v2: kill the whole group on OOM, as Kubernetes >= 1.28 does (where allowed).
      let oomGroup = null
      if (v2) {
        try { fs.writeFileSync(path.join(c.dir, 'memory.oom.group'), '1'); oomGroup = true } catch { oomGroup = false }
      }
      return {
        dir: c.dir,
        version: v2 ? 2 : 1,
        oomGroup,
        setLimit: (bytes) => fs.writeFileSync(path.join(c.dir, c.limit), String(bytes)),
        /** OOM kills in this cgroup so far (v1 memory.oom_control, v2 memory.events). */
        oomKills: () => {
          const text = fs.readFileSync(path.join(c.dir, v2 ? 'memory.events' : 'memory.oom_control'), 'utf8')
          const m = /^oom_kill (\d+)$/m.exec(text)
          if (!m) throw new Error(`no oom_kill count in ${c.dir} (kernel too old?)`)
          return Number(m[1])
        },
        cleanup: () => { try { fs.rmdirSync(c.dir) } catch {} }
      }
    } catch (err) {
      try { fs.rmdirSync(c.dir) } catch {}
      return { reason: `could not create a memory cgroup: ${err.message}` }
    }
  }
  return { reason: 'no writable memory cgroup hierarchy' }
}

module.exports = { makeCgroup }
