'use strict'

// The maintenance operations on whole images (`VHD.convert`, `VHD.check`, `VHD.compact`…)
// and `VHD.createVhdStream`. The work runs natively on the libuv thread pool (src/ops.rs);
// this module checks the arguments, wires `onProgress` and `signal` to the native operation,
// and shapes the results.
//
// Progress and cancellation: the native side reports at most once per 1 % or per 100 ms.
// Reports are delivered only while the promise is pending, in order, and on success the
// last one is always `{ bytesDone: bytesTotal, bytesTotal }`. Aborting `signal` cancels the
// native operation at its next unit of work; the promise then rejects with an `AbortError`
// (`code` 'ABORT_ERR', `cause` the signal's reason) once the operation has stopped and
// cleaned up. An operation that finished before it saw the abort resolves normally.

const { Buffer } = require('node:buffer')
const { Readable } = require('node:stream')
const native = require('../binding.js')
const { VHD_EPOCH_MS } = require('./constants.js')
const {
  invalidArgType,
  invalidArgValue,
  outOfRange,
  describe,
  toIndex,
  toPath,
  optionalBoolean,
  toOptionsObject,
  toOpenOptions,
  overNamedParent,
  call,
  noArgs,
  NAMES,
} = require('./args.js')
const { internal } = require('./disk.js')

/** Bytes the VHD stream asks the native side for at a time. */
const STREAM_CHUNK = 1024 * 1024

/** What Node's own APIs reject with when their `signal` aborts (`fs.promises`, `stream`…). */
class AbortError extends Error {
  constructor(message = 'The operation was aborted', options = undefined) {
    super(message, options)
    this.code = 'ABORT_ERR'
    this.name = 'AbortError'
  }
}

function abortError(signal) {
  return new AbortError(undefined, { cause: signal.reason })
}

// ---------------------------------------------------------------------------------------
// Argument checks

/** `signal` and `onProgress` of an options object. */
function toControl(options) {
  const { signal, onProgress } = options
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || !('aborted' in signal))) {
    throw invalidArgType('options.signal', 'an instance of AbortSignal', signal)
  }
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    throw invalidArgType('options.onProgress', 'of type function', onProgress)
  }
  return { signal, onProgress }
}

/** The open options (parents, checksums, locking) an operation passes on to the core. */
function toNativeOpen(options) {
  const open = toOpenOptions(options)
  delete open.readOnly
  return open
}

const { outputFormats: OUTPUT_FORMATS, sourceFormats: SOURCE_FORMATS } = NAMES
/** A VHD stream makes a VHD: every output format but raw. */
const STREAM_FORMATS = OUTPUT_FORMATS.filter((format) => format !== 'raw')

function oneOf(value, allowed, name) {
  if (!allowed.includes(value)) {
    throw invalidArgValue(name, `must be ${allowed.map((a) => `'${a}'`).join(', ')}.${describe(value)}`)
  }
  return value
}

/** A unique id: 16 bytes, or a UUID string (dashes optional), as 32 hex digits. */
function toUniqueId(value) {
  if (typeof value === 'string') {
    const hex = value.replace(/-/g, '')
    if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
      throw invalidArgValue('options.uniqueId', `must be a UUID (32 hexadecimal digits).${describe(value)}`)
    }
    return hex.toLowerCase()
  }
  if (ArrayBuffer.isView(value)) {
    if (value.byteLength !== 16) throw invalidArgValue('options.uniqueId', `must be 16 bytes long. Received ${value.byteLength} bytes`)
    return Buffer.from(value.buffer, value.byteOffset, 16).toString('hex')
  }
  throw invalidArgType('options.uniqueId', 'of type string or an instance of Buffer, TypedArray, or DataView', value)
}

/** A time stamp (a Date, or milliseconds since the Unix epoch) as seconds since 2000-01-01. */
function toTimestamp(value) {
  let ms = value
  if (value instanceof Date) ms = value.getTime()
  else if (typeof value !== 'number') throw invalidArgType('options.timestamp', 'of type number or an instance of Date', value)
  const seconds = Math.floor((ms - VHD_EPOCH_MS) / 1000)
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 0xffffffff) {
    throw outOfRange('options.timestamp', 'a time from 2000-01-01 to 2136-02-07 (UTC)', value)
  }
  return seconds
}

