'use strict'

// `VHD.serve` against real NBD clients (no mocks): libnbd's nbdinfo and nbdcopy (libnbd-bin)
// and qemu's qemu-io (qemu-utils), each run as a child process against the server this
// process runs. Then:
// - a dynamic image and a depth-3 differencing chain: nbdcopy of the export equals
//   `VHD.convert(..., { to: 'raw' })` and our own read; nbdinfo --json sees the size and the
//   base:allocation context, nbdinfo --map the runs getAllocatedRanges() gives;
// - qemu-io writes (patterns at unaligned offsets, write -z, discard, flush) into the
//   chain, then our API reads back what was written, the parents are byte-identical and
//   VHD.check is clean;
// - a read-only export (readOnly, or a read-only disk) refuses writes; the file is unchanged;
// - an open disk served and used from JavaScript at once: each sees the other's writes;
//   disk.close() closes the server first;
// - close() with a client connected; a taken socket or port is EADDRINUSE; argument errors;
// - the event loop runs while a client copies (the copy goes through a pipe this process
//   reads, so it cannot end unless the loop runs), and the server serves while the
//   JavaScript thread is blocked (it never needs it).
// Without the tools the tests are skipped (SKIPPED: on stderr), except under CI, where that is
// a failure.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const VHD = require('..')
const { MiB, tempDir, pattern, sha256File } = require('./helpers.js')

/** The tools the tests run, and the Debian package of each. */
const TOOLS = { nbdinfo: 'libnbd-bin', nbdcopy: 'libnbd-bin', 'qemu-io': 'qemu-utils' }

const missing = Object.entries(TOOLS)
  .filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
  .map(([tool, pkg]) => `${tool} (${pkg})`)
const skip = (() => {
  if (missing.length === 0 || process.env.CI) return false // under CI, a missing tool fails
  const reason = `the NBD clients are missing: ${missing.join(', ')} (apt-get install libnbd-bin qemu-utils)`
  process.stderr.write(`SKIPPED: ${reason}\n`)
  return reason
})()

/** Runs `tool args` without blocking the event loop; resolves to `{ status, stdout, stderr }`. */
function run(tool, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const out = []
    const err = []
    child.stdout.on('data', (chunk) => out.push(chunk))
    child.stderr.on('data', (chunk) => err.push(chunk))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }))
  })
}

