'use strict'

// File locking (OpenOptions.lock) and the parent folder restriction (OpenOptions.parentRoot)
// through the JavaScript API: a read-write open holds the only lock on its file, read-only
// opens share it, the parents of a differencing image are shared-locked, `close` (and a
// failed open) releases it, `lock: false` opts out; `VHD.Image` locks its descriptor the
// same way, and two of them on one descriptor (or on one file by any route: a path, a hard
// or symbolic link) conflict as two processes would; another process sees the locks;
// `create` with `overwrite` never empties an image open elsewhere; a parent found outside
// `parentRoot` is refused.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const VHD = require('..')
const { MiB, tempDir, pattern, sha256File, viaCallback, rejectsWith } = require('./helpers.js')

const INDEX = path.join(__dirname, '..', 'index.js')

let tmp
before(() => {
  tmp = tempDir('vhd-lock-')
})
after(() => tmp.cleanup())

/** A closed image of `type` with some data; returns its path. */
async function makeImage(type = 'dynamic', name = type) {
  const file = tmp.file(name)
  const disk = await VHD.create(file, { type, size: 4 * MiB })
  await disk.write(pattern(4096, 7), MiB)
  await disk.close()
  return file
}

/** A closed differencing child of `parent` (in `dir`, default the test folder). */
async function makeChild(parent, file = tmp.file('child')) {
  const child = await VHD.create(file, { type: 'differencing', parent })
  await child.write(pattern(512, 9), 0)
  await child.close()
  return file
}

/** Checks that `promise` rejects with ERR_VHD_LOCKED (an Error) whose message names `file`. */
async function rejectsLocked(promise, file) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof Error && !(error instanceof TypeError) && !(error instanceof RangeError), String(error))
    assert.equal(error.code, 'ERR_VHD_LOCKED', error.message)
    assert.ok(error.message.includes(file), `the message names ${file}: ${error.message}`)
    return true
  })
}

