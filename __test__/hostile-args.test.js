'use strict'

// Hostile arguments, table-driven: every public constructor and method is called with wrong
// types, negative, fractional, NaN, infinite, huge and BigInt (safe and unsafe) numbers,
// offsets and lengths past the end, zero-length I/O, Buffers and TypedArrays of the wrong
// size, before `open`, after `close`, and closed twice. Each call must fail with the right
// error class (TypeError / RangeError / Error) and `code` — synchronously for synchronous
// methods and callback forms, as a rejection for promise forms — or, where the value is
// acceptable (zero-length I/O, a read past the end), succeed as documented. The process
// survives every call, and no image file changes (their hashes are taken before and after
// the whole table).

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { constants: bufferConstants } = require('node:buffer')
const VHD = require('..')
const { MiB, tempDir, pattern, sha256File } = require('./helpers.js')

const TYPE_ERROR = { Class: TypeError, code: 'ERR_INVALID_ARG_TYPE' }
const VALUE_ERROR = { Class: TypeError, code: 'ERR_INVALID_ARG_VALUE' }
const RANGE_ERROR = { Class: RangeError, code: 'ERR_OUT_OF_RANGE' }
const BOUNDS_ERROR = { Class: RangeError, code: 'ERR_BUFFER_OUT_OF_BOUNDS' }
const CLOSED = { Class: Error, code: 'ERR_VHD_CLOSED' }
const ALREADY_OPEN = { Class: Error, code: 'ERR_VHD_ALREADY_OPEN' }
const PAST_END = { Class: RangeError, code: 'ERR_VHD_OUT_OF_RANGE' }
const BAD_COOKIE = { Class: Error, code: 'ERR_VHD_BAD_COOKIE' }
const INVALID_ARGUMENT = { Class: RangeError, code: 'ERR_VHD_INVALID_ARGUMENT' }

/** Values of no acceptable type for a number, a buffer, a path or a callback. */
const WRONG_TYPES = [
  ['undefined', undefined],
  ['null', null],
  ["'x'", 'x'],
  ["'1'", '1'],
  ['{}', {}],
  ['[]', []],
  ['a function', () => {}],
  ['a Symbol', Symbol('hostile')],
  ['true', true],
  ['a Date', new Date(0)],
  ['new Number(1)', new Number(1)], // eslint-disable-line no-new-wrappers
  ['an ArrayBuffer', new ArrayBuffer(8)],
]

/** Numbers (and BigInts) that are no offset or length. */
const BAD_NUMBERS = [
  ['-1', -1],
  ['-0.5', -0.5],
  ['1.5', 1.5],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['2**53', 2 ** 53],
  ['2**64', 2 ** 64],
  ['Number.MAX_VALUE', Number.MAX_VALUE],
  ['-1n', -1n],
  ['2n**53n', 2n ** 53n],
  ['2n**64n', 2n ** 64n],
]

const NUMBERS_ONLY = BAD_NUMBERS.filter(([, v]) => typeof v === 'number')
const BIGINTS = [['1n', 1n], ['-1n', -1n], ['2n**64n', 2n ** 64n]]
const nullish = (v) => v === undefined || v === null

/** [label, value, expected] for an offset or length; `optional`: undefined and null are fine. */
function indexCases({ optional = false } = {}) {
  return [
    ...WRONG_TYPES.filter(([, v]) => !(optional && nullish(v))).map(([l, v]) => [l, v, TYPE_ERROR]),
    ...BAD_NUMBERS.map(([l, v]) => [l, v, RANGE_ERROR]),
  ]
}

/** For a buffer argument: anything but a Buffer, TypedArray or DataView. */
function bytesCases() {
  return [
    ...WRONG_TYPES.map(([l, v]) => [l, v, TYPE_ERROR]),
    ...[...NUMBERS_ONLY, ...BIGINTS].map(([l, v]) => [l, v, TYPE_ERROR]),
    ['a SharedArrayBuffer', new SharedArrayBuffer(8), TYPE_ERROR],
  ]
}

/** For a callback: anything but a function (undefined means "return a promise"). */
function callbackCases() {
  return [
    ...WRONG_TYPES.filter(([, v]) => v !== undefined && typeof v !== 'function').map(([l, v]) => [l, v, TYPE_ERROR]),
    ...[...NUMBERS_ONLY, ...BIGINTS].map(([l, v]) => [l, v, TYPE_ERROR]),
  ]
}

/** For a boolean option: anything but true, false and undefined (`nullOk`: null too). */
function booleanCases({ nullOk = false } = {}) {
  return [
    ...WRONG_TYPES.filter(([, v]) => v !== undefined && typeof v !== 'boolean' && !(nullOk && v === null)).map(([l, v]) => [l, v, TYPE_ERROR]),
    ['0', 0, TYPE_ERROR],
    ['1n', 1n, TYPE_ERROR],
  ]
}

/** For an options object: primitives and functions (undefined and null mean none). */
function optionsCases() {
  return [
    ["'x'", 'x', TYPE_ERROR],
    ['1', 1, TYPE_ERROR],
    ['NaN', NaN, TYPE_ERROR],
    ['1n', 1n, TYPE_ERROR],
    ['true', true, TYPE_ERROR],
    ['a Symbol', Symbol('options'), TYPE_ERROR],
    ['a function', () => {}, TYPE_ERROR],
  ]
}

/** For a path: anything but a string or a URL, a string with a NUL, a URL that is not file:. */
function pathCases() {
  return [
    ...WRONG_TYPES.filter(([, v]) => typeof v !== 'string').map(([l, v]) => [l, v, TYPE_ERROR]),
    ...[...NUMBERS_ONLY, ...BIGINTS].map(([l, v]) => [l, v, TYPE_ERROR]),
    ['a Buffer', Buffer.from('x.vhd'), TYPE_ERROR],
    ['a path with a NUL byte', 'a\u0000b.vhd', VALUE_ERROR],
    ['an http URL', new URL('http://example.com/x.vhd'), { Class: TypeError, code: 'ERR_INVALID_URL_SCHEME' }],
  ]
}

/**
 * Calls `run()` and checks the outcome against `expected` ({ Class, code }): `sync` calls
 * must throw; the others must return a promise that rejects (never throw).
 */