/** `run`, asserting that it succeeds; resolves to its stdout. */
async function ok(tool, args) {
  const result = await run(tool, args)
  assert.equal(result.status, 0, `${tool} ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

/** qemu-io's commands on the export at `uri` (its exit status is non-zero when one fails). */
function qemuIo(uri, commands) {
  return run('qemu-io', ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), uri])
}

let tmp
let socketCount = 0
/** A new socket path in the test folder. */
const socketPath = () => path.join(tmp.dir, `s${++socketCount}.sock`)

before(() => {
  tmp = tempDir('vhd-serve-test-')
})

after(() => {
  tmp?.cleanup()
})

const SIZE = 8 * MiB

/** A dynamic image (512 KiB blocks) with data in some blocks, holes in the others. */
async function dynamicImage(name) {
  const file = path.join(tmp.dir, `${name}.vhd`)
  const disk = await VHD.create(file, { type: 'dynamic', size: SIZE, blockSize: 512 * 1024 })
  await disk.write(pattern(3 * 512 * 1024, 1), 0)
  await disk.write(pattern(70_000, 2), 5 * MiB + 12_345)
  await disk.close()
  return file
}

/** A depth-3 chain: a base, and two differencing images over it, each with writes of its own. */
async function chain(name) {
  const base = await dynamicImage(`${name}-base`)
  const middle = path.join(tmp.dir, `${name}-middle.vhd`)
  const top = path.join(tmp.dir, `${name}-top.vhd`)
  let child = await VHD.snapshot(base, middle)
  await child.write(pattern(100_000, 3), 1 * MiB - 1000)
  await child.write(pattern(4096, 4), 6 * MiB)
  await child.close()
  child = await VHD.snapshot(middle, top)
  await child.write(pattern(3000, 5), 200_001)
  await child.write(pattern(512 * 1024, 6), 7 * MiB)
  await child.close()
  return { base, middle, top }
}

/** The virtual disk of the image at `file`, as `VHD.convert` writes it raw. */
async function rawOf(file) {
  const out = path.join(tmp.dir, `raw-${crypto.randomUUID()}.raw`)
  await VHD.convert(file, out, { to: 'raw' })
  const bytes = fs.readFileSync(out)
  fs.rmSync(out)
  return bytes
}

/** The image's whole virtual disk, read through our API (read-only open). */
async function readAll(file) {
  const disk = await VHD.open(file, { readOnly: true })
  try {
    const { buffer } = await disk.read(0, disk.size)
    return buffer
  } finally {
    await disk.close()
  }
}

/** `{ offset, length }` runs, adjacent runs merged. */
function merged(runs) {
  const result = []
  for (const { offset, length } of runs) {
    const last = result.at(-1)
    if (last && last.offset + last.length === offset) last.length += length
    else result.push({ offset, length })
  }
  return result
}

/** nbdcopy of the export at `uri` into a file; resolves to its bytes. */
async function nbdcopy(uri) {
  const out = path.join(tmp.dir, `copy-${crypto.randomUUID()}.raw`)
  await ok('nbdcopy', [uri, out])
  const bytes = fs.readFileSync(out)
  fs.rmSync(out)
  return bytes
}

/** What nbdinfo, nbdcopy and our reads see of the export of `file` served at `server`. */
async function assertServedAs(server, file) {
  const info = JSON.parse((await ok('nbdinfo', ['--json', server.uri])).toString())
  const exported = info.exports[0]
  assert.equal(exported['export-size'], SIZE)
  assert.ok(exported.contexts.includes('base:allocation'), JSON.stringify(exported))
  const copy = await nbdcopy(server.uri)
  assert.ok(copy.equals(await rawOf(file)), 'nbdcopy of the export differs from convert --to raw')
  // The map: data where some image of the chain holds data, holes (reading as zeros) elsewhere.
  const map = JSON.parse((await ok('nbdinfo', ['--map', '--json', server.uri])).toString())
  const data = merged(map.filter((entry) => (entry.type & 1) === 0))
  const disk = await VHD.open(file, { readOnly: true, lock: false })
  try {
    assert.deepEqual(data, merged(await disk.getAllocatedRanges()))
  } finally {
    await disk.close()
  }
  for (const entry of map.filter((e) => (e.type & 3) === 3)) {
    assert.ok(copy.subarray(entry.offset, entry.offset + entry.length).every((b) => b === 0), `hole at ${entry.offset} is not zeros`)
  }
}

test('a dynamic image served on a Unix socket reads as convert --to raw does (nbdinfo, nbdcopy)', { skip }, async () => {
  const file = await dynamicImage('dynamic')
  const socket = socketPath()
  const server = await VHD.serve(file, { socket, readOnly: true })
  try {
    assert.deepEqual(server.address, { socket })
    assert.equal(server.uri, `nbd+unix:///?socket=${socket}`)
    assert.equal(server.listening, true)
    await assertServedAs(server, file)
  } finally {
    await server.close()
  }
  assert.equal(server.listening, false)
  assert.equal(fs.existsSync(socket), false, 'the socket is removed')
  // The server opened the image and closed it: it opens read-write now.
  await (await VHD.open(file)).close()
})

test('a depth-3 chain served over TCP on a port of its choosing reads as convert --to raw does', { skip }, async () => {
  const { top } = await chain('tcp')
  const server = await VHD.serve(top, { port: 0, parentRoot: tmp.dir, readOnly: true })
  try {
    const { host, port } = /** @type {{ host: string, port: number }} */ (server.address)
    assert.equal(host, '127.0.0.1')
    assert.ok(port > 0)
    assert.equal(server.uri, `nbd://127.0.0.1:${port}/`)
    await assertServedAs(server, top)
  } finally {
    await server.close()
  }
})

