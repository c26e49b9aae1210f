'use strict'

// Partition tables and file systems inside images, against the real tools (no mocks): disks
// laid out by sgdisk and sfdisk (GPT; MBR with an extended partition and logical ones), file
// systems made by mkfs.vfat + mcopy and mkfs.ext4 -d (__test__/partition-disks.js), turned
// into fixed, dynamic and differencing images by our convert and snapshot and by qemu-img.
// Then:
// - getPartitions() equals `sfdisk --json`, and partitioninfo's getPartitions() run on
//   toFileDisk() agrees with it;
// - files put in by mkfs read back byte for byte: ext4 through ext2fs, FAT through
//   balena-image-fs, on toFileDisk() of the disk and of the partition;
// - the mbr and gpt modules parse what toBlockDevice() reads;
// - a file written through ext2fs into a differencing child over a read-only parent: the
//   parent is byte-identical afterwards, e2fsck -fn passes on the partition taken out of the
//   child, and debugfs reads back what was written; on a read-only image, ext2fs mounts and
//   writes (in memory) and the image stays byte-identical.
// Without the tools the tests are skipped (SKIPPED: on stderr), except under CI, where that is
// a failure. The view's own rules (bounds, lifecycle, argument checks) are in
// __test__/partition-view.test.js.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const VHD = require('..')
const { tempDir, sha256File } = require('./helpers.js')
const { SECTOR, ENV, skipWithoutTools, run, gptDisk, mbrDisk } = require('./partition-disks.js')

const skip = skipWithoutTools()
const qemu = spawnSync('qemu-img', ['--version']).status === 0
const skipQemu = skip || (!qemu && !process.env.CI ? 'qemu-img is not installed' : false)

let tmp
/** Per table kind: the raw disk (`gptDisk`/`mbrDisk`) and its images by kind. */
const disks = {}

/**
 * The images of `raw` to test: fixed and dynamic by our convert and by qemu-img, and a
 * differencing child (snapshot) over the dynamic one, so a chain. `force_size`: qemu-img
 * keeps the raw size instead of rounding it to a CHS geometry, so the backup GPT stays at
 * the end of the disk.
 */
async function imagesOf(raw, name) {
  const images = { raw }
  for (const to of ['fixed', 'dynamic']) {
    images[to] = path.join(tmp.dir, `${name}-${to}.vhd`)
    await VHD.convert(raw, images[to], { to })
    if (qemu) {
      images[`qemu-${to}`] = path.join(tmp.dir, `${name}-qemu-${to}.vhd`)
      run('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${to},force_size=on`, raw, images[`qemu-${to}`]])
    }
  }
  images.differencing = path.join(tmp.dir, `${name}-child.vhd`)
  await (await VHD.snapshot(images.dynamic, images.differencing)).close()
  return images
}

before(async () => {
  if (skip) return
  tmp = tempDir('vhd-partitions-')
  for (const [kind, make] of [['gpt', gptDisk], ['mbr', mbrDisk]]) {
    const disk = make(tmp.dir)
    disks[kind] = { ...disk, images: await imagesOf(disk.file, kind) }
  }
})
after(() => tmp?.cleanup())

/** The VHD images of `kind` (not the raw disk). */
const vhds = (kind) => Object.entries(disks[kind].images).filter(([k]) => k !== 'raw')

/** What getPartitions() must give for a disk sfdisk describes as `table` (`sfdiskJson`). */
function expectedTable(table) {
  const gpt = table.label === 'gpt'
  return {
    type: gpt ? 'gpt' : 'mbr',
    partitions: table.partitions.map((p) => ({
      index: p.index,
      offset: p.start * SECTOR,
      size: p.size * SECTOR,
      // partitioninfo's types: the MBR type byte as a number, the GPT type GUID as a string.
      type: gpt ? p.type : parseInt(p.type, 16),
      ...(gpt ? { guid: p.uuid, name: p.name ?? '' } : {}),
      bootable: p.bootable === true,
      firstLBA: p.start,
      lastLBA: p.start + p.size - 1,
    })),
  }
}

/** Ours, with only the fields sfdisk has (typeName and attributes are checked on their own). */
function comparable(table) {
  return {
    type: table.type,
    partitions: table.partitions.map(({ typeName, attributes, ...rest }) => rest),
  }
}

/** Reads a whole file from an ext2fs or balena-image-fs `fs` through a stream (ext2fs's readFile can come back short). */
function readThrough(fsys, file) {
  return new Promise((resolve, reject) => {
    const chunks = []
    fsys
      .createReadStream(file)
      .on('data', (chunk) => chunks.push(chunk))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject)
  })
}