async function expectFailure(run, expected, sync, what) {
  let outcome
  let thrown = false
  try {
    outcome = run()
  } catch (error) {
    thrown = true
    outcome = error
  }
  if (!thrown) {
    assert.ok(!sync, `${what}: expected a synchronous ${expected.Class.name} ${expected.code}, it returned ${describeValue(outcome)}`)
    assert.ok(outcome instanceof Promise, `${what}: expected a promise, got ${describeValue(outcome)}`)
    try {
      const value = await outcome
      assert.fail(`${what}: expected ${expected.Class.name} ${expected.code}, it resolved to ${describeValue(value)}`)
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error
      outcome = error
    }
  } else {
    assert.ok(sync, `${what}: a promise form threw synchronously (${outcome && outcome.code}: ${outcome && outcome.message})`)
  }
  assert.ok(outcome instanceof expected.Class, `${what}: expected a ${expected.Class.name}, got ${outcome && outcome.constructor && outcome.constructor.name}: ${outcome && outcome.message}`)
  if (expected.Class === Error) {
    assert.ok(!(outcome instanceof TypeError) && !(outcome instanceof RangeError), `${what}: expected a plain Error, got a ${outcome.constructor.name}`)
  }
  assert.equal(outcome.code, expected.code, `${what}: ${outcome.message}`)
  assert.equal(typeof outcome.message, 'string')
}

function describeValue(value) {
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'symbol') return value.toString()
  if (value && typeof value === 'object') return value.constructor ? value.constructor.name : 'an object'
  return String(value)
}

let tmp
let files // the image files whose bytes must not change
const hashes = new Map()
let dynamic // a VHD.Dynamic open read-write
let fixedRo // a VHD.Fixed open read-only
let child // a VHD.Differencing open read-write
let image // a VHD.Image open read-write on a dynamic image
let fixedImage // a VHD.Image open read-only on a fixed image
let dirBefore

before(async () => {
  tmp = tempDir('vhd-hostile-')
  const make = async (name, options, data) => {
    const file = path.join(tmp.dir, name)
    const disk = await VHD.create(file, options)
    if (data) await disk.write(data, MiB)
    await disk.close()
    return file
  }
  files = {
    dynamic: await make('dynamic.vhd', { type: 'dynamic', size: 4 * MiB }, pattern(5000, 1)),
    fixed: await make('fixed.vhd', { type: 'fixed', size: 2 * MiB }, pattern(5000, 2)),
    base: await make('base.vhd', { type: 'dynamic', size: 4 * MiB }, pattern(5000, 3)),
    image: await make('image.vhd', { type: 'dynamic', size: 4 * MiB }, pattern(5000, 4)),
  }
  files.child = await make('child.vhd', { type: 'differencing', parent: files.base }, pattern(700, 5))
  for (const [name, file] of Object.entries(files)) hashes.set(name, sha256File(file))
  dirBefore = fs.readdirSync(tmp.dir).sort()
  dynamic = await VHD.open(files.dynamic)
  fixedRo = await new VHD.Fixed(files.fixed, { readOnly: true }).open()
  child = await new VHD.Differencing(files.child).open()
  image = await new VHD.Image({ path: files.image, flags: 'r+' }).open()
  fixedImage = await new VHD.Image({ path: files.fixed, flags: 'r' }).open()
})

after(async () => {
  for (const disk of [dynamic, fixedRo, child, image, fixedImage]) {
    if (disk && (disk.isOpen ?? disk.fd !== null)) await disk.close()
  }
  // The whole table has run: not one byte of any image changed, and no file was made.
  for (const [name, file] of Object.entries(files)) assert.equal(sha256File(file), hashes.get(name), `${name} changed`)
  assert.deepEqual(fs.readdirSync(tmp.dir).sort(), dirBefore, 'no file was created')
  tmp.cleanup()
})

/**
 * A row of the table: `run(value)` calls the method with the hostile value in one place;
 * `cases` are [label, value, expected]; `sync` says how failures must come.
 */
function row(name, sync, run, cases) {
  test(`${name}: ${cases.length} hostile values`, async () => {
    assert.ok(cases.length > 0)
    for (const [label, value, expected] of cases) {
      await expectFailure(() => run(value), expected, sync, `${name} with ${label}`)
    }
  })
}

const noCallback = () => assert.fail('the callback must not be called for a bad argument')

