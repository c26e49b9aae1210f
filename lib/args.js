'use strict'

// Argument checks and errors in the style of Node's own (a `code` on every error), and the
// one helper that gives every method its callback and promise forms.

const { Buffer } = require('node:buffer')
const { fileURLToPath } = require('node:url')
const native = require('../binding.js')
const { soon } = require('./soon.js')
const { TYPE } = require('./constants.js')

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

/**
 * ERR_VHD_OUT_OF_RANGE made in JavaScript (a write past the end of a partition or a stream's
 * disk), as the native layer makes it: a RangeError whose message starts with the image's
 * path, which is also its `path` (none for an image opened from a descriptor alone).
 * @param {string | null | undefined} path
 * @param {string} message
 */
function pastTheEndError(path, message) {
  const error = withCode(new RangeError(path ? `${path}: ${message}` : message), 'ERR_VHD_OUT_OF_RANGE')
  if (path) Object.assign(error, { path })
  return error
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

/**
 * `parentRoot`: the folder that parents found through locators must lie in (a path or a
 * `file:` URL), or undefined. Every entry point that opens a chain reads it here.
 */
function toParentRoot(options) {
  return options.parentRoot === undefined ? undefined : toPath(options.parentRoot, 'options.parentRoot')
}

function toOpenOptions(options) {
  options = toOptionsObject(options)
  return {
    readOnly: optionalBoolean(options, 'readOnly'),
    ignoreChecksums: optionalBoolean(options, 'ignoreChecksums'),
    parents: toParents(options),
    ignoreParentTimestamp: optionalBoolean(options, 'ignoreParentTimestamp'),
    // Locking is on unless turned off explicitly.
    lock: options.lock === undefined || optionalBoolean(options, 'lock'),
    parentRoot: toParentRoot(options),
    allowRemoteParents: optionalBoolean(options, 'allowRemoteParents'),
  }
}

/**
 * The open options of an image made over a parent the caller names (`VHD.create` of a
 * differencing image, `VHD.snapshot`): `open` (how the parent and its chain were opened)
 * with that parent first among the named ones, so that a reopen finds it as the child was
 * made, trusted, and `parentRoot` applies to the levels below it only.
 */
function overNamedParent(parent, open) {
  return { ...open, parents: [{ path: parent, raw: false }, ...open.parents] }
}

/** The names the options take, vhd-core's (the command line takes the same), asked once. */
const NAMES = native.names()

// vhd@0.5.0's TYPE numbers name the disk types too.
const DISK_TYPES = NAMES.diskTypes
/** @type {Map<unknown, string>} */
const CREATE_TYPES = new Map(/** @type {[unknown, string][]} */ ([
  ...DISK_TYPES.map((name) => [name, name]),
  [TYPE.FIXED, 'fixed'],
  [TYPE.DYNAMIC, 'dynamic'],
  [TYPE.DIFF, 'differencing'],
]))

function toCreateOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw invalidArgType('options', 'of type object', options)
  }
  // A parent without a type means a differencing image, as `vhd create --parent` does.
  const type = options.type === undefined && options.parent !== undefined ? 'differencing' : CREATE_TYPES.get(options.type)
  if (type === undefined) {
    throw invalidArgValue('options.type', `must be ${DISK_TYPES.map((name) => `'${name}'`).join(', ')} or a VHD.TYPE.${describe(options.type)}`)
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
  // How to open the parent's chain: the parent itself is named, so trusted; the images
  // below it must lie in `parentRoot`. Accepted (and unused) for the other types too, so
  // that a service can pass the same policy to every call.
  result.parentOpen = { parents: [], parentRoot: toParentRoot(options) }
  return result
}

// ---------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------
// Callback or promise, for every method: `call(callback, prepare, perform, toArgs, self,
// traced)`.
// - `prepare` checks the arguments: a TypeError/RangeError is thrown synchronously when
//   there is a callback, and rejects the promise otherwise (`null`: there are none).
// - `perform(args)` does the work and returns a promise (whatever it throws rejects).
// - `toArgs` spreads the result into the callback's arguments (`null`: the callback gets
//   none); the callback is called with `self` as `this` (vhd@0.5.0 calls its callbacks on
//   the image), from the promise reaction; one that throws is an uncaught exception, as
//   from a tick.
// - `traced` (default true): keep the caller's site for the stack of errors made natively,
//   on another thread, which have no JavaScript frames. It is captured once the work has
//   started (the native call of an `open` is then on its way while this thread goes on),
//   inside `call`, so with the same frames. The allocating `read(offset, length)` turns it
//   off: lib/io.js captures the site of the requests that go to the I/O threads.
// One function, with `null` rather than functions that return nothing: the first open of
// a process compiles every function it runs, at 5-50 µs each (docs/performance.md).