for (const kind of ['gpt', 'mbr']) {
  test(`${kind}: getPartitions() equals sfdisk --json, for every kind of image`, { skip }, async () => {
    const { images, table } = disks[kind]
    const expected = expectedTable(table)
    assert.ok(expected.partitions.length >= 3, 'sfdisk saw the partitions')
    for (const [name, file] of vhds(kind)) {
      const disk = await VHD.open(file, { readOnly: true })
      try {
        const ours = await disk.getPartitions()
        assert.deepEqual(comparable(ours), expected, `${name}: ${file}`)
        assert.deepEqual(ours.findings, [], `${name}: nothing odd about a table sfdisk made`)
        for (const p of ours.partitions) {
          assert.equal(typeof p.attributes, 'bigint', `${name}: attributes`)
          if (p.typeName !== undefined) assert.equal(typeof p.typeName, 'string')
        }
        const byIndex = new Map(ours.partitions.map((p) => [p.index, p]))
        if (kind === 'gpt') {
          assert.match(byIndex.get(1).typeName, /efi system/i)
          assert.match(byIndex.get(2).typeName, /linux filesystem/i)
          assert.match(byIndex.get(3).typeName, /linux swap/i)
        }
        // The callback form gives the same.
        const viaCallback = await new Promise((resolve, reject) => {
          disk.getPartitions((error, result) => (error ? reject(error) : resolve(result)))
        })
        assert.deepEqual(viaCallback, ours)
      } finally {
        await disk.close()
      }
    }
  })

  test(`${kind}: partitioninfo's getPartitions() on toFileDisk() agrees with ours`, { skip }, async () => {
    const partitioninfo = require('partitioninfo')
    for (const [name, file] of vhds(kind)) {
      const disk = await VHD.open(file, { readOnly: true })
      try {
        const theirs = await partitioninfo.getPartitions(disk.toFileDisk())
        const ours = await disk.getPartitions()
        const fields = kind === 'gpt' ? ['index', 'offset', 'size', 'type', 'guid', 'name'] : ['index', 'offset', 'size', 'type']
        const pick = (p) => Object.fromEntries(fields.map((f) => [f, p[f]]))
        assert.equal(theirs.type, ours.type, name)
        assert.deepEqual(
          theirs.partitions.map(pick).sort((a, b) => a.index - b.index),
          ours.partitions.map(pick),
          `${name}: partitioninfo against ours`,
        )
      } finally {
        await disk.close()
      }
    }
  })

  test(`${kind}: the ext4 file mkfs.ext4 -d put in reads back through ext2fs on toFileDisk() (disk and partition)`, { skip }, async () => {
    const { withMountedDisk } = require('ext2fs')
    const { files, ext4Index } = disks[kind]
    for (const [name, file] of vhds(kind)) {
      const disk = await VHD.open(file, { readOnly: true })
      try {
        const partition = await disk.partition(ext4Index)
        for (const [how, fileDisk, offset] of [
          ['disk.toFileDisk()', disk.toFileDisk(), partition.offset],
          ['partition.toFileDisk()', partition.toFileDisk(), 0],
        ]) {
          await withMountedDisk(fileDisk, offset, async (fsys) => {
            for (const [inside, data] of Object.entries(files.ext4)) {
              assert.ok((await readThrough(fsys, `/${inside}`)).equals(data), `${name}, ${how}: /${inside}`)
            }
          })
        }
      } finally {
        await disk.close()
      }
    }
  })

  test(`${kind}: the FAT file mcopy put in reads back through balena-image-fs on toFileDisk() (disk and partition)`, { skip }, async () => {
    const imagefs = require('balena-image-fs')
    const { files, fatIndex } = disks[kind]
    for (const [name, file] of vhds(kind)) {
      const disk = await VHD.open(file, { readOnly: true })
      try {
        const partition = await disk.partition(fatIndex)
        for (const [how, fileDisk, index] of [
          ['disk.toFileDisk()', disk.toFileDisk(), fatIndex],
          ['partition.toFileDisk()', partition.toFileDisk(), undefined],
        ]) {
          const read = await imagefs.interact(fileDisk, index, (fsys) => fsys.promises.readFile('/HELLO.TXT'))
          assert.ok(read.equals(files.fat['HELLO.TXT']), `${name}, ${how}`)
        }
      } finally {
        await disk.close()
      }
    }
  })
}

