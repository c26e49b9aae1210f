'use strict'

// The open/close lifecycle that `VHD.Fixed`/`Dynamic`/`Differencing` and `VHD.Image` share
// (lib/lifecycle.js): `flush` covers the writes started before it, for both (before issue 14
// `Disk.flush` did not wait for them, while `Image.flush` did); what `util.inspect` (so
// `console.log`) shows of an image; and the shape of lib/: no module requires itself back.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const util = require('node:util')
const VHD = require('..')
const { MiB, tempDir, pattern } = require('./helpers.js')

let tmp
before(() => {
  tmp = tempDir('vhd-lifecycle-')
})
after(() => tmp.cleanup())

/**
 * Starts `count` writes of 1 MiB (each allocating a block of a new dynamic image) without
 * waiting for them, then `flush()`; returns how many writes had settled when the flush
 * resolved, and the writes.
 */
async function writesSettledAtFlush(write, flush, count) {
  let settled = 0
  const writes = []
  for (let i = 0; i < count; i++) {
    writes.push(write(pattern(MiB, i + 1), i * 2 * MiB).then(() => settled++))
  }
  await flush()
  const atFlush = settled
  await Promise.all(writes)
  return atFlush
}

describe('flush covers the writes started before it', () => {
  const COUNT = 32

  test('VHD.open / VHD.create classes', async () => {
    const file = tmp.file('disk-flush')
    const disk = await VHD.create(file, { type: 'dynamic', size: 2 * COUNT * MiB })
    const atFlush = await writesSettledAtFlush((b, at) => disk.write(b, at), () => disk.flush(), COUNT)
    assert.equal(atFlush, COUNT, 'every write started before flush() had settled when it resolved')
    // And callbacks: flush(callback) is the same flush.
    let settled = 0
    for (let i = 0; i < 4; i++) disk.write(pattern(MiB, 50 + i), (COUNT + i) * MiB).then(() => settled++)
    await new Promise((resolve, reject) => disk.flush((error) => (error ? reject(error) : resolve())))
    assert.equal(settled, 4)
    await disk.close()
    const again = await VHD.open(file, { readOnly: true })
    assert.ok((await again.read(2 * MiB, MiB)).buffer.equals(pattern(MiB, 2)))
    await again.close()
  })

  test('VHD.Image', async () => {
    const file = tmp.file('image-flush')
    await (await VHD.create(file, { type: 'dynamic', size: 2 * COUNT * MiB })).close()
    const image = new VHD.Image({ path: file })
    await image.open()
    const atFlush = await writesSettledAtFlush((b, at) => image.write(b, 0, b.length, at), () => image.flush(), COUNT)
    assert.equal(atFlush, COUNT)
    await image.close()
  })

  test('a write started after flush() does not hold it up, and close() still waits for it', async () => {
    const file = tmp.file('flush-later')
    const disk = await VHD.create(file, { type: 'dynamic', size: 64 * MiB })
    await disk.write(pattern(MiB, 1), 0)
    const flushed = disk.flush()
    const later = disk.write(pattern(MiB, 2), 8 * MiB)
    await flushed
    await disk.close()
    assert.equal((await later).bytesWritten, MiB)
  })
})

test('VHD.Image: bat after close is the table as it was last, writes included', async () => {
  const file = tmp.file('bat-after-close')
  await (await VHD.create(file, { type: 'dynamic', size: 8 * MiB })).close()
  const image = new VHD.Image({ path: file })
  await image.open()
  await image.write(pattern(512, 3), 0, 512, 0)
  // Not read while open: close reads it a last time.
  await image.close()
  assert.ok(Buffer.isBuffer(image.bat))
  assert.notEqual(image.bat.readUInt32BE(0), 0xffffffff, 'block 0, allocated by the write, is in the table')
  // Changed by another open meanwhile: a reopen reads the table again.
  const other = await VHD.open(file)
  await other.write(pattern(512, 4), 2 * MiB)
  await other.close()
  await image.open()
  assert.notEqual(image.bat.readUInt32BE(4), 0xffffffff, 'block 1, allocated between the opens, is in the table')
  await image.close()
})

