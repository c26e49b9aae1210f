'use strict'

// VHD.Partition, the view of one partition of a disk: every read and write confined to its
// bytes (against a model, a Buffer of the whole disk, with random reads and writes across
// its edges), its lifecycle (the disk's: close waits for its operations in flight, later ones
// fail with ERR_VHD_CLOSED), its read-only state (the disk's), its argument checks (the
// disk's own, error for error), its streams, toBlockDevice()'s and toFileDisk()'s bounds, and
// the error without file-disk installed. The disk is laid out by sgdisk (skipped without it,
// outside CI).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const util = require('node:util')
const VHD = require('..')
const { tempDir, pattern } = require('./helpers.js')
const { MiB, SECTOR, skipWithoutTools, run, sfdiskJson, zeroFile } = require('./partition-disks.js')

const skip = skipWithoutTools()
let tmp
/** The raw disk: three partitions, the middle one not aligned to the image's blocks. */
let raw
let table

before(() => {
  if (skip) return
  tmp = tempDir('vhd-partition-view-')
  raw = path.join(tmp.dir, 'disk.raw')
  zeroFile(raw, 8 * MiB)
  run('sgdisk', ['--clear', '--set-alignment=1', '--new=1:2048:+1M', '--new=2:4097:+3M', '--new=3:0:+1M', raw])
  table = sfdiskJson(raw)
  // Data everywhere but the GPT structures, so that a stray byte shows.
  const fd = fs.openSync(raw, 'r+')
  fs.writeSync(fd, pattern(7 * MiB - 34 * SECTOR, 11), 0, 7 * MiB - 34 * SECTOR, 34 * SECTOR)
  fs.closeSync(fd)
})
after(() => tmp?.cleanup())

/** A dynamic image of the raw disk (small blocks, so that the partition spans several), open. */
async function openCopy(name, options) {
  const file = path.join(tmp.dir, `${name}.vhd`)
  if (!fs.existsSync(file)) await VHD.convert(raw, file, { to: 'dynamic', blockSize: 512 * 1024 })
  return VHD.open(file, options)
}

/** A small deterministic random generator (xorshift32). */
function random(seed) {
  let x = seed >>> 0 || 1
  return (n) => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) % n
  }
}