describe('VHD.open and the classes', () => {
  test('read-write against read-write: ERR_VHD_LOCKED naming the file, in every form', async () => {
    const file = await makeImage()
    const first = await VHD.open(file)
    await rejectsLocked(VHD.open(file), file)
    await rejectsLocked(new VHD.Dynamic(file).open(), file)
    await rejectsLocked(VHD.open(pathToFileURL(file)), file)
    const [error] = await viaCallback((cb) => VHD.open(file, cb))
    assert.equal(error.code, 'ERR_VHD_LOCKED')
    const [error2] = await viaCallback((cb) => new VHD.Dynamic(file).open(cb))
    assert.equal(error2.code, 'ERR_VHD_LOCKED')
    // The refused opens changed nothing: the first one still works.
    assert.ok((await first.read(MiB, 4096)).buffer.equals(pattern(4096, 7)))
    await first.write(Buffer.from('still mine'), 0)
    await first.close()
  })

  test('read-write against read-only, both ways; read-only opens share the file', async () => {
    for (const type of ['fixed', 'dynamic']) {
      const file = await makeImage(type)
      const writer = await VHD.open(file)
      await rejectsLocked(VHD.open(file, { readOnly: true }), file)
      await writer.close()

      const readers = await Promise.all([1, 2, 3].map(() => VHD.open(file, { readOnly: true })))
      for (const reader of readers) assert.ok((await reader.read(MiB, 4096)).buffer.equals(pattern(4096, 7)))
      await rejectsLocked(VHD.open(file), file)
      await rejectsLocked(new (type === 'fixed' ? VHD.Fixed : VHD.Dynamic)(file).open(), file)
      // Still refused while one reader is left.
      await readers[0].close()
      await readers[1].close()
      await rejectsLocked(VHD.open(file), file)
      await readers[2].close()
      const again = await VHD.open(file)
      await again.close()
    }
  })

  test('close releases the lock: the same object and a new one reopen at once', async () => {
    const file = await makeImage()
    const disk = new VHD.Dynamic(file)
    for (let i = 0; i < 5; i++) {
      await disk.open()
      await rejectsLocked(VHD.open(file, { readOnly: true }), file)
      await disk.close()
      const other = await VHD.open(file)
      await other.close()
    }
    // The callback form of close too.
    await disk.open()
    const [error] = await viaCallback((cb) => disk.close(cb))
    assert.ifError(error)
    await (await VHD.open(file)).close()
  })

  test('a failed open holds no lock', async () => {
    const file = await makeImage()
    // The wrong class: the file was opened and locked, then refused.
    await rejectsWith(new VHD.Fixed(file).open(), 'ERR_VHD_WRONG_TYPE')
    await rejectsWith(new VHD.Differencing(file).open(), 'ERR_VHD_WRONG_TYPE')
    const disk = await VHD.open(file)
    await disk.close()
    // A child whose parent is missing: neither the child nor anything else stays locked.
    const base = await makeImage('dynamic', 'base')
    const child = await makeChild(base)
    fs.renameSync(base, `${base}.moved`)
    await rejectsWith(VHD.open(child), 'ERR_VHD_PARENT_NOT_FOUND')
    fs.renameSync(`${base}.moved`, base)
    await (await VHD.open(child)).close()
    await (await VHD.open(base)).close()
  })

  test('lock: false opts out, and is not seen by locked opens', async () => {
    const file = await makeImage()
    const locked = await VHD.open(file)
    const unlocked = await VHD.open(file, { lock: false, readOnly: true })
    const unlocked2 = await new VHD.Dynamic(file, { lock: false }).open()
    assert.ok((await unlocked.read(MiB, 4096)).buffer.equals(pattern(4096, 7)))
    await Promise.all([locked.close(), unlocked.close(), unlocked2.close()])

    // Unlocked opens take no lock: a locked read-write open still gets the file.
    const a = await VHD.open(file, { lock: false })
    const b = await VHD.open(file)
    await rejectsLocked(VHD.open(file, { readOnly: true }), file)
    await Promise.all([a.close(), b.close()])
  })

  test('lock must be a boolean', async () => {
    const file = await makeImage()
    for (const bad of [null, 0, 1, 'false', {}]) {
      await rejectsWith(VHD.open(file, { lock: bad }), 'ERR_INVALID_ARG_TYPE', TypeError)
      assert.throws(() => new VHD.Dynamic(file, { lock: bad }), { code: 'ERR_INVALID_ARG_TYPE' })
      assert.throws(() => new VHD.Image({ path: file, lock: bad }), { code: 'ERR_INVALID_ARG_TYPE' })
    }
  })

  test('create with overwrite over an image open elsewhere: ERR_VHD_LOCKED, the image untouched', async () => {
    const file = await makeImage()
    const hash = sha256File(file)
    for (const options of [{}, { readOnly: true }]) {
      const disk = await VHD.open(file, options)
      await rejectsLocked(VHD.create(file, { type: 'dynamic', size: 8 * MiB, overwrite: true }), file)
      await rejectsLocked(VHD.create(file, { type: 'fixed', size: MiB, overwrite: true }), file)
      assert.equal(sha256File(file), hash)
      assert.ok((await disk.read(MiB, 4096)).buffer.equals(pattern(4096, 7)))
      await disk.close()
    }
    // A new image is locked from the start, until closed.
    const created = await VHD.create(tmp.file('new'), { type: 'dynamic', size: MiB })
    await rejectsLocked(VHD.open(created.path, { readOnly: true }), created.path)
    await created.close()
    await (await VHD.open(created.path, { readOnly: true })).close()
  })

  test('streams that open their own image lock it', async () => {
    const file = await makeImage()
    const disk = await VHD.open(file)
    const failed = (stream) => new Promise((resolve) => stream.on('error', resolve))
    const read = new VHD.ReadStream({ path: file })
    const readError = await failed(read)
    assert.equal(readError.code, 'ERR_VHD_LOCKED')
    const write = new VHD.WriteStream({ path: file })
    const writeError = await failed(write)
    assert.equal(writeError.code, 'ERR_VHD_LOCKED')
    // Opted out, a read stream reads beside the writer.
    const chunks = []
    for await (const chunk of new VHD.ReadStream({ path: file, lock: false, start: MiB, end: MiB + 4096 })) chunks.push(chunk)
    assert.ok(Buffer.concat(chunks).equals(pattern(4096, 7)))
    await disk.close()
  })
})

