'use strict'

// `disk.toBlockDevice()` and `partition.toBlockDevice()`: the API of the `blockdevice` npm
// module (jhermsmeier's, v0.7.0, which the `mbr` and `gpt` modules' users read disks with),
// over a disk or a partition view, so that code written for it runs on a VHD unchanged:
// - `blockSize` (512) and `size` (bytes);
// - `readBlocks(fromLBA, toLBA[, buffer], callback(error, buffer, bytesRead))`: the blocks
//   [fromLBA, toLBA) (`toLBA` exclusive; as there, `fromLBA` defaults to 0, `toLBA` to
//   `fromLBA + 1`, and the two are swapped when `fromLBA > toLBA`); the buffer (given, or a new
//   one) is zeroed first, so that a read short at the end of the disk leaves zeros;
// - `writeBlocks(fromLBA, buffer, callback(error, bytesWritten))`: `buffer` a whole number of
//   blocks (an error otherwise, as there);
// - `partition({ firstLBA, lastLBA })`: blockdevice's `Partition`: `device`, `firstLBA`,
//   `lastLBA`, `blockSize`, `sectors` (= `lastLBA - firstLBA`: as there, `lastLBA` is the
//   block after the last one), `size`, and `readBlocks`/`writeBlocks` with block numbers
//   counted from `firstLBA`; a read of blocks not in [firstLBA, lastLBA] is an error, as
//   there, and so (unlike there, which checks only the first) is a write that does not fit.
// Every method also returns a promise when given no callback (`{ buffer, bytesRead }`,
// `{ bytesWritten, buffer }`), as the rest of this package does. Callbacks are called with
// the device (or partition) as `this`, as blockdevice does.

const { Buffer, constants: bufferConstants } = require('node:buffer')
const { toIndex, toBytes, toOptionsObject, invalidArgValue, outOfRange, call, pastTheEndError } = require('./args.js')
const { kReadInto, kWriteFrom } = require('./protocol.js')

/** The block size: VHD sectors, and what the `mbr` and `gpt` modules assume. */
const BLOCK_SIZE = 512

const kTarget = Symbol('target')

/**
 * `readBlocks`' arguments as blockdevice takes them: `(from, to, callback)` or `(from, to,
 * buffer, callback)`, with its defaults and its swap.
 */
function readBlocksArgs(fromLBA, toLBA, buffer, callback) {
  if (typeof buffer === 'function' && callback === undefined) return { fromLBA, toLBA, buffer: null, callback: buffer }
  return { fromLBA, toLBA, buffer: buffer ?? null, callback }
}

/**
 * The checked `[position, length, bytes]` of a read of blocks [from, to): blockdevice's
 * defaults (`from || 0`, `to || from + 1`) and swap, then our checks.
 */
function blockRange(fromLBA, toLBA, buffer) {
  let from = toIndex(fromLBA || 0, 'fromLBA')
  let to = toIndex(toLBA || from + 1, 'toLBA')
  if (from > to) [from, to] = [to, from]
  const length = (to - from) * BLOCK_SIZE
  if (length > bufferConstants.MAX_LENGTH) throw outOfRange('toLBA', `<= ${from + Math.floor(bufferConstants.MAX_LENGTH / BLOCK_SIZE)} (a read of at most buffer.constants.MAX_LENGTH bytes)`, to)
  let bytes
  if (buffer === null) bytes = Buffer.alloc(length)
  else {
    bytes = toBytes(buffer)
    if (bytes.length < length) throw outOfRange('buffer.length', `>= ${length} (${to - from} blocks of ${BLOCK_SIZE} bytes)`, bytes.length)
    bytes.fill(0)
  }
  return { from, to, position: from * BLOCK_SIZE, length, bytes }
}

/** The checked bytes of `writeBlocks`: a whole number of blocks. */
function blockBytes(buffer) {
  const bytes = toBytes(buffer)
  if (bytes.length % BLOCK_SIZE !== 0) {
    throw invalidArgValue('buffer', `must be a whole number of ${BLOCK_SIZE}-byte blocks long. Received a buffer of ${bytes.length} bytes`)
  }
  return bytes
}

/** The error of blocks [from, to) outside [first, last] (blockdevice's "out of bounds") of `device`'s image. */
function outOfBounds(device, from, to, first, last) {
  return pastTheEndError(device[kTarget].path, `Block address out of bounds: [${from},${to}] not in range [${first},${last}]`)
}

