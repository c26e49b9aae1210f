'use strict'

// qemu-img as an oracle: images made and filled through this API read back identically
// through qemu, and images qemu makes read through this API exactly as qemu reads them.
// Without qemu-img the tests are skipped, except under CI (CI set), where that is a failure.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const VHD = require('..')
const { KiB, MiB, tempDir, pattern } = require('./helpers.js')

const probe = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' })
const qemuVersion = probe.status === 0 ? probe.stdout.split('\n')[0] : null
const MISSING = 'qemu-img is not installed (Debian/Ubuntu: apt-get install qemu-utils)'
const skip = qemuVersion === null && !process.env.CI ? `${MISSING}; skipping the oracle tests` : false

let tmp
before(() => {
  tmp = tempDir('vhd-oracle-')
})
after(() => tmp.cleanup())

function qemuImg(...args) {
  assert.ok(qemuVersion, `${MISSING}, and CI requires the oracle tests`)
  const res = spawnSync('qemu-img', args, { encoding: 'utf8' })
  assert.equal(res.status, 0, `qemu-img ${args.join(' ')} failed: ${res.error || ''}${res.stderr}`)
  return res.stdout
}

/** What qemu reads from `image`, as a Buffer. */
function qemuRaw(image) {
  const raw = path.join(tmp.dir, `${path.basename(image)}.raw`)
  qemuImg('convert', '-f', 'vpc', '-O', 'raw', image, raw)
  const bytes = fs.readFileSync(raw)
  fs.rmSync(raw)
  return bytes
}

/** Writes that cover the interesting cases: unaligned, across blocks, the last sector. */
function writesFor(size, blockSize) {
  return [
    { offset: 0, data: pattern(512, 1) },
    { offset: 1234, data: pattern(10_000, 2) },
    { offset: blockSize - 3000, data: pattern(6000, 3) }, // spans blocks 0 and 1
    { offset: 2 * blockSize + 17, data: pattern(blockSize + 100, 4) }, // spans 3 blocks
    { offset: size - 700, data: pattern(700, 5) }, // the end of the disk
    { offset: 1234 + 5000, data: pattern(33, 6) }, // overwrites part of an earlier write
  ]
}

const made = [
  { type: 'fixed', size: 12 * MiB, blockSize: 2 * MiB },
  { type: 'dynamic', size: 12 * MiB, blockSize: 2 * MiB },
  { type: 'dynamic', size: 5 * MiB + 512, blockSize: 512 * KiB },
  { type: 'dynamic', size: 16 * MiB, blockSize: 4 * MiB },
]

for (const { type, size, blockSize } of made) {
  test(`a ${type} image (${size} bytes, ${blockSize / KiB} KiB blocks) written here reads the same through qemu-img`, { skip }, async () => {
    const file = tmp.file(type)
    const options = type === 'dynamic' ? { type, size, blockSize } : { type, size }
    const disk = await VHD.create(file, options)
    const model = Buffer.alloc(size)
    for (const { offset, data } of writesFor(size, blockSize)) {
      await disk.write(data, offset)
      data.copy(model, offset)
    }
    await disk.close()
    const info = JSON.parse(qemuImg('info', '--output=json', '-f', 'vpc', file))
    assert.equal(info['virtual-size'], size)
    const raw = qemuRaw(file)
    assert.equal(raw.length, size)
    assert.ok(raw.equals(model), 'qemu-img reads what was written')
  })
}

const foreign = [
  { name: 'an empty dynamic image', subformat: 'dynamic', size: '10M', fill: false },
  { name: 'a dynamic image converted from raw data with holes', subformat: 'dynamic', size: 9 * MiB, fill: true },
  { name: 'a fixed image converted from raw data', subformat: 'fixed', size: 6 * MiB, fill: true },
]

for (const { name, subformat, size, fill } of foreign) {
  test(`${name} made by qemu-img reads here as qemu-img reads it`, { skip }, async () => {
    const file = tmp.file(`qemu-${subformat}`)
    if (fill) {
      // Data, then a hole of whole blocks (left unallocated), then data again.
      const raw = Buffer.alloc(size)
      pattern(3 * MiB + 12_345, 21).copy(raw, 0)
      pattern(MiB, 22).copy(raw, 7 * MiB - 100)
      const rawFile = path.join(tmp.dir, `${path.basename(file)}.in.raw`)
      fs.writeFileSync(rawFile, raw)
      qemuImg('convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${subformat}`, rawFile, file)
    } else {
      qemuImg('create', '-q', '-f', 'vpc', '-o', `subformat=${subformat}`, file, String(size))
    }
    const expected = qemuRaw(file)
    const disk = await VHD.open(file, { readOnly: true })
    assert.equal(disk.type, subformat === 'fixed' ? VHD.TYPE.FIXED : VHD.TYPE.DYNAMIC)
    assert.equal(disk.footer.creatorApplication, 'qemu')
    assert.equal(disk.size, expected.length, 'same virtual size as qemu-img')
    const { bytesRead, buffer } = await disk.read(0, disk.size)
    assert.equal(bytesRead, disk.size)
    assert.ok(buffer.equals(expected), 'same bytes as qemu-img convert -O raw')
    // Unaligned reads agree too.
    for (const offset of [1, 2 * MiB - 5, 3 * MiB + 12_000]) {
      const part = await disk.read(offset, 10_000)
      assert.ok(part.buffer.equals(expected.subarray(offset, offset + 10_000)), `at ${offset}`)
    }
    await disk.close()
  })
}