describe('Fixed, Dynamic and Differencing', () => {
  const disks = () => [['Dynamic', dynamic], ['Fixed (read-only)', fixedRo], ['Differencing', child]]

  for (const Class of [VHD.Fixed, VHD.Dynamic, VHD.Differencing]) {
    const name = `new VHD.${Class.name}`
    row(`${name}(path)`, true, (v) => new Class(v), pathCases())
    row(`${name}(path, options)`, true, (v) => new Class(files.dynamic, v), optionsCases())
    for (const key of ['readOnly', 'ignoreChecksums', 'ignoreParentTimestamp', 'lock', 'allowRemoteParents']) {
      row(`${name}(path, { ${key} })`, true, (v) => new Class(files.dynamic, { [key]: v }), booleanCases())
    }
    row(`${name}(path, { parents })`, true, (v) => new Class(files.dynamic, { parents: v }), [
      ...WRONG_TYPES.filter(([, v]) => v !== undefined && !Array.isArray(v)).map(([l, v]) => [l, v, TYPE_ERROR]),
      ['[42]', [42], TYPE_ERROR],
      ['[{}]', [{}], TYPE_ERROR],
      ["[{ path: 'p', raw: 'yes' }]", [{ path: 'p', raw: 'yes' }], TYPE_ERROR],
      ['[a path with a NUL]', ['a\u0000b'], VALUE_ERROR],
    ])
    row(`${name}(path, { parent })`, true, (v) => new Class(files.dynamic, { parent: v }), [
      ...WRONG_TYPES.filter(([, v]) => v !== undefined && typeof v !== 'string').map(([l, v]) => [l, v, TYPE_ERROR]),
      ['1', 1, TYPE_ERROR],
    ])
    row(`${name}(path, { parent, parents })`, true, (v) => new Class(files.dynamic, { parent: v, parents: [v] }), [
      ["'p.vhd'", 'p.vhd', VALUE_ERROR],
    ])
    row(`${name}(path, { parentRoot })`, true, (v) => new Class(files.dynamic, { parentRoot: v }), pathCases().filter(([, v]) => v !== undefined))
  }

  test('new VHD.Disk: abstract', () => {
    assert.throws(() => new VHD.Disk(files.dynamic), (e) => e instanceof TypeError && e.code === 'ERR_ILLEGAL_CONSTRUCTOR')
  })

  test('the table reaches every disk kind', () => assert.equal(disks().length, 3))

  for (const [kind, get] of [['Dynamic', () => dynamic], ['Fixed (read-only)', () => fixedRo], ['Differencing', () => child]]) {
    describe(kind, () => {
      row('read(offset, 1)', false, (v) => get().read(v, 1), indexCases())
      row('read(0, length)', false, (v) => get().read(0, v), [
        ...indexCases(),
        ['buffer.constants.MAX_LENGTH + 1', bufferConstants.MAX_LENGTH + 1, RANGE_ERROR],
      ])
      row('read(offset, 1, callback)', true, (v) => get().read(v, 1, noCallback), indexCases())
      row('read(0, 1, callback)', true, (v) => get().read(0, 1, v), callbackCases())
      row('write(buffer, 0)', false, (v) => get().write(v, 0), bytesCases())
      row('write(buffer, offset)', false, (v) => get().write(Buffer.alloc(1), v), indexCases())
      row('write(buffer, 0, callback)', true, (v) => get().write(v, 0, noCallback), bytesCases())
      row('write(buffer, 0, callback)', true, (v) => get().write(Buffer.alloc(1), 0, v), callbackCases())
      row('readSync(offset, 1)', true, (v) => get().readSync(v, 1), indexCases())
      row('readSync(0, length)', true, (v) => get().readSync(0, v), indexCases())
      row('writeSync(buffer, 0)', true, (v) => get().writeSync(v, 0), bytesCases())
      row('writeSync(buffer, offset)', true, (v) => get().writeSync(Buffer.alloc(1), v), indexCases())
      row('flush(callback)', true, (v) => get().flush(v), callbackCases())
      row('close(callback)', true, (v) => get().close(v), callbackCases())
      row('open(callback)', true, (v) => get().open(v), callbackCases())
      row('open() while open', false, () => get().open(), [['nothing', undefined, ALREADY_OPEN]])
      row('createReadStream(options)', true, (v) => get().createReadStream(v), optionsCases())
      row('createReadStream({ start })', true, (v) => get().createReadStream({ start: v }), indexCases({ optional: true }))
      row('createReadStream({ end })', true, (v) => get().createReadStream({ end: v }), [
        ...indexCases({ optional: true }).filter(([, v]) => v !== Infinity),
      ])
      row('createReadStream({ start: 10, end })', true, (v) => get().createReadStream({ start: 10, end: v }), [['5', 5, RANGE_ERROR], ['0n', 0n, RANGE_ERROR]])
      row('createReadStream({ highWaterMark })', true, (v) => get().createReadStream({ highWaterMark: v }), [
        ...indexCases({ optional: true }),
        ['0', 0, RANGE_ERROR],
        ['MAX_LENGTH + 1', bufferConstants.MAX_LENGTH + 1, RANGE_ERROR],
      ])
      row('createReadStream({ autoClose })', true, (v) => get().createReadStream({ autoClose: v }), booleanCases({ nullOk: true }))
      row('createWriteStream(options)', true, (v) => get().createWriteStream(v), optionsCases())
      row('createWriteStream({ start })', true, (v) => get().createWriteStream({ start: v }), indexCases({ optional: true }))
      row('createWriteStream({ flush })', true, (v) => get().createWriteStream({ flush: v }), booleanCases({ nullOk: true }))
      row('createWriteStream({ highWaterMark })', true, (v) => get().createWriteStream({ highWaterMark: v }), [...indexCases({ optional: true }), ['0', 0, RANGE_ERROR]])

      test('past the end and zero-length I/O', async () => {
        const disk = get()
        const size = disk.size
        // Reads past the end are short (zeros after what was read); zero-length ones are empty.
        for (const [offset, length, bytesRead] of [
          [size, 10, 0],
          [size - 3, 10, 3],
          [size + 1, 0, 0],
          [Number.MAX_SAFE_INTEGER, 16, 0],
          [2n ** 53n - 1n, 1, 0],
          [0, 0, 0],
          [0n, 1n, 1],
        ]) {
          for (const result of [await disk.read(offset, length), disk.readSync(offset, length)]) {
            assert.equal(result.bytesRead, bytesRead, `read(${offset}, ${length})`)
            assert.equal(result.buffer.length, Number(length))
            assert.ok(result.buffer.subarray(bytesRead).every((b) => b === 0), 'zeros past the end')
          }
        }
        // A huge read past the end: a zeroed buffer, nothing to read.
        const huge = await disk.read(size, 64 * MiB)
        assert.equal(huge.bytesRead, 0)
        assert.equal(huge.buffer.length, 64 * MiB)
        if (disk.readOnly) {
          // Every write fails on a read-only image, whatever its range.
          for (const [buffer, offset] of [[Buffer.alloc(0), 0], [Buffer.alloc(1), 0], [Buffer.alloc(1), size]]) {
            await expectFailure(() => disk.write(buffer, offset), { Class: Error, code: 'ERR_VHD_READ_ONLY' }, false, `write ${buffer.length} at ${offset}`)
          }
          return
        }
        // Writes past the end fail whole (nothing is written); zero-length ones up to the end succeed.
        for (const [length, offset] of [[10, size - 5], [1, size], [0, size + 1], [1, Number.MAX_SAFE_INTEGER], [0, Number.MAX_SAFE_INTEGER], [513, size - 512]]) {
          await expectFailure(() => disk.write(Buffer.alloc(length, 0xee), offset), PAST_END, false, `write(${length} bytes, ${offset})`)
          await expectFailure(() => disk.writeSync(Buffer.alloc(length, 0xee), offset), PAST_END, true, `writeSync(${length} bytes, ${offset})`)
        }
        for (const offset of [0, size, 1n]) {
          assert.equal((await disk.write(Buffer.alloc(0), offset)).bytesWritten, 0)
          assert.equal(disk.writeSync(new Uint8Array(0), offset).bytesWritten, 0)
          assert.equal((await disk.write(new DataView(new ArrayBuffer(0)), offset)).bytesWritten, 0)
        }
        // A TypedArray's bytes, whatever its element size: a write past the end by its byte length fails.
        await expectFailure(() => disk.write(new Float64Array(2), size - 15), PAST_END, false, 'write(Float64Array(2), size - 15)')
        await expectFailure(() => disk.write(new Uint16Array(new ArrayBuffer(16), 2, 3), size - 5), PAST_END, false, 'write(a Uint16Array view, size - 5)')
      })
    })
  }

  test('before open, after close: ERR_VHD_CLOSED everywhere but close (which resolves, as FileHandle.close()); open twice: ERR_VHD_ALREADY_OPEN', async () => {
    for (const Class of [VHD.Fixed, VHD.Dynamic, VHD.Differencing]) {
      const file = Class === VHD.Fixed ? files.fixed : Class === VHD.Dynamic ? files.dynamic : files.child
      const disk = new Class(file, { readOnly: true, lock: false })
      const calls = [
        ['read', false, () => disk.read(0, 1)],
        ['write', false, () => disk.write(Buffer.alloc(1), 0)],
        ['write of nothing', false, () => disk.write(Buffer.alloc(0), 0)],
        ['readSync', true, () => disk.readSync(0, 1)],
        ['writeSync', true, () => disk.writeSync(Buffer.alloc(1), 0)],
        ['flush', false, () => disk.flush()],
      ]
      for (const [name, sync, run] of calls) await expectFailure(run, CLOSED, sync, `${Class.name} ${name} before open`)
      await disk.close() // nothing to close: resolves
      for (const key of ['type', 'size', 'footer', 'header', 'allocatedBlocks', 'readOnly']) assert.equal(disk[key], undefined, key)
      // The argument checks come first.
      await expectFailure(() => disk.read(-1, 1), RANGE_ERROR, false, 'read(-1) before open')
      const opening = disk.open()
      await expectFailure(() => disk.open(), ALREADY_OPEN, false, 'open while opening')
      await opening
      await expectFailure(() => disk.open(), ALREADY_OPEN, false, 'open while open')
      await disk.close()
      for (const [name, sync, run] of calls) await expectFailure(run, CLOSED, sync, `${Class.name} ${name} after close`)
      const closedAgain = await new Promise((resolve) => disk.close(resolve))
      assert.equal(closedAgain, null, 'closing again resolves')
      // Streams of a closed disk fail with it too.
      const errors = [disk.createReadStream(), disk.createWriteStream()].map((stream) => new Promise((resolve) => stream.on('error', resolve)))
      for (const error of await Promise.all(errors)) assert.equal(error.code, 'ERR_VHD_CLOSED')
    }
  })
})

