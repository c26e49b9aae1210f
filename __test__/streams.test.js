'use strict'

// VHD.ReadStream and VHD.WriteStream, made from a `VHD.Image`, from the `VHD.Fixed`,
// `VHD.Dynamic` and `VHD.Differencing` classes, or from a path: start and end, chunk sizes,
// backpressure, errors, pipelines between images of every type, durability on 'finish', that
// the image stays open after its stream, and that blocks a dynamic image has not allocated
// are never read from the file.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { Writable } = require('node:stream')
const { pipeline } = require('node:stream/promises')
const VHD = require('..')
const { internal } = require('../lib/disk.js')
const { KiB, MiB, tempDir, pattern, createWithModel } = require('./helpers.js')

let tmp
before(() => {
  tmp = tempDir('vhd-streams-')
})
after(() => tmp.cleanup())

/** Collects a readable stream: `{ data, chunks }` (the chunk sizes). */
async function collect(stream) {
  const parts = []
  for await (const chunk of stream) parts.push(chunk)
  return { data: Buffer.concat(parts), chunks: parts.map((p) => p.length) }
}

/** Resolves with the stream's 'error', or rejects if it closes without one. */
function errorOf(stream) {
  return new Promise((resolve, reject) => {
    stream.once('error', resolve)
    stream.once('close', () => setImmediate(() => reject(new Error('the stream closed without an error'))))
  })
}

function closed(stream) {
  return new Promise((resolve) => (stream.closed ? resolve() : stream.once('close', resolve)))
}

/**
 * Makes an image (VHD.create options) filled by `writes` ([offset, data] pairs) and returns
 * `{ file, model }`, closed.
 */
async function makeImage(name, options, writes = [], parentModel = null) {
  const file = tmp.file(name)
  return { file, model: await createWithModel(file, options, writes, parentModel) }
}

const images = {}
before(async () => {
  images.fixed = await makeImage('fixed', { type: 'fixed', size: 5 * MiB }, [
    [0, pattern(3 * MiB + 5, 1)],
    [5 * MiB - 100, pattern(100, 2)],
  ])
  images.dynamic = await makeImage('dynamic', { type: 'dynamic', size: 9 * MiB, blockSize: 1 * MiB }, [
    [100, pattern(MiB, 3)], // blocks 0 and 1
    [6 * MiB - 10, pattern(20, 4)], // blocks 5 and 6
  ])
  images.differencing = await makeImage('diff', { type: 'differencing', parent: images.dynamic.file }, [
    [MiB / 2, pattern(2 * MiB, 5)],
    [9 * MiB - 512, pattern(512, 6)],
  ], images.dynamic.model)
})

const TYPES = ['fixed', 'dynamic', 'differencing']

/** The image as a VHD.Image (open) or as a VHD.Fixed/Dynamic/Differencing (open). */
async function openAs(kind, file, options = {}) {
  if (kind === 'Image') {
    const image = new VHD.Image({ path: file, flags: 'r', ...options })
    return image.open()
  }
  return VHD.open(file, { readOnly: true, ...options })
}

