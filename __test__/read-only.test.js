'use strict'

// A read-only image is never written: for fixed, dynamic and differencing images (and their
// parents), opened with `readOnly: true`, as a `VHD.Image` with flags 'r', with
// `ignoreChecksums` on a damaged image, and from the footer copy when the end footer is
// damaged, the bytes, size, modification and change times of every file stay as they were
// after any sequence of calls: reads, failed writes (promise, callback and sync forms, of
// every size and place), flush, close, streams, the VHD.Image file readers, reopening.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const VHD = require('..')
const { KiB, MiB, tempDir, pattern, patchFile, sha256File } = require('./helpers.js')

/** Every file is dated this before a scenario, so that a write would show in its times. */
const OLD = new Date('2021-06-01T12:00:00Z')

let tmp
before(() => {
  tmp = tempDir('vhd-readonly-')
})
after(() => tmp.cleanup())

/** Creates an image with some data, closed; `options` as for VHD.create. */
async function make(name, options) {
  const file = path.join(tmp.dir, `${name}.vhd`)
  const disk = await VHD.create(file, options)
  await disk.write(pattern(3000, name.length), 5000)
  await disk.write(pattern(100 * KiB, name.length + 1), disk.size - 100 * KiB)
  await disk.close()
  return file
}

/**
 * The scenario's files: each kind of image, with its parents. Files are copied fresh for
 * every scenario (a scenario may damage them).
 */
let originals
before(async () => {
  const base = await make('base', { type: 'dynamic', size: 4 * MiB, blockSize: 512 * KiB })
  const fixedBase = await make('fixed-base', { type: 'fixed', size: 4 * MiB })
  const mid = await make('mid', { type: 'differencing', parent: base })
  const top = await make('top', { type: 'differencing', parent: mid })
  const overFixed = await make('over-fixed', { type: 'differencing', parent: fixedBase })
  originals = {
    fixed: [fixedBase],
    dynamic: [base],
    // A chain of three: top → mid → base.
    differencing: [top, mid, base],
    'differencing over a fixed image': [overFixed, fixedBase],
  }
})

/** Fresh copies of `files` (the first is the image, the rest its parents, in one new folder). */
function copies(files) {
  const dir = fs.mkdtempSync(path.join(tmp.dir, 'scenario-'))
  // The children's relative locators find their parents by name in the same folder.
  return files.map((file) => {
    const copy = path.join(dir, path.basename(file))
    fs.copyFileSync(file, copy)
    return copy
  })
}

/** Bytes, size and times of each file, once they are dated OLD. */
function freeze(files) {
  for (const file of files) fs.utimesSync(file, OLD, OLD)
  return snapshot(files)
}

function snapshot(files) {
  return files.map((file) => {
    const stats = fs.statSync(file)
    return { file, sha256: sha256File(file), size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs }
  })
}

function assertUnchanged(before, what) {
  const now = snapshot(before.map((s) => s.file))
  for (let i = 0; i < before.length; i++) {
    const name = `${what}: ${path.basename(before[i].file)}`
    assert.equal(now[i].size, before[i].size, `${name}: size`)
    assert.equal(now[i].sha256, before[i].sha256, `${name}: bytes`)
    assert.equal(now[i].mtimeMs, before[i].mtimeMs, `${name}: modification time`)
    assert.equal(now[i].ctimeMs, before[i].ctimeMs, `${name}: change time`)
  }
}

/** Waits for a stream to end or fail; resolves to its error (or null) and its data. */
function drain(stream) {
  return new Promise((resolve) => {
    const chunks = []
    stream.on('data', (chunk) => chunks.push(chunk))
    stream.on('error', (error) => resolve({ error, data: Buffer.concat(chunks) }))
    stream.on('close', () => resolve({ error: null, data: Buffer.concat(chunks) }))
    stream.on('finish', () => resolve({ error: null, data: null }))
  })
}

async function rejectsReadOnly(promise, what) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.code, 'ERR_VHD_READ_ONLY', `${what}: ${error.message}`)
    return true
  })
}

/**
 * Every call a user could make on a read-only `VHD.Fixed`/`Dynamic`/`Differencing`: reads of
 * every kind, writes that must fail (of every size and place, every form), flushes, streams.
 */
