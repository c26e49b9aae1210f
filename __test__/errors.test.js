'use strict'

// Errors a person can act on (issue 15): OS errors as Node's own fs errors (`code` the OS
// error's name, `errno`, `syscall`, `path` as the caller gave it, never a temporary file);
// a stack that shows the caller of an operation whose error was made on a native thread;
// "is not a VHD image"; conversions that refuse other image formats; hints that name the
// JavaScript option; fs-style calls told to use the right method; an output that is the
// input.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const VHD = require('..')
const { tempDir, rejectsWith, sha256File } = require('./helpers.js')

const MiB = 1024 * 1024

function hasQemuImg() {
  const found = spawnSync('qemu-img', ['--version']).status === 0
  if (!found) {
    if (process.env.CI) assert.fail('qemu-img is not installed, and CI requires the oracle tests')
    console.log('SKIPPED: qemu-img is not installed')
  }
  return found
}

test('a missing image is ENOENT with errno, syscall and the path as given', async () => {
  const tmp = tempDir()
  try {
    const missing = path.join(tmp.dir, 'missing.vhd')
    await assert.rejects(VHD.open(missing), (error) => {
      assert.equal(error.code, 'ENOENT')
      assert.equal(error.errno, -2)
      assert.equal(error.syscall, 'open')
      assert.equal(error.path, missing)
      assert.match(error.message, new RegExp(`^ENOENT: ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: opening the image`))
      return true
    })
  } finally {
    tmp.cleanup()
  }
})

test('a new image in a missing folder names the image, not a temporary file', async () => {
  const tmp = tempDir()
  try {
    const target = path.join(tmp.dir, 'no-such-folder', 'out.vhd')
    await assert.rejects(VHD.create(target, { type: VHD.TYPE.FIXED, size: MiB }), (error) => {
      assert.equal(error.code, 'ENOENT')
      assert.equal(error.path, target)
      assert.ok(error.message.startsWith(`ENOENT: ${target}: `), error.message)
      return true
    })
  } finally {
    tmp.cleanup()
  }
})

test('the stack of an error made on a native thread shows the caller', async () => {
  const tmp = tempDir()
  try {
    const missing = path.join(tmp.dir, 'missing.vhd')
    async function theCallerOfOpen() {
      return VHD.open(missing)
    }
    const error = await theCallerOfOpen().then(
      () => assert.fail('opened a missing file'),
      (e) => e,
    )
    assert.match(error.stack, /^Error: ENOENT: /)
    assert.match(error.stack, /theCallerOfOpen/)
    assert.match(error.stack, /errors\.test\.js/)
    // The callback form too.
    const viaCallback = await new Promise((resolve) => {
      function theCallerWithACallback() {
        VHD.open(missing, {}, (e) => resolve(e))
      }
      theCallerWithACallback()
    })
    assert.match(viaCallback.stack, /theCallerWithACallback/)
  } finally {
    tmp.cleanup()
  }
})