describe('differencing images hold their parents shared', () => {
  test('a child open read-write: the parent opens read-only, not read-write', async () => {
    const base = await makeImage('dynamic', 'base')
    const baseHash = sha256File(base)
    const child = await makeChild(base)
    const disk = await VHD.open(child)
    await rejectsLocked(VHD.open(base), base)
    await rejectsLocked(new VHD.Dynamic(base).open(), base)
    const reader = await VHD.open(base, { readOnly: true })
    assert.ok((await reader.read(MiB, 4096)).buffer.equals(pattern(4096, 7)))
    await reader.close()
    // A second child over the same parent shares it too.
    const sibling = await makeChild(base, tmp.file('sibling'))
    const siblingDisk = await VHD.open(sibling)
    await siblingDisk.close()
    // The child itself is held exclusively.
    await rejectsLocked(VHD.open(child, { readOnly: true }), child)
    await disk.close()
    const writer = await VHD.open(base)
    await writer.close()
    assert.equal(sha256File(base), baseHash)
  })

  test('a parent open read-write: the child cannot open (ERR_VHD_LOCKED naming the parent)', async () => {
    const base = await makeImage('fixed', 'base')
    const mid = await makeChild(base, tmp.file('mid'))
    const top = await makeChild(mid, tmp.file('top'))
    const writer = await VHD.open(base)
    for (const file of [mid, top]) {
      await rejectsLocked(VHD.open(file), base)
      await rejectsLocked(VHD.open(file, { readOnly: true }), base)
      await rejectsLocked(new VHD.Differencing(file).open(), base)
    }
    // Without locking the chain opens (and takes no lock: the writer keeps its own).
    const unlocked = await VHD.open(top, { lock: false, readOnly: true })
    assert.deepEqual(unlocked.chain, [top, mid, base])
    await unlocked.close()
    await writer.close()
    // A middle image is a parent too: held shared while the top is open.
    const disk = await VHD.open(top)
    await rejectsLocked(VHD.open(mid), mid)
    await (await VHD.open(mid, { readOnly: true })).close()
    await disk.close()
    await (await VHD.open(mid)).close()
  })

  test('an explicit parent (parent option) and a raw base are shared-locked too', async () => {
    const base = await makeImage('dynamic', 'base')
    const child = await makeChild(base)
    const disk = await VHD.open(child, { parent: base })
    await rejectsLocked(VHD.open(base), base)
    await disk.close()

    // A raw base: a fixed image's file, whose first bytes are its data, named as raw (so
    // that the lock can be seen by opening the same file as a VHD).
    const fixed = await makeImage('fixed', 'fixed-base')
    const overRaw = await makeChild(fixed, tmp.file('over-raw'))
    const onRaw = await VHD.open(overRaw, { parent: { path: fixed, raw: true } })
    assert.equal(onRaw.parent.raw, true)
    await rejectsLocked(VHD.open(fixed), fixed)
    const reader = await VHD.open(fixed, { readOnly: true })
    await reader.close()
    await onRaw.close()
    await (await VHD.open(fixed)).close()
  })
})

