'use strict'

// `VHD.Fixed`, `VHD.Dynamic` and `VHD.Differencing`: an open native image with callback and
// promise forms of every method, and `open`/`create`, which pick the class by type.

const { Buffer, constants: bufferConstants } = require('node:buffer')
const native = require('../binding.js')
const { TYPE } = require('./constants.js')
const {
  withCode,
  stateError,
  toIndex,
  toPath,
  toBytes,
  outOfRange,
  toOpenOptions,
  toCreateOptions,
  overNamedParent,
  call,
  callIo,
  noArgs,
} = require('./args.js')
const { shapeParent } = require('./metadata.js')
const { footerFrom, headerFrom } = require('./structures.js')
const io = require('./io.js')
const { Lifecycle } = require('./lifecycle.js')
const { kReadInto, kWriteFrom, kWhenOpen, inspectCustom, inspectAs, disposable } = require('./protocol.js')

const kPath = Symbol('path')
const kOptions = Symbol('options')
const kLife = Symbol('life') // the image's Lifecycle (lib/lifecycle.js)
const kExpectedType = Symbol('expectedType')
const kBat = Symbol('bat')
const kBatCopy = Symbol('batCopy')
const kOpenNative = Symbol('openNative')
const kInit = Symbol('init')
const kClose = Symbol('close')
const kLastBat = Symbol('lastBat')
const kRead = Symbol('read')
const kWrite = Symbol('write')
// What the I/O methods below use of `this`, so that a `VHD.Partition` (lib/partition.js),
// which gives its own, shares the methods themselves and so their argument checks.
const kSizeNow = Symbol('sizeNow')
const kReadSync = Symbol('readSync')
const kWriteSync = Symbol('writeSync')
const kDiscard = Symbol('discard')

const identity = (value) => value
/** @type {Map<number, string>} */
const TYPE_NAMES = new Map([
  [TYPE.FIXED, 'fixed'],
  [TYPE.DYNAMIC, 'dynamic'],
  [TYPE.DIFF, 'differencing'],
])

/** An allocated range as JavaScript sees it: `fileOffset` `null` rather than absent. */
const shapeRange = ({ offset, length, depth, fileOffset }) => ({ offset, length, depth, fileOffset: fileOffset ?? null })

/**
 * @typedef {import('../binding.js').NativeImage} NativeImage
 * @typedef {import('../binding.js').ImageInfo} ImageInfo
 * @typedef {ReturnType<typeof toOpenOptions>} OpenOptions
 */

/**
 * The buffer for a read of `length` bytes at `position` of a disk of `size` bytes. A read
 * that runs past the end gets a zeroed buffer (the rest must read as zeros): the operating
 * system hands out the zeroed pages of a large one only when they are touched, so a huge
 * read past the end costs no memory. Other reads are filled whole: no need to zero them.
 */
function readBuffer(length, position, size) {
  return position + length > size ? Buffer.alloc(length) : Buffer.allocUnsafe(length)
}

/** After a short read into a `readBuffer`: zeros after the bytes read (already there when it was zeroed). */
function zeroRest(buffer, bytesRead, position, size) {
  if (bytesRead < buffer.length && position + buffer.length <= size) buffer.fill(0, bytesRead)
}

/**
 * The checked arguments of `readInto`: the bytes, where in them, how many, from where.
 * @returns {[Uint8Array, number, number, number]}
 */
function readIntoArgs(buffer, bufferOffset, length, position) {
  const bytes = toBytes(buffer)
  const start = toIndex(bufferOffset, 'bufferOffset')
  if (start > bytes.length) throw outOfRange('bufferOffset', `<= ${bytes.length} (the buffer length)`, start)
  const count = toIndex(length, 'length')
  if (count > bytes.length - start) {
    throw outOfRange('length', `<= ${bytes.length - start} (the room in the buffer)`, count)
  }
  return [bytes, start, count, toIndex(position, 'position')]
}

// Calls shaped like `fs.read`/`fs.write` (buffer, offset, length, position), which ours are
// not: said in the caller's terms, instead of "offset must be a number" or "callback must be
// a function".
const FS_STYLE_READ =
  'disk.read(offset, length) takes the position on the disk and a length, and returns a new ' +
  'Buffer; to read into a buffer of yours as fs.read(buffer, offset, length, position) ' +
  'does, use disk.readInto(buffer, bufferOffset, length, position)'