test('the stack of a read that failed on an I/O thread shows the caller', async () => {
  const tmp = tempDir()
  try {
    const file = path.join(tmp.dir, 'cut.vhd')
    const made = await VHD.create(file, { type: 'dynamic', size: 8 * MiB })
    await made.write(Buffer.alloc(MiB, 7), 2 * MiB)
    await made.close()
    const disk = await VHD.open(file, { readOnly: true })
    try {
      // The block's data is cut away under the open image: the read cannot be done at once,
      // goes to the I/O threads and fails there.
      fs.truncateSync(file, 4096)
      async function theReader() {
        return disk.readInto(Buffer.alloc(4096), 0, 4096, 2 * MiB)
      }
      const error = await theReader().then(
        () => assert.fail('read past the cut'),
        (e) => e,
      )
      assert.equal(error.code, 'ERR_VHD_TRUNCATED')
      assert.equal(error.path, file)
      assert.ok(error.stack.startsWith(`Error: ${file}: file is truncated`), error.stack)
      assert.match(error.stack, /theReader/)
      assert.doesNotMatch(error.stack, /\bdrain\b/)
      const viaCallback = await new Promise((resolve) => {
        function theCallbackReader() {
          disk.readInto(Buffer.alloc(4096), 0, 4096, 2 * MiB, (e) => resolve(e))
        }
        theCallbackReader()
      })
      assert.match(viaCallback.stack, /theCallbackReader/)
    } finally {
      await disk.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('a damaged image names its file, in the message and as path, and says to check it', async () => {
  const tmp = tempDir()
  try {
    const file = path.join(tmp.dir, 'damaged.vhd')
    await (await VHD.create(file, { type: 'dynamic', size: 8 * MiB })).close()
    const bytes = fs.readFileSync(file)
    bytes[512 + 900] ^= 0x42 // inside the dynamic header: its checksum no longer matches
    fs.writeFileSync(file, bytes)
    await assert.rejects(VHD.open(file), (error) => {
      assert.equal(error.code, 'ERR_VHD_CHECKSUM')
      assert.equal(error.path, file)
      assert.ok(error.message.startsWith(`${file}: dynamic header checksum mismatch`), error.message)
      // What to do, in the caller's terms.
      assert.ok(error.message.endsWith('; to see what is damaged and what can be mended, run VHD.check(path)'), error.message)
      return true
    })
    const cli = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'vhd.js'), 'info', file], { encoding: 'utf8' })
    assert.equal(cli.status, 1)
    assert.ok(cli.stderr.startsWith(`vhd: ERR_VHD_CHECKSUM: ${file}: dynamic header checksum mismatch`), cli.stderr)
    assert.ok(cli.stderr.includes("; to see what is damaged and what can be mended, run 'vhd check' on it"), cli.stderr)
  } finally {
    tmp.cleanup()
  }
})

test('errors about a file carry its path: the image, a child whose parent is missing, an existing output, a locked image', async () => {
  const tmp = tempDir()
  try {
    const base = path.join(tmp.dir, 'base.vhd')
    const child = path.join(tmp.dir, 'child.vhd')
    const disk = await VHD.create(base, { type: 'dynamic', size: 4 * MiB })
    // Locked: the base is open read-write here.
    await assert.rejects(VHD.open(base), (error) => {
      assert.equal(error.code, 'ERR_VHD_LOCKED')
      assert.equal(error.path, base)
      return true
    })
    await disk.close()
    await (await VHD.create(child, { type: 'differencing', parent: base })).close()
    // Exists: the output is named.
    await assert.rejects(VHD.create(child, { type: 'dynamic', size: MiB }), (error) => {
      assert.equal(error.code, 'ERR_VHD_EXISTS')
      assert.equal(error.path, child)
      return true
    })
    // Parent not found: the child, the file the caller named.
    fs.renameSync(base, path.join(tmp.dir, 'moved.vhd'))
    await assert.rejects(VHD.open(child), (error) => {
      assert.equal(error.code, 'ERR_VHD_PARENT_NOT_FOUND')
      assert.equal(error.path, child)
      return true
    })
    // Not a VHD.
    const text = path.join(tmp.dir, 'notes.txt')
    fs.writeFileSync(text, Buffer.alloc(4096, 0x41))
    await assert.rejects(VHD.open(text), (error) => {
      assert.equal(error.code, 'ERR_VHD_NOT_VHD')
      assert.equal(error.path, text)
      return true
    })
  } finally {
    tmp.cleanup()
  }
})

test('a write past the end, and a write to a read-only image, name the image (message and path), in every form', async () => {
  const tmp = tempDir()
  try {
    const file = path.join(tmp.dir, 'named.vhd')
    const disk = await VHD.create(file, { type: 'dynamic', size: MiB })
    /** @param {any} error @param {string} code @param {string} name */
    const named = (error, code, name) => {
      assert.equal(error.code, code)
      assert.equal(error.name, name)
      assert.equal(error.path, file)
      assert.ok(error.message.startsWith(`${file}: `), error.message)
      return true
    }
    const past = (error) => named(error, 'ERR_VHD_OUT_OF_RANGE', 'RangeError')
    await assert.rejects(disk.write(Buffer.alloc(512), MiB), past)
    assert.throws(() => disk.writeSync(Buffer.alloc(512), MiB), past)
    await assert.rejects(disk.discard(MiB - 512, 1024), past)
    const stream = disk.createWriteStream({ start: MiB - 100 })
    const failed = new Promise((resolve) => stream.on('error', resolve))
    stream.end(Buffer.alloc(200))
    past(await failed)
    await disk.close()
    const readOnly = (error) => named(error, 'ERR_VHD_READ_ONLY', 'Error')
    const reader = await VHD.open(file, { readOnly: true })
    await assert.rejects(reader.write(Buffer.alloc(512), 0), readOnly)
    assert.throws(() => reader.writeSync(Buffer.alloc(512), 0), readOnly)
    await reader.close()
    // vhd@0.5.0's class, opened read-only by its flags.
    const image = new VHD.Image({ path: file, flags: 'r' })
    await image.open()
    await assert.rejects(image.write(Buffer.alloc(512), 0, 512, 0), readOnly)
    await image.close()
  } finally {
    tmp.cleanup()
  }
})

test('a file the process may not open or create is EACCES with errno, syscall and path (API and CLI)', () => {
  // Permissions do not stop root, which these tests often run as: then the checks run in a
  // child process as the unprivileged user 65534 ("nobody"), over a copy of the package it
  // can read (the checkout may be in a folder only root can enter).
  const tmp = tempDir('vhd-eacces-')
  try {
    const asRoot = typeof process.getuid === 'function' && process.getuid() === 0
    const root = path.join(__dirname, '..')
    const copy = path.join(tmp.dir, 'vhd')
    fs.mkdirSync(copy)
    for (const entry of ['index.js', 'binding.js', 'package.json', 'lib', 'scripts', 'bin']) fs.cpSync(path.join(root, entry), path.join(copy, entry), { recursive: true })
    for (const entry of fs.readdirSync(root).filter((f) => f.endsWith('.node'))) fs.copyFileSync(path.join(root, entry), path.join(copy, entry))
    const locked = path.join(tmp.dir, 'locked.vhd')
    const closedDir = path.join(tmp.dir, 'no-write')
    fs.mkdirSync(closedDir)
    spawnSync(process.execPath, [path.join(copy, 'bin', 'vhd.js'), 'create', '--type', 'dynamic', locked, '1M'])
    assert.ok(fs.existsSync(locked))
    fs.chmodSync(locked, 0o000)
    fs.chmodSync(closedDir, 0o555)
    fs.chmodSync(tmp.dir, 0o755)
    const created = path.join(closedDir, 'new.vhd')
    const script = `
      const VHD = require(${JSON.stringify(copy)})
      const shape = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, message: e.message })
      ;(async () => {
        const out = {}
        out.open = await VHD.open(${JSON.stringify(locked)}).then(() => null, shape)
        out.readOnly = await VHD.open(${JSON.stringify(locked)}, { readOnly: true }).then(() => null, shape)
        out.image = await new VHD.Image({ path: ${JSON.stringify(locked)}, flags: 'r' }).open().then(() => null, shape)
        out.create = await VHD.create(${JSON.stringify(created)}, { type: 'dynamic', size: 1 << 20 }).then(() => null, shape)
        console.log(JSON.stringify(out))
      })()`
    const as = asRoot ? { uid: 65534, gid: 65534 } : {}
    const res = spawnSync(process.execPath, ['-e', script], { cwd: tmp.dir, encoding: 'utf8', ...as })
    assert.equal(res.status, 0, res.stderr)
    const out = JSON.parse(res.stdout)
    for (const [what, file] of [['open', locked], ['readOnly', locked], ['image', locked], ['create', created]]) {
      const error = out[what]
      assert.ok(error, `${what}: no error`)
      assert.equal(error.code, 'EACCES', `${what}: ${error.message}`)
      assert.equal(error.errno, -13, what)
      assert.equal(error.path, file, what)
      assert.ok(error.message.startsWith(`EACCES: ${file}: `), `${what}: ${error.message}`)
    }
    assert.equal(out.open.syscall, 'open')
    // Nothing was made in the folder it could not write (no temporary file either).
    assert.deepEqual(fs.readdirSync(closedDir), [])
    // The command line: the same code and path, exit status 1.
    const cli = spawnSync(process.execPath, [path.join(copy, 'bin', 'vhd.js'), 'info', locked], { cwd: tmp.dir, encoding: 'utf8', ...as })
    assert.equal(cli.status, 1, cli.stderr)
    assert.match(cli.stderr, new RegExp(`^vhd: EACCES: ${locked.replace(/[.*+?^$()|[\]\\]/g, '\\$&')}: `))
  } finally {
    fs.chmodSync(tmp.dir, 0o700)
    tmp.cleanup()
  }
})

test('a file that is not a VHD says so, with its size when it is too short', async () => {
  const tmp = tempDir()
  try {
    const small = path.join(tmp.dir, 'small.bin')
    fs.writeFileSync(small, Buffer.alloc(100, 7))
    await assert.rejects(VHD.open(small), (error) => {
      assert.equal(error.code, 'ERR_VHD_NOT_VHD')
      assert.equal(
        error.message,
        `${small} is not a VHD image (it is 100 bytes long; a VHD has at least a 512-byte footer)`,
      )
      return true
    })
    const zeros = path.join(tmp.dir, 'zeros.img')
    fs.writeFileSync(zeros, Buffer.alloc(8192))
    await rejectsWith(VHD.open(zeros), 'ERR_VHD_NOT_VHD')
  } finally {
    tmp.cleanup()
  }
})

test('VHD.open of a qcow2 image says what it is, and VHD.convert refuses it unless sourceFormat is raw', async () => {
  if (!hasQemuImg()) return
  const tmp = tempDir()
  try {
    const qcow2 = path.join(tmp.dir, 'img.qcow2')
    assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '8M']).status, 0)
    await assert.rejects(VHD.open(qcow2, { readOnly: true }), (error) => {
      assert.equal(error.code, 'ERR_VHD_NOT_VHD')
      assert.equal(error.message, `${qcow2} is not a VHD image (it looks like a qcow2 image)`)
      return true
    })
    const out = path.join(tmp.dir, 'out.vhd')
    await assert.rejects(VHD.convert(qcow2, out, { to: 'dynamic' }), (error) => {
      assert.equal(error.code, 'ERR_VHD_FOREIGN_FORMAT')
      assert.match(error.message, /is a qcow2 image, not a raw disk or a VHD: convert it with qemu-img convert -O vpc/)
      assert.match(error.message, /pass \{ sourceFormat: 'raw' \}$/)
      return true
    })
    assert.equal(fs.existsSync(out), false)
    const report = await VHD.convert(qcow2, out, { to: 'dynamic', sourceFormat: 'raw' })
    assert.equal(report.sourceSize, fs.statSync(qcow2).size)
  } finally {
    tmp.cleanup()
  }
})

