'use strict'

// `disk.toFileDisk()` and `partition.toFileDisk()`: the disk or partition as an instance of
// the `file-disk` module's `Disk` class, the interface balena's `partitioninfo`,
// `balena-image-fs` and `ext2fs` read and write disks through. `file-disk` is an optional peer
// dependency: it is loaded on the first call, and without it that call throws
// ERR_VHD_MISSING_PEER, saying to install it.
//
// The subclass gives file-disk what it asks of one (`_getCapacity`, `_read`, `_write`,
// `_flush`); file-disk itself keeps what it keeps of every disk (recorded writes,
// discards). Writes go to the image through its own I/O, and `flush` is the image's own
// (durable, metadata included: docs/reliability.md). `discard` is file-disk's: it records the
// range as zeros in memory and changes nothing in the image (as file-disk's `FileDisk` leaves
// its file alone; a differencing image's discard would show the parent's bytes, not zeros).
//
// On a read-only image it is a read-only file-disk that records writes (file-disk's
// `readOnly` and `recordWrites`): writes are kept in memory and read back, the image is never
// written. ext2fs writes while it mounts (the superblock's mount count and time), so this is
// what lets it mount a read-only image.

const { withCode } = require('./args.js')
const { kReadInto, kWriteFrom } = require('./protocol.js')
const { kSizeNow } = require('./disk.js')

/** The `Disk` subclass, made once `file-disk` is loaded (its base class comes from there). */
let VhdFileDisk = null

/** The error of a missing peer dependency (a stable code; the message says what to do). */
function missingPeer(module, method, cause) {
  const error = withCode(
    new Error(`${method} needs the ${module} package, an optional peer dependency of vhd: install it with \`npm install ${module}\``),
    'ERR_VHD_MISSING_PEER',
  )
  error.cause = cause
  return error
}

/**
 * The subclass of file-disk's `Disk` over a disk or partition view, made on the first call.
 * @param {string} method how the caller called it, for the error
 */
function fileDiskClass(method) {
  if (VhdFileDisk !== null) return VhdFileDisk
  let fileDisk
  try {
    fileDisk = require('file-disk')
  } catch (error) {
    // Only the module itself missing is ours to explain; an error inside it is its own.
    if (error && error.code === 'MODULE_NOT_FOUND' && /['"]file-disk['"]/.test(String(error.message))) {
      throw missingPeer('file-disk', method, error)
    }
    throw error
  }
  const kTarget = Symbol('target')
  VhdFileDisk = class VhdFileDisk extends fileDisk.Disk {
    /**
     * @param {object} target an open disk or partition view
     * @param {boolean} readOnly whether to keep writes in memory instead
     */
    constructor(target, readOnly) {
      super(readOnly, readOnly, false, true)
      this[kTarget] = target
    }

    async _getCapacity() {
      return this[kTarget][kSizeNow]()
    }

    async _read(buffer, bufferOffset, length, fileOffset) {
      const bytesRead = await this[kTarget][kReadInto](buffer, bufferOffset, length, fileOffset)
      // file-disk counts what it asked for as read: past the end of the disk, zeros.
      if (bytesRead < length) buffer.fill(0, bufferOffset + bytesRead, bufferOffset + length)
      return { bytesRead, buffer }
    }

    async _write(buffer, bufferOffset, length, fileOffset) {
      const bytesWritten = await this[kTarget][kWriteFrom](buffer, bufferOffset, length, fileOffset)
      return { bytesWritten, buffer }
    }

    async _flush() {
      await this[kTarget].flush()
    }
  }
  return VhdFileDisk
}

/**
 * `target` (an open disk or partition view) as a file-disk `Disk`; read-only, recording
 * writes in memory, when the image is read-only.
 * @param {object} target
 * @param {string} method `disk.toFileDisk()` or `partition.toFileDisk()`, for errors
 */
function toFileDisk(target, method) {
  const Class = fileDiskClass(method)
  target[kSizeNow]() // ERR_VHD_CLOSED unless open: read-only or not is known only then
  return new Class(target, target.readOnly === true)
}

module.exports = { toFileDisk }