const FS_STYLE_WRITE =
  'disk.write(buffer, offset) writes all of buffer at offset on the disk; it takes no ' +
  'bufferOffset and length as fs.write(buffer, offset, length, position) does: pass ' +
  'buffer.subarray(start, start + length) and the position on the disk'

const FS_STYLE_READ_SYNC =
  'disk.readSync(offset, length) takes the position on the disk and a length, and returns a ' +
  'new Buffer; to read into a buffer of yours as fs.readSync does, use ' +
  'disk.readIntoSync(buffer, bufferOffset, length, position)'
const FS_STYLE_WRITE_SYNC =
  'disk.writeSync(buffer, offset) writes all of buffer at offset on the disk; it takes no ' +
  'bufferOffset and length as fs.writeSync does: pass buffer.subarray(start, start + ' +
  'length) and the position on the disk'

/** The TypeError (ERR_INVALID_ARG_TYPE) of an fs-style call. */
function fsStyleError(message) {
  return withCode(new TypeError(message), 'ERR_INVALID_ARG_TYPE')
}

/**
 * `fsStyleError` of an asynchronous call: thrown, as every argument error of a call with
 * something in the callback's place (here the fs-style `length`), a rejected promise
 * otherwise.
 */
function fsStyleCall(message, callbackSlot) {
  const error = fsStyleError(message)
  if (callbackSlot !== undefined) throw error
  return Promise.reject(error)
}

/**
 * What `VHD.Fixed`, `VHD.Dynamic` and `VHD.Differencing` share. Not constructible itself:
 * use a subclass, `VHD.open` or `VHD.create`.
 */
class Disk {
  /**
   * @param {string | URL} path
   * @param {object} [options] the open options (see `toOpenOptions`)
   */
  constructor(path, options) {
    if (new.target === Disk) {
      throw withCode(
        new TypeError('VHD.Disk is abstract: use VHD.Fixed, VHD.Dynamic, VHD.Differencing or VHD.open()'),
        'ERR_ILLEGAL_CONSTRUCTOR',
      )
    }
    this[kInit](toPath(path), toOpenOptions(options))
  }

  /**
   * Sets up a disk whose arguments were checked already (also for `wrap`, which makes disks
   * without the constructor's checks).
   * @param {string} path
   * @param {OpenOptions} options
   * @param {string} [name] how messages name it (default: the path)
   */
  [kInit](path, options, name = path) {
    this[kPath] = path
    this[kOptions] = options
    this[kLife] = new Lifecycle(name)
    /** @type {{ bytes: Buffer | null, changes: number } | null} the last copy of the BAT read (`VHD.Image`'s `bat`) */
    this[kBatCopy] = null
  }

  /** The path given to the constructor. */
  get path() {
    return this[kPath]
  }

  /** True between a successful `open` and `close`. */
  get isOpen() {
    return this[kLife].state === 'open'
  }

  // Every accessor below is `undefined` unless the image is open.

  get type() {
    return this[kLife].info?.diskType
  }

  get size() {
    return this[kLife].info?.size
  }

  get blockSize() {
    return this[kLife].info?.blockSize ?? undefined
  }

  get geometrySize() {
    return this[kLife].info?.geometrySize
  }

  get readOnly() {
    return this[kLife].info?.readOnly
  }

  get readOnlyReason() {
    const info = this[kLife].info
    return info ? info.readOnlyReason ?? null : undefined
  }

  get footerSource() {
    return this[kLife].info?.footerSource
  }

  /** A `VHD.Footer`, a fresh copy on every access: changing it changes nothing. */
  get footer() {
    const info = this[kLife].info
    return info ? footerFrom(info.footer) : undefined
  }

  /** A `VHD.Header` (all 8 parent locator entries, with `text`), a fresh copy on every access. */
  get header() {
    const info = this[kLife].info
    return info && info.header ? headerFrom(info.header, info.locatorTexts) : undefined
  }