async function exerciseDisk(disk, expected) {
  assert.equal(disk.readOnly, true)
  assert.ok(disk.readOnlyReason)
  const size = disk.size
  assert.ok((await disk.read(0, size)).buffer.equals(expected), 'the whole disk reads as before')
  assert.ok(disk.readSync(5000, 3000).buffer.equals(expected.subarray(5000, 8000)))
  assert.equal((await disk.read(size - 10, 100)).bytesRead, 10)
  assert.equal(disk.readSync(size, 10).bytesRead, 0)
  await Promise.all(Array.from({ length: 50 }, (_, i) => disk.read(i * 60 * KiB, 70 * KiB)))
  for (const [data, offset] of [
    [Buffer.from('x'), 0],
    [pattern(4096, 9), 512 * KiB],
    [pattern(3 * MiB, 9), 100],
    [Buffer.alloc(512), 0], // zeros
    [Buffer.alloc(0), 0], // nothing
    [Buffer.from('x'), size - 1],
    [new Float64Array(4), 2 * MiB + 3],
  ]) {
    await rejectsReadOnly(disk.write(data, offset), `write ${data.length} at ${offset}`)
    assert.throws(() => disk.writeSync(data, offset), { code: 'ERR_VHD_READ_ONLY' })
    const error = await new Promise((resolve) => disk.write(data, offset, (e) => resolve(e)))
    assert.equal(error.code, 'ERR_VHD_READ_ONLY')
  }
  // Writes past the end fail too (as out of range or read-only), writing nothing.
  await assert.rejects(disk.write(Buffer.from('x'), size))
  // Many failed writes at once, mixed with reads.
  const mixed = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 ? disk.write(pattern(1000, i), i * 77 * KiB) : disk.read(i * 77 * KiB, 1000))))
  assert.ok(mixed.every((r, i) => (i % 2 ? r.status === 'rejected' && r.reason.code === 'ERR_VHD_READ_ONLY' : r.status === 'fulfilled')))
  await disk.flush()
  await new Promise((resolve, reject) => disk.flush((e) => (e ? reject(e) : resolve())))
  // Streams: a read stream reads all; a write stream fails on its first chunk.
  const read = await drain(disk.createReadStream({ highWaterMark: 300 * KiB }))
  assert.equal(read.error, null)
  assert.ok(read.data.equals(expected))
  const writeStream = disk.createWriteStream({ start: 1000 })
  writeStream.write(pattern(10 * KiB, 3))
  writeStream.end(pattern(10 * KiB, 4))
  const written = await drain(writeStream)
  assert.equal(written.error && written.error.code, 'ERR_VHD_READ_ONLY')
  const flushOnly = disk.createWriteStream({ start: 0 })
  flushOnly.end()
  assert.equal((await drain(flushOnly)).error, null, 'a write stream that writes nothing only flushes')
  assert.equal(disk.isOpen, true)
}

/** The same for a `VHD.Image`, with its file readers. */
async function exerciseImage(image, expected) {
  const size = Number(image.size)
  const buffer = Buffer.alloc(size)
  assert.equal((await image.read(buffer, 0, size, 0)).bytesRead, size)
  assert.ok(buffer.equals(expected))
  // The copy at 0 of dynamic and differencing images (the end one may be damaged), the end one of fixed images.
  const { footer } = await image.readFooter(image.header ? 0 : fs.fstatSync(image.fd).size - 512)
  assert.equal(footer.diskType, image.type)
  if (image.header) {
    const { header } = await image.readHeader(Number(image.footer.dataOffset))
    await image.readAllocationTable(Number(header.tableOffset), header.maxTableEntries * 4)
    void image.bat
    image.getSectorAddress(0)
  } else {
    await image.readHeader(Number(image.footer.dataOffset))
  }
  for (const [data, offset] of [[Buffer.from('x'), 0], [pattern(70 * KiB, 5), MiB - 10], [Buffer.alloc(0), 0]]) {
    await rejectsReadOnly(image.write(data, 0, data.length, offset), `Image write ${data.length} at ${offset}`)
    const error = await new Promise((resolve) => image.write(data, 0, data.length, offset, (e) => resolve(e)))
    assert.equal(error.code, 'ERR_VHD_READ_ONLY')
  }
  await image.flush()
  const read = await drain(image.createReadStream())
  assert.ok(read.data.equals(expected))
  const writeStream = image.createWriteStream()
  writeStream.end(Buffer.from('no'))
  assert.equal((await drain(writeStream)).error.code, 'ERR_VHD_READ_ONLY')
}

/** What the image reads as (taken on a copy, so that the files under test are not opened). */
async function contentsOf(file) {
  const disk = await VHD.open(file, { readOnly: true, lock: false, ignoreChecksums: true })
  const { buffer } = await disk.read(0, disk.size)
  await disk.close()
  return buffer
}