describe('VHD.open and VHD.create', () => {
  row('VHD.open(path)', false, (v) => VHD.open(v), pathCases())
  row('VHD.open(path, options)', false, (v) => VHD.open(files.dynamic, v), optionsCases().filter(([, v]) => typeof v !== 'function'))
  row('VHD.open(path, options, callback)', true, (v) => VHD.open(files.dynamic, {}, v), callbackCases())
  row('VHD.open(path, { readOnly })', false, (v) => VHD.open(files.dynamic, { readOnly: v }), booleanCases())
  row('VHD.open(path, { lock })', false, (v) => VHD.open(files.dynamic, { lock: v }), booleanCases())
  row('VHD.open(path, { allowRemoteParents })', false, (v) => VHD.open(files.child, { allowRemoteParents: v }), booleanCases())
  row('VHD.open(path, { parentRoot })', false, (v) => VHD.open(files.child, { parentRoot: v }), pathCases().filter(([, v]) => v !== undefined))
  row('VHD.open(path) with a bad path, callback form', true, (v) => VHD.open(v, noCallback), pathCases())

  const never = () => path.join(tmp.dir, 'never.vhd')
  row('VHD.create(path, options)', false, (v) => VHD.create(v, { type: 'dynamic', size: MiB }), pathCases())
  row('VHD.create(path, options)', false, (v) => VHD.create(never(), v), [
    ...WRONG_TYPES.filter(([, v]) => v === null || typeof v !== 'object').map(([l, v]) => [l, v, TYPE_ERROR]),
    ['{}', {}, VALUE_ERROR],
    ['[]', [], VALUE_ERROR],
  ])
  row('VHD.create(path, { type })', false, (v) => VHD.create(never(), { type: v, size: MiB }), [
    ...WRONG_TYPES.map(([l, v]) => [l, v, VALUE_ERROR]),
    ["'Dynamic'", 'Dynamic', VALUE_ERROR],
    ['1', 1, VALUE_ERROR],
    ['5', 5, VALUE_ERROR],
    ['3n', 3n, VALUE_ERROR],
  ])
  row('VHD.create(path, { size })', false, (v) => VHD.create(never(), { type: 'dynamic', size: v }), [
    ...indexCases(),
    // Numbers of the right shape the format cannot take.
    ['0', 0, INVALID_ARGUMENT],
    ['1n', 1n, INVALID_ARGUMENT],
    ['513', 513, INVALID_ARGUMENT],
    ['2**50 (beyond 2040 GiB)', 2 ** 50, INVALID_ARGUMENT],
  ])
  row('VHD.create(path, { type: fixed, size })', false, (v) => VHD.create(never(), { type: 'fixed', size: v }), [
    ['-1', -1, RANGE_ERROR],
    ['511', 511, INVALID_ARGUMENT],
    ['2**53 - 512', 2 ** 53 - 512, INVALID_ARGUMENT],
  ])
  row('VHD.create(path, { blockSize })', false, (v) => VHD.create(never(), { type: 'dynamic', size: MiB, blockSize: v }), [
    ...indexCases({ optional: true }).filter(([, v]) => v !== null),
    ['null', null, TYPE_ERROR],
    ['0', 0, INVALID_ARGUMENT],
    ['3000 (not a power of two)', 3000, INVALID_ARGUMENT],
    ['2**40', 2 ** 40, RANGE_ERROR],
  ])
  row('VHD.create(path, { creatorApplication })', false, (v) => VHD.create(never(), { type: 'dynamic', size: MiB, creatorApplication: v }), [
    ...WRONG_TYPES.filter(([, v]) => v !== undefined && typeof v !== 'string').map(([l, v]) => [l, v, TYPE_ERROR]),
    ["''", '', VALUE_ERROR],
    ["'toolong'", 'toolong', VALUE_ERROR],
    ["'é'", 'é', VALUE_ERROR],
  ])
  row('VHD.create(path, { overwrite })', false, (v) => VHD.create(never(), { type: 'dynamic', size: MiB, overwrite: v }), booleanCases())
  row('VHD.create(path, { parent }) of a dynamic image', false, (v) => VHD.create(never(), { type: 'dynamic', size: MiB, parent: v }), [
    ["'p.vhd'", 'p.vhd', VALUE_ERROR],
  ])
  row('VHD.create(path, { type: differencing, parent })', false, (v) => VHD.create(never(), { type: 'differencing', parent: v }), pathCases())
  row('VHD.create(path, options, callback)', true, (v) => VHD.create(never(), { type: 'dynamic', size: MiB }, v), callbackCases())
  row('VHD.create over an existing image', false, () => VHD.create(files.dynamic, { type: 'dynamic', size: MiB }), [
    ['no overwrite', undefined, { Class: Error, code: 'ERR_VHD_EXISTS' }],
  ])
})