/** The native form of convert's (and the stream's) options, `to` already chosen. */
function toConvertArgs(options, to) {
  const args = { to, azure: optionalBoolean(options, 'azure'), overwrite: optionalBoolean(options, 'overwrite') }
  if (args.azure && to !== 'fixed') {
    throw invalidArgValue('options.azure', `makes a fixed image; it cannot be combined with '${to}'`)
  }
  if (options.sourceFormat !== undefined) args.sourceFormat = oneOf(options.sourceFormat, SOURCE_FORMATS, 'options.sourceFormat')
  if (options.blockSize !== undefined) args.blockSize = toIndex(options.blockSize, 'options.blockSize')
  if (options.uniqueId !== undefined) args.uniqueId = toUniqueId(options.uniqueId)
  if (options.timestamp !== undefined) args.timestamp = toTimestamp(options.timestamp)
  args.open = toNativeOpen(options)
  return args
}

/** `to` (or the stream's `type`): required, except that `azure` alone means 'fixed'. */
function outputFormat(options, key, allowed) {
  if (options[key] === undefined && options.azure === true) return 'fixed'
  return oneOf(options[key], allowed, `options.${key}`)
}

/** `(path, options, callback)` or `(path, callback)`. */
function shift(options, callback) {
  return typeof options === 'function' && callback === undefined ? [undefined, options] : [options, callback]
}

// ---------------------------------------------------------------------------------------
// Running an operation with progress and cancellation

/**
 * Starts `start(operation, report)` (which returns the native promise) unless `signal` is
 * already aborted, and ties `signal` and `onProgress` to it.
 *
 * A throwing `onProgress` cancels the operation: the promise rejects with what it threw,
 * once the operation has stopped. But a throw can only cancel what has not happened: when
 * the operation completed anyway (the throw came at the last report, or the cancel reached
 * the core after its last unit of work), its work is committed and the promise resolves;
 * the error is dropped. `discard(result)`, when given, is for a result that is not yet
 * committed to anything (an opened stream): it is released and the promise rejects.
 */
function run({ signal, onProgress }, start, discard) {
  if (signal?.aborted) return Promise.reject(abortError(signal))
  const operation = new native.Operation()
  let settled = false
  let delivered = null
  let progressFailed = false
  let progressError
  const deliver = (bytesDone, bytesTotal) => {
    delivered = { bytesDone, bytesTotal }
    onProgress({ bytesDone, bytesTotal })
  }
  // Called by the native side (through a threadsafe function) on the JavaScript thread.
  const report = onProgress && (({ bytesDone, bytesTotal }) => {
    // Never after the promise settled, never backwards.
    if (settled || progressFailed || (delivered && bytesDone < delivered.bytesDone)) return
    try {
      deliver(bytesDone, bytesTotal)
    } catch (error) {
      // A throwing onProgress stops the operation; the promise rejects with its error
      // unless the operation completes anyway.
      progressFailed = true
      progressError = error
      operation.cancel()
    }
  })
  const onAbort = () => operation.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  const finish = () => {
    settled = true
    signal?.removeEventListener('abort', onAbort)
  }
  let pending
  try {
    pending = start(operation, report)
  } catch (error) {
    finish()
    throw error
  }
  return pending.then(
    (result) => {
      finish()
      // Complete the reports: the last ones may still be queued, or were throttled.
      const last = !progressFailed && onProgress && operation.lastProgress
      if (last && (delivered?.bytesDone !== last.bytesTotal || delivered?.bytesTotal !== last.bytesTotal)) {
        try {
          deliver(last.bytesTotal, last.bytesTotal)
        } catch (error) {
          progressFailed = true
          progressError = error
        }
      }
      // Done and committed: a throw cannot undo it, unless the result is only held (a
      // stream), which is released.
      if (!progressFailed || !discard) return result
      return discard(result).then(() => Promise.reject(progressError))
    },
    (error) => {
      finish()
      if (progressFailed) throw progressError
      if (error?.code === 'ERR_VHD_CANCELLED' && signal?.aborted) throw abortError(signal)
      throw error
    },
  )
}

