'use strict'

// The scenarios of careless-buffers.test.js, each run in a process of its own (with
// --expose-gc), so that a regression that corrupts memory or crashes shows up as that
// process failing, not as the test runner dying. Usage:
//   node --expose-gc careless-buffers.js SCENARIO FIXED_IMAGE DYNAMIC_IMAGE
// FIXED_IMAGE holds pattern(SIZE, 3); DYNAMIC_IMAGE is an empty dynamic image of SIZE bytes.
// Reads are READ bytes, more than a read done at once on the JavaScript thread may be (1 MiB),
// so that every one goes to the I/O threads whatever the page cache holds.
// Prints one line of JSON (what happened) and exits 0, or throws.

const assert = require('node:assert/strict')
const { MessageChannel, Worker } = require('node:worker_threads')
const VHD = require('..')
const { pattern, KiB, MiB } = require('./helpers.js')

const SIZE = 8 * MiB
const CHUNK = 64 * KiB
const READ = MiB + 4 * KiB
const ROUNDS = 20
const IN_FLIGHT = 16
const SENTINEL = 0x5a

const [scenario, fixedFile, dynamicFile] = process.argv.slice(2)
const expected = pattern(SIZE, 3)

/**
 * Memory that must stay untouched: many buffers filled with SENTINEL, allocated right after
 * the caller's memory was given away, so that the allocator likely reuses it for them.
 */
function sentinels() {
  const list = []
  for (let i = 0; i < 64; i++) list.push(Buffer.alloc(CHUNK, SENTINEL))
  for (let i = 0; i < 8; i++) list.push(Buffer.alloc(MiB, SENTINEL))
  return list
}

function assertUntouched(list) {
  for (const buffer of list) {
    const foreign = buffer.findIndex((b) => b !== SENTINEL)
    assert.equal(foreign, -1, `foreign memory was written (a sentinel buffer changed at ${foreign})`)
  }
}

/** Where read `i` of a round reads from: spread over the image, all of it inside. */
function readPosition(i) {
  return (i * 3 * CHUNK) % (SIZE - READ)
}

/**
 * Starts IN_FLIGHT reads into `view` (one READ each, spread over the image); resolves to
 * their outcomes (settled as they happen, so that no rejection goes unhandled meanwhile).
 */
function startReads(disk, view) {
  const reads = []
  for (let i = 0; i < IN_FLIGHT; i++) {
    const at = (i * READ) % view.length
    reads.push(disk.readInto(view, at, Math.min(READ, view.length - at), readPosition(i)))
  }
  return Promise.allSettled(reads)
}

/** Every read rejected with ERR_VHD_BUFFER_DETACHED (the bytes had nowhere to go). */
async function assertAllDetached(settled) {
  const outcomes = await settled
  for (const outcome of outcomes) {
    assert.equal(outcome.status, 'rejected', 'a read into a detached buffer reported success')
    assert.equal(outcome.reason.code, 'ERR_VHD_BUFFER_DETACHED', outcome.reason.stack)
  }
  return outcomes.length
}