/**
 * A disk or a partition view as a `blockdevice` BlockDevice (see the top of this file).
 * Made by `toBlockDevice()`; it stays usable while the disk is open.
 */
class BlockDevice {
  /** @param {object} target a `VHD.Fixed`, `VHD.Dynamic`, `VHD.Differencing` or `VHD.Partition` */
  constructor(target) {
    this[kTarget] = target
    /** Bytes per block (512). */
    this.blockSize = BLOCK_SIZE
  }

  /** The size in bytes (`undefined` once the disk is closed). */
  get size() {
    const target = this[kTarget]
    return target.isOpen ? target.size : undefined
  }

  readBlocks(fromLBA, toLBA, buffer, callback) {
    const args = readBlocksArgs(fromLBA, toLBA, buffer, callback)
    return call(
      args.callback,
      () => blockRange(args.fromLBA, args.toLBA, args.buffer),
      ({ position, length, bytes }) => this[kTarget][kReadInto](bytes, 0, length, position).then((bytesRead) => ({ buffer: bytes, bytesRead })),
      ({ buffer, bytesRead }) => [buffer, bytesRead],
      this,
    )
  }

  writeBlocks(fromLBA, buffer, callback) {
    return call(
      callback,
      () => [toIndex(fromLBA, 'fromLBA'), blockBytes(buffer)],
      ([from, bytes]) => this[kTarget][kWriteFrom](bytes, 0, bytes.length, from * BLOCK_SIZE).then((bytesWritten) => ({ bytesWritten, buffer })),
      ({ bytesWritten }) => [bytesWritten],
      this,
    )
  }

  /** blockdevice's `Partition` of the blocks from `firstLBA` up to `lastLBA` (see the top of this file). */
  partition(options) {
    return new BlockDevicePartition(this, toOptionsObject(options))
  }
}

/** blockdevice's `Partition`: a range of a `BlockDevice`'s blocks. */
class BlockDevicePartition {
  /**
   * @param {BlockDevice} device
   * @param {{ firstLBA?: unknown, lastLBA?: unknown }} options
   */
  constructor(device, options) {
    const first = toIndex(options.firstLBA ?? 0, 'options.firstLBA')
    if (options.lastLBA === undefined) throw invalidArgValue('options.lastLBA', 'must be given (the block after the last one of the partition)')
    const last = toIndex(options.lastLBA, 'options.lastLBA')
    if (last < first) throw outOfRange('options.lastLBA', `>= ${first} (options.firstLBA)`, last)
    this.device = device
    this.firstLBA = first
    this.lastLBA = last
  }

  get blockSize() {
    return this.device.blockSize
  }

  /** Blocks in the partition: `lastLBA - firstLBA`. */
  get sectors() {
    return this.lastLBA - this.firstLBA
  }

  get size() {
    return this.sectors * this.blockSize
  }

  readBlocks(from, to, buffer, callback) {
    const args = readBlocksArgs(from, to, buffer, callback)
    return call(
      args.callback,
      () => {
        const range = blockRange(args.fromLBA, args.toLBA, args.buffer)
        return { ...range, from: range.from + this.firstLBA, to: range.to + this.firstLBA }
      },
      ({ from, to, length, bytes }) => {
        if (to > this.lastLBA) throw outOfBounds(this.device, from, to, this.firstLBA, this.lastLBA)
        return this.device.readBlocks(from, to, bytes).then(({ bytesRead }) => ({ buffer: bytes, bytesRead: Math.min(bytesRead, length) }))
      },
      ({ buffer, bytesRead }) => [buffer, bytesRead],
      this,
    )
  }

  writeBlocks(from, buffer, callback) {
    return call(
      callback,
      () => [toIndex(from, 'from') + this.firstLBA, blockBytes(buffer)],
      ([at, bytes]) => {
        const end = at + bytes.length / BLOCK_SIZE
        if (end > this.lastLBA) throw outOfBounds(this.device, at, end, this.firstLBA, this.lastLBA)
        return this.device.writeBlocks(at, bytes).then(({ bytesWritten }) => ({ bytesWritten, buffer }))
      },
      ({ bytesWritten }) => [bytesWritten],
      this,
    )
  }
}

/**
 * `target` (a disk or a partition view, open) as a `BlockDevice`.
 * @param {object} target
 */
function toBlockDevice(target) {
  return new BlockDevice(target)
}

module.exports = { toBlockDevice, BlockDevice, BlockDevicePartition, BLOCK_SIZE }
