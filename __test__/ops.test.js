'use strict'

// The maintenance operations (VHD.convert, createVhdStream, check, compact, resize, commit,
// rebase, snapshot, info) and disk.discard / getAllocatedRanges, checked against qemu-img
// (reads of fixed and dynamic images, `compare`) and libvhdi's pyvhdi (reads of chains).
// Without the oracles those tests are skipped, except under CI (CI set), where that fails.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const VHD = require('..')
const {
  KiB,
  MiB,
  tempDir,
  pattern,
  patchFile,
  vhdChecksum,
  sha256File,
  viaCallback,
  rejectsWith,
  imageWithManyFindings,
  PYTHON,
  pyvhdiReadChain,
  rawDiskStartingLikeAVhd,
  NEEDS_ROOT,
  mkfifo,
  mknodNull,
  dataInEveryChunk,
} = require('./helpers.js')

const qemuProbe = spawnSync('qemu-img', ['--version'], { encoding: 'utf8' })
const hasQemu = qemuProbe.status === 0
const QEMU_MISSING = 'qemu-img is not installed (Debian/Ubuntu: apt-get install qemu-utils)'
const skipQemu = !hasQemu && !process.env.CI ? `${QEMU_MISSING}; skipping` : false

const hasPyvhdi = spawnSync(PYTHON, ['-c', 'import pyvhdi'], { stdio: 'ignore' }).status === 0
const PYVHDI_MISSING = `pyvhdi (Debian/Ubuntu: apt-get install python3-libvhdi) is not importable by ${PYTHON}`
const skipPyvhdi = !hasPyvhdi && !process.env.CI ? `${PYVHDI_MISSING}; skipping` : false

let tmp
before(() => {
  tmp = tempDir('vhd-ops-')
})
after(() => tmp.cleanup())

// ---------------------------------------------------------------------------------------
// Oracles

function qemuImg(args, { status = 0 } = {}) {
  assert.ok(hasQemu, `${QEMU_MISSING}, and CI requires the oracle tests`)
  const res = spawnSync('qemu-img', args, { encoding: 'utf8' })
  assert.equal(res.status, status, `qemu-img ${args.join(' ')}: ${res.error || ''}${res.stdout}${res.stderr}`)
  return res.stdout
}

/** `qemu-img compare` of a raw file and a VHD (exit status 0: identical contents). */
function assertSameAsRaw(rawFile, vhdFile) {
  qemuImg(['compare', '-f', 'raw', '-F', 'vpc', rawFile, vhdFile])
}

function qemuVirtualSize(file) {
  return JSON.parse(qemuImg(['info', '--output=json', '-f', 'vpc', file]))['virtual-size']
}

/** What libvhdi reads from a chain (the child first), the parents set explicitly. */
function pyvhdiRead(...chain) {
  assert.ok(hasPyvhdi, `${PYVHDI_MISSING}, and CI requires the oracle tests`)
  return pyvhdiReadChain(chain, tmp.dir)
}

// ---------------------------------------------------------------------------------------
// Fixtures

/** A raw disk of `size` bytes with data in some places and zeros elsewhere; returns its path. */
function makeRaw(size, seed = 1) {
  const file = tmp.file('source').replace(/\.vhd$/, '.raw')
  const bytes = Buffer.alloc(size)
  pattern(3 * MiB, seed).copy(bytes, 0)
  pattern(64 * KiB, seed + 1).copy(bytes, Math.floor(size / 2 / 512) * 512 + 512)
  pattern(4096, seed + 2).copy(bytes, size - 4096)
  fs.writeFileSync(file, bytes)
  return file
}

/** A new image with `writes` ([offset, bytes]) applied; returns its path and the raw model. */
async function makeImage(options, writes = []) {
  const file = tmp.file(options.type)
  const disk = await VHD.create(file, options)
  const model = Buffer.alloc(disk.size)
  for (const [offset, bytes] of writes) {
    await disk.write(bytes, offset)
    bytes.copy(model, offset)
  }
  await disk.close()
  return { file, model }
}

function writeModel(model) {
  const file = tmp.file('model').replace(/\.vhd$/, '.raw')
  fs.writeFileSync(file, model)
  return file
}

async function readAll(file, options) {
  const disk = await VHD.open(file, { readOnly: true, ...options })
  try {
    return (await disk.read(0, disk.size)).buffer
  } finally {
    await disk.close()
  }
}

function streamToBuffer(stream) {
  return new Promise((resolve, reject) => {
    const chunks = []
    stream.on('data', (chunk) => chunks.push(chunk))
    stream.on('error', reject)
    stream.on('end', () => resolve(Buffer.concat(chunks)))
  })
}

/**
 * The ranges as [offset, length, depth], runs of one image that touch merged (the core
 * splits runs where their data is not contiguous in the file).
 */