test('qemu-io writes into a served chain: our API reads them back, the parents stay as they were, check is clean', { skip }, async () => {
  const { base, middle, top } = await chain('write')
  const parents = [sha256File(base), sha256File(middle)]
  const before = await readAll(top)
  const parentView = await readAll(middle)
  const logged = []
  const server = await VHD.serve(top, { socket: socketPath(), exportName: 'top', log: (line) => logged.push(line) })
  let status
  try {
    status = await qemuIo(server.uri, [
      'write -P 0xab 1001 3000', // unaligned, inside data of the middle image
      'write -P 0x5c 4194303 70001', // unaligned, across a block boundary, in a hole of the chain
      'write -z 1048576 131072', // zeros over data of the middle image
      'discard 7340032 65536', // the top image's own data: the parent's shows through again
      'flush',
    ])
  } finally {
    await server.close()
  }
  assert.equal(status.status, 0, status.stderr)
  // The log: lines about qemu-io's one connection, with what it did.
  assert.ok(logged.length >= 1 && logged.every((line) => /^connection 1\b/.test(line)), `${logged}`)
  assert.match(logged.join('\n'), /bytes written/)
  const expected = Buffer.from(before)
  expected.fill(0xab, 1001, 1001 + 3000)
  expected.fill(0x5c, 4194303, 4194303 + 70001)
  expected.fill(0, 1048576, 1048576 + 131072)
  parentView.copy(expected, 7340032, 7340032, 7340032 + 65536)
  assert.ok((await readAll(top)).equals(expected), 'what qemu-io wrote does not read back')
  assert.deepEqual([sha256File(base), sha256File(middle)], parents, 'a parent changed')
  for (const file of [top, middle, base]) {
    const report = await VHD.check(file)
    assert.equal(report.clean, true, `${file}: ${JSON.stringify(report)}`)
  }
})

test('a read-only export refuses writes (readOnly, or a read-only disk); the image is unchanged', { skip }, async () => {
  const file = await dynamicImage('read-only')
  const hash = sha256File(file)
  const server = await VHD.serve(file, { socket: socketPath(), readOnly: true })
  try {
    const info = JSON.parse((await ok('nbdinfo', ['--json', server.uri])).toString())
    assert.equal(info.exports[0].is_read_only, true)
    const write = await qemuIo(server.uri, ['write -P 1 0 4096'])
    assert.notEqual(write.status, 0, 'qemu-io wrote into a read-only export')
  } finally {
    await server.close()
  }
  const disk = await VHD.open(file, { readOnly: true })
  const served = await VHD.serve(disk, { socket: socketPath() })
  try {
    const info = JSON.parse((await ok('nbdinfo', ['--json', served.uri])).toString())
    assert.equal(info.exports[0].is_read_only, true)
    assert.notEqual((await qemuIo(served.uri, ['write -P 1 0 4096'])).status, 0)
  } finally {
    await served.close()
    await disk.close()
  }
  assert.equal(sha256File(file), hash)
})

test('an open disk served and used from JavaScript at once: each sees the other\'s writes; disk.close() closes the server', { skip }, async () => {
  const file = await dynamicImage('shared')
  const disk = await VHD.open(file)
  const socket = socketPath()
  const server = await VHD.serve(disk, { socket })
  // The client writes and flushes; the disk reads it.
  const write = await qemuIo(server.uri, ['write -P 0x77 2000001 5000', 'flush'])
  assert.equal(write.status, 0, write.stderr)
  const { buffer } = await disk.read(2000001, 5000)
  assert.ok(buffer.equals(Buffer.alloc(5000, 0x77)), 'the disk does not see the client\'s write')
  // The disk writes; a client reads it.
  await disk.write(Buffer.alloc(3333, 0x42), 6 * MiB + 7)
  const copy = await nbdcopy(server.uri)
  assert.ok(copy.subarray(6 * MiB + 7, 6 * MiB + 7 + 3333).equals(Buffer.alloc(3333, 0x42)))
  assert.ok(copy.equals((await disk.read(0, SIZE)).buffer))
  // Closing the disk closes the server first.
  await disk.close()
  assert.equal(server.listening, false)
  assert.equal(fs.existsSync(socket), false)
  await server.close() // again: resolves
  const after = await readAll(file)
  assert.ok(after.subarray(2000001, 2000001 + 5000).equals(Buffer.alloc(5000, 0x77)))
  assert.equal((await VHD.check(file)).clean, true)
})

