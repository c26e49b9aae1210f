'use strict'

// The JavaScript face of the vhd native addon: `VHD.Fixed`, `VHD.Dynamic` and
// `VHD.Differencing` images with callback and promise forms of every method, `VHD.open`,
// `VHD.create` and `VHD.TYPE`.
// All format work happens in Rust (core/); this file checks arguments, keeps the open/closed
// state and shapes the metadata like vhd@0.5.0's Footer and Header objects.

const { Buffer, constants: bufferConstants } = require('node:buffer')
const { fileURLToPath } = require('node:url')
const native = require('./binding.js')
const { version } = require('./package.json')

/** 2000-01-01T00:00:00Z, the VHD epoch, in ms since the Unix epoch. */
const VHD_EPOCH_MS = 946684800000

/** Disk types, with vhd@0.5.0's names and values. */
const TYPE = Object.freeze({
  NONE: 0,
  RESERVED_DEPRECATED1: 1,
  FIXED: 2,
  DYNAMIC: 3,
  DIFF: 4,
  RESERVED_DEPRECATED2: 5,
  RESERVED_DEPRECATED3: 6,
})

// ---------------------------------------------------------------------------------------
// Errors and argument checks, in the style of Node's own (`code` on every error).

function withCode(error, code) {
  error.code = code
  return error
}

function describe(value) {
  if (value == null) return ` Received ${value}`
  if (typeof value === 'function') return ` Received function ${value.name || '<anonymous>'}`
  if (typeof value === 'object') {
    const name = value.constructor && value.constructor.name
    return name ? ` Received an instance of ${name}` : ' Received an object'
  }
  let shown = String(value).slice(0, 28)
  if (typeof value === 'string') shown = `'${shown}'`
  if (typeof value === 'bigint') shown += 'n'
  return ` Received type ${typeof value} (${shown})`
}

function invalidArgType(name, expected, value) {
  return withCode(
    new TypeError(`The "${name}" argument must be ${expected}.${describe(value)}`),
    'ERR_INVALID_ARG_TYPE',
  )
}

function invalidArgValue(name, reason) {
  return withCode(new TypeError(`The argument '${name}' ${reason}`), 'ERR_INVALID_ARG_VALUE')
}

