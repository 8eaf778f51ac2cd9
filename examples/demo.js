'use strict'
// `npm run demo`: start the leaky Express service (examples/leaky-server.js) with
// leakguard.watch() at a 100 ms interval, drive it with a bounded load over loopback,
// watch the verdict move from warming-up to leak through the authenticated admin route,
// read the listener-leak report (emitter, event, the handler's file:line), take a capture
// through the admin route, check the file, and print a summary. Exits 0 when both leaks
// were found, 1 otherwise; never runs longer than the time budget.
//
// Options (environment): LEAKGUARD_DEMO_SECONDS (budget, default 100),
// LEAKGUARD_DEMO_QUIET=1 (no progress lines), LEAKGUARD_DEMO_JSON=1 (a JSON summary last).

const { fork } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const http = require('node:http')
const zlib = require('node:zlib')

const budgetMs = Number(process.env.LEAKGUARD_DEMO_SECONDS || 100) * 1000
// The load: a few keep-alive clients with a short pause, ~1,000 requests/s here.
const CLIENTS = 2
const PAUSE_MS = 4
const quiet = process.env.LEAKGUARD_DEMO_QUIET === '1'
const token = crypto.randomBytes(24).toString('hex')
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-demo-'))
const started = Date.now()
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1).padStart(5) + 's'
const say = (s) => { if (!quiet) console.log(s) }
const MiB = (b) => `${(b / 1048576).toFixed(1)} MiB`
/** 0.9998015873 → '99.98 %' */
const percent = (x) => `${(x * 100).toFixed(2)} %`
/** An epoch ms in the future → 'in 58 min' (or 'in 40 s', 'in 3.2 h'). */
function fromNow (t) {
  const s = Math.max(0, (t - Date.now()) / 1000)
  if (s < 90) return `in ${Math.round(s)} s`
  if (s < 90 * 60) return `in ${Math.round(s / 60)} min`
  if (s < 48 * 3600) return `in ${(s / 3600).toFixed(1)} h`
  return `in ${Math.round(s / 86400)} days`
}
/** 'fn examples/x.js:12:3' → 'examples/x.js:12' */
const fileLine = (name) => { const m = /(\S+):(\d+):\d+$/.exec(name || ''); return m ? `${m[1]}:${m[2]}` : name }
/** A site named by a frame of the application's own code (not node:…, not node_modules). */
// Names are relative to the cwd when under it, so a dependency's is `node_modules/…` with no
// separator before it.
const isAppSite = (x) => { const at = fileLine(x.name); return Boolean(at) && !/^node:|(^|[\\/])node_modules[\\/]|^\(/.test(at) }

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
function request (port, method, urlPath, { auth = true, raw = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent, headers: auth ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        if (raw) return resolve({ status: res.statusCode, headers: res.headers, body })
        let json = null
        try { json = JSON.parse(body.toString('utf8')) } catch {}
        resolve({ status: res.statusCode, json, text: body.toString('utf8') })
      })
    })
    req.setTimeout(120000, () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end()
  })
}

