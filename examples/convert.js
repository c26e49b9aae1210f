'use strict'

// Convert a raw disk image to a dynamic VHD (all-zero blocks are left out), with progress and a
// way to cancel, then back to raw, and compare.
// Run: node examples/convert.js

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VHD = require('..') // in your own project: require('vhd')

const MiB = 1024 * 1024

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    // A 32 MiB raw disk holding data in two places; the rest is zeros.
    const rawPath = path.join(dir, 'disk.raw')
    const raw = Buffer.alloc(32 * MiB)
    raw.fill('partition table', 0, 512)
    raw.fill(0x5a, 20 * MiB, 21 * MiB)
    fs.writeFileSync(rawPath, raw)

    const vhdPath = path.join(dir, 'disk.vhd')
    const controller = new AbortController() // controller.abort() would stop it, leaving no output
    let reports = 0
    const report = await VHD.convert(rawPath, vhdPath, {
      to: 'dynamic',
      sourceFormat: 'raw', // for raw disks you did not make: never look for a VHD footer
      onProgress: ({ bytesDone, bytesTotal }) => {
        reports += 1
        if (bytesDone === bytesTotal) console.log(`progress: ${bytesDone} of ${bytesTotal} bytes`)
      },
      signal: controller.signal,
    })
    console.log(`raw -> dynamic: ${report.allocatedBlocks} blocks allocated, a file of ${report.fileSize} bytes (${reports} progress reports)`)

    // Fixed images are what Azure and Virtual PC want; azure: true rounds the size to a whole MiB.
    const fixed = await VHD.convert(vhdPath, path.join(dir, 'azure.vhd'), { azure: true })
    console.log(`dynamic -> fixed (azure): ${fixed.fileSize} bytes`)

    const backPath = path.join(dir, 'back.raw')
    await VHD.convert(vhdPath, backPath, { to: 'raw' })
    const same = fs.readFileSync(backPath).equals(raw)
    console.log(`back to raw: ${same ? 'identical' : 'DIFFERENT'}`)
    if (!same) process.exitCode = 1
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