function coverage(ranges) {
  const merged = []
  for (const { offset, length, depth } of ranges) {
    const last = merged[merged.length - 1]
    if (last && last[0] + last[1] === offset && last[2] === depth) last[1] += length
    else merged.push([offset, length, depth])
  }
  return merged
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex')
const FIXED_ID = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'
const FIXED_TIME = new Date('2024-01-02T03:04:05Z')

// ---------------------------------------------------------------------------------------
// convert and createVhdStream

describe('convert', () => {
  for (const to of ['fixed', 'dynamic']) {
    test(`raw → ${to}: qemu-img compare finds the same contents`, { skip: skipQemu }, async () => {
      const raw = makeRaw(12 * MiB)
      const out = tmp.file(to)
      const report = await VHD.convert(raw, out, { to })
      assertSameAsRaw(raw, out)
      assert.equal(qemuVirtualSize(out), 12 * MiB)
      assert.equal(report.virtualSize, 12 * MiB)
      assert.equal(report.fileSize, fs.statSync(out).size)
      const disk = await VHD.open(out, { readOnly: true })
      assert.equal(disk.type, to === 'fixed' ? VHD.TYPE.FIXED : VHD.TYPE.DYNAMIC)
      if (to === 'dynamic') {
        // Blocks of zeros are left out: data in blocks 0, 1, 3 and 5 of 6.
        assert.equal(report.allocatedBlocks, disk.allocatedBlocks)
        assert.ok(report.allocatedBlocks < 6, `${report.allocatedBlocks} blocks`)
      }
      await disk.close()
    })
  }

  test('VHD → raw: the raw file is what qemu reads from the image', { skip: skipQemu }, async () => {
    const { file, model } = await makeImage({ type: 'dynamic', size: 6 * MiB, blockSize: 512 * KiB }, [
      [4096, pattern(100 * KiB, 7)],
      [5 * MiB, pattern(3 * KiB, 8)],
    ])
    const raw = tmp.file('out').replace(/\.vhd$/, '.raw')
    await VHD.convert(file, raw, { to: 'raw' })
    assertSameAsRaw(raw, file)
    assert.ok(fs.readFileSync(raw).equals(model))
  })

  test('azure: a fixed image of whole MiB, as qemu sees it', { skip: skipQemu }, async () => {
    const raw = makeRaw(20 * MiB + 512)
    const out = tmp.file('azure')
    const report = await VHD.convert(raw, out, { azure: true })
    assert.equal(report.virtualSize, 21 * MiB)
    assert.equal(fs.statSync(out).size, 21 * MiB + 512)
    assert.equal(qemuVirtualSize(out), 21 * MiB)
    const info = await VHD.info(out)
    assert.equal(info.type, 'fixed')
    // The source's bytes, then zeros up to the whole MiB.
    const padded = writeModel(Buffer.concat([fs.readFileSync(raw), Buffer.alloc(MiB - 512)]))
    assertSameAsRaw(padded, out)
  })

  test('an existing destination is refused without overwrite, and kept', async () => {
    const raw = makeRaw(4 * MiB)
    const out = tmp.file('exists')
    fs.writeFileSync(out, 'precious')
    await rejectsWith(VHD.convert(raw, out, { to: 'fixed' }), 'ERR_VHD_EXISTS')
    assert.equal(fs.readFileSync(out, 'utf8'), 'precious')
    await VHD.convert(raw, out, { to: 'fixed', overwrite: true })
    assert.equal(fs.statSync(out).size, 4 * MiB + 512)
  })

  test('onProgress: bytesDone never goes down and ends at bytesTotal, before the promise resolves', async () => {
    const raw = makeRaw(24 * MiB)
    const seen = []
    const report = await VHD.convert(raw, tmp.file('progress'), { to: 'dynamic', onProgress: (p) => seen.push(p) })
    assert.ok(seen.length >= 2, `${seen.length} reports`)
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].bytesDone >= seen[i - 1].bytesDone, JSON.stringify(seen))
    const last = seen[seen.length - 1]
    assert.equal(last.bytesDone, last.bytesTotal)
    assert.equal(last.bytesTotal, report.virtualSize)
    const count = seen.length
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(seen.length, count, 'no report after the promise settled')
  })

  test('a signal aborted before the call rejects at once with an AbortError, and writes nothing', async () => {
    const raw = makeRaw(4 * MiB)
    const out = tmp.file('pre-aborted')
    const controller = new AbortController()
    const reason = new Error('changed my mind')
    controller.abort(reason)
    let reports = 0
    await assert.rejects(VHD.convert(raw, out, { to: 'fixed', signal: controller.signal, onProgress: () => reports++ }), (error) => {
      assert.equal(error.name, 'AbortError')
      assert.equal(error.code, 'ABORT_ERR')
      assert.equal(error.cause, reason)
      assert.ok(error instanceof VHD.AbortError)
      return true
    })
    assert.equal(reports, 0)
    assert.equal(fs.existsSync(out), false)
  })

  test('aborting mid-way rejects with an AbortError and leaves no output (nor temporary) file', async () => {
    const raw = makeRaw(32 * MiB)
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'abort-'))
    const out = path.join(dir, 'out.vhd')
    const controller = new AbortController()
    let reports = 0
    const onProgress = ({ bytesDone, bytesTotal }) => {
      reports++
      if (bytesDone < bytesTotal) controller.abort()
    }
    await assert.rejects(VHD.convert(raw, out, { to: 'dynamic', signal: controller.signal, onProgress }), (error) => {
      assert.equal(error.name, 'AbortError')
      assert.equal(error.code, 'ABORT_ERR')
      assert.ok(error.cause instanceof Error && error.cause.name === 'AbortError', String(error.cause))
      return true
    })
    assert.ok(reports >= 1)
    assert.deepEqual(fs.readdirSync(dir), [], 'nothing is left in the destination folder')
  })

  test('a throwing onProgress cancels the conversion and rejects with what it threw', async () => {
    // Large (2 GiB, sparse with data in every chunk, so cheap to make yet read whole) so
    // that the conversion cannot finish before the cancel reaches it: a throw does not
    // undo a conversion that completed.
    const raw = tmp.file('throws-source').replace(/\.vhd$/, '.raw')
    dataInEveryChunk(raw, 2048 * MiB)
    const out = tmp.file('throws')
    const thrown = new Error('progress bar broke')
    await assert.rejects(VHD.convert(raw, out, { to: 'fixed', onProgress: () => { throw thrown } }), (error) => error === thrown)
    assert.equal(fs.existsSync(out), false)
  })

  test('the callback form', async () => {
    const raw = makeRaw(4 * MiB)
    const [error, report] = await viaCallback((cb) => VHD.convert(raw, tmp.file('cb'), { to: 'fixed' }, cb))
    assert.equal(error, null)
    assert.equal(report.virtualSize, 4 * MiB)
  })
})

describe('createVhdStream', () => {
  for (const type of ['fixed', 'dynamic']) {
    test(`${type}: the stream's bytes and length are exactly what convert writes`, async () => {
      const raw = makeRaw(10 * MiB + 512)
      const options = { uniqueId: FIXED_ID, timestamp: FIXED_TIME, blockSize: 1 * MiB }
      const out = tmp.file(type)
      await VHD.convert(raw, out, { to: type, ...options })
      const stream = await VHD.createVhdStream(raw, { type, ...options })
      assert.equal(stream.length, fs.statSync(out).size, 'the length is known before the first byte')
      const bytes = await streamToBuffer(stream)
      assert.equal(bytes.length, stream.length)
      assert.equal(sha256(bytes), sha256File(out))
      const info = await VHD.info(out)
      assert.equal(info.uniqueId, FIXED_ID)
      assert.equal(info.timestamp, '2024-01-02T03:04:05Z')
    })
  }

  test('the stream, saved to a file, reads through qemu as the source', { skip: skipQemu }, async () => {
    const raw = makeRaw(8 * MiB)
    const out = tmp.file('streamed')
    const stream = await VHD.createVhdStream(raw, { type: 'dynamic' })
    await require('node:stream/promises').pipeline(stream, fs.createWriteStream(out))
    assertSameAsRaw(raw, out)
  })

  test('a VHD source stays locked while streamed; destroy() closes it', async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[0, pattern(3 * MiB, 3)]])
    const stream = await VHD.createVhdStream(file, { type: 'fixed' })
    await rejectsWith(VHD.open(file), 'ERR_VHD_LOCKED')
    await new Promise((resolve) => stream.once('readable', resolve))
    stream.destroy()
    await new Promise((resolve) => stream.once('close', resolve))
    const disk = await VHD.open(file)
    await disk.close()
  })

  test('dynamic output: the planning pass reports progress and can be aborted', async () => {
    const raw = makeRaw(24 * MiB)
    const seen = []
    const stream = await VHD.createVhdStream(raw, { type: 'dynamic', onProgress: (p) => seen.push(p) })
    stream.destroy()
    assert.ok(seen.length >= 1)
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].bytesDone >= seen[i - 1].bytesDone)
    assert.equal(seen[seen.length - 1].bytesDone, seen[seen.length - 1].bytesTotal)

    // Aborted at the first report: the source is large (2 GiB, sparse with data in every
    // chunk, so cheap to make yet read whole) so that the scan cannot finish before the
    // abort reaches it, however busy the machine.
    const large = tmp.file('large').replace(/\.vhd$/, '.raw')
    dataInEveryChunk(large, 2048 * MiB)
    const controller = new AbortController()
    const onProgress = ({ bytesDone, bytesTotal }) => bytesDone < bytesTotal && controller.abort()
    await rejectsWith(VHD.createVhdStream(large, { type: 'dynamic', onProgress, signal: controller.signal }), 'ABORT_ERR')
  })

  test('azure implies fixed; a raw stream is refused', async () => {
    const raw = makeRaw(20 * MiB + 512)
    const stream = await VHD.createVhdStream(raw, { azure: true })
    assert.equal(stream.length, 21 * MiB + 512)
    stream.destroy()
    await rejectsWith(VHD.createVhdStream(raw, { type: 'raw' }), 'ERR_INVALID_ARG_VALUE', TypeError)
  })
})

// ---------------------------------------------------------------------------------------
// check, repair, info