function call(callback, prepare, perform, toArgs, self = undefined, traced = true) {
  let work
  if (callback === undefined) {
    try {
      work = Promise.resolve(perform(prepare === null ? undefined : prepare()))
    } catch (error) {
      return Promise.reject(error)
    }
    if (!traced) return work
    const site = {}
    Error.captureStackTrace(site, call)
    return work.catch((error) => Promise.reject(withCallerStack(error, site)))
  }
  if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
  const args = prepare === null ? undefined : prepare()
  try {
    work = Promise.resolve(perform(args))
  } catch (error) {
    work = Promise.reject(error)
  }
  /** @type {object | null} */
  let site = null
  if (traced) {
    site = {}
    Error.captureStackTrace(site, call)
  }
  work.then(
    (value) => callBack(callback, self, null, toArgs === null ? NO_RESULTS : toArgs(value)),
    (error) => callBack(callback, self, withCallerStack(error, site), NO_RESULTS),
  )
  return undefined
}

/**
 * `error` with the frames of `site` (a call site `call` captured; `null`: none) as its stack, when it
 * has none of its own: an error the native layer made when work finished on another
 * thread. Errors thrown in JavaScript keep the stack they have.
 */
function withCallerStack(error, site) {
  if (site !== null && error instanceof Error && !/\n\s+at /.test(String(error.stack))) stackAt(error, site)
  return error
}

/**
 * `error` with the frames of `site` as its stack, in place of its own: lib/io.js's failures,
 * which the native side hands over when the JavaScript thread drains the completions, so
 * that their own frames are only the drain's.
 * @param {Error} error
 * @param {{ stack?: string }} site
 */
function stackAt(error, site) {
  const frames = String(site.stack)
  error.stack = `${error.name}: ${error.message}${frames.slice(frames.indexOf('\n'))}`
  return error
}

/**
 * `call` for the reads and writes of lib/io.js: `start(args, map, done)` starts the request.
 * Without a callback, a promise of `toResult(count)` (`start` gets `toResult` as `map`, no
 * `done`, and returns the promise). With one, no promise at all: `start` gets a `done` that
 * the request calls with `(error, count)` later (a throw of `start` fails it the same way,
 * from a microtask too), and `callback` gets `(null, ...toArgs(count))` or `(error)`.
 * `prepare` checks the arguments, as in `call`.
 * @template A, R
 * @param {Function | undefined} callback
 * @param {() => A} prepare
 * @param {(args: A, map: (count: number) => any, done?: (error: Error | null, count?: number) => void) => Promise<any> | undefined} start
 * @param {(count: number) => unknown[]} toArgs
 * @param {(count: number) => R} toResult
 * @param {unknown} [self] `this` of the callback
 */
function callIo(callback, prepare, start, toArgs, toResult, self = undefined) {
  if (callback === undefined) {
    // `call`'s promise form, without a closure per call (small reads are counted in ns).
    try {
      return start(prepare(), toResult)
    } catch (error) {
      return Promise.reject(error)
    }
  }
  if (typeof callback !== 'function') throw invalidArgType('callback', 'of type function', callback)
  const args = prepare()
  const done = (error, count) => (error ? callback.call(self, error) : callback.call(self, null, ...toArgs(count)))
  try {
    start(args, identity, done)
  } catch (error) {
    soon(done, error)
  }
  return undefined
}

/**
 * `callback(error)` or `callback(null, ...results)`, with `self` as `this`; a throw is an
 * uncaught exception (not a rejection of the reaction's promise, which nobody sees).
 */
function callBack(callback, self, error, results) {
  try {
    if (error === null) callback.call(self, null, ...results)
    else callback.call(self, error)
  } catch (thrown) {
    process.nextTick(rethrow, thrown)
  }
}

function rethrow(error) {
  throw error
}

/** What a callback gets after `null` (an `open`, a `close`): nothing. */
const NO_RESULTS = Object.freeze([])
const noArgs = () => undefined
const identity = (value) => value

module.exports = {
  NAMES,
  withCode,
  describe,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  stateError,
  pastTheEndError,
  toIndex,
  toPath,
  toBytes,
  optionalBoolean,
  toOptionsObject,
  toParent,
  toParents,
  toParentRoot,
  toOpenOptions,
  overNamedParent,
  toCreateOptions,
  call,
  stackAt,
  callIo,
  noArgs,
}
