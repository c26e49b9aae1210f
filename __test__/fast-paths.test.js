'use strict'

// The shortcuts that make small I/O cheap (issue 6) must never change what is read: reads
// of up to 1 MiB that need to wait for no device (holes all the way down the chain, and data
// in the page cache, read with RWF_NOWAIT) are answered on the JavaScript thread; everything
// else goes through the native I/O threads and the completion port (lib/io.js, src/io.rs),
// and `close` still waits for every operation in flight. `evictFromPageCache` makes a read
// have to wait for the disk, to steer it to the threads.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const VHD = require('..')
const native = require('../binding.js')
const { KiB, MiB, tempDir, pattern, nativeIo, evictFromPageCache } = require('./helpers.js')

const BLOCK = 512 * KiB

let tmp
before(() => {
  tmp = tempDir('vhd-fast-')
})
after(() => tmp.cleanup())

/** A dynamic image with block 1 written (blocks 0, 2 and 3 unallocated). */
async function dynamicWithBlock1(name) {
  const file = tmp.file(name)
  const disk = await VHD.create(file, { type: 'dynamic', size: 4 * BLOCK, blockSize: BLOCK })
  await disk.write(pattern(BLOCK, 7), BLOCK)
  await disk.close()
  return file
}

describe('reads that need no I/O', () => {
  test('holes and cached data are read at once, data that must come from the disk through the I/O threads', async () => {
    const file = await dynamicWithBlock1('native')
    const image = await native.open(file, { readOnly: true })
    evictFromPageCache(file)
    const io = nativeIo(image)
    const buffer = Buffer.alloc(8 * KiB, 0xee)
    // Entirely in unallocated block 0: done before the call returns, nothing in flight,
    // and the junk in the buffer is zeroed.
    const atOnce = io.read(buffer, 0, 4 * KiB, 100)
    assert.equal(io.owner.inFlight, 0)
    assert.ok(buffer.subarray(0, 4 * KiB).every((b) => b === 0))
    assert.ok(buffer.subarray(4 * KiB).every((b) => b === 0xee), 'bytes outside the range untouched')
    assert.equal(await atOnce, 4 * KiB)
    // Touching block 1, not in memory: in flight until the data is there.
    const viaPool = io.read(buffer, 0, 8 * KiB, BLOCK - 4 * KiB)
    assert.equal(io.owner.inFlight, 1)
    assert.equal(await viaPool, 8 * KiB)
    assert.equal(io.owner.inFlight, 0)
    assert.ok(buffer.subarray(0, 4 * KiB).every((b) => b === 0))
    assert.deepEqual(buffer.subarray(4 * KiB), pattern(BLOCK, 7).subarray(0, 4 * KiB))
    // The same again: now in the page cache, so at once, and the same bytes.
    buffer.fill(0xee)
    const cached = io.read(buffer, 0, 8 * KiB, BLOCK - 4 * KiB)
    assert.equal(io.owner.inFlight, 0)
    assert.equal(await cached, 8 * KiB)
    assert.ok(buffer.subarray(0, 4 * KiB).every((b) => b === 0))
    assert.deepEqual(buffer.subarray(4 * KiB), pattern(BLOCK, 7).subarray(0, 4 * KiB))
    // Past the end of the disk: nothing to read, at once.
    assert.equal(await io.read(buffer, 0, 10, 4 * BLOCK), 0)
    // Short at the end, still at once (block 3 is unallocated).
    const short = io.read(buffer, 0, 8 * KiB, 4 * BLOCK - KiB)
    assert.equal(io.owner.inFlight, 0)
    assert.equal(await short, KiB)
    // More than 1 MiB goes to the threads even when it is all zeros.
    const big = Buffer.alloc(2 * MiB)
    const bigRead = io.read(big, 0, BLOCK + 1, 2 * BLOCK - 1)
    assert.equal(io.owner.inFlight, 1)
    assert.equal(await bigRead, BLOCK + 1)
    await image.close()
    // Closed: a rejection, never a synchronous throw.
    await assert.rejects(io.read(buffer, 0, 10, 0), { code: 'ERR_VHD_CLOSED' })
    assert.equal(io.owner.inFlight, 0)
  })

  test('a fixed image reads at once from the page cache, through the I/O threads from the disk', async () => {
    const file = tmp.file('fixed')
    const disk = await VHD.create(file, { type: 'fixed', size: MiB })
    await disk.write(pattern(4 * KiB, 3), 8 * KiB)
    await disk.close()
    const image = await native.open(file, { readOnly: true })
    evictFromPageCache(file)
    const io = nativeIo(image)
    const fromDisk = Buffer.alloc(4 * KiB)
    const read = io.read(fromDisk, 0, 4 * KiB, 8 * KiB)
    assert.equal(io.owner.inFlight, 1)
    assert.equal(await read, 4 * KiB)
    assert.deepEqual(fromDisk, pattern(4 * KiB, 3))
    const fromCache = Buffer.alloc(4 * KiB)
    const again = io.read(fromCache, 0, 4 * KiB, 8 * KiB)
    assert.equal(io.owner.inFlight, 0)
    assert.equal(await again, 4 * KiB)
    assert.deepEqual(fromCache, pattern(4 * KiB, 3))
    await image.close()
  })

  test('a differencing image answers at once only where no image of the chain has data', async () => {
    const base = await dynamicWithBlock1('base')
    const child = tmp.file('child')
    const top = await VHD.create(child, { type: 'differencing', parent: base })
    await top.write(pattern(4 * KiB, 9), 2 * BLOCK)
    await top.close()
    const image = await native.open(child, { readOnly: true })
    evictFromPageCache(base)
    evictFromPageCache(child)
    const io = nativeIo(image)
    const buffer = Buffer.alloc(4 * KiB, 1)
    const nowhere = io.read(buffer, 0, 4 * KiB, 0)
    assert.equal(io.owner.inFlight, 0, 'block 0: nowhere')
    assert.equal(await nowhere, 4 * KiB)
    assert.ok(buffer.every((b) => b === 0))
    const fromParent = io.read(buffer, 0, 4 * KiB, BLOCK)
    assert.equal(io.owner.inFlight, 1, 'block 1: in the parent')
    await fromParent
    assert.deepEqual(buffer, pattern(BLOCK, 7).subarray(0, 4 * KiB))
    const fromChild = io.read(buffer, 0, 4 * KiB, 2 * BLOCK)
    assert.equal(io.owner.inFlight, 1, 'block 2: in the child')
    await fromChild
    assert.deepEqual(buffer, pattern(4 * KiB, 9))
    // Both now in the page cache: at once, through the whole chain.
    const again = Buffer.alloc(4 * KiB)
    const cached = io.read(again, 0, 4 * KiB, BLOCK)
    assert.equal(io.owner.inFlight, 0, 'block 1: cached in the parent')
    await cached
    assert.deepEqual(again, pattern(BLOCK, 7).subarray(0, 4 * KiB))
    await image.close()
  })

  test('the public API gives the same results either way, in both call styles', async () => {
    const file = await dynamicWithBlock1('public')
    const disk = await VHD.open(file, { readOnly: true })
    const into = Buffer.alloc(4 * KiB, 0xaa)
    const result = await disk.readInto(into, 0, 4 * KiB, 0)
    assert.equal(result.bytesRead, 4 * KiB)
    assert.equal(result.buffer, into)
    assert.ok(into.every((b) => b === 0))
    const { bytesRead, buffer } = await disk.read(3 * BLOCK, 2 * KiB)
    assert.equal(bytesRead, 2 * KiB)
    assert.ok(buffer.every((b) => b === 0))
    const viaCallback = await new Promise((resolve, reject) =>
      disk.readInto(Buffer.alloc(KiB, 3), 0, KiB, 10, (error, n, b) => (error ? reject(error) : resolve([n, b]))),
    )
    assert.equal(viaCallback[0], KiB)
    assert.ok(viaCallback[1].every((b) => b === 0))
    await disk.close()
  })
})