describe('what the source and the destination are', () => {
  test("sourceFormat 'auto': a raw disk that starts like a VHD is read as raw, with a warning", async () => {
    const { file, bytes, innerDisk } = await rawDiskStartingLikeAVhd(tmp.dir)
    const out = tmp.file('looks-like').replace(/\.vhd$/, '.raw')
    const report = await VHD.convert(file, out, { to: 'raw' })
    assert.ok(fs.readFileSync(out).equals(bytes), 'the raw disk, byte for byte')
    assert.equal(report.sourceSize, 4 * MiB)
    assert.equal(report.detected.format, 'raw')
    assert.match(report.detected.reason, /footer copy/)
    assert.equal(report.warnings.length, 1)
    assert.match(report.warnings[0], /read as a raw disk.*'vhd'/s)
    const fixed = tmp.file('looks-like-fixed')
    await VHD.convert(file, fixed, { to: 'fixed' })
    assert.ok((await readAll(fixed)).equals(bytes))
    const stream = await VHD.createVhdStream(file, { type: 'fixed' })
    assert.equal(stream.length, 4 * MiB + 512)
    assert.equal(stream.detected.format, 'raw')
    assert.equal(stream.warnings.length, 1)
    stream.destroy()
    // Said to be a VHD, it is read through its footer copy: the 1 MiB disk it describes.
    const asVhd = tmp.file('as-vhd').replace(/\.vhd$/, '.raw')
    const said = await VHD.convert(file, asVhd, { to: 'raw', sourceFormat: 'vhd' })
    assert.equal(said.sourceSize, MiB)
    assert.deepEqual(said.detected, { format: 'vhd', reason: 'read as a VHD, as asked' })
    assert.deepEqual(said.warnings, [])
    assert.ok(fs.readFileSync(asVhd).equals(innerDisk))
    // An ordinary VHD is one.
    const { file: vhd, model } = await makeImage({ type: 'dynamic', size: 2 * MiB }, [[0, pattern(8192, 3)]])
    const flat = tmp.file('ordinary').replace(/\.vhd$/, '.raw')
    const ordinary = await VHD.convert(vhd, flat, { to: 'raw' })
    assert.deepEqual(ordinary.detected, { format: 'vhd', reason: 'it ends with a valid VHD footer' })
    assert.deepEqual(ordinary.warnings, [])
    assert.ok(fs.readFileSync(flat).equals(model))
  })

  test('a FIFO as image, source or output: every operation fails at once with ERR_VHD_FILE_TYPE', async () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'fifo-'))
    const fifo = mkfifo(path.join(dir, 'fifo'))
    const { file: image } = await makeImage({ type: 'dynamic', size: MiB })
    const raw = makeRaw(4 * MiB)
    // In a child process, so that a regression (a thread stuck in open) fails the test
    // instead of keeping this process alive for ever.
    const script = `
      const VHD = require(${JSON.stringify(path.resolve(__dirname, '..'))})
      const [fifo, image, raw] = ${JSON.stringify([fifo, image, raw])}
      const ops = {
        'convert onto it': () => VHD.convert(raw, fifo, { to: 'raw', overwrite: true }),
        'convert from it': () => VHD.convert(fifo, fifo + '.out', { to: 'raw' }),
        'createVhdStream from it': () => VHD.createVhdStream(fifo, { type: 'fixed' }),
        'create over it': () => VHD.create(fifo, { type: 'fixed', size: 1048576, overwrite: true }),
        'snapshot onto it': () => VHD.snapshot(image, fifo),
        'open read-only': () => VHD.open(fifo, { readOnly: true }),
        'open': () => VHD.open(fifo),
        'VHD.Image with r': () => new VHD.Image({ path: fifo, flags: 'r' }).open(),
        'VHD.Image with r+': () => new VHD.Image({ path: fifo, flags: 'r+' }).open(),
        'check': () => VHD.check(fifo),
        'info': () => VHD.info(fifo),
        'compact': () => VHD.compact(fifo),
        'commit': () => VHD.commit(fifo),
        'resize': () => VHD.resize(fifo, 2097152),
      }
      ;(async () => {
        const codes = {}
        for (const [name, op] of Object.entries(ops)) {
          codes[name] = await op().then(() => 'resolved', (e) => e.code + ': ' + e.message)
        }
        process.stdout.write(JSON.stringify(codes))
      })()
    `
    const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' })
    assert.equal(res.signal, null, `the operations hung (killed after 60 s): ${res.stdout}${res.stderr}`)
    assert.equal(res.status, 0, res.stderr)
    const codes = JSON.parse(res.stdout)
    for (const [name, result] of Object.entries(codes)) {
      assert.match(result, /^ERR_VHD_FILE_TYPE: .*fifo is a FIFO \(named pipe\)/, name)
    }
    assert.ok(fs.statSync(fifo).isFIFO())
    assert.deepEqual(fs.readdirSync(dir), ['fifo'], 'nothing else was made')
  })

  test('convert onto a socket or a directory is refused, with or without overwrite', async () => {
    const net = require('node:net')
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'socket-'))
    const socket = path.join(dir, 'socket')
    const server = net.createServer()
    await new Promise((resolve) => server.listen(socket, resolve))
    const folder = fs.mkdtempSync(path.join(dir, 'folder-'))
    const raw = makeRaw(4 * MiB)
    try {
      for (const [destination, found] of [[socket, /is a socket/], [folder, /is a directory/]]) {
        for (const overwrite of [false, true]) {
          await assert.rejects(VHD.convert(raw, destination, { to: 'fixed', overwrite }), (error) => {
            assert.equal(error.code, 'ERR_VHD_FILE_TYPE')
            assert.match(error.message, found)
            return true
          })
        }
      }
      assert.ok(fs.statSync(socket).isSocket())
      assert.deepEqual(fs.readdirSync(folder), [])
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })

  test('convert and create with overwrite onto a character device (or a link to one) are refused; it stays a device', { skip: NEEDS_ROOT }, async () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'chardev-'))
    const device = mknodNull(path.join(dir, 'null'))
    const link = path.join(dir, 'link')
    fs.symlinkSync(device, link)
    const raw = makeRaw(4 * MiB)
    for (const destination of [device, link]) {
      for (const to of ['raw', 'fixed', 'dynamic']) {
        await rejectsWith(VHD.convert(raw, destination, { to, overwrite: true }), 'ERR_VHD_FILE_TYPE')
      }
      await rejectsWith(VHD.create(destination, { type: 'dynamic', size: MiB, overwrite: true }), 'ERR_VHD_FILE_TYPE')
      assert.ok(fs.statSync(destination).isCharacterDevice())
    }
    assert.ok(fs.lstatSync(link).isSymbolicLink())
    assert.deepEqual(fs.readdirSync(dir).sort(), ['link', 'null'])
  })
})

