'use strict'

// Side-by-side benchmark of this package against Node's `fs` on a raw file with the same
// contents, vhd@0.5.0 (installed as the dev dependency `vhd-js`) and qemu-img/qemu-io.
//
//   npm run bench                 # about 1 GiB of virtual disk, 7 trials
//   npm run bench:quick           # 64 MiB, 2 trials (well under a minute; for CI)
//   node benchmark/index.js [--quick] [--size MiB] [--trials N] [--out FILE] [--dir DIR]
//                           [--only NAME[,NAME…]] [--keep]
//
// The test data is made fresh in a temporary folder (or --dir) and removed at the end
// (unless --keep): half random 2 MiB blocks, half zero 2 MiB blocks, as a raw file and as
// fixed, dynamic (zero blocks unallocated) and depth-3 differencing images (a dynamic base
// and three children, each holding a quarter of the random blocks), all made with this
// package, and checked to read alike. Each scenario runs in a fresh Node process; within it
// every variant runs in turn (ours, baseline, ours, baseline…) for each trial, after one
// untimed warm-up round; the table shows medians and the ratio our throughput / baseline
// throughput. The scenarios vhd@0.5.0 can run (sequential reads, a read stream, opening the
// 2040 GiB image) also run through our `VHD.Image` (its API, the drop-in path), compared
// with vhd@0.5.0 (target ≥ 1.0x) and with the same scenario through our own API (≥ 0.9x). Nothing is dropped from the page cache: all reads are warm. No test asserts a
// timing.
//
// The convert scenarios run `vhd convert` as a whole process (node bin/vhd.js, as users
// run it) against `qemu-img convert` + an fsync of its output, in each direction: a dense
// raw disk to fixed and dynamic; the dynamic image and the differencing chain to raw,
// fixed and dynamic (qemu misreads differencing VHDs: its side converts the dynamic image
// of the same contents); a sparse raw disk (200 GiB holding 512 MiB; --quick: 16 GiB
// holding 64 MiB) to all three; and a 2 TiB sparse raw disk holding 1 GiB (--quick:
// 64 MiB) to raw and fixed, which must take at most 5 s (qemu's VHD driver stops at
// 2040 GiB: compared on raw only). Their sources are made in the scenario and removed
// after it. At --quick sizes the start of a Node process (~0.05-0.1 s) weighs on them.
//
// The partition scenarios (benchmark/partitions.js): a 64 MiB file read by the ext2fs module
// through partition.toFileDisk() of a dynamic image and of a depth-3 chain against file-disk's
// FileDisk on the raw disk (≥ 0.8x), and the partition view's sequential and random reads
// against the disk's own over the same bytes (≥ 0.95x). Left out without sgdisk and mkfs.ext4.
//
// The NBD scenarios (benchmark/nbd.js): `vhd serve` against qemu-nbd: nbdcopy of the served
// dynamic image to null: (≥ 1.0x qemu-nbd -f vpc, ≥ 0.8x qemu-nbd -f raw on the raw file),
// fio's nbd engine with random 4 KiB reads at iodepth 32 (≥ 1.0x qemu-nbd -f vpc), and
// nbdcopy --flush of the raw file into a served new dynamic image (≥ 1.0x qemu-nbd -f vpc).
// Left out without nbdcopy, qemu-nbd, qemu-img and fio.
//
// Results go to bench-results/<timestamp>.json (git-ignored) and to --out FILE if given,
// each with an SVG chart of the ratios beside it (<same name>.svg: benchmark/chart.js).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const { spawn, spawnSync, execFileSync } = require('node:child_process')
const { Writable } = require('node:stream')
const { pipeline } = require('node:stream/promises')

const VHD = require('..')
const VHDJS = require('vhd-js')
const { writeChart } = require('./chart.js')
const { partitionScenarios } = require('./partitions.js')
const { nbdScenarios } = require('./nbd.js')
const { now, seconds, randomOffsets, atDepth } = require('./workload.js')

const MiB = 1024 * 1024
const KiB = 1024
const STRIPE = 2 * MiB // alternate random / zero stripes of this size
const CHUNK = MiB // sequential I/O size
const SMALL = 4 * KiB // random I/O size

// ---------------------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const opts = { quick: false, sizeMiB: null, trials: null, out: null, dir: null, only: null, keep: false, child: null, childOut: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--quick') opts.quick = true
    else if (a === '--size') opts.sizeMiB = Number(next())
    else if (a === '--trials') opts.trials = Number(next())
    else if (a === '--out') opts.out = next()
    else if (a === '--dir') opts.dir = next()
    else if (a === '--only') opts.only = next().split(',')
    else if (a === '--keep') opts.keep = true
    else if (a === '--child') opts.child = next() // internal: run one scenario on existing data in --dir
    else if (a === '--child-out') opts.childOut = next()
    else if (a === '--help' || a === '-h') {
      console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 10).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'))
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  if (opts.sizeMiB === null) opts.sizeMiB = opts.quick ? 64 : 1024
  opts.trialsGiven = opts.trials !== null
  if (opts.trials === null) opts.trials = opts.quick ? 2 : 7
  if (!(opts.sizeMiB >= 8) || opts.sizeMiB % 4 !== 0) throw new Error('--size must be a multiple of 4 MiB, at least 8')
  if (!(opts.trials >= 1)) throw new Error('--trials must be at least 1')
  return opts
}

// ---------------------------------------------------------------------------------------
// Test data: chunk i (1 MiB) is random when its 2 MiB stripe is even, zero otherwise. The
// random chunks come from a pool of 16 random 1 MiB buffers (bounded memory; the writers
// can produce the same contents without reading the raw file).

// Deterministic (AES-CTR of zeros under a fixed key), so that every process of a run makes the same pool.
const POOL = Array.from({ length: 16 }, (_, i) =>
  crypto.createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5a), Buffer.alloc(16, i)).update(Buffer.alloc(CHUNK)),
)
const ZERO = Buffer.alloc(CHUNK)

function chunkIsRandom(i) {
  return Math.floor((i * CHUNK) / STRIPE) % 2 === 0
}
function chunkData(i) {
  return chunkIsRandom(i) ? POOL[i % POOL.length] : ZERO
}

