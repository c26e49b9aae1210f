'use strict'

// What the streams (lib/streams.js) use of an image, whichever class it is (`VHD.Fixed`,
// `VHD.Dynamic`, `VHD.Differencing` of lib/disk.js, or `VHD.Image` of lib/image.js): a read
// into or a write from part of the caller's buffer (tracked, so that `close` waits for it),
// and a promise that settles when the image is open (waiting for an `open` in progress).
// Here, below both, so that lib/streams.js needs neither class module for them.
//
// Also how both show themselves to `util.inspect` (and so `console.log`).

const kReadInto = Symbol('readInto')
const kWriteFrom = Symbol('writeFrom')
const kWhenOpen = Symbol('whenOpen')
/**
 * What a stream closes when it closes its image (`autoClose`, `stream.close()`): absent, the
 * image itself; a `VHD.Partition` names its disk (it has no `close` of its own).
 */
const kCloser = Symbol('closer')

const inspectCustom = Symbol.for('nodejs.util.inspect.custom')

/**
 * `Symbol.asyncDispose`, which `await using` calls; where the language lacks it (Node 20
 * before 20.4 / 18.18), the symbol Node's own classes use, which TypeScript's `await using`
 * helper looks up too.
 */
const asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')

/**
 * Gives the instances of `Class` (whose `close()` returns a promise) `[asyncDispose]()`,
 * so that `await using disk = await VHD.open(...)` closes the disk when the block ends.
 * Defined on the prototype here (not as a class member), like a method: not enumerable.
 * (A computed member keyed by this symbol would make the type checker widen every other
 * symbol-keyed member of the class.)
 * @param {{ prototype: { close(): Promise<void> } }} Class
 */
function disposable(Class) {
  Object.defineProperty(Class.prototype, asyncDispose, {
    value: function dispose() {
      return this.close()
    },
    writable: true,
    configurable: true,
  })
}

/**
 * `ClassName { ...summary }`, formatted by Node's `inspect` with the caller's options (so
 * colours, nesting depth and compactness follow theirs).
 * @param {object} object
 * @param {object} summary
 * @param {number} depth
 * @param {{ depth?: number | null, stylize: (text: string, style: string) => string }} options
 * @param {(value: unknown, options?: object) => string} inspect
 */
function inspectAs(object, summary, depth, options, inspect) {
  const name = object.constructor.name
  if (depth < 0) return options.stylize(`[${name}]`, 'special')
  const nested = { ...options, depth: options.depth == null ? options.depth : options.depth - 1 }
  return `${name} ${inspect(summary, nested)}`
}

module.exports = { kReadInto, kWriteFrom, kWhenOpen, kCloser, inspectCustom, inspectAs, disposable }
