'use strict'

// `VHD.ReadStream` and `VHD.WriteStream`: vhd@0.5.0's streams of a virtual disk, on Node's own
// `stream` module, for every image type and for both `VHD.Image` and the `VHD.Fixed`,
// `VHD.Dynamic` and `VHD.Differencing` classes.
//
// As in 0.5.0, a stream is made with `new VHD.ReadStream({ image, start, end, ... })` or
// `image.createReadStream(options)`, and `end` is exclusive: the stream holds the bytes from
// `start` up to, not including, `end`. Without `image`, the stream opens a `VHD.Image` of
// its own from `path` or `fd` (0.5.0 took these options but could not open them).
//
// Every chunk is one native read of `highWaterMark` bytes into a new Buffer; the native
// read fills the blocks a dynamic or differencing image has not allocated with zeros,
// without reading the file. A read stream keeps up to READ_AHEAD reads in flight, so that
// the thread pool reads the next chunks while the consumer handles this one. Writes go to the image as they come (`_writev` joins the chunks
// that queued up meanwhile into one write).

const { Readable, Writable } = require('node:stream')
const { Buffer, constants: bufferConstants } = require('node:buffer')
const {
  invalidArgType,
  outOfRange,
  toIndex,
  toOptionsObject,
  pastTheEndError,
} = require('./args.js')
const { kReadInto, kWriteFrom, kWhenOpen, kCloser } = require('./protocol.js')
const { Disk } = require('./disk.js')
const { Image } = require('./image.js')

/** Bytes per chunk unless `highWaterMark` says otherwise. */
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024
/**
 * Chunks a read stream reads ahead of its consumer. One read at a time leaves the thread
 * pool idle while JavaScript handles a chunk; a few in flight keep both busy (measured: 1.5
 * to 2 times the throughput of one at a time, for 4 MiB of buffers at the default size).
 */
const READ_AHEAD = 4

const kOwnsImage = Symbol('ownsImage')
const kCloseImage = Symbol('closeImage')
const kCloseError = Symbol('closeError')
const kLimit = Symbol('limit')
const kAhead = Symbol('ahead') // reads in flight, oldest first: { buffer, length, result }
const kNext = Symbol('next') // where the next read ahead starts
const kWaiting = Symbol('waiting') // waiting for the oldest read to settle
const kFill = Symbol('fill')
const kSize = Symbol('size')
const kFlush = Symbol('flush')
const kWriteChunks = Symbol('writeChunks')

/**
 * What both streams take: the image (given, or a `VHD.Image` made from `path`/`fd`/`flags`/
 * `mode`), `start`, `highWaterMark` and `autoClose`.
 */
function commonOptions(options, defaultFlags) {
  let image = options.image
  const owned = image === undefined || image === null
  if (owned) {
    // `new VHD.Image` checks path, fd, flags, mode and the open options.
    image = new Image({ ...options, flags: options.flags ?? defaultFlags })
  } else if (!(image instanceof Image) && !(image instanceof Disk) && !(typeof image === 'object' && image[kCloser] instanceof Disk)) {
    throw invalidArgType('options.image', 'an instance of VHD.Image, VHD.Fixed, VHD.Dynamic, VHD.Differencing or VHD.Partition', image)
  }
  const start = options.start === undefined || options.start === null ? 0 : toIndex(options.start, 'options.start')
  let highWaterMark = DEFAULT_HIGH_WATER_MARK
  if (options.highWaterMark !== undefined && options.highWaterMark !== null) {
    highWaterMark = toIndex(options.highWaterMark, 'options.highWaterMark', bufferConstants.MAX_LENGTH)
    if (highWaterMark === 0) throw outOfRange('options.highWaterMark', `>= 1 && <= ${bufferConstants.MAX_LENGTH}`, 0)
  }
  let autoClose = owned
  if (options.autoClose !== undefined && options.autoClose !== null) {
    if (typeof options.autoClose !== 'boolean') throw invalidArgType('options.autoClose', 'of type boolean', options.autoClose)
    autoClose = options.autoClose
  }
  return { image, owned, start, highWaterMark, autoClose }
}