describe('VHD.Image', () => {
  row('new VHD.Image(options)', true, (v) => new VHD.Image(v), [
    ...WRONG_TYPES.map(([l, v]) => [l, v, TYPE_ERROR]),
    ['1', 1, TYPE_ERROR],
    ['1n', 1n, TYPE_ERROR],
  ])
  row('new VHD.Image({ path })', true, (v) => new VHD.Image({ path: v }), pathCases())
  row('new VHD.Image({ fd })', true, (v) => new VHD.Image({ fd: v }), [
    ...WRONG_TYPES.map(([l, v]) => [l, v, TYPE_ERROR]),
    ...NUMBERS_ONLY.map(([l, v]) => [l, v, RANGE_ERROR]),
    ['2**31', 2 ** 31, RANGE_ERROR],
    ...BIGINTS.map(([l, v]) => [l, v, TYPE_ERROR]),
  ])
  row('new VHD.Image({ path, flags })', true, (v) => new VHD.Image({ path: files.image, flags: v }), [
    ...WRONG_TYPES.filter(([, v]) => !nullish(v) && typeof v !== 'string').map(([l, v]) => [l, v, TYPE_ERROR]),
    ["'x'", 'x', VALUE_ERROR],
    ["'1'", '1', VALUE_ERROR],
    ["'wx' (creates)", 'wx', VALUE_ERROR],
    ["'ax+' (creates)", 'ax+', VALUE_ERROR],
    ['O_EXCL', fs.constants.O_EXCL | fs.constants.O_RDWR, VALUE_ERROR],
    ...NUMBERS_ONLY.map(([l, v]) => [l, v, RANGE_ERROR]),
    ['2**31', 2 ** 31, RANGE_ERROR],
    ...BIGINTS.map(([l, v]) => [l, v, TYPE_ERROR]),
  ])
  row('new VHD.Image({ path, mode })', true, (v) => new VHD.Image({ path: files.image, mode: v }), [
    ...WRONG_TYPES.filter(([, v]) => !nullish(v) && typeof v !== 'string').map(([l, v]) => [l, v, TYPE_ERROR]),
    ["'x'", 'x', VALUE_ERROR],
    ["'8'", '8', VALUE_ERROR],
    ["'-1'", '-1', VALUE_ERROR],
    ...NUMBERS_ONLY.map(([l, v]) => [l, v, RANGE_ERROR]),
    ...BIGINTS.map(([l, v]) => [l, v, TYPE_ERROR]),
  ])
  for (const key of ['readOnly', 'ignoreChecksums', 'lock']) {
    row(`new VHD.Image({ path, ${key} })`, true, (v) => new VHD.Image({ path: files.image, [key]: v }), booleanCases())
  }

  const buffer = () => Buffer.alloc(16)
  row('read(buffer, 0, 1, 0)', false, (v) => image.read(v, 0, 1, 0), bytesCases())
  row('read(buffer, offset, 1, 0)', false, (v) => image.read(buffer(), v, 1, 0), [
    ...indexCases({ optional: true }),
    ['17 (past the buffer)', 17, RANGE_ERROR],
  ])
  row('read(buffer, 0, length, 0)', false, (v) => image.read(buffer(), 0, v, 0), [
    ...indexCases({ optional: true }),
    ['17 (more than the buffer)', 17, RANGE_ERROR],
  ])
  row('read(buffer, 8, length, 0)', false, (v) => image.read(buffer(), 8, v, 0), [['9', 9, RANGE_ERROR]])
  row('read(Float64Array(2), 0, length, 0)', false, (v) => image.read(new Float64Array(2), 0, v, 0), [['17 (its bytes are 16)', 17, RANGE_ERROR]])
  row('read(buffer, 0, 1, position)', false, (v) => image.read(buffer(), 0, 1, v), indexCases())
  row('read(buffer, 0, 1, 0, callback)', true, (v) => image.read(buffer(), 0, 1, 0, v), callbackCases())
  row('read(buffer, 0, 1, position, callback)', true, (v) => image.read(buffer(), 0, 1, v, noCallback), indexCases())
  row('write(buffer, 0, 1, 0)', false, (v) => image.write(v, 0, 1, 0), bytesCases())
  row('write(buffer, offset, 1, 0)', false, (v) => image.write(buffer(), v, 1, 0), [...indexCases({ optional: true }), ['17', 17, RANGE_ERROR]])
  row('write(buffer, 0, length, 0)', false, (v) => image.write(buffer(), 0, v, 0), [...indexCases({ optional: true }), ['17', 17, RANGE_ERROR]])
  row('write(buffer, 0, 1, position)', false, (v) => image.write(buffer(), 0, 1, v), indexCases())
  row('write(buffer, 0, 4, position past the end)', false, (v) => image.write(buffer(), 0, 4, v), [
    ['size - 2', 4 * MiB - 2, PAST_END],
    ['size', 4 * MiB, PAST_END],
    ['MAX_SAFE_INTEGER', Number.MAX_SAFE_INTEGER, PAST_END],
  ])
  row('write(buffer, 0, 1, 0, callback)', true, (v) => image.write(buffer(), 0, 1, 0, v), callbackCases())
  row('open(callback)', true, (v) => image.open(v), callbackCases())
  row('open() while open', false, () => image.open(), [['nothing', undefined, ALREADY_OPEN]])
  row('flush(callback)', true, (v) => image.flush(v), callbackCases())
  row('close(callback)', true, (v) => image.close(v), callbackCases())
  row('readFooter(position)', false, (v) => image.readFooter(v), indexCases())
  row('readFooter(position past the end of the file)', false, (v) => image.readFooter(v < 0 ? fs.statSync(files.image).size + v : v), [
    ['2**40', 2 ** 40, { Class: Error, code: 'ERR_VHD_TRUNCATED' }],
    ['file size - 100', -100, { Class: Error, code: 'ERR_VHD_TRUNCATED' }],
  ])
  row('readFooter(position, callback)', true, (v) => image.readFooter(0, v), callbackCases())
  row('readHeader(position) of a dynamic image', false, (v) => image.readHeader(v), indexCases())
  row('readHeader(position) where there is no header', false, (v) => image.readHeader(v), [['0', 0, BAD_COOKIE]])
  row('readHeader(position) of a fixed image (the position is not used)', false, (v) => fixedImage.readHeader(v), [
    ...WRONG_TYPES.filter(([, v]) => !nullish(v)).map(([l, v]) => [l, v, TYPE_ERROR]),
  ])
  row('readAllocationTable(position, 4)', false, (v) => image.readAllocationTable(v, 4), indexCases())
  row('readAllocationTable(0, length)', false, (v) => image.readAllocationTable(0, v), [
    ...indexCases(),
    ['2**31 (more than one read)', 2 ** 31, RANGE_ERROR],
  ])
  row('readAllocationTable past the end of the file', false, (v) => image.readAllocationTable(...v), [
    ['(2**40, 4)', [2 ** 40, 4], { Class: Error, code: 'ERR_VHD_TRUNCATED' }],
    ['(0, 2**31 - 1)', [0, 2 ** 31 - 1], { Class: Error, code: 'ERR_VHD_TRUNCATED' }],
  ])
  row('sectorNumber(lba)', true, (v) => image.sectorNumber(v), indexCases())
  row('getSectorAddress(block)', true, (v) => image.getSectorAddress(v), indexCases())
  row('sectorNeedsAllocation(block)', true, (v) => image.sectorNeedsAllocation(v), indexCases())

  test('zero-length I/O, reads past the end, the fixed header', async () => {
    const size = Number(image.size)
    const b = Buffer.alloc(8, 0x55)
    assert.deepEqual(await image.read(b, 8, 0, 0), { bytesRead: 0, buffer: b })
    assert.deepEqual(await image.read(b, 0, 8, size), { bytesRead: 0, buffer: b })
    assert.equal((await image.read(b, 0, 8, size - 2)).bytesRead, 2)
    assert.deepEqual(await image.write(b, 8, 0, size), { bytesWritten: 0, buffer: b })
    assert.deepEqual(await image.write(b, 0, 0, 0), { bytesWritten: 0, buffer: b })
    assert.equal((await image.readAllocationTable(0, 0)).length, 0)
    for (const position of [undefined, 0, -1, 2 ** 64, 0xffffffffffffffffn, Number(fixedImage.footer.dataOffset)]) {
      assert.deepEqual(await fixedImage.readHeader(position), { header: null, checksum: null })
    }
    assert.equal(image.getSectorAddress(10 ** 9), VHD.SECTOR.FREE, 'beyond the table')
  })

  test('before open, after close, closed twice (close resolves)', async () => {
    const img = new VHD.Image({ path: files.dynamic, flags: 'r', lock: false })
    const calls = [
      ['read', () => img.read(Buffer.alloc(1), 0, 1, 0)],
      ['write', () => img.write(Buffer.alloc(1), 0, 1, 0)],
      ['flush', () => img.flush()],
      ['readFooter', () => img.readFooter(0)],
      ['readHeader', () => img.readHeader(512)],
      ['readAllocationTable', () => img.readAllocationTable(1536, 4)],
    ]
    for (const [name, run] of calls) await expectFailure(run, CLOSED, false, `VHD.Image ${name} before open`)
    await img.close() // nothing to close: resolves
    assert.equal(img.bat, null)
    assert.equal(img.type, null)
    await img.open()
    await img.close()
    assert.equal(img.fd, null)
    for (const [name, run] of calls) await expectFailure(run, CLOSED, false, `VHD.Image ${name} after close`)
    const [error] = await new Promise((resolve) => img.close((...args) => resolve(args)))
    assert.equal(error, null, 'closing again resolves')
    // A descriptor that is not open.
    await expectFailure(() => new VHD.Image({ fd: 2 ** 31 - 1, flags: 'r' }).open(), { Class: Error, code: 'EBADF' }, false, 'a descriptor that is not open')
  })
})

