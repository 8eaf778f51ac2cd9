'use strict'
// The command-line tool (bin/leakguard.js): `leakguard summarize|diff|retainers …`.
// Readable tables on stdout by default, `--json` for scripts, exit codes for CI, a
// progress bar on stderr only when stderr is a terminal, Ctrl-C cancels the analysis
// through its AbortSignal. docs/cli.md documents the commands and the exit codes.
//
// `main(argv, io)` returns the exit code instead of exiting, so nothing is cut short while
// stdout drains; bin/leakguard.js sets process.exitCode from it.

const fs = require('node:fs')
const { parseArgs } = require('node:util')

const fmt = require('./format')

/** Exit codes (docs/cli.md). */
const EXIT = Object.freeze({ OK: 0, GROWTH: 1, USAGE: 2, ANALYSIS: 3, CANCELLED: 130 })

const HELP = {
  main: `leakguard — heap snapshot analysis

Usage:
  leakguard summarize FILE              classes by retained size
  leakguard diff BEFORE AFTER           what grew between two snapshots, and what retains it
  leakguard retainers FILE CLASS        the paths from the GC roots that keep CLASS alive
  leakguard help [COMMAND]

FILE is a .heapsnapshot or a .heapsnapshot.gz (recognised by its content).

Options (every command):
  --json                  print the result as JSON (the API's object) instead of tables
  --no-progress           no progress bar (it is shown only when stderr is a terminal)
  --memory-limit BYTES    fail (exit 3) rather than grow past BYTES more address space
  -h, --help              this text

Exit codes: 0 done; 1 the heap grew more than --fail-on-growth; 2 usage error;
3 the analysis failed (not a snapshot, truncated, unreadable, out of memory); 130 cancelled.
BYTES takes units: 4096, 512KiB, 10MiB, 1.5GiB (or kB, MB, GB: powers of 1000).`,
  summarize: `Usage: leakguard summarize FILE [--top N] [--json]

Counts, shallow and retained sizes per class, largest retained first.
  --top N      show the N largest classes (default 25 in tables, all with --json)`,
  diff: `Usage: leakguard diff BEFORE AFTER [--top N] [--fail-on-growth BYTES] [--json]

Per class, how count and sizes changed from BEFORE to AFTER, largest growth first, with
the retainer paths of the top growing classes and the growth detectors' findings.
Objects are matched by node id when both snapshots come from one process (inline
captures), by class totals otherwise (fork captures assign their own ids).
  --top N                 show the N classes that grew most (default 15 in tables)
  --fail-on-growth BYTES  exit 1 when the heap grew by more than BYTES (the difference
                          of the snapshots' total self sizes), for CI
  --retainers N           give retainer paths for the N classes that grew most (default 5)
  --method M              auto (default: from the capture manifests, else the data), id
                          or aggregate`,
  retainers: `Usage: leakguard retainers FILE CLASS [--limit N] [--json]

The shortest paths from a GC root to the instances of CLASS, merged by class, with how
many instances each path holds and what they retain.
  --limit N    at most N paths (default 10)`
}

const COMMON = {
  json: { type: 'boolean', default: false },
  progress: { type: 'boolean', default: true },
  'no-progress': { type: 'boolean', default: false },
  'memory-limit': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false }
}
const COMMANDS = {
  summarize: { args: ['FILE'], options: { top: { type: 'string' } } },
  diff: { args: ['BEFORE', 'AFTER'], options: { top: { type: 'string' }, 'fail-on-growth': { type: 'string' }, method: { type: 'string' }, retainers: { type: 'string' } } },
  retainers: { args: ['FILE', 'CLASS'], options: { limit: { type: 'string' } } }
}

class UsageError extends Error {}

/** What a failed allocation or thread start says (Rust, libc, V8). */
const OUT_OF_MEMORY = /memory allocation of \d+ bytes failed|out of memory|Cannot allocate memory|Resource temporarily unavailable|os error 1[12]\b|bad_alloc|Allocation failed/i

function positiveInt (text, flag) {
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 1e9) throw new UsageError(`${flag} must be a whole number ≥ 1; got ${JSON.stringify(text)}`)
  return Number(text)
}

