'use strict'

// Differencing images through the JavaScript API: creation over fixed, dynamic and
// differencing parents, reads and writes through the chain, the `parent` and `chain`
// properties, explicit parents (a raw base included), the parent checks and their error
// codes, and libvhdi (pyvhdi) as an oracle for chains written here. Without pyvhdi the
// oracle tests are skipped, except under CI (CI set), where that is a failure.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const VHD = require('..')
const native = require('../binding.js')
const { KiB, MiB, tempDir, pattern, sha256File, viaCallback, rejectsWith, throwsWith, PYTHON, pyvhdiReadChain } = require('./helpers.js')

/** Platform codes of the locators a new child gets. */
const LOCATOR = { W2KU: 0x57326b75, W2RU: 0x57327275, MACX: 0x4d616358 }

/**
 * Parents are given this modification time before children are made over them, so that the
 * time stamp a child records differs from the parent's creation time (which the core also
 * accepts) and from any later touch.
 */
const PARENT_MTIME = new Date('2020-02-02T02:02:02Z')

let tmp
before(() => {
  tmp = tempDir('vhd-diff-')
})
after(() => tmp.cleanup())

/**
 * Creates an image (`options` as for `VHD.create`), writes `writes` ([offset, data] pairs),
 * closes it and dates it PARENT_MTIME. For a differencing image, `parentModel` is what its
 * parent holds. Returns its path, unique id and the bytes it should read as.
 */
async function makeImage(name, options, writes = [], parentModel = null) {
  const file = tmp.file(name)
  const disk = await VHD.create(file, options)
  const model = Buffer.alloc(disk.size)
  if (parentModel) parentModel.copy(model, 0, 0, Math.min(parentModel.length, model.length))
  for (const [offset, data] of writes) {
    await disk.write(data, offset)
    data.copy(model, offset)
  }
  const uuid = disk.footer.uuid
  await disk.close()
  fs.utimesSync(file, PARENT_MTIME, PARENT_MTIME)
  return { path: file, uuid, model }
}

/** A child of `parent` (a makeImage result), with `writes` applied. */
function makeChild(name, parent, writes = [], options = {}) {
  return makeImage(name, { type: 'differencing', parent: parent.path, ...options }, writes, parent.model)
}

/** Equal bytes; on a difference, the first differing offset instead of two huge dumps. */
function assertBytes(actual, expected, what) {
  assert.equal(actual.length, expected.length, `${what}: length`)
  if (actual.equals(expected)) return
  let i = 0
  while (actual[i] === expected[i]) i++
  assert.fail(`${what}: first difference at byte ${i}: ${actual[i]} instead of ${expected[i]}`)
}

async function readAll(disk) {
  const { bytesRead, buffer } = await disk.read(0, disk.size)
  assert.equal(bytesRead, disk.size)
  return buffer
}

/** A dynamic base of 6 MiB in 512 KiB blocks, with data in blocks 0–2 and 5, dated PARENT_MTIME. */
function makeBase(name = 'base', options = {}) {
  const size = options.size ?? 6 * MiB
  const writes = [
    [0, pattern(MiB + 1000, 1)],
    [3 * MiB - 1000, pattern(300 * KiB, 2)],
    [size - 4096, pattern(4096, 3)],
  ]
  return makeImage(name, { type: 'dynamic', size, blockSize: 512 * KiB, ...options }, writes)
}

