'use strict'

// Code written for vhd@0.5.0 runs unchanged: VHD.Image with error-first callbacks,
// read(buffer, offset, length, position, callback) as fs.read, and the structures.
// (0.5.0 could not create images or write dynamic ones; 1.0 can, so the image is made first.)
// Run: node examples/migrate-from-0.5.js

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const VHD = require('..') // in your own project: require('vhd'), as with 0.5.0

const MiB = 1024 * 1024

/** The vhd@0.5.0 way: open, write, read back, close; calls back `done(error, text)`. */
function oldStyle(file, done) {
  const image = new VHD.Image({ path: file, flags: 'r+' })
  image.open((error) => {
    if (error) return done(error)
    console.log(`opened: type ${image.type}, ${image.size} bytes, block size ${image.sectorSize}`)
    const data = Buffer.from('written the 0.5.0 way')
    image.write(data, 0, data.length, 3 * MiB, (error, bytesWritten) => {
      if (error) return image.close(() => done(error))
      console.log(`wrote ${bytesWritten} bytes`)
      const buffer = Buffer.alloc(data.length)
      image.read(buffer, 0, buffer.length, 3 * MiB, (error, bytesRead) => {
        image.close((closeError) => done(error || closeError, buffer.toString('utf8', 0, bytesRead)))
      })
    })
  })
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  try {
    const file = path.join(dir, 'disk.vhd')
    await (await VHD.create(file, { type: 'dynamic', size: 16 * MiB })).close()

    const text = await new Promise((resolve, reject) => {
      oldStyle(file, (error, result) => (error ? reject(error) : resolve(result)))
    })
    console.log(`read back: ${text}`)

    // The structures, as in 0.5.0: parse the footer (the last 512 bytes) yourself.
    const bytes = fs.readFileSync(file)
    const footer = new VHD.Footer().parse(bytes, bytes.length - VHD.FOOTER_SIZE)
    console.log(`footer: cookie ${footer.signature}, current size ${footer.currentSize} (a BigInt), disk type ${footer.diskType}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