describe('VHD.Image locks its descriptor', () => {
  test("'r+' against 'r', both ways; 'r' opens share", async () => {
    const file = await makeImage()
    const writer = new VHD.Image({ path: file, flags: 'r+' })
    await writer.open()
    const reader = new VHD.Image({ path: file, flags: 'r' })
    await rejectsLocked(reader.open(), file)
    assert.equal(reader.fd, null, 'the descriptor the failed open opened is closed')
    await rejectsLocked(new VHD.Image({ path: file, flags: 'r+' }).open(), file)
    await rejectsLocked(VHD.open(file, { readOnly: true }), file)
    await writer.close()

    await reader.open()
    const reader2 = new VHD.Image({ path: file, flags: 'r' })
    await reader2.open()
    const disk = await VHD.open(file, { readOnly: true })
    await rejectsLocked(new VHD.Image({ path: file, flags: 'r+' }).open(), file)
    await rejectsLocked(new VHD.Image({ path: file, flags: 'w' }).open(), file)
    // readOnly: true with read-write flags takes the shared lock.
    const sharedRw = new VHD.Image({ path: file, flags: 'r+', readOnly: true })
    await sharedRw.open()
    await rejectsLocked(VHD.open(file), file)
    await Promise.all([reader.close(), reader2.close(), disk.close(), sharedRw.close()])
    // All released.
    await writer.open()
    await writer.close()
  })

  test('against the classes, with the callback forms', async () => {
    const file = await makeImage()
    const disk = await VHD.open(file)
    const image = new VHD.Image({ path: file })
    const [error] = await viaCallback((cb) => image.open(cb))
    assert.equal(error.code, 'ERR_VHD_LOCKED')
    assert.ok(error.message.includes(file), error.message)
    await disk.close()
    const [error2] = await viaCallback((cb) => image.open(cb))
    assert.ifError(error2)
    await rejectsLocked(VHD.open(file, { readOnly: true }), file)
    await image.close()
    await (await VHD.open(file)).close()
  })

  test('a given fd is locked, stays open when refused, and is unlocked by close', async () => {
    const file = await makeImage()
    const holder = await VHD.open(file)
    const fd = fs.openSync(file, 'r+')
    const image = new VHD.Image({ fd, path: file })
    await rejectsLocked(image.open(), file)
    fs.fstatSync(fd) // still open: the caller's
    await holder.close()
    await image.open()
    await rejectsLocked(VHD.open(file, { readOnly: true }), file)
    await image.close() // closes the fd too, as in vhd@0.5.0
    assert.throws(() => fs.fstatSync(fd), { code: 'EBADF' })
    await (await VHD.open(file)).close()
  })

  test('lock: false opts out', async () => {
    const file = await makeImage()
    const disk = await VHD.open(file)
    const image = new VHD.Image({ path: file, flags: 'r', lock: false })
    await image.open()
    const buffer = Buffer.alloc(4096)
    await image.read(buffer, 0, 4096, MiB)
    assert.ok(buffer.equals(pattern(4096, 7)))
    await image.close()
    await disk.close()
    // Unlocked, it does not keep a locked open out either.
    const unlocked = new VHD.Image({ path: file, flags: 'r+', lock: false })
    await unlocked.open()
    await (await VHD.open(file)).close()
    await unlocked.close()
  })

  test("a differencing VHD.Image holds its parents shared", async () => {
    const base = await makeImage('dynamic', 'base')
    const child = await makeChild(base)
    const image = new VHD.Image({ path: child, flags: 'r+' })
    await image.open()
    await rejectsLocked(VHD.open(base), base)
    await (await VHD.open(base, { readOnly: true })).close()
    await image.close()
    await (await VHD.open(base)).close()
  })
})