describe('util.inspect shows a short summary', () => {
  const inspect = (value, options) => util.inspect(value, { breakLength: Infinity, ...options })

  test('VHD.Dynamic and VHD.Differencing: open, then closed', async () => {
    const base = tmp.file('inspect-base')
    const disk = await VHD.create(base, { type: 'dynamic', size: 4 * MiB })
    const shown = inspect(disk)
    assert.equal(shown, `Dynamic { path: ${util.inspect(base)}, type: 'dynamic', size: 4194304, readOnly: false }`)
    assert.ok(!shown.includes('Symbol('), 'no internal symbol is shown')
    await disk.close()
    assert.equal(inspect(disk), `Dynamic { path: ${util.inspect(base)}, state: 'closed' }`)

    const child = tmp.file('inspect-child')
    await (await VHD.create(child, { type: 'differencing', parent: base })).close()
    const diff = await VHD.open(child, { readOnly: true })
    assert.equal(
      inspect(diff),
      `Differencing { path: ${util.inspect(child)}, type: 'differencing', size: 4194304, readOnly: true, parent: ${util.inspect(base)} }`,
    )
    // Nested deeper than the depth asked: the class name only.
    assert.equal(inspect({ a: { b: diff } }, { depth: 1 }), '{ a: { b: [Differencing] } }')
    await diff.close()
    assert.equal(inspect(new VHD.Fixed(base)), `Fixed { path: ${util.inspect(base)}, state: 'not open' }`)
  })

  test('VHD.Image: with its descriptor', async () => {
    const file = tmp.file('inspect-image')
    await (await VHD.create(file, { type: 'fixed', size: 2 * MiB })).close()
    const image = new VHD.Image({ path: file, flags: 'r' })
    assert.equal(inspect(image), `Image { path: ${util.inspect(file)}, state: 'not open', fd: null }`)
    await image.open()
    const shown = inspect(image)
    assert.equal(shown, `Image { path: ${util.inspect(file)}, type: 'fixed', size: 2097152, readOnly: true, fd: ${image.fd} }`)
    await image.close()
    assert.equal(inspect(image), `Image { path: ${util.inspect(file)}, state: 'closed', fd: null }`)
    // Opened from a descriptor alone: no path.
    const fd = fs.openSync(file, 'r')
    const byFd = new VHD.Image({ fd, flags: 'r' })
    await byFd.open()
    assert.equal(inspect(byFd), `Image { path: null, type: 'fixed', size: 2097152, readOnly: true, fd: ${fd} }`)
    await byFd.close()
  })
})

test("VHD.Image by path: image.fd is the image's file, opened with the image's flags, closed with it", async () => {
  const file = path.join(tmp.dir, 'fd-by-path.vhd')
  await (await VHD.create(file, { type: 'dynamic', size: 4 * MiB })).close()
  const inode = fs.statSync(file).ino
  for (const [flags, writable] of [['r', false], ['r+', true]]) {
    const image = new VHD.Image({ path: file, flags })
    await image.open()
    const fd = image.fd
    assert.equal(typeof fd, 'number')
    assert.equal(fs.fstatSync(fd).ino, inode)
    // The descriptor's access mode is the flags': a read-only one refuses writes (EBADF).
    const probe = () => fs.writeSync(fd, Buffer.alloc(0), 0, 0, 0)
    if (writable) probe()
    else assert.throws(() => fs.writeSync(fd, Buffer.alloc(1), 0, 1, 1 << 30), { code: 'EBADF' })
    await image.close()
    assert.equal(image.fd, null)
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' })
    // Footer and header are parsed when first asked for: also after close.
    assert.ok(image.footer instanceof VHD.Footer)
    assert.equal(image.footer.currentSize, BigInt(4 * MiB))
    assert.ok(image.header instanceof VHD.Header)
  }
  await assert.rejects(new VHD.Image({ path: path.join(tmp.dir, 'missing.vhd') }).open(), { code: 'ENOENT' })
})

test('a callback that throws is an uncaught exception, and the callbacks after it still run', async () => {
  const file = path.join(tmp.dir, 'throwing-callbacks.vhd')
  await (await VHD.create(file, { type: 'dynamic', size: 4 * MiB })).close()
  const script = `
    const VHD = require(${JSON.stringify(path.join(__dirname, '..'))})
    const seen = []
    process.on('uncaughtException', (error) => seen.push(error.message))
    const image = new VHD.Image({ path: ${JSON.stringify(file)}, flags: 'r' })
    image.open((error) => {
      if (error) { console.log('open failed', error.message); process.exit(1) }
      image.read(Buffer.alloc(512), 0, 512, 0, () => { throw new Error('from read 1') })
      image.read(Buffer.alloc(512), 0, 512, 4096, (error, n) => {
        seen.push('read 2: ' + n)
        setImmediate(() => image.close(() => { console.log(JSON.stringify(seen)) }))
      })
      throw new Error('from open')
    })`
  const { execFileSync } = require('node:child_process')
  const seen = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }))
  assert.deepEqual(seen.sort(), ['from open', 'from read 1', 'read 2: 512'])
})