const scenarios = {
  /** The ArrayBuffer is transferred away (and its new owner dropped) with reads in flight. */
  async 'transfer-read'() {
    const disk = await VHD.open(fixedFile, { readOnly: true })
    let refused = 0
    const kept = []
    for (let round = 0; round < ROUNDS; round++) {
      const ab = new ArrayBuffer(IN_FLIGHT * READ)
      const reads = startReads(disk, new Uint8Array(ab))
      structuredClone(ab, { transfer: [ab] }) // the new owner is dropped at once
      global.gc()
      kept.push(...sentinels())
      refused += await assertAllDetached(reads)
    }
    assertUntouched(kept)
    await disk.close()
    return { refused }
  },

  /** As above, through a MessagePort's transfer list. */
  async 'postmessage-read'() {
    const disk = await VHD.open(fixedFile, { readOnly: true })
    const { port1, port2 } = new MessageChannel()
    let refused = 0
    const kept = []
    for (let round = 0; round < ROUNDS; round++) {
      const ab = new ArrayBuffer(IN_FLIGHT * READ)
      const reads = startReads(disk, new Uint8Array(ab))
      port1.postMessage(ab, [ab])
      const moved = await new Promise((resolve) => port2.once('message', resolve))
      new Uint8Array(moved).fill(0) // the receiver uses its memory meanwhile
      global.gc()
      kept.push(...sentinels())
      refused += await assertAllDetached(reads)
    }
    port1.close()
    assertUntouched(kept)
    await disk.close()
    return { refused }
  },

  /** A resizable ArrayBuffer shrunk with reads in flight: the pages beyond go away. */
  async 'resize-read'() {
    const disk = await VHD.open(fixedFile, { readOnly: true })
    let refused = 0
    let delivered = 0
    for (let round = 0; round < ROUNDS; round++) {
      // A fixed-length view: out of bounds once its buffer shrinks below it.
      const ab = new ArrayBuffer(IN_FLIGHT * READ, { maxByteLength: IN_FLIGHT * READ })
      const reads = startReads(disk, new Uint8Array(ab, 0, IN_FLIGHT * READ))
      ab.resize(0)
      refused += await assertAllDetached(reads)

      // A length-tracking view shrunk to half: reads into the first half still land.
      const half = new ArrayBuffer(IN_FLIGHT * READ, { maxByteLength: IN_FLIGHT * READ })
      const view = new Uint8Array(half)
      const tracked = startReads(disk, view)
      half.resize((IN_FLIGHT / 2) * READ)
      const outcomes = await tracked
      outcomes.forEach((outcome, i) => {
        if (i < IN_FLIGHT / 2) {
          assert.equal(outcome.status, 'fulfilled', `read ${i} into the part that remains`)
          const from = readPosition(i)
          const got = Buffer.from(view.subarray(i * READ, (i + 1) * READ))
          assert.ok(got.equals(expected.subarray(from, from + READ)), `read ${i}: the bytes of the image`)
          delivered++
        } else {
          assert.equal(outcome.status, 'rejected', `read ${i} into the part that went away`)
          assert.equal(outcome.reason.code, 'ERR_VHD_BUFFER_DETACHED')
          refused++
        }
      })
    }
    await disk.close()
    return { refused, delivered }
  },

  /**
   * Writes whose buffer is transferred (and scribbled on by its new owner) or shrunk right
   * after they were made: each writes the bytes it was given when it was made.
   */
  async 'transfer-write'() {
    const disk = await VHD.open(dynamicFile)
    for (let round = 0; round < ROUNDS; round++) {
      const writes = []
      for (let i = 0; i < IN_FLIGHT; i++) {
        const at = ((round * IN_FLIGHT + i) * CHUNK) % SIZE
        const resizable = i % 2 === 1
        const ab = new ArrayBuffer(CHUNK, resizable ? { maxByteLength: CHUNK } : undefined)
        const view = new Uint8Array(ab)
        view.set(expected.subarray(at, at + CHUNK))
        writes.push(disk.write(view, at))
        if (resizable) {
          ab.resize(0)
        } else {
          new Uint8Array(structuredClone(ab, { transfer: [ab] })).fill(0xee)
        }
      }
      for (const { bytesWritten } of await Promise.all(writes)) assert.equal(bytesWritten, CHUNK)
    }
    await disk.close()
    const again = await VHD.open(dynamicFile, { readOnly: true })
    const written = Math.min(SIZE, ROUNDS * IN_FLIGHT * CHUNK)
    const { buffer } = await again.read(0, written)
    assert.ok(buffer.equals(expected.subarray(0, written)), 'a write took bytes given away after it was made')
    await again.close()
    return { written }
  },

  /** Many writes in flight from one Buffer (each gets its own copy: no shared mutable memory). */
  async 'alias-write'() {
    const disk = await VHD.open(dynamicFile)
    const source = expected.subarray(0, CHUNK)
    const offsets = Array.from({ length: SIZE / CHUNK }, (_, i) => i * CHUNK)
    await Promise.all(offsets.map((at) => disk.write(source, at)))
    const { buffer } = await disk.read(0, SIZE)
    for (const at of offsets) assert.ok(buffer.subarray(at, at + CHUNK).equals(source), `chunk at ${at}`)
    await disk.close()
    return { writes: offsets.length }
  },

  /**
   * A worker that reads into buffers it transfers to us, then is terminated with reads in
   * flight: the process lives on, our memory is untouched, its requests end cleanly.
   */
  async 'worker-transfer'() {
    const source = `
      const { parentPort, workerData } = require('node:worker_threads')
      const VHD = require(${JSON.stringify(require.resolve('..'))})
      VHD.open(workerData, { readOnly: true }).then(async (disk) => {
        const outcomes = []
        for (let round = 0; round < ${ROUNDS}; round++) {
          const ab = new ArrayBuffer(${IN_FLIGHT * READ})
          const view = new Uint8Array(ab)
          const reads = []
          for (let i = 0; i < ${IN_FLIGHT}; i++) reads.push(disk.readInto(view, i * ${READ}, ${READ}, (i * ${3 * CHUNK}) % ${SIZE - READ}))
          parentPort.postMessage(ab, [ab])
          for (const o of await Promise.allSettled(reads)) outcomes.push(o.status === 'rejected' ? o.reason.code : 'fulfilled')
        }
        parentPort.postMessage({ outcomes })
        // Then reads without end, so that the worker is terminated with some in flight.
        const again = (start) => start().then(() => again(start), () => again(start))
        for (let i = 0; i < 16; i++) again(() => disk.readInto(Buffer.alloc(${READ}), 0, ${READ}, i * ${CHUNK}))
        parentPort.postMessage('busy')
      })
    `
    const worker = new Worker(source, { eval: true, workerData: fixedFile })
    const received = []
    const kept = []
    let outcomes
    await new Promise((resolve, reject) => {
      worker.on('message', (message) => {
        if (message instanceof ArrayBuffer) {
          received.push(message)
          if (received.length % 4 === 0) received.length = 0 // dropped: the GC may free them
          global.gc()
          kept.push(...sentinels())
        } else if (message.outcomes) {
          outcomes = message.outcomes
        } else if (message === 'busy') {
          resolve()
        }
      })
      worker.once('error', reject)
    })
    assert.equal(await worker.terminate(), 1)
    assert.equal(outcomes.length, ROUNDS * IN_FLIGHT)
    for (const outcome of outcomes) assert.equal(outcome, 'ERR_VHD_BUFFER_DETACHED')
    assertUntouched(kept)
    // The image was released by the terminated worker: it opens read-write here.
    const disk = await VHD.open(fixedFile)
    const { buffer } = await disk.read(0, CHUNK)
    assert.ok(buffer.equals(expected.subarray(0, CHUNK)))
    await disk.close()
    return { refused: outcomes.length }
  },
}

const run = scenarios[scenario]
if (!run) throw new Error(`no scenario ${scenario}`)
run().then((result) => console.log(JSON.stringify(result)))