describe('streams', () => {
  for (const Stream of [VHD.ReadStream, VHD.WriteStream]) {
    const name = `new VHD.${Stream.name}`
    row(`${name}(options)`, true, (v) => new Stream(v), [
      ...WRONG_TYPES.map(([l, v]) => [l, v, TYPE_ERROR]),
      ['1', 1, TYPE_ERROR],
      ['1n', 1n, TYPE_ERROR],
    ])
    row(`${name}({ image })`, true, (v) => new Stream({ image: v }), [
      ...WRONG_TYPES.map(([l, v]) => [l, v, TYPE_ERROR]),
      ['a plain object like an image', { read() {}, write() {}, size: 1 }, TYPE_ERROR],
      ['a Buffer', Buffer.alloc(1), TYPE_ERROR],
    ])
    row(`${name}({ path })`, true, (v) => new Stream({ path: v }), pathCases())
    row(`${name}({ fd })`, true, (v) => new Stream({ fd: v }), [...NUMBERS_ONLY.map(([l, v]) => [l, v, RANGE_ERROR]), ...BIGINTS.map(([l, v]) => [l, v, TYPE_ERROR])])
    row(`${name}({ image, start })`, true, (v) => new Stream({ image: dynamic, start: v }), indexCases({ optional: true }))
    row(`${name}({ image, highWaterMark })`, true, (v) => new Stream({ image: dynamic, highWaterMark: v }), [...indexCases({ optional: true }), ['0', 0, RANGE_ERROR]])
    row(`${name}({ image, autoClose })`, true, (v) => new Stream({ image: dynamic, autoClose: v }), booleanCases({ nullOk: true }))
    row(`${name}({ path, flags })`, true, (v) => new Stream({ path: files.image, flags: v }), [["'wx'", 'wx', VALUE_ERROR], ['-1', -1, RANGE_ERROR], ['{}', {}, TYPE_ERROR]])
    row(`${name}({ path, lock })`, true, (v) => new Stream({ path: files.image, lock: v }), booleanCases())
  }
  row('new VHD.ReadStream({ image, end })', true, (v) => new VHD.ReadStream({ image: dynamic, start: 2, end: v }), [
    ...indexCases({ optional: true }).filter(([, v]) => v !== Infinity),
    ['1 (before start)', 1, RANGE_ERROR],
  ])
  row('new VHD.WriteStream({ image, flush })', true, (v) => new VHD.WriteStream({ image: dynamic, flush: v }), booleanCases({ nullOk: true }))
  row('stream.close(callback)', true, (v) => {
    const stream = new VHD.ReadStream({ image: dynamic })
    try {
      return stream.close(v)
    } finally {
      stream.destroy()
    }
  }, callbackCases())

  test('streams that fail later fail with an error event, and the process goes on', async () => {
    const failure = (stream) => new Promise((resolve) => stream.on('error', resolve))
    assert.equal((await failure(new VHD.ReadStream({ path: path.join(tmp.dir, 'missing.vhd') }))).code, 'ENOENT')
    assert.equal((await failure(new VHD.WriteStream({ path: files.fixed, flags: 'r' }).end(Buffer.alloc(1)))).code, 'ERR_VHD_READ_ONLY')
    // The image is locked read-write by this process: another writer is refused.
    assert.equal((await failure(new VHD.WriteStream({ path: files.dynamic }))).code, 'ERR_VHD_LOCKED')
    // A write past the end: nothing beyond it is written (a write of zeros at the very end).
    const past = new VHD.WriteStream({ image: dynamic, start: dynamic.size })
    past.end(Buffer.alloc(3))
    const error = await failure(past)
    assert.ok(error instanceof RangeError && error.code === 'ERR_VHD_OUT_OF_RANGE')
    assert.equal(dynamic.isOpen, true, 'the given image stays open')
    // A read stream of nothing: start = end = size.
    const chunks = []
    for await (const chunk of new VHD.ReadStream({ image: dynamic, start: dynamic.size, end: dynamic.size })) chunks.push(chunk)
    assert.deepEqual(chunks, [])
  })
})

