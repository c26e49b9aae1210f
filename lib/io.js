'use strict'

// Asynchronous reads and writes of open images, through the addon's completion port
// (src/io.rs). A request goes to the native I/O threads under a slot number of this module;
// the threads queue what finished, and the JavaScript thread, woken once for everything
// queued since its last wake-up, settles the promises here. That is one native call and one
// promise per request: the JavaScript thread, not the disk, limits small I/O, and a libuv
// task per request (what every other native call uses) cost about a third more.

const native = require('../binding.js')

// The owner of a request (an image's `Lifecycle`, lib/lifecycle.js) is told when it starts
// (`owner.started(change)`, which returns a token) and when it settles
// (`owner.settled(token, change)`), so that `flush` and `close` can wait for it.

/** Completions taken per native call, as (slot, result) pairs. */
const DRAIN_BATCH = 256

// Slot `i` holds request `i` while it is in flight, in parallel arrays (no object per
// request). `buffers` holds the caller's buffer of a read: the native threads read into
// memory of their own, and `ioDrain` copies the bytes into `buffers[slot]` on this thread,
// after checking that it was not detached or shrunk meanwhile. A write's bytes are copied
// when it is submitted, so its buffer is not kept.
const resolves = []
const rejects = []
const maps = []
const owners = []
const tokens = []
const changes = [] // whether the request changes the image (a write)
const buffers = []
const freeSlots = []
const results = new Float64Array(2 * DRAIN_BATCH)
let port = null

function takeSlot() {
  port ??= native.ioPort(drain)
  return freeSlots.length > 0 ? freeSlots.pop() : resolves.length
}

/**
 * The promise of a request that went to the native threads; resolves to `map(result)`.
 * `target` is the buffer a read delivers into (undefined for a write).
 */
function pending(slot, owner, target, map) {
  maps[slot] = map
  owners[slot] = owner
  buffers[slot] = target
  // A write has no target: its bytes were copied when it was submitted.
  changes[slot] = target === undefined
  tokens[slot] = owner.started(changes[slot])
  return new Promise((resolve, reject) => {
    resolves[slot] = resolve
    rejects[slot] = reject
  })
}

/**
 * Reads `length` bytes at virtual `position` of the image behind `handle` into
 * `bytes[offset..]`; resolves to `map(bytesRead)`. Bad arguments throw. A read that needs
 * no I/O (zeros) is done at once, and `owner` never hears of it.
 */
function read(owner, handle, bytes, offset, length, position, map) {
  const slot = takeSlot()
  let done
  try {
    done = native.ioRead(port, handle, slot, bytes, offset, length, position)
  } catch (error) {
    freeSlots.push(slot)
    throw error
  }
  if (done >= 0) {
    freeSlots.push(slot)
    return Promise.resolve(map(done))
  }
  return pending(slot, owner, bytes, map)
}

/**
 * Writes `bytes[offset..offset + length]` at virtual `position`; resolves to
 * `map(bytesWritten)`. The bytes are copied before this returns: the caller may reuse them.
 */
function write(owner, handle, bytes, offset, length, position, map) {
  const slot = takeSlot()
  try {
    native.ioWrite(port, handle, slot, bytes, offset, length, position)
  } catch (error) {
    freeSlots.push(slot)
    throw error
  }
  return pending(slot, owner, undefined, map)
}

/** Called by the native side (with no arguments) when completions are waiting. */
function drain() {
  let count
  do {
    count = native.ioDrain(port, results, buffers)
    for (let i = 0; i < count; i++) settle(results[2 * i], results[2 * i + 1])
  } while (count === DRAIN_BATCH)
}

function settle(slot, result) {
  const resolve = resolves[slot]
  const reject = rejects[slot]
  const map = maps[slot]
  const owner = owners[slot]
  const token = tokens[slot]
  const change = changes[slot]
  // A failure is fetched before the slot is reused: the native side files it by slot.
  const failure = result < 0 ? takeFailure(slot) : undefined
  resolves[slot] = rejects[slot] = maps[slot] = owners[slot] = buffers[slot] = tokens[slot] = undefined
  freeSlots.push(slot)
  owner.settled(token, change)
  if (failure !== undefined) {
    reject(failure)
    return
  }
  try {
    resolve(map(result))
  } catch (error) {
    reject(error)
  }
}

function takeFailure(slot) {
  try {
    native.ioTakeFailure(port, slot)
  } catch (error) {
    return error
  }
  return new Error(`vhd: request ${slot} failed without an error`)
}

module.exports = { read, write }
