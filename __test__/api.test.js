'use strict'

// The JavaScript API of index.js: every method in callback and promise form, argument
// checking, error codes, metadata, and the edge cases of reading and writing.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const { pathToFileURL } = require('node:url')
const VHD = require('..')
const native = require('../binding.js')
const { KiB, MiB, tempDir, pattern, patchFile, patchFooters, viaCallback, rejectsWith, throwsWith, nativeIo } = require('./helpers.js')

let tmp
before(() => {
  tmp = tempDir('vhd-api-')
})
after(() => tmp.cleanup())

async function createDynamic(options = {}) {
  return VHD.create(tmp.file('dynamic'), { type: 'dynamic', size: 8 * MiB, ...options })
}

async function createFixed(options = {}) {
  return VHD.create(tmp.file('fixed'), { type: 'fixed', size: 4 * MiB, ...options })
}

describe('module', () => {
  test('exports TYPE with vhd@0.5.0 values, the version and the classes', () => {
    assert.deepEqual({ ...VHD.TYPE }, {
      NONE: 0,
      RESERVED_DEPRECATED1: 1,
      FIXED: 2,
      DYNAMIC: 3,
      DIFF: 4,
      RESERVED_DEPRECATED2: 5,
      RESERVED_DEPRECATED3: 6,
    })
    assert.equal(VHD.version, require('../package.json').version)
    assert.equal(VHD.version, native.version())
    assert.equal(typeof VHD.Fixed, 'function')
    assert.equal(typeof VHD.Dynamic, 'function')
    assert.equal(typeof VHD.Differencing, 'function')
    assert.ok(new VHD.Differencing('x.vhd') instanceof VHD.Disk)
    assert.ok(new VHD.Fixed('x.vhd') instanceof VHD.Disk)
    assert.equal(typeof VHD.Image, 'function', "VHD.Image is vhd@0.5.0's image class (lib/image.js)")
    throwsWith(() => new VHD.Disk('x.vhd'), 'ERR_ILLEGAL_CONSTRUCTOR', TypeError)
  })

  test('accessors are undefined before open, path is known', () => {
    const disk = new VHD.Dynamic('some.vhd')
    assert.equal(disk.path, 'some.vhd')
    assert.equal(disk.isOpen, false)
    for (const key of ['type', 'size', 'blockSize', 'geometrySize', 'footer', 'header', 'readOnly', 'readOnlyReason', 'footerSource', 'allocatedBlocks']) {
      assert.equal(disk[key], undefined, key)
    }
  })

  test('a native panic becomes an ERR_VHD_INTERNAL error and Node goes on', async () => {
    throwsWith(() => native._panicForTests(false), 'ERR_VHD_INTERNAL')
    await rejectsWith(native._panicForTests(true), 'ERR_VHD_INTERNAL')
  })
})