  /** Blocks allocated so far (dynamic and differencing images). */
  get allocatedBlocks() {
    const life = this[kLife]
    if (life.state !== 'open') return undefined
    return /** @type {NativeImage} */ (life.native).allocatedBlocks() ?? undefined
  }

  /**
   * The native image this disk opens (`native.open` by path; `VHD.Image`'s disk opens a
   * descriptor instead).
   * @returns {Promise<import('./lifecycle.js').Opened>}
   */
  [kOpenNative]() {
    const options = { ...this[kOptions], expectedType: /** @type {typeof Disk} */ (this.constructor)[kExpectedType] }
    return native.open(this[kPath], options).then((image) => ({ native: image }))
  }

  /**
   * The block allocation table as big-endian entries, as it is now (`null` for a fixed
   * image); the same Buffer until a write or a discard may have changed it. After `close`,
   * the last table read (see `close`'s `keepBat`).
   * @returns {Buffer | null}
   */
  [kBat]() {
    const life = this[kLife]
    const cached = this[kBatCopy]
    // Read while the native image is there: open, or closing (`close`'s last read).
    // A server's clients write without telling `changes`: while one serves the image, every
    // copy may be stale.
    const fresh = cached !== null && cached.changes === life.changes && life.servers.size === 0
    if (life.native === null || fresh) return cached?.bytes ?? null
    const bytes = life.native.batBytes()
    this[kBatCopy] = { bytes, changes: life.changes }
    return bytes
  }

  /**
   * Opens the image; resolves to the disk itself.
   * @param {(error: Error | null, disk?: Disk) => void} [callback]
   */
  open(callback) {
    return call(callback, null, () => this[kLife].open(this[kOpenNative], this, this), null)
  }

  /** Resolves once the disk is open (now, or when the `open` in progress succeeds). */
  [kWhenOpen]() {
    return this[kLife].whenOpen()
  }