test('gpt: the gpt and mbr modules parse what toBlockDevice() reads; blockdevice-style partition() reads the partition', { skip }, async () => {
  const GPT = require('gpt')
  const MBR = require('mbr')
  const { images, table } = disks.gpt
  const raw = fs.readFileSync(images.raw)
  for (const [name, file] of vhds('gpt')) {
    const disk = await VHD.open(file, { readOnly: true })
    try {
      const device = disk.toBlockDevice()
      assert.equal(device.blockSize, 512)
      assert.equal(device.size, raw.length)
      const { buffer: mbrBlock } = await device.readBlocks(0, 1)
      const mbr = MBR.parse(mbrBlock)
      assert.equal(mbr.partitions[0].type, 0xee, `${name}: protective MBR`)
      // The primary GPT: header at LBA 1, 32 blocks of entries after it.
      const { buffer, bytesRead } = await device.readBlocks(1, 34)
      assert.equal(bytesRead, 33 * 512)
      const gpt = GPT.parse(buffer)
      // (The gpt module gives LBAs as BigInts.)
      const entries = gpt.partitions.map((p) => ({ guid: p.guid, type: p.type, name: p.name, firstLBA: Number(p.firstLBA), lastLBA: Number(p.lastLBA) }))
      assert.deepEqual(
        entries,
        table.partitions.map((p) => ({ guid: p.uuid, type: p.type, name: p.name, firstLBA: p.start, lastLBA: p.start + p.size - 1 })),
        name,
      )
      // The backup GPT at the end, as gpt's README reads it.
      const backupLBA = Number(gpt.backupLBA)
      const { buffer: tail } = await new Promise((resolve, reject) =>
        device.readBlocks(backupLBA - 32, backupLBA + 1, function (error, buffer, bytesRead) {
          assert.equal(this, device, 'callbacks are called on the device, as blockdevice does')
          error ? reject(error) : resolve({ buffer, bytesRead })
        }),
      )
      const backup = new GPT({ blockSize: 512 })
      backup.parseBackup(tail)
      assert.equal(backup.partitions.length, gpt.partitions.length, `${name}: backup GPT`)
      // blockdevice's partition(): [firstLBA, lastLBA) as there.
      const p2 = table.partitions[1]
      const part = device.partition({ firstLBA: p2.start, lastLBA: p2.start + p2.size })
      assert.equal(part.size, p2.size * 512)
      assert.equal(part.sectors, p2.size)
      const { buffer: first } = await part.readBlocks(0, 4)
      assert.ok(first.equals(raw.subarray(p2.start * 512, (p2.start + 4) * 512)), `${name}: partition blocks 0-3`)
      const { buffer: last } = await part.readBlocks(p2.size - 1, p2.size)
      assert.ok(last.equals(raw.subarray((p2.start + p2.size - 1) * 512, (p2.start + p2.size) * 512)), `${name}: the last block`)
      await assert.rejects(part.readBlocks(p2.size - 1, p2.size + 1), { code: 'ERR_VHD_OUT_OF_RANGE', message: /out of bounds/ })
    } finally {
      await disk.close()
    }
  }
})