describe('check', () => {
  test('a clean image: exit code 0, no findings at all (issue 15: not even the CHS geometry)', async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[0, pattern(4096, 1)]])
    const report = await VHD.check(file)
    assert.equal(report.path, file)
    assert.equal(report.format, 'vpc')
    assert.equal(report.type, 'dynamic')
    assert.equal(report.clean, true)
    assert.equal(report.exitCode, 0)
    assert.equal(report.corrupt, false)
    assert.equal(report.corruptions, 0)
    assert.equal(report.leaks, 0)
    assert.equal(report.parentLinkBroken, false)
    assert.deepEqual(report.findings, [])
    assert.equal('repairs' in report, false)
  })

  test('finds a bad footer checksum, and repair fixes it (qemu reads the data)', { skip: skipQemu }, async () => {
    const writes = [[0, pattern(64 * KiB, 4)], [3 * MiB, pattern(8 * KiB, 5)]]
    const { file, model } = await makeImage({ type: 'dynamic', size: 8 * MiB }, writes)
    patchFile(file, -512 + 64, 4, (bytes) => (bytes[3] ^= 0xff)) // the footer's checksum field
    const footerChecksumValid = () => {
      const footer = fs.readFileSync(file).subarray(-512)
      return footer.readUInt32BE(64) === vhdChecksum(footer, 64)
    }
    assert.equal(footerChecksumValid(), false)

    const found = await VHD.check(file)
    assert.equal(found.corrupt, true)
    assert.equal(found.exitCode, 2)
    const finding = found.findings.find((f) => f.code === 'footer-checksum')
    assert.ok(finding, JSON.stringify(found.findings))
    assert.equal(finding.severity, 'corrupt')
    assert.equal(typeof finding.message, 'string')

    const repaired = await VHD.check(file, { repair: true })
    assert.ok(repaired.findings.some((f) => f.code === 'footer-checksum'), 'findings are those before repairing')
    assert.ok(repaired.repairs.length >= 1)
    assert.ok(repaired.repairs.some((r) => r.code === 'footer-checksum'), JSON.stringify(repaired.repairs))
    assert.deepEqual(repaired.notRepaired, [])
    assert.deepEqual(repaired.forced, [])
    assert.equal(repaired.exitCode, 0)
    assert.equal(repaired.clean, true)
    assert.deepEqual(repaired.lost, [])
    assert.equal(footerChecksumValid(), true, 'the footer at the end is right again')
    assertSameAsRaw(writeModel(model), file)
    assert.equal((await VHD.check(file)).exitCode, 0)
  })

  test('a differencing image whose parent moved: a broken parent link (exit code 4), unless the parent is named or skipped', async () => {
    const { file: base } = await makeImage({ type: 'fixed', size: 4 * MiB })
    const childFile = tmp.file('child')
    await (await VHD.create(childFile, { type: 'differencing', parent: base })).close()
    const moved = `${base}.moved`
    fs.renameSync(base, moved)
    const lost = await VHD.check(childFile)
    assert.equal(lost.exitCode, 4)
    assert.equal(lost.parentLinkBroken, true)
    assert.ok(lost.findings.some((f) => f.severity === 'corrupt' && /parent/.test(f.code)), JSON.stringify(lost.findings))
    assert.equal((await VHD.check(childFile, { parents: [moved] })).exitCode, 0)
    assert.equal((await VHD.check(childFile, { parent: moved })).exitCode, 0)
    assert.equal((await VHD.check(childFile, { skipParent: true })).exitCode, 0)
  })

  test('an image open for writing elsewhere is refused', async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 4 * MiB })
    const disk = await VHD.open(file)
    try {
      await rejectsWith(VHD.check(file), 'ERR_VHD_LOCKED')
      await rejectsWith(VHD.check(file, { repair: true }), 'ERR_VHD_LOCKED')
    } finally {
      await disk.close()
    }
  })

  test('past 1000 findings of a kind: a summary with the number omitted, and the same for repairs and lost ranges', async () => {
    const file = tmp.file('many')
    await imageWithManyFindings(file, { overlaps: 1500, outside: 1200 })
    const ofKind = (list, code) => list.filter((f) => f.code === code)
    /** The first 1000 of `code` listed (no `omitted`, in order), then one summary of `omitted` more. */
    const assertSummedUp = (list, code, omitted) => {
      const listed = ofKind(list, code)
      assert.equal(listed.length, 1001, code)
      assert.ok(listed.slice(0, 1000).every((f) => !('omitted' in f)))
      assert.equal(listed[1000].omitted, omitted)
      return listed
    }

    const report = await VHD.check(file)
    assert.equal(report.exitCode, 2)
    const overlaps = assertSummedUp(report.findings, 'overlap', 500)
    assert.match(overlaps[0].message, /^block 1 .* overlaps block 0 /)
    assert.match(overlaps[999].message, /^block 1000 .* overlaps block 0 /)
    assert.equal(overlaps[1000].severity, 'corrupt')
    assert.equal('offset' in overlaps[1000], false)
    assert.match(overlaps[1000].message, /^… and 500 more overlap findings, not listed/)
    assertSummedUp(report.findings, 'bitmap-out-of-range', 200)

    // Dropping 1200 allocated blocks loses data: refused, the file untouched, unless forced.
    const bytes = fs.readFileSync(file)
    await assert.rejects(VHD.check(file, { repair: true }), (error) => {
      assert.equal(error.code, 'ERR_VHD_REPAIR_REFUSED', error.message)
      assert.match(error.message, /^the repair of .*many.* was refused, and nothing was written: 1200 BAT entries point at blocks that are not in the file and would be set to unallocated: bytes 6148096\.\.6152192, .*Keep a copy of the file; to do it anyway, pass \{ force: true \}$/)
      return true
    })
    assert.ok(fs.readFileSync(file).equals(bytes), 'a refused repair wrote')
    await rejectsWith(VHD.check(file, { force: true }), 'ERR_INVALID_ARG_VALUE', TypeError)
    const repaired = await VHD.check(file, { repair: true, force: true })
    assert.match(repaired.forced[0], /^1200 BAT entries point at blocks that are not in the file/)
    assertSummedUp(repaired.findings, 'overlap', 500)
    const drops = assertSummedUp(repaired.repairs, 'bitmap-out-of-range', 200)
    assert.match(drops[0].description, /^BAT entry 1501 pointed at sector 4026531840/)
    // A summary's offset is that of the first change it stands for.
    assert.equal(drops[1000].offset, 1536 + 4 * (1501 + 2 * 1000))
    assert.equal(repaired.lost.length, 1000)
    assert.deepEqual(repaired.lost[0], { offset: 1501 * 4096, length: 4096 })
    assert.equal(repaired.lostOmitted, 200)
    // The overlaps are not repaired.
    assertSummedUp(repaired.notRepaired, 'overlap', 500)
    assert.equal(repaired.exitCode, 2)
    const after = await VHD.check(file)
    assert.equal(ofKind(after.findings, 'bitmap-out-of-range').length, 0)
    assert.equal('lostOmitted' in after, false)
  })

  test('a missing file rejects with ENOENT; the callback form', async () => {
    await rejectsWith(VHD.check(path.join(tmp.dir, 'nope.vhd')), 'ENOENT')
    const { file } = await makeImage({ type: 'fixed', size: 4 * MiB })
    const [error, report] = await viaCallback((cb) => VHD.check(file, cb))
    assert.equal(error, null)
    assert.equal(report.exitCode, 0)
  })
})