  /**
   * The native read into `buffer[offset..offset + length]`, tracked; resolves to bytesRead.
   * @param {Uint8Array} buffer
   * @param {number} offset
   * @param {number} length
   * @param {number} position
   * @returns {Promise<number>}
   */
  [kReadInto](buffer, offset, length, position) {
    try {
      return this[kRead](buffer, offset, length, position, identity)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * The native read into `buffer[offset..offset + length]` of checked arguments, tracked;
   * resolves to `map(bytesRead)`. Throws ERR_VHD_CLOSED unless open. What every
   * asynchronous read of a disk or a `VHD.Image` goes through.
   * @template T
   * @param {Uint8Array} buffer
   * @param {number} offset
   * @param {number} length
   * @param {number} position
   * @param {(bytesRead: number) => T} map
   * @param {(error: Error | null, bytesRead?: number) => void} [done] instead of a promise (see lib/io.js)
   * @returns {Promise<T>}
   */
  [kRead](buffer, offset, length, position, map, done) {
    const life = this[kLife]
    return io.read(life, life.io(), buffer, offset, length, position, map, done)
  }

  /**
   * The native write of `buffer[offset..offset + length]` of checked arguments, tracked;
   * resolves to `map(bytesWritten)`. Throws ERR_VHD_CLOSED unless open.
   * @template T
   * @param {Uint8Array} buffer
   * @param {number} offset
   * @param {number} length
   * @param {number} position
   * @param {(bytesWritten: number) => T} map
   * @param {(error: Error | null, bytesWritten?: number) => void} [done] instead of a promise (see lib/io.js)
   * @returns {Promise<T>}
   */
  [kWrite](buffer, offset, length, position, map, done) {
    const life = this[kLife]
    return io.write(life, life.io(), buffer, offset, length, position, map, done)
  }

  /**
   * The native write of `buffer[offset..offset + length]`, tracked; resolves to bytesWritten.
   * @param {Uint8Array} buffer
   * @param {number} offset
   * @param {number} length
   * @param {number} position
   * @returns {Promise<number>}
   */
  [kWriteFrom](buffer, offset, length, position) {
    try {
      return this[kWrite](buffer, offset, length, position, identity)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  read(offset, length, callback) {
    if (ArrayBuffer.isView(offset)) return fsStyleCall(FS_STYLE_READ, callback)
    return call(
      callback,
      () => [toIndex(offset, 'offset'), toIndex(length, 'length', bufferConstants.MAX_LENGTH)],
      ([position, length]) => {
        const size = this[kSizeNow]()
        const buffer = readBuffer(length, position, size)
        return this[kRead](buffer, 0, length, position, (bytesRead) => {
          zeroRest(buffer, bytesRead, position, size)
          return { bytesRead, buffer }
        })
      },
      (result) => [result.bytesRead, result.buffer],
      undefined,
      // Untraced: lib/io.js captures the site of the requests that go to the I/O threads.
      false,
    )
  }

  write(buffer, offset, callback) {
    if (typeof callback === 'number' || arguments.length > 3) return fsStyleCall(FS_STYLE_WRITE, callback)
    return callIo(
      callback,
      () => /** @type {[Uint8Array, number]} */ ([toBytes(buffer), toIndex(offset, 'offset')]),
      ([bytes, position], map, done) => this[kWrite](bytes, 0, bytes.length, position, map, done),
      (bytesWritten) => [bytesWritten, buffer],
      (bytesWritten) => ({ bytesWritten, buffer }),
    )
  }

  /**
   * Reads into the caller's `buffer` (`length` bytes at `bufferOffset`) from `position`, like
   * `fs.read`: nothing is allocated, the bytes land in `buffer` directly. Resolves to
   * `{ bytesRead, buffer }`; short past the end of the disk, where the rest of the range is
   * left as it was.
   */
  readInto(buffer, bufferOffset, length, position, callback) {
    return callIo(
      callback,
      () => readIntoArgs(buffer, bufferOffset, length, position),
      ([bytes, start, count, at], map, done) => this[kRead](bytes, start, count, at, map, done),
      (bytesRead) => [bytesRead, buffer],
      (bytesRead) => ({ bytesRead, buffer }),
    )
  }

  /** `readInto` on the calling thread; returns the number of bytes read. */
  readIntoSync(buffer, bufferOffset, length, position) {
    const [bytes, start, count, at] = readIntoArgs(buffer, bufferOffset, length, position)
    return this[kReadSync](bytes, start, count, at)
  }

  readSync(offset, length) {
    if (ArrayBuffer.isView(offset)) throw fsStyleError(FS_STYLE_READ_SYNC)
    const position = toIndex(offset, 'offset')
    length = toIndex(length, 'length', bufferConstants.MAX_LENGTH)
    const size = this[kSizeNow]()
    const buffer = readBuffer(length, position, size)
    const bytesRead = this[kReadSync](buffer, 0, length, position)
    zeroRest(buffer, bytesRead, position, size)
    return { bytesRead, buffer }
  }

  writeSync(buffer, offset) {
    // fs.writeSync(fd, buffer, offset, length, position) would otherwise write the whole
    // buffer at `offset`, its offset in the buffer: refused before anything is written.
    if (arguments.length > 2) throw fsStyleError(FS_STYLE_WRITE_SYNC)
    const bytes = toBytes(buffer)
    const position = toIndex(offset, 'offset')
    const bytesWritten = this[kWriteSync](bytes, position)
    return { bytesWritten, buffer }
  }

  /** The size of the virtual disk; throws ERR_VHD_CLOSED unless open. */
  [kSizeNow]() {
    const life = this[kLife]
    life.current()
    return /** @type {ImageInfo} */ (life.info).size
  }

  /**
   * The native read into `bytes[start..start + count]` from `position` on the calling thread, of
   * checked arguments; returns bytesRead. Throws ERR_VHD_CLOSED unless open.
   * @param {Uint8Array} bytes
   * @param {number} start
   * @param {number} count
   * @param {number} position
   * @returns {number}
   */
  [kReadSync](bytes, start, count, position) {
    return native.handleReadSync(this[kLife].io(), bytes, start, count, position)
  }

  /**
   * The native write of all of `bytes` at `position` on the calling thread; returns
   * bytesWritten. Throws ERR_VHD_CLOSED unless open.
   * @param {Uint8Array} bytes
   * @param {number} position
   * @returns {number}
   */
  [kWriteSync](bytes, position) {
    const life = this[kLife]
    const handle = life.io()
    life.changes++
    return native.handleWriteSync(handle, bytes, 0, bytes.length, position)
  }

  /**
   * The native discard of `count` bytes at `position`, tracked. Throws ERR_VHD_CLOSED unless open.
   * @param {number} position
   * @param {number} count
   * @returns {Promise<void>}
   */
  [kDiscard](position, count) {
    const life = this[kLife]
    return life.track(life.current().discard(position, count), noArgs, true)
  }

  /**
   * Makes every write started before this call durable, metadata included: it waits for
   * the operations in flight, then flushes.
   */
  flush(callback) {
    return call(callback, null, () => this[kLife].flush(), null)
  }

  /**
   * Waits for the operations already started (later ones fail with ERR_VHD_CLOSED),
   * flushes and closes. Closed even when the final flush fails; the error is still reported.
   * Closing again, or a disk that is not open, resolves (as `FileHandle.close()` does).
   */
  close(callback) {
    return call(callback, null, () => this[kClose](false), null)
  }


  /**
   * `close`, keeping the block allocation table as it is last (`[kBat]()` then returns it:
   * `VHD.Image`'s `bat` after `close`).
   * @param {boolean} keepBat
   */
  [kClose](keepBat) {
    const life = this[kLife]
    return life.close(keepBat ? () => this[kLastBat]() : undefined)
  }

  /** Reads the table a last time before `close` (a failure keeps the last copy read). */
  [kLastBat]() {
    try {
      this[kBat]()
    } catch {
      // The table stays as it was last read.
    }
  }

  /**
   * Says that `length` bytes at `offset` are no longer needed. Dynamic images unallocate
   * whole blocks and zero the rest (it all reads as zeros); differencing images mark whole
   * sectors absent (the parent shows through again); fixed images write zeros.
   */
  discard(offset, length, callback) {
    return call(
      callback,
      () => [toIndex(offset, 'offset'), toIndex(length, 'length')],
      ([position, count]) => this[kDiscard](position, count),
      null,
    )
  }

  /**
   * The runs of the virtual disk that hold stored data, in disk order:
   * `{ offset, length, depth, fileOffset }`, where `depth` says which image of the chain
   * holds them (0 this one, 1 its parent…) and `fileOffset` where they start in that file
   * (`null` when not contiguous there).
   */
  getAllocatedRanges(callback) {
    return call(
      callback,
      null,
      () => {
        const life = this[kLife]
        return life.track(life.current().allocatedRanges(), (ranges) => ranges.map(shapeRange))
      },
      (ranges) => [ranges],
    )
  }

  /**
   * The same runs as `getAllocatedRanges`, as an async iterator:
   * `for await (const range of disk.allocatedRanges())`. They are found a batch at a time
   * off the JavaScript thread, so memory stays bounded however many there are (a crafted
   * image can hold millions); `getAllocatedRanges` refuses past 2^20 of them. A batch found
   * after a write reflects it. Closing the disk ends the iteration with ERR_VHD_CLOSED.
   */
  async *allocatedRanges() {
    const life = this[kLife]
    const walk = life.current().walkAllocatedRanges()
    for (;;) {
      const batch = await life.track(walk.next(), identity)
      if (batch.length === 0) return
      for (const range of batch) yield shapeRange(range)
    }
  }

  /**
   * What `console.log(disk)` and `util.inspect` show: the path, and while open the type,
   * size, whether it is read-only and (differencing) the parent's path; else the state.
   */
  [inspectCustom](depth, options, inspect) {
    return inspectAs(this, summary(this), depth, options, inspect)
  }
}

/** A fixed image: the virtual disk's bytes, then a footer. */
class Fixed extends Disk {
  static [kExpectedType] = 'fixed'
}

/** A dynamic image: blocks allocated on first write. */
class Dynamic extends Disk {
  static [kExpectedType] = 'dynamic'
}

/**
 * A differencing image: blocks allocated on first write, and every sector not written here
 * read from its parent (a fixed, dynamic or differencing image, or a raw disk file named by
 * the caller). Only this image is written; the parents are opened read-only.
 */
class Differencing extends Disk {
  static [kExpectedType] = 'differencing'

  /**
   * The parent: `{ path, type, size, uuid, raw, parent }`, where `parent` is the next image
   * down (`null` at the base). A raw base has `raw: true`, and `type` and `uuid` `null`.
   * A fresh copy on every access.
   */
  get parent() {
    const info = this[kLife].info
    return info ? shapeParent(info.parents) : undefined
  }

  /** The paths of this image and of every image below it, this one first, the base last. */
  get chain() {
    const info = this[kLife].info
    return info ? [this[kPath], ...info.parents.map((p) => p.path)] : undefined
  }
}

// `await using disk = await VHD.open(...)` closes it when the block ends.
disposable(Disk)

/** @type {Map<number, typeof Fixed | typeof Dynamic | typeof Differencing>} */
const CLASSES = new Map([
  [TYPE.FIXED, Fixed],
  [TYPE.DYNAMIC, Dynamic],
  [TYPE.DIFF, Differencing],
])

/**
 * What `inspect` shows of a disk: its path, and while open its type, size, whether it is
 * read-only and its parent's path; otherwise its state.
 * @param {Disk} disk
 */
function summary(disk) {
  const life = disk[kLife]
  const info = life.info
  if (life.state !== 'open' || info === null) return { path: disk[kPath], state: life.state === 'new' ? 'not open' : life.state }
  /** @type {Record<string, unknown>} */
  const shown = { path: disk[kPath], type: TYPE_NAMES.get(info.diskType), size: info.size, readOnly: info.readOnly }
  // Why it is read-only, unless that is what was asked for.
  if (info.readOnlyReason && !disk[kOptions].readOnly) shown.readOnlyReason = info.readOnlyReason
  if (info.parents.length > 0) shown.parent = info.parents[0].path
  return shown
}

/**
 * Wraps a freshly opened native image in the class of its type.
 * @param {NativeImage} image
 * @param {string} path
 * @param {OpenOptions} options
 */
function wrap(image, path, options) {
  const type = image.info.diskType
  const Class = CLASSES.get(type)
  if (Class === undefined) {
    // The native open only succeeds for the three types above.
    image.close().catch(() => {})
    throw stateError('ERR_VHD_INTERNAL', `${path}: the native addon opened an image of type ${type}`)
  }
  /** @type {Disk} */
  const disk = Object.create(Class.prototype)
  disk[kInit](path, options)
  disk[kLife].attach(image)
  return disk
}

/** Opens an image of any type as a `VHD.Fixed`, `VHD.Dynamic` or `VHD.Differencing`. */
function open(path, options, callback) {
  if (typeof options === 'function' && callback === undefined) {
    callback = options
    options = undefined
  }
  return call(
    callback,
    () => [toPath(path), toOpenOptions(options)],
    ([path, options]) => native.open(path, options).then((image) => wrap(image, path, options)),
    (disk) => [disk],
  )
}

/**
 * Creates a fixed, dynamic or differencing image and resolves to it, open read-write. A
 * differencing image is reopened (after `close`, by `open`) over the parent it was made
 * over, with the same `parentRoot`.
 */
function create(path, options, callback) {
  return call(
    callback,
    () => [toPath(path), toCreateOptions(options)],
    ([path, options]) =>
      native.create(path, options).then((image) => {
        const open = { ...toOpenOptions(), parentRoot: options.parentOpen.parentRoot }
        return wrap(image, path, options.parent === undefined ? open : overNamedParent(options.parent, open))
      }),
    (disk) => [disk],
  )
}

/** For lib/ops.js (and the tests): wrap a native image opened elsewhere. */
const internal = { wrap, summary, kReadInto, kWriteFrom, kWhenOpen, readBuffer, zeroRest }

module.exports = {
  Disk,
  Fixed,
  Dynamic,
  Differencing,
  open,
  create,
  internal,
  // For lib/image.js only (index.js does not export these). Top-level properties, so that
  // the type checker keeps each symbol's own type (an object literal nested in this one
  // would make it widen every symbol here to \`symbol\`).
  kInit,
  kLife,
  kOptions,
  kOpenNative,
  kBat,
  kClose,
  kRead,
  kWrite,
  // For lib/partition.js: what a partition gives the I/O methods it shares with the disk.
  kSizeNow,
  kReadSync,
  kWriteSync,
  kDiscard,
}