test('mbr: the mbr module parses the MBR and the EBR chain through toBlockDevice()', { skip }, async () => {
  const MBR = require('mbr')
  const { images, table } = disks.mbr
  for (const [name, file] of vhds('mbr')) {
    const disk = await VHD.open(file, { readOnly: true })
    try {
      const device = disk.toBlockDevice()
      const { buffer } = await device.readBlocks(0, 1)
      const mbr = MBR.parse(buffer)
      const primary = mbr.partitions.filter((p) => p.type !== 0).map((p) => ({ type: p.type, firstLBA: p.firstLBA, sectors: p.sectors }))
      const expected = table.partitions.filter((p) => p.index <= 4).map((p) => ({ type: parseInt(p.type, 16), firstLBA: p.start, sectors: p.size }))
      assert.deepEqual(primary, expected, name)
      // The logical partitions: follow the EBRs, each relative to the extended partition.
      const extended = mbr.partitions.find((p) => MBR.isExtendedPartition(p))
      const logical = []
      let ebrLBA = extended.firstLBA
      for (let i = 0; i < 8 && ebrLBA !== null; i++) {
        const ebr = MBR.parse((await device.readBlocks(ebrLBA, ebrLBA + 1)).buffer)
        const [entry, next] = ebr.partitions
        logical.push({ type: entry.type, firstLBA: ebrLBA + entry.firstLBA, sectors: entry.sectors })
        ebrLBA = next.type === 0 ? null : extended.firstLBA + next.firstLBA
      }
      assert.deepEqual(
        logical,
        table.partitions.filter((p) => p.index > 4).map((p) => ({ type: parseInt(p.type, 16), firstLBA: p.start, sectors: p.size })),
        `${name}: the logical partitions`,
      )
    } finally {
      await disk.close()
    }
  }
})

/**
 * The bytes of partition `index` of `image` (any kind, a chain read through), taken out by
 * `vhd convert --partition N --to raw`: the command line's own extraction.
 */
function extractPartition(image, index, out) {
  const res = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'vhd.js'), 'convert', '--partition', String(index), '--to', 'raw', '-q', image, out], { encoding: 'utf8' })
  assert.equal(res.status, 0, `vhd convert --partition ${index}: ${res.stderr}`)
  return out
}

for (const kind of ['gpt', 'mbr']) {
  test(`${kind}: a file written through ext2fs into a differencing child over a read-only parent; e2fsck -fn and debugfs agree`, { skip }, async () => {
    const { withMountedDisk } = require('ext2fs')
    const { images, ext4Index, files } = disks[kind]
    const parent = path.join(tmp.dir, `${kind}-ro-parent.vhd`)
    fs.copyFileSync(images.dynamic, parent)
    fs.chmodSync(parent, 0o444)
    const before = sha256File(parent)
    const childFile = path.join(tmp.dir, `${kind}-written-child.vhd`)
    const written = Buffer.from(`written through ext2fs into ${kind} partition ${ext4Index}\n`.repeat(1000))
    const child = await VHD.snapshot(parent, childFile)
    try {
      assert.equal(child.readOnly, false)
      const partition = await child.partition(ext4Index)
      await withMountedDisk(partition.toFileDisk(), 0, async ({ promises: fsys }) => {
        await fsys.mkdir('/made')
        await fsys.writeFile('/made/written.txt', written)
        await fsys.unlink('/hello.txt')
      })
      await partition.flush()
    } finally {
      await child.close()
    }
    assert.equal(sha256File(parent), before, 'the parent is byte-identical')
    const extracted = extractPartition(childFile, ext4Index, path.join(tmp.dir, `${kind}-part.ext4`))
    const check = spawnSync('e2fsck', ['-fn', extracted], { encoding: 'utf8', env: ENV })
    assert.equal(check.status, 0, `e2fsck -fn: ${check.stdout}${check.stderr}`)
    const cat = spawnSync('debugfs', ['-R', 'cat /made/written.txt', extracted], { env: ENV, maxBuffer: 1 << 24 })
    assert.equal(cat.status, 0, String(cat.stderr))
    assert.ok(Buffer.from(cat.stdout).equals(written), 'debugfs reads back what ext2fs wrote')
    const data = spawnSync('debugfs', ['-R', 'cat /nested/deeper/data.bin', extracted], { env: ENV, maxBuffer: 1 << 24 })
    assert.ok(Buffer.from(data.stdout).equals(files.ext4['nested/deeper/data.bin']), 'the files mkfs put in are still there')
    const gone = spawnSync('debugfs', ['-R', 'stat /hello.txt', extracted], { encoding: 'utf8', env: ENV })
    assert.match(gone.stderr, /File not found/, 'the file ext2fs removed is gone')
    fs.rmSync(extracted)
  })
}