function byteSize (text, flag, min = 0) {
  if (text === undefined) return undefined
  const v = fmt.parseBytes(text)
  if (v === null || v < min) throw new UsageError(`${flag} must be a size in bytes such as 4096, 512KiB or 10MiB; got ${JSON.stringify(text)}`)
  return v
}

function checkFile (file, what) {
  let st
  try {
    st = fs.statSync(file)
  } catch (err) {
    throw new UsageError(`${what} ${JSON.stringify(file)}: ${err.code === 'ENOENT' ? 'no such file' : err.code || err.message}`)
  }
  if (!st.isFile()) throw new UsageError(`${what} ${JSON.stringify(file)} is not a file`)
  return file
}

/** `{ command, files, className, flags }` from argv, or throws UsageError; `{ help }` for help. */
function parse (argv) {
  const [command, ...rest] = argv
  if (command === undefined) throw new UsageError('no command given (summarize, diff, retainers)')
  if (command === '-h' || command === '--help') return { help: 'main' }
  if (command === 'help') {
    const topic = rest[0]
    if (topic !== undefined && !COMMANDS[topic]) throw new UsageError(`no command ${JSON.stringify(topic)} (summarize, diff, retainers)`)
    return { help: topic || 'main' }
  }
  if (command === '--version' || command === '-v') return { version: true }
  const spec = COMMANDS[command]
  if (!spec) throw new UsageError(`unknown command ${JSON.stringify(command)} (summarize, diff, retainers)`)
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: { ...COMMON, ...spec.options }, allowPositionals: true, strict: true })
  } catch (err) {
    // parseArgs' own messages name the option; keep them, drop its advice to use "--".
    throw new UsageError(String(err.message).split(/\.?\s*To specify/)[0].replace(/\s*\n\s*/g, ' '))
  }
  const v = parsed.values
  if (v.help) return { help: command }
  const pos = parsed.positionals
  if (pos.length !== spec.args.length) {
    throw new UsageError(`${command} takes ${spec.args.join(' ')}; got ${pos.length} argument${pos.length === 1 ? '' : 's'}`)
  }
  const flags = {
    json: v.json,
    progress: v.progress && !v['no-progress'],
    memoryLimit: byteSize(v['memory-limit'], '--memory-limit', 1),
    top: positiveInt(v.top, '--top'),
    limit: positiveInt(v.limit, '--limit'),
    failOnGrowth: byteSize(v['fail-on-growth'], '--fail-on-growth'),
    method: v.method,
    retainers: positiveInt(v.retainers, '--retainers')
  }
  if (flags.method !== undefined && !['auto', 'id', 'aggregate'].includes(flags.method)) {
    throw new UsageError(`--method must be auto, id or aggregate; got ${JSON.stringify(flags.method)}`)
  }
  if (command === 'retainers') {
    if (pos[1].length === 0) throw new UsageError('CLASS must not be empty')
    return { command, files: [checkFile(pos[0], 'FILE')], className: pos[1], flags }
  }
  return { command, files: pos.map((f, i) => checkFile(f, spec.args[i])), flags }
}

// --- progress ---

/** A one-line bar on a TTY stream, redrawn at most 10 times a second; `clear()` removes it. */
function progressBar (stream, label) {
  let lastDraw = 0
  let drawn = false
  return {
    update (p) {
      const now = Date.now()
      if (now - lastDraw < 100 || !p) return
      lastDraw = now
      const frac = p.total > 0 ? Math.min(1, Math.max(0, p.done / p.total)) : 0
      const width = 24
      const fill = Math.round(frac * width)
      const cols = stream.columns || 80
      const phase = p.snapshot ? `${p.snapshot}: ${p.phase || ''}` : String(p.phase || '')
      const text = `${label} ${phase.padEnd(18)} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%`
      stream.write(`\r${text.slice(0, cols - 1)}\x1b[K`)
      drawn = true
    },
    clear () {
      if (drawn) stream.write('\r\x1b[K')
      drawn = false
    }
  }
}

// --- rendering ---