/** Waits until the image is open (opening it when the stream made it); resolves to its size. */
function ready(stream) {
  const image = stream.image
  const opened = stream[kOwnsImage] ? image.open() : image[kWhenOpen]()
  return opened.then(() => Number(image.size))
}

/** After `_construct`: the events fs streams emit once their file is open. */
function emitOpen(stream) {
  stream.emit('open', stream.image.fd ?? undefined)
  stream.emit('ready')
}

/** Closes what a stream reads or writes: the image, or a partition's disk. */
function closeImage(image) {
  return (image[kCloser] ?? image).close()
}

/** `_destroy`: closes the image when the stream should, then reports. */
function destroyStream(stream, error, callback) {
  const close = stream[kCloseImage] || stream.autoClose
  if (!close) return callback(error)
  closeImage(stream.image).then(
    () => callback(error),
    (closeError) => {
      // Already closed (or never opened): nothing to close.
      if (closeError.code !== 'ERR_VHD_CLOSED') stream[kCloseError] = closeError
      callback(error || stream[kCloseError] || null)
    },
  )
}

/**
 * `close(callback)`: ends the stream and closes its image, whatever `autoClose` says (as
 * 0.5.0's `close` and fs streams' `close` do); `callback(error)` once both are done. A read
 * stream is destroyed at once; a write stream is ended, so that what was written reaches
 * the image first.
 */
