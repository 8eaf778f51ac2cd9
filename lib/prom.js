'use strict'
// promCollector(): the same metric families as Guard.metrics(), registered with a
// prom-client registry the application already has. prom-client is an optional peer
// dependency: it is loaded only here, from the application (or passed in).

const V = require('./validate')
const { coded, invalidOption } = require('./errors')
const metricsLib = require('./metrics')
const { captureCounts } = require('./stats')

function loadPromClient () {
  try {
    return require('prom-client')
  } catch (err) {
    throw coded(Error, 'PROM_CLIENT_MISSING', 'leakguard: promCollector() needs the prom-client package (npm install prom-client), or pass it as options.client', { cause: err })
  }
}

/** What the families read: the running guard's status, else live figures only. */
function statusNow () {
  const g = require('./guard').currentGuard()
  return g ? g.status() : { heap: null, native: null, pressure: null, latest: null, listeners: null, captures: [] }
}

/**
 * Register leakguard's metrics with `register` (a prom-client Registry). Values are read
 * at scrape time. Returns `{ names, unregister() }`.
 */
function promCollector (register, options) {
  if (!register || typeof register.registerMetric !== 'function' || typeof register.getSingleMetric !== 'function' || typeof register.removeSingleMetric !== 'function') {
    throw invalidOption('register', 'a prom-client Registry (e.g. require("prom-client").register)', register)
  }
  const o = V.plainObject(options, 'options')
  V.knownKeys(o, ['client'], 'options')
  if (o.client !== undefined && (o.client === null || typeof o.client !== 'object' || typeof o.client.Gauge !== 'function' || typeof o.client.Counter !== 'function')) {
    throw invalidOption('client', 'the prom-client module', o.client)
  }
  const client = o.client || loadPromClient()
  for (const f of metricsLib.FAMILIES) {
    if (register.getSingleMetric(f.name)) {
      throw coded(Error, 'OPTIONS_INVALID', `leakguard: the registry already has a metric named ${f.name} (promCollector() was called twice for it?)`, { option: 'register' })
    }
  }
  // One reading per scrape: prom-client calls every collect() in the same turn.
  let cache = null
  const families = () => {
    if (!cache) {
      cache = new Map(metricsLib.collect(statusNow(), captureCounts()).map((f) => [f.name, f]))
      setImmediate(() => { cache = null })
    }
    return cache
  }
  const names = []
  for (const f of metricsLib.FAMILIES) {
    const Metric = f.type === 'counter' ? client.Counter : client.Gauge
    // eslint-disable-next-line no-new
    new Metric({
      name: f.name,
      help: f.help,
      labelNames: f.labelNames,
      registers: [register],
      collect () {
        const fam = families().get(f.name)
        this.reset()
        if (f.labelNames.length === 0 && fam.samples.length === 0) {
          this.remove() // no reading: no sample, rather than a made-up 0
          return
        }
        for (const s of fam.samples) {
          const labels = {}
          for (const k of f.labelNames) labels[k] = String(s.labels[k] ?? '').slice(0, metricsLib.MAX_LABEL_LENGTH)
          if (f.type === 'counter') this.inc(labels, s.value)
          else this.set(labels, s.value)
        }
      }
    })
    names.push(f.name)
  }
  return {
    names,
    unregister () {
      for (const n of names) register.removeSingleMetric(n)
    }
  }
}

module.exports = { promCollector }
