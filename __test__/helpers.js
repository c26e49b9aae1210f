'use strict'

// Shared by the API, differencing and oracle tests: temporary folders, deterministic data,
// byte-level edits of image files (to damage or retype them), assertions about callbacks
// and error codes, and what libvhdi (pyvhdi) reads from a chain.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const VHD = require('..')

const KiB = 1024
const MiB = 1024 * KiB

/** A fresh folder under the OS temp dir; `cleanup()` removes it. */
function tempDir(prefix = 'vhd-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  let n = 0
  return {
    dir,
    /** A new path in the folder (the file does not exist yet). */
    file(name = 'disk') {
      n += 1
      return path.join(dir, `${n}-${name}.vhd`)
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** `length` bytes that depend on `seed` and never repeat within a block (xorshift32). */
function pattern(length, seed = 1) {
  const buffer = Buffer.alloc(length)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    buffer[i] = x & 0xff
  }
  return buffer
}

/** The VHD checksum: ones' complement of the byte sum, the checksum field counted as 0. */
function vhdChecksum(bytes, checksumOffset) {
  let sum = 0
  for (let i = 0; i < bytes.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue
    sum = (sum + bytes[i]) >>> 0
  }
  return ~sum >>> 0
}

/** Reads, edits and writes back `length` bytes of a file at `offset` (negative: from the end). */
function patchFile(file, offset, length, edit) {
  const size = fs.statSync(file).size
  const at = offset < 0 ? size + offset : offset
  const fd = fs.openSync(file, 'r+')
  try {
    const bytes = Buffer.alloc(length)
    fs.readSync(fd, bytes, 0, length, at)
    edit(bytes)
    fs.writeSync(fd, bytes, 0, length, at)
  } finally {
    fs.closeSync(fd)
  }
}

/** Edits the footer at the end of the file (and the copy at 0 when `copy`), fixing checksums. */
function patchFooters(file, edit, { copy = true } = {}) {
  const fix = (footer) => {
    edit(footer)
    footer.writeUInt32BE(vhdChecksum(footer, 64), 64)
  }
  patchFile(file, -512, 512, fix)
  if (copy) patchFile(file, 0, 512, fix)
}

/** The SHA-256 of a file's bytes, in hex. */
function sha256File(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

/** Calls `fn(callback)` and resolves to the callback's arguments; checks it is called once, later. */
function viaCallback(fn) {
  return new Promise((resolve, reject) => {
    let calls = 0
    let returned = false
    const result = fn((...args) => {
      calls += 1
      if (calls > 1) return reject(new Error('callback called twice'))
      if (!returned) return reject(new Error('callback called synchronously'))
      setImmediate(() => (calls === 1 ? resolve(args) : undefined))
    })
    returned = true
    if (result !== undefined) reject(new Error(`a callback method returned ${result}`))
  })
}

/** Checks that `promise` rejects with an instance of `Class` whose `code` is `code`. */
async function rejectsWith(promise, code, Class = Error) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof Class, `expected a ${Class.name}, got ${error && error.constructor.name}: ${error}`)
    assert.equal(error.code, code, error.message)
    return true
  })
}

/** Checks that `fn` throws an instance of `Class` whose `code` is `code`. */
function throwsWith(fn, code, Class = Error) {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof Class, `expected a ${Class.name}, got ${error && error.constructor.name}: ${error}`)
    assert.equal(error.code, code, error.message)
    return true
  })
}

/**
 * Creates an image at `file` (`options` as for `VHD.create`), writes `writes` ([offset, data]
 * pairs), closes it and returns the bytes it should read as (over a copy of `parentModel`,
 * what the parent of a differencing image holds).
 */
async function createWithModel(file, options, writes = [], parentModel = null) {
  const disk = await VHD.create(file, options)
  const model = Buffer.alloc(disk.size)
  if (parentModel) parentModel.copy(model)
  for (const [offset, data] of writes) {
    await disk.write(data, offset)
    data.copy(model, offset)
  }
  await disk.close()
  return model
}

