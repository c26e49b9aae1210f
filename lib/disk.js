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
  toOptionsObject,
  call,
  none,
  noArgs,
} = require('./args.js')
const { shapeParent } = require('./metadata.js')
const { footerFrom, headerFrom } = require('./structures.js')
const io = require('./io.js')

const { kStarted, kSettled } = io // what lib/io.js tells a disk about its reads and writes

const kPath = Symbol('path')
const kOptions = Symbol('options')
const kState = Symbol('state') // 'new' | 'opening' | 'open' | 'closing' | 'closed'
const kNative = Symbol('native')
const kHandle = Symbol('handle') // the native image's handle: what reads and writes go through
const kIo = Symbol('io')
const kInfo = Symbol('info')
const kInFlight = Symbol('inFlight') // native operations started and not settled yet
const kIdle = Symbol('idle') // called when kInFlight drops to 0 (close waits for it)
const kAttach = Symbol('attach')
const kImage = Symbol('image')
const kTrack = Symbol('track')
const kWhenIdle = Symbol('whenIdle')
const kExpectedType = Symbol('expectedType')
const kOpening = Symbol('opening')

const identity = (value) => value

/** An allocated range as JavaScript sees it: `fileOffset` `null` rather than absent. */
const shapeRange = ({ offset, length, depth, fileOffset }) => ({ offset, length, depth, fileOffset: fileOffset ?? null })

// What the streams (lib/streams.js) and `VHD.Image` (lib/image.js) use of a disk: a read into
// or a write from part of the caller's buffer (tracked, so that `close` waits for it), and
// a promise that settles when the disk is open (waiting for an `open` in progress).
const kReadInto = Symbol('readInto')
const kWriteFrom = Symbol('writeFrom')
const kWhenOpen = Symbol('whenOpen')

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

/** The checked arguments of `readInto`: the bytes, where in them, how many, from where. */
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

/**
 * What `VHD.Fixed`, `VHD.Dynamic` and `VHD.Differencing` share. Not constructible itself:
 * use a subclass, `VHD.open` or `VHD.create`.
 */
class Disk {
  constructor(path, options) {
    if (new.target === Disk) {
      throw withCode(
        new TypeError('VHD.Disk is abstract: use VHD.Fixed, VHD.Dynamic, VHD.Differencing or VHD.open()'),
        'ERR_ILLEGAL_CONSTRUCTOR',
      )
    }
    this[kPath] = toPath(path)
    this[kOptions] = toOpenOptions(options)
    this[kState] = 'new'
    this[kNative] = null
    this[kHandle] = null
    this[kInfo] = null
    this[kInFlight] = 0
    this[kIdle] = null
    this[kOpening] = null
  }

  /** The path given to the constructor. */
  get path() {
    return this[kPath]
  }

  /** True between a successful `open` and `close`. */
  get isOpen() {
    return this[kState] === 'open'
  }

  // Every accessor below is `undefined` unless the image is open.

  get type() {
    return this[kInfo]?.diskType
  }

  get size() {
    return this[kInfo]?.size
  }

  get blockSize() {
    return this[kInfo]?.blockSize ?? undefined
  }

  get geometrySize() {
    return this[kInfo]?.geometrySize
  }

  get readOnly() {
    return this[kInfo]?.readOnly
  }

  get readOnlyReason() {
    const info = this[kInfo]
    return info ? info.readOnlyReason ?? null : undefined
  }

  get footerSource() {
    return this[kInfo]?.footerSource
  }

  /** A `VHD.Footer`, a fresh copy on every access: changing it changes nothing. */
  get footer() {
    const info = this[kInfo]
    return info ? footerFrom(info.footer) : undefined
  }

  /** A `VHD.Header` (all 8 parent locator entries, with `text`), a fresh copy on every access. */
  get header() {
    const info = this[kInfo]
    return info && info.header ? headerFrom(info.header, info.locatorTexts) : undefined
  }

  /** Blocks allocated so far (dynamic and differencing images). */
  get allocatedBlocks() {
    if (this[kState] !== 'open') return undefined
    return this[kNative].allocatedBlocks() ?? undefined
  }

  [kAttach](image) {
    this[kNative] = image
    this[kHandle] = image.handle
    this[kInfo] = image.info
    this[kState] = 'open'
  }

  /** The native image, or throws ERR_VHD_CLOSED. */
  [kImage]() {
    switch (this[kState]) {
      case 'open':
        return this[kNative]
      case 'new':
      case 'opening':
        throw stateError('ERR_VHD_CLOSED', `${this[kPath]}: the image is not open (call open() first)`)
      default:
        throw stateError('ERR_VHD_CLOSED', `${this[kPath]}: the image is closed`)
    }
  }