function renderSummary (s, file, top) {
  const shown = s.classes.slice(0, top ?? 25)
  let out = `${file}: ${fmt.count(s.nodes)} nodes, ${fmt.count(s.edges)} edges, ${fmt.bytes(s.totalBytes)} (${fmt.count(s.classes.length)} classes)\n\n`
  out += fmt.table(
    [{ title: 'Class', max: 60 }, { title: 'Type' }, { title: 'Count', align: 'right' }, { title: 'Shallow', align: 'right' }, { title: 'Retained', align: 'right' }],
    shown.map((c) => [c.name, c.type, fmt.count(c.count), fmt.bytes(c.shallowBytes), fmt.bytes(c.retainedBytes)])
  )
  if (s.classes.length > shown.length) out += `… ${fmt.count(s.classes.length - shown.length)} more classes (--top N, or --json for all)\n`
  return out
}

function renderPaths (paths, indent) {
  let out = ''
  for (const p of paths) {
    out += `${indent}${fmt.count(p.count)} × retaining ${fmt.bytes(p.retainedBytes)}: ${p.text}\n`
  }
  return out
}

/** How much the heap grew: the difference of the two snapshots' total self sizes. */
function netGrowth (report) {
  if (report.before && report.after && Number.isFinite(report.before.totalBytes) && Number.isFinite(report.after.totalBytes)) {
    return report.after.totalBytes - report.before.totalBytes
  }
  return report.classes.reduce((sum, c) => sum + (Number.isFinite(c.shallowDelta) ? c.shallowDelta : 0), 0)
}

function renderDiff (d, before, after, top) {
  const growing = d.classes.filter((c) => c.shallowDelta > 0 || c.retainedDelta > 0 || c.countDelta > 0)
  const shown = d.classes.slice(0, top ?? 15)
  const how = d.method === 'id' ? 'objects matched by node id' : 'class totals compared (the snapshots come from different processes or captures)'
  let out = `${before} → ${after}: ${fmt.signedBytes(netGrowth(d))} (${how})\n\n`
  out += fmt.table(
    [{ title: 'Class', max: 60 }, { title: 'Type' }, { title: 'Count Δ', align: 'right' }, { title: 'Shallow Δ', align: 'right' }, { title: 'Retained Δ', align: 'right' }],
    shown.map((c) => [c.name, c.type, fmt.signedCount(c.countDelta), fmt.signedBytes(c.shallowDelta), fmt.signedBytes(c.retainedDelta)])
  )
  if (d.classes.length > shown.length) out += `… ${fmt.count(d.classes.length - shown.length)} more classes (${fmt.count(growing.length)} grew in all; --top N, or --json)\n`
  const withPaths = d.classes.filter((c) => Array.isArray(c.retainers) && c.retainers.length > 0)
  if (withPaths.length) {
    out += '\nRetained by:\n'
    for (const c of withPaths) out += `  ${c.name} (${fmt.signedCount(c.countDelta)})\n${renderPaths(c.retainers, '    ')}`
  }
  if (Array.isArray(d.detectors) && d.detectors.length) {
    out += '\nFindings:\n'
    for (const f of d.detectors) {
      out += `  ${f.kind}: ${f.className} grew from ${fmt.count(f.before)} to ${fmt.count(f.after)}\n`
      if (f.path && f.path.text) out += `    at ${f.path.text}\n`
      if (f.advice) out += `    → ${f.advice}\n`
    }
  }
  return out
}

function renderRetainers (paths, file, className) {
  if (paths.length === 0) return `${file}: no retainer paths for ${className} (no live instance reachable from a GC root)\n`
  return `${file}: what retains ${className}\n\n${renderPaths(paths, '  ')}`
}

// --- running ---

function describeError (err) {
  const code = err && typeof err.code === 'string' ? err.code : 'ERR_LEAKGUARD_ANALYSIS_FAILED'
  const message = err && err.message ? String(err.message) : String(err)
  return { code, message }
}

/**
 * Run the tool. `io`: `{ stdout, stderr, leakguard?, process? }` (streams; the library and
 * the process whose signals cancel default to the real ones). Resolves with the exit code.
 */
