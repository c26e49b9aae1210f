'use strict'

// Calling back soon: `soon(fn, a, b, c)` calls `fn(a, b, c)` from a microtask, in order, as
// `queueMicrotask(() => fn(a, b, c))` would, and a callback that throws is an uncaught
// exception, as from `queueMicrotask` or a tick. Written here because Node's
// `queueMicrotask` makes an async resource per call (about 60 ns, three times a promise
// reaction) and its first call in a process costs about 130 µs (`process.nextTick`'s first:
// about 160 µs): the callback forms of reads, writes and open (vhd@0.5.0's API) paid both.
// One promise reaction runs every callback queued since it was scheduled.

const RESOLVED = Promise.resolve()
/** fn, a, b, c, fn, a, b, c… */
const queue = []
let scheduled = false

/**
 * @param {(a: any, b: any, c: any) => void} fn
 * @param {any} [a]
 * @param {any} [b]
 * @param {any} [c]
 */
function soon(fn, a, b, c) {
  queue.push(fn, a, b, c)
  if (!scheduled) {
    scheduled = true
    RESOLVED.then(runQueue)
  }
}

function runQueue() {
  // Callbacks queued while these run (a read started from a read's callback) run here too.
  for (let i = 0; i < queue.length; i += 4) {
    const fn = queue[i]
    const a = queue[i + 1]
    const b = queue[i + 2]
    const c = queue[i + 3]
    queue[i] = queue[i + 1] = queue[i + 2] = queue[i + 3] = undefined
    try {
      fn(a, b, c)
    } catch (error) {
      // Not a rejection of this reaction's promise (nobody would see it): uncaught.
      process.nextTick(rethrow, error)
    }
  }
  queue.length = 0
  scheduled = false
}

function rethrow(error) {
  throw error
}

module.exports = { soon }
