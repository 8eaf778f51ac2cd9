'use strict'
// Real HTTP on loopback for the admin-route tests: servers built with node:http, Express,
// Fastify and Koa around leakguard's handler, and a client that sends the raw path as
// given (no normalization, no decoding, no decompression) and returns the raw body.

const http = require('node:http')

const PREFIX = '/debug/leakguard'

function listen (server, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => resolve(server))
  })
}

function close (server) {
  return new Promise((resolve) => {
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections()
    server.close(() => resolve())
  })
}

/**
 * `{ base: 'http://host:port', prefix, close() }` for a server of `kind` whose admin route
 * lives under PREFIX, with one app route of its own at PREFIX + '/other' (to see `next()`).
 */
async function startServer (kind, adminOptions, { host = '127.0.0.1' } = {}) {
  const leakguard = require('../..')
  if (kind === 'http') {
    const h = leakguard.adminHandler({ ...adminOptions, prefix: PREFIX })
    const server = await listen(http.createServer((req, res) => h(req, res)), host)
    return { server, port: server.address().port, host, close: () => close(server) }
  }
  if (kind === 'express') {
    const express = require('express')
    const app = express()
    app.use(PREFIX, leakguard.adminHandler(adminOptions))
    app.get(PREFIX + '/other', (req, res) => res.send('app route'))
    app.use((req, res) => res.status(404).send('express 404'))
    const server = await listen(http.createServer(app), host)
    return { server, port: server.address().port, host, close: () => close(server) }
  }
  if (kind === 'fastify') {
    const Fastify = require('fastify')
    const f = Fastify()
    f.register(leakguard.adminHandler.fastify, { ...adminOptions, prefix: PREFIX })
    f.get(PREFIX + '/other', async () => 'app route')
    await f.listen({ host, port: 0 })
    return { server: f.server, port: f.server.address().port, host, close: () => f.close() }
  }
  if (kind === 'koa') {
    const Koa = require('koa')
    const app = new Koa()
    app.use(leakguard.adminHandler.koa({ ...adminOptions, prefix: PREFIX }))
    app.use((ctx) => { if (ctx.path === PREFIX + '/other') ctx.body = 'app route' })
    const server = await listen(http.createServer(app.callback()), host)
    return { server, port: server.address().port, host, close: () => close(server) }
  }
  throw new Error(`unknown server kind ${kind}`)
}

/** One request; resolves `{ status, headers, body: Buffer }`. `path` goes out byte for byte. */
function request (srv, method, path, { headers = {}, localAddress, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: srv.host, port: srv.port, method, path, headers, localAddress, agent }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

const json = (r) => JSON.parse(r.body.toString('utf8'))

module.exports = { PREFIX, startServer, request, json, listen, close }