describe('read streams', () => {
  for (const type of TYPES) {
    for (const kind of ['Image', 'Disk']) {
      test(`a ${type} image as a ${kind}: the whole disk, in 1 MiB chunks`, async () => {
        const { file, model } = images[type]
        const source = await openAs(kind, file)
        const stream = source.createReadStream()
        assert.ok(stream instanceof VHD.ReadStream)
        const { data, chunks } = await collect(stream)
        assert.ok(data.equals(model))
        assert.deepEqual(chunks.slice(0, -1), new Array(chunks.length - 1).fill(MiB))
        assert.ok(chunks.at(-1) <= MiB)
        assert.equal(stream.bytesRead, model.length)
        await closed(stream)
        // The image stays open after its stream.
        assert.equal(stream.image, source)
        const { buffer } = kind === 'Image'
          ? await source.read(Buffer.alloc(10), 0, 10, 100)
          : await source.read(100, 10)
        assert.ok(buffer.equals(model.subarray(100, 110)))
        await source.close()
      })
    }
  }

  test('start and end (exclusive, as in vhd@0.5.0) cut the disk, for every type', async () => {
    for (const type of TYPES) {
      const { file, model } = images[type]
      const image = await openAs('Image', file)
      const size = model.length
      const cases = [
        [{}, 0, size],
        [{ start: 0, end: 0 }, 0, 0],
        [{ start: 5, end: 6 }, 5, 6],
        [{ start: MiB - 10, end: MiB + 10 }, MiB - 10, MiB + 10],
        [{ start: 12_345 }, 12_345, size],
        [{ end: 3 * MiB + 1 }, 0, 3 * MiB + 1],
        [{ start: size - 3, end: size + 1000 }, size - 3, size],
        [{ start: size + 10 }, size, size],
        [{ start: 7n, end: 9n }, 7, 9],
        [{ start: null, end: Infinity }, 0, size],
      ]
      for (const [options, from, to] of cases) {
        const stream = new VHD.ReadStream({ image, highWaterMark: 256 * KiB, ...options })
        const { data } = await collect(stream)
        assert.ok(data.equals(model.subarray(from, to)), `${type} ${JSON.stringify(options, (k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`)
      }
      await image.close()
    }
  })

  test('highWaterMark is the chunk size', async () => {
    const { file, model } = images.dynamic
    const disk = await openAs('Disk', file)
    for (const [highWaterMark, length] of [[1, 1001], [512, 250_001], [4096, 250_001], [100_000, 250_001], [3 * MiB, 250_001]]) {
      const stream = disk.createReadStream({ highWaterMark, start: 1000, end: 1000 + length })
      assert.equal(stream.readableHighWaterMark, highWaterMark)
      assert.equal(stream.highWaterMark, highWaterMark)
      const { data, chunks } = await collect(stream)
      assert.ok(data.equals(model.subarray(1000, 1000 + length)))
      const full = Math.floor(length / highWaterMark)
      assert.deepEqual(chunks.slice(0, full), new Array(full).fill(highWaterMark))
      assert.equal(chunks.length, Math.ceil(length / highWaterMark))
    }
    await disk.close()
  })

  test('backpressure: a slow consumer and a paused stream keep only a few chunks read ahead', async () => {
    const { file, model } = images.fixed
    const image = await openAs('Image', file)
    const highWaterMark = 64 * KiB
    const stream = image.createReadStream({ highWaterMark })
    let consumed = 0
    let worst = 0
    const slow = new Writable({
      highWaterMark: 1,
      write(chunk, encoding, callback) {
        consumed += chunk.length
        worst = Math.max(worst, stream.bytesRead - consumed)
        setTimeout(callback, 1)
      },
    })
    const parts = []
    stream.on('data', (chunk) => parts.push(chunk))
    await pipeline(stream, slow)
    assert.equal(consumed, model.length)
    assert.ok(Buffer.concat(parts).equals(model))
    assert.ok(worst <= 4 * highWaterMark, `read ahead of the consumer by ${worst} bytes`)

    const paused = image.createReadStream({ highWaterMark })
    await new Promise((resolve) => {
      paused.once('data', () => {
        paused.pause()
        resolve()
      })
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.ok(paused.bytesRead <= 3 * highWaterMark, `a paused stream read ${paused.bytesRead} bytes`)
    paused.destroy()
    await closed(paused)

    const untouched = image.createReadStream({ highWaterMark })
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.ok(untouched.bytesRead <= highWaterMark, `a stream nobody reads read ${untouched.bytesRead} bytes`)
    untouched.destroy()
    await closed(untouched)
    await image.close()
  })

  test('blocks a dynamic image has not allocated are never read from the file', { skip: !fs.existsSync('/proc/self/io') && 'needs /proc/self/io (Linux)' }, async () => {
    // A 2 GiB disk with two blocks of data: the file holds 4 MiB of blocks, and the rest of
    // the disk exists nowhere in it. /proc/self/io counts every byte the process reads from
    // files (rchar), the addon's thread-pool reads included.
    const size = 2048 * MiB
    const { file } = await makeImage('sparse', { type: 'dynamic', size }, [
      [0, pattern(2 * MiB, 7)],
      [size - 2 * MiB, pattern(2 * MiB, 8)],
    ])
    const fileSize = fs.statSync(file).size
    assert.ok(fileSize < 5 * MiB, `the file is ${fileSize} bytes`)
    const bytesReadSoFar = () => Number(/^rchar: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'latin1'))[1])

    const image = await openAs('Image', file)
    const zeros = Buffer.alloc(MiB)
    let total = 0
    let nonZero = 0
    let start = bytesReadSoFar()
    for await (const chunk of image.createReadStream({ start: 2 * MiB, end: size - 2 * MiB })) {
      total += chunk.length
      if (!chunk.equals(zeros.subarray(0, chunk.length))) nonZero += 1
    }
    const unallocated = bytesReadSoFar() - start
    assert.equal(total, size - 4 * MiB)
    assert.equal(nonZero, 0)
    assert.ok(unallocated < 256 * KiB, `streaming ${total} unallocated bytes read ${unallocated} bytes of files`)

    // The check sees reads: the allocated blocks are read from the file.
    start = bytesReadSoFar()
    const { data } = await collect(image.createReadStream({ end: 2 * MiB }))
    const allocated = bytesReadSoFar() - start
    assert.ok(data.equals(pattern(2 * MiB, 7)))
    assert.ok(allocated >= 2 * MiB, `streaming an allocated block read only ${allocated} bytes`)
    await image.close()
  })

  test('the stream waits for an open in progress, and emits open and ready', async () => {
    const { file, model } = images.differencing
    const image = new VHD.Image({ path: file, flags: 'r' })
    const opening = image.open()
    const stream = image.createReadStream({ start: 10, end: 20 })
    const events = []
    stream.on('open', () => events.push('open'))
    stream.on('ready', () => events.push('ready'))
    const { data } = await collect(stream)
    assert.ok(data.equals(model.subarray(10, 20)))
    assert.deepEqual(events, ['open', 'ready'])
    await opening
    await image.close()
  })

  test('encoding gives strings, as for any Readable', async () => {
    const { file, model } = images.fixed
    const disk = await openAs('Disk', file)
    const parts = []
    for await (const part of disk.createReadStream({ end: 8, encoding: 'hex' })) parts.push(part)
    assert.equal(parts.join(''), model.subarray(0, 8).toString('hex'))
    await disk.close()
  })

  test('streams opened from a path or a file descriptor close their image when they end', async () => {
    const { file, model } = images.dynamic
    const stream = new VHD.ReadStream({ path: file, start: MiB - 5, end: MiB + 5 })
    assert.ok(stream.image instanceof VHD.Image)
    const { data } = await collect(stream)
    assert.ok(data.equals(model.subarray(MiB - 5, MiB + 5)))
    await closed(stream)
    assert.equal(stream.image.fd, null)
    await assert.rejects(stream.image.read(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })

    const fd = fs.openSync(file, 'r')
    const byFd = new VHD.ReadStream({ fd, end: 100 })
    assert.ok((await collect(byFd)).data.equals(model.subarray(0, 100)))
    await closed(byFd)
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' })

    const kept = new VHD.ReadStream({ path: file, end: 100, autoClose: false })
    await collect(kept)
    await closed(kept)
    assert.equal(typeof kept.image.fd, 'number', 'autoClose: false leaves it open')
    await kept.image.close()
  })

  test('autoClose: true closes a given image; close() closes it whatever autoClose says', async () => {
    const { file } = images.fixed
    const image = await openAs('Image', file)
    const stream = image.createReadStream({ end: 10, autoClose: true })
    await collect(stream)
    await closed(stream)
    await assert.rejects(image.read(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })

    const disk = await openAs('Disk', file)
    const early = disk.createReadStream()
    await new Promise((resolve) => early.once('data', resolve))
    await new Promise((resolve, reject) => early.close((error) => (error ? reject(error) : resolve())))
    assert.equal(disk.isOpen, false)
    assert.equal(early.destroyed, true)

    // After the stream is gone, close() still closes the image it leaves open.
    const again = await openAs('Image', file)
    const done = again.createReadStream({ end: 1 })
    await collect(done)
    await closed(done)
    await new Promise((resolve) => done.close(resolve))
    await assert.rejects(again.read(Buffer.alloc(1), 0, 1, 0), { code: 'ERR_VHD_CLOSED' })
  })

  test('errors: a closed image, an image never opened, one closed while streaming, a missing file', async () => {
    const { file } = images.dynamic
    const image = await openAs('Image', file)
    await image.close()
    assert.equal((await errorOf(image.createReadStream())).code, 'ERR_VHD_CLOSED')

    const never = new VHD.Image({ path: file })
    assert.equal((await errorOf(never.createReadStream())).code, 'ERR_VHD_CLOSED')

    const disk = await openAs('Disk', file)
    const stream = disk.createReadStream({ highWaterMark: 64 * KiB })
    stream.once('data', () => disk.close())
    const error = await errorOf(stream)
    assert.equal(error.code, 'ERR_VHD_CLOSED')
    assert.equal(stream.destroyed, true)

    const missing = new VHD.ReadStream({ path: tmp.file('missing') })
    assert.equal((await errorOf(missing)).code, 'ENOENT')
  })

  test('bad options are refused when the stream is made', async () => {
    const disk = await openAs('Disk', images.fixed.file)
    assert.throws(() => new VHD.ReadStream({ image: {} }), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => new VHD.ReadStream(), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => disk.createReadStream({ start: 10, end: 5 }), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => disk.createReadStream({ start: -1 }), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => disk.createReadStream({ highWaterMark: 0 }), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => disk.createReadStream({ autoClose: 'yes' }), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => disk.createReadStream('nope'), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => disk.createWriteStream({ flush: 1 }), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => new VHD.WriteStream({ path: 'x.vhd', flags: 'wx' }), { code: 'ERR_INVALID_ARG_VALUE' })
    await disk.close()
  })
})