describe('create and use', () => {
  for (const baseType of ['dynamic', 'fixed']) {
    test(`a child over a ${baseType} image: metadata, reads through, writes that hide the parent, the parent unchanged`, async () => {
      const base = await makeBase(`${baseType}-base`, { type: baseType })
      const baseHash = sha256File(base.path)
      const file = tmp.file('child')
      const child = await VHD.create(file, { type: 'differencing', parent: base.path })
      assert.ok(child instanceof VHD.Differencing)
      assert.ok(child instanceof VHD.Disk)
      assert.equal(child.isOpen, true)
      assert.equal(child.type, VHD.TYPE.DIFF)
      assert.equal(child.size, 6 * MiB, "the parent's size by default")
      assert.equal(child.blockSize, baseType === 'dynamic' ? 512 * KiB : 2 * MiB)
      assert.equal(child.readOnly, false)
      assert.equal(child.allocatedBlocks, 0)
      assert.equal(child.footer.diskType, VHD.TYPE.DIFF)
      assert.equal(child.footer.dataOffset, 512n)

      const { header } = child
      assert.deepEqual(header.parentId, base.uuid)
      assert.equal(header.parentTimestamp, PARENT_MTIME.getTime(), "the parent file's modification time")
      assert.equal(header.parentName, path.basename(base.path))
      const codes = header.parentLocators.map((l) => l.platformCode)
      assert.deepEqual(codes, [LOCATOR.W2KU, LOCATOR.W2RU, LOCATOR.MACX, 0, 0, 0, 0, 0])
      for (const locator of header.parentLocators.slice(0, 3)) {
        assert.ok(locator.dataLength > 0 && locator.dataSpace >= locator.dataLength)
        assert.equal(locator.dataOffset % 512n, 0n)
      }
      // The locators' decoded paths: absolute, relative in Windows form, file URL.
      const real = fs.realpathSync(base.path)
      assert.deepEqual(header.parentLocators.map((l) => l.text), [
        real,
        `.\\${path.basename(base.path)}`,
        `file://${real.split('/').map(encodeURIComponent).join('/')}`,
        null, null, null, null, null,
      ])

      assert.deepEqual(child.parent, {
        path: base.path,
        type: baseType === 'dynamic' ? VHD.TYPE.DYNAMIC : VHD.TYPE.FIXED,
        size: 6 * MiB,
        uuid: base.uuid,
        raw: false,
        parent: null,
      })
      assert.deepEqual(child.chain, [file, base.path])

      // Everything comes from the parent until written.
      const model = Buffer.from(base.model)
      assertBytes(await readAll(child), model, 'the new child')

      const writes = [
        [512 * KiB, pattern(64 * KiB, 10)], // aligned, a whole block start
        [12_345, pattern(1000, 11)], // unaligned, over parent data
        [MiB - 1500, pattern(3000, 12)], // unaligned, across a block boundary (dynamic base)
        [100_001, Buffer.alloc(5000)], // zeros over parent data, unaligned
        [8192, Buffer.alloc(4096)], // zeros over parent data, aligned
        [4 * MiB + 3, pattern(777, 13)], // where the parent holds zeros
        [12_345 + 500, pattern(10, 14)], // inside an earlier write
      ]
      for (const [offset, data] of writes) {
        const { bytesWritten, buffer } = await child.write(data, offset)
        assert.equal(bytesWritten, data.length)
        assert.equal(buffer, data)
        data.copy(model, offset)
      }
      assert.ok(child.allocatedBlocks > 0)
      for (const [offset, data] of writes) {
        const start = Math.max(0, offset - 700)
        const { buffer } = await child.read(start, data.length + 1400)
        assertBytes(buffer, model.subarray(start, start + data.length + 1400), `around the write at ${offset}`)
      }
      assertBytes(child.readSync(100_000, 5002).buffer, model.subarray(100_000, 105_002), 'readSync')
      assertBytes(await readAll(child), model, 'the child after writes')
      await child.close()

      const reopened = await VHD.open(file)
      assert.ok(reopened instanceof VHD.Differencing)
      assertBytes(await readAll(reopened), model, 'the child reopened')
      await reopened.close()

      // The parent reads as before, and its file was never written.
      const parent = await VHD.open(base.path, { readOnly: true })
      assertBytes(await readAll(parent), base.model, 'the parent')
      await parent.close()
      assert.equal(sha256File(base.path), baseHash)
    })
  }

  test('promise forms on VHD.Differencing: open, read, write, flush, close', async () => {
    const base = await makeBase()
    const made = await makeChild('child', base)
    const disk = new VHD.Differencing(made.path)
    assert.equal(disk.parent, undefined, 'undefined before open')
    assert.equal(disk.chain, undefined)
    assert.equal(await disk.open(), disk, 'open() resolves to the disk')
    assert.equal(disk.type, VHD.TYPE.DIFF)
    const data = pattern(2000, 20)
    assert.equal((await disk.write(data, 777)).bytesWritten, 2000)
    assert.equal(await disk.flush(), undefined)
    const { bytesRead, buffer } = await disk.read(0, 4096)
    assert.equal(bytesRead, 4096)
    const expected = Buffer.from(base.model.subarray(0, 4096))
    data.copy(expected, 777)
    assertBytes(buffer, expected, 'read')
    assert.equal(await disk.close(), undefined)
    assert.equal(disk.isOpen, false)
    assert.equal(disk.parent, undefined, 'undefined after close')
    assert.equal(disk.chain, undefined)
  })

  test('callback forms on VHD.Differencing: create, open, read, write, flush, close, VHD.open', async () => {
    const base = await makeBase()
    const baseHash = sha256File(base.path)
    const file = tmp.file('child-cb')
    const [cerror, created] = await viaCallback((cb) => VHD.create(file, { type: 'differencing', parent: base.path }, cb))
    assert.ifError(cerror)
    assert.ok(created instanceof VHD.Differencing)
    const [closeError] = await viaCallback((cb) => created.close(cb))
    assert.ifError(closeError)

    const disk = new VHD.Differencing(file)
    const [oerror] = await viaCallback((cb) => disk.open(cb))
    assert.ifError(oerror)
    const data = pattern(5000, 21)
    const [werror, bytesWritten, wbuffer] = await viaCallback((cb) => disk.write(data, MiB - 100, cb))
    assert.ifError(werror)
    assert.equal(bytesWritten, 5000)
    assert.equal(wbuffer, data)
    const [ferror] = await viaCallback((cb) => disk.flush(cb))
    assert.ifError(ferror)
    const [rerror, bytesRead, buffer] = await viaCallback((cb) => disk.read(MiB - 200, 5200, cb))
    assert.ifError(rerror)
    assert.equal(bytesRead, 5200)
    const expected = Buffer.from(base.model.subarray(MiB - 200, MiB + 5000))
    data.copy(expected, 100)
    assertBytes(buffer, expected, 'read')
    const [error] = await viaCallback((cb) => disk.close(cb))
    assert.ifError(error)

    const [error1, opened] = await viaCallback((cb) => VHD.open(file, cb))
    assert.ifError(error1)
    assert.ok(opened instanceof VHD.Differencing)
    assert.deepEqual(opened.chain, [file, base.path])
    // Closed first: a read-write open holds the only lock on the file.
    await opened.close()
    const [error2, readOnly] = await viaCallback((cb) => VHD.open(file, { readOnly: true }, cb))
    assert.ifError(error2)
    assert.equal(readOnly.readOnly, true)
    await readOnly.close()
    assert.equal(sha256File(base.path), baseHash)
  })

  test('a parent without a type makes a differencing image (as vhd create --parent); a parent with another type is refused', async () => {
    const base = await makeBase()
    const child = await VHD.create(tmp.file(), { parent: base.path })
    try {
      assert.equal(child.type, VHD.TYPE.DIFF)
      assert.equal(child.parent.path, base.path)
    } finally {
      await child.close()
    }
    await assert.rejects(VHD.create(tmp.file(), { type: 'dynamic', parent: base.path, size: MiB }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /is only for differencing images, not dynamic ones/,
    })
  })

  test('block size: a dynamic parent\'s is kept; over a fixed parent, blockSize is used and checked', async () => {
    const dynamic = await makeBase()
    const overDynamic = await VHD.create(tmp.file(), { type: 'differencing', parent: dynamic.path, blockSize: MiB })
    assert.equal(overDynamic.blockSize, 512 * KiB)
    await overDynamic.close()
    const fixed = await makeImage('fixed', { type: 'fixed', size: 4 * MiB })
    const overFixed = await VHD.create(tmp.file(), { type: VHD.TYPE.DIFF, parent: fixed.path, blockSize: MiB })
    assert.equal(overFixed.blockSize, MiB)
    assert.equal(overFixed.header.maxTableEntries, 4)
    await overFixed.close()
    await rejectsWith(
      VHD.create(tmp.file(), { type: 'differencing', parent: fixed.path, blockSize: 3000 }),
      'ERR_VHD_INVALID_ARGUMENT',
      RangeError,
    )
  })

  test('a depth-3 chain opened with VHD.open: parent, chain, and the data of every level', async () => {
    const base = await makeBase()
    const mid = await makeChild('mid', base, [
      [0, pattern(4096, 30)],
      [MiB + 500, pattern(600 * KiB, 31)],
      [3 * MiB, Buffer.alloc(100_000)],
    ])
    const top = await makeChild('top', mid, [
      [2048, pattern(10_000, 32)],
      [MiB + 200_000, Buffer.alloc(1234)],
      [5 * MiB, pattern(512 * KiB, 33)],
    ])
    const hashes = [sha256File(base.path), sha256File(mid.path)]

    const disk = await VHD.open(top.path)
    assert.ok(disk instanceof VHD.Differencing)
    assert.deepEqual(disk.chain, [top.path, mid.path, base.path])
    assert.deepEqual(disk.header.parentId, mid.uuid)
    assert.deepEqual(disk.parent, {
      path: mid.path,
      type: VHD.TYPE.DIFF,
      size: 6 * MiB,
      uuid: mid.uuid,
      raw: false,
      parent: { path: base.path, type: VHD.TYPE.DYNAMIC, size: 6 * MiB, uuid: base.uuid, raw: false, parent: null },
    })
    // A fresh copy on every access.
    disk.parent.parent.path = 'changed'
    disk.chain.push('changed')
    assert.equal(disk.parent.parent.path, base.path)
    assert.equal(disk.chain.length, 3)

    assertBytes(await readAll(disk), top.model, 'the top of the chain')
    const more = pattern(70_000, 34)
    await disk.write(more, 3 * MiB - 35_000)
    more.copy(top.model, 3 * MiB - 35_000)
    assertBytes(await readAll(disk), top.model, 'the top after another write')
    await disk.close()

    const middle = await VHD.open(mid.path, { readOnly: true })
    assert.deepEqual(middle.chain, [mid.path, base.path])
    assertBytes(await readAll(middle), mid.model, 'the middle of the chain')
    await middle.close()
    assert.deepEqual([sha256File(base.path), sha256File(mid.path)], hashes, 'the parents were never written')
  })

  test("a child larger than its parent: what lies past the parent's end reads as zeros", async () => {
    const base = await makeImage('small', { type: 'dynamic', size: 2 * MiB }, [[2 * MiB - 10 * KiB, pattern(10 * KiB, 40)]])
    const child = await VHD.create(tmp.file('large'), { type: 'differencing', parent: base.path, size: 5 * MiB })
    assert.equal(child.size, 5 * MiB)
    assert.equal(child.parent.size, 2 * MiB)
    const model = Buffer.alloc(5 * MiB)
    base.model.copy(model)
    const across = await child.read(2 * MiB - 1000, 3000)
    assertBytes(across.buffer, model.subarray(2 * MiB - 1000, 2 * MiB + 2000), 'across the parent end')
    assert.ok(across.buffer.subarray(0, 1000).some((b) => b !== 0))
    for (const [offset, data] of [
      [2 * MiB - 700, pattern(1500, 41)], // unaligned, across the parent's end
      [4 * MiB + 1, pattern(100, 42)],
      [5 * MiB - 512, pattern(512, 43)], // the last sector
    ]) {
      await child.write(data, offset)
      data.copy(model, offset)
    }
    assertBytes(await readAll(child), model, 'the larger child')
    await child.close()
    // Size 0 means the parent's size too.
    const same = await VHD.create(tmp.file(), { type: 'differencing', parent: base.path, size: 0 })
    assert.equal(same.size, 2 * MiB)
    await same.close()
  })

  test('readOnly: a read-only child refuses writes', async () => {
    const base = await makeBase()
    const child = await makeChild('child', base, [[0, pattern(512, 50)]])
    const hash = sha256File(child.path)
    for (const disk of [new VHD.Differencing(child.path, { readOnly: true }), await VHD.open(child.path, { readOnly: true })]) {
      if (!disk.isOpen) await disk.open()
      assert.equal(disk.readOnly, true)
      assert.match(disk.readOnlyReason, /read-only/)
      await rejectsWith(disk.write(Buffer.alloc(1), 0), 'ERR_VHD_READ_ONLY')
      throwsWith(() => disk.writeSync(Buffer.alloc(1), 0), 'ERR_VHD_READ_ONLY')
      const [error] = await viaCallback((cb) => disk.write(Buffer.alloc(1), 0, cb))
      assert.equal(error.code, 'ERR_VHD_READ_ONLY')
      await disk.flush()
      assert.equal(disk.allocatedBlocks, 1)
      assertBytes(await readAll(disk), child.model, 'read-only child')
      await disk.close()
    }
    assert.equal(sha256File(child.path), hash)
  })
})