/** The Python that can import pyvhdi: Debian's, because another python3 may come first on PATH. */
const PYTHON = process.env.VHD_TEST_PYTHON || (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3')

/**
 * Opens the chain (argv: the output file, then the images, the child first) with each image
 * the parent of the one before, and dumps what the child reads, 64 KiB at a time (libvhdi
 * 20210425 misreads single reads across several blocks with partly set bitmaps).
 */
const PYVHDI_DUMP = `
import sys, pyvhdi
files = []
for name in sys.argv[2:]:
    f = pyvhdi.file()
    f.open(name)
    files.append(f)
for child, parent in zip(files, files[1:]):
    child.set_parent(parent)
top = files[0]
size = top.get_media_size()
with open(sys.argv[1], "wb") as out:
    offset = 0
    while offset < size:
        n = min(65536, size - offset)
        data = top.read_buffer_at_offset(n, offset)
        assert len(data) == n, (offset, n, len(data))
        out.write(data)
        offset += n
for f in files:
    f.close()
`

/** What libvhdi reads from `chain` (the child first), through a file in `dir` removed after. */
function pyvhdiReadChain(chain, dir) {
  const out = path.join(dir, `pyvhdi-${crypto.randomUUID()}.raw`)
  const res = spawnSync(PYTHON, ['-c', PYVHDI_DUMP, out, ...chain], { encoding: 'utf8' })
  assert.equal(res.status, 0, `pyvhdi failed: ${res.error || ''}${res.stderr}`)
  const bytes = fs.readFileSync(out)
  fs.rmSync(out)
  return bytes
}

/**
 * Asynchronous reads and writes of a native image (from binding.js's `open`) through
 * lib/io.js, as lib/disk.js does them. `owner.inFlight` counts the requests that went to
 * the native threads and have not settled (reads done at once never count).
 */
function nativeIo(image) {
  const io = require('../lib/io.js')
  const owner = {
    inFlight: 0,
    // The owner protocol of lib/io.js (an image's Lifecycle implements it in lib/lifecycle.js).
    started() {
      this.inFlight++
    },
    settled() {
      this.inFlight--
    },
  }
  const handle = image.handle
  const count = (n) => n
  return {
    owner,
    read: (buffer, offset, length, position) => io.read(owner, handle, buffer, offset, length, position, count),
    write: (buffer, offset, length, position) => io.write(owner, handle, buffer, offset, length, position, count),
  }
}

/**
 * Drops `file`'s pages from the page cache (it must have been flushed), so that the next read
 * of them has to wait for the disk: reads that must not wait (RWF_NOWAIT) then go to the
 * I/O threads. GNU dd's `iflag=nocache` with no data asks the kernel to drop the whole file.
 */
function evictFromPageCache(file) {
  const res = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'], { encoding: 'utf8' })
  assert.equal(res.status, 0, `dd iflag=nocache ${file}: ${res.error || ''}${res.stderr}`)
}

/**
 * Makes `file` a 16 MiB dynamic image in 4 KiB blocks (4096 BAT entries, the BAT at 1536)
 * with block 0 written, then points BAT entries 1..`overlaps` at block 0 (an overlap each)
 * and every other entry after them, `outside` of them, far past the end of the file (a
 * block a repair drops, and a lost range each): more findings of a kind than `check` lists.
 */
async function imageWithManyFindings(file, { overlaps, outside }) {
  const disk = await VHD.create(file, { type: 'dynamic', size: 16 * MiB, blockSize: 4 * KiB })
  await disk.write(pattern(4 * KiB, 7), 0)
  await disk.close()
  patchFile(file, 1536, 4 * 4096, (table) => {
    const sector = table.readUInt32BE(0)
    for (let i = 1; i <= overlaps; i++) table.writeUInt32BE(sector, 4 * i)
    for (let k = 0; k < outside; k++) table.writeUInt32BE(0xf0000000, 4 * (overlaps + 1 + 2 * k))
  })
}

/**
 * A 4 MiB raw disk whose guest wrote what a 1 MiB dynamic VHD starts with (footer copy,
 * header, BAT, one 64 KiB block holding `pattern(4096, 5)`), then other data; no footer at
 * its end. Resolves to `{ file, bytes, innerDisk }`: its path, its bytes, and the 1 MiB disk
 * that reading its footer copy as a VHD gives.
 */
async function rawDiskStartingLikeAVhd(dir) {
  const inner = path.join(dir, `inner-${process.pid}-${Date.now()}.vhd`)
  const disk = await VHD.create(inner, { type: 'dynamic', size: MiB, blockSize: 64 * KiB })
  await disk.write(pattern(4096, 5), 0)
  await disk.close()
  const vhd = fs.readFileSync(inner)
  fs.rmSync(inner)
  const head = vhd.subarray(0, vhd.length - 512)
  const bytes = Buffer.concat([head, pattern(4 * MiB - head.length, 6)])
  const file = path.join(dir, `starts-like-a-vhd-${process.pid}-${Date.now()}.raw`)
  fs.writeFileSync(file, bytes)
  const innerDisk = Buffer.alloc(MiB)
  pattern(4096, 5).copy(innerDisk, 0)
  return { file, bytes, innerDisk }
}

/** Whether this process runs as root (mknod and losetup need it). */
const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0

/**
 * The `skip` option of a test that needs root: a visible reason locally, never under CI
 * (which runs as root: there the test runs, and fails if it cannot).
 */
const NEEDS_ROOT = IS_ROOT || process.env.CI ? false : 'needs root (mknod, losetup); skipping'

/** Makes a FIFO (named pipe) at `file`. */
function mkfifo(file) {
  const res = spawnSync('mkfifo', [file], { encoding: 'utf8' })
  assert.equal(res.status, 0, `mkfifo ${file}: ${res.error || ''}${res.stderr}`)
  return file
}

/** Makes a character device node for /dev/null (1, 3) at `file` (root only): never the real one. */
function mknodNull(file) {
  const res = spawnSync('mknod', [file, 'c', '1', '3'], { encoding: 'utf8' })
  assert.equal(res.status, 0, `mknod ${file}: ${res.error || ''}${res.stderr}`)
  return file
}

/**
 * A raw disk that is slow to convert yet cheap to make: a sparse file of `size` bytes with
 * 4 KiB of data at the start of every 2 MiB (conversion's unit). Conversion jumps over the
 * holes of a sparse file, so one with a single stretch of data converts at once; here every
 * chunk holds data and is read (and, in dynamic output, stored) whole.
 */
function dataInEveryChunk(file, size) {
  const fd = fs.openSync(file, 'w')
  try {
    fs.ftruncateSync(fd, size)
    const data = pattern(4 * KiB, 7)
    for (let at = 0; at < size; at += 2 * MiB) fs.writeSync(fd, data, 0, data.length, at)
  } finally {
    fs.closeSync(fd)
  }
}

module.exports = {
  dataInEveryChunk,
  evictFromPageCache,
  rawDiskStartingLikeAVhd,
  IS_ROOT,
  NEEDS_ROOT,
  mkfifo,
  mknodNull,
  KiB,
  MiB,
  tempDir,
  pattern,
  vhdChecksum,
  patchFile,
  patchFooters,
  sha256File,
  viaCallback,
  rejectsWith,
  throwsWith,
  createWithModel,
  imageWithManyFindings,
  PYTHON,
  pyvhdiReadChain,
  nativeIo,
}
