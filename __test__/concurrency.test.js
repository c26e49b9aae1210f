'use strict'

// Many operations in flight on one image at once: hundreds of promises of reads and writes
// on non-overlapping ranges that share blocks (so that concurrent writes allocate the same
// blocks), on dynamic and differencing images, through `VHD.open`'s classes and `VHD.Image`.
// The final image must be the one that doing the same operations one by one gives: the
// same virtual contents as a model and as a sequentially written copy, every block
// allocated exactly once (allocatedBlocks = blocks touched, file size = one allocation per
// block). Each read or write is atomic with respect to the others on the same image. And
// `close()` while operations are in flight waits for them; later calls fail cleanly with
// ERR_VHD_CLOSED.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const VHD = require('..')
const native = require('../binding.js')
const { KiB, MiB, tempDir, pattern, nativeIo } = require('./helpers.js')

const SIZE = 16 * MiB
const BLOCK_SIZE = 512 * KiB
/** The sector bitmap before each block: 1024 sectors → 128 bytes, padded to a sector. */
const BITMAP_SIZE = Math.ceil(BLOCK_SIZE / 512 / 8 / 512) * 512

let tmp
before(() => {
  tmp = tempDir('vhd-concurrency-')
})
after(() => tmp.cleanup())

/** A deterministic generator of numbers in [0, 1) (mulberry32). */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Cuts [0, 12 MiB) into consecutive ranges of 1 byte to 60 KiB (so most blocks hold several),
 * each a write (about 55%), a read (30%) or left alone. Ranges never overlap. Each read
 * range is `early` (written before the concurrent phase) or not (it then reads what was
 * there: zeros, or the parent's data). The rest of the disk is not touched.
 */
function plan(seed) {
  const next = random(seed)
  const ops = []
  let offset = next() < 0.5 ? 0 : 1 + Math.floor(next() * 1000)
  let n = 0
  while (true) {
    const length = 1 + Math.floor(next() * (next() < 0.2 ? 600 : 60 * KiB))
    if (offset + length > 12 * MiB) break
    const roll = next()
    n += 1
    if (roll < 0.55) ops.push({ kind: 'write', offset, data: pattern(length, seed * 1000 + n) })
    else if (roll < 0.85) ops.push({ kind: 'read', offset, length, early: next() < 0.5 ? pattern(length, seed * 7000 + n) : null })
    offset += length
  }
  return ops
}

/** The blocks a write of `data` at `offset` allocates: all it touches, except (dynamic) spans of zeros. */
function touchedBlocks(offset, data, dynamic) {
  const blocks = []
  for (let at = offset; at < offset + data.length; ) {
    const block = Math.floor(at / BLOCK_SIZE)
    const end = Math.min((block + 1) * BLOCK_SIZE, offset + data.length)
    const span = data.subarray(at - offset, end - offset)
    if (!dynamic || span.some((b) => b !== 0)) blocks.push(block)
    at = end
  }
  return blocks
}

/** A parent for the differencing case: a dynamic image with data over most of the disk. */
async function makeParent() {
  const file = tmp.file('parent')
  const disk = await VHD.create(file, { type: 'dynamic', size: SIZE, blockSize: BLOCK_SIZE })
  const model = Buffer.alloc(SIZE)
  for (let offset = 0; offset < 14 * MiB; offset += 3 * MiB) {
    const data = pattern(2 * MiB + 777, offset + 5)
    await disk.write(data, offset)
    data.copy(model, offset)
  }
  await disk.close()
  return { file, model }
}

/** A new image for the scenario: dynamic, or differencing over `parent`; closed. */
async function makeImage(kind, parent, name) {
  const file = tmp.file(name)
  const options =
    kind === 'dynamic'
      ? { type: 'dynamic', size: SIZE, blockSize: BLOCK_SIZE }
      : { type: 'differencing', parent: parent.file }
  const disk = await VHD.create(file, options)
  assert.equal(disk.blockSize, BLOCK_SIZE)
  await disk.close()
  return { file, freshSize: fs.statSync(file).size }
}

/** The image's whole virtual disk, read in one go. */
async function contents(file) {
  const disk = await VHD.open(file, { readOnly: true })
  const { buffer } = await disk.read(0, disk.size)
  const allocated = disk.allocatedBlocks
  await disk.close()
  return { buffer, allocated }
}

/** Applies the early writes of `ops` (the data read ranges hold before the concurrent phase). */
async function earlyWrites(disk, ops) {
  for (const op of ops) if (op.kind === 'read' && op.early) await disk.write(op.early, op.offset)
}

/** What a read range holds: its early data, or what was there before (`base`). */
function expectedRead(op, base) {
  return op.early ?? base.subarray(op.offset, op.offset + op.length)
}

/** Equal buffers, reporting the first difference rather than megabytes of bytes. */
function assertSame(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`)
  if (actual.equals(expected)) return
  let i = 0
  while (actual[i] === expected[i]) i++
  assert.fail(`${what}: first difference at byte ${i} (block ${Math.floor(i / BLOCK_SIZE)}): ${actual[i]} != ${expected[i]}`)
}

for (const kind of ['dynamic', 'differencing']) {
  describe(`${kind}: hundreds of operations in flight`, () => {
    let parent = null
    let ops
    let base
    let model
    let blocks

    before(async () => {
      parent = kind === 'differencing' ? await makeParent() : null
      base = parent ? parent.model : Buffer.alloc(SIZE)
      ops = plan(kind === 'dynamic' ? 11 : 12)
      model = Buffer.from(base)
      blocks = new Set()
      const writes = [
        ...ops.filter((op) => op.kind === 'read' && op.early).map((op) => ({ offset: op.offset, data: op.early })),
        ...ops.filter((op) => op.kind === 'write'),
      ]
      for (const { offset, data } of writes) {
        data.copy(model, offset)
        for (const block of touchedBlocks(offset, data, kind === 'dynamic')) blocks.add(block)
      }
      const counts = { write: 0, read: 0 }
      for (const op of ops) counts[op.kind] += 1
      assert.ok(counts.write > 200 && counts.read > 100, `the plan has ${counts.write} writes and ${counts.read} reads`)
      assert.ok(blocks.size > 10 && blocks.size < SIZE / BLOCK_SIZE, `${blocks.size} blocks touched, not all`)
    })

    /** Checks the image against the model, one allocation per block touched. */
    async function checkFinal(image, what) {
      const { buffer, allocated } = await contents(image.file)
      assertSame(buffer, model, what)
      assert.equal(allocated, blocks.size, `${what}: allocatedBlocks = the blocks touched`)
      const size = fs.statSync(image.file).size
      assert.equal(size, image.freshSize + blocks.size * (BITMAP_SIZE + BLOCK_SIZE), `${what}: one allocation per block`)
      return { buffer, size }
    }

    test('one by one, then all at once (classes): the same image', async () => {
      const sequential = await makeImage(kind, parent, 'sequential')
      let disk = await VHD.open(sequential.file)
      await earlyWrites(disk, ops)
      for (const op of ops) {
        if (op.kind === 'write') {
          assert.equal((await disk.write(op.data, op.offset)).bytesWritten, op.data.length)
        } else {
          assertSame((await disk.read(op.offset, op.length)).buffer, expectedRead(op, base), 'sequential read')
        }
      }
      await disk.close()
      const one = await checkFinal(sequential, 'sequential')

      const concurrent = await makeImage(kind, parent, 'concurrent')
      disk = await VHD.open(concurrent.file)
      await earlyWrites(disk, ops)
      let inFlight = 0
      let most = 0
      const track = (promise) => {
        inFlight += 1
        most = Math.max(most, inFlight)
        return promise.finally(() => (inFlight -= 1))
      }
      const results = ops.map((op, i) => {
        if (op.kind === 'write') {
          return track(disk.write(op.data, op.offset)).then(({ bytesWritten, buffer }) => {
            assert.equal(bytesWritten, op.data.length)
            assert.equal(buffer, op.data)
          })
        }
        // A few reads through the callback form and on the JS thread, the rest as promises.
        if (i % 17 === 0) {
          assertSame(disk.readSync(op.offset, op.length).buffer, expectedRead(op, base), `readSync ${i}`)
          return Promise.resolve()
        }
        const read = i % 5 === 0
          ? new Promise((resolve, reject) => disk.read(op.offset, op.length, (e, n, b) => (e ? reject(e) : resolve({ buffer: b }))))
          : disk.read(op.offset, op.length)
        return track(read).then(({ buffer }) => assertSame(buffer, expectedRead(op, base), `read ${i} at ${op.offset}`))
      })
      // Flushes in the middle of it all.
      results.push(track(disk.flush()), track(disk.flush()))
      assert.ok(most > 300, `${most} operations were in flight at once`)
      await Promise.all(results)
      assert.equal(disk.allocatedBlocks, blocks.size, 'allocatedBlocks while open')
      await disk.close()
      const all = await checkFinal(concurrent, 'concurrent')
      assert.equal(all.size, one.size)
      assertSame(all.buffer, one.buffer, 'concurrent = sequential')
    })

    test('all at once through VHD.Image, writes mixed with writeSync: the same image', async () => {
      const image = await makeImage(kind, parent, 'image')
      const disk = new VHD.Image({ path: image.file, flags: 'r+' })
      await disk.open()
      for (const op of ops) {
        if (op.kind === 'read' && op.early) await disk.write(op.early, 0, op.early.length, op.offset)
      }
      const results = ops.map((op, i) => {
        if (op.kind === 'write') {
          return disk.write(op.data, 0, op.data.length, op.offset).then(({ bytesWritten }) => assert.equal(bytesWritten, op.data.length))
        }
        // Reads into one shared buffer at distinct places.
        const into = Buffer.alloc(op.length + 3)
        return disk.read(into, 3, op.length, op.offset).then(({ bytesRead }) => {
          assert.equal(bytesRead, op.length)
          assertSame(into.subarray(3), expectedRead(op, base), `Image read ${i}`)
        })
      })
      await Promise.all(results)
      const entries = Array.from({ length: disk.bat.length / 4 }, (_, i) => disk.bat.readUInt32BE(i * 4))
      const used = entries.filter((e) => e !== VHD.SECTOR.FREE)
      assert.equal(used.length, blocks.size, 'the table has one entry per block touched')
      assert.equal(new Set(used).size, used.length, 'no two blocks share a place in the file')
      await disk.close()
      await checkFinal(image, 'VHD.Image')
    })
  })
}

describe('atomicity', () => {
  test('each write and read is whole: overlapping writes never mix, reads see one write or another', async () => {
    for (const type of ['dynamic', 'fixed']) {
      const file = tmp.file(`atomic-${type}`)
      const disk = await VHD.create(file, { type, size: 4 * MiB, blockSize: BLOCK_SIZE })
      // A range across a block boundary, so that a write of it is several steps inside.
      const offset = BLOCK_SIZE - 100 * KiB
      const length = 300 * KiB
      const fills = Array.from({ length: 40 }, (_, i) => Buffer.alloc(length, i + 1))
      const reads = []
      const writes = fills.map((fill, i) => {
        if (i % 2 === 0) reads.push(disk.read(offset, length))
        return disk.write(fill, offset)
      })
      await Promise.all(writes)
      const seen = await Promise.all(reads)
      for (const { buffer } of seen) {
        const first = buffer[0]
        assert.ok(first === 0 || first <= fills.length, `byte ${first}`)
        assert.ok(buffer.every((b) => b === first), `a read saw a mix of writes (${type})`)
      }
      const { buffer } = await disk.read(offset, length)
      assert.ok(buffer[0] >= 1 && buffer.every((b) => b === buffer[0]), `the result is one whole write (${type})`)
      await disk.close()
    }
  })
})

describe('close while operations are in flight', () => {
  test('the classes: close waits for every operation; later ones fail with ERR_VHD_CLOSED', async () => {
    for (const type of ['dynamic', 'fixed']) {
      const file = tmp.file(`close-${type}`)
      const disk = await VHD.create(file, { type, size: SIZE, blockSize: BLOCK_SIZE })
      const model = Buffer.alloc(SIZE)
      const inFlight = []
      for (let i = 0; i < 300; i++) {
        const offset = i * 50 * KiB + (i % 7)
        const data = pattern(20 * KiB + i, 900 + i)
        data.copy(model, offset)
        inFlight.push(disk.write(data, offset).then(({ bytesWritten }) => bytesWritten))
        if (i % 3 === 0) inFlight.push(disk.read(offset + 30 * KiB, 1000).then(({ bytesRead }) => bytesRead))
      }
      inFlight.push(disk.flush().then(() => 0))
      const closing = disk.close()
      // From here on, nothing new starts.
      // A second close() joins the close in progress (lifecycle.test.js): it resolves with it.
      inFlight.push(disk.close().then(() => 0))
      const late = [disk.write(Buffer.alloc(10, 1), 0), disk.read(0, 10), disk.flush()]
      for (const promise of late) {
        await assert.rejects(promise, (error) => {
          assert.equal(error.code, 'ERR_VHD_CLOSED', error.message)
          return true
        })
      }
      assert.throws(() => disk.readSync(0, 1), { code: 'ERR_VHD_CLOSED' })
      assert.throws(() => disk.writeSync(Buffer.alloc(1), 0), { code: 'ERR_VHD_CLOSED' })
      const settled = await Promise.allSettled(inFlight)
      assert.deepEqual(settled.filter((r) => r.status === 'rejected').map((r) => r.reason.code), [], 'every operation started before close resolves')
      await closing
      assert.equal(disk.isOpen, false)
      const { buffer } = await contents(file)
      assertSame(buffer, model, `${type}: every write before close is in the image`)
    }
  })

  test('VHD.Image: close waits for the writes in flight', async () => {
    const file = tmp.file('close-image')
    await (await VHD.create(file, { type: 'dynamic', size: SIZE, blockSize: BLOCK_SIZE })).close()
    const image = new VHD.Image({ path: file })
    await image.open()
    const model = Buffer.alloc(SIZE)
    const writes = []
    for (let i = 0; i < 200; i++) {
      const data = pattern(33 * KiB, 400 + i)
      const offset = i * 70 * KiB
      data.copy(model, offset)
      writes.push(image.write(data, 0, data.length, offset))
    }
    const closing = image.close()
    await assert.rejects(image.write(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })
    await assert.rejects(image.read(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })
    await Promise.all(writes)
    await closing
    assert.equal(image.fd, null)
    assertSame((await contents(file)).buffer, model, 'VHD.Image writes before close')
  })

  test('the native layer alone: close amid operations; each resolves or fails with ERR_VHD_CLOSED', async () => {
    const file = tmp.file('close-native')
    await (await VHD.create(file, { type: 'dynamic', size: SIZE, blockSize: BLOCK_SIZE })).close()
    const image = await native.open(file, {})
    const io = nativeIo(image)
    const ops = []
    for (let i = 0; i < 400; i++) {
      const buffer = pattern(8 * KiB, i + 1)
      ops.push(i % 2 ? io.write(buffer, 0, buffer.length, i * 40 * KiB) : io.read(buffer, 0, buffer.length, i * 40 * KiB))
      if (i === 200) ops.push(image.close())
    }
    const settled = await Promise.allSettled(ops)
    const codes = new Set(settled.filter((r) => r.status === 'rejected').map((r) => r.reason.code))
    for (const code of codes) assert.equal(code, 'ERR_VHD_CLOSED')
    assert.equal(settled[201].status, 'fulfilled', 'the close itself succeeded')
    assert.equal(image.isOpen, false)
    // A write that resolved is in the image (close flushed it); one refused left nothing.
    const disk = await VHD.open(file, { readOnly: true })
    for (let i = 1; i < 400; i += 2) {
      const resolved = settled[i > 200 ? i + 1 : i].status === 'fulfilled'
      const { buffer } = await disk.read(i * 40 * KiB, 8 * KiB)
      if (resolved) assert.ok(buffer.equals(pattern(8 * KiB, i + 1)), `write ${i} resolved: its data is there`)
      else assert.ok(buffer.every((b) => b === 0), `write ${i} was refused: nothing of it is there`)
    }
    await disk.close()
  })
})
