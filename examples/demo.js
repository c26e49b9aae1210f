'use strict'

// A short tour: create a dynamic VHD in a temporary folder, write a few things (one across
// two blocks), read them back, show what the image holds, clean up.
// Run with `npm run demo`; exits non-zero if anything reads back wrong.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VHD = require('..')

const MiB = 1024 * 1024

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-demo-'))
  const file = path.join(dir, 'demo.vhd')
  let failures = 0
  try {
    const disk = await VHD.create(file, { type: 'dynamic', size: 64 * MiB, blockSize: 2 * MiB })
    console.log(`Created ${file}`)

    const writes = [
      { offset: 0, data: Buffer.from('Hello from vhd!') },
      { offset: 2 * MiB - 8, data: Buffer.from('<-- this spans two blocks -->') },
      { offset: 40 * MiB + 123, data: Buffer.from('far away, unaligned') },
    ]
    for (const { offset, data } of writes) {
      const { bytesWritten } = await disk.write(data, offset)
      console.log(`  wrote ${bytesWritten} bytes at ${offset}`)
    }
    await disk.flush()

    for (const { offset, data } of writes) {
      const { bytesRead, buffer } = await disk.read(offset, data.length)
      const ok = bytesRead === data.length && buffer.equals(data)
      if (!ok) failures += 1
      console.log(`  read  ${bytesRead} bytes at ${offset}: ${JSON.stringify(buffer.toString())} ${ok ? 'ok' : 'MISMATCH'}`)
    }
    const { bytesRead: zeros, buffer: hole } = await disk.read(20 * MiB, 4096)
    const holeOk = zeros === 4096 && hole.every((b) => b === 0)
    if (!holeOk) failures += 1
    console.log(`  an unwritten area reads as zeros: ${holeOk ? 'ok' : 'MISMATCH'}`)

    const { diskGeometry: g, creatorApplication, creatorVersion } = disk.footer
    console.log('What the image holds:')
    console.log(`  type          ${disk.type === VHD.TYPE.DYNAMIC ? 'dynamic' : disk.type} (VHD.TYPE ${disk.type})`)
    console.log(`  size          ${disk.size} bytes (${disk.size / MiB} MiB)`)
    console.log(`  block size    ${disk.blockSize / MiB} MiB`)
    console.log(`  geometry      ${g.cylinders}/${g.heads}/${g.sectors} (C/H/S) = ${disk.geometrySize} bytes`)
    console.log(`  creator       ${JSON.stringify(creatorApplication)} ${creatorVersion.major}.${creatorVersion.minor}`)
    console.log(`  blocks used   ${disk.allocatedBlocks} of ${disk.header.maxTableEntries}`)
    console.log(`  file size     ${fs.statSync(file).size} bytes`)
    const ranges = await disk.getAllocatedRanges()
    console.log(`  data ranges   ${ranges.map((r) => `${r.offset / MiB}..${(r.offset + r.length) / MiB} MiB`).join(', ')}`)

    await disk.close()

    // The maintenance operations work on closed images, by path.
    const report = await VHD.check(file)
    if (!report.clean) failures += 1
    console.log(`Checked: ${report.clean ? 'no errors' : `exit code ${report.exitCode}`}`)
    const copy = path.join(dir, 'demo-fixed.vhd')
    const converted = await VHD.convert(file, copy, { to: 'fixed' })
    const fixed = await VHD.open(copy, { readOnly: true })
    const same = (await fixed.read(writes[1].offset, writes[1].data.length)).buffer.equals(writes[1].data)
    if (!same) failures += 1
    console.log(`Converted to a fixed image of ${converted.fileSize} bytes: ${same ? 'same contents' : 'MISMATCH'}`)
    await fixed.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  if (failures > 0) {
    console.error(`${failures} check(s) failed`)
    process.exitCode = 1
  } else {
    console.log('All checks passed; the temporary folder was removed.')
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
