'use strict'

// `disk.getPartitions()`, `disk.partition(index)` and `VHD.Partition`: the partition table of
// a virtual disk (read natively, vhd_core::partition) and a view of one partition's bytes
// with the I/O of a disk.
//
// A partition is a window on its disk: every read and write goes through the disk's own
// (its lifecycle counts them, so the disk's `flush` and `close` wait for them), moved by the
// partition's offset and confined to its size. The I/O methods are the disk's own
// functions, not copies: they read what they need of `this` through the symbols lib/disk.js
// exports (`kSizeNow`, `kRead`, `kWrite`, `kReadSync`, `kWriteSync`, `kDiscard`), which a
// partition gives with its bounds applied, so the argument checks and the results are the
// disk's exactly.

const { Disk, kLife, kRead, kWrite, kSizeNow, kReadSync, kWriteSync, kDiscard } = require('./disk.js')
const { withCode, toIndex, call, pastTheEndError } = require('./args.js')
const { kReadInto, kWriteFrom, kWhenOpen, kCloser, inspectCustom, inspectAs } = require('./protocol.js')
const { factories } = require('./streams.js')
const { toBlockDevice } = require('./block-device.js')
const { toFileDisk } = require('./file-disk.js')

const kDisk = Symbol('disk')
const kEntry = Symbol('entry') // the table entry the partition was made from, shaped
const kOffset = Symbol('offset')
const kSize = Symbol('size')
const kBounds = Symbol('bounds')
const kFits = Symbol('fits')

/**
 * @typedef {import('../binding.js').PartitionTableInfo} PartitionTableInfo
 * @typedef {import('../binding.js').PartitionInfo} PartitionInfo
 */

/**
 * A partition as JavaScript sees it: partitioninfo's fields (`index`, `offset`, `size`,
 * `type`, and for GPT `guid` and `name`), then ours. Optional fields are left out when
 * absent, as partitioninfo leaves `guid` and `name` out of MBR partitions.
 * @param {PartitionInfo} p
 */
function shapePartition(p) {
  /** @type {Record<string, unknown>} */
  const shaped = { index: p.index, offset: p.offset, size: p.size, type: p.type }
  if (p.guid != null) shaped.guid = p.guid
  if (p.name != null) shaped.name = p.name
  if (p.typeName != null) shaped.typeName = p.typeName
  shaped.bootable = p.bootable
  shaped.attributes = p.attributes
  shaped.firstLBA = p.firstLBA
  shaped.lastLBA = p.lastLBA
  return shaped
}

/** @param {PartitionTableInfo} table */
function shapeTable(table) {
  return {
    type: table.type,
    partitions: table.partitions.map(shapePartition),
    findings: table.findings.map(({ code, message }) => ({ code, message })),
  }
}


/**
 * One partition of a disk, as `disk.partition(index)` gives it: the bytes from its `offset`
 * on the disk, `size` of them, with the I/O of a disk (`read`, `readInto`, `readSync`,
 * `readIntoSync`, `write`, `writeSync`, `discard`, `flush`, `createReadStream`,
 * `createWriteStream`, `toBlockDevice`, `toFileDisk`), positions counted from the start of
 * the partition. A read past its end is short (as at the end of a disk), a write or discard
 * past it a RangeError (ERR_VHD_OUT_OF_RANGE) that writes nothing: no byte outside it
 * changes. It has no `open` or `close` of its own: it works while its disk is open (the
 * disk's `close` waits for its operations in flight; later ones fail with ERR_VHD_CLOSED),
 * and is read-only when its disk is.
 */
class Partition {
  constructor() {
    throw withCode(new TypeError('VHD.Partition is made by disk.partition(index)'), 'ERR_ILLEGAL_CONSTRUCTOR')
  }

  /** The disk the partition is part of. */
  get disk() {
    return this[kDisk]
  }

  /** The disk's file (`disk.path`): what its errors name, as the disk's own do. */
  get path() {
    return this[kDisk].path
  }

  /** Its number, as Linux counts them (primary 1–4, logical from 5, GPT in entry order). */
  get index() {
    return this[kEntry].index
  }

  /** Where it starts on the disk, in bytes. */
  get offset() {
    return this[kOffset]
  }

  /** Its size in bytes (what the table says, cut at the end of the disk). */
  get size() {
    return this[kSize]
  }

  /** Its table entry, as `getPartitions()` gives it (a fresh copy on every access). */
  get entry() {
    return { ...this[kEntry] }
  }

  /** Whether its disk is read-only (`undefined` unless the disk is open). */
  get readOnly() {
    return this[kDisk].readOnly
  }

  /** Whether its disk is open. */
  get isOpen() {
    return this[kDisk].isOpen
  }

  /** Makes every write started before this call durable: its disk's `flush`. */
  flush(callback) {
    return this[kDisk].flush(callback)
  }

  /** The size, once the disk is checked to be open (ERR_VHD_CLOSED otherwise). */
  [kSizeNow]() {
    this[kDisk][kSizeNow]()
    return this[kSize]
  }

  /**
   * `[position, count]` on the disk of a read of `length` bytes at `position` of the
   * partition: cut at its end, so a read past it is short.
   */
  [kBounds](length, position) {
    const size = this[kSizeNow]()
    const at = Math.min(position, size)
    return [this[kOffset] + at, Math.min(length, size - at)]
  }

  /** Throws the RangeError of a write or discard that does not fit (ERR_VHD_CLOSED first). */
  [kFits](what, length, position) {
    const size = this[kSizeNow]()
    if (position > size || length > size - position) {
      // The code of the disk's own: ERR_VHD_OUT_OF_RANGE.
      const message = `${what} of ${length} bytes at offset ${position} runs past the end of partition ${this.index} (${size} bytes); nothing was written`
      throw pastTheEndError(this.path, message)
    }
  }

