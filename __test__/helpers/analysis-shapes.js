'use strict'
// A child process that builds one heap shape and writes a plain .heapsnapshot of itself:
//   node analysis-shapes.js SHAPE OUT
// Each shape hangs its data under one `ShapeRoot` instance on globalThis, so tests can
// compare that object's retained size between implementations.

const v8 = require('node:v8')

class ShapeRoot {
  constructor (data) {
    this.data = data
  }
}

class Small {
  constructor (i) {
    this.id = i
    this.name = `item-${i}`
  }
}

class Tiny {
  constructor (i) {
    this.i = i
  }
}

class MeshNode {
  constructor (i) {
    this.i = i
    this.a = null
    this.b = null
  }
}

class Captured {
  constructor (i) {
    this.i = i
    this.payload = new Array(4).fill(i)
  }
}

const shapes = {
  map () {
    const m = new Map()
    for (let i = 0; i < 20000; i++) m.set(`k${i}`, new Small(i))
    return m
  },
  // Many objects with cross references (each node two random others, a fixed LCG), so
  // the dominator pass has real work: analysis-leaks.test.js aborts inside it.
  mesh () {
    const n = 300000
    const nodes = []
    for (let i = 0; i < n; i++) nodes.push(new MeshNode(i))
    let x = 12345
    const next = () => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n }
    for (const o of nodes) {
      o.a = nodes[next()]
      o.b = nodes[next()]
    }
    return nodes
  },
  bigarray () {
    const a = []
    for (let i = 0; i < 200000; i++) a.push(new Tiny(i))
    return a
  },
  strings () {
    const a = []
    for (let i = 0; i < 64; i++) a.push(String(i).padEnd(100000, 'abcdefgh'.repeat(4) + i))
    return a
  },
  closures () {
    const fns = []
    for (let i = 0; i < 5000; i++) {
      const c = new Captured(i)
      fns.push(function handler () { return c.i })
    }
    return fns
  },
  weakmap () {
    const keys = []
    const wm = new WeakMap()
    for (let i = 0; i < 2000; i++) {
      const k = { k: i }
      keys.push(k)
      wm.set(k, new Small(i))
    }
    return { keys, wm }
  },
  async express () {
    const express = require('express')
    const http = require('node:http')
    const app = express()
    const store = new Map()
    app.use(express.json())
    app.get('/items/:id', (req, res) => res.json(store.get(req.params.id) || null))
    app.post('/items/:id', (req, res) => {
      store.set(req.params.id, new Small(Number(req.params.id)))
      res.json({ ok: true })
    })
    const server = http.createServer(app)
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = server.address().port
    for (let i = 0; i < 200; i++) {
      await fetch(`http://127.0.0.1:${port}/items/${i}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      await fetch(`http://127.0.0.1:${port}/items/${i}`)
    }
    return { app, server, store }
  },
  typescript () {
    // A real third-party heap: TypeScript's compiler with a type-checked Program over this
    // repository's own typings and two of its JS files (checkJs), against the ES2022 lib.
    const ts = require('typescript')
    const path = require('node:path')
    const root = path.join(__dirname, '..', '..')
    // V8 (Node 20) places every closure in the snapshot with Script::GetPositionInfo, which
    // scans the source from the start when the script's line ends were never computed:
    // quadratic on typescript.js (9 MB, one script), 38 s instead of 1.3 s to write the
    // snapshot. A stack trace through a frame of typescript.js computes them once.
    ts.forEachChild(ts.createSourceFile('x.ts', 'let a = 1', ts.ScriptTarget.ES2022), () => {
      void new Error().stack
      return true
    })
    const program = ts.createProgram(['index.d.ts', 'lib/errors.js', 'lib/stats.js'].map((f) => path.join(root, f)), {
      allowJs: true,
      checkJs: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      lib: ['lib.es2022.d.ts'],
      types: []
    })
    const diagnostics = ts.getPreEmitDiagnostics(program)
    return { program, checker: program.getTypeChecker(), diagnostics }
  }
}

async function main () {
  const [shape, out] = process.argv.slice(2)
  if (!shapes[shape]) throw new Error(`unknown shape ${shape}`)
  globalThis.shapeRoot = new ShapeRoot(await shapes[shape]())
  v8.writeHeapSnapshot(out)
  if (globalThis.shapeRoot.data.server) globalThis.shapeRoot.data.server.close()
}

main().then(() => process.exit(0), (err) => {
  console.error(err)
  process.exit(1)
})