async function main () {
  say(`leakguard demo — a leaky Express service on loopback, watched at a 100 ms interval (budget ${budgetMs / 1000} s)`)
  // A 256 MiB old generation, like a small container: V8 collects more often as the leak
  // nears it (more post-GC floors, sooner), and the heap stays small enough to capture.
  const child = fork(path.join(__dirname, 'leaky-server.js'), [], {
    execArgv: ['--max-old-space-size=256'],
    env: { ...process.env, LEAKGUARD_TOKEN: token, LEAKGUARD_DIR: dir, LEAKGUARD_INTERVAL_MS: '100', LEAKGUARD_COOLDOWN_MS: '1000' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const found = { leak: null, listenerLeak: null }
  const port = await new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m.type === 'listening') resolve(m.payload.port)
      if (m.type === 'leak' && !found.leak) found.leak = m.payload
      if (m.type === 'listener-leak' && !found.listenerLeak) found.listenerLeak = m.payload
      if (m.type === 'capture') say(`${elapsed()}  capture written: ${m.payload.mode}, loop paused ${m.payload.stallMs.toFixed(1)} ms, ${MiB(m.payload.bytes)} (${path.basename(m.payload.path)})`)
    })
    child.once('exit', (code) => reject(new Error(`the server exited early (${code})`)))
  })
  say(`server listening on 127.0.0.1:${port}; admin route /debug/leakguard (Bearer token)`)

  // The bounded load: a few concurrent clients, each request leaking on purpose.
  let sent = 0
  let errors = 0
  let stopLoad = false
  const symbols = ['ACME', 'GLOBEX', 'INITECH', 'UMBRELLA']
  const client = async () => {
    while (!stopLoad && Date.now() - started < budgetMs) {
      try {
        await request(port, 'GET', `/quote/${symbols[sent % symbols.length]}`, { auth: false })
        sent++
      } catch { errors++ }
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS))
    }
  }
  const clients = Array.from({ length: CLIENTS }, client)

  // Watch the verdict through the admin route, once a second.
  const unauth = await request(port, 'GET', '/debug/leakguard/status', { auth: false })
  say(`GET /debug/leakguard/status without the token → ${unauth.status}`)
  let lastState = null
  let status = null
  while (Date.now() - started < budgetMs - 15000) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const s = await request(port, 'GET', '/debug/leakguard/status')
    status = s.json
    const heap = status && status.heap
    const state = heap ? heap.state : 'n/a'
    const leaks = (status && status.listeners && status.listeners.leaks) || []
    const latest = status && status.latest
    say(`${elapsed()}  requests ${String(sent).padStart(6)}  heapUsed ${latest ? MiB(latest.heapUsed).padStart(10) : '?'}  verdict ${state.padEnd(10)} ${heap && heap.slopeBytesPerHour ? `slope ${MiB(heap.slopeBytesPerHour)}/h` : ''}  listener leaks ${leaks.length}`)
    if (state !== lastState) {
      if (lastState !== null) say(`         verdict: ${lastState} → ${state}`)
      lastState = state
    }
    if (state === 'leak' && leaks.length > 0) break
  }
  // What grows, and where it was allocated: the report through the admin route (bounded
  // wait for a site the statistics call growing), while the load still runs: once it
  // stops, nothing grows any more.
  let site = null
  for (let i = 0; i < 20 && !site && Date.now() - started < budgetMs - 15000; i++) {
    const rep = await request(port, 'GET', '/debug/leakguard/report')
    const sites = (rep.json && rep.json.sites) || []
    // The summary names the top growing site in the service's own code; Node's own
    // (node:…) and dependencies' sites may grow too under load and are listed beside it.
    site = sites.find((x) => x.growing && isAppSite(x)) || null
    if (!site) await new Promise((resolve) => setTimeout(resolve, 1000))
    else {
      say('\nallocation sites (live bytes sampled by V8, growth over the verdict\'s window):')
      for (const x of sites.filter((y) => y.growing).slice(0, 3)) {
        say(`  ${fileLine(x.name)} (${x.name.split(' ')[0]}): ${MiB(x.liveBytes)} live, +${MiB(x.growthBytesPerHour)}/h, ${percent(x.share)} of the heap's growth`)
      }
    }
  }
  stopLoad = true
  await Promise.all(clients)

  const heap = status && status.heap
  const listenerLeak = (status && status.listeners && status.listeners.leaks && status.listeners.leaks[0]) || found.listenerLeak
  if (listenerLeak) {
    say('\nlistener leak:')
    say(`  ${listenerLeak.emitter} '${listenerLeak.event}': ${listenerLeak.count} listeners, +${Math.round(listenerLeak.ratePerMinute)}/min`)
    for (const c of (listenerLeak.callSites || []).slice(0, 3)) say(`  added at ${c.location} (${c.count} seen)`)
  }
  if (heap) say(`\nheap verdict: ${heap.state} (confidence ${percent(heap.confidence)}), slope ${MiB(heap.slopeBytesPerHour)}/h, floor ${MiB(heap.floorBytes)}${heap.projectedLimitAt ? `, limit reached ${fromNow(heap.projectedLimitAt)}` : ''}`)


  // A capture through the admin route, as an operator would take one.
  say('\nPOST /debug/leakguard/capture …')
  let cap = await request(port, 'POST', '/debug/leakguard/capture')
  // The guard's own autoCapture (onLeak) may be writing a snapshot right now: 409 means
  // "one is running" — wait for it, as an operator would, and ask again (bounded).
  for (let i = 0; i < 60 && cap.status === 409; i++) {
    if (i === 0) say('  409: a capture is already running (the guard\'s automatic one on the leak verdict); waiting')
    await new Promise((resolve) => setTimeout(resolve, 1000))
    cap = await request(port, 'POST', '/debug/leakguard/capture')
  }
  let capture = null
  let verified = null
  if (cap.status === 200 && cap.json) {
    capture = cap.json
    say(`  ${capture.mode} capture (${capture.modeReason}): event loop paused ${capture.stallMs.toFixed(1)} ms; ${MiB(capture.bytes)} gzip of ${MiB(capture.rawBytes)} snapshot in ${(capture.durationMs / 1000).toFixed(1)} s`)
    say(`  ${capture.path}`)
    // Check the file like a user would: gunzip, parse, count the leaking class.
    const snap = JSON.parse(zlib.gunzipSync(fs.readFileSync(capture.path)).toString('utf8'))
    const f = snap.snapshot.meta.node_fields
    const objectType = snap.snapshot.meta.node_types[0].indexOf('object')
    let quotes = 0
    for (let i = 0; i < snap.nodes.length; i += f.length) {
      if (snap.nodes[i + f.indexOf('type')] === objectType && snap.strings[snap.nodes[i + f.indexOf('name')]] === 'Quote') quotes++
    }
    verified = { quotes }
    say(`  the snapshot holds ${quotes} Quote objects (the Map cache's entries)`)
  } else {
    say(`  capture answered ${cap.status}: ${cap.text.slice(0, 300)}`)
  }

  // What grew and what retains it (issue #12): more load, a second capture, and the diff of
  // the two newest snapshots through the admin route (it runs in a child of the server).
  let analysis = null
  if (capture) {
    say('\nmore load, a second capture, then POST /debug/leakguard/diff …')
    for (let i = 0; i < 1500; i++) await request(port, 'GET', `/quote/${symbols[i % symbols.length]}`, { auth: false })
    let cap2 = await request(port, 'POST', '/debug/leakguard/capture')
    for (let i = 0; i < 60 && (cap2.status === 409 || cap2.status === 429); i++) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      cap2 = await request(port, 'POST', '/debug/leakguard/capture')
    }
    const list = (await request(port, 'GET', '/debug/leakguard/snapshots')).json
    const [after, before] = list && list.snapshots ? list.snapshots.map((s) => s.name) : []
    const d = cap2.status === 200 && before ? await request(port, 'POST', `/debug/leakguard/diff?before=${before}&after=${after}`) : cap2
    if (d.status === 200 && d.json) {
      const top = d.json.classes[0]
      const quote = d.json.classes.find((c) => c.name === 'Quote')
      const retained = quote && quote.retainers && quote.retainers[0]
      analysis = { method: d.json.method, top: top && { name: top.name, countDelta: top.countDelta, shallowDelta: top.shallowDelta }, quote: quote && { countDelta: quote.countDelta, shallowDelta: quote.shallowDelta, path: retained ? retained.text : null } }
      say(`  ${before} → ${after} (${d.json.method})`)
      say(`  grew most: ${top.name} ${top.countDelta >= 0 ? '+' : ''}${top.countDelta} objects, ${MiB(top.shallowDelta)}`)
      if (quote) say(`  Quote: +${quote.countDelta} objects, ${MiB(quote.shallowDelta)}${retained ? `, retained by ${retained.text}` : ''}`)
    } else {
      say(`  diff answered ${d.status}: ${(d.text || '').slice(0, 300)}`)
    }
  }

  child.disconnect()
  await new Promise((resolve) => { const t = setTimeout(() => { child.kill('SIGKILL'); resolve() }, 5000); child.once('exit', () => { clearTimeout(t); resolve() }) })
  agent.destroy()

  const ok = Boolean(heap && heap.state === 'leak' && listenerLeak && site && capture && verified && verified.quotes > 0 && analysis && analysis.quote && analysis.quote.countDelta > 0)
  const summary = {
    ok,
    seconds: Number(((Date.now() - started) / 1000).toFixed(1)),
    requests: sent,
    requestErrors: errors,
    heap: heap && { state: heap.state, slopeBytesPerHour: heap.slopeBytesPerHour, confidence: heap.confidence },
    allocationSite: site && { name: site.name, at: fileLine(site.name), liveBytes: site.liveBytes, growthBytesPerHour: site.growthBytesPerHour, share: site.share, frames: site.frames },
    listenerLeak: listenerLeak && { emitter: listenerLeak.emitter, event: listenerLeak.event, count: listenerLeak.count, callSites: listenerLeak.callSites },
    capture: capture && { mode: capture.mode, stallMs: capture.stallMs, bytes: capture.bytes, rawBytes: capture.rawBytes, path: capture.path },
    quotesInSnapshot: verified && verified.quotes,
    analysis,
    dir
  }
  const listenerAt = listenerLeak && listenerLeak.callSites && listenerLeak.callSites[0] ? ` added at ${path.relative(process.cwd(), listenerLeak.callSites[0].location.replace(/:\d+$/, ''))}` : ''
  say(`\nsummary: ${ok ? 'both leaks found' : 'NOT all found'} in ${summary.seconds} s over ${sent} requests — heap ${heap ? `${heap.state} (${percent(heap.confidence)}${heap.projectedLimitAt ? `, limit ${fromNow(heap.projectedLimitAt)}` : ''})` : 'n/a'}, growing allocations at ${site ? `${fileLine(site.name)} (+${MiB(site.growthBytesPerHour)}/h, ${percent(site.share)} of the heap's growth)` : 'none found'}, listener leak ${listenerLeak ? `${listenerLeak.emitter}/${listenerLeak.event}${listenerAt}` : 'none'}, capture ${capture ? `${capture.mode}, ${capture.stallMs.toFixed(1)} ms pause` : 'failed'}`)
  if (process.env.LEAKGUARD_DEMO_JSON === '1') console.log(JSON.stringify(summary))
  if (process.env.LEAKGUARD_DEMO_KEEP !== '1') fs.rmSync(dir, { recursive: true, force: true })
  process.exitCode = ok ? 0 : 1
}

main().catch((err) => {
  console.error('demo failed:', err)
  process.exitCode = 1
})
