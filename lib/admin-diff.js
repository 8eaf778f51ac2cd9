'use strict'
// The admin route's `POST …/diff?before=NAME&after=NAME`: the diff of two snapshots of the
// capture directory, run in a child process under the capture budget (lib/analysis-child.js),
// one at a time. Authentication happens before this is reached (lib/admin.js).
//
// Invariants:
// - the query has exactly `before` and `after`, once each, and each is a name exactly as
//   `GET …/snapshots` lists it (leakguard's own pattern, a regular file in the directory,
//   never a path or a symlink): 400 for anything else, 404 for a name not listed;
// - one diff at a time in the process: 409 while one runs (or another analysis child);
// - a client that goes away cancels the child.

const path = require('node:path')

const { codes } = require('./errors')
const { diffInChild, analysisRunning } = require('./analysis-child')

/** Classes (with their retainer paths) the route returns, largest growth first. */
const TOP_CLASSES = 25
/** How many of them come with retainer paths. */
const RETAINED_CLASSES = 10

function code (key) {
  return codes[key] || `ERR_LEAKGUARD_${key}`
}

/** HTTP status for an error the analysis child rejected with. */
function diffErrorStatus (errCode) {
  switch (errCode) {
    case code('ANALYSIS_IN_PROGRESS'): return 409
    case code('ANALYSIS_OUT_OF_MEMORY'): return 507
    case code('ANALYSIS_INVALID_SNAPSHOT'): return 422
    default: return 500
  }
}

/**
 * `{ before, after }` from the query, or `{ error: { status, code, message } }`.
 * `listed` is the names `GET …/snapshots` lists now.
 */
function parseDiffQuery (query, listed, namePattern) {
  const bad = (message) => ({ error: { status: 400, code: codes.OPTIONS_INVALID, message: `leakguard: ${message}` } })
  for (const k of query.keys()) {
    if (k !== 'before' && k !== 'after') return bad(`POST …/diff takes only ?before=NAME&after=NAME; unknown parameter ${JSON.stringify(k.slice(0, 40))}`)
  }
  const names = {}
  for (const k of ['before', 'after']) {
    const all = query.getAll(k)
    if (all.length !== 1) return bad(`POST …/diff needs exactly one ${k}=NAME (a name as GET …/snapshots lists it)`)
    if (!namePattern.test(all[0])) return bad(`${k} must be a snapshot name exactly as GET …/snapshots lists it (heap-<yyyymmddThhmmssZ>-<pid>-<seq>.heapsnapshot.gz)`)
    names[k] = all[0]
  }
  if (names.before === names.after) return bad('before and after must be two different snapshots')
  for (const k of ['before', 'after']) {
    if (!listed.includes(names[k])) {
      return { error: { status: 404, code: codes.ADMIN_NOT_FOUND, message: `leakguard: no snapshot ${names[k]} in the capture directory (GET …/snapshots lists them)` } }
    }
  }
  return names
}

/**
 * The route's handler. `ctx`: `{ dirNow, listSnapshots, sendJson, sendError, namePattern,
 * memoryBudget }` from lib/admin.js.
 */
function makeDiffRoute (ctx) {
  return async function diffRoute (req, res, query) {
    if (analysisRunning()) {
      return ctx.sendError(res, 409, code('ANALYSIS_IN_PROGRESS'), 'leakguard: a diff is already running; try again when it has finished')
    }
    const dir = ctx.dirNow()
    const listed = (await ctx.listSnapshots(dir)).map((s) => s.name)
    const q = parseDiffQuery(query, listed, ctx.namePattern)
    if (q.error) return ctx.sendError(res, q.error.status, q.error.code, q.error.message)
    const ac = new AbortController()
    const onClose = () => { if (!res.writableFinished) ac.abort() }
    res.once('close', onClose)
    try {
      const report = await diffInChild(path.join(dir, q.before), path.join(dir, q.after), {
        signal: ac.signal,
        memoryBudget: ctx.memoryBudget ? ctx.memoryBudget() : undefined,
        top: TOP_CLASSES,
        retainers: RETAINED_CLASSES
      })
      ctx.sendJson(res, 200, { ...report, snapshots: { before: q.before, after: q.after } })
    } catch (err) {
      if (ac.signal.aborted) return // the client is gone
      const c = err && typeof err.code === 'string' && err.code.startsWith('ERR_LEAKGUARD_') ? err.code : codes.ADMIN_INTERNAL
      ctx.sendError(res, diffErrorStatus(c), c, err && err.message ? String(err.message) : 'leakguard: the diff failed')
    } finally {
      res.removeListener('close', onClose)
    }
  }
}

module.exports = { makeDiffRoute, parseDiffQuery, diffErrorStatus, TOP_CLASSES }
