'use strict'

// Check an image and repair what can be repaired without losing data: what `qemu-img check`
// and `qemu-img check -r` do, for VHD. Here the footer copy at the start of a dynamic image is
// damaged on purpose; repair rewrites it from the footer at the end.
// Run: node examples/check-repair.js

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VHD = require('..') // in your own project: require('vhd')

const MiB = 1024 * 1024

/** One line per finding that is not mere information. */
function describe(label, report) {
  console.log(`${label}: exit code ${report.exitCode} (0 clean, 2 corrupt, 3 leaked space)`)
  for (const finding of report.findings) {
    if (finding.severity !== 'info') console.log(`  ${finding.severity} ${finding.code}: ${finding.message}`)
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    const file = path.join(dir, 'disk.vhd')
    const disk = await VHD.create(file, { type: 'dynamic', size: 32 * MiB })
    await disk.write(Buffer.from('precious data'), 5 * MiB)
    await disk.close()
    describe('fresh image', await VHD.check(file))

    // Damage: overwrite 4 bytes of the footer copy (offset 0) with garbage.
    const fd = fs.openSync(file, 'r+')
    fs.writeSync(fd, Buffer.from('oops'), 0, 4, 64)
    fs.closeSync(fd)
    describe('damaged image', await VHD.check(file))

    // A repair that would lose data is refused (ERR_VHD_REPAIR_REFUSED, nothing written)
    // unless force: true. This one loses nothing.
    const repaired = await VHD.check(file, { repair: true })
    // Its exit code and `clean` describe the image after the repair; `findings` what was
    // found before it, `repairs` what was changed, `notRepaired` what is left.
    for (const repair of repaired.repairs) console.log(`  repaired: ${repair.description}`)
    console.log(`after repair: exit code ${repaired.exitCode}, ${repaired.notRepaired.length} findings left`)
    describe('checked again', await VHD.check(file))

    const again = await VHD.open(file, { readOnly: true })
    console.log(`the data: ${(await again.read(5 * MiB, 13)).buffer.toString()}`)
    await again.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
