'use strict'

// Snapshots: a differencing image holds only what is written to it; everything else comes from
// its parent, which is never written. Commit folds the child back into its parent.
// Run: node examples/chain.js

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VHD = require('..') // in your own project: require('vhd')

const MiB = 1024 * 1024

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    const basePath = path.join(dir, 'base.vhd')
    const childPath = path.join(dir, 'snapshot.vhd')

    const base = await VHD.create(basePath, { type: 'dynamic', size: 64 * MiB })
    await base.write(Buffer.from('base: version 1'), 0)
    await base.write(Buffer.from('base: kept'), 8 * MiB)
    await base.close()

    // VHD.snapshot makes a differencing image over base.vhd and opens it read-write.
    // (VHD.create(childPath, { type: 'differencing', parent: basePath }) does the same.)
    const child = await VHD.snapshot(basePath, childPath)
    await child.write(Buffer.from('snap: version 2'), 0)
    console.log(`chain: ${child.chain.map((p) => path.basename(p)).join(' -> ')}`)
    console.log(`parent: ${path.basename(child.parent.path)}`)
    console.log(`child at 0:     ${(await child.read(0, 15)).buffer.toString()}`)
    console.log(`child at 8 MiB: ${(await child.read(8 * MiB, 10)).buffer.toString()} (from the parent)`)
    await child.close()

    // The parent was opened read-only: it still holds version 1.
    const parent = await VHD.open(basePath, { readOnly: true })
    console.log(`base at 0:      ${(await parent.read(0, 15)).buffer.toString()}`)
    await parent.close()

    // Commit writes the child's sectors into its parent and empties the child.
    const report = await VHD.commit(childPath)
    console.log(`committed ${report.bytesCommitted} bytes into ${path.basename(report.parent)}`)
    const after = await VHD.open(basePath, { readOnly: true })
    const { buffer } = await after.read(0, 15)
    assert.equal(buffer.toString(), 'snap: version 2')
    console.log(`base at 0 after commit: ${buffer.toString()}`)
    await after.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