describe('one file, whatever route reaches it', () => {
  test('two read-write VHD.Images on one descriptor: the second is refused, the image stays whole', async () => {
    // The report: each allocated its first block at the same offset (ERR_VHD_BAT_OVERLAP
    // afterwards), and closing one unlocked the other.
    const file = await makeImage()
    const fd = fs.openSync(file, 'r+')
    const first = new VHD.Image({ fd, path: file })
    await first.open()
    const second = new VHD.Image({ fd, path: file })
    await rejectsLocked(second.open(), file)
    await rejectsLocked(new VHD.Image({ fd, path: file, flags: 'r' }).open(), file)
    fs.fstatSync(fd) // a refused open leaves the caller's descriptor open
    const data = pattern(4096, 3)
    await first.write(data, 0, data.length, 2 * MiB)
    // Another process is still kept out: the refused opens left the lock exclusive.
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ERR_VHD_LOCKED naming the file,ok')
    await first.close()
    const report = await VHD.check(file)
    assert.equal(report.exitCode, 0, JSON.stringify(report.findings))
    const disk = await VHD.open(file, { readOnly: true })
    assert.ok((await disk.read(2 * MiB, 4096)).buffer.equals(data))
    await disk.close()
  })

  test('read-only and read-write on one descriptor, both ways', async () => {
    const file = await makeImage()
    const fd = fs.openSync(file, 'r+')
    const reader = new VHD.Image({ fd, path: file, readOnly: true })
    await reader.open()
    await rejectsLocked(new VHD.Image({ fd, path: file }).open(), file)
    // The refused writer did not make the shared lock exclusive: another process reads.
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ok,ok')
    await reader.close() // closes fd too, as in vhd@0.5.0

    const fd2 = fs.openSync(file, 'r+')
    const writer = new VHD.Image({ fd: fd2, path: file })
    await writer.open()
    await rejectsLocked(new VHD.Image({ fd: fd2, path: file, readOnly: true }).open(), file)
    await rejectsLocked(VHD.open(file, { readOnly: true }), file)
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ERR_VHD_LOCKED naming the file,ok')
    await writer.close()
    assert.equal(await runOther(tryOpen, file), 'ok,ok,ok')
  })

  test('a path, a descriptor, a hard link and a symbolic link are one file', { skip: process.platform === 'win32' }, async () => {
    const file = await makeImage()
    const hard = tmp.file('hard-link')
    const soft = tmp.file('symbolic-link')
    fs.linkSync(file, hard)
    fs.symlinkSync(file, soft)
    for (const holderOptions of [{}, { readOnly: true }]) {
      const holder = await VHD.open(hard, holderOptions)
      const refused = holderOptions.readOnly ? [{}] : [{}, { readOnly: true }]
      for (const options of refused) {
        for (const route of [file, hard, soft]) {
          await rejectsLocked(VHD.open(route, options), route)
          const fd = fs.openSync(route, options.readOnly ? 'r' : 'r+')
          await rejectsLocked(new VHD.Image({ fd, path: route, ...options }).open(), route)
          fs.closeSync(fd)
        }
      }
      await holder.close()
    }
    await (await VHD.open(soft)).close()
  })

  test('closing one of two readers keeps the lock, until the last one closes', async () => {
    const file = await makeImage()
    const hard = tmp.file('reader-link')
    fs.linkSync(file, hard)
    const pairs = [
      ['a path twice', file, file],
      ['a path and a hard link', file, hard],
    ]
    for (const [what, first, second] of pairs) {
      for (const closeFirst of [0, 1]) {
        const readers = [await VHD.open(first, { readOnly: true }), await VHD.open(second, { readOnly: true })]
        await readers[closeFirst].close()
        await rejectsLocked(VHD.open(file), file)
        assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ok,ok', what)
        await readers[1 - closeFirst].close()
        assert.equal(await runOther(tryOpen, file), 'ok,ok,ok', what)
      }
    }
    // Two VHD.Images on one descriptor, which share one OS lock (each natively holds a
    // duplicate of it): closing the first must not unlock the second.
    const fd = fs.openSync(file, 'r')
    const a = new VHD.Image({ fd, path: file, flags: 'r' })
    const b = new VHD.Image({ fd, path: file, flags: 'r' })
    await a.open()
    await b.open()
    await a.close() // closes fd too, as in vhd@0.5.0
    await rejectsLocked(VHD.open(file), file)
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ok,ok')
    const buffer = Buffer.alloc(4096)
    await b.read(buffer, 0, 4096, MiB)
    assert.ok(buffer.equals(pattern(4096, 7)))
    // a.close() closed the descriptor they were given: b gets one of its own to close.
    b.fd = fs.openSync(file, 'r')
    await b.close()
    assert.equal(await runOther(tryOpen, file), 'ok,ok,ok')
  })

  test('a failed open from a descriptor leaves nothing locked', async () => {
    const base = await makeImage('dynamic', 'base')
    const child = await makeChild(base)
    fs.renameSync(base, `${base}.moved`)
    const fd = fs.openSync(child, 'r+')
    await rejectsWith(new VHD.Image({ fd, path: child }).open(), 'ERR_VHD_PARENT_NOT_FOUND')
    fs.renameSync(`${base}.moved`, base)
    const image = new VHD.Image({ fd, path: child })
    await image.open()
    await image.close()
    await (await VHD.open(child)).close()
    await (await VHD.open(base)).close()
  })

  test('create, operations and streams see an image open from a descriptor', async () => {
    const file = await makeImage()
    const hash = sha256File(file)
    const fd = fs.openSync(file, 'r+')
    const image = new VHD.Image({ fd, path: file })
    await image.open()
    await rejectsLocked(VHD.create(file, { type: 'dynamic', size: MiB, overwrite: true }), file)
    await rejectsLocked(VHD.compact(file), file)
    await rejectsLocked(VHD.resize(file, 8 * MiB), file)
    await rejectsLocked(VHD.check(file), file)
    await rejectsLocked(VHD.check(file, { repair: true }), file)
    await rejectsLocked(VHD.snapshot(file, tmp.file('snapshot')), file)
    const stream = new VHD.ReadStream({ path: file })
    const error = await new Promise((resolve) => stream.on('error', resolve))
    assert.equal(error.code, 'ERR_VHD_LOCKED')
    await image.close()
    assert.equal(sha256File(file), hash)
  })
})