describe('explicit parents', () => {
  test('a raw disk file as the base: { path, raw: true }', async () => {
    const size = 3 * MiB
    const fixed = await makeImage('fixed', { type: 'fixed', size }, [[1000, pattern(MiB, 60)], [size - 512, pattern(512, 61)]])
    const child = await makeChild('child', fixed, [[4096, pattern(8192, 62)], [2 * MiB + 3, Buffer.alloc(700)]])
    const raw = path.join(tmp.dir, 'base.img')
    fs.writeFileSync(raw, fs.readFileSync(fixed.path).subarray(0, size))
    fs.rmSync(fixed.path) // only the raw file is left
    const rawHash = sha256File(raw)
    await rejectsWith(VHD.open(child.path), 'ERR_VHD_PARENT_NOT_FOUND')

    const expectedParent = { path: raw, type: null, size, uuid: null, raw: true, parent: null }
    for (const options of [
      { parent: { path: raw, raw: true } },
      { parents: [{ path: pathToFileURL(raw), raw: true }] },
    ]) {
      const disk = await VHD.open(child.path, options)
      assert.ok(disk instanceof VHD.Differencing)
      assert.deepEqual(disk.parent, expectedParent)
      assert.deepEqual(disk.chain, [child.path, raw])
      assertBytes(await readAll(disk), child.model, 'over the raw base')
      await disk.close()
    }
    const disk = new VHD.Differencing(child.path, { parent: { path: raw, raw: true } })
    await disk.open()
    const data = pattern(3000, 63)
    await disk.write(data, 2 * MiB - 1000)
    data.copy(child.model, 2 * MiB - 1000)
    assertBytes(await readAll(disk), child.model, 'written over the raw base')
    await disk.close()
    assert.equal(sha256File(raw), rawHash, 'the raw base was never written')
  })

  test('a moved parent, named by path or URL; a copied one needs ignoreParentTimestamp', async () => {
    const base = await makeBase()
    const child = await makeChild('child', base, [[MiB, pattern(4096, 70)]])
    fs.mkdirSync(path.join(tmp.dir, 'elsewhere'))
    const moved = path.join(tmp.dir, 'elsewhere', 'moved.vhd')
    fs.renameSync(base.path, moved) // keeps the modification time
    await rejectsWith(VHD.open(child.path), 'ERR_VHD_PARENT_NOT_FOUND')
    for (const options of [{ parent: moved }, { parents: [pathToFileURL(moved)] }, { parent: { path: moved } }]) {
      const disk = await VHD.open(child.path, options)
      assert.deepEqual(disk.chain, [child.path, moved])
      assert.equal(disk.parent.path, moved)
      assertBytes(await readAll(disk), child.model, 'over the moved parent')
      await disk.close()
    }
    const copied = path.join(tmp.dir, 'elsewhere', 'copied.vhd')
    fs.copyFileSync(moved, copied) // a new modification time
    await rejectsWith(VHD.open(child.path, { parent: copied }), 'ERR_VHD_PARENT_MODIFIED')
    const disk = await VHD.open(child.path, { parent: copied, ignoreParentTimestamp: true })
    assert.equal(disk.parent.path, copied)
    assertBytes(await readAll(disk), child.model, 'over the copied parent')
    await disk.close()
  })

  test('ignoreParentTimestamp: a parent touched after the child was made', async () => {
    const base = await makeBase()
    const child = await makeChild('child', base, [[5000, pattern(100, 80)]])
    const later = new Date('2021-03-03T03:03:03Z')
    fs.utimesSync(base.path, later, later)
    const hash = sha256File(base.path)
    await assert.rejects(VHD.open(child.path), (error) => {
      assert.equal(error.code, 'ERR_VHD_PARENT_MODIFIED')
      assert.ok(error.message.includes(base.path), error.message)
      return true
    })
    await rejectsWith(new VHD.Differencing(child.path).open(), 'ERR_VHD_PARENT_MODIFIED')
    const [error] = await viaCallback((cb) => new VHD.Differencing(child.path).open(cb))
    assert.equal(error.code, 'ERR_VHD_PARENT_MODIFIED')

    // One at a time: each opens the child read-write, which needs the only lock on it.
    for (const openDisk of [
      () => VHD.open(child.path, { ignoreParentTimestamp: true }),
      () => new VHD.Differencing(child.path, { ignoreParentTimestamp: true }).open(),
    ]) {
      const disk = await openDisk()
      assert.deepEqual(disk.chain, [child.path, base.path])
      assertBytes(await readAll(disk), child.model, 'with a touched parent')
      await disk.close()
    }
    assert.equal(sha256File(base.path), hash)
    assert.equal(fs.statSync(base.path).mtimeMs, later.getTime(), 'the parent was not written')
  })

  test('a missing parent: ERR_VHD_PARENT_NOT_FOUND, naming it', async () => {
    const base = await makeBase()
    const mid = await makeChild('mid', base)
    const top = await makeChild('top', mid)
    fs.rmSync(base.path)
    for (const file of [mid.path, top.path]) {
      await assert.rejects(VHD.open(file), (error) => {
        assert.equal(error.code, 'ERR_VHD_PARENT_NOT_FOUND')
        assert.ok(error.message.includes(path.basename(base.path)), error.message)
        return true
      })
    }
    const [error] = await viaCallback((cb) => new VHD.Differencing(top.path).open(cb))
    assert.equal(error.code, 'ERR_VHD_PARENT_NOT_FOUND')
    await rejectsWith(VHD.open(top.path, { parent: path.join(tmp.dir, 'nothing.vhd') }), 'ERR_VHD_PARENT_NOT_FOUND')
  })

  test('another image where the parent was: ERR_VHD_PARENT_MISMATCH', async () => {
    const base = await makeBase()
    const child = await makeChild('child', base)
    const other = await makeBase('other')
    await rejectsWith(VHD.open(child.path, { parent: other.path }), 'ERR_VHD_PARENT_MISMATCH')
    await (await VHD.create(base.path, { type: 'dynamic', size: 6 * MiB, overwrite: true })).close()
    await assert.rejects(VHD.open(child.path), (error) => {
      assert.equal(error.code, 'ERR_VHD_PARENT_MISMATCH')
      assert.ok(error.message.includes(base.path), error.message)
      return true
    })
    await rejectsWith(new VHD.Differencing(child.path, { ignoreParentTimestamp: true }).open(), 'ERR_VHD_PARENT_MISMATCH')
  })

  test('explicit parents: one in the chain is a different disk unless the ids loop (ERR_VHD_PARENT_LOOP)', async () => {
    const base = await makeBase()
    const mid = await makeChild('mid', base)
    const top = await makeChild('top', mid)
    // An image of the chain named where it is not the parent is just another disk.
    await rejectsWith(VHD.open(top.path, { parent: top.path }), 'ERR_VHD_PARENT_MISMATCH')
    await rejectsWith(VHD.open(top.path, { parents: [mid.path, top.path] }), 'ERR_VHD_PARENT_MISMATCH')
    await rejectsWith(new VHD.Differencing(top.path, { parents: [mid.path, mid.path] }).open(), 'ERR_VHD_PARENT_MISMATCH')
    // Naming the real chain is fine.
    const disk = await VHD.open(top.path, { parents: [mid.path, base.path] })
    assert.deepEqual(disk.chain, [top.path, mid.path, base.path])
    await disk.close()
    // The middle image now records the top's unique id as its parent's (and no time stamp):
    // top over mid over top is a loop.
    const bytes = fs.readFileSync(mid.path)
    const header = VHD.Header.parse(bytes, 512)
    header.parentId = Buffer.from(top.uuid)
    header.parentTimestamp = Date.UTC(2000, 0, 1)
    header.write(bytes, 512)
    fs.writeFileSync(mid.path, bytes)
    const hashes = [base, mid, top].map((i) => sha256File(i.path))
    const loop = { parents: [mid.path, top.path], ignoreParentTimestamp: true }
    await rejectsWith(VHD.open(top.path, loop), 'ERR_VHD_PARENT_LOOP')
    await rejectsWith(new VHD.Differencing(top.path, loop).open(), 'ERR_VHD_PARENT_LOOP')
    assert.deepEqual([base, mid, top].map((i) => sha256File(i.path)), hashes)
  })

  test('a child naming files that are not its parent learns nothing of them', async () => {
    // Another VHD (the victim), and a file that is not a VHD, both outside the child's folder.
    const victim = await makeBase('victim')
    const secret = tmp.file('secret.txt')
    fs.writeFileSync(secret, Buffer.from('ircd:/usr/sbin:'.repeat(1000)))
    const folder = path.join(tmp.dir, 'uploads')
    fs.mkdirSync(folder, { recursive: true })
    const stranger = await makeBase('stranger')
    const child = await makeChild('naming', stranger)
    const file = path.join(folder, 'naming.vhd')
    fs.renameSync(child.path, file)
    const hex = (id) => Buffer.from(id).toString('hex')
    const idForms = (id) => {
      const h = hex(id)
      return [h, h.toUpperCase(), `${h.slice(0, 8)}-${h.slice(8, 12)}`, h.slice(8, 16), h.slice(16, 24)]
    }
    const expected = hex(VHD.Header.parse(fs.readFileSync(file), 512).parentId)
    for (const [target, code, words] of [
      [victim.path, 'ERR_VHD_PARENT_MISMATCH', 'a different disk'],
      [secret, 'ERR_VHD_PARENT_NOT_FOUND', 'not a VHD'],
    ]) {
      // A file the caller names is the caller's own: only a VHD is checked that way here.
      for (const options of target === secret ? [{}] : [{ parent: target }, {}]) {
        if (!options.parent) {
          // Named by the child instead: its parent moves where the target is.
          fs.rmSync(stranger.path, { force: true })
          fs.copyFileSync(target, stranger.path)
        }
        await assert.rejects(VHD.open(file, { readOnly: true, ...options }), (error) => {
          assert.equal(error.code, code, error.message)
          assert.ok(error.message.includes(words), error.message)
          for (const form of [...idForms(victim.uuid), ...idForms(Buffer.from(expected, 'hex'))]) {
            assert.ok(!error.message.includes(form), `${error.message} shows ${form}`)
          }
          for (const shown of ['ircd', 'sbin', 'usr/', String(fs.statSync(target).size)]) {
            assert.ok(!error.message.includes(shown), `${error.message} shows ${shown}`)
          }
          // No other properties: only the child's own path, the file the caller named.
          assert.deepEqual(Object.keys(error).filter((k) => k !== 'code'), ['path'], 'no other properties')
          assert.equal(error.path, file)
          return true
        })
      }
    }
  })
})