describe('Footer, Header, Locator, checksum, getDiskGeometry', () => {
  const structures = [
    ['Footer', VHD.Footer, 512],
    ['Header', VHD.Header, 1024],
    ['Locator', VHD.Locator, 24],
  ]
  for (const [name, Class, size] of structures) {
    row(`${name}.parse(buffer)`, true, (v) => Class.parse(v), bytesCases())
    row(`new ${name}().parse(buffer)`, true, (v) => new Class().parse(v), bytesCases())
    row(`${name}.parse(buffer too short)`, true, (v) => Class.parse(v), [
      ['an empty Buffer', Buffer.alloc(0), BOUNDS_ERROR],
      [`Buffer(${size - 2})`, Buffer.alloc(size - 2), BOUNDS_ERROR],
      [`Uint16Array(${Math.floor((size - 2) / 2)})`, new Uint16Array(Math.floor((size - 2) / 2)), BOUNDS_ERROR],
    ])
    row(`${name}.parse(buffer, offset)`, true, (v) => Class.parse(Buffer.alloc(2 * size), v), [
      ...indexCases({ optional: true }),
      // size + 1 would leave 511 bytes: enough for an old 511-byte footer.
      ['past the room', size + 2, RANGE_ERROR],
      ['past the buffer', 2 * size + 1, RANGE_ERROR],
    ])
    row(`new ${name}().write(buffer)`, true, (v) => new Class().write(v), [
      ...bytesCases().filter(([, v]) => !nullish(v)),
      [`Buffer(${size - 1})`, Buffer.alloc(size - 1), BOUNDS_ERROR],
      [`Float32Array(${Math.floor((size - 1) / 4)})`, new Float32Array(Math.floor((size - 1) / 4)), BOUNDS_ERROR],
    ])
    row(`new ${name}().write(buffer, offset)`, true, (v) => new Class().write(Buffer.alloc(2 * size), v), [
      ...indexCases({ optional: true }),
      ['past the room', size + 1, RANGE_ERROR],
    ])
    row(`new ${name}().write(null, offset)`, true, (v) => new Class().write(null, v), [
      ...indexCases({ optional: true }),
      ['2**40 (a buffer that large cannot be made)', 2 ** 40, RANGE_ERROR],
    ])
  }
  row('Footer.parse(bytes without the cookie)', true, (v) => VHD.Footer.parse(v), [['zeros', Buffer.alloc(512), BAD_COOKIE], ['a header', new VHD.Header().write(), BAD_COOKIE]])
  row('Header.parse(bytes without the cookie)', true, (v) => VHD.Header.parse(v), [['zeros', Buffer.alloc(1024), BAD_COOKIE], ['a footer and more', Buffer.concat([new VHD.Footer().write(), Buffer.alloc(512)]), BAD_COOKIE]])

  /** A structure with one field set to `value`, written. */
  const withField = (Class, field, value) => () => {
    const structure = new Class()
    const keys = field.split('.')
    let target = structure
    for (const key of keys.slice(0, -1)) target = target[key]
    target[keys.at(-1)] = value
    return structure.write()
  }
  const numberFieldCases = (bits) => [
    ...WRONG_TYPES.map(([l, v]) => [l, v, TYPE_ERROR]),
    ...[...NUMBERS_ONLY, ['2**bits', 2 ** bits]].map(([l, v]) => [l, v, RANGE_ERROR]),
    ['1n', 1n, TYPE_ERROR],
  ]
  for (const [Class, field, bits] of [
    [VHD.Footer, 'features', 32],
    [VHD.Footer, 'diskType', 32],
    [VHD.Footer, 'creatorHostOS', 32],
    [VHD.Footer, 'savedState', 8],
    [VHD.Footer, 'diskGeometry.cylinders', 16],
    [VHD.Footer, 'diskGeometry.heads', 8],
    [VHD.Footer, 'formatVersion.major', 16],
    [VHD.Header, 'maxTableEntries', 32],
    [VHD.Header, 'sectorSize', 32],
    [VHD.Header, 'headerVersion.minor', 16],
    [VHD.Locator, 'platformCode', 32],
    [VHD.Locator, 'dataLength', 32],
  ]) {
    row(`${Class.name} field ${field}`, true, (v) => withField(Class, field, v)(), numberFieldCases(bits))
  }
  for (const [Class, field] of [[VHD.Footer, 'dataOffset'], [VHD.Footer, 'currentSize'], [VHD.Header, 'tableOffset'], [VHD.Locator, 'dataOffset']]) {
    row(`${Class.name} 64-bit field ${field}`, true, (v) => withField(Class, field, v)(), [
      ...WRONG_TYPES.filter(([, v]) => typeof v !== 'number').map(([l, v]) => [l, v, TYPE_ERROR]),
      ['-1', -1, RANGE_ERROR],
      ['1.5', 1.5, RANGE_ERROR],
      ['NaN', NaN, RANGE_ERROR],
      ['-1n', -1n, RANGE_ERROR],
      ['2n**64n', 2n ** 64n, RANGE_ERROR],
    ])
  }
  for (const [Class, field] of [[VHD.Footer, 'diskGeometry'], [VHD.Footer, 'formatVersion'], [VHD.Footer, 'creatorVersion'], [VHD.Header, 'headerVersion']]) {
    row(`${Class.name} object field ${field}`, true, (v) => withField(Class, field, v)(), [
      ['null', null, TYPE_ERROR],
      ['undefined', undefined, TYPE_ERROR],
      ["'1.0'", '1.0', TYPE_ERROR],
      ['1', 1, TYPE_ERROR],
    ])
  }
  for (const [Class, field] of [[VHD.Footer, 'timestamp'], [VHD.Header, 'parentTimestamp']]) {
    row(`${Class.name} time field ${field}`, true, (v) => withField(Class, field, v)(), [
      ["'x'", 'x', TYPE_ERROR],
      ['null', null, TYPE_ERROR],
      ['1n', 1n, TYPE_ERROR],
      ['NaN', NaN, RANGE_ERROR],
      ['before 2000', 0, RANGE_ERROR],
      ['an invalid Date', new Date(NaN), RANGE_ERROR],
      ['after 2136', Date.UTC(2137, 0, 1), RANGE_ERROR],
    ])
  }
  for (const [Class, field, length] of [[VHD.Footer, 'uuid', 16], [VHD.Footer, 'reserved', 427], [VHD.Header, 'parentId', 16], [VHD.Header, 'reserved2', 256]]) {
    row(`${Class.name} bytes field ${field} (${length} bytes)`, true, (v) => withField(Class, field, v)(), [
      ["'x'", 'x', TYPE_ERROR],
      ['null', null, TYPE_ERROR],
      ['[1, 2]', [1, 2], TYPE_ERROR],
    ])
  }
  row('Header parentLocators', true, (v) => withField(VHD.Header, 'parentLocators', v)(), [
    ["'abc'", 'abc', TYPE_ERROR],
    ['{}', {}, TYPE_ERROR],
    ['[1]', [1], TYPE_ERROR],
    ["[{ platformCode: 'x' }]", [{ platformCode: 'x' }], TYPE_ERROR],
    ['[{ ...fields, dataOffset: -1n }]', [{ platformCode: 0, dataSpace: 0, dataLength: 0, dataOffset: -1n }], RANGE_ERROR],
  ])

  row('checksum(buffer)', true, (v) => VHD.checksum(v), bytesCases())
  row('checksum(buffer, offset)', true, (v) => VHD.checksum(Buffer.alloc(8), v), [...indexCases({ optional: true }), ['9', 9, RANGE_ERROR]])
  row('checksum(buffer, 0, length)', true, (v) => VHD.checksum(Buffer.alloc(8), 0, v), [...indexCases({ optional: true }), ['9', 9, RANGE_ERROR]])
  row('checksum(buffer, 4, length)', true, (v) => VHD.checksum(new Uint32Array(2), 4, v), [['5', 5, RANGE_ERROR]])
  row('getDiskGeometry(totalSectors)', true, (v) => VHD.getDiskGeometry(v), indexCases())

  test('edge values that are fine', () => {
    assert.equal(VHD.checksum(Buffer.alloc(8), 8), 0xffffffff)
    assert.equal(VHD.checksum(Buffer.alloc(0)), 0xffffffff)
    assert.equal(VHD.checksum(Buffer.alloc(8), 0, 0n), 0xffffffff)
    assert.deepEqual(VHD.getDiskGeometry(Number.MAX_SAFE_INTEGER), { cylinders: 65535, heads: 16, sectors: 255 })
    assert.deepEqual(VHD.getDiskGeometry(2n ** 53n - 1n), { cylinders: 65535, heads: 16, sectors: 255 })
    assert.equal(new VHD.Footer().write(null, 0n).length, 512)
    assert.equal(VHD.Footer.parse(new VHD.Footer().write(Buffer.alloc(600), 88), 88n).signature, 'conectix')
  })
})