/**
 * Runs `script` in another Node process with `argv` = [index.js, ...args]: the package is
 * required by the absolute path of index.js. Resolves to its trimmed stdout once it exits.
 */
function runOther(script, ...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, INDEX, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}: ${err}`))))
  })
}

/** A process that opens `file` with `options`, prints 'open', and closes when its stdin ends. */
function holdInOther(file, options) {
  const script = `
    const VHD = require(process.argv[1])
    VHD.open(process.argv[2], JSON.parse(process.argv[3])).then((disk) => {
      process.stdout.write('open\\n')
      process.stdin.resume()
      process.stdin.on('end', () => disk.close().then(() => process.stdout.write('closed\\n')))
    }, (error) => { process.stdout.write(error.code + '\\n') })
  `
  const child = spawn(process.execPath, ['-e', script, INDEX, file, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  let out = ''
  const waitFor = (word) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (out.includes(word)) resolve()
        else if (child.exitCode !== null) reject(new Error(`the other process exited: ${out}`))
      }
      child.stdout.on('data', (d) => {
        out += d
        check()
      })
      child.on('exit', check)
      check()
    })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  return {
    opened: waitFor('open\n'),
    release: async () => {
      child.stdin.end()
      await waitFor('closed\n')
      await exited
    },
  }
}

/** A script for `runOther`: opens argv[2] read-write, read-only, read-only unlocked. */
const tryOpen = `
    const VHD = require(process.argv[1])
    const results = []
    const attempt = (options) => VHD.open(process.argv[2], options).then(
      (disk) => disk.close().then(() => 'ok'),
      (error) => error.code + (error.message.includes(process.argv[2]) ? ' naming the file' : ''),
    )
    ;(async () => {
      results.push(await attempt({}))
      results.push(await attempt({ readOnly: true }))
      results.push(await attempt({ readOnly: true, lock: false }))
      console.log(results.join(','))
    })()
  `

describe('another process', () => {
  test('sees this process\'s locks: read-write, read-only, none', async () => {
    const file = await makeImage()
    const writer = await VHD.open(file)
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ERR_VHD_LOCKED naming the file,ok')
    await writer.close()

    const reader = await VHD.open(file, { readOnly: true })
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ok,ok')
    await reader.close()

    const image = new VHD.Image({ path: file, flags: 'r+' })
    await image.open()
    assert.equal(await runOther(tryOpen, file), 'ERR_VHD_LOCKED naming the file,ERR_VHD_LOCKED naming the file,ok')
    await image.close()

    assert.equal(await runOther(tryOpen, file), 'ok,ok,ok')
  })

  test("this process sees another's locks, until it closes", async () => {
    const file = await makeImage()
    const other = holdInOther(file, {})
    await other.opened
    await rejectsLocked(VHD.open(file), file)
    await rejectsLocked(VHD.open(file, { readOnly: true }), file)
    await rejectsLocked(new VHD.Image({ path: file, flags: 'r' }).open(), file)
    await other.release()
    await (await VHD.open(file)).close()

    const base = await makeImage('dynamic', 'base')
    const child = await makeChild(base)
    const holder = holdInOther(child, { readOnly: true })
    await holder.opened
    // The other process holds the child and its parent shared.
    await rejectsLocked(VHD.open(base), base)
    await rejectsLocked(VHD.open(child), child)
    const reader = await VHD.open(child, { readOnly: true })
    await reader.close()
    await holder.release()
    await (await VHD.open(base)).close()
  })
})

describe('parentRoot', () => {
  /** base in a/, child in b/ (its locators: absolute, relative through .., file URL). */
  async function layout() {
    const root = fs.mkdtempSync(path.join(tmp.dir, 'root-'))
    fs.mkdirSync(path.join(root, 'a'))
    fs.mkdirSync(path.join(root, 'b'))
    const base = path.join(root, 'a', 'base.vhd')
    const disk = await VHD.create(base, { type: 'dynamic', size: 4 * MiB })
    await disk.write(pattern(4096, 7), MiB)
    await disk.close()
    const child = await makeChild(base, path.join(root, 'b', 'child.vhd'))
    return { root, base, child }
  }

  test('a parent outside the root is refused with ERR_VHD_PARENT_OUTSIDE_ROOT; inside, it opens', async () => {
    const { root, base, child } = await layout()
    const hash = sha256File(base)
    const mtime = fs.statSync(base).mtimeMs
    for (const options of [{}, { readOnly: true }, { lock: false, readOnly: true }]) {
      await assert.rejects(VHD.open(child, { ...options, parentRoot: path.join(root, 'b') }), (error) => {
        assert.equal(error.constructor, Error)
        assert.equal(error.code, 'ERR_VHD_PARENT_OUTSIDE_ROOT')
        assert.ok(error.message.includes(base), error.message)
        return true
      })
    }
    await rejectsWith(new VHD.Differencing(child, { parentRoot: path.join(root, 'b') }).open(), 'ERR_VHD_PARENT_OUTSIDE_ROOT')
    await rejectsWith(new VHD.Image({ path: child, parentRoot: path.join(root, 'b') }).open(), 'ERR_VHD_PARENT_OUTSIDE_ROOT')
    const [error] = await viaCallback((cb) => VHD.open(child, { parentRoot: path.join(root, 'b') }, cb))
    assert.equal(error.code, 'ERR_VHD_PARENT_OUTSIDE_ROOT')
    // The refused open took no lock on the child.
    await (await VHD.open(child)).close()

    for (const parentRoot of [root, path.join(root, 'a'), pathToFileURL(root), `${root}${path.sep}b${path.sep}..`]) {
      const disk = await VHD.open(child, { parentRoot })
      assert.deepEqual(disk.chain, [child, base])
      assert.ok((await disk.read(MiB, 4096)).buffer.equals(pattern(4096, 7)))
      await disk.close()
    }
    // A parent named by the caller is trusted.
    const named = await VHD.open(child, { parentRoot: path.join(root, 'b'), parent: base })
    assert.deepEqual(named.chain, [child, base])
    await named.close()
    assert.equal(sha256File(base), hash)
    assert.equal(fs.statSync(base).mtimeMs, mtime)
  })

  test('a symbolic link inside the root that leads out of it is refused', { skip: process.platform === 'win32' }, async () => {
    const root = fs.mkdtempSync(path.join(tmp.dir, 'link-'))
    fs.mkdirSync(path.join(root, 'inside'))
    fs.mkdirSync(path.join(root, 'outside'))
    const realBase = path.join(root, 'outside', 'base.vhd')
    const linkedBase = path.join(root, 'inside', 'base.vhd')
    // The child is made over the base in place, then the base moves out and a link stays.
    const base = await VHD.create(linkedBase, { type: 'fixed', size: MiB })
    await base.close()
    const child = await makeChild(linkedBase, path.join(root, 'inside', 'child.vhd'))
    fs.renameSync(linkedBase, realBase)
    fs.symlinkSync(realBase, linkedBase)
    await rejectsWith(VHD.open(child, { parentRoot: path.join(root, 'inside') }), 'ERR_VHD_PARENT_OUTSIDE_ROOT')
    const disk = await VHD.open(child, { parentRoot: root })
    await disk.close()
  })

  test('parentRoot is checked: a path or URL of a folder that exists', async () => {
    const { root, child } = await layout()
    for (const bad of [42, true, {}, null]) {
      await rejectsWith(VHD.open(child, { parentRoot: bad }), 'ERR_INVALID_ARG_TYPE', TypeError)
    }
    await rejectsWith(VHD.open(child, { parentRoot: 'a\u0000b' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    // A folder that does not exist: the core refuses it (nothing can be inside it).
    await assert.rejects(VHD.open(child, { parentRoot: path.join(root, 'missing') }), (error) => {
      assert.equal(error.code, 'ERR_VHD_INVALID_ARGUMENT', error.message)
      return true
    })
  })
})
