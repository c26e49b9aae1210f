'use strict'

// Shared by the API and oracle tests: temporary folders, deterministic data, and byte-level
// edits of image files (to damage or retype them).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

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

module.exports = { KiB, MiB, tempDir, pattern, vhdChecksum, patchFile, patchFooters }