describe('info', () => {
  test('describes a dynamic image as qemu and the file show it', { skip: skipQemu }, async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 10 * MiB, blockSize: 512 * KiB }, [
      [0, pattern(1000, 1)],
      [3 * MiB, pattern(600 * KiB, 2)],
    ])
    const info = await VHD.info(file)
    assert.equal(info.type, 'dynamic')
    assert.equal(info.virtualSize, qemuVirtualSize(file))
    assert.equal(info.blockSize, 512 * KiB)
    assert.equal(info.fileSize, fs.statSync(file).size)
    // Block 0, and blocks 6 and 7 for the 600 KiB at 3 MiB.
    assert.equal(info.allocatedBlocks, 3)
    assert.equal(info.allocatedBytes, 3 * 512 * KiB)
    assert.equal(info.creator.application, 'win') // trailing spaces trimmed, as the CLI prints it
    assert.equal(info.parent, null)
    assert.deepEqual(info.chain, [{ path: file, type: 'dynamic', virtualSize: 10 * MiB }])
    assert.equal(info.checksums.footer.valid, true)
    assert.equal(info.checksums.header.valid, true)
    assert.equal(info.geometry.size, info.geometry.cylinders * info.geometry.heads * info.geometry.sectorsPerTrack * 512)
    assert.equal(info.footer.currentSize, 10 * MiB)
    assert.equal(info.header.blockSize, 512 * KiB)
    assert.deepEqual(JSON.parse(JSON.stringify(info)), info, 'plain JSON values')
  })

  test('names the parent of a differencing image', async () => {
    const { file: base } = await makeImage({ type: 'fixed', size: 4 * MiB })
    const child = tmp.file('child')
    await (await VHD.create(child, { type: 'differencing', parent: base })).close()
    const info = await VHD.info(child)
    assert.equal(info.type, 'differencing')
    assert.equal(info.parent.path, fs.realpathSync(base))
    assert.equal(info.parent.name, path.basename(base))
    assert.equal(info.parent.uniqueId, (await VHD.info(base)).uniqueId)
    assert.deepEqual(info.chain.map((c) => c.type), ['differencing', 'fixed'])
    assert.ok(info.parent.locators.some((l) => l.platformCode === 'W2ru' && l.path.endsWith(path.basename(base))))
    const fixed = await VHD.info(base)
    assert.equal(fixed.header, null)
    assert.equal(fixed.footer.dataOffset, null)
    assert.equal(fixed.blockSize, null)
    assert.equal(fixed.allocatedBytes, 4 * MiB)
  })

  test('says whether the child records its parent\'s time stamp, as the CLI does', async () => {
    const { file: base } = await makeImage({ type: 'dynamic', size: 4 * MiB })
    const child = tmp.file('child')
    await (await VHD.create(child, { type: 'differencing', parent: base })).close()
    assert.equal((await VHD.info(child)).parent.timestampRecorded, true)
    // As Windows diskpart writes it: a parent time stamp of 0 (header offset 56).
    patchFile(child, 512, 1024, (header) => {
      header.writeUInt32BE(0, 56)
      header.writeUInt32BE(vhdChecksum(header, 36), 36)
    })
    const info = await VHD.info(child)
    assert.equal(info.parent.timestampRecorded, false)
    const cli = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'vhd.js'), 'info', '--json', child], { encoding: 'utf8' })
    assert.equal(cli.status, 0, cli.stderr)
    assert.deepEqual(Object.keys(JSON.parse(cli.stdout).parent), Object.keys(info.parent))
    assert.equal(JSON.parse(cli.stdout).parent.timestampRecorded, false)
  })

  // One shape, built once in the core (ImageInfo::to_json): VHD.info is what the CLI prints,
  // value for value and in the same key order, for every type and for a crafted 64-bit
  // field above 2^53 (rounded by the binding exactly as JSON.parse rounds the CLI's text).
  test('is the CLI\'s info --json object, key for key and value for value', async () => {
    const { file: fixed } = await makeImage({ type: 'fixed', size: 4 * MiB })
    const { file: dynamic } = await makeImage({ type: 'dynamic', size: 10 * MiB, blockSize: 512 * KiB }, [[MiB, pattern(4096, 3)]])
    const child = tmp.file('child')
    await (await VHD.create(child, { type: 'differencing', parent: dynamic })).close()
    // A footer whose original size (offset 40) is 2^60 + 1: not exact as a Number.
    patchFile(fixed, fs.statSync(fixed).size - 512, 512, (footer) => {
      footer.writeBigUInt64BE(2n ** 60n + 1n, 40)
      footer.writeUInt32BE(vhdChecksum(footer, 64), 64)
    })
    for (const file of [fixed, dynamic, child]) {
      const cli = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'vhd.js'), 'info', '--json', file], { encoding: 'utf8' })
      assert.equal(cli.status, 0, cli.stderr)
      const printed = JSON.parse(cli.stdout)
      const info = await VHD.info(file)
      assert.deepStrictEqual(info, printed, file)
      assert.deepEqual(JSON.stringify(info), JSON.stringify(printed), `${file}: the same key order`)
    }
    assert.equal((await VHD.info(fixed)).footer.originalSize, 2 ** 60)
  })

  // A child whose parent is missing is still described, as `vhd info` describes it (the
  // same object), with what is wrong with the parent; a parent outside parentRoot is refused.
  test('describes a child whose parent is missing, as vhd info does', async () => {
    const { file: parent } = await makeImage({ type: 'dynamic', size: 4 * MiB })
    const child = tmp.file('orphan')
    await (await VHD.create(child, { type: 'differencing', parent })).close()
    const whole = await VHD.info(child)
    assert.equal(whole.parentProblem, null)
    fs.renameSync(parent, `${parent}.moved`)
    const info = await VHD.info(child)
    assert.equal(info.type, 'differencing')
    assert.equal(info.virtualSize, 4 * MiB)
    assert.equal(info.parent, null)
    assert.deepEqual(info.chain.map((c) => c.path), [child])
    assert.equal(info.parentProblem.code, 'ERR_VHD_PARENT_NOT_FOUND')
    assert.match(info.parentProblem.message, /parent/)
    const cli = spawnSync(process.execPath, [path.join(__dirname, '..', 'bin', 'vhd.js'), 'info', '--json', child], { encoding: 'utf8' })
    assert.equal(cli.status, 0, cli.stderr)
    assert.deepStrictEqual(info, JSON.parse(cli.stdout))
    fs.renameSync(`${parent}.moved`, parent)
    const elsewhere = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'vhd-root-'))
    try {
      await assert.rejects(VHD.info(child, { parentRoot: elsewhere }), { code: 'ERR_VHD_PARENT_OUTSIDE_ROOT' })
    } finally {
      fs.rmSync(elsewhere, { recursive: true })
    }
  })
})

// ---------------------------------------------------------------------------------------
// A throw from onProgress cancels only what has not happened