function dataFiles(dir) {
  return {
    raw: path.join(dir, 'disk.raw'),
    fixed: path.join(dir, 'fixed.vhd'),
    dynamic: path.join(dir, 'dynamic.vhd'),
    base: path.join(dir, 'diff-0-base.vhd'),
    child1: path.join(dir, 'diff-1.vhd'),
    child2: path.join(dir, 'diff-2.vhd'),
    top: path.join(dir, 'diff-3-top.vhd'),
    huge: path.join(dir, 'huge-2040g.vhd'),
  }
}

async function makeData(dir, size) {
  const chunks = size / CHUNK
  const files = dataFiles(dir)
  // raw
  const fd = fs.openSync(files.raw, 'w')
  for (let i = 0; i < chunks; i++) fs.writeSync(fd, chunkData(i), 0, CHUNK, i * CHUNK)
  fs.closeSync(fd)
  // fixed: every chunk is written, zeros too, so that its file is laid out like the raw one
  // (not sparse: reading a hole costs the kernel differently from reading written pages);
  // dynamic: only the random chunks (the zero stripes stay unallocated)
  for (const [type, file] of [['fixed', files.fixed], ['dynamic', files.dynamic]]) {
    const disk = await VHD.create(file, { type, size, overwrite: true })
    for (let i = 0; i < chunks; i++) if (type === 'fixed' || chunkIsRandom(i)) await disk.write(chunkData(i), i * CHUNK)
    await disk.close()
  }
  // differencing chain: random stripe k goes to layer k % 4 (base, child1, child2, top)
  const layers = [files.base, files.child1, files.child2, files.top]
  for (let layer = 0; layer < 4; layer++) {
    const disk =
      layer === 0
        ? await VHD.create(layers[0], { type: 'dynamic', size, overwrite: true })
        : await VHD.create(layers[layer], { type: 'differencing', parent: layers[layer - 1], overwrite: true })
    for (let i = 0; i < chunks; i++) {
      const stripe = Math.floor((i * CHUNK) / STRIPE)
      if (chunkIsRandom(i) && (stripe / 2) % 4 === layer) await disk.write(chunkData(i), i * CHUNK)
    }
    await disk.close()
  }
  // a maximum-size (2040 GiB) dynamic image with 1 MiB of data at offset 0
  {
    const disk = await VHD.create(files.huge, { type: 'dynamic', size: 2040 * 1024 * MiB, overwrite: true })
    await disk.write(POOL[0], 0)
    await disk.close()
  }
  return files
}

/** SHA-256 of a whole disk read in 1 MiB chunks with our API (checks the images match the raw file). */
async function hashOurs(file, size) {
  const disk = await VHD.open(file, { readOnly: true })
  const h = crypto.createHash('sha256')
  for (let pos = 0; pos < size; pos += CHUNK) h.update((await disk.read(pos, CHUNK)).buffer)
  await disk.close()
  return h.digest('hex')
}
function hashRaw(file) {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.allocUnsafe(CHUNK)
  let n
  let pos = 0
  while ((n = fs.readSync(fd, buf, 0, CHUNK, pos)) > 0) {
    h.update(buf.subarray(0, n))
    pos += n
  }
  fs.closeSync(fd)
  return h.digest('hex')
}

// ---------------------------------------------------------------------------------------
// Small helpers