describe('errors', () => {
  test('the wrong class for the type: ERR_VHD_WRONG_TYPE', async () => {
    const base = await makeBase()
    const fixed = await makeImage('fixed', { type: 'fixed', size: MiB })
    const child = await makeChild('child', base)
    await rejectsWith(new VHD.Dynamic(child.path).open(), 'ERR_VHD_WRONG_TYPE')
    await rejectsWith(new VHD.Fixed(child.path).open(), 'ERR_VHD_WRONG_TYPE')
    await rejectsWith(new VHD.Differencing(base.path).open(), 'ERR_VHD_WRONG_TYPE')
    const [error] = await viaCallback((cb) => new VHD.Differencing(fixed.path).open(cb))
    assert.equal(error.code, 'ERR_VHD_WRONG_TYPE')
  })

  test('bad open options are TypeErrors: thrown with a callback, rejected without', async () => {
    const base = await makeBase()
    const child = await makeChild('child', base)
    const bad = [
      [{ parent: 42 }, 'ERR_INVALID_ARG_TYPE'],
      [{ parent: null }, 'ERR_INVALID_ARG_TYPE'],
      [{ parent: { raw: true } }, 'ERR_INVALID_ARG_TYPE'],
      [{ parent: { path: base.path, raw: 'yes' } }, 'ERR_INVALID_ARG_TYPE'],
      [{ parent: 'a\u0000b' }, 'ERR_INVALID_ARG_VALUE'],
      [{ parents: base.path }, 'ERR_INVALID_ARG_TYPE'],
      [{ parents: [null] }, 'ERR_INVALID_ARG_TYPE'],
      [{ parents: [[base.path]] }, 'ERR_INVALID_ARG_TYPE'],
      [{ parents: [{ path: 42 }] }, 'ERR_INVALID_ARG_TYPE'],
      [{ parent: base.path, parents: [base.path] }, 'ERR_INVALID_ARG_VALUE'],
      [{ ignoreParentTimestamp: 1 }, 'ERR_INVALID_ARG_TYPE'],
    ]
    for (const [options, code] of bad) {
      throwsWith(() => new VHD.Differencing(child.path, options), code, TypeError)
      await rejectsWith(VHD.open(child.path, options), code, TypeError)
      throwsWith(() => VHD.open(child.path, options, () => assert.fail('called')), code, TypeError)
    }
  })

  test('bad create options', async () => {
    const base = await makeBase()
    const file = tmp.file('never')
    await rejectsWith(VHD.create(file, { type: 'differencing' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.create(file, { type: 'differencing', parent: 42 }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.create(file, { type: 'differencing', parent: { path: base.path } }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.create(file, { type: 'dynamic', size: MiB, parent: base.path }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.create(file, { type: 'differencing', parent: base.path, size: -512 }), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(VHD.create(file, { type: 'differencing', parent: base.path, size: 1000 }), 'ERR_VHD_INVALID_ARGUMENT', RangeError)
    throwsWith(() => VHD.create(file, { type: 'differencing' }, () => assert.fail('called')), 'ERR_INVALID_ARG_TYPE', TypeError)
    // The native layer checks on its own too.
    throwsWith(() => native.create(file, { type: 'fixed', size: MiB, parent: base.path }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(native.create(file, { type: 'differencing' }), 'ERR_VHD_INVALID_ARGUMENT', RangeError)
    // A parent that is not there, or not an image: nothing is created.
    await rejectsWith(VHD.create(file, { type: 'differencing', parent: path.join(tmp.dir, 'nothing.vhd') }), 'ENOENT')
    const junk = path.join(tmp.dir, 'junk.bin')
    fs.writeFileSync(junk, Buffer.alloc(4096, 1))
    await rejectsWith(VHD.create(file, { type: 'differencing', parent: junk }), 'ERR_VHD_NOT_VHD')
    assert.equal(fs.existsSync(file), false)
    // An existing file is kept unless overwrite.
    const child = await makeChild('child', base)
    await rejectsWith(VHD.create(child.path, { type: 'differencing', parent: base.path }), 'ERR_VHD_EXISTS')
    const replaced = await VHD.create(child.path, { type: 'differencing', parent: base.path, overwrite: true })
    assert.notDeepEqual(replaced.footer.uuid, child.uuid)
    await replaced.close()
  })
})

// ---------------------------------------------------------------------------------------
// libvhdi as an oracle: a chain made and filled here, in whole 4 KiB units, reads the same
// through pyvhdi with the parents set explicitly.

const hasPyvhdi = spawnSync(PYTHON, ['-c', 'import pyvhdi'], { stdio: 'ignore' }).status === 0
const MISSING = `pyvhdi (libvhdi's Python binding; Debian/Ubuntu: apt-get install python3-libvhdi) is not importable by ${PYTHON}`
const skip = !hasPyvhdi && !process.env.CI ? `${MISSING}; skipping the libvhdi oracle tests` : false

function pyvhdiRead(chain) {
  assert.ok(hasPyvhdi, `${MISSING}, and CI requires the oracle tests`)
  return pyvhdiReadChain(chain, tmp.dir)
}

/** Writes in whole 4 KiB units: `count` runs of 1 to 40 units at 4 KiB-aligned offsets, some zeros. */
function unitWrites(size, seed, count) {
  const units = size / (4 * KiB)
  const writes = []
  for (let i = 0; i < count; i++) {
    const r = pattern(8, seed * 100 + i)
    const length = (1 + (r.readUInt16LE(0) % 40)) * 4 * KiB
    const offset = (r.readUInt32LE(2) % (units - length / (4 * KiB) + 1)) * 4 * KiB
    writes.push([offset, i % 4 === 3 ? Buffer.alloc(length) : pattern(length, seed * 1000 + i)])
  }
  return writes
}

describe('libvhdi (pyvhdi) reads chains written here', () => {
  for (const baseType of ['dynamic', 'fixed']) {
    test(`a depth-3 chain over a ${baseType} base reads the same through pyvhdi`, { skip }, async () => {
      const size = 6 * MiB
      const baseOptions = baseType === 'dynamic' ? { type: baseType, size, blockSize: 512 * KiB } : { type: baseType, size }
      const base = await makeImage(`oracle-${baseType}`, baseOptions, unitWrites(size, 1, 12))
      const mid = await makeChild('oracle-mid', base, unitWrites(size, 2, 12))
      const top = await makeChild('oracle-top', mid, unitWrites(size, 3, 12))
      const disk = await VHD.open(top.path, { readOnly: true })
      assertBytes(await readAll(disk), top.model, 'our read of the chain')
      await disk.close()
      assertBytes(pyvhdiRead([top.path, mid.path, base.path]), top.model, 'pyvhdi read of the chain')
      assertBytes(pyvhdiRead([mid.path, base.path]), mid.model, 'pyvhdi read of the middle')
    })
  }
})