describe('onProgress throwing at the last report (bytesDone === bytesTotal)', () => {
  const thrown = new Error('progress bar broke at 100 %')
  const throwAtEnd = ({ bytesDone, bytesTotal }) => {
    if (bytesDone === bytesTotal) throw thrown
  }

  /** `{ value }` or `{ error }`. */
  const settle = (promise) => promise.then((value) => ({ value }), (error) => ({ error }))

  /**
   * The operation either completed (it resolves: its work is on disk, `done()` holds) or,
   * had the cancel reached the core before its last unit of work (a window of a few
   * instructions), it rejects with what was thrown and `notDone()` holds. Before the fix it
   * rejected although the work was done.
   */
  async function completesOrCancelsCleanly(promise, done, notDone) {
    const { value, error } = await settle(promise)
    if (error === undefined) return done(value)
    assert.equal(error, thrown, String(error))
    await notDone()
  }

  test('convert resolves: the output is complete', async () => {
    const raw = makeRaw(12 * MiB)
    const out = tmp.file('throw-at-end')
    await completesOrCancelsCleanly(
      VHD.convert(raw, out, { to: 'dynamic', onProgress: throwAtEnd }),
      async (report) => {
        assert.equal(report.virtualSize, 12 * MiB)
        assert.ok((await readAll(out)).equals(fs.readFileSync(raw)))
      },
      () => assert.equal(fs.existsSync(out), false, 'a cancelled convert leaves no output'),
    )
  })

  test('compact resolves: the image is compacted', async () => {
    const blockSize = 512 * KiB
    const { file, model } = await makeImage({ type: 'dynamic', size: 8 * MiB, blockSize }, [
      [0, pattern(blockSize, 1)],
      [blockSize, pattern(blockSize, 3)],
      [blockSize, Buffer.alloc(blockSize)],
    ])
    const before = sha256File(file)
    await completesOrCancelsCleanly(
      VHD.compact(file, { onProgress: throwAtEnd }),
      (report) => assert.equal(report.blocksAfter, 1),
      () => assert.equal(sha256File(file), before),
    )
    assert.ok((await readAll(file)).equals(model))
  })

  test('commit resolves: the parent holds the data and the child is empty', async () => {
    const { file: base, model } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[0, pattern(2 * MiB, 1)]])
    const childFile = tmp.file('child-throw')
    const child = await VHD.snapshot(base, childFile)
    const data = pattern(3 * MiB, 9)
    await child.write(data, MiB)
    await child.close()
    data.copy(model, MiB)
    await completesOrCancelsCleanly(
      VHD.commit(childFile, { onProgress: throwAtEnd }),
      async (report) => {
        assert.equal(report.bytesCommitted, 3 * MiB)
        assert.equal((await VHD.info(childFile)).allocatedBlocks, 0, 'the child is emptied')
      },
      async () => assert.ok((await VHD.info(childFile)).allocatedBlocks > 0, 'a cancelled commit keeps the child'),
    )
    assert.ok((await readAll(childFile)).equals(model))
  })

  test('resize (a shrink that checks the cut-off part) resolves: the image is shrunk', async () => {
    const { file, model } = await makeImage({ type: 'fixed', size: 8 * MiB }, [[0, pattern(MiB, 4)]])
    await completesOrCancelsCleanly(
      VHD.resize(file, 4 * MiB, { onProgress: throwAtEnd }),
      (report) => assert.equal(report.newSize, 4 * MiB),
      async () => assert.equal((await VHD.info(file)).virtualSize, 8 * MiB),
    )
    const size = (await VHD.info(file)).virtualSize
    assert.ok((await readAll(file)).equals(model.subarray(0, size)))
  })

  test('createVhdStream rejects and releases its source at once (no wait for garbage collection)', async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[0, pattern(3 * MiB, 3)]])
    await assert.rejects(VHD.createVhdStream(file, { type: 'dynamic', onProgress: throwAtEnd }), (error) => error === thrown)
    const disk = await VHD.open(file)
    await disk.close()
  })
})

// ---------------------------------------------------------------------------------------
// compact, resize

describe('compact', () => {
  test('drops all-zero blocks; qemu reads the same before and after', { skip: skipQemu }, async () => {
    const blockSize = 512 * KiB
    // Blocks 1 and 3 are allocated by data, then overwritten with zeros.
    const { file, model } = await makeImage({ type: 'dynamic', size: 8 * MiB, blockSize }, [
      [0, pattern(blockSize, 1)],
      [blockSize, pattern(blockSize, 3)],
      [blockSize, Buffer.alloc(blockSize)],
      [3 * blockSize, pattern(4096, 4)],
      [3 * blockSize, Buffer.alloc(4096)],
      [5 * blockSize + 100, pattern(5000, 2)],
    ])
    const before = fs.statSync(file).size
    const seen = []
    const report = await VHD.compact(file, { onProgress: (p) => seen.push(p) })
    assert.equal(report.blocksBefore, 4)
    assert.equal(report.blocksAfter, 2)
    assert.equal(report.fileSizeBefore, before)
    assert.equal(report.fileSizeAfter, fs.statSync(file).size)
    assert.ok(report.fileSizeAfter < before)
    assertSameAsRaw(writeModel(model), file)
    assert.equal((await VHD.check(file)).exitCode, 0)
    if (seen.length > 0) assert.equal(seen[seen.length - 1].bytesDone, seen[seen.length - 1].bytesTotal)
  })
})

describe('resize', () => {
  test('grows a dynamic image: qemu sees the new size, the data and zeros after it', { skip: skipQemu }, async () => {
    const { file, model } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[8 * MiB - 4096, pattern(4096, 3)]])
    const report = await VHD.resize(file, 16n * BigInt(MiB))
    assert.equal(report.oldSize, 8 * MiB)
    assert.equal(report.newSize, 16 * MiB)
    assert.equal(report.fileSize, fs.statSync(file).size)
    assert.equal(qemuVirtualSize(file), 16 * MiB)
    assertSameAsRaw(writeModel(Buffer.concat([model, Buffer.alloc(8 * MiB)])), file)
  })

  test('grows a fixed image', { skip: skipQemu }, async () => {
    const { file, model } = await makeImage({ type: 'fixed', size: 4 * MiB }, [[0, pattern(4096, 4)]])
    await VHD.resize(file, 6 * MiB)
    assert.equal(qemuVirtualSize(file), 6 * MiB)
    assertSameAsRaw(writeModel(Buffer.concat([model, Buffer.alloc(2 * MiB)])), file)
  })

  test('shrinking over data is refused without force, and done with it', { skip: skipQemu }, async () => {
    const { file, model } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [
      [0, pattern(4096, 5)],
      [6 * MiB, pattern(4096, 6)],
    ])
    const sum = sha256File(file)
    await assert.rejects(VHD.resize(file, 4 * MiB), (error) => typeof error.code === 'string' && error.code.startsWith('ERR_VHD_'))
    assert.equal(sha256File(file), sum, 'a refused resize changes nothing')
    await VHD.resize(file, 4 * MiB, { force: true })
    assert.equal(qemuVirtualSize(file), 4 * MiB)
    assertSameAsRaw(writeModel(model.subarray(0, 4 * MiB)), file)
  })
})

// ---------------------------------------------------------------------------------------
// snapshot, commit, rebase (chains: pyvhdi reads them)

