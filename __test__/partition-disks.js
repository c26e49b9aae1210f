'use strict'

// Raw disks with partition tables and file systems, made by the real tools (no hand-made
// tables): sgdisk (GPT) and sfdisk (MBR with an extended partition and logical ones) lay out
// the table, mkfs.vfat + mcopy and mkfs.ext4 -d make the file systems in files of their own,
// which dd writes into the partitions (conv=notrunc). `sfdisk --json` then says where
// everything is: the tests compare our table with it. Shared by the partition tests, the
// benchmark and the example test.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const MiB = 1024 * 1024
const SECTOR = 512

/** The tools these disks need, and the Debian package of each. */
const TOOLS = {
  sfdisk: 'fdisk',
  sgdisk: 'gdisk',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  debugfs: 'e2fsprogs',
}

/** PATH with the sbin folders, where Debian puts these tools (a user's PATH may lack them). */
const ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, MTOOLS_SKIP_CHECK: '1' }

/** The tools missing here, as `tool (package)`. */
function missingTools() {
  return Object.entries(TOOLS)
    .filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`], { env: ENV }).status !== 0)
    .map(([tool, pkg]) => `${tool} (${pkg})`)
}

/**
 * How a test file skips without the tools: `false` when they are all there, or under CI
 * (where a missing tool must fail), else the reason, printed once as `SKIPPED: ...`.
 */
function skipWithoutTools() {
  const missing = missingTools()
  if (missing.length === 0) return false
  const reason = `the partition tools are missing: ${missing.join(', ')} (apt-get install fdisk gdisk dosfstools mtools e2fsprogs)`
  if (process.env.CI) return false // the tests then fail on the missing tool, as CI wants
  process.stderr.write(`SKIPPED: ${reason}\n`)
  return reason
}

/** Runs `tool args`, asserting that it succeeds; returns its stdout. */
function run(tool, args, { input } = {}) {
  const res = spawnSync(tool, args, { encoding: 'utf8', env: ENV, input, maxBuffer: 64 * MiB })
  assert.equal(res.status, 0, `${tool} ${args.join(' ')} failed: ${res.error || ''}${res.stderr}`)
  return res.stdout
}

/** A file of `size` bytes, all zeros (sparse). */
function zeroFile(file, size) {
  fs.closeSync(fs.openSync(file, 'w'))
  fs.truncateSync(file, size)
}

/** `src` (a whole file) written into `disk` at byte `offset`, nothing else changed. */
function ddInto(src, disk, offset) {
  run('dd', [`if=${src}`, `of=${disk}`, 'bs=1M', `seek=${offset}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none'])
}

/**
 * An ext4 file system of `size` bytes holding the files of `files` (`{ 'path/in/fs': Buffer }`),
 * made by `mkfs.ext4 -d` from a folder; returns its file.
 */
function makeExt4(dir, name, size, files, label = 'rootfs') {
  const tree = path.join(dir, `${name}.tree`)
  for (const [file, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(tree, file)), { recursive: true })
    fs.writeFileSync(path.join(tree, file), data)
  }
  const image = path.join(dir, `${name}.ext4`)
  zeroFile(image, size)
  // 4 KiB blocks, as on real disks (mke2fs would pick 1 KiB for a file system this small).
  run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-L', label, '-d', tree, image])
  fs.rmSync(tree, { recursive: true })
  return image
}

/** A FAT file system of `size` bytes with `files` (`{ 'NAME.TXT': Buffer }`, in its root), by mkfs.vfat + mcopy. */
function makeFat(dir, name, size, files, label = 'BOOT') {
  const image = path.join(dir, `${name}.fat`)
  zeroFile(image, size)
  run('mkfs.vfat', ['-n', label, image])
  for (const [file, data] of Object.entries(files)) {
    const src = path.join(dir, `${name}-${file}`)
    fs.writeFileSync(src, data)
    run('mcopy', ['-i', image, src, `::/${file}`])
    fs.rmSync(src)
  }
  return image
}