test('hints name the JavaScript option', async () => {
  const tmp = tempDir()
  try {
    const file = tmp.file('a')
    await (await VHD.create(file, { type: VHD.TYPE.DYNAMIC, size: 4 * MiB })).close()
    await assert.rejects(VHD.create(file, { type: VHD.TYPE.DYNAMIC, size: 4 * MiB }), (error) => {
      assert.equal(error.code, 'ERR_VHD_EXISTS')
      assert.equal(error.message, `${file}: file already exists (pass { overwrite: true } to replace it)`)
      return true
    })
    const child = tmp.file('child')
    await (await VHD.snapshot(file, child)).close()
    const moved = `${file}.moved`
    fs.renameSync(file, moved)
    await assert.rejects(VHD.open(child), (error) => {
      assert.equal(error.code, 'ERR_VHD_PARENT_NOT_FOUND')
      assert.match(error.message, /; to name the parent yourself, pass \{ parent: path \}$/)
      return true
    })
    fs.renameSync(moved, file)
    fs.rmSync(child)
    const disk = await VHD.open(file)
    try {
      await disk.write(Buffer.alloc(512, 1), 3 * MiB)
    } finally {
      await disk.close()
    }
    await assert.rejects(VHD.resize(file, MiB), (error) => {
      assert.equal(error.code, 'ERR_VHD_INVALID_ARGUMENT')
      assert.match(error.message, /; to do it anyway, pass \{ force: true \}$/)
      return true
    })
  } finally {
    tmp.cleanup()
  }
})