test("VHD.Image calls its callbacks with the image as `this`, as vhd@0.5.0 does", async () => {
  const file = path.join(tmp.dir, 'callback-this.vhd')
  await (await VHD.create(file, { type: 'dynamic', size: 4 * MiB })).close()
  const image = new VHD.Image({ path: file })
  const thisOf = (start) =>
    new Promise((resolve, reject) =>
      start(function (error) {
        if (error) reject(error)
        else resolve(this)
      }),
    )
  assert.equal(await thisOf((cb) => image.open(cb)), image)
  assert.equal(await thisOf((cb) => image.write(Buffer.alloc(512, 1), 0, 512, 0, cb)), image)
  assert.equal(await thisOf((cb) => image.read(Buffer.alloc(512), 0, 512, 0, cb)), image)
  assert.equal(await thisOf((cb) => image.readFooter(0, cb)), image)
  assert.equal(await thisOf((cb) => image.flush(cb)), image)
  assert.equal(await thisOf((cb) => image.close(cb)), image)
  // Failures too.
  const failed = await new Promise((resolve) => image.read(Buffer.alloc(512), 0, 512, 0, function (error) { resolve([this, error && error.code]) }))
  assert.deepEqual(failed, [image, 'ERR_VHD_CLOSED'])
})

test('lib/ has no require cycle', () => {
  const lib = path.join(__dirname, '..', 'lib')
  /** The lib/ modules each module requires (any `require('./x.js')` in its text, lazy ones too). */
  const edges = new Map()
  for (const name of fs.readdirSync(lib).filter((f) => f.endsWith('.js'))) {
    const text = fs.readFileSync(path.join(lib, name), 'utf8')
    const targets = [...text.matchAll(/require\(\s*'\.\/([^']+)'\s*\)/g)].map((m) => path.basename(m[1]))
    edges.set(name, targets)
  }
  assert.ok(edges.size >= 8 && edges.get('disk.js').length > 0, 'the module graph was read')
  // Depth-first search; a module met again while on the path closes a cycle.
  const done = new Set()
  const walk = (name, trail) => {
    if (trail.includes(name)) assert.fail(`require cycle: ${[...trail.slice(trail.indexOf(name)), name].join(' -> ')}`)
    if (done.has(name)) return
    for (const next of edges.get(name) ?? []) walk(next, [...trail, name])
    done.add(name)
  }
  for (const name of edges.keys()) walk(name, [])
})

// Closing, as `fs.promises.FileHandle#close`: a second `close()` resolves, concurrent ones
// share one close, and `close()` of what is not open (never opened, failed to open) is not
// an error. And `await using` (Symbol.asyncDispose) closes at the end of the block.
describe('close() twice, concurrently, after a failed open; Symbol.asyncDispose', () => {
  test('a second close() resolves, on a disk and on a VHD.Image (promise and callback)', async () => {
    const file = tmp.file('close-twice')
    const disk = await VHD.create(file, { type: 'dynamic', size: 4 * MiB })
    await disk.close()
    await disk.close()
    await new Promise((resolve, reject) => disk.close((error) => (error ? reject(error) : resolve())))
    const image = new VHD.Image({ path: file })
    await image.open()
    await image.close()
    await image.close()
    assert.equal(image.fd, null)
  })

  test('concurrent close() calls share one close and all resolve once it is done', async () => {
    const file = tmp.file('close-concurrent')
    const disk = await VHD.create(file, { type: 'dynamic', size: 8 * MiB })
    const writing = disk.write(pattern(MiB, 3), 2 * MiB)
    const first = disk.close()
    const second = disk.close()
    // Not the same promise object (each call's carries its caller's stack for errors), but
    // one close: both settle when it is done, neither fails with ERR_VHD_CLOSED.
    let settled = 0
    for (const p of [first, second]) p.then(() => settled++)
    await first
    await null
    assert.equal(settled, 2, 'the second close() settles with the first')
    await Promise.all([first, second, writing])
    assert.equal(disk.isOpen, false)
    // Closed once: the file opens (and locks) again at once.
    const again = await VHD.open(file)
    assert.ok((await again.read(2 * MiB, MiB)).buffer.equals(pattern(MiB, 3)))
    await again.close()

    const image = new VHD.Image({ path: file })
    await image.open()
    await Promise.all([image.close(), image.close(), image.close()])
    assert.equal(image.fd, null)
  })

  test('close() of a disk never opened, or whose open failed, resolves; it opens later', async () => {
    const fixed = tmp.file('close-failed-open.vhd')
    await (await VHD.create(fixed, { type: 'fixed', size: MiB })).close()
    const never = new VHD.Dynamic(fixed)
    await never.close()
    // A Dynamic over a fixed image fails to open: nothing to close.
    const wrong = new VHD.Dynamic(fixed)
    await assert.rejects(wrong.open(), { code: 'ERR_VHD_WRONG_TYPE' })
    await wrong.close()
    // close() during open waits for it: when the open fails, it resolves.
    const during = new VHD.Dynamic(fixed)
    const opening = during.open()
    const closing = during.close()
    await assert.rejects(opening, { code: 'ERR_VHD_WRONG_TYPE' })
    await closing
    // when it succeeds, it closes what was opened.
    const right = new VHD.Fixed(fixed)
    const opened = right.open()
    const closed = right.close()
    await opened
    await closed
    assert.equal(right.isOpen, false)
    // A VHD.Image whose file is missing.
    const missing = new VHD.Image({ path: tmp.file('no-such-image.vhd') })
    await assert.rejects(missing.open(), { code: 'ENOENT' })
    await missing.close()
    // And the lock was released every time.
    await (await VHD.open(fixed)).close()
  })

  test('Symbol.asyncDispose (also as Symbol.for("nodejs.asyncDispose")) closes a disk and a VHD.Image', async () => {
    const symbol = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')
    const file = tmp.file('dispose')
    const disk = await VHD.create(file, { type: 'dynamic', size: MiB })
    assert.equal(typeof disk[symbol], 'function')
    assert.equal(disk[Symbol.for('nodejs.asyncDispose')], disk[symbol])
    assert.ok(!Object.keys(disk).length && !Object.keys(Object.getPrototypeOf(Object.getPrototypeOf(disk))).includes(symbol))
    await disk[symbol]()
    assert.equal(disk.isOpen, false)
    await disk[symbol]() // disposing twice is fine too
    const image = new VHD.Image({ path: file })
    await image.open()
    await image[symbol]()
    assert.equal(image.fd, null)
  })

  test('`await using` (compiled by TypeScript) closes the disk when the block ends, even on a throw', async () => {
    const ts = require('typescript')
    const source = `
      export async function use(VHD: any, file: string, fail: boolean) {
        let seen: any
        {
          await using disk = await VHD.open(file)
          seen = disk
          if (fail) throw new Error('inside the block')
          if (!disk.isOpen) throw new Error('not open inside the block')
        }
        return seen
      }`
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, strict: true },
    })
    const mod = { exports: {} }
    new Function('module', 'exports', 'require', outputText)(mod, mod.exports, require)
    const file = tmp.file('await-using')
    await (await VHD.create(file, { type: 'dynamic', size: MiB })).close()
    const disk = await mod.exports.use(VHD, file, false)
    assert.equal(disk.isOpen, false, 'closed at the end of the block')
    await assert.rejects(mod.exports.use(VHD, file, true), /inside the block/)
    // The throw closed it too: the exclusive lock is free.
    await (await VHD.open(file)).close()
  })
})

test('an opener that throws before it has a promise fails the open and leaves the state as it was', async () => {
  const { Lifecycle } = require('../lib/lifecycle.js')
  const life = new Lifecycle('thrown.vhd')
  const self = {}
  assert.throws(
    () =>
      life.open(function () {
        assert.equal(this, self)
        throw new TypeError('a bad argument')
      }, self, 'unused'),
    /a bad argument/,
  )
  assert.equal(life.state, 'new')
  assert.equal(life.opening, null)
  // A later open goes ahead (it was not left 'opening') and resolves to what it was given.
  const native = /** @type {any} */ ({ handle: {}, info: { diskType: 3 } })
  const result = await life.open(() => Promise.resolve({ native, release: null }), self, 'opened')
  assert.equal(result, 'opened')
  assert.equal(life.state, 'open')
  assert.equal(life.opening, null)
  assert.throws(() => life.open(() => Promise.resolve({ native, release: null }), self, null), { code: 'ERR_VHD_ALREADY_OPEN' })
})