function closeStream(stream, callback, end) {
  if (callback !== undefined && typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
  stream[kCloseImage] = true
  if (!stream.destroyed) {
    if (callback) stream.once('close', () => callback(stream[kCloseError] ?? null))
    if (end && !stream.writableEnded) stream.end()
    else if (!end) stream.destroy()
    return
  }
  // Destroyed already, the image left open: close it now.
  const done = (error) => callback && callback(error)
  const closing = closeImage(stream.image)
  closing.then(
    () => done(null),
    (error) => done(error.code === 'ERR_VHD_CLOSED' ? null : error),
  )
}

/**
 * A readable stream of a virtual disk, in chunks of `highWaterMark` bytes (default 1 MiB).
 *
 * Options: `image` (an open `VHD.Image`, `VHD.Fixed`, `VHD.Dynamic` or `VHD.Differencing`;
 * one being opened is waited for), or `path`/`fd`/`flags` (default 'r')/`mode` and the
 * options of `VHD.Image` to open one; `start` (default 0); `end` (exclusive, default the end
 * of the disk); `highWaterMark`; `autoClose` (close the image when the stream ends or fails:
 * default false for a given image, true for one the stream opened); `encoding`, `signal`,
 * `emitClose` as for any Readable.
 */
class ReadStream extends Readable {
  constructor(options) {
    options = toOptionsObject(options)
    const common = commonOptions(options, 'r')
    let end = Infinity
    if (options.end !== undefined && options.end !== null && options.end !== Infinity) {
      end = toIndex(options.end, 'options.end')
      if (end < common.start) throw outOfRange('options.end', `>= ${common.start} (options.start)`, end)
    }
    super({
      highWaterMark: common.highWaterMark,
      encoding: options.encoding,
      signal: options.signal,
      emitClose: options.emitClose ?? true,
      autoDestroy: true,
    })
    /** The image read from. */
    this.image = common.image
    this.path = common.owned ? common.image.path : null
    this.fd = common.owned ? common.image.fd : null
    this.flags = options.flags ?? 'r'
    this.mode = options.mode ?? 0o666
    this.start = common.start
    /** Exclusive; Infinity: up to the end of the disk. */
    this.end = end
    /** The virtual disk offset of the next read. */
    this.position = common.start
    this.bytesRead = 0
    this.autoClose = common.autoClose
    /** Bytes per chunk (0.5.0's property). */
    this.highWaterMark = common.highWaterMark
    this[kOwnsImage] = common.owned
    this[kCloseImage] = false
    this[kCloseError] = null
    this[kLimit] = 0
    this[kAhead] = []
    this[kNext] = common.start
    this[kWaiting] = false
  }

  _construct(callback) {
    ready(this).then(
      (size) => {
        this[kLimit] = Math.min(this.end, size)
        this.fd = this[kOwnsImage] ? this.image.fd : this.fd
        callback()
        emitOpen(this)
      },
      (error) => callback(error),
    )
  }

  _read() {
    this[kFill]()
  }

  /**
   * Starts reads up to READ_AHEAD chunks ahead, then pushes the oldest when it is done (in
   * order: chunks are pushed as the disk holds them), and goes on while the consumer wants
   * more. Each read's outcome is caught when it starts, so that a read failing after the
   * stream was destroyed is not an unhandled rejection.
   */
  [kFill]() {
    const ahead = this[kAhead]
    while (ahead.length < READ_AHEAD && this[kNext] < this[kLimit]) {
      const position = this[kNext]
      const length = Math.min(this.highWaterMark, this[kLimit] - position)
      const buffer = Buffer.allocUnsafe(length)
      const result = this.image[kReadInto](buffer, 0, length, position).then(
        (bytesRead) => ({ bytesRead }),
        (error) => ({ error }),
      )
      ahead.push({ buffer, length, result })
      this[kNext] = position + length
    }
    if (ahead.length === 0) {
      this.push(null)
      return
    }
    if (this[kWaiting]) return
    this[kWaiting] = true
    ahead[0].result.then(({ bytesRead, error }) => {
      this[kWaiting] = false
      if (this.destroyed) return
      if (error) {
        this.destroy(error)
        return
      }
      const { buffer, length } = ahead.shift()
      if (bytesRead === 0) {
        this.push(null)
        return
      }
      this.position += bytesRead
      this.bytesRead += bytesRead
      const more = this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))
      if (bytesRead < length) {
        // The disk ended early (it cannot shrink while open, but a short read ends the stream).
        this.push(null)
        return
      }
      if (more) this[kFill]()
    })
  }

  _destroy(error, callback) {
    destroyStream(this, error, callback)
  }

  /** Ends the stream and closes the image (whatever `autoClose` says); `callback(error)`. */
  close(callback) {
    closeStream(this, callback, false)
  }

  /** 0.5.0 had the stream opened by this call; the stream now opens by itself. */
  open() {}
}

/**
 * A writable stream into a virtual disk, from `start`.
 *
 * Options: `image`, or `path`/`fd`/`flags` (default 'w', which opens the existing image
 * read-write)/`mode` as for `ReadStream`; `start` (default 0); `highWaterMark` (default
 * 1 MiB); `autoClose` (as for `ReadStream`); `flush` (default true: 'finish' is emitted once
 * everything written is durable, the image's metadata included; false: once it is written);
 * `signal`, `emitClose` as for any Writable.
 *
 * A write that would run past the end of the disk writes nothing and fails the stream with
 * ERR_VHD_OUT_OF_RANGE (the writes before it, which fit, are written).
 */
class WriteStream extends Writable {
  constructor(options) {
    options = toOptionsObject(options)
    const common = commonOptions(options, 'w')
    if (options.flush !== undefined && options.flush !== null && typeof options.flush !== 'boolean') {
      throw invalidArgType('options.flush', 'of type boolean', options.flush)
    }
    super({
      highWaterMark: common.highWaterMark,
      decodeStrings: true,
      signal: options.signal,
      emitClose: options.emitClose ?? true,
      autoDestroy: true,
    })
    /** The image written to. */
    this.image = common.image
    this.path = common.owned ? common.image.path : null
    this.fd = common.owned ? common.image.fd : null
    this.flags = options.flags ?? 'w'
    this.mode = options.mode ?? 0o666
    this.start = common.start
    /** The virtual disk offset of the next write. */
    this.position = common.start
    this.bytesWritten = 0
    this.autoClose = common.autoClose
    /** 0.5.0's property. */
    this.highWaterMark = common.highWaterMark
    this[kOwnsImage] = common.owned
    this[kCloseImage] = false
    this[kCloseError] = null
    this[kFlush] = options.flush !== false
    this[kSize] = 0
  }