/** Opens the image at `file` in every read-only way, exercising each; `options` are added to each open. */
async function everyReadOnlyOpen(file, expected, options = {}) {
  // VHD.open and the class of the type, promise and callback forms.
  const a = await VHD.open(file, { readOnly: true, ...options })
  await exerciseDisk(a, expected)
  await a.close()
  const Class = a.constructor
  const b = new Class(file, { readOnly: true, ...options })
  await new Promise((resolve, reject) => b.open((e) => (e ? reject(e) : resolve())))
  await exerciseDisk(b, expected)
  await new Promise((resolve, reject) => b.close((e) => (e ? reject(e) : resolve())))
  // Reopened (the same object), and two at once.
  await b.open()
  const c = await VHD.open(file, { readOnly: true, ...options })
  await exerciseDisk(c, expected)
  await Promise.all([b.close(), c.close()])
  // Unlocked.
  const d = await VHD.open(file, { readOnly: true, lock: false, ...options })
  await exerciseDisk(d, expected)
  await d.close()
  // VHD.Image: 'r', 'rs', a read-write flag with readOnly, a given descriptor.
  for (const imageOptions of [{ flags: 'r' }, { flags: 'rs' }, { flags: 'r+', readOnly: true }, { flags: fs.constants.O_RDONLY }]) {
    const image = new VHD.Image({ path: file, ...imageOptions, ...options })
    await image.open()
    await exerciseImage(image, expected)
    await image.close()
  }
  const fd = fs.openSync(file, 'r')
  const image = new VHD.Image({ fd, path: file, flags: 'r', ...options })
  await image.open()
  await exerciseImage(image, expected)
  await image.close()
  // Streams that open the image themselves: a read stream; a write stream with 'r'.
  const read = await drain(new VHD.ReadStream({ path: file, ...options }))
  assert.ok(read.data.equals(expected))
  const write = new VHD.WriteStream({ path: file, flags: 'r', ...options })
  write.end(Buffer.from('no'))
  assert.equal((await drain(write)).error.code, 'ERR_VHD_READ_ONLY')
}

for (const kind of ['fixed', 'dynamic', 'differencing', 'differencing over a fixed image']) {
  describe(kind, () => {
    test('opened read-only in every way: no file changes', async () => {
      const files = copies(originals[kind])
      const expected = await contentsOf(files[0])
      const frozen = freeze(files)
      await everyReadOnlyOpen(files[0], expected)
      assertUnchanged(frozen, 'read-only opens')
    })

    if (kind.startsWith('differencing')) {
      test('the parents of a child written read-write: no parent changes', async () => {
        const files = copies(originals[kind])
        const parents = freeze(files.slice(1))
        const child = await VHD.open(files[0])
        await child.write(pattern(MiB, 77), 100_000)
        await child.write(Buffer.from('partial sector'), 3 * MiB + 7)
        await child.flush()
        await child.close()
        // And the parents opened read-only themselves meanwhile.
        for (const parent of files.slice(1)) {
          const disk = await VHD.open(parent, { readOnly: true })
          await exerciseDisk(disk, await contentsOf(parent))
          await disk.close()
        }
        assertUnchanged(parents, 'parents')
      })
    }

    test('damaged, opened with ignoreChecksums (read-write asked): read-only, no file changes', async () => {
      const files = copies(originals[kind])
      if (kind === 'fixed') {
        patchFile(files[0], -512 + 200, 1, (b) => (b[0] ^= 0xff)) // the footer's checksum no longer matches
      } else {
        patchFile(files[0], 512 + 800, 1, (b) => (b[0] ^= 0x55)) // the dynamic header's
      }
      const expected = await contentsOf(files[0])
      const frozen = freeze(files)
      await assert.rejects(VHD.open(files[0]), { code: 'ERR_VHD_CHECKSUM' })
      // Asked read-write: opened, but read-only.
      const disk = await VHD.open(files[0], { ignoreChecksums: true })
      assert.match(disk.readOnlyReason, /checksum/)
      await exerciseDisk(disk, expected)
      await disk.close()
      const image = new VHD.Image({ path: files[0], flags: 'r+', ignoreChecksums: true })
      await image.open()
      await exerciseImage(image, expected)
      await image.close()
      await everyReadOnlyOpen(files[0], expected, { ignoreChecksums: true })
      assertUnchanged(frozen, 'ignoreChecksums')
    })

    if (kind !== 'fixed') {
      test('the end footer damaged: opened from the footer copy (read-write asked), read-only, no file changes', async () => {
        const files = copies(originals[kind])
        patchFile(files[0], -512, 8, (b) => b.write('garbage!'))
        const expected = await contentsOf(files[0])
        const frozen = freeze(files)
        const disk = await VHD.open(files[0])
        assert.equal(disk.footerSource, 'copy')
        assert.match(disk.readOnlyReason, /damaged/)
        await exerciseDisk(disk, expected)
        await disk.close()
        const image = new VHD.Image({ path: files[0], flags: 'r+' })
        await image.open()
        await exerciseImage(image, expected)
        await image.close()
        await everyReadOnlyOpen(files[0], expected)
        // The end footer is still the damaged one: nothing repaired it.
        assertUnchanged(frozen, 'footer copy')
      })

      test('the end footer cut off (a file truncated before it): opened from the copy, no file changes', async () => {
        const files = copies(originals[kind])
        fs.truncateSync(files[0], fs.statSync(files[0]).size - 512)
        const expected = await contentsOf(files[0])
        const frozen = freeze(files)
        const disk = await VHD.open(files[0])
        assert.equal(disk.footerSource, 'copy')
        await exerciseDisk(disk, expected)
        await disk.close()
        assertUnchanged(frozen, 'truncated')
      })
    }
  })
}