function fsRead(fd, buffer, offset, length, position) {
  return new Promise((resolve, reject) =>
    fs.read(fd, buffer, offset, length, position, (error, n) => (error ? reject(error) : resolve(n))),
  )
}
function fsWrite(fd, buffer, offset, length, position) {
  return new Promise((resolve, reject) =>
    fs.write(fd, buffer, offset, length, position, (error, n) => (error ? reject(error) : resolve(n))),
  )
}
function cb(fn) {
  return new Promise((resolve, reject) => fn((error, value) => (error ? reject(error) : resolve(value))))
}
/** An `Image` of vhd@0.5.0's API opened read-only: vhd@0.5.0's own (default) or ours (`VHD`). */
async function openJs(file, api = VHDJS) {
  const img = new api.Image({ path: file, flags: 'r' })
  await cb((done) => img.open(done))
  return img
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}`))))
  })
}
async function timeProcess(cmd, args) {
  const t0 = now()
  await run(cmd, args)
  return seconds(t0)
}

function median(values) {
  const v = [...values].sort((a, b) => a - b)
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

/** The lower quartile: the value a quarter of the way up the sorted values (interpolated). */
function lowerQuartile(values) {
  const v = [...values].sort((a, b) => a - b)
  const at = (v.length - 1) / 4
  const below = Math.floor(at)
  return v[below] + (v[Math.min(below + 1, v.length - 1)] - v[below]) * (at - below)
}

/**
 * What a scenario's targets are judged on: the median, or where the machine adds a
 * disturbance to some trials that neither side causes (the conversions' disk, see
 * convertScenarios), the lower quartile, which such trials do not reach until they are
 * three in four.
 */
const STATISTICS = { median, 'lower quartile': lowerQuartile }

// ---------------------------------------------------------------------------------------
// Scenarios. Each is { name, title, unit, variants: [{ id, label, setup?, trial, teardown? }],
// comparisons: [{ ours, base, target, min|max }] }. A trial returns the measured value
// (throughput: higher is better, unless `lower` is set on the scenario).

function scenarios(ctx) {
  const { files, size, quick, work } = ctx
  const list = []
  const chunks = size / CHUNK
  const mibps = (bytes, s) => bytes / MiB / s
  // Sequential-read trials cover at least 256 MiB (the small --quick disks are read several times).
  const passes = Math.max(1, Math.round(256 / (size / MiB)))
  const seqRead = async (readChunk) => {
    const t0 = now()
    for (let p = 0; p < passes; p++) for (let i = 0; i < chunks; i++) await readChunk(i * CHUNK)
    return mibps(size * passes, seconds(t0))
  }

  // -- sequential 1 MiB reads: fixed and dynamic ----------------------------------------
  for (const kind of ['fixed', 'dynamic']) {
    const state = {}
    const buf = Buffer.allocUnsafe(CHUNK)
    list.push({
      name: `seq-read-${kind}`,
      title: `sequential 1 MiB reads, ${kind}${kind === 'dynamic' ? ' (half unallocated)' : ''}`,
      unit: 'MiB/s',
      async setup() {
        state.disk = await VHD.open(files[kind], { readOnly: true })
        state.fd = fs.openSync(files.raw, 'r')
        state.js = await openJs(files[kind])
        state.image = await openJs(files[kind], VHD)
      },
      async teardown() {
        await state.disk.close()
        fs.closeSync(state.fd)
        await cb((done) => state.js.close(done))
        await cb((done) => state.image.close(done))
      },
      variants: [
        {
          id: 'ours',
          label: 'vhd readInto(buffer, …)',
          async trial() {
            return seqRead((pos) => state.disk.readInto(buf, 0, CHUNK, pos))
          },
        },
        {
          id: 'ours-alloc',
          label: 'vhd read(offset, length), a new Buffer per call (info only)',
          async trial() {
            return seqRead((pos) => state.disk.read(pos, CHUNK))
          },
        },
        {
          id: 'fs',
          label: 'fs.read on raw',
          async trial() {
            return seqRead((pos) => fsRead(state.fd, buf, 0, CHUNK, pos))
          },
        },
        {
          id: 'vhdjs',
          label: 'vhd@0.5.0 Image.read',
          async trial() {
            return seqRead((pos) => cb((done) => state.js.read(buf, 0, CHUNK, pos, done)))
          },
        },
        {
          id: 'image',
          label: 'vhd VHD.Image.read (0.5.0 API, callback)',
          async trial() {
            return seqRead((pos) => cb((done) => state.image.read(buf, 0, CHUNK, pos, done)))
          },
        },
      ],
      comparisons: [
        { ours: 'ours', base: 'fs', min: kind === 'fixed' ? 0.9 : 1.0 },
        { ours: 'ours', base: 'vhdjs', min: 1.0 },
        // The drop-in path: at least vhd@0.5.0's speed, within 10 % of our own API's.
        { ours: 'image', base: 'vhdjs', min: 1.0 },
        { ours: 'image', base: 'ours', min: 0.9 },
      ],
    })
  }

  // -- random 4 KiB reads, async, 1 and 64 in flight -------------------------------------
  const randomCount = { 1: quick ? 4000 : 40000, 64: quick ? 20000 : 200000 }
  for (const depth of [1, 64]) {
    const offsets = randomOffsets(randomCount[depth], size, 12345 + depth)
    const state = {}
    list.push({
      name: `rand-read-qd${depth}`,
      title: `random 4 KiB reads, ${depth} in flight (${offsets.length} reads)`,
      unit: 'kIOPS',
      async setup() {
        state.fixed = await VHD.open(files.fixed, { readOnly: true })
        state.dynamic = await VHD.open(files.dynamic, { readOnly: true })
        state.fd = fs.openSync(files.raw, 'r')
        state.bufs = Array.from({ length: depth }, () => Buffer.allocUnsafe(SMALL))
      },
      async teardown() {
        await state.fixed.close()
        await state.dynamic.close()
        fs.closeSync(state.fd)
      },
      variants: [
        ...['fixed', 'dynamic'].map((kind) => ({
          id: kind,
          label: `vhd readInto(buffer, …), ${kind}`,
          async trial() {
            const disk = state[kind]
            let w = 0
            const t0 = now()
            await atDepth(offsets, depth, (pos) => disk.readInto(state.bufs[w++ % depth], 0, SMALL, pos))
            return offsets.length / 1000 / seconds(t0)
          },
        })),
        {
          id: 'fixed-alloc',
          label: 'vhd read(offset, length), fixed, a new Buffer per call (info only)',
          async trial() {
            const disk = state.fixed
            const t0 = now()
            await atDepth(offsets, depth, (pos) => disk.read(pos, SMALL))
            return offsets.length / 1000 / seconds(t0)
          },
        },
        {
          id: 'fs',
          label: 'fs.read on raw',
          async trial() {
            let w = 0
            const t0 = now()
            await atDepth(offsets, depth, (pos) => fsRead(state.fd, state.bufs[w++ % depth], 0, SMALL, pos))
            return offsets.length / 1000 / seconds(t0)
          },
        },
      ],
      comparisons: [
        { ours: 'fixed', base: 'fs', min: 0.9 },
        { ours: 'dynamic', base: 'fs', min: 1.0 },
      ],
    })
  }

  // -- random 4 KiB synchronous reads -----------------------------------------------------
  {
    const offsets = randomOffsets(quick ? 20000 : 200000, size, 777)
    const state = {}
    list.push({
      name: 'rand-read-sync',
      title: `random 4 KiB synchronous reads (${offsets.length} reads)`,
      unit: 'kIOPS',
      async setup() {
        state.fixed = await VHD.open(files.fixed, { readOnly: true })
        state.dynamic = await VHD.open(files.dynamic, { readOnly: true })
        state.fd = fs.openSync(files.raw, 'r')
        state.buf = Buffer.allocUnsafe(SMALL)
      },
      async teardown() {
        await state.fixed.close()
        await state.dynamic.close()
        fs.closeSync(state.fd)
      },
      variants: [
        ...['fixed', 'dynamic'].map((kind) => ({
          id: kind,
          label: `vhd readIntoSync(buffer, …), ${kind}`,
          async trial() {
            const disk = state[kind]
            const t0 = now()
            for (const pos of offsets) disk.readIntoSync(state.buf, 0, SMALL, pos)
            return offsets.length / 1000 / seconds(t0)
          },
        })),
        {
          id: 'fixed-alloc',
          label: 'vhd readSync(offset, length), fixed, a new Buffer per call (info only)',
          async trial() {
            const disk = state.fixed
            const t0 = now()
            for (const pos of offsets) disk.readSync(pos, SMALL)
            return offsets.length / 1000 / seconds(t0)
          },
        },
        {
          id: 'fs',
          label: 'fs.readSync on raw',
          async trial() {
            const t0 = now()
            for (const pos of offsets) fs.readSync(state.fd, state.buf, 0, SMALL, pos)
            return offsets.length / 1000 / seconds(t0)
          },
        },
      ],
      comparisons: [
        { ours: 'fixed', base: 'fs', min: 0.8 },
        { ours: 'dynamic', base: 'fs', min: 0.8 },
      ],
    })
  }

  // -- sequential 1 MiB writes filling a new dynamic image ------------------------------
  {
    const outVhd = path.join(work, 'write-new.vhd')
    const outRaw = path.join(work, 'write-new.raw')
    const outQemu = path.join(work, 'write-qemu.vhd')
    const clean = () => {
      for (const f of [outVhd, outRaw, outQemu]) fs.rmSync(f, { force: true })
    }
    list.push({
      name: 'seq-write-dynamic',
      title: 'sequential 1 MiB writes filling a new dynamic image (create + write + close, with fsync)',
      unit: 'MiB/s',
      teardown: clean,
      variants: [
        {
          id: 'ours',
          label: 'vhd create + write() + close()',
          before: clean,
          async trial() {
            const t0 = now()
            const disk = await VHD.create(outVhd, { type: 'dynamic', size, overwrite: true })
            for (let i = 0; i < chunks; i++) await disk.write(chunkData(i), i * CHUNK)
            await disk.close()
            return mibps(size, seconds(t0))
          },
        },
        {
          id: 'fs',
          label: 'fs.write on a new raw file + fsync',
          before: clean,
          async trial() {
            const t0 = now()
            const fd = fs.openSync(outRaw, 'w')
            for (let i = 0; i < chunks; i++) await fsWrite(fd, chunkData(i), 0, CHUNK, i * CHUNK)
            await cb((done) => fs.fsync(fd, done))
            fs.closeSync(fd)
            return mibps(size, seconds(t0))
          },
        },
        {
          // qemu-img convert writes its output with cache=unsafe by default: it never
          // flushes it (one fdatasync, of the empty new file). Our close() makes the image
          // durable, so the output's fsync is timed with qemu's run: the same end state.
          id: 'qemu',
          label: 'qemu-img convert -O vpc (raw -> dynamic) + fsync of the output',
          before: clean,
          async trial() {
            const t0 = now()
            await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', files.raw, outQemu])
            const fd = fs.openSync(outQemu, 'r+')
            await cb((done) => fs.fsync(fd, done))
            fs.closeSync(fd)
            return mibps(size, seconds(t0))
          },
        },
        {
          id: 'qemu-unsafe',
          label: 'qemu-img convert -O vpc, not flushed (info only)',
          before: clean,
          async trial() {
            const s = await timeProcess('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', files.raw, outQemu])
            return mibps(size, s)
          },
        },
        {
          id: 'qemu-writeback',
          label: 'qemu-img convert -t writeback -O vpc, its own flushes (info only)',
          before: clean,
          async trial() {
            const s = await timeProcess('qemu-img', ['convert', '-t', 'writeback', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', files.raw, outQemu])
            return mibps(size, s)
          },
        },
      ],
      comparisons: [
        { ours: 'ours', base: 'fs', min: 0.8 },
        { ours: 'ours', base: 'qemu', min: 1.0 },
      ],
    })
  }

  // -- random 4 KiB writes into a dynamic image -----------------------------------------
  {
    const offsets = randomOffsets(quick ? 4000 : 40000, size, 4242)
    const outVhd = path.join(work, 'randwrite.vhd')
    const outRaw = path.join(work, 'randwrite.raw')
    const data = crypto.randomBytes(SMALL * 64)
    const clean = () => {
      for (const f of [outVhd, outRaw]) fs.rmSync(f, { force: true })
    }
    list.push({
      name: 'rand-write-dynamic',
      title: `random 4 KiB writes, 1 in flight, into a copy of the dynamic image (${offsets.length} writes; open + writes + close, with fsync)`,
      unit: 'kIOPS',
      teardown: clean,
      variants: [
        {
          id: 'ours',
          label: 'vhd write(), dynamic',
          before() {
            clean()
            fs.copyFileSync(files.dynamic, outVhd)
          },
          async trial() {
            const t0 = now()
            const disk = await VHD.open(outVhd)
            let k = 0
            for (const pos of offsets) await disk.write(data.subarray((k = (k + 1) & 63) * SMALL, (k + 1) * SMALL), pos)
            await disk.close()
            return offsets.length / 1000 / seconds(t0)
          },
        },
        {
          id: 'fs',
          label: 'fs.write on raw + fsync',
          before() {
            clean()
            fs.copyFileSync(files.raw, outRaw)
          },
          async trial() {
            const t0 = now()
            const fd = fs.openSync(outRaw, 'r+')
            let k = 0
            for (const pos of offsets) await fsWrite(fd, data, (k = (k + 1) & 63) * SMALL, SMALL, pos)
            await cb((done) => fs.fsync(fd, done))
            fs.closeSync(fd)
            return offsets.length / 1000 / seconds(t0)
          },
        },
      ],
      comparisons: [{ ours: 'ours', base: 'fs', min: 0.5 }],
    })
  }

  // -- sequential reads through a depth-3 differencing chain -----------------------------
  {
    const state = {}
    list.push({
      name: 'seq-read-diff3',
      title: 'sequential 1 MiB reads, depth-3 differencing chain vs dynamic',
      unit: 'MiB/s',
      async setup() {
        state.buf = Buffer.allocUnsafe(CHUNK)
        state.diff = await VHD.open(files.top, { readOnly: true })
        state.dynamic = await VHD.open(files.dynamic, { readOnly: true })
      },
      async teardown() {
        await state.diff.close()
        await state.dynamic.close()
      },
      variants: ['diff', 'dynamic'].map((kind) => ({
        id: kind,
        label: kind === 'diff' ? 'vhd readInto(), differencing depth 3' : 'vhd readInto(), dynamic',
        async trial() {
          const disk = state[kind]
          return seqRead((pos) => disk.readInto(state.buf, 0, CHUNK, pos))
        },
      })),
      comparisons: [{ ours: 'diff', base: 'dynamic', min: 0.8 }],
    })
  }

  // -- whole-image read stream ------------------------------------------------------------
  {
    const shmOut = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : work, `vhd-bench-${process.pid}.raw`)
    // A sink that drops every chunk, counting the bytes (a stream that ends early fails the run).
    const drain = async (readable) => {
      let bytes = 0
      await pipeline(
        readable,
        new Writable({
          highWaterMark: CHUNK,
          write(chunk, encoding, done) {
            bytes += chunk.length
            done()
          },
        }),
      )
      if (bytes !== size) throw new Error(`read stream gave ${bytes} bytes, not ${size}`)
    }
    list.push({
      name: 'stream-dynamic',
      title: 'whole-image read stream (1 MiB chunks) of the dynamic image into a discarding sink',
      unit: 'MiB/s',
      teardown: () => fs.rmSync(shmOut, { force: true }),
      variants: [
        {
          id: 'ours',
          label: 'vhd open + createReadStream (in-process)',
          async trial() {
            const t0 = now()
            const disk = await VHD.open(files.dynamic, { readOnly: true })
            await drain(disk.createReadStream({ highWaterMark: CHUNK }))
            await disk.close()
            return mibps(size, seconds(t0))
          },
        },
        ...[
          ['vhdjs', 'vhd@0.5.0 Image.createReadStream', VHDJS],
          ['image', 'vhd VHD.Image.createReadStream (0.5.0 API)', VHD],
        ].map(([id, label, api]) => ({
          id,
          label,
          async trial() {
            const t0 = now()
            const img = await openJs(files.dynamic, api)
            await drain(img.createReadStream({ highWaterMark: CHUNK }))
            await cb((done) => img.close(done))
            return mibps(size, seconds(t0))
          },
        })),
        {
          id: 'qemu',
          label: 'qemu-img convert -O raw into /dev/shm (wall)',
          before: () => fs.rmSync(shmOut, { force: true }),
          async trial() {
            const s = await timeProcess('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', files.dynamic, shmOut])
            fs.rmSync(shmOut, { force: true })
            return mibps(size, s)
          },
        },
      ],
      comparisons: [
        { ours: 'ours', base: 'qemu', min: 1.0 },
        { ours: 'image', base: 'vhdjs', min: 1.0 },
        { ours: 'image', base: 'ours', min: 0.9 },
      ],
    })
  }

  // -- open a 2040 GiB dynamic image and read 1 MiB --------------------------------------
  {
    const probe = path.join(__dirname, 'probe.js')
    const probeRun = async (which) => JSON.parse(await run(process.execPath, ['--expose-gc', probe, which, files.huge, String(CHUNK)]))
    const memOf = {}
    list.push({
      name: 'open-huge',
      title: 'open a 2040 GiB dynamic image and read 1 MiB (fresh process per trial)',
      unit: 'ms',
      lower: true,
      shuffle: true,
      // A trial is ~2 ms inside a process just started, which varies by ±10 % from one
      // process to the next (thread-pool wake-ups, page faults): medians of 7 trials
      // moved by ±0.03 between runs, medians of 31 by about ±0.01. A trial costs ~0.1 s.
      trials: quick ? undefined : 31,
      extra: memOf,
      variants: [
        ...[
          ['ours', 'vhd open + read (in-process time)', 'ours'],
          ['vhdjs', 'vhd@0.5.0 Image open + read (in-process time)', 'vhd-js'],
          ['image', 'vhd VHD.Image open + read (0.5.0 API, in-process time)', 'image'],
        ].map(([id, label, which]) => ({
          id,
          label,
          async trial() {
            const r = await probeRun(which)
            ;(memOf[id] ||= []).push(r.rssDeltaBytes)
            ;(memOf[`${id}WarmMs`] ||= []).push(r.warmMs)
            return r.ms
          },
        })),
        {
          id: 'qemu',
          label: "qemu-io -r -c 'read 0 1M' (wall, whole process)",
          async trial() {
            const useTime = fs.existsSync('/usr/bin/time')
            const args = ['-r', '-f', 'vpc', '-c', 'read 0 1M', files.huge]
            const t0 = now()
            if (useTime) {
              const out = spawnSync('/usr/bin/time', ['-f', 'MAXRSS %M', 'qemu-io', ...args], { encoding: 'utf8' })
              const s = seconds(t0)
              if (out.status !== 0) throw new Error(`qemu-io failed: ${out.stderr}`)
              const m = /MAXRSS (\d+)/.exec(out.stderr)
              if (m) (memOf.qemuPeak ||= []).push(Number(m[1]) * 1024)
              return s * 1000
            }
            await run('qemu-io', args)
            return seconds(t0) * 1000
          },
        },
      ],
      // Absolute targets: ≤ 5 ms, ≤ 6 MiB more resident memory.
      absolute: [
        { id: 'ours', what: 'time', max: 5, unit: 'ms' },
        { id: 'ours', what: 'rss', max: 6, unit: 'MiB' },
      ],
      // The drop-in path: at least as fast as vhd@0.5.0, within 10 % of VHD.open's time.
      comparisons: [
        { ours: 'image', base: 'vhdjs', min: 1.0 },
        { ours: 'image', base: 'ours', min: 0.9 },
      ],
    })
  }

  list.push(...convertScenarios(ctx))
  // Partitions and file systems inside images (benchmark/partitions.js).
  list.push(...partitionScenarios(ctx))
  // vhd serve against qemu-nbd, through nbdcopy and fio (benchmark/nbd.js).
  list.push(...nbdScenarios(ctx))
  return list
}

// ---------------------------------------------------------------------------------------
// convert: `vhd convert` as a whole process (what users run: node, the addon, the command
// line) against `qemu-img convert` + an fsync of its output. qemu-img never flushes its
// output by default (cache=unsafe); ours is durable when it exits: the same end state
// only once qemu's output is fsynced, which is timed with it. Each output is removed
// before the next trial (and is not timed).

const VHD_CLI = path.join(__dirname, '..', 'bin', 'vhd.js')
const QEMU_OUTPUT = {
  raw: ['-O', 'raw'],
  fixed: ['-O', 'vpc', '-o', 'subformat=fixed,force_size=on'],
  dynamic: ['-O', 'vpc', '-o', 'subformat=dynamic,force_size=on'],
}
const QEMU_LIMIT = 2040 * 1024 * MiB // qemu's vpc driver refuses larger images

function fsyncFile(file) {
  const fd = fs.openSync(file, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Writes `dataMiB` MiB of random data into a new sparse raw file of `size` bytes, in 4 MiB stripes spread evenly. */
function makeSparseRaw(file, size, dataMiB) {
  const stripes = dataMiB / 4
  const step = Math.floor(size / stripes / MiB) * MiB
  const fd = fs.openSync(file, 'w')
  try {
    fs.ftruncateSync(fd, size)
    for (let s = 0; s < stripes; s++) for (let j = 0; j < 4; j++) fs.writeSync(fd, POOL[(s * 4 + j) % POOL.length], 0, CHUNK, s * step + j * MiB)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * One convert scenario: `source` (made by `make` in setup when given, removed in
 * teardown) into each of `outputs`, by us and by qemu-img (which reads `qemuSource`, in
 * `qemuFormat`: the same disk, or for a chain the equivalent dynamic image).
 */
function convertScenario({ name, title, source, qemuSource = source, qemuFormat, qemuNote = '', outputs, qemuOutputs = outputs, make, trials, absolute = [] }) {
  const out = (who, to) => path.join(path.dirname(source), `convert-${name}-${who}.${to === 'raw' ? 'raw' : 'vhd'}`)
  const clean = () => {
    for (const to of outputs) for (const who of ['ours', 'qemu']) fs.rmSync(out(who, to), { force: true })
  }
  return {
    name,
    title,
    unit: 's',
    lower: true,
    trials,
    // See convertScenarios.
    statistic: 'lower quartile',
    shuffle: true,
    setup: make,
    teardown() {
      clean()
      if (make) fs.rmSync(source, { force: true })
    },
    variants: outputs.flatMap((to) => [
      {
        id: `ours-${to}`,
        label: `vhd convert --to ${to}`,
        before: clean,
        trial: () => timeProcess(process.execPath, [VHD_CLI, 'convert', '-q', '--to', to, source, out('ours', to)]),
      },
      ...(qemuOutputs.includes(to)
        ? [
            {
              id: `qemu-${to}`,
              label: `qemu-img convert ${QEMU_OUTPUT[to].join(' ').replace(',force_size=on', '')}${qemuNote} + fsync`,
              before: clean,
              async trial() {
                const t0 = now()
                await run('qemu-img', ['convert', '-f', qemuFormat, ...QEMU_OUTPUT[to], qemuSource, out('qemu', to)])
                fsyncFile(out('qemu', to))
                return seconds(t0)
              },
            },
          ]
        : []),
    ]),
    comparisons: qemuOutputs.map((to) => ({ ours: `ours-${to}`, base: `qemu-${to}`, min: 1.0 })),
    absolute,
  }
}

function convertScenarios({ files, size, quick, work }) {
  // Whole conversions write 0.5-1 GiB each, back to back, and this machine's disk has slow
  // spells: about one write-heavy run in three takes 2-4x as long, whoever runs it (20 runs
  // in a row of ours and of qemu-img's, each tool alone, show the same slow runs, their
  // time in pwrite, the kernel waiting for the device). What decides it is where the file
  // system puts the new file: the same 512 MiB written by a small program, 16 times into
  // newly allocated space, took 1.25-1.50 s every time; 16 times into the space the file
  // before had just freed, 0.35-0.38 s in 13 (the virtual disk is thin-provisioned). So
  // the trial times of every variant, ours and qemu-img's alike, are two clusters, and a
  // median of 11 or even 21 trials fell in the slow one for one side now and then (two or
  // three of the 18 comparisons of a full run, not the same ones from run to run). The
  // targets are judged on the lower quartile instead, the typical run of the fast cluster
  // (the slow runs reach it only when they are three in four); the medians are printed
  // beside it.
  const trials = quick ? undefined : 21
  const all = ['raw', 'fixed', 'dynamic']
  const sparse = { size: (quick ? 16 : 200) * 1024 * MiB, dataMiB: quick ? 64 : 512 }
  const huge = { size: 2 * 1024 * 1024 * MiB, dataMiB: quick ? 64 : 1024 }
  const gib = (bytes) => `${bytes / 1024 / MiB} GiB`
  const data = (mib) => (mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`)
  return [
    convertScenario({
      name: 'convert-raw',
      title: `convert a dense raw disk (${size / MiB} MiB, 2 MiB stripes of data and zeros, all written) to fixed and dynamic`,
      source: files.raw,
      qemuFormat: 'raw',
      outputs: ['fixed', 'dynamic'],
      trials,
    }),
    convertScenario({
      name: 'convert-dynamic',
      title: `convert the dynamic image (${size / MiB} MiB, half allocated) to raw, fixed and dynamic`,
      source: files.dynamic,
      qemuFormat: 'vpc',
      outputs: all,
      trials,
    }),
    convertScenario({
      name: 'convert-chain',
      title: `convert the depth-3 differencing chain (${size / MiB} MiB) to raw, fixed and dynamic`,
      source: files.top,
      // qemu misreads differencing VHDs: it converts the dynamic image of the same contents.
      qemuSource: files.dynamic,
      qemuFormat: 'vpc',
      qemuNote: ' (of the equivalent dynamic image)',
      outputs: all,
      trials,
    }),
    convertScenario({
      name: 'convert-sparse-raw',
      title: `convert a sparse raw disk (${gib(sparse.size)} holding ${data(sparse.dataMiB)}) to raw, fixed and dynamic`,
      source: path.join(work, 'sparse.raw'),
      make: () => makeSparseRaw(path.join(work, 'sparse.raw'), sparse.size, sparse.dataMiB),
      qemuFormat: 'raw',
      outputs: all,
      trials,
    }),
    convertScenario({
      name: 'convert-sparse-2t',
      title: `convert a 2 TiB sparse raw disk holding ${data(huge.dataMiB)} to raw and fixed`,
      source: path.join(work, 'sparse-2t.raw'),
      make: () => makeSparseRaw(path.join(work, 'sparse-2t.raw'), huge.size, huge.dataMiB),
      qemuFormat: 'raw',
      outputs: ['raw', 'fixed'],
      // qemu's VHD driver stops at 2040 GiB: it is compared on raw output only.
      qemuOutputs: huge.size > QEMU_LIMIT ? ['raw'] : ['raw', 'fixed'],
      trials,
      absolute: [
        { id: 'ours-raw', what: 'time', max: 5, unit: 's' },
        { id: 'ours-fixed', what: 'time', max: 5, unit: 's' },
      ],
    }),
  ]
}