test('disk.close() during a serve of it waits for the start, then closes the new server first', { skip }, async () => {
  const file = await dynamicImage('close-during-start')
  const disk = await VHD.open(file)
  const socket = socketPath()
  const starting = VHD.serve(disk, { socket })
  const closing = disk.close()
  const server = await starting
  await closing
  assert.equal(server.listening, false)
  assert.equal(server.connections, 0)
  assert.equal(fs.existsSync(socket), false)
  assert.equal(disk.isOpen, false)
  // Nothing holds the image: it opens read-write again.
  await (await VHD.open(file)).close()
})

test('close() with a client connected ends its connection, then resolves; the server serves while the JavaScript thread is blocked', { skip }, async () => {
  const file = await dynamicImage('connected')
  const server = await VHD.serve(file, { socket: socketPath() })
  // A blocking call: the server's threads serve without this thread.
  const blocked = spawnSync('nbdinfo', ['--size', server.uri], { encoding: 'utf8' })
  assert.equal(blocked.status, 0, blocked.stderr)
  assert.equal(Number(blocked.stdout.trim()), SIZE)
  // A client that connects and stays (it reads the greeting and sends nothing).
  const client = net.connect(/** @type {{ socket: string }} */ (server.address).socket)
  const greeting = await new Promise((resolve, reject) => {
    client.once('data', resolve)
    client.once('error', reject)
  })
  assert.equal(greeting.subarray(0, 8).toString('latin1'), 'NBDMAGIC')
  while (server.connections === 0) await new Promise((resolve) => setImmediate(resolve))
  assert.equal(server.connections, 1)
  const ended = new Promise((resolve) => client.once('close', resolve))
  await server.close()
  await ended
  assert.equal(server.connections, 0)
})

test('the event loop runs while a client copies the export', { skip }, async () => {
  const file = path.join(tmp.dir, 'big.vhd')
  const disk = await VHD.create(file, { type: 'dynamic', size: 32 * MiB })
  const data = pattern(32 * MiB, 9)
  await disk.write(data, 0)
  await disk.close()
  const server = await VHD.serve(file, { socket: socketPath(), readOnly: true })
  try {
    // The copy goes to a pipe this process reads: nbdcopy cannot finish (32 MiB through a
    // pipe of 64 KiB) unless the event loop runs meanwhile. Count the turns of the loop.
    let turns = 0
    let copying = true
    const turn = () => {
      turns++
      if (copying) setImmediate(turn)
    }
    setImmediate(turn)
    const result = await run('nbdcopy', [server.uri, '-'])
    copying = false
    assert.equal(result.status, 0, result.stderr)
    assert.ok(result.stdout.equals(data), 'the copy differs')
    assert.ok(turns > 1, `the loop turned ${turns} times during the copy`)
  } finally {
    await server.close()
  }
})

test('a running server keeps the process alive until close(), as a listening net.Server does', { skip }, async () => {
  const file = await dynamicImage('alive')
  const socket = socketPath()
  // The child's script ends as soon as the server listens; the process must stay, serving.
  const script = `
    const VHD = require(${JSON.stringify(path.join(__dirname, '..'))})
    VHD.serve(${JSON.stringify(file)}, { socket: ${JSON.stringify(socket)}, readOnly: true }).then((server) => {
      console.log(server.uri)
      process.once('SIGTERM', () => server.close().then(() => console.log('closed')))
    })
  `
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  let output = ''
  const uri = await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk
      if (output.includes('\n')) resolve(output.split('\n')[0])
    })
    child.on('exit', () => reject(new Error(`the child exited: ${output}`)))
  })
  assert.equal(uri, `nbd+unix:///?socket=${socket}`)
  assert.equal(Number((await ok('nbdinfo', ['--size', uri])).toString().trim()), SIZE)
  child.kill('SIGTERM')
  assert.equal(await exited, 0, 'after close() the process ends by itself')
  assert.match(output, /^closed$/m)
  assert.equal(fs.existsSync(socket), false)
})