describe('chains', () => {
  test('snapshot: a differencing child, open read-write; the base is left as it was', { skip: skipPyvhdi }, async () => {
    const { file: base, model } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[0, pattern(MiB, 1)]])
    const sum = sha256File(base)
    const childFile = tmp.file('snap')
    const child = await VHD.snapshot(base, childFile)
    assert.ok(child instanceof VHD.Differencing)
    assert.equal(child.isOpen, true)
    const data = pattern(64 * KiB, 2)
    await child.write(data, 512 * KiB) // whole 4 KiB units (libvhdi's bitmap bug)
    await child.close()
    data.copy(model, 512 * KiB)
    assert.equal(sha256File(base), sum)
    assert.ok(pyvhdiRead(childFile, base).equals(model))
    assert.ok((await readAll(childFile)).equals(model))
    await rejectsWith(VHD.snapshot(base, childFile), 'ERR_VHD_EXISTS')
  })

  test('commit: the parent gets the child\'s data (qemu reads it), the chain reads as before', { skip: skipQemu || skipPyvhdi }, async () => {
    const { file: base, model } = await makeImage({ type: 'dynamic', size: 8 * MiB }, [[0, pattern(2 * MiB, 1)]])
    const childFile = tmp.file('child')
    const child = await VHD.snapshot(base, childFile)
    const data = pattern(3 * MiB, 9)
    await child.write(data, MiB)
    await child.close()
    data.copy(model, MiB)
    const seen = []
    const report = await VHD.commit(childFile, { onProgress: (p) => seen.push(p) })
    assert.equal(report.parent, fs.realpathSync(base))
    assert.equal(report.bytesCommitted, 3 * MiB)
    assert.equal(report.childFileSize, fs.statSync(childFile).size)
    assertSameAsRaw(writeModel(model), base)
    assert.ok(pyvhdiRead(childFile, base).equals(model))
    assert.equal((await VHD.info(childFile)).allocatedBlocks, 0, 'the child is emptied')
    assert.equal(seen[seen.length - 1].bytesDone, 3 * MiB)
  })

  test('commit refuses an image that is not a differencing one', async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 4 * MiB })
    await rejectsWith(VHD.commit(file), 'ERR_VHD_WRONG_TYPE')
  })

  test('rebase: a child whose parent moved opens again, and reads through the moved parent', { skip: skipPyvhdi }, async () => {
    const { file: base, model } = await makeImage({ type: 'fixed', size: 4 * MiB }, [[0, pattern(8 * KiB, 1)]])
    const childFile = tmp.file('child')
    await (await VHD.create(childFile, { type: 'differencing', parent: base })).close()
    const movedDir = fs.mkdtempSync(path.join(tmp.dir, 'moved-'))
    const moved = path.join(movedDir, 'renamed-base.vhd')
    fs.renameSync(base, moved)
    await rejectsWith(VHD.open(childFile, { readOnly: true }), 'ERR_VHD_PARENT_NOT_FOUND')
    await VHD.rebase(childFile, moved)
    const info = await VHD.info(childFile)
    assert.equal(info.parent.path, fs.realpathSync(moved))
    assert.equal(info.parent.name, 'renamed-base.vhd')
    assert.ok((await readAll(childFile)).equals(model))
    assert.ok(pyvhdiRead(childFile, moved).equals(model))
  })

  test('rebase refuses a parent that is another image', async () => {
    const { file: base } = await makeImage({ type: 'fixed', size: 4 * MiB })
    const { file: other } = await makeImage({ type: 'fixed', size: 4 * MiB })
    const childFile = tmp.file('child')
    await (await VHD.create(childFile, { type: 'differencing', parent: base })).close()
    const sum = sha256File(childFile)
    await rejectsWith(VHD.rebase(childFile, other), 'ERR_VHD_PARENT_MISMATCH')
    assert.equal(sha256File(childFile), sum)
  })
})

// ---------------------------------------------------------------------------------------
// discard and getAllocatedRanges

describe('discard and getAllocatedRanges', () => {
  test('dynamic: discarding a whole block unallocates it; it reads as zeros (qemu too)', { skip: skipQemu }, async () => {
    const blockSize = 512 * KiB
    const { file, model } = await makeImage({ type: 'dynamic', size: 4 * MiB, blockSize }, [
      [0, pattern(3 * blockSize, 1)],
      [6 * blockSize, pattern(4096, 2)],
    ])
    const disk = await VHD.open(file)
    const before = await disk.getAllocatedRanges()
    assert.deepEqual(coverage(before), [
      [0, 3 * blockSize, 0],
      [6 * blockSize, blockSize, 0],
    ])
    await disk.discard(blockSize, blockSize)
    // Half a block: stays allocated, zeroed.
    await disk.discard(2 * blockSize, 4096)
    const after = await disk.getAllocatedRanges()
    assert.deepEqual(coverage(after), [
      [0, blockSize, 0],
      [2 * blockSize, blockSize, 0],
      [6 * blockSize, blockSize, 0],
    ])
    assert.equal(disk.allocatedBlocks, 3)
    model.fill(0, blockSize, 2 * blockSize + 4096)
    assert.ok((await disk.read(0, disk.size)).buffer.equals(model))
    await disk.close()
    assertSameAsRaw(writeModel(model), file)
    // The freed block's space is reused by the next allocation; until then check counts it
    // as leaked (wasted, nothing lost), and compact gives it back.
    assert.equal((await VHD.check(file)).corrupt, false)
    await VHD.compact(file)
    assert.equal((await VHD.check(file)).exitCode, 0)
    assertSameAsRaw(writeModel(model), file)
  })

  test('differencing: discarded sectors show the parent again; ranges name the image that holds them', { skip: skipPyvhdi }, async () => {
    const { file: base, model } = await makeImage({ type: 'dynamic', size: 4 * MiB }, [[0, pattern(2 * MiB, 1)]])
    const child = await VHD.snapshot(base, tmp.file('child'))
    await child.write(pattern(64 * KiB, 2), 0)
    let ranges = await child.getAllocatedRanges()
    assert.deepEqual(coverage(ranges), [
      [0, 64 * KiB, 0],
      [64 * KiB, 2 * MiB - 64 * KiB, 1],
    ])
    await child.discard(0, 64 * KiB)
    ranges = await child.getAllocatedRanges()
    assert.deepEqual(coverage(ranges), [[0, 2 * MiB, 1]])
    assert.ok((await child.read(0, child.size)).buffer.equals(model))
    await child.close()
    assert.ok(pyvhdiRead(child.path, base).equals(model))
  })

  test('a fixed image is all allocated; discard writes zeros', async () => {
    const { file, model } = await makeImage({ type: 'fixed', size: 2 * MiB }, [[0, pattern(8192, 1)]])
    const disk = await VHD.open(file)
    assert.deepEqual((await disk.getAllocatedRanges()).map(({ offset, length, fileOffset }) => [offset, length, fileOffset]), [
      [0, 2 * MiB, 0],
    ])
    await disk.discard(512, 1024)
    model.fill(0, 512, 1536)
    assert.ok((await disk.read(0, disk.size)).buffer.equals(model))
    await rejectsWith(disk.discard(2 * MiB - 512, 1024), 'ERR_VHD_OUT_OF_RANGE', RangeError)
    const [error, ranges] = await viaCallback((cb) => disk.getAllocatedRanges(cb))
    assert.equal(error, null)
    assert.equal(ranges.length, 1)
    await disk.close()
    await rejectsWith(disk.discard(0, 512), 'ERR_VHD_CLOSED')
    await rejectsWith(disk.getAllocatedRanges(), 'ERR_VHD_CLOSED')
    await rejectsWith(disk.allocatedRanges().next(), 'ERR_VHD_CLOSED')
  })
})