  _construct(callback) {
    ready(this).then(
      (size) => {
        this[kSize] = size
        this.fd = this[kOwnsImage] ? this.image.fd : this.fd
        callback()
        emitOpen(this)
      },
      (error) => callback(error),
    )
  }

  _write(chunk, encoding, callback) {
    this[kWriteChunks]([chunk], callback)
  }

  _writev(chunks, callback) {
    this[kWriteChunks](
      chunks.map((c) => c.chunk),
      callback,
    )
  }

  /**
   * Writes the leading chunks that fit on the disk as a whole (joined into one write), and
   * fails with ERR_VHD_OUT_OF_RANGE at the first that does not: that chunk writes nothing.
   * The check comes before any write, so no byte of a chunk that runs past the end lands.
   */
  [kWriteChunks](chunks, callback) {
    const position = this.position
    const size = this[kSize]
    let fitting = 0
    let length = 0
    while (fitting < chunks.length && position + length + chunks[fitting].length <= size) {
      length += chunks[fitting].length
      fitting += 1
    }
    const data = fitting === 1 ? chunks[0] : Buffer.concat(chunks.slice(0, fitting), length)
    const written = length > 0 ? this.image[kWriteFrom](data, 0, length, position) : Promise.resolve(0)
    written.then(
      (bytesWritten) => {
        this.position = position + bytesWritten
        this.bytesWritten += bytesWritten
        if (fitting === chunks.length) return callback()
        const at = position + length
        const message = `write of ${chunks[fitting].length} bytes at offset ${at} runs past the end of the virtual disk (${size} bytes); nothing of it was written`
        callback(pastTheEndError(this.image.path, message))
      },
      (error) => callback(error),
    )
  }

  _final(callback) {
    if (!this[kFlush]) return callback()
    this.image.flush().then(() => callback(), (error) => callback(error))
  }

  _destroy(error, callback) {
    destroyStream(this, error, callback)
  }

  /** Ends the stream, then closes the image (whatever `autoClose` says); `callback(error)`. */
  close(callback) {
    closeStream(this, callback, true)
  }

  /** 0.5.0 had the stream opened by this call; the stream now opens by itself. */
  open() {}
}

// `createReadStream` and `createWriteStream` of both image classes: here, beside the streams
// they make, because a stream that opens its own image makes a `VHD.Image`; were they
// written in lib/disk.js and lib/image.js, those modules and this one would require each
// other. index.js loads this module, so every image has them.
const factories = {
  /**
   * A readable stream of the virtual disk (see `VHD.ReadStream`), from `start` up to `end`
   * (exclusive, as in vhd@0.5.0). The image stays open when the stream ends, unless
   * `autoClose` is true.
   * @this {Disk | Image}
   * @param {object} [options]
   */
  createReadStream(options) {
    return new ReadStream({ ...toOptionsObject(options), image: this })
  },
  /**
   * A writable stream into the virtual disk from `start` (see `VHD.WriteStream`). The image
   * stays open when the stream finishes, unless `autoClose` is true.
   * @this {Disk | Image}
   * @param {object} [options]
   */
  createWriteStream(options) {
    return new WriteStream({ ...toOptionsObject(options), image: this })
  },
}
for (const Class of [Disk, Image]) {
  for (const [name, method] of Object.entries(factories)) {
    Object.defineProperty(Class.prototype, name, { value: method, writable: true, configurable: true, enumerable: false })
  }
}

module.exports = { ReadStream, WriteStream, DEFAULT_HIGH_WATER_MARK, factories }