  /**
   * The handle that reads and writes go through (lib/io.js and `native.handleReadSync` and
   * friends: as plain functions of a handle they cost napi-rs less per call than methods of
   * the native image would), or throws ERR_VHD_CLOSED.
   */
  [kIo]() {
    this[kImage]()
    return this[kHandle]
  }

  /**
   * Counts a native operation (other than a read or a write: lib/io.js counts those through
   * `io.kStarted` and `io.kSettled`) as in flight until it settles, so that `close` can wait
   * for it, and resolves to `map(value)`.
   */
  [kTrack](result, map = identity) {
    this[kInFlight]++
    return result.then(
      (value) => {
        this[kSettled]()
        return map(value)
      },
      (error) => {
        this[kSettled]()
        throw error
      },
    )
  }

  [kStarted]() {
    this[kInFlight]++
  }

  [kSettled]() {
    if (--this[kInFlight] === 0 && this[kIdle] !== null) {
      const idle = this[kIdle]
      this[kIdle] = null
      idle()
    }
  }

  /** Resolves once no native operation is in flight (only `close` waits, and only once). */
  [kWhenIdle]() {
    if (this[kInFlight] === 0) return Promise.resolve()
    return new Promise((resolve) => {
      this[kIdle] = resolve
    })
  }

  open(callback) {
    return call(callback, noArgs, () => {
      const state = this[kState]
      if (state !== 'new' && state !== 'closed') {
        throw stateError('ERR_VHD_ALREADY_OPEN', `${this[kPath]}: the image is already ${state === 'open' ? 'open' : state}`)
      }
      this[kState] = 'opening'
      const options = { ...this[kOptions], expectedType: this.constructor[kExpectedType] }
      const opening = native.open(this[kPath], options).then(
        (image) => {
          this[kAttach](image)
          return this
        },
        (error) => {
          this[kState] = state
          throw error
        },
      )
      this[kOpening] = opening
      const done = () => {
        if (this[kOpening] === opening) this[kOpening] = null
      }
      opening.then(done, done)
      return opening
    }, none)
  }

