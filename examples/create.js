'use strict'

// Create a fixed and a dynamic image, write to them, read back, and look at what they hold.
// Run: node examples/create.js

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VHD = require('..') // in your own project: require('vhd')

const MiB = 1024 * 1024

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    // A dynamic image: the file grows a block (2 MiB by default) at a time as data is written.
    const dynamicPath = path.join(dir, 'dynamic.vhd')
    const dynamic = await VHD.create(dynamicPath, { type: 'dynamic', size: 256 * MiB })
    await dynamic.write(Buffer.from('boot sector'), 0)
    await dynamic.write(Buffer.alloc(MiB, 0xab), 100 * MiB)
    console.log(`dynamic: ${dynamic.size / MiB} MiB virtual, ${dynamic.allocatedBlocks} blocks allocated`)
    await dynamic.close() // flushes: the writes are durable
    console.log(`dynamic: the file holds ${fs.statSync(dynamicPath).size} bytes`)

    // A fixed image: the data area is the whole disk (created sparse), then a 512-byte footer.
    const fixedPath = path.join(dir, 'fixed.vhd')
    const fixed = await VHD.create(fixedPath, { type: 'fixed', size: 16 * MiB })
    await fixed.write(Buffer.from('hello, fixed'), 4096)
    await fixed.close()
    console.log(`fixed: the file holds ${fs.statSync(fixedPath).size} bytes (16 MiB + the footer)`)

    // VHD.open detects the type. readOnly: true, otherwise it opens read-write with an
    // exclusive lock on the file.
    const disk = await VHD.open(dynamicPath, { readOnly: true })
    const { bytesRead, buffer } = await disk.read(0, 11)
    console.log(`read ${bytesRead} bytes: ${buffer.toString()}`)
    const typeName = disk.type === VHD.TYPE.DYNAMIC ? 'dynamic' : String(disk.type)
    console.log(`type ${typeName}, block size ${disk.blockSize / MiB} MiB, created by ${JSON.stringify(disk.footer.creatorApplication)}`)
    for (const range of await disk.getAllocatedRanges()) {
      console.log(`  data at ${range.offset / MiB} MiB, ${range.length / MiB} MiB long`)
    }
    await disk.close()

    // The same description as `vhd info --json` prints.
    const info = await VHD.info(fixedPath)
    console.log(`info: ${info.type}, ${info.virtualSize} bytes`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