test('fs-style calls of read and write say which method to use', async () => {
  const tmp = tempDir()
  try {
    const file = tmp.file('a')
    const disk = await VHD.create(file, { type: VHD.TYPE.DYNAMIC, size: 4 * MiB })
    try {
      const buffer = Buffer.alloc(8)
      // Something in the callback's place (fs's `length`): thrown, as argument errors are.
      assert.throws(() => disk.read(buffer, 0, 8, 4096), (error) => {
        assert.ok(error instanceof TypeError)
        assert.equal(error.code, 'ERR_INVALID_ARG_TYPE')
        assert.match(error.message, /use disk\.readInto\(buffer, bufferOffset, length, position\)/)
        return true
      })
      await assert.rejects(disk.read(buffer), (error) => error.code === 'ERR_INVALID_ARG_TYPE' && /readInto/.test(error.message))
      assert.throws(() => disk.write(buffer, 0, 8, 4096), (error) => {
        assert.equal(error.code, 'ERR_INVALID_ARG_TYPE')
        assert.match(error.message, /disk\.write\(buffer, offset\) writes all of buffer at offset/)
        assert.match(error.message, /buffer\.subarray/)
        return true
      })
      assert.throws(() => disk.readSync(buffer, 0, 8, 4096), (error) => error.code === 'ERR_INVALID_ARG_TYPE' && /readIntoSync/.test(error.message))
      // fs.writeSync's shape would have written the whole buffer at 0, its offset in the buffer.
      assert.throws(
        () => disk.writeSync(Buffer.alloc(8, 1), 0, 8, 4096),
        (error) => error.code === 'ERR_INVALID_ARG_TYPE' && /disk\.writeSync\(buffer, offset\)/.test(error.message),
      )
      // Nothing was written.
      const { buffer: read } = await disk.read(0, 8192)
      assert.ok(read.every((b) => b === 0))
    } finally {
      await disk.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('a snapshot over its own image says the output is the input, and leaves it alone', async () => {
  const tmp = tempDir()
  try {
    const file = path.join(tmp.dir, 'a.vhd')
    await (await VHD.create(file, { type: VHD.TYPE.DYNAMIC, size: 4 * MiB })).close()
    const before = sha256File(file)
    const link = path.join(tmp.dir, 'link.vhd')
    fs.symlinkSync(file, link)
    for (const child of [file, link, path.join(tmp.dir, '.', 'sub', '..', 'a.vhd')]) {
      if (child.includes('sub')) fs.mkdirSync(path.join(tmp.dir, 'sub'), { recursive: true })
      await assert.rejects(VHD.snapshot(file, child), (error) => {
        assert.equal(error.code, 'ERR_VHD_OUTPUT_IS_INPUT')
        assert.doesNotMatch(error.message, /loop/)
        return true
      })
    }
    await rejectsWith(VHD.create(file, { type: VHD.TYPE.DIFF, parent: file, overwrite: true }), 'ERR_VHD_OUTPUT_IS_INPUT')
    assert.equal(sha256File(file), before)
  } finally {
    tmp.cleanup()
  }
})