  /** Resolves once the disk is open (now, or when the `open` in progress succeeds). */
  [kWhenOpen]() {
    if (this[kState] === 'opening' && this[kOpening]) {
      return this[kOpening].then(() => this[kWhenOpen]())
    }
    try {
      this[kImage]()
      return Promise.resolve()
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** The native read into `buffer[offset..offset + length]`, tracked; resolves to bytesRead. */
  [kReadInto](buffer, offset, length, position) {
    try {
      return io.read(this, this[kIo](), buffer, offset, length, position, identity)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** The native write of `buffer[offset..offset + length]`, tracked; resolves to bytesWritten. */
  [kWriteFrom](buffer, offset, length, position) {
    try {
      return io.write(this, this[kIo](), buffer, offset, length, position, identity)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * A readable stream of the virtual disk (see `VHD.ReadStream`), from `start` up to `end`
   * (exclusive, as in vhd@0.5.0). The disk stays open when the stream ends, unless
   * `autoClose` is true.
   */
  createReadStream(options) {
    const { ReadStream } = require('./streams.js')
    return new ReadStream({ ...toOptionsObject(options), image: this })
  }

  /**
   * A writable stream into the virtual disk from `start` (see `VHD.WriteStream`). The disk
   * stays open when the stream finishes, unless `autoClose` is true.
   */
  createWriteStream(options) {
    const { WriteStream } = require('./streams.js')
    return new WriteStream({ ...toOptionsObject(options), image: this })
  }

  read(offset, length, callback) {
    return call(
      callback,
      () => [toIndex(offset, 'offset'), toIndex(length, 'length', bufferConstants.MAX_LENGTH)],
      ([position, length]) => {
        const handle = this[kIo]()
        const size = this[kInfo].size
        const buffer = readBuffer(length, position, size)
        return io.read(this, handle, buffer, 0, length, position, (bytesRead) => {
          zeroRest(buffer, bytesRead, position, size)
          return { bytesRead, buffer }
        })
      },
      (result) => [result.bytesRead, result.buffer],
    )
  }

  write(buffer, offset, callback) {
    return call(
      callback,
      () => [toBytes(buffer), toIndex(offset, 'offset')],
      ([bytes, position]) =>
        io.write(this, this[kIo](), bytes, 0, bytes.length, position, (bytesWritten) => ({
          bytesWritten,
          buffer,
        })),
      (result) => [result.bytesWritten, result.buffer],
    )
  }

  /**
   * Reads into the caller's `buffer` (`length` bytes at `bufferOffset`) from `position`, like
   * `fs.read`: nothing is allocated, the bytes land in `buffer` directly. Resolves to
   * `{ bytesRead, buffer }`; short past the end of the disk, where the rest of the range is
   * left as it was.
   */
  readInto(buffer, bufferOffset, length, position, callback) {
    return call(
      callback,
      () => readIntoArgs(buffer, bufferOffset, length, position),
      ([bytes, start, count, at]) =>
        io.read(this, this[kIo](), bytes, start, count, at, (bytesRead) => ({ bytesRead, buffer })),
      (result) => [result.bytesRead, result.buffer],
    )
  }

  /** `readInto` on the calling thread; returns the number of bytes read. */
  readIntoSync(buffer, bufferOffset, length, position) {
    const [bytes, start, count, at] = readIntoArgs(buffer, bufferOffset, length, position)
    return native.handleReadSync(this[kIo](), bytes, start, count, at)
  }

  readSync(offset, length) {
    const position = toIndex(offset, 'offset')
    length = toIndex(length, 'length', bufferConstants.MAX_LENGTH)
    const handle = this[kIo]()
    const buffer = readBuffer(length, position, this[kInfo].size)
    const bytesRead = native.handleReadSync(handle, buffer, 0, length, position)
    zeroRest(buffer, bytesRead, position, this[kInfo].size)
    return { bytesRead, buffer }
  }

  writeSync(buffer, offset) {
    const bytes = toBytes(buffer)
    const position = toIndex(offset, 'offset')
    const bytesWritten = native.handleWriteSync(this[kIo](), bytes, 0, bytes.length, position)
    return { bytesWritten, buffer }
  }

  flush(callback) {
    return call(callback, noArgs, () => this[kTrack](this[kImage]().flush(), noArgs), none)
  }

  close(callback) {
    return call(callback, noArgs, () => {
      const image = this[kImage]()
      this[kState] = 'closing'
      // Operations already started finish first; new ones fail with ERR_VHD_CLOSED.
      return this[kWhenIdle]()
        .then(() => image.close())
        .finally(() => {
          // Closed even when the final flush failed: the error is still reported.
          this[kState] = 'closed'
          this[kNative] = null
          this[kHandle] = null
          this[kInfo] = null
        })
        .then(noArgs)
    }, none)
  }

  /**
   * Says that `length` bytes at `offset` are no longer needed. Dynamic images unallocate
   * whole blocks and zero the rest (it all reads as zeros); differencing images mark whole
   * sectors absent (the parent shows through again) and zero parts of sectors; fixed images
   * write zeros.
   */
  discard(offset, length, callback) {
    return call(
      callback,
      () => [toIndex(offset, 'offset'), toIndex(length, 'length')],
      ([position, count]) => this[kTrack](this[kImage]().discard(position, count)).then(noArgs),
      none,
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
      noArgs,
      () => this[kTrack](this[kImage]().allocatedRanges()).then((ranges) => ranges.map(shapeRange)),
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
    const walk = this[kImage]().walkAllocatedRanges()
    for (;;) {
      const batch = await this[kTrack](walk.next())
      if (batch.length === 0) return
      for (const range of batch) yield shapeRange(range)
    }
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
    const info = this[kInfo]
    return info ? shapeParent(info.parents) : undefined
  }

  /** The paths of this image and of every image below it, this one first, the base last. */
  get chain() {
    const info = this[kInfo]
    return info ? [this[kPath], ...info.parents.map((p) => p.path)] : undefined
  }
}

const CLASSES = new Map([
  [TYPE.FIXED, Fixed],
  [TYPE.DYNAMIC, Dynamic],
  [TYPE.DIFF, Differencing],
])

/** Wraps a freshly opened native image in the class of its type. */
function wrap(image, path, options) {
  const type = image.info.diskType
  const Class = CLASSES.get(type)
  if (Class === undefined) {
    // The native open only succeeds for the three types above.
    image.close().catch(() => {})
    throw stateError('ERR_VHD_INTERNAL', `${path}: the native addon opened an image of type ${type}`)
  }
  const disk = new Class(path)
  disk[kOptions] = options
  disk[kAttach](image)
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

module.exports = {
  Disk,
  Fixed,
  Dynamic,
  Differencing,
  open,
  create,
  // For lib/image.js and lib/streams.js only (index.js does not export these).
  internal: { wrap, kReadInto, kWriteFrom, kWhenOpen },
}
