'use strict'

// A full file system and a read-only one, for real: small tmpfs mounts (root only; CI runs
// as root). The errors must keep the OS code (ENOSPC, EROFS), name the user's path and the
// system call, in JavaScript and on the command line; and nothing on disk may be lost: no
// temporary file left behind, every acknowledged write still there, the image still clean.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const VHD = require('..')
const { tempDir, pattern, MiB, NEEDS_ROOT } = require('./helpers')

const BIN = path.join(__dirname, '..', 'bin', 'vhd.js')

let tmp
before(() => {
  tmp = tempDir('vhd-full-disk-')
})
after(() => tmp.cleanup())

function run(cmd, args) {
  const res = spawnSync(cmd, args, { encoding: 'utf8' })
  assert.equal(res.status, 0, `${cmd} ${args.join(' ')}: ${res.error || ''}${res.stderr}`)
}

/** Mounts a tmpfs of `size` bytes on a new folder, runs `fn(folder)`, unmounts. */
async function withTmpfs(size, fn) {
  const dir = fs.mkdtempSync(path.join(tmp.dir, 'mnt-'))
  run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
  try {
    return await fn(dir)
  } finally {
    run('umount', [dir])
  }
}

/** `vhd ...args`: exit status and stderr. */
function vhd(args) {
  const res = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 })
  assert.ifError(res.error)
  return { status: res.status, stderr: res.stderr }
}

/** A raw disk of `size` bytes of data (not zeros, so that a conversion stores all of it). */
function dataDisk(size) {
  const file = path.join(tmp.dir, `data-${size}.raw`)
  if (!fs.existsSync(file)) fs.writeFileSync(file, pattern(size, size))
  return file
}

describe('no space left on the device (ENOSPC)', { skip: NEEDS_ROOT }, () => {
  test('VHD.convert fails with ENOSPC naming the destination, and leaves nothing behind', async () => {
    await withTmpfs(MiB, async (dir) => {
      const destination = path.join(dir, 'out.vhd')
      for (const to of ['raw', 'fixed', 'dynamic']) {
        await assert.rejects(VHD.convert(dataDisk(4 * MiB), destination, { to }), (error) => {
          assert.equal(error.code, 'ENOSPC', error.message)
          assert.equal(error.syscall, 'write')
          assert.equal(error.path, destination)
          assert.match(error.message, /out\.vhd/)
          return true
        })
        // Not the destination, not the temporary file the output was written to.
        assert.deepEqual(fs.readdirSync(dir), [], `after --to ${to}`)
      }
    })
  })

  test('vhd convert prints ENOSPC and the destination, exits 1, leaves nothing behind', async () => {
    await withTmpfs(MiB, async (dir) => {
      const destination = path.join(dir, 'out.vhd')
      const res = vhd(['convert', '--to', 'dynamic', dataDisk(4 * MiB), destination])
      assert.equal(res.status, 1, res.stderr)
      assert.match(res.stderr, /^vhd: ENOSPC: /)
      assert.ok(res.stderr.includes(destination), res.stderr)
      assert.match(res.stderr, /No space left on device/)
      assert.deepEqual(fs.readdirSync(dir), [])
    })
  })

  test('writes that run out of space fail with ENOSPC; every acknowledged one is kept and the image checks clean', async () => {
    await withTmpfs(5 * MiB, async (dir) => {
      const file = path.join(dir, 'disk.vhd')
      const disk = await VHD.create(file, { type: 'dynamic', size: 64 * MiB })
      const written = []
      let failure = null
      // One MiB into each 2 MiB block: every write allocates a block, until none fits.
      for (let block = 0; block < 32 && failure === null; block++) {
        const bytes = pattern(MiB, block + 1)
        try {
          await disk.write(bytes, block * 2 * MiB)
          written.push([block, bytes])
        } catch (error) {
          failure = error
        }
      }
      assert.ok(failure, 'a 5 MiB file system must run out of space')
      assert.equal(failure.code, 'ENOSPC', failure.message)
      assert.equal(failure.path, file)
      assert.equal(failure.syscall, 'write')
      assert.ok(written.length >= 1, 'some writes fit')
      await disk.close()

      const again = await VHD.open(file, { readOnly: true })
      for (const [block, bytes] of written) {
        const { buffer } = await again.read(block * 2 * MiB, MiB)
        assert.ok(buffer.equals(bytes), `block ${block} kept what was written`)
      }
      await again.close()
      const report = await VHD.check(file)
      assert.equal(report.clean, true, JSON.stringify(report.findings))
    })
  })
})

describe('a read-only file system (EROFS)', { skip: NEEDS_ROOT }, () => {
  test('opening read-write fails with EROFS naming the image; read-only opens work; the CLI says the same', async () => {
    await withTmpfs(8 * MiB, async (dir) => {
      const file = path.join(dir, 'disk.vhd')
      const disk = await VHD.create(file, { type: 'dynamic', size: 8 * MiB })
      await disk.write(pattern(4096, 7), 0)
      await disk.close()
      run('mount', ['-o', 'remount,ro', dir])
      const before = fs.readFileSync(file)

      await assert.rejects(VHD.open(file), (error) => {
        assert.equal(error.code, 'EROFS', error.message)
        assert.equal(error.path, file)
        assert.equal(error.syscall, 'open')
        return true
      })
      const reader = await VHD.open(file, { readOnly: true })
      assert.ok((await reader.read(0, 4096)).buffer.equals(pattern(4096, 7)))
      await reader.close()

      await assert.rejects(VHD.create(path.join(dir, 'new.vhd'), { type: 'dynamic', size: MiB }), (error) => {
        assert.equal(error.code, 'EROFS', error.message)
        assert.equal(error.path, path.join(dir, 'new.vhd'))
        return true
      })

      const res = vhd(['create', path.join(dir, 'cli.vhd'), '1M'])
      assert.equal(res.status, 1, res.stderr)
      assert.match(res.stderr, /^vhd: EROFS: /)
      assert.ok(res.stderr.includes(path.join(dir, 'cli.vhd')), res.stderr)
      const info = vhd(['info', file])
      assert.equal(info.status, 0, info.stderr)

      assert.ok(fs.readFileSync(file).equals(before), 'the image is unchanged')
    })
  })
})