async function main (argv, io = {}) {
  const stdout = io.stdout || process.stdout
  const stderr = io.stderr || process.stderr
  const proc = io.process || process
  let req
  try {
    req = parse(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    stderr.write(`leakguard: ${err.message}\nRun "leakguard --help" for usage.\n`)
    return EXIT.USAGE
  }
  if (req.help) {
    stdout.write(HELP[req.help] + '\n')
    return EXIT.OK
  }
  if (req.version) {
    stdout.write(require('../package.json').version + '\n')
    return EXIT.OK
  }
  const { flags } = req
  if (flags.memoryLimit !== undefined) {
    try {
      require('./native').call(require('./native').binding.limitAddressSpace, flags.memoryLimit)
    } catch (err) {
      stderr.write(`leakguard: ${err.message}\n`)
      return EXIT.USAGE
    }
  }
  // Only the analysis module (the same functions `require('leakguard')` exports): the
  // CLI does not load the server agent (watch, admin, metrics, upload), 9 MiB of
  // resident memory less in every run.
  const leakguard = io.leakguard || require('./analysis')

  const bar = flags.progress && stderr.isTTY ? progressBar(stderr, req.command) : null
  const ac = new AbortController()
  let interrupts = 0
  const onSignal = () => {
    interrupts++
    if (interrupts > 1) proc.exit(EXIT.CANCELLED) // a second Ctrl-C: do not wait
    if (bar) bar.clear()
    stderr.write('leakguard: cancelling…\n')
    ac.abort()
  }
  proc.on('SIGINT', onSignal)
  proc.on('SIGTERM', onSignal)

  const options = { signal: ac.signal }
  if (bar) options.onProgress = (p) => bar.update(p)

  try {
    switch (req.command) {
      case 'summarize': {
        const s = await leakguard.summarize(req.files[0], options)
        if (bar) bar.clear()
        if (flags.json) stdout.write(JSON.stringify(flags.top ? { ...s, classes: s.classes.slice(0, flags.top) } : s) + '\n')
        else stdout.write(renderSummary(s, req.files[0], flags.top))
        return EXIT.OK
      }
      case 'diff': {
        const diffOptions = { ...options }
        if (flags.method) diffOptions.method = flags.method
        if (flags.retainers) diffOptions.top = flags.retainers
        const d = await leakguard.diff(req.files[0], req.files[1], diffOptions)
        if (bar) bar.clear()
        if (flags.json) stdout.write(JSON.stringify(flags.top ? { ...d, classes: d.classes.slice(0, flags.top) } : d) + '\n')
        else stdout.write(renderDiff(d, req.files[0], req.files[1], flags.top))
        if (flags.failOnGrowth !== undefined) {
          const grew = netGrowth(d)
          if (grew > flags.failOnGrowth) {
            stderr.write(`leakguard: the heap grew by ${fmt.bytes(grew)}, more than --fail-on-growth ${fmt.bytes(flags.failOnGrowth)}\n`)
            return EXIT.GROWTH
          }
        }
        return EXIT.OK
      }
      case 'retainers': {
        const paths = await leakguard.retainers(req.files[0], { ...options, className: req.className, limit: flags.limit ?? 10 })
        if (bar) bar.clear()
        if (flags.json) stdout.write(JSON.stringify(paths) + '\n')
        else stdout.write(renderRetainers(paths, req.files[0], req.className))
        return EXIT.OK
      }
    }
  } catch (err) {
    if (bar) bar.clear()
    let e = describeError(err)
    // Under --memory-limit, a failed allocation or thread start is the limit at work.
    if (flags.memoryLimit !== undefined && OUT_OF_MEMORY.test(e.message)) {
      e = { code: 'ERR_LEAKGUARD_ANALYSIS_OUT_OF_MEMORY', message: `${e.message} (under --memory-limit ${fmt.bytes(flags.memoryLimit)})` }
    }
    if (ac.signal.aborted) {
      stderr.write('leakguard: cancelled\n')
      return EXIT.CANCELLED
    }
    if (flags.json) stdout.write(JSON.stringify({ error: e }) + '\n')
    stderr.write(`leakguard: ${e.message} (${e.code})\n`)
    // A coded option error from the library is still the caller's mistake.
    return e.code === 'ERR_LEAKGUARD_OPTIONS_INVALID' ? EXIT.USAGE : EXIT.ANALYSIS
  } finally {
    proc.removeListener('SIGINT', onSignal)
    proc.removeListener('SIGTERM', onSignal)
  }
}

module.exports = { main, parse, netGrowth, renderSummary, renderDiff, renderRetainers, EXIT, HELP, UsageError }
