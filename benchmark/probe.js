'use strict'

// One measurement of "open a large dynamic image and read 1 MiB", in a fresh process so that
// its resident-memory growth is its own. Run by benchmark/index.js:
//
//   node benchmark/probe.js <ours|image|vhd-js> <image> <readBytes>
//
// ours: VHD.open + disk.read; image: our VHD.Image (vhd@0.5.0's API) open + read with a
// callback; vhd-js: vhd@0.5.0's Image the same way.
//
// Prints one JSON line: { ms, warmMs, rssDeltaBytes, rssBefore, rssAfter } (warmMs: a second
// open + read in the same, now warm, process). The module is loaded and
// warmed up (a small file read) before the baseline RSS is taken; the timed part is open +
// read; close happens after the measurement.

const fs = require('node:fs')
const path = require('node:path')

const [which, image, lengthArg] = process.argv.slice(2)
const length = Number(lengthArg)

function rss() {
  return process.memoryUsage.rss()
}

async function ours() {
  const VHD = require(path.join(__dirname, '..'))
  if (global.gc) global.gc()
  const before = rss()
  const t0 = process.hrtime.bigint()
  const disk = await VHD.open(image, { readOnly: true })
  const { bytesRead } = await disk.read(0, length)
  const t1 = process.hrtime.bigint()
  const after = rss()
  await disk.close()
  if (bytesRead !== length) throw new Error(`short read: ${bytesRead}`)
  // The same again in this (now warm) process, for information.
  const t2 = process.hrtime.bigint()
  const again = await VHD.open(image, { readOnly: true })
  await again.read(0, length)
  const t3 = process.hrtime.bigint()
  await again.close()
  return { ms: Number(t1 - t0) / 1e6, warmMs: Number(t3 - t2) / 1e6, rssBefore: before, rssAfter: after }
}

/** Open + read through an `Image` class of vhd@0.5.0's API: vhd@0.5.0's own, or ours. */
async function imageApi(api) {
  if (global.gc) global.gc()
  const buffer = Buffer.allocUnsafe(length)
  const before = rss()
  const t0 = process.hrtime.bigint()
  const img = new api.Image({ path: image, flags: 'r' })
  await new Promise((resolve, reject) => img.open((error) => (error ? reject(error) : resolve())))
  const bytesRead = await new Promise((resolve, reject) =>
    img.read(buffer, 0, length, 0, (error, n) => (error ? reject(error) : resolve(n))),
  )
  const t1 = process.hrtime.bigint()
  const after = rss()
  await new Promise((resolve) => img.close(resolve))
  if (bytesRead !== length) throw new Error(`short read: ${bytesRead}`)
  // The same again in this (now warm) process, for information.
  const t2 = process.hrtime.bigint()
  const img2 = new api.Image({ path: image, flags: 'r' })
  await new Promise((resolve, reject) => img2.open((error) => (error ? reject(error) : resolve())))
  await new Promise((resolve, reject) => img2.read(buffer, 0, length, 0, (error, n) => (error ? reject(error) : resolve(n))))
  const t3 = process.hrtime.bigint()
  await new Promise((resolve) => img2.close(resolve))
  return { ms: Number(t1 - t0) / 1e6, warmMs: Number(t3 - t2) / 1e6, rssBefore: before, rssAfter: after }
}

;(async () => {
  // Warm the fs/promise machinery used by both, outside the measurement.
  fs.readFileSync(__filename)
  await fs.promises.stat(image)
  const result =
    which === 'ours'
      ? await ours()
      : await imageApi(which === 'image' ? require(path.join(__dirname, '..')) : require('vhd-js'))
  result.rssDeltaBytes = result.rssAfter - result.rssBefore
  process.stdout.write(JSON.stringify(result) + '\n')
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n')
  process.exit(1)
})
