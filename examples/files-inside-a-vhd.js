'use strict'

// List the partitions of a disk image and print a file from one of its file systems, without
// mounting anything or being root: disk.getPartitions(), disk.partition(N) and
// partition.toFileDisk() read by balena-image-fs (FAT or ext2/3/4; in your own project
// `npm install balena-image-fs file-disk`). See docs/partitions.md.
// Run: node examples/files-inside-a-vhd.js [IMAGE PARTITION PATH]
// Without arguments it first makes a small GPT disk with a FAT partition (sfdisk, mkfs.vfat
// and mcopy: Debian's fdisk, dosfstools and mtools) and converts it to a dynamic VHD.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const imagefs = require('balena-image-fs')
const VHD = require('..') // in your own project: require('vhd')

async function printFile(image, index, file) {
  const disk = await VHD.open(image, { readOnly: true }) // read-only: nothing is written, ever
  try {
    const { type, partitions } = await disk.getPartitions()
    for (const p of partitions) console.log(`${type} partition ${p.index}: ${p.size} bytes at ${p.offset}, ${p.typeName ?? p.type}`)
    const partition = await disk.partition(index)
    const bytes = await imagefs.interact(partition.toFileDisk(), undefined, (fsys) => fsys.promises.readFile(file))
    console.log(`${file} in partition ${index}: ${bytes.toString().trim()}`)
  } finally {
    await disk.close()
  }
}

/** A 16 MiB GPT disk whose partition 1 is FAT with /HELLO.TXT, as a dynamic VHD in `dir`. */
async function makeDemoDisk(dir) {
  const MiB = 1024 * 1024
  const env = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin`, MTOOLS_SKIP_CHECK: '1' }
  const run = (tool, args, input) => {
    const res = spawnSync(tool, args, { env, input, encoding: 'utf8' })
    if (res.status !== 0) throw new Error(`${tool} failed (is it installed?): ${res.error ?? res.stderr}`)
  }
  const raw = path.join(dir, 'disk.raw')
  const fat = path.join(dir, 'boot.fat')
  const note = path.join(dir, 'HELLO.TXT')
  fs.writeFileSync(raw, Buffer.alloc(16 * MiB))
  run('sfdisk', ['--quiet', raw], 'label: gpt\nstart=2048, size=8MiB, type=uefi, name="EFI system"\n')
  fs.writeFileSync(fat, Buffer.alloc(8 * MiB))
  run('mkfs.vfat', ['-n', 'DEMO', fat])
  fs.writeFileSync(note, 'hello from inside a VHD\n')
  run('mcopy', ['-i', fat, note, '::/HELLO.TXT'])
  const fd = fs.openSync(raw, 'r+')
  fs.writeSync(fd, fs.readFileSync(fat), 0, 8 * MiB, 1 * MiB) // the file system into partition 1
  fs.closeSync(fd)
  const image = path.join(dir, 'disk.vhd')
  await VHD.convert(raw, image, { to: 'dynamic' })
  return image
}

async function main() {
  const [image, index, file] = process.argv.slice(2)
  if (image !== undefined) return printFile(image, Number(index ?? 1), file ?? '/HELLO.TXT')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    await printFile(await makeDemoDisk(dir), 1, '/HELLO.TXT')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