  [kRead](buffer, offset, length, position, map, done) {
    const [at, count] = this[kBounds](length, position)
    return this[kDisk][kRead](buffer, offset, count, at, map, done)
  }

  [kWrite](buffer, offset, length, position, map, done) {
    this[kFits]('write', length, position)
    return this[kDisk][kWrite](buffer, offset, length, this[kOffset] + position, map, done)
  }

  [kReadSync](bytes, start, count, position) {
    const [at, cut] = this[kBounds](count, position)
    return this[kDisk][kReadSync](bytes, start, cut, at)
  }

  [kWriteSync](bytes, position) {
    this[kFits]('write', bytes.length, position)
    return this[kDisk][kWriteSync](bytes, this[kOffset] + position)
  }

  [kDiscard](position, count) {
    this[kFits]('discard', count, position)
    return this[kDisk][kDiscard](this[kOffset] + position, count)
  }

  [kWhenOpen]() {
    return this[kDisk][kWhenOpen]()
  }

  /** What a stream of the partition closes (`autoClose`, `stream.close()`): its disk. */
  get [kCloser]() {
    return this[kDisk]
  }

  /** What `util.inspect` shows: the disk's path, the index, offset, size and type; or the disk's state. */
  [inspectCustom](depth, options, inspect) {
    const disk = this[kDisk]
    const entry = this[kEntry]
    /** @type {Record<string, unknown>} */
    const shown = { disk: disk.path, index: entry.index, offset: this[kOffset], size: this[kSize], type: entry.type }
    if (entry.typeName !== undefined) shown.typeName = entry.typeName
    if (entry.name !== undefined && entry.name !== '') shown.name = entry.name
    if (disk.isOpen) shown.readOnly = disk.readOnly
    else shown.state = 'disk closed'
    return inspectAs(this, shown, depth, options, inspect)
  }
}

// The disk's own I/O methods (see the top of this file), and its streams.
for (const name of ['read', 'readInto', 'readSync', 'readIntoSync', 'write', 'writeSync', 'discard']) {
  Object.defineProperty(Partition.prototype, name, { value: Disk.prototype[name], writable: true, configurable: true })
}
for (const key of [kReadInto, kWriteFrom]) {
  Object.defineProperty(Partition.prototype, key, { value: Disk.prototype[key], writable: true, configurable: true })
}
for (const [name, method] of Object.entries(factories)) {
  Object.defineProperty(Partition.prototype, name, { value: method, writable: true, configurable: true })
}

// Partition numbers are 32-bit in the core (GPT slot + 1, or a logical partition's place).
const MAX_INDEX = 0xffff_ffff

/**
 * A partition of `disk`, of the table entry `entry` (shaped), which the core found to lie
 * inside the disk (`find_partition`, the rule of the CLI's `--partition N` too).
 * @param {Disk} disk
 * @param {ReturnType<typeof shapePartition>} entry
 */
function makePartition(disk, entry) {
  /** @type {Partition} */
  const partition = Object.create(Partition.prototype)
  partition[kDisk] = disk
  partition[kEntry] = entry
  partition[kOffset] = entry.offset
  partition[kSize] = entry.size
  return partition
}

const methods = {
  /**
   * The partition table: `{ type: 'gpt' | 'mbr' | 'none', partitions, findings }`, each
   * partition `{ index, offset, size, type, guid?, name?, typeName?, bootable, attributes,
   * firstLBA, lastLBA }` (partitioninfo's fields, then ours), `findings` what is odd about
   * the table without making it unreadable (`{ code, message }`). Read off the JavaScript
   * thread, under the image's read lock.
   * @this {Disk}
   */
  getPartitions(callback) {
    return call(
      callback,
      null,
      () => {
        const life = this[kLife]
        return life.track(life.current().partitions(), shapeTable)
      },
      (table) => [table],
    )
  },

  /**
   * The partition numbered `index` (as `getPartitions()` numbers them) as a `VHD.Partition`.
   * A partition the table lacks, an extended partition (the container of the logical ones)
   * or one that runs past the end of the disk is a RangeError (ERR_VHD_INVALID_ARGUMENT)
   * that says which and lists the partitions there are, as the CLI's `--partition N`.
   * @this {Disk}
   */
  partition(index, callback) {
    return call(
      callback,
      () => toIndex(index, 'index', MAX_INDEX),
      (wanted) => {
        const life = this[kLife]
        return life.track(life.current().partition(wanted), (entry) => makePartition(this, shapePartition(entry)))
      },
      (partition) => [partition],
    )
  },
}
for (const [name, method] of Object.entries(methods)) {
  Object.defineProperty(Disk.prototype, name, { value: method, writable: true, configurable: true })
}

// Of both a disk and a partition: the views the Node disk tools take.
const views = {
  /**
   * The disk or partition as a `blockdevice` BlockDevice (lib/block-device.js): `blockSize`
   * 512, `size`, `readBlocks`, `writeBlocks`, `partition`.
   * @this {Disk | Partition}
   */
  toBlockDevice() {
    return toBlockDevice(this)
  },
  /**
   * The disk or partition as a `file-disk` Disk (lib/file-disk.js); throws
   * ERR_VHD_MISSING_PEER when `file-disk` is not installed. Read-only, writes recorded in
   * memory, when the image is read-only.
   * @this {Disk | Partition}
   */
  toFileDisk() {
    return toFileDisk(this, this instanceof Partition ? 'partition.toFileDisk()' : 'disk.toFileDisk()')
  },
}
for (const Class of [Disk, Partition]) {
  for (const [name, method] of Object.entries(views)) {
    Object.defineProperty(Class.prototype, name, { value: method, writable: true, configurable: true })
  }
}

module.exports = { Partition }