function outOfRange(name, range, value) {
  const shown = typeof value === 'bigint' ? `${value}n` : String(value)
  return withCode(
    new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${shown}`),
    'ERR_OUT_OF_RANGE',
  )
}

function stateError(code, message) {
  return withCode(new Error(message), code)
}

/** A non-negative safe integer (Number, or BigInt in that range) as a Number. */
function toIndex(value, name, max = Number.MAX_SAFE_INTEGER) {
  if (typeof value === 'bigint') {
    if (value < 0n || value > BigInt(max)) throw outOfRange(name, `>= 0 && <= ${max}`, value)
    return Number(value)
  }
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number or bigint', value)
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value)
  if (value < 0 || value > max) throw outOfRange(name, `>= 0 && <= ${max}`, value)
  return value
}

function toPath(path, name = 'path') {
  if (path instanceof URL) return fileURLToPath(path)
  if (typeof path !== 'string') throw invalidArgType(name, 'of type string or an instance of URL', path)
  if (path.includes('\u0000')) throw invalidArgValue(name, 'must be a string without null bytes')
  return path
}

/** Any Buffer, TypedArray or DataView, as a Uint8Array over the same bytes. */
function toBytes(buffer) {
  if (buffer instanceof Uint8Array) return buffer
  if (ArrayBuffer.isView(buffer)) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
  throw invalidArgType('buffer', 'an instance of Buffer, TypedArray, or DataView', buffer)
}

function optionalBoolean(options, key, prefix = 'options') {
  const value = options[key]
  if (value !== undefined && typeof value !== 'boolean') {
    throw invalidArgType(`${prefix}.${key}`, 'of type boolean', value)
  }
  return value === true
}

function toOptionsObject(options) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
  return options
}

/** A parent named by the caller: a path (a VHD image), or `{ path, raw }`. */
function toParent(value, name) {
  if (typeof value === 'string' || value instanceof URL) return { path: toPath(value, name), raw: false }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return { path: toPath(value.path, `${name}.path`), raw: optionalBoolean(value, 'raw', name) }
  }
  throw invalidArgType(name, 'of type string, an instance of URL, or an object with a path', value)
}

/** `parent` or `parents` (nearest first) as one list. */
function toParents(options) {
  if (options.parent !== undefined && options.parents !== undefined) {
    throw invalidArgValue('options.parent', 'cannot be combined with options.parents (list every parent in options.parents)')
  }
  if (options.parent !== undefined) return [toParent(options.parent, 'options.parent')]
  if (options.parents === undefined) return []
  if (!Array.isArray(options.parents)) throw invalidArgType('options.parents', 'an instance of Array', options.parents)
  return options.parents.map((parent, i) => toParent(parent, `options.parents[${i}]`))
}

function toOpenOptions(options) {
  options = toOptionsObject(options)
  return {
    readOnly: optionalBoolean(options, 'readOnly'),
    ignoreChecksums: optionalBoolean(options, 'ignoreChecksums'),
    parents: toParents(options),
    ignoreParentTimestamp: optionalBoolean(options, 'ignoreParentTimestamp'),
  }
}

const CREATE_TYPES = new Map([
  ['fixed', 'fixed'],
  ['dynamic', 'dynamic'],
  ['differencing', 'differencing'],
  [TYPE.FIXED, 'fixed'],
  [TYPE.DYNAMIC, 'dynamic'],
  [TYPE.DIFF, 'differencing'],
])

function toCreateOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'of type object', options)
  }
  const type = CREATE_TYPES.get(options.type)
  if (type === undefined) {
    throw invalidArgValue('options.type', `must be 'fixed', 'dynamic' or 'differencing'.${describe(options.type)}`)
  }
  const result = { type }
  if (type === 'differencing') {
    // The size is optional: absent (or 0), it is the parent's.
    if (options.parent === undefined) {
      throw invalidArgType('options.parent', 'of type string or an instance of URL', undefined)
    }
    result.parent = toPath(options.parent, 'options.parent')
    if (options.size !== undefined) result.size = toIndex(options.size, 'options.size')
  } else {
    if (options.parent !== undefined) {
      throw invalidArgValue('options.parent', `is only for differencing images, not ${type} ones`)
    }
    if (options.size === undefined) throw invalidArgType('options.size', 'of type number or bigint', undefined)
    result.size = toIndex(options.size, 'options.size')
  }
  if (options.blockSize !== undefined) result.blockSize = toIndex(options.blockSize, 'options.blockSize')
  if (options.creatorApplication !== undefined) {
    if (typeof options.creatorApplication !== 'string') {
      throw invalidArgType('options.creatorApplication', 'of type string', options.creatorApplication)
    }
    result.creatorApplication = options.creatorApplication
  }
  result.overwrite = optionalBoolean(options, 'overwrite')
  return result
}

// ---------------------------------------------------------------------------------------
// Callback or promise: `prepare` checks the arguments (a TypeError/RangeError is thrown
// synchronously when there is a callback, and rejects the promise otherwise); `perform`
// does the work and returns a promise (whatever it throws rejects); `toArgs` spreads the
// result into the callback's arguments.

function attempt(perform, args) {
  try {
    return Promise.resolve(perform(args))
  } catch (error) {
    return Promise.reject(error)
  }
}

function call(callback, prepare, perform, toArgs) {
  if (callback === undefined) {
    let args
    try {
      args = prepare()
    } catch (error) {
      return Promise.reject(error)
    }
    return attempt(perform, args)
  }
  if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
  const args = prepare()
  attempt(perform, args).then(
    (value) => process.nextTick(callback, null, ...toArgs(value)),
    (error) => process.nextTick(callback, error),
  )
  return undefined
}

const none = () => []
const noArgs = () => undefined

// ---------------------------------------------------------------------------------------
// Metadata, shaped like vhd@0.5.0's Footer, Header and Locator objects.

function versionParts(value) {
  return { major: value >>> 16, minor: value & 0xffff }
}

/** Bytes up to the first NUL, as ASCII (0.5.0 keeps trailing spaces: 'win '). */
function asciiField(bytes) {
  const end = bytes.indexOf(0)
  return bytes.toString('ascii', 0, end === -1 ? bytes.length : end)
}

function shapeFooter(f) {
  return {
    signature: f.cookie,
    features: f.features,
    formatVersion: versionParts(f.formatVersion),
    dataOffset: BigInt(f.dataOffset),
    timestamp: f.timestamp * 1000 + VHD_EPOCH_MS,
    creatorApplication: asciiField(f.creatorApplication),
    creatorVersion: versionParts(f.creatorVersion),
    creatorHostOS: f.creatorHostOs,
    originalSize: BigInt(f.originalSize),
    currentSize: BigInt(f.currentSize),
    diskGeometry: { cylinders: f.cylinders, heads: f.heads, sectors: f.sectorsPerTrack },
    diskType: f.diskType,
    checksum: f.checksum,
    uuid: Buffer.from(f.uniqueId),
    savedState: f.savedState,
    reserved: Buffer.from(f.reserved),
  }
}

function shapeHeader(h) {
  return {
    signature: h.cookie,
    dataOffset: BigInt(h.dataOffset),
    tableOffset: BigInt(h.tableOffset),
    headerVersion: versionParts(h.headerVersion),
    maxTableEntries: h.maxTableEntries,
    // vhd@0.5.0 calls the block size "sectorSize".
    sectorSize: h.blockSize,
    checksum: h.checksum,
    parentId: Buffer.from(h.parentUniqueId),
    parentTimestamp: h.parentTimestamp * 1000 + VHD_EPOCH_MS,
    reserved1: h.reserved1,
    parentName: h.parentName,
    parentLocators: h.parentLocators.map((l) => ({
      platformCode: l.platformCode,
      dataSpace: l.platformDataSpace,
      dataLength: l.platformDataLength,
      reserved: l.reserved,
      dataOffset: BigInt(l.platformDataOffset),
      // The path the entry holds, decoded (not a 0.5.0 field).
      text: l.text ?? null,
    })),
    reserved2: Buffer.from(h.reserved2),
  }
}

/** The flat native list of parents (nearest first) as nested descriptions. */
function shapeParent(parents, index = 0) {
  if (index >= parents.length) return null
  const p = parents[index]
  return {
    path: p.path,
    type: p.diskType ?? null,
    size: p.size,
    uuid: p.uniqueId ? Buffer.from(p.uniqueId) : null,
    raw: p.raw,
    parent: shapeParent(parents, index + 1),
  }
}

// ---------------------------------------------------------------------------------------
// Images.

const kPath = Symbol('path')
const kOptions = Symbol('options')
const kState = Symbol('state') // 'new' | 'opening' | 'open' | 'closing' | 'closed'
const kNative = Symbol('native')
const kInfo = Symbol('info')
const kPending = Symbol('pending')
const kAttach = Symbol('attach')
const kImage = Symbol('image')
const kTrack = Symbol('track')
const kExpectedType = Symbol('expectedType')

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
    this[kInfo] = null
    this[kPending] = new Set()
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

  /** A fresh copy on every access: changing it changes nothing. */
  get footer() {
    const info = this[kInfo]
    return info ? shapeFooter(info.footer) : undefined
  }

  get header() {
    const info = this[kInfo]
    return info && info.header ? shapeHeader(info.header) : undefined
  }

  /** Blocks allocated so far (dynamic and differencing images). */
  get allocatedBlocks() {
    if (this[kState] !== 'open') return undefined
    return this[kNative].allocatedBlocks() ?? undefined
  }

  [kAttach](image) {
    this[kNative] = image
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

  /** Keeps count of operations in flight, so that `close` can wait for them. */
  [kTrack](promise) {
    const pending = this[kPending]
    const done = () => pending.delete(promise)
    pending.add(promise)
    promise.then(done, done)
    return promise
  }

  open(callback) {
    return call(callback, noArgs, () => {
      const state = this[kState]
      if (state !== 'new' && state !== 'closed') {
        throw stateError('ERR_VHD_ALREADY_OPEN', `${this[kPath]}: the image is already ${state === 'open' ? 'open' : state}`)
      }
      this[kState] = 'opening'
      const options = { ...this[kOptions], expectedType: this.constructor[kExpectedType] }
      return native.open(this[kPath], options).then(
        (image) => {
          this[kAttach](image)
          return this
        },
        (error) => {
          this[kState] = state
          throw error
        },
      )
    }, none)
  }

  read(offset, length, callback) {
    return call(
      callback,
      () => [toIndex(offset, 'offset'), toIndex(length, 'length', bufferConstants.MAX_LENGTH)],
      ([position, length]) => {
        const image = this[kImage]()
        const buffer = Buffer.allocUnsafe(length)
        return this[kTrack](image.read(buffer, 0, length, position)).then((bytesRead) => {
          if (bytesRead < length) buffer.fill(0, bytesRead)
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
        this[kTrack](this[kImage]().write(bytes, 0, bytes.length, position)).then((bytesWritten) => ({
          bytesWritten,
          buffer,
        })),
      (result) => [result.bytesWritten, result.buffer],
    )
  }

  readSync(offset, length) {
    const position = toIndex(offset, 'offset')
    length = toIndex(length, 'length', bufferConstants.MAX_LENGTH)
    const image = this[kImage]()
    const buffer = Buffer.allocUnsafe(length)
    const bytesRead = image.readSync(buffer, 0, length, position)
    if (bytesRead < length) buffer.fill(0, bytesRead)
    return { bytesRead, buffer }
  }

  writeSync(buffer, offset) {
    const bytes = toBytes(buffer)
    const position = toIndex(offset, 'offset')
    const bytesWritten = this[kImage]().writeSync(bytes, 0, bytes.length, position)
    return { bytesWritten, buffer }
  }

  flush(callback) {
    return call(callback, noArgs, () => this[kTrack](this[kImage]().flush()).then(noArgs), none)
  }

  close(callback) {
    return call(callback, noArgs, () => {
      const image = this[kImage]()
      this[kState] = 'closing'
      // Operations already started finish first; new ones fail with ERR_VHD_CLOSED.
      const settled = Promise.allSettled([...this[kPending]])
      return settled
        .then(() => image.close())
        .finally(() => {
          // Closed even when the final flush failed: the error is still reported.
          this[kState] = 'closed'
          this[kNative] = null
          this[kInfo] = null
        })
        .then(noArgs)
    }, none)
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

/** Creates a fixed, dynamic or differencing image and resolves to it, open read-write. */
function create(path, options, callback) {
  return call(
    callback,
    () => [toPath(path), toCreateOptions(options)],
    ([path, options]) => native.create(path, options).then((image) => wrap(image, path, toOpenOptions())),
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
  TYPE,
  version,
}