// ---------------------------------------------------------------------------------------
// The operations

/** Converts `source` (raw or VHD) into a new raw, fixed or dynamic file at `destination`. */
function convert(source, destination, options, callback) {
  return call(
    callback,
    () => {
      if (options === undefined || options === null) throw invalidArgType('options', 'of type object', options)
      const opts = toOptionsObject(options)
      const to = outputFormat(opts, 'to', OUTPUT_FORMATS)
      return [toPath(source, 'source'), toPath(destination, 'destination'), toConvertArgs(opts, to), toControl(opts)]
    },
    ([src, dst, args, control]) => run(control, (op, report) => native.convert(src, dst, args, op, report)),
    (report) => [report],
  )
}

/**
 * A Readable of the VHD file `convert` would write for `source`, computed as it is read;
 * its `length` (bytes) is known before the first byte. Resolves once the source is open
 * and the output planned (a dynamic one reads the whole source first: that is what
 * `onProgress` reports and `signal` stops).
 */
function createVhdStream(source, options) {
  let src, convertArgs, control, highWaterMark
  try {
    const opts = toOptionsObject(options)
    const type = outputFormat(opts, 'type', STREAM_FORMATS)
    src = toPath(source, 'source')
    convertArgs = toConvertArgs(opts, type)
    control = toControl(opts)
    if (opts.highWaterMark !== undefined) toIndex(opts.highWaterMark, 'options.highWaterMark')
    highWaterMark = opts.highWaterMark
  } catch (error) {
    return Promise.reject(error)
  }
  // A stream opened when onProgress threw is closed (its source released at once, not at
  // garbage collection): nothing was committed, so the throw cancels it.
  const close = (stream) => stream.close().then(noArgs, noArgs)
  return run(control, (op, report) => native.openVhdStream(src, convertArgs, op, report), close).then((stream) => {
    try {
      return new VhdStream(stream, highWaterMark)
    } catch (error) {
      return close(stream).then(() => Promise.reject(error))
    }
  })
}

const kNative = Symbol('native')
const kPosition = Symbol('position')

/** The bytes of a VHD file, read natively 1 MiB at a time as the consumer asks for them. */
class VhdStream extends Readable {
  constructor(nativeStream, highWaterMark) {
    super(highWaterMark === undefined ? {} : { highWaterMark })
    this[kNative] = nativeStream
    this[kPosition] = 0
    /** The VHD file's size in bytes, known before the first byte (read-only). */
    this.length = nativeStream.length
    Object.defineProperty(this, 'length', { writable: false })
    // How the source is read and why, and what the caller should know: as convert reports.
    Object.defineProperty(this, 'detected', { value: Object.freeze({ ...nativeStream.detected }), enumerable: true })
    Object.defineProperty(this, 'warnings', { value: Object.freeze([...nativeStream.warnings]), enumerable: true })
  }

  _read() {
    const position = this[kPosition]
    const size = Math.min(STREAM_CHUNK, this.length - position)
    if (size <= 0) {
      this.push(null)
      return
    }
    this[kNative].read(size, position).then(
      (buffer) => {
        if (this.destroyed) return
        if (buffer.length !== size) {
          const message = `the VHD stream ended at byte ${position + buffer.length} of ${this.length}`
          this.destroy(Object.assign(new Error(message), { code: 'ERR_VHD_INTERNAL' }))
          return
        }
        this[kPosition] = position + size
        this.push(buffer)
        if (this[kPosition] === this.length) this.push(null)
      },
      (error) => this.destroy(error),
    )
  }

  _destroy(error, callback) {
    // Closes the source once a read in progress is done.
    this[kNative].close().then(
      () => callback(error),
      (closeError) => callback(error || closeError),
    )
  }
}