test('a taken socket or port is EADDRINUSE, naming it, a foreign address EADDRNOTAVAIL; the image opened for it is closed again', { skip }, async () => {
  const file = await dynamicImage('taken')
  const socket = socketPath()
  const first = await VHD.serve(file, { socket, readOnly: true })
  const tcp = await VHD.serve(file, { port: 0, readOnly: true })
  try {
    await assert.rejects(VHD.serve(file, { socket, readOnly: true }), (error) => {
      assert.equal(error.code, 'EADDRINUSE')
      assert.equal(error.path, socket)
      assert.equal(error.syscall, 'bind')
      return true
    })
    const { port } = /** @type {{ port: number }} */ (tcp.address)
    await assert.rejects(VHD.serve(file, { port, readOnly: true }), (error) => {
      assert.equal(error.code, 'EADDRINUSE')
      assert.equal(error.address, '127.0.0.1')
      assert.equal(error.port, port)
      return true
    })
  } finally {
    await first.close()
    await tcp.close()
  }
  // An address of no interface here (TEST-NET-1, RFC 5737): EADDRNOTAVAIL.
  await assert.rejects(VHD.serve(file, { port: 0, host: '192.0.2.1', allowRemote: true, readOnly: true }), {
    code: 'EADDRNOTAVAIL',
    address: '192.0.2.1',
  })
  // A file that is not a socket is never replaced.
  const plain = path.join(tmp.dir, 'plain-file')
  fs.writeFileSync(plain, 'keep me')
  await assert.rejects(VHD.serve(file, { socket: plain }), { code: 'EADDRINUSE' })
  assert.equal(fs.readFileSync(plain, 'utf8'), 'keep me')
  // Every open by a failed serve was closed: the image opens read-write.
  await (await VHD.open(file)).close()
})

test('what the server refuses (the rules of vhd-nbd, shared with the CLI): a host other than a loopback one without allowRemote, an export name longer than NBD carries', async () => {
  const file = path.join(tmp.dir, 'refused.vhd')
  await (await VHD.create(file, { type: 'dynamic', size: MiB })).close()
  const before = fs.readFileSync(file)
  const remote = { name: 'RangeError', code: 'ERR_VHD_INVALID_ARGUMENT', message: /^0\.0\.0\.0 is not a loopback address: NBD is cleartext .*pass \{ allowRemote: true \}$/ }
  await assert.rejects(VHD.serve(file, { port: 0, host: '0.0.0.0' }), remote)
  const viaCallback = await new Promise((resolve) => VHD.serve(file, { port: 0, host: '0.0.0.0' }, resolve))
  assert.equal(viaCallback.code, 'ERR_VHD_INVALID_ARGUMENT')
  // An open disk: the same, and the disk stays open.
  const disk = await VHD.open(file, { readOnly: true })
  try {
    await assert.rejects(VHD.serve(disk, { port: 0, host: '::' }), { code: 'ERR_VHD_INVALID_ARGUMENT', message: /^:: is not a loopback address/ })
    assert.equal(disk.isOpen, true)
    // Loopback addresses, IPv4 loopback mapped into IPv6 among them, need no allowRemote.
    for (const host of ['127.0.0.2', '::ffff:127.0.0.1']) {
      const server = await VHD.serve(disk, { port: 0, host })
      assert.equal(server.address.host, host)
      await server.close()
    }
    await assert.rejects(VHD.serve(disk, { socket: socketPath(), exportName: 'x'.repeat(4097) }), {
      name: 'RangeError',
      code: 'ERR_VHD_INVALID_ARGUMENT',
      message: /export name: longer than 4096 bytes/,
    })
  } finally {
    await disk.close()
  }
  assert.deepEqual(fs.readFileSync(file), before, 'the image changed')
  assert.deepEqual(fs.readdirSync(tmp.dir).filter((f) => f.endsWith('.sock')), [], 'a socket was left behind')
})

