'use strict'
// A small Express service with two planted leaks, watched by leakguard — what a user's
// server looks like with leakguard installed. Started by examples/demo.js; on its own:
//   LEAKGUARD_TOKEN=some-long-secret-token node examples/leaky-server.js
//
// Leak 1: every request adds a listener to a module-level EventEmitter (`priceFeed`) and
//         never removes it — the most common Node leak.
// Leak 2: a Map used as a cache without expiry, keyed per request.

const path = require('node:path')
const { EventEmitter } = require('node:events')
const express = require('express')
const leakguard = require('..')

const token = process.env.LEAKGUARD_TOKEN
const dir = process.env.LEAKGUARD_DIR || path.join(process.cwd(), 'heapsnapshots')
const intervalMs = Number(process.env.LEAKGUARD_INTERVAL_MS || 100)

const priceFeed = new EventEmitter() // lives as long as the process
priceFeed.setMaxListeners(0) // what people do to silence the warning
const quoteCache = new Map() // never evicted

class Quote {
  constructor (symbol, n) {
    this.symbol = symbol
    this.n = n
    this.at = Date.now()
    this.body = `quote ${symbol} #${n} `.repeat(8)
  }
}

const guard = leakguard.watch({
  intervalMs,
  emitters: { priceFeed },
  capture: { dir, maxSnapshots: 3 },
  // Allocation sites: at this fast interval, read the profile every 5 intervals, let reads
  // (each forces a full GC) take up to 25 % of the time, and sample every 32 KiB so that a
  // small, short leak rises by enough samples — a demo, not production.
  allocations: { samplingInterval: 32768, readIntervals: 5, maxDuty: 0.25, maxReadMs: 1000 }
})

const app = express()
app.use('/debug/leakguard', leakguard.adminHandler({ token, allowDownload: true, cooldownMs: Number(process.env.LEAKGUARD_COOLDOWN_MS || 30000) }))

let served = 0
app.get('/quote/:symbol', (req, res) => {
  served++
  const symbol = req.params.symbol
  priceFeed.on('price', (p) => { if (p.symbol === symbol) res.locals.last = p }) // leak 1
  quoteCache.set(`${symbol}:${served}`, new Quote(symbol, served)) // leak 2
  res.json({ symbol, served })
})

// Forward leakguard's findings to the demo driver (a real app would log them).
const tell = (type, payload) => process.send && process.send({ type, payload })
guard.on('leak', (r) => tell('leak', r))
guard.on('listener-leak', (r) => tell('listener-leak', r))
guard.on('leak-report', (r) => tell('leak-report', { heap: r.heap.state, sites: r.sites.slice(0, 3) }))
guard.on('capture', (r) => tell('capture', { path: r.path, mode: r.mode, stallMs: r.stallMs, bytes: r.bytes }))

const server = app.listen(0, '127.0.0.1', () => tell('listening', { port: server.address().port }))
process.on('disconnect', () => { guard.stop(); server.close() })