describe('create', () => {
  test('a dynamic image (promise form) with every default', async () => {
    const before = Date.now()
    const disk = await createDynamic()
    assert.ok(disk instanceof VHD.Dynamic)
    assert.equal(disk.isOpen, true)
    assert.equal(disk.type, VHD.TYPE.DYNAMIC)
    assert.equal(disk.size, 8 * MiB)
    assert.equal(disk.blockSize, 2 * MiB)
    assert.equal(disk.readOnly, false)
    assert.equal(disk.readOnlyReason, null)
    assert.equal(disk.footerSource, 'end')
    assert.equal(disk.allocatedBlocks, 0)
    const { footer, header } = disk
    assert.equal(footer.signature, 'conectix')
    assert.equal(footer.features, 2)
    assert.deepEqual(footer.formatVersion, { major: 1, minor: 0 })
    assert.equal(footer.dataOffset, 512n)
    assert.equal(footer.creatorApplication, 'win ')
    assert.equal(footer.creatorHostOS, 0x5769326b)
    assert.equal(footer.originalSize, BigInt(8 * MiB))
    assert.equal(footer.currentSize, BigInt(8 * MiB))
    assert.deepEqual(footer.diskGeometry, { cylinders: 240, heads: 4, sectors: 17 })
    assert.equal(disk.geometrySize, 240 * 4 * 17 * 512)
    assert.equal(footer.diskType, VHD.TYPE.DYNAMIC)
    assert.equal(typeof footer.checksum, 'number')
    assert.ok(Buffer.isBuffer(footer.uuid) && footer.uuid.length === 16)
    assert.ok(footer.uuid.some((b) => b !== 0))
    assert.equal(footer.savedState, 0)
    assert.equal(footer.reserved.length, 427)
    // Whole seconds since 2000, so up to a second before `before`.
    assert.ok(footer.timestamp >= before - 1000 && footer.timestamp <= Date.now(), `${footer.timestamp}`)
    assert.equal(header.signature, 'cxsparse')
    assert.equal(header.dataOffset, 0xffffffffffffffffn)
    assert.equal(header.tableOffset, 1536n)
    assert.deepEqual(header.headerVersion, { major: 1, minor: 0 })
    assert.equal(header.sectorSize, 2 * MiB)
    assert.ok(header.maxTableEntries >= 4)
    assert.equal(header.parentName, '')
    assert.equal(header.parentId.length, 16)
    assert.equal(header.parentLocators.length, 8)
    assert.deepEqual(header.parentLocators[7], { platformCode: 0, dataSpace: 0, dataLength: 0, reserved: 0, dataOffset: 0n, text: null })
    assert.equal(header.reserved2.length, 256)
    // Copies: changing them changes nothing.
    disk.footer.currentSize = 1n
    assert.equal(disk.footer.currentSize, BigInt(8 * MiB))
    await disk.close()
  })

  test('a fixed image (callback form)', async () => {
    const file = tmp.file('fixed-cb')
    const [error, disk] = await viaCallback((cb) => VHD.create(file, { type: 'fixed', size: 3 * MiB }, cb))
    assert.ifError(error)
    assert.ok(disk instanceof VHD.Fixed)
    assert.equal(disk.type, VHD.TYPE.FIXED)
    assert.equal(disk.size, 3 * MiB)
    assert.equal(disk.blockSize, undefined)
    assert.equal(disk.header, undefined)
    assert.equal(disk.allocatedBlocks, undefined)
    assert.equal(disk.footer.dataOffset, 0xffffffffffffffffn)
    assert.equal(fs.statSync(file).size, 3 * MiB + 512)
    await disk.close()
  })

  test('TYPE numbers, BigInt sizes, a creator application and a URL path', async () => {
    const file = tmp.file('url')
    const disk = await VHD.create(pathToFileURL(file), { type: VHD.TYPE.DYNAMIC, size: BigInt(MiB), creatorApplication: 'qemu' })
    assert.equal(disk.path, file)
    assert.equal(disk.footer.creatorApplication, 'qemu')
    assert.equal(disk.size, MiB)
    await disk.close()
    const short = await VHD.create(tmp.file(), { type: 'fixed', size: MiB, creatorApplication: 'vpc' })
    assert.equal(short.footer.creatorApplication, 'vpc ')
    await short.close()
  })

  for (const blockSize of [512 * KiB, 4 * MiB]) {
    test(`a dynamic image with ${blockSize / KiB} KiB blocks, written across blocks`, async () => {
      const disk = await VHD.create(tmp.file(), { type: 'dynamic', size: 4 * blockSize, blockSize })
      assert.equal(disk.blockSize, blockSize)
      assert.equal(disk.header.sectorSize, blockSize)
      assert.equal(disk.header.maxTableEntries, 4)
      const data = pattern(blockSize + 3000, blockSize)
      const offset = 2 * blockSize - 1000 // last KB of block 1, all of block 2, 2000 bytes of block 3
      await disk.write(data, offset)
      assert.equal(disk.allocatedBlocks, 3)
      const { bytesRead, buffer } = await disk.read(offset - 10, data.length + 20)
      assert.equal(bytesRead, data.length + 20)
      assert.deepEqual(buffer.subarray(10, 10 + data.length), data)
      assert.deepEqual(buffer.subarray(0, 10), Buffer.alloc(10))
      await disk.close()
      const again = await VHD.open(disk.path)
      assert.equal(again.allocatedBlocks, 3)
      assert.deepEqual((await again.read(offset, data.length)).buffer, data)
      await again.close()
    })
  }

  test('an existing file: ERR_VHD_EXISTS, or replaced with overwrite', async () => {
    const file = tmp.file('exists')
    const disk = await VHD.create(file, { type: 'dynamic', size: 2 * MiB })
    await disk.write(Buffer.from('old data'), 0)
    await disk.close()
    await rejectsWith(VHD.create(file, { type: 'dynamic', size: 2 * MiB }), 'ERR_VHD_EXISTS')
    const [error] = await viaCallback((cb) => VHD.create(file, { type: 'fixed', size: MiB }, cb))
    assert.equal(error.code, 'ERR_VHD_EXISTS')
    const replaced = await VHD.create(file, { type: 'fixed', size: MiB, overwrite: true })
    assert.equal(replaced.type, VHD.TYPE.FIXED)
    assert.deepEqual((await replaced.read(0, 8)).buffer, Buffer.alloc(8))
    await replaced.close()
  })

  test('bad options', async () => {
    await rejectsWith(VHD.create(tmp.file(), { type: 'dynamic', size: 1000 }), 'ERR_VHD_INVALID_ARGUMENT', RangeError)
    await rejectsWith(VHD.create(tmp.file(), { type: 'dynamic', size: MiB, blockSize: 3000 }), 'ERR_VHD_INVALID_ARGUMENT', RangeError)
    await rejectsWith(VHD.create(tmp.file(), { type: 'sparse', size: MiB }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.create(tmp.file(), { type: 'fixed', size: MiB, creatorApplication: 'toolong' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.create(tmp.file(), { type: 'fixed' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.create(tmp.file(), { type: 'fixed', size: -512 }), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(VHD.create(tmp.file()), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.create(tmp.file(), { type: 'fixed', size: MiB, overwrite: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => VHD.create(42, { type: 'fixed', size: MiB }, () => {}), 'ERR_INVALID_ARG_TYPE', TypeError)
  })
})

describe('open', () => {
  test('callback and promise forms, both classes, reopen after close', async () => {
    const dynamic = await createDynamic()
    const fixed = await createFixed()
    await dynamic.close()
    await fixed.close()

    const d = new VHD.Dynamic(dynamic.path)
    const [error] = await viaCallback((cb) => d.open(cb))
    assert.ifError(error)
    assert.equal(d.type, VHD.TYPE.DYNAMIC)
    assert.equal(d.readOnly, false)
    await d.close()
    assert.equal(await d.open(), d, 'open() resolves to the disk')
    await d.close()

    const f = new VHD.Fixed(fixed.path, { readOnly: true })
    await f.open()
    assert.equal(f.size, 4 * MiB)
    assert.equal(f.readOnly, true)
    assert.match(f.readOnlyReason, /read-only/)
    await f.close()
  })

  test('VHD.open detects the type (callback and promise forms)', async () => {
    const dynamic = await createDynamic()
    const fixed = await createFixed()
    await Promise.all([dynamic.close(), fixed.close()])
    const [error, d] = await viaCallback((cb) => VHD.open(dynamic.path, cb))
    assert.ifError(error)
    assert.ok(d instanceof VHD.Dynamic)
    assert.equal(d.readOnly, false, 'read-write by default')
    const f = await VHD.open(fixed.path, { readOnly: true })
    assert.ok(f instanceof VHD.Fixed)
    assert.equal(f.readOnly, true)
    // A read-write open needs the only lock on the file: close the read-only one first.
    await f.close()
    const [error2, f2] = await viaCallback((cb) => VHD.open(fixed.path, {}, cb))
    assert.ifError(error2)
    assert.ok(f2 instanceof VHD.Fixed)
    await Promise.all([d.close(), f2.close()])
  })

  test('the wrong class for the type: ERR_VHD_WRONG_TYPE', async () => {
    const dynamic = await createDynamic()
    const fixed = await createFixed()
    await Promise.all([dynamic.close(), fixed.close()])
    await rejectsWith(new VHD.Fixed(dynamic.path).open(), 'ERR_VHD_WRONG_TYPE')
    const [error] = await viaCallback((cb) => new VHD.Dynamic(fixed.path).open(cb))
    assert.equal(error.code, 'ERR_VHD_WRONG_TYPE')
  })

  test('a dynamic image retyped as differencing: ERR_VHD_WRONG_TYPE through the other classes, no parent to find', async () => {
    const disk = await createDynamic()
    await disk.close()
    patchFooters(disk.path, (footer) => footer.writeUInt32BE(VHD.TYPE.DIFF, 60))
    await rejectsWith(new VHD.Dynamic(disk.path).open(), 'ERR_VHD_WRONG_TYPE')
    await rejectsWith(new VHD.Fixed(disk.path).open(), 'ERR_VHD_WRONG_TYPE')
    // No locator and no parent name: nothing to try.
    await rejectsWith(VHD.open(disk.path), 'ERR_VHD_PARENT_NOT_FOUND')
    await rejectsWith(new VHD.Differencing(disk.path).open(), 'ERR_VHD_PARENT_NOT_FOUND')
  })

  test('a missing file: ENOENT', async () => {
    const missing = tmp.file('missing')
    await assert.rejects(new VHD.Dynamic(missing).open(), (error) => {
      assert.equal(error.code, 'ENOENT')
      if (process.platform !== 'win32') assert.equal(error.errno, -2)
      assert.ok(error.message.includes(missing), error.message)
      return true
    })
    await rejectsWith(VHD.open(missing), 'ENOENT')
    const [error] = await viaCallback((cb) => new VHD.Fixed(missing).open(cb))
    assert.equal(error.code, 'ENOENT')
  })

  test('not an image at all, or too short: ERR_VHD_NOT_VHD', async () => {
    const junk = tmp.file('junk')
    fs.writeFileSync(junk, Buffer.alloc(4096, 0x41))
    await rejectsWith(VHD.open(junk), 'ERR_VHD_NOT_VHD')
    const tiny = tmp.file('tiny')
    fs.writeFileSync(tiny, 'x')
    await rejectsWith(VHD.open(tiny), 'ERR_VHD_NOT_VHD')
  })

  test('opening twice: ERR_VHD_ALREADY_OPEN', async () => {
    const created = await createDynamic()
    await created.close()
    const disk = new VHD.Dynamic(created.path)
    const first = disk.open()
    await rejectsWith(disk.open(), 'ERR_VHD_ALREADY_OPEN')
    await first
    await rejectsWith(disk.open(), 'ERR_VHD_ALREADY_OPEN')
    const [error] = await viaCallback((cb) => disk.open(cb))
    assert.equal(error.code, 'ERR_VHD_ALREADY_OPEN')
    assert.equal(disk.isOpen, true, 'still open and usable')
    await disk.read(0, 1)
    await disk.close()
  })

  test('a failed open leaves the disk closed and openable', async () => {
    const file = tmp.file('later')
    const disk = new VHD.Dynamic(file)
    await rejectsWith(disk.open(), 'ENOENT')
    assert.equal(disk.isOpen, false)
    await (await VHD.create(file, { type: 'dynamic', size: MiB })).close()
    await disk.open()
    assert.equal(disk.size, MiB)
    await disk.close()
  })

  test('a corrupted footer checksum: ERR_VHD_CHECKSUM, or read-only with ignoreChecksums', async () => {
    const disk = await createFixed()
    await disk.write(Buffer.from('still here'), 100)
    await disk.close()
    patchFile(disk.path, -512 + 200, 1, (b) => (b[0] ^= 0xff)) // a reserved byte
    await rejectsWith(VHD.open(disk.path), 'ERR_VHD_CHECKSUM')
    await rejectsWith(new VHD.Fixed(disk.path).open(), 'ERR_VHD_CHECKSUM')
    const forced = await VHD.open(disk.path, { ignoreChecksums: true })
    assert.equal(forced.readOnly, true)
    assert.match(forced.readOnlyReason, /checksum/)
    assert.equal((await forced.read(100, 10)).buffer.toString(), 'still here')
    await rejectsWith(forced.write(Buffer.from('x'), 0), 'ERR_VHD_READ_ONLY')
    await forced.close()
  })

  test('a corrupted dynamic header checksum: ERR_VHD_CHECKSUM, or read-only with ignoreChecksums', async () => {
    const disk = await createDynamic()
    await disk.write(Buffer.from('header test'), MiB)
    await disk.close()
    patchFile(disk.path, 512 + 800, 1, (b) => (b[0] ^= 0x55)) // a reserved byte of the header
    await rejectsWith(VHD.open(disk.path), 'ERR_VHD_CHECKSUM')
    const forced = await new VHD.Dynamic(disk.path, { ignoreChecksums: true }).open()
    assert.equal(forced.readOnly, true)
    assert.equal((await forced.read(MiB, 11)).buffer.toString(), 'header test')
    await forced.close()
  })

  test('a damaged end footer with a good copy: read-only, footerSource "copy"', async () => {
    const disk = await createDynamic()
    const data = pattern(5000, 7)
    await disk.write(data, 3 * MiB)
    await disk.close()
    patchFile(disk.path, -512, 8, (b) => b.write('garbage!')) // the end footer's cookie
    const opened = await VHD.open(disk.path)
    assert.ok(opened instanceof VHD.Dynamic)
    assert.equal(opened.footerSource, 'copy')
    assert.equal(opened.readOnly, true)
    assert.match(opened.readOnlyReason, /damaged/)
    assert.deepEqual((await opened.read(3 * MiB, 5000)).buffer, data)
    await rejectsWith(opened.write(Buffer.from('x'), 0), 'ERR_VHD_READ_ONLY')
    throwsWith(() => opened.writeSync(Buffer.from('x'), 0), 'ERR_VHD_READ_ONLY')
    await opened.close()
  })

  test('a 511-byte footer: footerSource "end511"', async () => {
    const disk = await createFixed()
    await disk.write(Buffer.from('abc'), 0)
    await disk.close()
    fs.truncateSync(disk.path, 4 * MiB + 511) // the footer's last reserved byte (0) is gone
    const opened = await VHD.open(disk.path)
    assert.equal(opened.footerSource, 'end511')
    assert.equal(opened.size, 4 * MiB)
    assert.equal((await opened.read(0, 3)).buffer.toString(), 'abc')
    await opened.close()
  })

  test('bad constructor and open arguments are TypeErrors', async () => {
    throwsWith(() => new VHD.Dynamic(42), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => new VHD.Dynamic(), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => new VHD.Fixed('a\u0000b'), 'ERR_INVALID_ARG_VALUE', TypeError)
    throwsWith(() => new VHD.Fixed('x.vhd', { readOnly: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => new VHD.Fixed('x.vhd', 'r'), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => new VHD.Fixed('x.vhd').open('not a function'), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.open(null), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => VHD.open(null, () => {}), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.open('x.vhd', { ignoreChecksums: 1 }), 'ERR_INVALID_ARG_TYPE', TypeError)
  })
})

describe('read and write', () => {
  let disk
  let model // what the disk should hold
  before(async () => {
    disk = await createDynamic()
    model = Buffer.alloc(disk.size)
  })
  after(() => disk.close())

  async function put(data, offset) {
    const { bytesWritten, buffer } = await disk.write(data, offset)
    assert.equal(bytesWritten, data.byteLength)
    assert.equal(buffer, data, 'resolves with the same buffer')
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(model, Number(offset))
  }

  async function check(offset, length) {
    const { bytesRead, buffer } = await disk.read(offset, length)
    assert.equal(bytesRead, length)
    assert.deepEqual(buffer, model.subarray(offset, offset + length), `bytes ${offset}..${offset + length}`)
  }

  test('callback forms of read, write and flush', async () => {
    const data = pattern(1000, 1)
    const [werror, written, wbuffer] = await viaCallback((cb) => disk.write(data, 10_000, cb))
    assert.ifError(werror)
    assert.equal(written, 1000)
    assert.equal(wbuffer, data)
    data.copy(model, 10_000)
    const [ferror] = await viaCallback((cb) => disk.flush(cb))
    assert.ifError(ferror)
    const [rerror, bytesRead, buffer] = await viaCallback((cb) => disk.read(9_990, 1020, cb))
    assert.ifError(rerror)
    assert.equal(bytesRead, 1020)
    assert.deepEqual(buffer, model.subarray(9_990, 11_010))
  })

  test('promise forms of read, write and flush', async () => {
    await put(pattern(700, 2), 123_457)
    assert.equal(await disk.flush(), undefined)
    await check(123_000, 2000)
  })

  test('readSync and writeSync', () => {
    const data = pattern(3333, 3)
    const { bytesWritten, buffer } = disk.writeSync(data, 5 * MiB + 11)
    assert.equal(bytesWritten, 3333)
    assert.equal(buffer, data)
    data.copy(model, 5 * MiB + 11)
    const read = disk.readSync(5 * MiB, 4000)
    assert.equal(read.bytesRead, 4000)
    assert.deepEqual(read.buffer, model.subarray(5 * MiB, 5 * MiB + 4000))
  })

  test('unaligned I/O spanning two blocks', async () => {
    const offset = 2 * MiB - 777
    await put(pattern(5001, 4), offset)
    await check(offset - 1, 5003)
    await check(2 * MiB - 1, 2)
    // Overwrite part of it, unaligned, inside an allocated block.
    await put(pattern(3, 5), 2 * MiB + 1)
    await check(offset, 5001)
  })

  test('a large read across every block', async () => {
    await put(pattern(MiB, 6), 6 * MiB + 100)
    await check(0, disk.size)
  })

  test('reads past the end are short, reads at or past the end return 0 bytes', async () => {
    await put(pattern(10, 7), disk.size - 10)
    const short = await disk.read(disk.size - 10, 100)
    assert.equal(short.bytesRead, 10)
    assert.equal(short.buffer.length, 100, 'the whole buffer of `length` bytes, like fs.read')
    assert.deepEqual(short.buffer.subarray(0, 10), model.subarray(disk.size - 10))
    assert.deepEqual(short.buffer.subarray(10), Buffer.alloc(90), 'the rest is zeros')
    for (const offset of [disk.size, disk.size + 1, Number.MAX_SAFE_INTEGER]) {
      const { bytesRead, buffer } = await disk.read(offset, 16)
      assert.equal(bytesRead, 0)
      assert.deepEqual(buffer, Buffer.alloc(16))
    }
    const [error, bytesRead] = await viaCallback((cb) => disk.read(disk.size, 1, cb))
    assert.ifError(error)
    assert.equal(bytesRead, 0)
    assert.equal(disk.readSync(disk.size - 3, 10).bytesRead, 3)
    const empty = await disk.read(0, 0)
    assert.equal(empty.bytesRead, 0)
    assert.equal(empty.buffer.length, 0)
  })

  test('writes past the end are RangeErrors and write nothing', async () => {
    const before = (await disk.read(disk.size - 100, 100)).buffer
    const data = Buffer.alloc(200, 0xee)
    await rejectsWith(disk.write(data, disk.size - 100), 'ERR_VHD_OUT_OF_RANGE', RangeError)
    await rejectsWith(disk.write(data, disk.size), 'ERR_VHD_OUT_OF_RANGE', RangeError)
    await rejectsWith(disk.write(Buffer.alloc(1), Number.MAX_SAFE_INTEGER), 'ERR_VHD_OUT_OF_RANGE', RangeError)
    throwsWith(() => disk.writeSync(data, disk.size - 1), 'ERR_VHD_OUT_OF_RANGE', RangeError)
    const [error] = await viaCallback((cb) => disk.write(data, disk.size - 1, cb))
    assert.ok(error instanceof RangeError)
    assert.equal(error.code, 'ERR_VHD_OUT_OF_RANGE')
    assert.deepEqual((await disk.read(disk.size - 100, 100)).buffer, before)
    // An empty write at the very end is fine.
    assert.equal((await disk.write(Buffer.alloc(0), disk.size)).bytesWritten, 0)
  })

  test('BigInt offsets and lengths', async () => {
    await put(pattern(64, 8), 4n * BigInt(MiB) + 3n)
    const { bytesRead, buffer } = await disk.read(4n * BigInt(MiB), 100n)
    assert.equal(bytesRead, 100)
    assert.deepEqual(buffer, model.subarray(4 * MiB, 4 * MiB + 100))
    assert.equal(disk.readSync(1n, 2n).bytesRead, 2)
    assert.equal(disk.writeSync(Buffer.alloc(2), 7n).bytesWritten, 2)
    model.fill(0, 7, 9)
    await rejectsWith(disk.read(2n ** 53n, 1), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(disk.read(-1n, 1), 'ERR_OUT_OF_RANGE', RangeError)
  })

  test('Uint8Array, other typed arrays and DataView are written as their bytes', async () => {
    const u8 = new Uint8Array([1, 2, 3, 4])
    await put(u8, 1000)
    const backing = new Uint16Array([0x0102, 0x0304, 0x0506, 0x0708])
    const view = new Uint16Array(backing.buffer, 2, 2) // bytes 2..6 of the backing store
    await put(view, 2000)
    const dataView = new DataView(pattern(16, 9).buffer, 4, 8)
    await put(dataView, 3000)
    const sliced = pattern(100, 10).subarray(50, 60)
    await put(sliced, 4000)
    await check(900, 3200)
  })

  test('wrong argument types are TypeErrors: thrown with a callback, rejected without', async () => {
    for (const [offset, length] of [['0', 1], [0, '1'], [null, 1], [0, undefined], [{}, 1]]) {
      await rejectsWith(disk.read(offset, length), 'ERR_INVALID_ARG_TYPE', TypeError)
      throwsWith(() => disk.read(offset, length, () => assert.fail('called')), 'ERR_INVALID_ARG_TYPE', TypeError)
      throwsWith(() => disk.readSync(offset, length), 'ERR_INVALID_ARG_TYPE', TypeError)
    }
    for (const buffer of ['text', 42, [1, 2], null, new ArrayBuffer(4)]) {
      await rejectsWith(disk.write(buffer, 0), 'ERR_INVALID_ARG_TYPE', TypeError)
      throwsWith(() => disk.write(buffer, 0, () => assert.fail('called')), 'ERR_INVALID_ARG_TYPE', TypeError)
      throwsWith(() => disk.writeSync(buffer, 0), 'ERR_INVALID_ARG_TYPE', TypeError)
    }
    await rejectsWith(disk.write(Buffer.alloc(1), '0'), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => disk.read(0, 1, 'callback'), 'ERR_INVALID_ARG_TYPE', TypeError)
    throwsWith(() => disk.flush(42), 'ERR_INVALID_ARG_TYPE', TypeError)
  })

  test('negative, fractional and unsafe numbers are RangeErrors', async () => {
    for (const [offset, length] of [[-1, 1], [0, -1], [1.5, 1], [0, 0.5], [NaN, 1], [Infinity, 1], [2 ** 53, 1]]) {
      await rejectsWith(disk.read(offset, length), 'ERR_OUT_OF_RANGE', RangeError)
      throwsWith(() => disk.read(offset, length, () => assert.fail('called')), 'ERR_OUT_OF_RANGE', RangeError)
      throwsWith(() => disk.readSync(offset, length), 'ERR_OUT_OF_RANGE', RangeError)
    }
    await rejectsWith(disk.write(Buffer.alloc(1), -1), 'ERR_OUT_OF_RANGE', RangeError)
    throwsWith(() => disk.writeSync(Buffer.alloc(1), -512), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(disk.read(0, 2 ** 52), 'ERR_OUT_OF_RANGE', RangeError) // larger than a Buffer can be
  })

  test('the native layer checks its arguments too', async () => {
    // Reach under index.js: a NativeImage from the native open(), beside the suite's
    // read-write disk (so unlocked: a second handle is the point), read through lib/io.js.
    const image = await native.open(disk.path, { readOnly: true, lock: false })
    const io = nativeIo(image)
    const buffer = Buffer.alloc(8)
    throwsWith(() => io.read(buffer, 4, 8, 0), 'ERR_OUT_OF_RANGE', RangeError)
    throwsWith(() => io.read(buffer, 9, 0, 0), 'ERR_OUT_OF_RANGE', RangeError)
    throwsWith(() => native.handleReadSync(image.handle, buffer, 0, 4, -1), 'ERR_OUT_OF_RANGE', RangeError)
    throwsWith(() => native.handleWriteSync(image.handle, buffer, 0, 1.5, 0), 'ERR_OUT_OF_RANGE', RangeError)
    assert.throws(() => io.read('nope', 0, 1, 0))
    assert.equal(await io.read(buffer, 2, 4, 1000), 4)
    assert.deepEqual(buffer.subarray(2, 6), model.subarray(1000, 1004))
    await image.close()
    assert.equal(image.isOpen, false)
    await rejectsWith(io.read(buffer, 0, 1, 0), 'ERR_VHD_CLOSED')
    await rejectsWith(image.close(), 'ERR_VHD_CLOSED')
  })

  test('parallel reads and writes (Promise.all)', async () => {
    const chunks = Array.from({ length: 32 }, (_, i) => ({ data: pattern(64 * KiB + i, 100 + i), offset: i * 200 * KiB + i * 7 }))
    await Promise.all(chunks.map(({ data, offset }) => put(data, offset)))
    await Promise.all(chunks.map(({ data, offset }) => check(offset, data.length)))
    // Reads and writes mixed: reads of untouched areas must not see the writes.
    await Promise.all(
      chunks.flatMap(({ data, offset }, i) => [
        put(pattern(data.length, 500 + i), offset),
        check(7 * MiB + i * 1000, 1000),
      ]),
    )
    await check(0, disk.size)
  })
})

describe('flush, close and use after close', () => {
  test('data persists across close and reopen (both types)', async () => {
    for (const disk of [await createDynamic(), await createFixed()]) {
      const data = pattern(300 * KiB, 11)
      await disk.write(data, MiB + 5)
      const [error] = await viaCallback((cb) => disk.close(cb))
      assert.ifError(error)
      const reopened = await VHD.open(disk.path)
      assert.deepEqual((await reopened.read(MiB + 5, data.length)).buffer, data)
      assert.deepEqual((await reopened.read(0, 100)).buffer, Buffer.alloc(100))
      await reopened.close()
    }
  })

  test('close waits for operations already started', async () => {
    const disk = await createDynamic()
    const data = pattern(MiB, 12)
    const writing = disk.write(data, 3 * MiB)
    const closing = disk.close()
    await rejectsWith(disk.read(0, 1), 'ERR_VHD_CLOSED')
    assert.equal((await writing).bytesWritten, MiB)
    await closing
    const reopened = await VHD.open(disk.path, { readOnly: true })
    assert.deepEqual((await reopened.read(3 * MiB, MiB)).buffer, data)
    await reopened.close()
  })

  test('every method after close but close: ERR_VHD_CLOSED (callback, promise and sync)', async () => {
    const disk = await createDynamic()
    await disk.close()
    assert.equal(disk.isOpen, false)
    for (const key of ['type', 'size', 'blockSize', 'geometrySize', 'footer', 'header', 'readOnly', 'readOnlyReason', 'footerSource', 'allocatedBlocks']) {
      assert.equal(disk[key], undefined, key)
    }
    await rejectsWith(disk.read(0, 1), 'ERR_VHD_CLOSED')
    await rejectsWith(disk.write(Buffer.alloc(1), 0), 'ERR_VHD_CLOSED')
    await rejectsWith(disk.flush(), 'ERR_VHD_CLOSED')
    throwsWith(() => disk.readSync(0, 1), 'ERR_VHD_CLOSED')
    throwsWith(() => disk.writeSync(Buffer.alloc(1), 0), 'ERR_VHD_CLOSED')
    for (const start of [(cb) => disk.read(0, 1, cb), (cb) => disk.write(Buffer.alloc(1), 0, cb), (cb) => disk.flush(cb)]) {
      const [error] = await viaCallback(start)
      assert.equal(error.code, 'ERR_VHD_CLOSED')
    }
    // But close, as FileHandle.close(): closing again resolves (lifecycle.test.js).
    await disk.close()
    assert.deepEqual(await viaCallback((cb) => disk.close(cb)), [null])
  })

  test('before open: ERR_VHD_CLOSED too', async () => {
    const disk = new VHD.Dynamic(tmp.file('never'))
    await assert.rejects(disk.read(0, 1), /not open/)
    await rejectsWith(disk.flush(), 'ERR_VHD_CLOSED')
    throwsWith(() => disk.writeSync(Buffer.alloc(1), 0), 'ERR_VHD_CLOSED')
  })

  test('writes on read-only images: ERR_VHD_READ_ONLY; flush is a no-op', async () => {
    const created = await createDynamic()
    await created.close()
    for (const disk of [new VHD.Dynamic(created.path, { readOnly: true }), await VHD.open(created.path, { readOnly: true })]) {
      if (!disk.isOpen) await disk.open()
      assert.equal(disk.readOnly, true)
      await rejectsWith(disk.write(Buffer.alloc(1), 0), 'ERR_VHD_READ_ONLY')
      throwsWith(() => disk.writeSync(Buffer.alloc(1), 0), 'ERR_VHD_READ_ONLY')
      const [error] = await viaCallback((cb) => disk.write(Buffer.alloc(1), 0, cb))
      assert.equal(error.code, 'ERR_VHD_READ_ONLY')
      await disk.flush()
      assert.equal(disk.allocatedBlocks, 0)
      await disk.close()
    }
  })
})

describe('readInto: reads straight into the caller\'s buffer', () => {
  test('promise, callback and sync forms; short past the end, the rest left as it was', async () => {
    const disk = await createDynamic({ blockSize: 512 * KiB })
    try {
      const data = pattern(3 * 512 * KiB + 77, 7)
      await disk.write(data, 512 * KiB - 33)
      const target = Buffer.alloc(data.length + 10, 0xee)

      const { bytesRead, buffer } = await disk.readInto(target, 5, data.length, 512 * KiB - 33)
      assert.equal(bytesRead, data.length)
      assert.equal(buffer, target, 'resolves with the same buffer')
      assert.deepEqual(target.subarray(5, 5 + data.length), data)
      assert.equal(target[4], 0xee, 'bytes before the range are untouched')
      assert.equal(target[5 + data.length], 0xee, 'bytes after the range are untouched')

      const view = new Uint16Array(8)
      const [error, n, same] = await viaCallback((cb) => disk.readInto(view, 0, 16, 512 * KiB - 33, cb))
      assert.equal(error, null)
      assert.equal(n, 16)
      assert.equal(same, view)
      assert.deepEqual(Buffer.from(view.buffer), data.subarray(0, 16))

      const end = Buffer.alloc(8, 0xee)
      assert.equal(disk.readIntoSync(end, 0, 8, BigInt(disk.size - 3)), 3)
      assert.deepEqual(end, Buffer.from([0, 0, 0, 0xee, 0xee, 0xee, 0xee, 0xee]))
      assert.equal(disk.readIntoSync(end, 0, 8, disk.size), 0)
      assert.equal((await disk.readInto(end, 8, 0, 0)).bytesRead, 0, 'zero-length')
    } finally {
      await disk.close()
    }
  })

  test('bad arguments: TypeError or RangeError, nothing read', async () => {
    const disk = await createFixed()
    try {
      const buffer = Buffer.alloc(16)
      await rejectsWith(disk.readInto('text', 0, 1, 0), 'ERR_INVALID_ARG_TYPE', TypeError)
      await rejectsWith(disk.readInto(buffer, 17, 0, 0), 'ERR_OUT_OF_RANGE', RangeError)
      await rejectsWith(disk.readInto(buffer, 8, 9, 0), 'ERR_OUT_OF_RANGE', RangeError)
      await rejectsWith(disk.readInto(buffer, 0, 1, -1), 'ERR_OUT_OF_RANGE', RangeError)
      throwsWith(() => disk.readInto(buffer, 0.5, 1, 0, () => {}), 'ERR_OUT_OF_RANGE', RangeError)
      throwsWith(() => disk.readIntoSync(buffer, 0, 1, 'x'), 'ERR_INVALID_ARG_TYPE', TypeError)
    } finally {
      await disk.close()
    }
    await rejectsWith(disk.readInto(Buffer.alloc(1), 0, 1, 0), 'ERR_VHD_CLOSED')
    throwsWith(() => disk.readIntoSync(Buffer.alloc(1), 0, 1, 0), 'ERR_VHD_CLOSED')
  })
})