test('argument errors: thrown with a callback, rejected without', async () => {
  const file = path.join(tmp.dir, 'args.vhd')
  await (await VHD.create(file, { type: 'dynamic', size: MiB })).close()
  const disk = await VHD.open(file, { readOnly: true })
  const TYPE = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }
  const VALUE = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }
  const RANGE = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }
  const cases = [
    [42, { socket: 'x.sock' }, TYPE],
    [null, { socket: 'x.sock' }, TYPE],
    [{}, { socket: 'x.sock' }, TYPE],
    [file, undefined, TYPE],
    [file, 'x.sock', TYPE],
    [file, {}, VALUE],
    [file, { socket: 'x.sock', port: 1 }, VALUE],
    [file, { socket: 42 }, TYPE],
    [file, { socket: '' }, VALUE],
    [file, { socket: 'x.sock', host: '127.0.0.1' }, VALUE],
    [file, { port: -1 }, RANGE],
    [file, { port: 65536 }, RANGE],
    [file, { port: 1.5 }, RANGE],
    [file, { port: '80' }, TYPE],
    [file, { port: 0, host: 42 }, TYPE],
    [file, { port: 0, host: 'example.org' }, VALUE],
    [file, { port: 0, host: '::', allowRemote: 'yes' }, TYPE],
    [file, { socket: 'x.sock', readOnly: 1 }, TYPE],
    [file, { socket: 'x.sock', exportName: 7 }, TYPE],
    [file, { socket: 'x.sock', log: 'console' }, TYPE],
    [file, { socket: 'x.sock', parentRoot: 42 }, TYPE],
    [disk, { socket: 'x.sock', parentRoot: tmp.dir }, VALUE], // open options with an open disk
  ]
  for (const [image, options, expected] of cases) {
    const shown = `${String(image).slice(0, 20)}, ${JSON.stringify(options)}`
    await assert.rejects(VHD.serve(/** @type {any} */ (image), /** @type {any} */ (options)), expected, shown)
    assert.throws(() => VHD.serve(/** @type {any} */ (image), /** @type {any} */ (options), () => assert.fail('called back')), expected, shown)
  }
  assert.throws(() => VHD.serve(file, { socket: 'x.sock' }, /** @type {any} */ ('callback')), TYPE)
  assert.throws(() => new (/** @type {any} */ (VHD.NbdServer))(), { code: 'ERR_ILLEGAL_CONSTRUCTOR' })
  // A closed disk, or one never opened: ERR_VHD_CLOSED.
  await disk.close()
  await assert.rejects(VHD.serve(disk, { socket: socketPath() }), { code: 'ERR_VHD_CLOSED' })
  await assert.rejects(VHD.serve(new VHD.Dynamic(file), { socket: socketPath() }), { code: 'ERR_VHD_CLOSED' })
  // A missing image: the open's error, with the caller's path.
  const nowhere = path.join(tmp.dir, 'missing.vhd')
  await assert.rejects(VHD.serve(nowhere, { socket: socketPath() }), { code: 'ENOENT', path: nowhere })
  assert.deepEqual(fs.readdirSync(tmp.dir).filter((f) => f.endsWith('.sock')), [], 'a socket was left behind')
})

test('the callback form, and await using', { skip }, async () => {
  const file = await dynamicImage('callback')
  const server = await new Promise((resolve, reject) => {
    VHD.serve(file, { socket: socketPath(), readOnly: true }, (error, served) => (error ? reject(error) : resolve(served)))
  })
  assert.ok(server instanceof VHD.NbdServer)
  assert.equal(Number((await ok('nbdinfo', ['--size', server.uri])).toString().trim()), SIZE)
  await new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve(undefined))))
  assert.equal(server.listening, false)
  const disposed = await VHD.serve(file, { socket: socketPath(), readOnly: true })
  await disposed[Symbol.asyncDispose]()
  assert.equal(disposed.listening, false)
})