test('a read-only image: ext2fs mounts and writes through toFileDisk() (kept in memory) and the image stays byte-identical', { skip }, async () => {
  const { withMountedDisk } = require('ext2fs')
  const { images, ext4Index, files } = disks.gpt
  for (const file of [images.dynamic, images.differencing, images.fixed]) {
    const hashes = [file, images.dynamic].map(sha256File)
    const disk = await VHD.open(file, { readOnly: true })
    try {
      const fileDisk = (await disk.partition(ext4Index)).toFileDisk()
      assert.equal(fileDisk.readOnly, true)
      assert.equal(fileDisk.recordWrites, true)
      await withMountedDisk(fileDisk, 0, async ({ promises: fsys }) => {
        await fsys.writeFile('/in-memory.txt', 'kept in memory')
        assert.equal(String(await fsys.readFile('/in-memory.txt')), 'kept in memory')
        assert.equal(String(await fsys.readFile('/hello.txt')), files.ext4['hello.txt'].toString())
      })
      assert.ok(fileDisk.knownChunks.length > 0, 'the writes were recorded')
    } finally {
      await disk.close()
    }
    assert.deepEqual([file, images.dynamic].map(sha256File), hashes, `${file} and its parent are byte-identical`)
  }
})

test('a disk without a partition table: type none, no partitions; partition(1) is a RangeError that says so', { skip }, async () => {
  const file = path.join(tmp.dir, 'blank.vhd')
  const disk = await VHD.create(file, { type: 'dynamic', size: 4 << 20 })
  try {
    assert.deepEqual(await disk.getPartitions(), { type: 'none', partitions: [], findings: [] })
    await assert.rejects(disk.partition(1), { name: 'RangeError', code: 'ERR_VHD_INVALID_ARGUMENT', message: /there is no partition 1: the disk has no partitions \(partition table: none\)$/ })
  } finally {
    await disk.close()
  }
})

test('qemu-img made images are among those tested (or qemu-img is missing outside CI)', { skip: skipQemu }, () => {
  assert.ok(vhds('gpt').some(([name]) => name.startsWith('qemu-')))
})

test('mbr: an EBR that links to itself (partitioninfo loops forever on it) gives the partitions before the loop and an ebr-loop finding', { skip }, async () => {
  const { table } = disks.mbr
  const raw = path.join(tmp.dir, 'ebr-loop.raw')
  fs.copyFileSync(disks.mbr.file, raw)
  // The first EBR, at the start of the extended partition: its second entry (the link to the
  // next EBR, at byte 446 + 16) made to point at the extended partition's start, itself.
  const extended = table.partitions.find((p) => p.index === 2)
  const fd = fs.openSync(raw, 'r+')
  const link = Buffer.alloc(16)
  link[4] = 0x05 // an extended entry
  link.writeUInt32LE(0, 8) // relative to the extended partition: the EBR itself
  link.writeUInt32LE(extended.size, 12)
  fs.writeSync(fd, link, 0, 16, extended.start * SECTOR + 446 + 16)
  fs.closeSync(fd)
  const image = path.join(tmp.dir, 'ebr-loop.vhd')
  await VHD.convert(raw, image, { to: 'dynamic' })
  const disk = await VHD.open(image, { readOnly: true })
  try {
    const ours = await disk.getPartitions()
    assert.equal(ours.type, 'mbr')
    assert.deepEqual(ours.partitions.map((p) => p.index), [1, 2, 5], 'the logical partition before the loop is kept, once')
    assert.ok(ours.findings.some((f) => f.code === 'ebr-loop'), JSON.stringify(ours.findings))
    // partition(5) still works; partition(6) is not there.
    assert.equal((await disk.partition(5)).size, table.partitions.find((p) => p.index === 5).size * SECTOR)
    await assert.rejects(disk.partition(6), { name: 'RangeError', code: 'ERR_VHD_INVALID_ARGUMENT', message: /there is no partition 6: the disk's partitions are 1, 2, 5$/ })
    // The extended partition is the container of the logical ones, not a partition to view
    // (the rule of the CLI's --partition N, in one place: the core's find_partition).
    await assert.rejects(disk.partition(2), { code: 'ERR_VHD_INVALID_ARGUMENT', message: /partition 2 is an extended partition \(type 0x05\)/ })
  } finally {
    await disk.close()
  }
})