test('disk.partition(index): where the table says, with its entry', { skip }, async () => {
  const disk = await openCopy('entry')
  try {
    const p2 = table.partitions[1]
    const partition = await disk.partition(2)
    assert.ok(partition instanceof VHD.Partition)
    assert.equal(partition.disk, disk)
    assert.equal(partition.index, 2)
    assert.equal(partition.offset, p2.start * SECTOR)
    assert.equal(partition.size, p2.size * SECTOR)
    assert.equal(partition.readOnly, false)
    assert.equal(partition.isOpen, true)
    assert.deepEqual(partition.entry, (await disk.getPartitions()).partitions[1])
    // The callback form.
    const viaCallback = await new Promise((resolve, reject) => disk.partition(3, (e, p) => (e ? reject(e) : resolve(p))))
    assert.equal(viaCallback.index, 3)
    // An index the table does not have, and a bad one.
    await assert.rejects(disk.partition(4), {
      name: 'RangeError',
      code: 'ERR_VHD_INVALID_ARGUMENT',
      message: /entry\.vhd: there is no partition 4: the disk's partitions are 1, 2, 3$/,
    })
    await assert.rejects(disk.partition(-1), { code: 'ERR_OUT_OF_RANGE' })
    await assert.rejects(disk.partition('1'), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => disk.partition('1', () => {}), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => new VHD.Partition(), { code: 'ERR_ILLEGAL_CONSTRUCTOR' })
    assert.match(util.inspect(partition), /^Partition \{\s+disk: .*entry\.vhd.,\s+index: 2,\s+offset: 2097664,\s+size: 3145728,/)
  } finally {
    await disk.close()
  }
})

test('random reads and writes across the partition edges match a model; no byte outside it changes', { skip }, async () => {
  const disk = await openCopy('model')
  const model = fs.readFileSync(raw)
  try {
    const partition = await disk.partition(2)
    const { offset, size } = partition
    const next = random(0x5eed)
    // Positions near the start, near the end, past it, and anywhere.
    const position = () => [next(3000), size - next(3000), size + next(3000), next(size)][next(4)]
    const length = () => [next(4000) + 1, next(600), SECTOR * (next(16) + 1)][next(3)]
    for (let round = 0; round < 300; round++) {
      const at = position()
      const n = length()
      const fits = at + n <= size
      const readable = Math.max(0, Math.min(n, size - at))
      const expected = model.subarray(offset + Math.min(at, size), offset + Math.min(at, size) + readable)
      switch (next(7)) {
        case 0: {
          const { bytesRead, buffer } = await partition.read(at, n)
          assert.equal(bytesRead, readable, `read(${at}, ${n})`)
          assert.equal(buffer.length, n)
          assert.ok(buffer.subarray(0, bytesRead).equals(expected), `read(${at}, ${n})`)
          assert.ok(buffer.subarray(bytesRead).every((b) => b === 0), 'zeros after a short read')
          break
        }
        case 1: {
          const { bytesRead, buffer } = partition.readSync(at, n)
          assert.equal(bytesRead, readable, `readSync(${at}, ${n})`)
          assert.ok(buffer.subarray(0, bytesRead).equals(expected))
          assert.ok(buffer.subarray(bytesRead).every((b) => b === 0))
          break
        }
        case 2: {
          const target = Buffer.alloc(n + 10, 0xaa)
          const bytesRead = partition.readIntoSync(target, 5, n, at)
          assert.equal(bytesRead, readable)
          assert.ok(target.subarray(5, 5 + bytesRead).equals(expected))
          assert.ok(target.subarray(5 + bytesRead).every((b) => b === 0xaa), 'readInto leaves the rest as it was')
          const again = Buffer.alloc(n + 10, 0xaa)
          const result = await partition.readInto(again, 5, n, at)
          assert.equal(result.bytesRead, readable)
          assert.ok(again.equals(target))
          break
        }
        case 3:
        case 4: {
          const data = pattern(n, round + 100)
          const sync = next(2) === 0
          const write = sync ? async () => partition.writeSync(data, at) : () => partition.write(data, at)
          if (fits) {
            const { bytesWritten } = await write()
            assert.equal(bytesWritten, n)
            data.copy(model, offset + at)
          } else {
            // Named as the disk's own errors are: its path first, and as `path`.
            await assert.rejects(write(), (error) => {
              assert.equal(error.name, 'RangeError')
              assert.equal(error.code, 'ERR_VHD_OUT_OF_RANGE')
              assert.equal(error.path, disk.path)
              assert.ok(error.message.startsWith(`${disk.path}: write of ${n} bytes`), error.message)
              assert.match(error.message, /partition 2/)
              return true
            }, `write(${n} bytes at ${at})`)
          }
          break
        }
        case 5: {
          if (fits) {
            await partition.discard(at, n)
            model.fill(0, offset + at, offset + at + n)
          } else {
            await assert.rejects(partition.discard(at, n), { name: 'RangeError', code: 'ERR_VHD_OUT_OF_RANGE' })
          }
          break
        }
        default: {
          // blockdevice's API over the partition: blocks [from, to), short at the end.
          const device = partition.toBlockDevice()
          const from = Math.floor(at / SECTOR)
          const to = from + Math.ceil(n / SECTOR)
          const { buffer, bytesRead } = await device.readBlocks(from, to)
          const start = Math.min(from * SECTOR, size)
          const count = Math.max(0, Math.min((to - from) * SECTOR, size - start))
          assert.equal(bytesRead, count)
          assert.ok(buffer.subarray(0, count).equals(model.subarray(offset + start, offset + start + count)))
          assert.ok(buffer.subarray(count).every((b) => b === 0))
          if (to * SECTOR <= size) {
            const data = pattern((to - from) * SECTOR, round + 7)
            await device.writeBlocks(from, data)
            data.copy(model, offset + from * SECTOR)
          } else {
            await assert.rejects(device.writeBlocks(from, Buffer.alloc((to - from) * SECTOR)), { code: 'ERR_VHD_OUT_OF_RANGE', path: disk.path })
          }
        }
      }
    }
    // Through file-disk too: its reads and writes stay inside.
    const fileDisk = partition.toFileDisk()
    assert.equal(await fileDisk.getCapacity(), size)
    const tail = pattern(1000, 99)
    await fileDisk.write(tail, 0, tail.length, size - tail.length)
    tail.copy(model, offset + size - tail.length)
    await fileDisk.flush()
    const { buffer } = await fileDisk.read(Buffer.alloc(1000), 0, 1000, size - 1000)
    assert.ok(buffer.equals(tail))
    // The whole disk against the model: the bytes outside the partition are as they were.
    const { buffer: whole } = await disk.read(0, disk.size)
    assert.ok(whole.subarray(0, offset).equals(model.subarray(0, offset)), 'before the partition')
    assert.ok(whole.subarray(offset + size).equals(model.subarray(offset + size)), 'after the partition')
    assert.ok(whole.equals(model), 'the partition itself')
  } finally {
    await disk.close()
  }
})

test('streams of a partition: confined to it; a write stream past its end fails and writes nothing', { skip }, async () => {
  const disk = await openCopy('streams')
  try {
    const partition = await disk.partition(2)
    const { offset, size } = partition
    const before = (await disk.read(0, disk.size)).buffer
    const chunks = []
    for await (const chunk of partition.createReadStream({ start: size - 5000, highWaterMark: 4096 })) chunks.push(chunk)
    assert.ok(Buffer.concat(chunks).equals(before.subarray(offset + size - 5000, offset + size)), 'ends at the partition end')
    const stream = partition.createWriteStream({ start: size - 100 })
    const failed = new Promise((resolve) => stream.on('error', resolve))
    stream.end(Buffer.alloc(200, 1))
    const error = /** @type {any} */ (await failed)
    assert.equal(error.code, 'ERR_VHD_OUT_OF_RANGE')
    assert.equal(error.path, disk.path)
    assert.ok((await disk.read(0, disk.size)).buffer.equals(before), 'nothing written')
    assert.equal(disk.isOpen, true, 'a stream of a partition leaves the disk open by default')
    // autoClose: closes the partition's disk, the image the stream is of.
    const closing = partition.createReadStream({ start: 0, end: 10, autoClose: true })
    for await (const chunk of closing) assert.equal(chunk.length, 10)
    await new Promise((resolve) => (closing.closed ? resolve() : closing.on('close', resolve)))
    assert.equal(disk.isOpen, false)
  } finally {
    await disk.close()
  }
})

test('the partition works while its disk is open: close waits for its reads and writes in flight, later ones fail with ERR_VHD_CLOSED', { skip }, async () => {
  const disk = await openCopy('lifecycle')
  const partition = await disk.partition(2)
  const data = pattern(64 * 1024, 3)
  const inFlight = []
  for (let i = 0; i < 16; i++) {
    inFlight.push(partition.write(data, i * data.length))
    inFlight.push(partition.read(i * data.length, data.length))
  }
  const closed = disk.close()
  const results = await Promise.all(inFlight)
  await closed
  for (let i = 0; i < results.length; i += 2) {
    assert.equal(results[i].bytesWritten, data.length, 'the writes started before close finished')
    assert.equal(results[i + 1].bytesRead, data.length)
  }
  assert.equal(partition.isOpen, false)
  await assert.rejects(partition.read(0, 1), { code: 'ERR_VHD_CLOSED' })
  await assert.rejects(partition.write(Buffer.alloc(1), 0), { code: 'ERR_VHD_CLOSED' })
  assert.throws(() => partition.readSync(0, 1), { code: 'ERR_VHD_CLOSED' })
  assert.throws(() => partition.writeSync(Buffer.alloc(1), 0), { code: 'ERR_VHD_CLOSED' })
  assert.throws(() => partition.toFileDisk(), { code: 'ERR_VHD_CLOSED' })
  await assert.rejects(partition.toBlockDevice().readBlocks(0, 1), { code: 'ERR_VHD_CLOSED' })
  await assert.rejects(partition.flush(), { code: 'ERR_VHD_CLOSED' })
  assert.match(util.inspect(partition), /state: 'disk closed'/)
  // Open again: the same view works again, and what was written is there.
  await disk.open()
  try {
    assert.ok((await partition.read(15 * data.length, data.length)).buffer.equals(data))
  } finally {
    await disk.close()
  }
})

test("a partition follows its disk's read-only state", { skip }, async () => {
  await (await openCopy('readonly')).close()
  const disk = await openCopy('readonly', { readOnly: true })
  try {
    const partition = await disk.partition(2)
    assert.equal(partition.readOnly, true)
    await assert.rejects(partition.write(Buffer.alloc(512), 0), { code: 'ERR_VHD_READ_ONLY' })
    assert.throws(() => partition.writeSync(Buffer.alloc(512), 0), { code: 'ERR_VHD_READ_ONLY' })
    await assert.rejects(partition.toBlockDevice().writeBlocks(0, Buffer.alloc(512)), { code: 'ERR_VHD_READ_ONLY' })
    const fileDisk = partition.toFileDisk()
    assert.equal(fileDisk.readOnly, true)
    // file-disk keeps the write in memory: read back from it, never reaching the image.
    await fileDisk.write(Buffer.from('in memory'), 0, 9, 0)
    assert.equal((await fileDisk.read(Buffer.alloc(9), 0, 9, 0)).buffer.toString(), 'in memory')
    assert.notEqual((await partition.read(0, 9)).buffer.toString(), 'in memory')
  } finally {
    await disk.close()
  }
})

test("a partition's argument checks are the disk's own, error for error", { skip }, async () => {
  const disk = await openCopy('arguments')
  try {
    const partition = await disk.partition(2)
    const small = Buffer.alloc(8)
    const calls = [
      ['read', ['x', 1]],
      ['read', [-1, 1]],
      ['read', [0, 1.5]],
      ['read', [small, 0, 8, 0]],
      ['read', [0, 1, 'not a function']],
      ['readSync', [small, 0]],
      ['readSync', [0, -1]],
      ['readInto', [small, 9, 1, 0]],
      ['readInto', [small, 0, 9, 0]],
      ['readInto', ['x', 0, 1, 0]],
      ['readIntoSync', [small, 0, 9, 0]],
      ['write', ['text', 0]],
      ['write', [small, 0, 8, 0]],
      ['write', [small, 1.5]],
      ['writeSync', [small, 0, 8]],
      ['writeSync', [small, -1]],
      ['discard', [-1, 1]],
      ['discard', [0, 'x']],
      ['createReadStream', [{ start: -1 }]],
      ['createWriteStream', [{ highWaterMark: 0 }]],
    ]
    const outcome = async (fn) => {
      try {
        const result = fn()
        if (result && typeof result.then === 'function') await result
        return 'no error'
      } catch (error) {
        return { class: error.constructor.name, code: error.code, message: error.message }
      }
    }
    for (const [method, args] of calls) {
      const ofDisk = await outcome(() => disk[method](...args))
      const ofPartition = await outcome(() => partition[method](...args))
      assert.notEqual(ofDisk, 'no error', `disk.${method}(${util.inspect(args)}) fails`)
      assert.deepEqual(ofPartition, ofDisk, `partition.${method}(${util.inspect(args)})`)
    }
  } finally {
    await disk.close()
  }
})

test('blockdevice API: callbacks on the device, defaults and swap as blockdevice, whole blocks only for writes', { skip }, async () => {
  const disk = await openCopy('blockdevice')
  const whole = fs.readFileSync(raw)
  try {
    const device = disk.toBlockDevice()
    assert.equal(device.blockSize, 512)
    assert.equal(device.size, disk.size)
    // (3, 1) reads blocks [1, 3), as blockdevice swaps them; (5) reads block 5.
    assert.ok((await device.readBlocks(3, 1)).buffer.equals(whole.subarray(512, 1536)))
    assert.ok((await device.readBlocks(5)).buffer.equals(whole.subarray(2560, 3072)))
    // A buffer of the caller's, zeroed first; past the end of the disk, short.
    const mine = Buffer.alloc(2048, 0xff)
    const last = disk.size / 512
    const { buffer, bytesRead } = await device.readBlocks(last - 1, last + 3, mine)
    assert.equal(buffer, mine)
    assert.equal(bytesRead, 512)
    assert.ok(mine.subarray(512).every((b) => b === 0))
    await assert.rejects(device.readBlocks(0, 4, Buffer.alloc(100)), { code: 'ERR_OUT_OF_RANGE' })
    await assert.rejects(device.writeBlocks(0, Buffer.alloc(100)), { code: 'ERR_INVALID_ARG_VALUE', message: /512-byte blocks/ })
    const written = await new Promise((resolve, reject) =>
      device.writeBlocks(100, Buffer.alloc(1024, 7), function (error, bytesWritten) {
        assert.equal(this, device)
        error ? reject(error) : resolve(bytesWritten)
      }),
    )
    assert.equal(written, 1024)
    assert.ok((await disk.read(100 * 512, 1024)).buffer.every((b) => b === 7))
    // A partition of the device: blocks counted from firstLBA; writes past lastLBA refused.
    const part = device.partition({ firstLBA: 100, lastLBA: 102 })
    assert.equal(part.device, device)
    assert.equal(part.sectors, 2)
    assert.equal(part.size, 1024)
    assert.ok((await part.readBlocks(0, 2)).buffer.every((b) => b === 7))
    await assert.rejects(part.writeBlocks(1, Buffer.alloc(1024)), { code: 'ERR_VHD_OUT_OF_RANGE', path: disk.path })
    assert.ok((await disk.read(102 * 512, 512)).buffer.equals(whole.subarray(102 * 512, 103 * 512)), 'nothing written past it')
    assert.equal((await part.writeBlocks(1, Buffer.alloc(512, 9))).bytesWritten, 512)
    assert.throws(() => device.partition({ firstLBA: 5, lastLBA: 4 }), { code: 'ERR_OUT_OF_RANGE' })
  } finally {
    await disk.close()
  }
})

test('toFileDisk() without file-disk installed throws ERR_VHD_MISSING_PEER, saying to install it', () => {
  // A copy of the package with no file-disk anywhere up its folders: the real resolution fails.
  const scratch = tempDir('vhd-no-peer-')
  try {
    const root = path.join(__dirname, '..')
    const copy = path.join(scratch.dir, 'vhd')
    fs.mkdirSync(copy)
    for (const entry of ['index.js', 'binding.js', 'package.json', 'lib', 'scripts']) fs.cpSync(path.join(root, entry), path.join(copy, entry), { recursive: true })
    for (const entry of fs.readdirSync(root).filter((f) => f.endsWith('.node'))) fs.copyFileSync(path.join(root, entry), path.join(copy, entry))
    const script = `
      const VHD = require(${JSON.stringify(copy)})
      ;(async () => {
        const disk = await VHD.create(${JSON.stringify(path.join(scratch.dir, 'd.vhd'))}, { type: 'dynamic', size: 1 << 20 })
        try { disk.toFileDisk(); console.log('no error') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && e.cause.code })) }
        const bd = disk.toBlockDevice()
        console.log(JSON.stringify({ blockSize: bd.blockSize }))
        await disk.close()
      })()`
    const res = spawnSync(process.execPath, ['-e', script], { cwd: scratch.dir, encoding: 'utf8' })
    assert.equal(res.status, 0, res.stderr)
    const [error, device] = res.stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.equal(error.code, 'ERR_VHD_MISSING_PEER')
    assert.equal(error.cause, 'MODULE_NOT_FOUND')
    assert.match(error.message, /disk\.toFileDisk\(\) needs the file-disk package.*npm install file-disk/)
    assert.deepEqual(device, { blockSize: 512 }, 'toBlockDevice needs nothing more')
  } finally {
    scratch.cleanup()
  }
})

test('partition(index) of a partition that runs past the end of the disk is refused, as by the CLI', { skip }, async () => {
  // An MBR written by hand (sfdisk refuses to): partition 1 fits, partition 2 runs 1 MiB past
  // the end of the 4 MiB disk (a truncated disk image, say).
  const file = path.join(tmp.dir, 'past-end.raw')
  zeroFile(file, 4 * MiB)
  const mbr = Buffer.alloc(512)
  const entry = (slot, type, first, sectors) => {
    const at = 446 + 16 * slot
    mbr[at + 4] = type
    mbr.writeUInt32LE(first, at + 8)
    mbr.writeUInt32LE(sectors, at + 12)
  }
  entry(0, 0x83, 2048, 2048)
  entry(1, 0x83, 4096, 6144)
  mbr.writeUInt16LE(0xaa55, 510)
  fs.writeFileSync(file, mbr, { flag: 'r+' })
  const image = path.join(tmp.dir, 'past-end.vhd')
  await VHD.convert(file, image, { to: 'dynamic' })
  const disk = await VHD.open(image, { readOnly: true })
  try {
    const table = await disk.getPartitions()
    assert.ok(table.findings.some((f) => f.code === 'partition-past-end'), JSON.stringify(table.findings))
    assert.equal((await disk.partition(1)).size, MiB)
    await assert.rejects(disk.partition(2), {
      name: 'RangeError',
      code: 'ERR_VHD_INVALID_ARGUMENT',
      message: /partition 2 \(bytes 2097152\.\.5242880\) runs past the end of the disk \(4194304 bytes\)/,
    })
    const cli = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'vhd.js'), 'cat', '--partition', '2', image], { encoding: 'utf8' })
    assert.notEqual(cli.status, 0)
    assert.match(cli.stderr, /partition 2 \(bytes 2097152\.\.5242880\) runs past the end of the disk/)
  } finally {
    await disk.close()
  }
})

test('partition(index) of an index the table lacks names the first 16 it has, then how many', { skip }, async () => {
  const many = path.join(tmp.dir, 'many.raw')
  zeroFile(many, 8 * MiB)
  run('sgdisk', ['--clear', ...Array.from({ length: 20 }, () => '--new=0:0:+64K'), many])
  const file = path.join(tmp.dir, 'many.vhd')
  await VHD.convert(many, file, { to: 'dynamic' })
  const disk = await VHD.open(file, { readOnly: true })
  try {
    assert.equal((await disk.getPartitions()).partitions.length, 20)
    await assert.rejects(disk.partition(21), {
      code: 'ERR_VHD_INVALID_ARGUMENT',
      message: /there is no partition 21: the disk's partitions are 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 and 4 more$/,
    })
  } finally {
    await disk.close()
  }
})