describe('reads beside writes in flight', () => {
  test('a read issued while writes are in flight sees either the old or the new data, never a mix', async () => {
    const file = tmp.file('inflight')
    const disk = await VHD.create(file, { type: 'dynamic', size: 8 * BLOCK, blockSize: BLOCK })
    const data = pattern(BLOCK, 3)
    const ops = []
    for (let i = 0; i < 8; i++) {
      ops.push(disk.write(data, i * BLOCK))
      ops.push(disk.read(i * BLOCK, 4 * KiB))
    }
    const results = await Promise.all(ops)
    for (let i = 0; i < 8; i++) {
      const { buffer } = results[2 * i + 1]
      const allZero = buffer.every((b) => b === 0)
      assert.ok(allZero || buffer.equals(data.subarray(0, 4 * KiB)), `block ${i}: old or new data`)
    }
    // close waits for everything started, at-once reads included.
    const late = [disk.read(0, 4 * KiB), disk.write(data, 0)]
    await disk.close()
    await Promise.all(late)
    const again = await VHD.open(file, { readOnly: true })
    for (let i = 0; i < 8; i++) {
      assert.ok((await again.read(i * BLOCK, BLOCK)).buffer.equals(data), `block ${i} written`)
    }
    await again.close()
  })
})

describe('synchronous I/O on every image class', () => {
  test('VHD.Image readSync/writeSync mirror read/write (offset and length default like fs)', async () => {
    const file = await dynamicWithBlock1('image-sync')
    const image = new VHD.Image({ path: file, flags: 'r+' })
    await image.open()
    const data = pattern(3 * KiB, 11)
    const source = Buffer.concat([Buffer.alloc(100, 0xcc), data])
    assert.equal(image.writeSync(source, 100, data.length, 2 * BLOCK + 512), data.length)
    const into = Buffer.alloc(data.length + 10, 0xdd)
    assert.equal(image.readSync(into, 10, data.length, 2 * BLOCK + 512), data.length)
    assert.deepEqual(into.subarray(10), data)
    assert.ok(into.subarray(0, 10).every((b) => b === 0xdd))
    // The BAT the 0.5.0 API shows follows a synchronous allocation too.
    assert.notEqual(image.bat.readUInt32BE(2 * 4), 0xffffffff)
    // Defaults: the whole buffer from offset 0; short past the end.
    const tail = Buffer.alloc(2 * KiB)
    assert.equal(image.readSync(tail, null, null, 4 * BLOCK - KiB), KiB)
    assert.throws(() => image.writeSync(tail, 0, tail.length, 4 * BLOCK - KiB), { code: 'ERR_VHD_OUT_OF_RANGE' })
    assert.throws(() => image.readSync('nope', 0, 1, 0), { code: 'ERR_INVALID_ARG_TYPE' })
    await image.close()
    assert.throws(() => image.readSync(tail, 0, 1, 0), { code: 'ERR_VHD_CLOSED' })
    const disk = await VHD.open(file, { readOnly: true })
    assert.deepEqual((await disk.read(2 * BLOCK + 512, data.length)).buffer, data)
    await disk.close()
  })
})