/** `check` (and, with `repair`, `check --repair`): resolves to a report of what was found. */
function check(path, options, callback) {
  ;[options, callback] = shift(options, callback)
  return call(
    callback,
    () => {
      const opts = toOptionsObject(options)
      const repair = optionalBoolean(opts, 'repair')
      const force = optionalBoolean(opts, 'force')
      if (force && !repair) throw invalidArgValue('options.force', 'only applies with options.repair')
      return [
        toPath(path),
        { repair, force, skipParent: optionalBoolean(opts, 'skipParent'), open: toNativeOpen(opts) },
      ]
    },
    // The core's one shape of the report (`vhd check --json` prints the same), unchanged.
    ([file, args]) => native.check(file, args),
    (report) => [report],
  )
}

/** An operation on one image in place, with progress: `compact` and `commit`. */
function inPlace(name) {
  return function operation(path, options, callback) {
    ;[options, callback] = shift(options, callback)
    return call(
      callback,
      () => {
        const opts = toOptionsObject(options)
        return [toPath(path), { open: toNativeOpen(opts) }, toControl(opts)]
      },
      ([file, args, control]) => run(control, (op, report) => native[name](file, args, op, report)),
      (report) => [report],
    )
  }
}

/** Rewrites a dynamic or differencing image without the blocks it does not need. */
const compact = inPlace('compact')

/** Writes a differencing image's sectors into its parent, then empties it. */
const commit = inPlace('commit')

/** Changes the virtual size of an image to `size` bytes. */
function resize(path, size, options, callback) {
  ;[options, callback] = shift(options, callback)
  return call(
    callback,
    () => {
      const opts = toOptionsObject(options)
      return [toPath(path), toIndex(size, 'size'), { force: optionalBoolean(opts, 'force'), open: toNativeOpen(opts) }, toControl(opts)]
    },
    ([file, bytes, args, control]) => run(control, (op, report) => native.resize(file, bytes, args, op, report)),
    (report) => [report],
  )
}

/**
 * Points a differencing image at a new parent (a moved or copied one), opening the child
 * over it as `options` say (`ignoreParentTimestamp`, `parentRoot`, `lock`…). The new parent
 * is the second argument: `parent`/`parents` are refused.
 */
function rebase(path, parent, options, callback) {
  ;[options, callback] = shift(options, callback)
  return call(
    callback,
    () => {
      const opts = toOptionsObject(options)
      for (const key of ['parent', 'parents']) {
        if (opts[key] !== undefined) throw invalidArgValue(`options.${key}`, 'is not for rebase: the new parent is its second argument')
      }
      return [toPath(path), toPath(parent, 'parent'), { open: toNativeOpen(opts) }]
    },
    ([file, newParent, args]) => native.rebase(file, newParent, args),
    null,
  )
}

/**
 * Creates `child`, a differencing image over `path` (opened as `options` say: `parentRoot`
 * for the images below it…), and resolves to it, open read-write.
 */
function snapshot(path, child, options, callback) {
  ;[options, callback] = shift(options, callback)
  return call(
    callback,
    () => [toPath(path), toPath(child, 'child'), toNativeOpen(toOptionsObject(options))],
    ([file, childPath, open]) =>
      native
        .snapshot(file, childPath, open)
        .then((image) => internal.wrap(image, childPath, overNamedParent(file, { ...open, readOnly: false }))),
    (disk) => [disk],
  )
}

/**
 * Describes an image (opened read-only): the object the CLI's `info --json` prints, which
 * the core builds once (vhd_core::ops::ImageInfo::to_json) and the binding returns as is.
 */
function info(path, options, callback) {
  ;[options, callback] = shift(options, callback)
  return call(
    callback,
    () => [toPath(path), toNativeOpen(toOptionsObject(options))],
    ([file, open]) => native.info(file, open),
    (result) => [result],
  )
}

module.exports = {
  AbortError,
  convert,
  createVhdStream,
  check,
  compact,
  commit,
  resize,
  rebase,
  snapshot,
  info,
  VhdStream,
}