describe('write streams', () => {
  function copyImage(type) {
    const file = tmp.file(`${type}-copy`)
    fs.copyFileSync(images[type].file, file)
    return { file, model: Buffer.from(images[type].model) }
  }

  test('pipelines between images of every type give equal contents, and leave both open', async () => {
    const pairs = [
      ['fixed', 'dynamic'],
      ['dynamic', 'differencing'],
      ['differencing', 'fixed'],
    ]
    for (const [from, to] of pairs) {
      const source = await openAs('Disk', images[from].file)
      const targetFile = tmp.file(`${from}-to-${to}`)
      const target = to === 'differencing'
        ? await VHD.create(targetFile, { type: 'differencing', parent: images.fixed.file, size: source.size })
        : await VHD.create(targetFile, { type: to, size: source.size })
      assert.equal(target.size, source.size)
      await pipeline(source.createReadStream(), target.createWriteStream())
      assert.equal(source.isOpen, true)
      assert.equal(target.isOpen, true)
      const mine = await target.read(0, target.size)
      assert.ok(mine.buffer.equals(images[from].model), `${from} → ${to}`)
      await source.close()
      await target.close()
    }
  })

  test('through VHD.Image, from start, in chunks of any size (strings too)', async () => {
    for (const type of TYPES) {
      const { file, model } = copyImage(type)
      const image = new VHD.Image({ path: file })
      await image.open()
      const data = pattern(MiB + 333, 9)
      const stream = image.createWriteStream({ start: MiB - 111 })
      assert.ok(stream instanceof VHD.WriteStream)
      for (let at = 0; at < data.length; at += 50_000) stream.write(data.subarray(at, at + 50_000))
      stream.end('tail', 'latin1')
      await new Promise((resolve, reject) => stream.on('finish', resolve).on('error', reject))
      data.copy(model, MiB - 111)
      model.write('tail', MiB - 111 + data.length, 'latin1')
      assert.equal(stream.bytesWritten, data.length + 4)
      assert.equal(stream.position, MiB - 111 + data.length + 4)
      await closed(stream)
      const { buffer } = await image.read(Buffer.alloc(model.length), 0, model.length, 0)
      assert.ok(buffer.equals(model), type)
      await image.close()
    }
  })

  test('chunks that queue up are written in one native write (_writev)', async () => {
    const { file, model } = copyImage('dynamic')
    const disk = await VHD.open(file)
    const original = disk[internal.kWriteFrom]
    const calls = []
    disk[internal.kWriteFrom] = function (bytes, offset, length, position) {
      calls.push([length, position])
      return original.call(this, bytes, offset, length, position)
    }
    const stream = disk.createWriteStream({ start: 3 * MiB })
    stream.cork()
    const parts = [pattern(1000, 10), pattern(2000, 11), pattern(3000, 12)]
    for (const part of parts) stream.write(part)
    stream.uncork()
    stream.end()
    await new Promise((resolve, reject) => stream.on('finish', resolve).on('error', reject))
    assert.deepEqual(calls, [[6000, 3 * MiB]])
    Buffer.concat(parts).copy(model, 3 * MiB)
    assert.ok((await disk.read(0, disk.size)).buffer.equals(model))
    await disk.close()
  })

  test('past the end: the writes that fit are written, the one that runs past writes nothing, ERR_VHD_OUT_OF_RANGE', async () => {
    for (const type of TYPES) {
      const { file, model } = copyImage(type)
      const fileBefore = fs.readFileSync(file)
      const disk = await VHD.open(file)
      const size = disk.size
      const stream = disk.createWriteStream({ start: size - 1000, highWaterMark: 700 })
      const failed = errorOf(stream)
      const data = pattern(3000, 13)
      // The first 700 bytes fit; the next write (at size - 300) would run past the end.
      for (let at = 0; at < data.length; at += 700) stream.write(data.subarray(at, at + 700))
      stream.end()
      const error = await failed
      assert.ok(error instanceof RangeError)
      assert.equal(error.code, 'ERR_VHD_OUT_OF_RANGE')
      assert.equal(stream.bytesWritten, 700)
      await closed(stream)
      // The image is still open (autoClose false) and holds exactly the writes that fit.
      assert.equal(disk.isOpen, true)
      data.copy(model, size - 1000, 0, 700)
      assert.ok((await disk.read(0, size)).buffer.equals(model), type)
      await disk.close()
      if (type === 'fixed') {
        const fileAfter = fs.readFileSync(file)
        assert.equal(fileAfter.length, fileBefore.length)
        assert.ok(fileAfter.subarray(size).equals(fileBefore.subarray(size)), 'the footer is untouched')
      }
      const reopened = await VHD.open(file, { readOnly: true })
      assert.equal(reopened.size, size)
      assert.ok((await reopened.read(0, size)).buffer.equals(model))
      await reopened.close()
    }
  })

  test('one write running past the end writes nothing at all', async () => {
    for (const type of TYPES) {
      const { file, model } = copyImage(type)
      const disk = await VHD.open(file)
      const size = disk.size
      const stream = disk.createWriteStream({ start: size - 1000 })
      const failed = errorOf(stream)
      stream.end(pattern(3000, 17))
      assert.equal((await failed).code, 'ERR_VHD_OUT_OF_RANGE')
      assert.equal(stream.bytesWritten, 0)
      await closed(stream)
      assert.ok((await disk.read(0, size)).buffer.equals(model), type)
      await disk.close()
    }
  })

  test('corked writes: those that fit land, the first that runs past and all after it do not', async () => {
    const { file, model } = copyImage('dynamic')
    const disk = await VHD.open(file)
    const size = disk.size
    const stream = disk.createWriteStream({ start: size - 1000 })
    const failed = errorOf(stream)
    stream.cork()
    for (const [length, seed] of [[400, 1], [500, 2], [200, 3], [50, 4]]) stream.write(pattern(length, seed))
    stream.uncork()
    stream.end()
    assert.equal((await failed).code, 'ERR_VHD_OUT_OF_RANGE')
    assert.equal(stream.bytesWritten, 900)
    await closed(stream)
    pattern(400, 1).copy(model, size - 1000)
    pattern(500, 2).copy(model, size - 600)
    assert.ok((await disk.read(0, size)).buffer.equals(model))
    await disk.close()
  })

  test('a write stream starting at the end fails on its first byte', async () => {
    const { file } = copyImage('fixed')
    const image = new VHD.Image({ path: file })
    await image.open()
    const stream = image.createWriteStream({ start: Number(image.size) })
    const failed = errorOf(stream)
    stream.end(Buffer.from('x'))
    assert.equal((await failed).code, 'ERR_VHD_OUT_OF_RANGE')
    assert.equal(stream.bytesWritten, 0)
    await image.close()
  })

  test('a read-only image fails the stream with ERR_VHD_READ_ONLY', async () => {
    const image = await openAs('Image', images.fixed.file)
    const stream = image.createWriteStream()
    const failed = errorOf(stream)
    stream.end(Buffer.from('x'))
    assert.equal((await failed).code, 'ERR_VHD_READ_ONLY')
    await image.close()
  })

  test("'finish' comes once the data is durable: another reader sees the new blocks while the image is open", async () => {
    const file = tmp.file('durable')
    const disk = await VHD.create(file, { type: 'dynamic', size: 8 * MiB })
    const data = pattern(3 * MiB, 14)
    const stream = disk.createWriteStream({ start: MiB })
    await new Promise((resolve, reject) => stream.on('finish', resolve).on('error', reject).end(data))
    assert.equal(disk.isOpen, true)
    // A second handle beside the open writer is the point: it opts out of locking.
    const other = await VHD.open(file, { readOnly: true, lock: false })
    assert.ok((await other.read(MiB, data.length)).buffer.equals(data))
    await other.close()
    await disk.close()
  })

  test('streams opened from a path close their image; close() ends the stream first', async () => {
    const { file, model } = copyImage('dynamic')
    const stream = new VHD.WriteStream({ path: file, start: 4 * MiB })
    assert.equal(stream.flags, 'w')
    stream.write(Buffer.from('hello'))
    await new Promise((resolve, reject) => stream.close((error) => (error ? reject(error) : resolve())))
    assert.equal(stream.image.fd, null)
    model.write('hello', 4 * MiB)
    const check = await VHD.open(file, { readOnly: true })
    assert.ok((await check.read(0, check.size)).buffer.equals(model))
    await check.close()

    const missing = new VHD.WriteStream({ path: tmp.file('missing') })
    assert.equal((await errorOf(missing)).code, 'ENOENT')
  })
})