describe('the handle functions and the I/O port (the paths lib/disk.js reads and writes through)', () => {
  test('read, write and their sync forms through a handle; bad arguments throw; closed images refuse', async () => {
    const file = await dynamicWithBlock1('handle')
    const image = await native.open(file, {})
    const handle = image.handle
    const io = nativeIo(image)
    const data = pattern(4 * KiB, 21)
    assert.equal(await io.write(data, 0, data.length, 3 * BLOCK), data.length)
    const back = Buffer.alloc(data.length)
    assert.equal(await io.read(back, 0, back.length, 3 * BLOCK), data.length)
    assert.deepEqual(back, data)
    assert.equal(native.handleWriteSync(handle, data, 0, 512, 0), 512)
    assert.equal(native.handleReadSync(handle, back, 0, 512, 0), 512)
    assert.deepEqual(back.subarray(0, 512), data.subarray(0, 512))
    // Checked before anything starts: a synchronous throw, and nothing in flight.
    assert.throws(() => io.read(back, 4, back.length, 0), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => io.write(back, 0, 1, -1), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => io.read('nope', 0, 1, 0))
    assert.throws(() => native.handleReadSync({}, back, 0, 1, 0))
    assert.throws(() => native.handleReadSync(handle, back, 0, back.length + 1, 0), { code: 'ERR_OUT_OF_RANGE' })
    assert.equal(io.owner.inFlight, 0)
    // Failures found by the I/O threads reject with the core's error.
    await assert.rejects(io.write(back, 0, 1, 4 * BLOCK), { code: 'ERR_VHD_OUT_OF_RANGE' })
    await image.close()
    await assert.rejects(io.read(back, 0, 10, 2 * BLOCK), { code: 'ERR_VHD_CLOSED' })
    await assert.rejects(io.write(back, 0, 10, 0), { code: 'ERR_VHD_CLOSED' })
    assert.throws(() => native.handleReadSync(handle, back, 0, 10, 0), { code: 'ERR_VHD_CLOSED' })
    assert.equal(io.owner.inFlight, 0)
  })

  test('many requests of several images in flight at once each get their own result', async () => {
    const files = await Promise.all([0, 1, 2].map((n) => dynamicWithBlock1(`port-${n}`)))
    const images = await Promise.all(files.map((file) => native.open(file, {})))
    const ios = images.map(nativeIo)
    // 600 writes of distinct 1 KiB patterns (more than one drain takes at a time), then
    // 600 reads of them, all in flight together.
    const writes = []
    for (let i = 0; i < 600; i++) writes.push(ios[i % 3].write(pattern(KiB, i + 1), 0, KiB, BLOCK + i * KiB))
    assert.deepEqual(await Promise.all(writes), Array(600).fill(KiB))
    const buffers = Array.from({ length: 600 }, () => Buffer.alloc(KiB))
    const reads = buffers.map((buffer, i) => ios[i % 3].read(buffer, 0, KiB, BLOCK + i * KiB))
    assert.deepEqual(await Promise.all(reads), Array(600).fill(KiB))
    buffers.forEach((buffer, i) => assert.deepEqual(buffer, pattern(KiB, i + 1), `request ${i}`))
    for (const io of ios) assert.equal(io.owner.inFlight, 0)
    await Promise.all(images.map((image) => image.close()))
  })

  test('a worker thread ended with reads and writes in flight ends cleanly', async () => {
    const { Worker } = require('node:worker_threads')
    const file = await dynamicWithBlock1('worker')
    const source = `
      const { parentPort, workerData } = require('node:worker_threads')
      const VHD = require(${JSON.stringify(require.resolve('..'))})
      VHD.open(workerData, {}).then((disk) => {
        const buffer = Buffer.alloc(${BLOCK})
        // 16 readers and 16 writers that never stop: always something in flight.
        const again = (start) => start().then(() => again(start))
        for (let i = 0; i < 16; i++) {
          again(() => disk.readInto(Buffer.alloc(${BLOCK}), 0, ${BLOCK}, ${BLOCK}))
          again(() => disk.write(buffer, (i % 4) * ${BLOCK}))
        }
        parentPort.postMessage('started')
      })
    `
    for (let round = 0; round < 5; round++) {
      const worker = new Worker(source, { eval: true, workerData: file })
      await new Promise((resolve, reject) => {
        worker.once('message', resolve)
        worker.once('error', reject)
      })
      // Terminated with requests running on the I/O threads: they must finish before the
      // worker's memory goes, and the process must carry on.
      assert.equal(await worker.terminate(), 1)
    }
    // The image is whole: it opens and reads (its last writes may or may not be there).
    const disk = await VHD.open(file, { readOnly: true })
    assert.equal((await disk.read(BLOCK, 4 * KiB)).bytesRead, 4 * KiB)
    await disk.close()
  })

  test('reads in flight keep the process alive until they complete, and no longer', async () => {
    const file = await dynamicWithBlock1('alive')
    const script = `
      const native = require(${JSON.stringify(require.resolve('../binding.js'))})
      const { nativeIo } = require(${JSON.stringify(require.resolve('./helpers.js'))})
      native.open(process.argv[1], { readOnly: true }).then((image) => {
        const io = nativeIo(image)
        const buffer = Buffer.alloc(${BLOCK})
        // No timer or handle of its own: only the read in flight holds the event loop. The
        // image stays open: an idle port must not keep the process from exiting either.
        io.read(buffer, 0, buffer.length, ${BLOCK}).then((n) => console.log('read', n, buffer[0] === ${pattern(BLOCK, 7)[0]}))
      })
    `
    const run = spawnSync(process.execPath, ['-e', script, file], { encoding: 'utf8', timeout: 30000 })
    assert.equal(run.status, 0, run.stderr)
    assert.equal(run.stdout.trim(), `read ${BLOCK} true`)
  })
})