// ---------------------------------------------------------------------------------------
// Machine description

function machine() {
  let cpu = 'unknown'
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))
    if (m) cpu = m[1].trim()
  } catch {}
  if (cpu === 'unknown' && os.cpus().length) cpu = os.cpus()[0].model
  const ver = (cmd) => {
    try {
      return execFileSync(cmd, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim()
    } catch {
      return 'not found'
    }
  }
  return {
    cpu,
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE) || 4,
    qemuImg: ver('qemu-img'),
    qemuIo: ver('qemu-io'),
    vhd: VHD.version,
    vhdJs: require('vhd-js/package.json').version,
  }
}

// ---------------------------------------------------------------------------------------
// Report

function fmt(v) {
  if (!Number.isFinite(v)) return String(v)
  if (Math.abs(v) >= 100) return v.toFixed(0)
  if (Math.abs(v) >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

function table(rows, headers) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells) => '| ' + cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |'
  return [line(headers), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n')
}

// ---------------------------------------------------------------------------------------
// Main

/** A small seeded generator (mulberry32) of numbers in [0, 1), seeded by a string. */
function seeded(text) {
  let a = [...text].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 0x9e3779b1) >>> 0, 0x2545f491)
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A copy of `items` in a random order (Fisher-Yates). */
function shuffled(items, random) {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j], copy[i]]
  }
  return copy
}

