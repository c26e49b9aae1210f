'use strict'

// Careless callers must not corrupt memory (issue 12, item 1). A read or write in flight
// used to hold a raw pointer into the caller's ArrayBuffer while a native thread did the
// I/O; transferring the ArrayBuffer (structuredClone, postMessage) or shrinking a resizable
// one meanwhile freed or unmapped that memory under the thread, which then wrote disk data
// into whatever lived there (or read it, for a write). Now requests work on memory of their
// own (src/buffers.rs): a read's bytes are delivered on the JavaScript thread, or the read
// fails with ERR_VHD_BUFFER_DETACHED when the buffer is gone; a write copies its bytes when
// it is made. Each scenario runs in its own process (careless-buffers.js), so that memory
// corruption shows up as that process failing.
//
// VHD_TEST_VALGRIND=1 runs each of those processes under valgrind's memcheck (any error it
// reports fails the test; about two minutes per scenario): a read or write of freed or
// unmapped memory by the addon, which the assertions alone might miss, shows up there.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const VHD = require('..')
const { MiB, tempDir, pattern } = require('./helpers.js')

const SIZE = 8 * MiB // as in careless-buffers.js
const SCRIPT = path.join(__dirname, 'careless-buffers.js')
const VALGRIND = process.env.VHD_TEST_VALGRIND === '1'

let tmp
let fixed
before(async () => {
  tmp = tempDir('vhd-careless-')
  fixed = tmp.file('fixed')
  const disk = await VHD.create(fixed, { type: 'fixed', size: SIZE })
  await disk.write(pattern(SIZE, 3), 0)
  await disk.close()
})
after(() => tmp.cleanup())

/** Runs one scenario on a copy of the fixed image and a new dynamic image; its JSON result. */
async function scenario(name) {
  const fixedCopy = tmp.file(`${name}-fixed`)
  fs.copyFileSync(fixed, fixedCopy)
  const dynamic = tmp.file(`${name}-dynamic`)
  await (await VHD.create(dynamic, { type: 'dynamic', size: SIZE, blockSize: 512 * 1024 })).close()
  const node = [process.execPath, '--expose-gc', SCRIPT, name, fixedCopy, dynamic]
  const memcheck = ['--error-exitcode=99', '-q', `--suppressions=${path.join(__dirname, 'valgrind-v8.supp')}`]
  const [command, ...args] = VALGRIND ? ['valgrind', ...memcheck, ...node] : node
  const run = spawnSync(command, args, { encoding: 'utf8', timeout: VALGRIND ? 900000 : 120000 })
  assert.equal(run.signal, null, `the process died of ${run.signal}: ${run.stderr}`)
  assert.equal(run.status, 0, run.stderr)
  return JSON.parse(run.stdout.trim().split('\n').pop())
}

describe('buffers given away while requests are in flight', { timeout: VALGRIND ? 3600000 : undefined }, () => {
  test('reads into an ArrayBuffer transferred by structuredClone fail cleanly, and nothing else is written', async () => {
    const { refused } = await scenario('transfer-read')
    assert.equal(refused, 20 * 16)
  })

  test('reads into an ArrayBuffer posted to a MessagePort fail cleanly, and its new owner is not written', async () => {
    const { refused } = await scenario('postmessage-read')
    assert.equal(refused, 20 * 16)
  })

  test('reads into a resizable ArrayBuffer that shrinks: delivered where it remains, refused where it went', async () => {
    const { refused, delivered } = await scenario('resize-read')
    assert.equal(delivered, 20 * 8)
    assert.equal(refused, 20 * 16 + 20 * 8)
  })

  test('a write takes its bytes when it is made: transferring, scribbling on or shrinking the buffer after does not change them', async () => {
    const { written } = await scenario('transfer-write')
    assert.equal(written, SIZE)
  })

  test('many writes in flight from one Buffer each write the same bytes', async () => {
    const { writes } = await scenario('alias-write')
    assert.equal(writes, SIZE / (64 * 1024))
  })

  test('a worker that transfers its read buffers and is then terminated mid-read leaves the process and the image whole', async () => {
    const { refused } = await scenario('worker-transfer')
    assert.equal(refused, 20 * 16)
  })
})

describe('the VHD stream', () => {
  test('its chunks are buffers of their own, read natively (no JavaScript memory on the thread pool)', async () => {
    const stream = await VHD.createVhdStream(fixed, { type: 'fixed' })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    const whole = Buffer.concat(chunks)
    assert.equal(whole.length, SIZE + 512)
    assert.ok(whole.subarray(0, SIZE).equals(pattern(SIZE, 3)))
    // No two chunks share memory, and none is a slice of Node's shared Buffer pool.
    for (const chunk of chunks) assert.equal(chunk.byteOffset, 0)
    assert.equal(new Set(chunks.map((c) => c.buffer)).size, chunks.length)
  })
})
