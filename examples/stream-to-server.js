'use strict'

// Upload a raw disk to a server as a VHD with no temporary file: createVhdStream computes the
// VHD's bytes as they are read, and its length is known before the first byte, so the request
// can carry a Content-Length (as Azure's page-blob uploads require). Here the "server" is an
// HTTP server in the same process that saves what it receives; the upload is then checked.
// Run: node examples/stream-to-server.js

const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { pipeline } = require('node:stream/promises')
const VHD = require('..') // in your own project: require('vhd')

const MiB = 1024 * 1024

/** A server that saves each PUT body to `dir` under the request's file name. */
function startServer(dir) {
  const server = http.createServer((request, response) => {
    const target = path.join(dir, path.basename(request.url))
    pipeline(request, fs.createWriteStream(target)).then(
      () => response.end(`stored ${fs.statSync(target).size} bytes\n`),
      (error) => {
        response.statusCode = 500
        response.end(String(error))
      },
    )
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

/** PUTs `body` (a Readable of `length` bytes) to `url`; resolves to the response's text. */
function upload(url, body, length) {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'PUT', headers: { 'content-length': length } }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (text += chunk))
      response.on('end', () => (response.statusCode === 200 ? resolve(text.trim()) : reject(new Error(text))))
    })
    request.on('error', reject)
    pipeline(body, request).catch(reject)
  })
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-example-'))
  const received = fs.mkdtempSync(path.join(dir, 'server-'))
  const server = await startServer(received)
  try {
    const rawPath = path.join(dir, 'disk.raw')
    const raw = Buffer.alloc(24 * MiB) // Azure takes disks of 20 MiB and more
    raw.write('the first sector of the disk', 0)
    fs.writeFileSync(rawPath, raw)

    // A fixed VHD of a whole number of MiB, as Azure accepts.
    const stream = await VHD.createVhdStream(rawPath, { type: 'fixed', azure: true, sourceFormat: 'raw' })
    console.log(`uploading ${stream.length} bytes`)
    const { port } = server.address()
    const answer = await upload(`http://127.0.0.1:${port}/disk.vhd`, stream, stream.length)
    console.log(`server: ${answer}`)

    const report = await VHD.check(path.join(received, 'disk.vhd'))
    const disk = await VHD.open(path.join(received, 'disk.vhd'), { readOnly: true })
    const { buffer } = await disk.read(0, 28)
    console.log(`the uploaded image: ${disk.size} bytes, check exit code ${report.exitCode}, starts with "${buffer}"`)
    await disk.close()
  } finally {
    server.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