describe('allocatedRanges(): the ranges as an async iterator', () => {
  async function iterate(disk) {
    const ranges = []
    for await (const range of disk.allocatedRanges()) ranges.push(range)
    return ranges
  }

  test('the same ranges as getAllocatedRanges: fixed, dynamic, and a chain whose runs cross the batches', async () => {
    const { file: fixed } = await makeImage({ type: 'fixed', size: 9 * MiB }, [[0, pattern(8192, 1)]])
    const { file: base } = await makeImage({ type: 'dynamic', size: 24 * MiB, blockSize: 512 * KiB }, [
      [0, pattern(5 * MiB, 2)],
      [9 * MiB - 512, pattern(3 * MiB, 3)],
      [23 * MiB, pattern(4096, 4)],
    ])
    const childFile = tmp.file('iterated-child')
    const child = await VHD.snapshot(base, childFile)
    let seed = 7
    for (let i = 0; i < 300; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      const offset = (seed % (24 * 2048 - 64)) * 512
      await child.write(pattern(512 * (1 + (seed % 37)), i), offset)
    }
    await child.write(pattern(MiB, 9), 4 * MiB - 4096)
    await child.close()
    for (const file of [fixed, base, childFile]) {
      const disk = await VHD.open(file, { readOnly: true })
      const listed = await disk.getAllocatedRanges()
      assert.ok(listed.length > 0)
      assert.deepEqual(await iterate(disk), listed, file)
      await disk.close()
    }
    const disk = await VHD.open(childFile, { readOnly: true })
    const ranges = await iterate(disk)
    assert.ok(ranges.some((r) => r.depth === 0) && ranges.some((r) => r.depth === 1))
    assert.ok(ranges.length > 100, `${ranges.length} ranges`)
    // Breaking out of the loop ends the walk; a new one starts over.
    for await (const range of disk.allocatedRanges()) {
      assert.deepEqual(range, ranges[0])
      break
    }
    await disk.close()
  })

  /**
   * A differencing child of `blocks` 2 MiB blocks whose sector bitmaps mark every other
   * sector present (2048 ranges a block), over an empty dynamic parent: crafted, the BAT and
   * bitmaps written directly and the data left as holes, as a hostile image would be.
   */
  async function alternatingBitmaps(blocks) {
    const BLOCK = 2 * MiB
    const { file: base } = await makeImage({ type: 'dynamic', size: blocks * BLOCK })
    const child = tmp.file('alternating')
    await (await VHD.create(child, { type: 'differencing', parent: base })).close()
    const fd = fs.openSync(child, 'r+')
    try {
      const footerAt = fs.fstatSync(fd).size - 512
      const footer = Buffer.alloc(512)
      fs.readSync(fd, footer, 0, 512, footerAt)
      const header = Buffer.alloc(1024)
      fs.readSync(fd, header, 0, 1024, Number(footer.readBigUInt64BE(16)))
      const table = Buffer.alloc(blocks * 4)
      const bitmap = Buffer.alloc(512, 0xaa)
      for (let block = 0; block < blocks; block++) {
        const at = footerAt + block * (512 + BLOCK)
        table.writeUInt32BE(at / 512, block * 4)
        fs.writeSync(fd, bitmap, 0, 512, at)
      }
      fs.writeSync(fd, table, 0, table.length, Number(header.readBigUInt64BE(16)))
      fs.writeSync(fd, footer, 0, 512, footerAt + blocks * (512 + BLOCK))
    } finally {
      fs.closeSync(fd)
    }
    return child
  }

  test('a crafted image with more than 2^20 ranges: the list is refused, pointing at the iterator, which walks them all', async () => {
    const blocks = 513
    const file = await alternatingBitmaps(blocks)
    const disk = await VHD.open(file, { readOnly: true })
    await assert.rejects(disk.getAllocatedRanges(), (error) => {
      assert.equal(error.code, 'ERR_VHD_TOO_MANY_RANGES')
      assert.match(error.message, /more than 1048576 allocated ranges/)
      assert.match(error.message, /disk\.allocatedRanges\(\)/)
      return true
    })
    let count = 0
    for await (const range of disk.allocatedRanges()) {
      if (range.offset !== count * 1024 || range.length !== 512 || range.depth !== 0) {
        assert.fail(`range ${count}: ${JSON.stringify(range)}`)
      }
      count++
    }
    assert.equal(count, blocks * 2048)
    await disk.close()
  })
})

// ---------------------------------------------------------------------------------------
// Arguments

describe('bad arguments', () => {
  const raw = () => makeRaw(4 * MiB)

  test('convert', async () => {
    const src = raw()
    const out = tmp.file('args')
    await rejectsWith(VHD.convert(src, out), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.convert(src, out, 'fixed'), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.convert(src, out, {}), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'vhdx' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(42, out, { to: 'fixed' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.convert(src, 'a\u0000b', { to: 'fixed' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'dynamic', azure: true }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'dynamic', blockSize: -1 }), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(VHD.convert(src, out, { to: 'dynamic', blockSize: 3000 }), 'ERR_VHD_INVALID_ARGUMENT', RangeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', sourceFormat: 'qcow2' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', uniqueId: Buffer.alloc(15) }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', uniqueId: 'not-a-uuid' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', timestamp: new Date('1999-01-01') }), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', signal: {} }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', onProgress: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.convert(src, out, { to: 'fixed', overwrite: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    assert.throws(() => VHD.convert(src, out, {}, () => {}), { code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => VHD.convert(src, out, { to: 'fixed' }, 'cb'), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.equal(fs.existsSync(out), false)
  })

  test("format names are vhd-core's: the messages list the core's names, the CLI takes the same", async () => {
    const names = require('../binding.js').names()
    assert.deepEqual(names, {
      diskTypes: ['fixed', 'dynamic', 'differencing'],
      outputFormats: ['raw', 'fixed', 'dynamic'],
      sourceFormats: ['auto', 'raw', 'vhd'],
    })
    const src = raw()
    const out = tmp.file('names')
    await assert.rejects(VHD.convert(src, out, { to: 'vhdx' }), {
      message: /must be 'raw', 'fixed', 'dynamic'\./,
    })
    await assert.rejects(VHD.convert(src, out, { to: 'fixed', sourceFormat: 'qcow2' }), {
      message: /must be 'auto', 'raw', 'vhd'\./,
    })
    await assert.rejects(VHD.createVhdStream(src, { type: 'raw' }), { message: /must be 'fixed', 'dynamic'\./ })
    await assert.rejects(VHD.create(tmp.file('names-create'), { type: 'vhdx', size: MiB }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /must be 'fixed', 'dynamic', 'differencing' or a VHD\.TYPE\./,
    })
  })

  test('the other operations', async () => {
    const { file } = await makeImage({ type: 'dynamic', size: 4 * MiB })
    await rejectsWith(VHD.createVhdStream(raw(), { type: 'vhdx' }), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.createVhdStream(raw()), 'ERR_INVALID_ARG_VALUE', TypeError)
    await rejectsWith(VHD.check(file, { repair: 1 }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.check(file, 'repair'), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.resize(file, '64M'), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.resize(file, -512), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(VHD.resize(file, 1.5), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(VHD.resize(file, 8 * MiB, { force: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.compact(file, { signal: 'stop' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.commit(null), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.rebase(file, 7), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.snapshot(file, undefined), 'ERR_INVALID_ARG_TYPE', TypeError)
    await rejectsWith(VHD.info(file, { parents: 'x' }), 'ERR_INVALID_ARG_TYPE', TypeError)
    const disk = await VHD.open(file)
    await rejectsWith(disk.discard(-1, 512), 'ERR_OUT_OF_RANGE', RangeError)
    await rejectsWith(disk.discard(0, '512'), 'ERR_INVALID_ARG_TYPE', TypeError)
    assert.throws(() => disk.getAllocatedRanges('cb'), { code: 'ERR_INVALID_ARG_TYPE' })
    await disk.close()
    // A pre-aborted signal is checked after the arguments, and the in-place ones honour it too.
    const controller = new AbortController()
    controller.abort()
    await rejectsWith(VHD.compact(file, { signal: controller.signal }), 'ABORT_ERR')
    await rejectsWith(VHD.resize(file, 8 * MiB, { signal: controller.signal }), 'ABORT_ERR')
    await rejectsWith(VHD.commit(file, { signal: controller.signal }), 'ABORT_ERR')
    await rejectsWith(VHD.createVhdStream(raw(), { type: 'fixed', signal: controller.signal }), 'ABORT_ERR')
    await rejectsWith(VHD.resize(file, -1, { signal: controller.signal }), 'ERR_OUT_OF_RANGE', RangeError)
  })
})