/**
 * Waits, untimed, until the file system of the work folder has nothing left to write, so
 * that no trial pays for the writes of the one before or for the removal of its outputs
 * (this machine's ext4 is mounted with `discard`, which trims freed blocks when the
 * journal commits).
 */
function settle(work) {
  spawnSync('sync', ['-f', work], { stdio: 'ignore' })
}

async function runScenario(sc, trials, work, trialsGiven = false) {
  // A scenario may have a trial count of its own (the conversions: more, see
  // convertScenarios); --trials on the command line wins.
  if (sc.trials && !trialsGiven) trials = sc.trials
  if (sc.setup) await sc.setup()
  const samples = Object.fromEntries(sc.variants.map((v) => [v.id, []]))
  // one warm-up round (not recorded), then interleaved trials; with `shuffle`, each round
  // runs the variants in an order of its own (seeded: the same in every run), so that no
  // variant always follows the same one (a conversion inherits the page cache and device
  // state the one before left) or always has the same place in the round (this machine's
  // disk slows down now and then in a rhythm: with forward/reverse alternation, whichever
  // conversion came third in a round was 4x slower, ours or qemu-img's, measured)
  const random = seeded(sc.name)
  for (let t = -1; t < trials; t++) {
    const order = sc.shuffle ? shuffled(sc.variants, random) : sc.variants
    for (const v of order) {
      if (v.before) await v.before()
      settle(work)
      const value = await v.trial()
      if (t >= 0) samples[v.id].push(value)
    }
  }
  if (sc.extra) for (const k of Object.keys(sc.extra)) sc.extra[k] = sc.extra[k].slice(-trials)
  if (sc.teardown) await sc.teardown()
  const statistic = sc.statistic ?? 'median'
  const judged = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, STATISTICS[statistic](v)]))
  const result = {
    name: sc.name,
    title: sc.title,
    unit: sc.unit,
    statistic,
    variants: sc.variants.map((v) => ({ id: v.id, label: v.label, median: median(samples[v.id]), value: judged[v.id], samples: samples[v.id] })),
    comparisons: sc.comparisons.map((c) => {
      const ratio = sc.lower ? judged[c.base] / judged[c.ours] : judged[c.ours] / judged[c.base]
      return { ...c, ratio, met: ratio >= c.min }
    }),
  }
  result.trials = trials
  if (sc.absolute && sc.extra) {
    const rssMiB = (arr) => (arr && arr.length ? median(arr) / MiB : NaN)
    result.memory = {
      oursRssDeltaMiB: rssMiB(sc.extra.ours),
      vhdjsRssDeltaMiB: rssMiB(sc.extra.vhdjs),
      qemuIoPeakRssMiB: rssMiB(sc.extra.qemuPeak),
    }
    result.warmProcess = {
      oursMs: median(sc.extra.oursWarmMs),
      imageMs: median(sc.extra.imageWarmMs),
      vhdjsMs: median(sc.extra.vhdjsWarmMs),
    }
  }
  if (sc.absolute && sc.absolute.length) {
    result.absolute = sc.absolute.map((a) => {
      const value = a.what === 'time' ? judged[a.id] : result.memory.oursRssDeltaMiB
      return { ...a, value, met: value <= a.max }
    })
  }
  return result
}

