'use strict'
// How much memory an upload takes: a large random file (incompressible, like a gzip
// snapshot) uploaded multipart to moto's S3 on loopback, with this process's RSS sampled
// every 5 ms. The bound the design promises is about 2 × partSize + 256 KiB whatever the
// file's size; a reader that buffered the file would add the file's size.
//   node benchmark/upload-memory.js [MiB=256] [partMiB=8]
// Needs the S3 test server (sh scripts/setup-s3.sh).

const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const leakguard = require('..')
const { ensureS3, startS3 } = require('../__test__/helpers/s3')

const MiB = 1024 * 1024

async function main () {
  const size = Number(process.argv[2] || 256)
  const part = Number(process.argv[3] || 8)
  const why = ensureS3()
  if (why) throw new Error(`no S3 test server: ${why}`)
  const s3 = await startS3()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'leakguard-upload-mem-'))
  const file = path.join(dir, 'big.bin')
  const fd = fs.openSync(file, 'w', 0o600)
  for (let i = 0; i < size; i++) fs.writeSync(fd, crypto.randomBytes(MiB))
  fs.closeSync(fd)
  try {
    if (global.gc) global.gc()
    const before = process.memoryUsage.rss()
    let peak = before
    const t = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, 5)
    const t0 = Date.now()
    const r = await leakguard.upload(file, {
      url: `s3://${s3.info.bucket}/mem`, endpoint: s3.info.endpoint, accessKeyId: s3.info.accessKeyId, secretAccessKey: s3.info.secretAccessKey, partSize: part * MiB, deleteLocal: false
    })
    clearInterval(t)
    const ms = Date.now() - t0
    const got = await s3.cmd({ op: 'get', key: r.files[0].key })
    console.log(JSON.stringify({
      fileMiB: size,
      partMiB: part,
      parts: r.files[0].parts,
      seconds: ms / 1000,
      rssBeforeMiB: +(before / MiB).toFixed(1),
      rssPeakGrowthMiB: +((peak - before) / MiB).toFixed(1),
      identical: got.sha256 === crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'),
      node: process.version,
      cpus: os.cpus().length
    }))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
    await s3.stop()
  }
}

main().catch((e) => { console.error(e); process.exit(1) })
