'use strict'

// Asynchronous reads and writes of open images, through the addon's completion port
// (src/io.rs). A request goes to the native I/O threads under a slot number of this module;
// the threads queue what finished, and the JavaScript thread, woken once for everything
// queued since its last wake-up, settles the promises here. That is one native call and one
// promise per request: the JavaScript thread, not the disk, limits small I/O, and a libuv
// task per request (what every other native call uses) cost about a third more.
// A request made with a callback (`done`) instead gets no promise: `done(error, result)` is
// called from a microtask (lib/soon.js; the callback forms of the API, vhd@0.5.0's above all, would
// otherwise pay for a promise, a reaction to it and a tick on top: 10 % of a 1 MiB read
// from the page cache). A callback that throws is an uncaught exception, as from a tick.

const native = require('../binding.js')
const { soon } = require('./soon.js')
const { stackAt } = require('./args.js')

/**
 * @typedef {{ started(change: boolean): unknown, settled(token: unknown, change: boolean): void }} Owner
 * @typedef {import('../binding.js').NativeImage['handle']} Handle
 * @typedef {(error: Error | null, count?: number) => void} Done
 */

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
const dones = [] // the callback of a request made with one (its `resolves` entry is null)
// Where each request was made, for the stack of its error (made on a native thread, it has no
// JavaScript frames). Captured only for requests that go to the native threads: those wait
// for a disk (tens of µs at least), so the capture (1–2 µs) does not show; a read done at
// once, the fast path counted in ns, throws on the caller's stack anyway.
const sites = []
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
function pending(slot, owner, target, map, done) {
  maps[slot] = map
  owners[slot] = owner
  buffers[slot] = target
  // A write has no target: its bytes were copied when it was submitted.
  changes[slot] = target === undefined
  tokens[slot] = owner.started(changes[slot])
  const site = {}
  Error.captureStackTrace(site, pending)
  sites[slot] = site
  if (done !== undefined) {
    dones[slot] = done
    resolves[slot] = null
    return undefined
  }
  return new Promise((resolve, reject) => {
    resolves[slot] = resolve
    rejects[slot] = reject
  })
}

/**
 * Reads `length` bytes at virtual `position` of the image behind `handle` into
 * `bytes[offset..]`; resolves to `map(bytesRead)`, or with `done`, returns nothing and calls
 * `done(error, bytesRead)` later (from a microtask). Bad arguments throw. A read that needs no I/O
 * (zeros, data in the page cache) is done at once, and `owner` never hears of it.
 * @template T
 * @param {Owner} owner
 * @param {Handle} handle
 * @param {Uint8Array} bytes
 * @param {number} offset
 * @param {number} length
 * @param {number} position
 * @param {(bytesRead: number) => T} map
 * @param {Done} [done]
 * @returns {Promise<T> | undefined}
 */
function read(owner, handle, bytes, offset, length, position, map, done) {
  const slot = takeSlot()
  let count
  try {
    count = native.ioRead(port, handle, slot, bytes, offset, length, position)
  } catch (error) {
    freeSlots.push(slot)
    throw error
  }
  if (count >= 0) {
    freeSlots.push(slot)
    if (done === undefined) return Promise.resolve(map(count))
    soon(done, null, count)
    return undefined
  }
  return pending(slot, owner, bytes, map, done)
}

/**
 * Writes `bytes[offset..offset + length]` at virtual `position`; resolves to
 * `map(bytesWritten)`, or with `done`, calls `done(error, bytesWritten)` later (a microtask).
 * The bytes are copied before this returns: the caller may reuse them.
 * @template T
 * @param {Owner} owner
 * @param {Handle} handle
 * @param {Uint8Array} bytes
 * @param {number} offset
 * @param {number} length
 * @param {number} position
 * @param {(bytesWritten: number) => T} map
 * @param {Done} [done]
 * @returns {Promise<T> | undefined}
 */
function write(owner, handle, bytes, offset, length, position, map, done) {
  const slot = takeSlot()
  try {
    native.ioWrite(port, handle, slot, bytes, offset, length, position)
  } catch (error) {
    freeSlots.push(slot)
    throw error
  }
  return pending(slot, owner, undefined, map, done)
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
  const done = dones[slot]
  // A failure is fetched before the slot is reused: the native side files it by slot.
  const failure = result < 0 ? stackAt(takeFailure(slot), sites[slot]) : undefined
  resolves[slot] = rejects[slot] = maps[slot] = owners[slot] = buffers[slot] = tokens[slot] = dones[slot] = sites[slot] = undefined
  freeSlots.push(slot)
  owner.settled(token, change)
  if (resolve === null) {
    soon(done, failure ?? null, result)
    return
  }
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
