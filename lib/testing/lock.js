'use strict'
// One leak test at a time per module registry. Concurrent runs would count each other's
// objects and force each other's collections. A runner that isolates test files in their
// own registries (Jest, Vitest) also runs them in their own processes or threads, or one
// after the other in the same one.

const { busyError } = require('./errors')

let running = null

/** Take the lock for `what`; throws TEST_BUSY naming the run that holds it. */
function acquire (what) {
  if (running) throw busyError(what, running)
  running = what
  let released = false
  return () => {
    if (released) return
    released = true
    running = null
  }
}

module.exports = { acquire }