function printScenario(sc, result) {
  for (const v of result.variants) {
    const range = `(${fmt(Math.min(...v.samples))}–${fmt(Math.max(...v.samples))})`
    const judged = result.statistic === 'median' ? '' : `  ${result.statistic} ${fmt(v.value)}`
    process.stdout.write(`  ${v.label.padEnd(52)} ${fmt(v.median).padStart(8)} ${result.unit.padEnd(6)} ${range}${judged}\n`)
  }
  if (result.memory) {
    const m = result.memory
    process.stdout.write(`  resident memory: vhd +${fmt(m.oursRssDeltaMiB)} MiB, vhd@0.5.0 +${fmt(m.vhdjsRssDeltaMiB)} MiB, qemu-io peak ${fmt(m.qemuIoPeakRssMiB)} MiB (whole process)\n`)
    const w = result.warmProcess
    process.stdout.write(`  a second open + read in the same process: vhd ${fmt(w.oursMs)} ms, VHD.Image ${fmt(w.imageMs)} ms, vhd@0.5.0 ${fmt(w.vhdjsMs)} ms (info)\n`)
  }
}

async function childMain(opts) {
  const size = opts.sizeMiB * MiB
  const work = path.resolve(opts.dir)
  const sc = scenarios({ files: dataFiles(work), size, quick: opts.quick, work }).find((x) => x.name === opts.child)
  if (!sc) throw new Error(`no scenario ${opts.child}`)
  process.stdout.write(`${sc.name}: ${sc.title}\n`)
  const result = await runScenario(sc, opts.trials, work, opts.trialsGiven)
  printScenario(sc, result)
  fs.writeFileSync(opts.childOut, JSON.stringify(result))
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  if (opts.child) return childMain(opts)
  const size = opts.sizeMiB * MiB
  const info = machine()
  const started = new Date()
  console.log(`vhd benchmark — ${opts.quick ? 'quick' : 'full'} run, ${opts.sizeMiB} MiB virtual disks, ${opts.trials} trial(s) per variant (the conversions: their own count), interleaved`)
  console.log(`machine: ${info.cpu}, ${info.cores} cores, ${info.memoryGiB} GiB RAM, ${info.os}`)
  console.log(`node ${info.node} (UV_THREADPOOL_SIZE ${info.uvThreadpoolSize}), ${info.qemuImg}, vhd ${info.vhd}, vhd@${info.vhdJs} (vhd-js)`)
  console.log('page cache: warm (nothing is dropped; all files are read once before timing)')
  console.log('each scenario runs in a fresh process; per variant: median (min–max of the trials)\n')

  const work = opts.dir ? path.resolve(opts.dir) : fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-bench-'))
  fs.mkdirSync(work, { recursive: true })
  const cleanup = () => {
    if (!opts.keep && !opts.dir) fs.rmSync(work, { recursive: true, force: true })
  }
  process.on('SIGINT', () => {
    cleanup()
    process.exit(130)
  })

  let t0 = now()
  const files = await makeData(work, size)
  console.log(`test data made in ${seconds(t0).toFixed(1)} s`)
  t0 = now()
  const want = hashRaw(files.raw)
  for (const kind of ['fixed', 'dynamic', 'top']) {
    const got = await hashOurs(files[kind], size)
    if (got !== want) throw new Error(`${kind} image does not read as the raw file`)
  }
  {
    // vhd@0.5.0 must read the same bytes too (else its numbers mean nothing)
    for (const kind of ['fixed', 'dynamic']) {
      const img = await openJs(files[kind])
      const h = crypto.createHash('sha256')
      const buf = Buffer.allocUnsafe(CHUNK)
      for (let pos = 0; pos < size; pos += CHUNK) {
        await cb((done) => img.read(buf, 0, CHUNK, pos, done))
        h.update(buf)
      }
      await cb((done) => img.close(done))
      if (h.digest('hex') !== want) throw new Error(`vhd@0.5.0 reads the ${kind} image differently`)
    }
  }
  console.log(`contents checked (fixed, dynamic, differencing top and vhd@0.5.0 reads match the raw file) in ${seconds(t0).toFixed(1)} s\n`)

  const names = scenarios({ files, size, quick: opts.quick, work }).map((sc) => sc.name)
  const results = []
  for (const name of names) {
    if (opts.only && !opts.only.includes(name)) continue
    // Each scenario runs in a fresh Node process, so that one scenario's garbage (heap,
    // external memory, thread-pool state) does not slow the next.
    const out = path.join(work, `result-${name}.json`)
    const args = [__filename, '--child', name, '--child-out', out, '--dir', work, '--size', String(opts.sizeMiB)]
    // Only a count given on the command line is passed on (a scenario may have its own).
    if (opts.trialsGiven) args.push('--trials', String(opts.trials))
    if (opts.quick) args.push('--quick')
    const r = spawnSync(process.execPath, args, { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`scenario ${name} failed (exit ${r.status})`)
    results.push(JSON.parse(fs.readFileSync(out, 'utf8')))
    fs.rmSync(out, { force: true })
  }

  // Summary table
  const rows = []
  for (const r of results) {
    const byId = Object.fromEntries(r.variants.map((v) => [v.id, v]))
    // A value as the row judges it, saying which statistic it is when not the median.
    const shown = (v) =>
      r.statistic === 'median'
        ? `${fmt(v.median)} ${r.unit}`
        : `${fmt(v.value)} ${r.unit} (${r.statistic}; median ${fmt(v.median)} ${r.unit})`
    for (const c of r.comparisons) {
      rows.push([
        r.title.replace(/ \(.*\)$/, ''),
        `${byId[c.ours].label}: ${shown(byId[c.ours])}`,
        `${byId[c.base].label}: ${shown(byId[c.base])}`,
        `${c.ratio.toFixed(2)}×`,
        `≥ ${c.min}×`,
        c.met ? 'yes' : 'NO',
      ])
    }
    for (const a of r.absolute || []) {
      const other =
        a.what === 'rss'
          ? `vhd@0.5.0: +${fmt(r.memory.vhdjsRssDeltaMiB)} MiB; qemu-io peak: ${fmt(r.memory.qemuIoPeakRssMiB)} MiB`
          : byId.vhdjs
            ? `vhd@0.5.0: ${fmt(byId.vhdjs.median)} ms; qemu-io: ${fmt(byId.qemu.median)} ms (wall)`
            : r.variants
                .filter((v) => v.id.startsWith('qemu'))
                .map((v) => `${v.label}: ${shown(v)}`)
                .join('; ') || '—'
      rows.push([
        r.title.replace(/ \(.*\)$/, '') + (a.what === 'time' ? ` — time of ${byId[a.id].label}` : ' — RSS growth'),
        `vhd: ${a.what === 'rss' ? '+' : ''}${fmt(a.value)} ${a.unit}${a.what === 'time' && r.statistic !== 'median' ? ` (${r.statistic})` : ''}`,
        other,
        '—',
        `≤ ${a.max} ${a.unit}`,
        a.met ? 'yes' : 'NO',
      ])
    }
  }
  console.log('\nSummary (medians, unless a row says otherwise; ratio = our throughput / baseline throughput)\n')
  console.log(table(rows, ['scenario', 'ours', 'baseline', 'ratio', 'target', 'met']))

  const report = {
    started: started.toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    sizeMiB: opts.sizeMiB,
    trials: opts.trials,
    pageCache: 'warm',
    machine: info,
    results,
  }
  const dir = path.join(__dirname, '..', 'bench-results')
  fs.mkdirSync(dir, { recursive: true })
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const outFiles = [path.join(dir, `${stamp}${opts.quick ? '-quick' : ''}.json`)]
  if (opts.out) outFiles.push(path.resolve(opts.out))
  for (const f of outFiles) fs.writeFileSync(f, JSON.stringify(report, null, 2) + '\n')
  // The chart of the ratios, beside each JSON file.
  const charts = outFiles.map((f) => f.replace(/\.json$/, '') + '.svg')
  for (const f of charts) writeChart(report, f)
  console.log(`\nresults saved to ${[...outFiles, ...charts].map((f) => path.relative(process.cwd(), f) || f).join(', ')}`)
  cleanup()
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