describe('the process survives', () => {
  test('a bad call in another process is an exception, never a crash', async () => {
    // The same kinds of calls in a fresh process that does nothing else: it must exit 0
    // after catching every one (a native abort would kill it with a signal).
    const { spawnSync } = require('node:child_process')
    const script = `
      const VHD = require(process.argv[1])
      const file = process.argv[2]
      const calls = [
        () => VHD.open(file, { readOnly: 5 }),
        () => VHD.open(Symbol('x')),
        () => VHD.create(file, { type: 'dynamic', size: -1 }),
        () => new VHD.Image({ fd: 2 ** 40 }).open(),
        () => new VHD.Image({ path: file, flags: 2 ** 40 }).open(),
        () => VHD.Footer.parse(new Float64Array(1)),
        () => VHD.checksum(Buffer.alloc(1), 2 ** 64),
        () => VHD.getDiskGeometry(-1n),
      ]
      ;(async () => {
        let caught = 0
        for (const call of calls) {
          try { await call() } catch (error) { if (error.code) caught += 1 }
        }
        const disk = await VHD.open(file, { readOnly: true, lock: false })
        for (const v of [-1, NaN, 2 ** 64, 'x', {}, -1n]) {
          try { await disk.read(v, 1) } catch (error) { if (error.code) caught += 1 }
          try { disk.readSync(0, v) } catch (error) { if (error.code) caught += 1 }
        }
        await disk.close()
        console.log(caught)
      })()
    `
    const result = spawnSync(process.execPath, ['-e', script, path.join(__dirname, '..', 'index.js'), files.dynamic], { encoding: 'utf8' })
    assert.equal(result.signal, null, result.stderr)
    assert.equal(result.status, 0, result.stderr)
    assert.equal(result.stdout.trim(), '20')
  })
})