/**
 * `sfdisk --json` of `disk`: `{ label: 'gpt' | 'dos', partitions: [{ index, start, size,
 * type, uuid?, name?, bootable? }] }`, `start` and `size` in sectors, `index` from the node name.
 */
function sfdiskJson(disk) {
  const table = JSON.parse(run('sfdisk', ['--json', disk])).partitiontable
  return {
    label: table.label,
    id: table.id,
    partitions: table.partitions.map((p) => ({ ...p, index: Number(/(\d+)$/.exec(p.node)[1]) })),
  }
}

/** The files every disk's file systems hold (the ext4 `big` file is made on request: the benchmark's). */
function contents({ bigFile = 0 } = {}) {
  const data = Buffer.alloc(MiB + 12345)
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24
  const ext4 = {
    'hello.txt': Buffer.from('hello from ext4\n'),
    'nested/deeper/data.bin': data,
  }
  if (bigFile > 0) {
    const big = Buffer.alloc(bigFile)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2246822519) >>> 0, i)
    ext4['big.bin'] = big
  }
  return { ext4, fat: { 'HELLO.TXT': Buffer.from('hello from FAT\r\n') } }
}

/**
 * A GPT disk (sgdisk): 1 EFI system partition (FAT, 8 MiB, "EFI system"), 2 Linux
 * filesystem (ext4, "rootfs"), 3 Linux swap (4 MiB, "swap", no file system). `ext4Size`
 * sizes partition 2. Returns `{ file, files, table }` (`table`: `sfdiskJson`).
 */
function gptDisk(dir, { name = 'gpt', ext4Size = 24 * MiB, bigFile = 0 } = {}) {
  const file = path.join(dir, `${name}.raw`)
  const size = 1 * MiB + 8 * MiB + ext4Size + 4 * MiB + 1 * MiB
  zeroFile(file, size)
  run('sgdisk', [
    '--clear',
    `--new=1:2048:+8M`, '--typecode=1:ef00', '--change-name=1:EFI system',
    `--new=2:0:+${ext4Size / MiB}M`, '--typecode=2:8300', '--change-name=2:rootfs',
    '--new=3:0:+4M', '--typecode=3:8200', '--change-name=3:swap',
    file,
  ])
  return fill(dir, name, file, bigFile, { fat: 1, ext4: 2 })
}

/**
 * An MBR disk (sfdisk) with logical partitions: 1 FAT (type 0x0c, bootable, 8 MiB), 2 extended
 * (type 0x05) holding 5 Linux (0x83, ext4, `ext4Size`) and 6 Linux swap (0x82, 4 MiB).
 */
function mbrDisk(dir, { name = 'mbr', ext4Size = 24 * MiB, bigFile = 0 } = {}) {
  const file = path.join(dir, `${name}.raw`)
  const size = 1 * MiB + 8 * MiB + 1 * MiB + ext4Size + 1 * MiB + 4 * MiB
  zeroFile(file, size)
  run('sfdisk', ['--quiet', file], {
    input: ['label: dos', 'size=8MiB, type=c, bootable', 'type=5', `size=${ext4Size / MiB}MiB, type=83`, 'type=82', ''].join('\n'),
  })
  return fill(dir, name, file, bigFile, { fat: 1, ext4: 5 })
}

/** Writes the FAT and ext4 file systems into the partitions `at` names. */
function fill(dir, name, file, bigFile, at) {
  const table = sfdiskJson(file)
  const files = contents({ bigFile })
  const part = (index) => table.partitions.find((p) => p.index === index)
  const fat = makeFat(dir, name, part(at.fat).size * SECTOR, files.fat)
  ddInto(fat, file, part(at.fat).start * SECTOR)
  fs.rmSync(fat)
  const ext4 = makeExt4(dir, name, part(at.ext4).size * SECTOR, files.ext4)
  ddInto(ext4, file, part(at.ext4).start * SECTOR)
  fs.rmSync(ext4)
  return { file, files, table, fatIndex: at.fat, ext4Index: at.ext4 }
}

module.exports = { MiB, SECTOR, ENV, missingTools, skipWithoutTools, run, zeroFile, sfdiskJson, gptDisk, mbrDisk, makeExt4 }
