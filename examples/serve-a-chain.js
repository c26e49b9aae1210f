'use strict'

// Serving a differencing chain over NBD: any NBD client (nbdcopy, nbdinfo, nbdfuse, qemu-img,
// nbd-client) then reads and writes it. Here nbdinfo (Debian: libnbd-bin) reads it.
// Run: node examples/serve-a-chain.js [IMAGE] — with an image, it serves that one until Ctrl-C.

const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const VHD = require('..') // in your own project: require('vhd')

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    let image = process.argv[2]
    if (image === undefined) {
      // A chain of two: base.vhd, and child.vhd over it.
      image = path.join(dir, 'child.vhd')
      const base = await VHD.create(path.join(dir, 'base.vhd'), { type: 'dynamic', size: 64 * 1024 * 1024 })
      await base.write(Buffer.from('written in the base'), 0)
      await base.close()
      await (await VHD.snapshot(base.path, image)).close()
    }
    // The server opens the chain itself (read-write: clients may write) and closes it in close().
    const server = await VHD.serve(image, { socket: path.join(dir, 'nbd.sock') })
    console.log(`serving ${path.basename(image)} at ${server.uri}`)
    console.log(`  nbdcopy '${server.uri}' disk.raw   |   qemu-img convert -O qcow2 '${server.uri}' disk.qcow2`)
    if (process.argv[2] !== undefined) {
      await new Promise((resolve) => process.once('SIGINT', resolve)) // Ctrl-C
    } else {
      const { stdout } = await promisify(execFile)('nbdinfo', ['--size', server.uri])
      console.log(`nbdinfo --size: ${stdout.trim()} bytes`)
    }
    await server.close() // finishes the clients' requests, flushes, closes the image
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
