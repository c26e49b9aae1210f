'use strict'

// The `vhd` command as a user runs it: `bin/vhd.js` (what `npx vhd` starts) in a child
// process, its stdout, stderr and exit code; once more from a real `npm install` of the
// packed tarball. Results are checked against qemu-img / qemu-io (fixed and dynamic images),
// vhdiinfo and pyvhdi (libvhdi, which also reads differencing images), never against this
// package's own reading. Without those tools the oracle tests are skipped with a message,
// except under CI (CI set), where that is a failure.

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
  imageWithManyFindings,
  PYTHON,
  pyvhdiReadChain,
  rawDiskStartingLikeAVhd,
  NEEDS_ROOT,
  mkfifo,
  mknodNull,
  dataInEveryChunk,
} = require('./helpers.js')

const ROOT = path.resolve(__dirname, '..')
const BIN = path.join(ROOT, 'bin', 'vhd.js')
const COMMANDS = ['info', 'create', 'convert', 'map', 'check', 'compact', 'resize', 'commit', 'rebase', 'snapshot', 'cat']
// The corpus is `shared/corpus` beside the repository (or VHD_CORPUS_DIR), as in compat-image.test.js.
const CORPUS = process.env.VHD_CORPUS_DIR || path.join(ROOT, '..', 'shared', 'corpus')

/**
 * Corpus images to add to a test's own images: none when the corpus is absent (said on
 * stderr), and a failure in CI, which must not skip anything.
 */
function corpusImages(...names) {
  const files = names.map((name) => path.join(CORPUS, ...name.split('/')))
  const missing = files.filter((f) => !fs.existsSync(f))
  if (missing.length === 0) return files
  if (process.env.CI) throw new Error(`the VHD corpus is missing (${missing.join(', ')}), and CI is set`)
  process.stderr.write(`SKIPPED: corpus images ${missing.join(', ')} (set VHD_CORPUS_DIR)\n`)
  return []
}

// ---- oracles, skipped like __test__/oracle.test.js does ----

function probe(cmd, args) {
  const res = spawnSync(cmd, args, { encoding: 'utf8' })
  return !res.error && res.status === 0
}
const have = {
  qemu: probe('qemu-img', ['--version']) && probe('qemu-io', ['--version']),
  vhdiinfo: probe('vhdiinfo', ['-V']),
  pyvhdi: probe(PYTHON, ['-c', 'import pyvhdi']),
}
const MISSING = {
  qemu: 'qemu-img/qemu-io are not installed (Debian/Ubuntu: apt-get install qemu-utils)',
  vhdiinfo: 'vhdiinfo is not installed (Debian/Ubuntu: apt-get install libvhdi-utils)',
  pyvhdi: `pyvhdi is not importable by ${PYTHON} (Debian/Ubuntu: apt-get install python3-libvhdi)`,
}
/** The `skip` option of a test that needs `tools`: a visible reason locally, never under CI. */
function needs(...tools) {
  const missing = tools.filter((t) => !have[t])
  if (missing.length === 0 || process.env.CI) return false
  return `${missing.map((t) => MISSING[t]).join('; ')}; skipping`
}
function requireTool(tool) {
  assert.ok(have[tool], `${MISSING[tool]}, and CI requires the oracle tests`)
}

let tmp
before(() => {
  tmp = tempDir('vhd-cli-')
})
after(() => tmp.cleanup())

// ---- running things ----

/** Runs `vhd ...args` through bin/vhd.js; stdout as a Buffer when `binary`. */
function vhd(args, { binary = false, cwd = tmp.dir } = {}) {
  const res = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: binary ? 'buffer' : 'utf8',
    maxBuffer: 256 * MiB,
    timeout: 120_000,
  })
  assert.ifError(res.error)
  return { status: res.status, stdout: res.stdout, stderr: binary ? res.stderr.toString() : res.stderr }
}

/** Runs `vhd ...args` and requires exit code 0 and nothing on stderr. */
function vhdOk(args, options) {
  const res = vhd(args, options)
  assert.equal(res.status, 0, `vhd ${args.join(' ')} exited ${res.status}: ${res.stderr}`)
  assert.equal(res.stderr, '', `vhd ${args.join(' ')} wrote to stderr`)
  return res
}

/** Requires exit code 1, nothing on stdout and `vhd: CODE: ...` on stderr. */
function vhdFails(args, code, message) {
  const res = vhd(args)
  assert.equal(res.status, 1, `vhd ${args.join(' ')} should fail: ${res.stdout}${res.stderr}`)
  assert.equal(res.stdout, '', 'nothing on stdout')
  assert.ok(res.stderr.startsWith(`vhd: ${code}: `), `expected ${code}, got: ${res.stderr}`)
  if (message) assert.match(res.stderr, message)
  return res
}

function run(cmd, args, options = {}) {
  const res = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * MiB, ...options })
  assert.equal(res.status, 0, `${cmd} ${args.join(' ')} failed: ${res.error || ''}${res.stderr}`)
  return res.stdout
}

function qemuImg(...args) {
  requireTool('qemu')
  return run('qemu-img', args)
}

function qemuIo(file, ...commands) {
  requireTool('qemu')
  run('qemu-io', ['-f', 'vpc', ...commands.flatMap((c) => ['-c', c]), file])
}

function qemuInfo(file) {
  return JSON.parse(qemuImg('info', '--output=json', '-f', 'vpc', file))
}

/** What qemu reads from a fixed or dynamic image. */
function qemuRaw(file) {
  const raw = `${file}.qemu.raw`
  qemuImg('convert', '-f', 'vpc', '-O', 'raw', file, raw)
  const bytes = fs.readFileSync(raw)
  fs.rmSync(raw)
  return bytes
}

/** vhdiinfo's fields, e.g. { 'Disk type': 'Dynamic', 'Media size': '8.0 MiB (8388608 bytes)' }. */
function vhdiinfo(file) {
  requireTool('vhdiinfo')
  const fields = {}
  for (const line of run('vhdiinfo', [file]).split('\n')) {
    const m = /^\t([^:]+?)\s*: (.*)$/.exec(line)
    if (m) fields[m[1]] = m[2]
  }
  return fields
}
function vhdiinfoSize(file) {
  return Number(/\((\d+) bytes\)/.exec(vhdiinfo(file)['Media size'])[1])
}

/** What libvhdi reads from a chain (child first). */
function pyvhdiRead(...chain) {
  requireTool('pyvhdi')
  return pyvhdiReadChain(chain, tmp.dir)
}

function sha256(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex')
}

/** A dynamic (or fixed) image made by qemu-img, with data written by qemu-io. */
function qemuImage(name, subformat, size, writes = ['write -P 0x5a 0 64k', 'write -P 0xa5 3M 1M']) {
  const file = path.join(tmp.dir, name)
  qemuImg('create', '-q', '-f', 'vpc', '-o', `subformat=${subformat},force_size=on`, file, String(size))
  if (writes.length) qemuIo(file, ...writes)
  return file
}

/** Writes `[offset, bytes]` pairs into an image through the package's own API. */
async function writeInto(file, writes) {
  const disk = await VHD.open(file)
  for (const [offset, data] of writes) await disk.write(data, offset)
  await disk.close()
}

// ---- help, usage and errors ----

describe('help and usage', () => {
  test('vhd --help lists every command, like qemu-img --help', () => {
    const { stdout } = vhdOk(['--help'])
    assert.match(stdout, /^vhd version 1\.0\.0/)
    assert.match(stdout, /usage: vhd \[--help \| --version\] COMMAND/)
    for (const command of COMMANDS) assert.match(stdout, new RegExp(`^  ${command} `, 'm'), command)
    assert.equal(vhdOk(['help']).stdout, stdout)
    assert.equal(vhdOk(['--version']).stdout, 'vhd version 1.0.0\n')
  })

  for (const command of COMMANDS) {
    test(`vhd ${command} --help describes the command and its options`, () => {
      const { stdout } = vhdOk([command, '--help'])
      assert.ok(stdout.startsWith(`usage: vhd ${command} `), stdout)
      assert.match(stdout, /\nOptions:\n/)
      assert.match(stdout, /-h, --help/)
      assert.equal(vhdOk([command, '-h']).stdout, stdout)
      assert.equal(vhdOk(['help', command]).stdout, stdout)
    })
  }

  test('usage errors: exit code 1, the message and a hint on stderr', () => {
    let res = vhdFails([], 'ERR_VHD_USAGE', /no command given/)
    assert.match(res.stderr, /Try 'vhd --help' for more information/)
    res = vhdFails(['frobnicate'], 'ERR_VHD_USAGE', /unknown command 'frobnicate'/)
    res = vhdFails(['info', '--nope', 'x.vhd'], 'ERR_VHD_USAGE', /unknown option '--nope'/)
    assert.match(res.stderr, /Try 'vhd info --help' for more information/)
    vhdFails(['--nope'], 'ERR_VHD_USAGE', /unknown option '--nope'/)
    vhdFails(['info'], 'ERR_VHD_USAGE', /missing argument FILE/)
    vhdFails(['info', 'a', 'b'], 'ERR_VHD_USAGE', /unexpected argument 'b'/)
    vhdFails(['create', '--type'], 'ERR_VHD_USAGE', /needs a value/)
    vhdFails(['create', '--type', 'sparse', 'x.vhd', '1M'], 'ERR_VHD_USAGE', /unknown type 'sparse'/)
    vhdFails(['create', 'x.vhd'], 'ERR_VHD_USAGE', /missing argument SIZE/)
    vhdFails(['create', '--type=differencing', 'x.vhd'], 'ERR_VHD_USAGE', /needs --parent/)
    vhdFails(['convert', '--to', 'qcow2', 'a', 'b'], 'ERR_VHD_USAGE', /unknown output format 'qcow2'/)
    vhdFails(['convert', '--azure', '--to', 'dynamic', 'a', 'b'], 'ERR_VHD_USAGE', /--azure/)
    assert.ok(!fs.existsSync(path.join(tmp.dir, 'x.vhd')), 'no file is made by a refused command')
  })

  test('without a loadable addon, the command says so in the same form', () => {
    const dir = path.join(tmp.dir, 'no-addon')
    fs.mkdirSync(path.join(dir, 'bin'), { recursive: true })
    fs.mkdirSync(path.join(dir, 'scripts'))
    fs.copyFileSync(BIN, path.join(dir, 'bin', 'vhd.js'))
    fs.copyFileSync(path.join(ROOT, 'binding.js'), path.join(dir, 'binding.js'))
    fs.copyFileSync(path.join(ROOT, 'scripts', 'platform.js'), path.join(dir, 'scripts', 'platform.js'))
    const res = spawnSync(process.execPath, [path.join(dir, 'bin', 'vhd.js'), '--help'], { encoding: 'utf8' })
    assert.equal(res.status, 1)
    assert.equal(res.stdout, '')
    assert.match(res.stderr, /^vhd: ERR_VHD_NATIVE_NOT_FOUND: .*npm rebuild vhd/s)
  })

  test('bad sizes are refused before anything is written', () => {
    for (const bad of ['12Q', 'abc', '1.5G', '-5', '99999999999999999999', '20000000T']) {
      vhdFails(['create', 'bad.vhd', bad], 'ERR_VHD_USAGE', /invalid size/)
    }
    // A size the format does not allow: the core's error and code.
    vhdFails(['create', 'bad.vhd', '1000'], 'ERR_VHD_INVALID_ARGUMENT', /multiple of 512/)
    assert.ok(!fs.existsSync(path.join(tmp.dir, 'bad.vhd')))
  })

  test('a missing file is ENOENT naming the file, for every command that reads one', () => {
    for (const command of ['info', 'map', 'check', 'compact', 'commit', 'cat']) {
      vhdFails([command, 'missing.vhd'], 'ENOENT', /missing\.vhd: .*No such file or directory/)
    }
    vhdFails(['resize', 'missing.vhd', '1M'], 'ENOENT', /missing\.vhd/)
    vhdFails(['snapshot', 'missing.vhd', 'child.vhd'], 'ENOENT', /missing\.vhd/)
    vhdFails(['rebase', 'missing.vhd', 'parent.vhd'], 'ENOENT', /missing\.vhd/)
    assert.ok(!fs.existsSync(path.join(tmp.dir, 'child.vhd')))
  })

  test('a damaged image is refused with the core error code', () => {
    const file = path.join(tmp.dir, 'damaged.vhd')
    vhdOk(['create', '--type', 'fixed', file, '1M'])
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 512 + 64] ^= 0xff // the footer checksum
    fs.writeFileSync(file, bytes)
    vhdFails(['info', file], 'ERR_VHD_CHECKSUM', /footer checksum mismatch/)
  })
})

// ---- create and info ----

describe('create and info', () => {
  for (const [type, size, extra] of [
    ['fixed', '5M', []],
    ['dynamic', '64M', []],
    ['dynamic', '10M', ['--block-size', '512K']],
  ]) {
    test(`create --type ${type} ${size} ${extra.join(' ')}: qemu-img and vhdiinfo open it`, { skip: needs('qemu', 'vhdiinfo') }, () => {
      const file = path.join(tmp.dir, `created-${type}-${size}${extra.length ? '-bs' : ''}.vhd`)
      const { stdout } = vhdOk(['create', '--type', type, ...extra, file, size])
      assert.match(stdout, new RegExp(`^Formatting '.*', fmt=vpc subformat=${type} `))
      const bytes = Number.parseInt(size, 10) * MiB
      const qemu = qemuInfo(file)
      assert.equal(qemu.format, 'vpc')
      assert.equal(qemu['virtual-size'], bytes)
      const libvhdi = vhdiinfo(file)
      assert.equal(libvhdi['Disk type'], type === 'fixed' ? 'Fixed' : 'Dynamic')
      assert.equal(vhdiinfoSize(file), bytes)

      const info = JSON.parse(vhdOk(['info', '--json', file]).stdout)
      assert.equal(info.type, type)
      assert.equal(info.virtualSize, qemu['virtual-size'])
      assert.equal(info.uniqueId, libvhdi.Identifier)
      assert.equal(info.blockSize, type === 'fixed' ? null : (extra.length ? 512 * KiB : qemu['cluster-size']))
      assert.equal(info.fileSize, fs.statSync(file).size)
      assert.equal(info.allocatedBytes, type === 'fixed' ? bytes : 0)
      assert.equal(info.parent, null)
      assert.deepEqual(info.chain.map((c) => c.type), [type])
      assert.equal(info.creator.application, 'win')
    })
  }

  test('create --parent makes a differencing image that libvhdi links to its parent', { skip: needs('vhdiinfo', 'pyvhdi') }, () => {
    const base = path.join(tmp.dir, 'diff-base.vhd')
    const child = path.join(tmp.dir, 'diff-child.vhd')
    vhdOk(['create', '--type', 'fixed', base, '4M'])
    const { stdout } = vhdOk(['create', '--parent', base, child])
    assert.match(stdout, /subformat=differencing size=4194304 .*backing_file=/)
    vhdFails(['create', '--parent', base, child], 'ERR_VHD_EXISTS')
    vhdFails(['create', '--type', 'fixed', '--parent', base, 'other.vhd', '1M'], 'ERR_VHD_USAGE', /only for differencing/)

    const baseInfo = vhdiinfo(base)
    const libvhdi = vhdiinfo(child)
    assert.equal(libvhdi['Disk type'], 'Differential')
    assert.equal(libvhdi['Parent identifier'], baseInfo.Identifier)
    assert.equal(libvhdi['Parent filename'], 'diff-base.vhd')
    assert.equal(vhdiinfoSize(child), 4 * MiB)

    const info = JSON.parse(vhdOk(['info', '--json', child]).stdout)
    assert.equal(info.type, 'differencing')
    assert.equal(info.virtualSize, 4 * MiB)
    assert.equal(info.parent.name, libvhdi['Parent filename'])
    assert.equal(info.parent.uniqueId, baseInfo.Identifier)
    assert.equal(info.parent.path, fs.realpathSync(base))
    assert.match(info.parent.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    const codes = info.parent.locators.map((l) => l.platformCode)
    assert.ok(codes.includes('W2ru') && codes.includes('W2ku'), codes.join(','))
    assert.deepEqual(info.chain.map((c) => [path.basename(c.path), c.type]), [['diff-child.vhd', 'differencing'], ['diff-base.vhd', 'fixed']])
    // The child reads as its (empty) parent through libvhdi.
    assert.ok(pyvhdiRead(child, base).equals(Buffer.alloc(4 * MiB)))
  })

  test('info of images from qemu-img and Windows matches qemu-img info and vhdiinfo', { skip: needs('qemu', 'vhdiinfo') }, () => {
    const images = [
      qemuImage('info-qemu-dynamic.vhd', 'dynamic', 6 * MiB + 512),
      qemuImage('info-qemu-fixed.vhd', 'fixed', 3 * MiB, ['write -P 7 1M 4k']),
      ...corpusImages('dfvfs/ext2.vhd', 'imhex-patterns/vhd.hexpat.vhd'),
    ]
    for (const file of images) {
      const qemu = qemuInfo(file)
      const libvhdi = vhdiinfo(file)
      const info = JSON.parse(vhdOk(['info', '--json', file]).stdout)
      assert.equal(info.virtualSize, qemu['virtual-size'], file)
      assert.equal(info.virtualSize, vhdiinfoSize(file), file)
      assert.equal(info.type, libvhdi['Disk type'].toLowerCase(), file)
      assert.equal(info.uniqueId, libvhdi.Identifier, file)
      assert.equal(info.blockSize, qemu['cluster-size'] ?? null, file)
      assert.equal(info.fileSize, fs.statSync(file).size)
      assert.equal(info.checksums.footer.valid, true)

      // The text form leads with qemu-img info's lines.
      const text = vhdOk(['info', file]).stdout
      assert.ok(text.startsWith(`image: ${file}\nfile format: vpc\nsubformat: ${info.type}\n`), text)
      const size = qemu['virtual-size']
      assert.match(text, new RegExp(`\\nvirtual size: [\\d.]+ [KMG]?i?B \\(${size} bytes\\)\\n`))
      assert.match(text, /\n    footer:\n[^]*\n        unique id: /)
    }
    const dynamic = JSON.parse(vhdOk(['info', '--json', images[0]]).stdout)
    // The creator as the footer's bytes 28..32 hold it (qemu 10 writes "qem2").
    const footer = fs.readFileSync(images[0]).subarray(-512)
    assert.equal(dynamic.creator.application, footer.subarray(28, 32).toString('latin1').replace(/[ \0]+$/, ''))
    assert.match(dynamic.creator.application, /^qem/)
    // qemu-io wrote 64 KiB at 0 and 1 MiB at 3 MiB: blocks 0 and 1 of 2 MiB.
    assert.equal(dynamic.allocatedBlocks, 2)
    assert.equal(dynamic.allocatedBytes, 4 * MiB)
    assert.equal(dynamic.header.maxTableEntries, 4)
  })
})

// ---- cat, convert, map ----

describe('reading: cat, convert, map', () => {
  test('cat writes what qemu-img convert -O raw writes', { skip: needs('qemu') }, () => {
    for (const file of [
      qemuImage('cat-dynamic.vhd', 'dynamic', 9 * MiB + 512),
      qemuImage('cat-fixed.vhd', 'fixed', 5 * MiB),
      ...corpusImages('dfvfs/ext2.vhd'),
    ]) {
      const { stdout } = vhdOk(['cat', file], { binary: true })
      assert.equal(sha256(stdout), sha256(qemuRaw(file)), file)
    }
  })

  test('cat of a differencing image reads through the chain as libvhdi does', { skip: needs('pyvhdi') }, async () => {
    const base = path.join(tmp.dir, 'cat-base.vhd')
    const child = path.join(tmp.dir, 'cat-child.vhd')
    vhdOk(['create', base, '6M'])
    await writeInto(base, [[0, pattern(64 * KiB, 1)], [2 * MiB, pattern(MiB, 2)]])
    vhdOk(['create', '--parent', base, child])
    // Whole 4 KiB units only (libvhdi misreads partly set bitmap bytes).
    await writeInto(child, [[16 * KiB, pattern(8 * KiB, 3)], [5 * MiB, pattern(256 * KiB, 4)]])
    const { stdout } = vhdOk(['cat', child], { binary: true })
    assert.equal(stdout.length, 6 * MiB)
    assert.equal(sha256(stdout), sha256(pyvhdiRead(child, base)))
  })

  test('cat into a pipe closed early ends quietly with exit code 0', () => {
    const file = path.join(tmp.dir, 'cat-pipe.vhd')
    vhdOk(['create', '--type', 'fixed', file, '32M'])
    const script = `"${process.execPath}" "${BIN}" cat "${file}" | head -c 10 > /dev/null; echo "status=\${PIPESTATUS[0]}"`
    const res = spawnSync('bash', ['-c', script], { encoding: 'utf8' })
    assert.equal(res.stdout.trim(), 'status=0')
    assert.equal(res.stderr, '')
  })

  for (const to of ['dynamic', 'fixed', 'raw']) {
    test(`convert raw to ${to}: qemu-img compare finds the same disk`, { skip: needs('qemu') }, () => {
      const raw = path.join(tmp.dir, `convert-src-${to}.raw`)
      const data = Buffer.alloc(7 * MiB)
      pattern(100 * KiB, 5).copy(data, 12345)
      pattern(MiB, 6).copy(data, 5 * MiB)
      fs.writeFileSync(raw, data)
      const dst = path.join(tmp.dir, `convert-dst.${to}.vhd`)
      vhdOk(['convert', '--to', to, '-q', raw, dst])
      const format = to === 'raw' ? 'raw' : 'vpc'
      qemuImg('compare', '-q', '-f', 'raw', '-F', format, raw, dst)
      if (to !== 'raw') assert.equal(qemuInfo(dst)['virtual-size'], data.length)
      vhdFails(['convert', '--to', to, raw, dst], 'ERR_VHD_EXISTS')
      vhdOk(['convert', '--to', to, '--overwrite', '-q', raw, dst])
    })
  }

  test('convert of a VHD to raw and of a chain to a dynamic image (flattened)', { skip: needs('qemu', 'pyvhdi') }, async () => {
    const src = qemuImage('convert-src.vhd', 'dynamic', 8 * MiB)
    const raw = path.join(tmp.dir, 'convert-src.vhd.raw')
    vhdOk(['convert', '-q', '--to', 'raw', src, raw])
    qemuImg('compare', '-q', '-f', 'vpc', '-F', 'raw', src, raw)

    const child = path.join(tmp.dir, 'convert-child.vhd')
    vhdOk(['create', '--parent', src, child])
    await writeInto(child, [[MiB, pattern(128 * KiB, 7)]])
    const flat = path.join(tmp.dir, 'convert-flat.vhd')
    vhdOk(['convert', '-q', child, flat])
    const expected = pyvhdiRead(child, src)
    assert.equal(sha256(qemuRaw(flat)), sha256(expected))
  })

  test('convert --azure makes a fixed image of whole MiB', { skip: needs('qemu') }, () => {
    const raw = path.join(tmp.dir, 'azure.raw')
    fs.writeFileSync(raw, pattern(20 * MiB + 4096, 8))
    const dst = path.join(tmp.dir, 'azure.vhd')
    vhdOk(['convert', '-q', '--azure', raw, dst])
    const info = JSON.parse(vhdOk(['info', '--json', dst]).stdout)
    assert.equal(info.type, 'fixed')
    assert.equal(qemuInfo(dst)['virtual-size'], 21 * MiB)
    assert.equal(fs.statSync(dst).size, 21 * MiB + 512)
    const got = qemuRaw(dst)
    assert.ok(got.subarray(0, 20 * MiB + 4096).equals(fs.readFileSync(raw)))
    assert.ok(got.subarray(20 * MiB + 4096).equals(Buffer.alloc(MiB - 4096)))
  })

  test('convert shows a progress bar only when asked (stderr is not a terminal here)', { skip: needs('qemu') }, () => {
    const raw = path.join(tmp.dir, 'progress.raw')
    fs.writeFileSync(raw, pattern(3 * MiB, 9))
    const quiet = vhd(['convert', raw, path.join(tmp.dir, 'progress-1.vhd')])
    assert.equal(quiet.status, 0, quiet.stderr)
    assert.equal(quiet.stderr, '')
    const shown = vhd(['convert', '-p', raw, path.join(tmp.dir, 'progress-2.vhd')])
    assert.equal(shown.status, 0, shown.stderr)
    assert.match(shown.stderr, /\(100\.00\/100%\)\r\n$/)
    qemuImg('compare', '-q', '-f', 'raw', '-F', 'vpc', raw, path.join(tmp.dir, 'progress-2.vhd'))
  })

  test('map lists the data ranges qemu-img map lists', { skip: needs('qemu') }, () => {
    const file = qemuImage('map.vhd', 'dynamic', 10 * MiB, ['write -P 1 0 4k', 'write -P 2 4M 2M', 'write -P 3 9M 512'])
    const expected = JSON.parse(qemuImg('map', '--output=json', '-f', 'vpc', file))
    const got = JSON.parse(vhdOk(['map', '--json', file]).stdout)
    const data = (list) => list.filter((e) => e.data).map(({ start, length, offset }) => ({ start, length, offset }))
    assert.deepEqual(data(got), data(expected))
    // The whole disk is covered, in order.
    let position = 0
    for (const entry of got) {
      assert.equal(entry.start, position)
      position += entry.length
    }
    assert.equal(position, 10 * MiB)

    const text = vhdOk(['map', file]).stdout.split('\n')
    assert.equal(text[0], `${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File`)
    const hex = (n) => (n === 0 ? '0' : `0x${n.toString(16)}`)
    const rows = data(expected).map((e) => `${hex(e.start).padEnd(16)}${hex(e.length).padEnd(16)}${hex(e.offset).padEnd(16)}${file}`)
    assert.deepEqual(text.slice(1, -1), rows)
  })
})

// ---- check ----

// ---- what SRC and DST are ----

describe('convert: what SRC and DST are', () => {
  test('a raw disk that starts like a VHD is converted as raw, with a warning on stderr; --from vhd reads its footer copy', async () => {
    const { file, bytes, innerDisk } = await rawDiskStartingLikeAVhd(tmp.dir)
    const out = path.join(tmp.dir, 'looks-like.raw')
    const res = vhd(['convert', '--to', 'raw', file, out])
    assert.equal(res.status, 0, res.stderr)
    assert.match(res.stdout, /^Converted .* virtual size 4 MiB/)
    assert.match(res.stderr, /^vhd: warning: .*read as a raw disk, although its first 512 bytes are the footer copy of a dynamic VHD.*\(source format 'vhd'\)\n$/s)
    assert.ok(fs.readFileSync(out).equals(bytes), 'the raw disk, byte for byte')
    // -q keeps the warning.
    const quiet = vhd(['convert', '-q', '--overwrite', '--to', 'raw', file, out])
    assert.equal(quiet.stdout, '')
    assert.match(quiet.stderr, /^vhd: warning: /)
    const asVhd = path.join(tmp.dir, 'looks-like-as-vhd.raw')
    vhdOk(['convert', '-q', '--from', 'vhd', '--to', 'raw', file, asVhd])
    assert.ok(fs.readFileSync(asVhd).equals(innerDisk), 'the 1 MiB disk of its footer copy')
  })

  test('a FIFO as SRC, DST or image fails at once with ERR_VHD_FILE_TYPE (it used to hang)', () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'fifo-'))
    const fifo = mkfifo(path.join(dir, 'fifo'))
    const src = path.join(tmp.dir, 'fifo-src.raw')
    fs.writeFileSync(src, pattern(MiB, 4))
    const image = path.join(tmp.dir, 'fifo-image.vhd')
    vhdOk(['create', image, '1M'])
    for (const args of [
      ['convert', '--overwrite', src, fifo],
      ['convert', src, fifo],
      ['convert', fifo, path.join(dir, 'out.vhd')],
      ['create', '--overwrite', fifo, '1M'],
      ['snapshot', image, fifo],
      ['info', fifo],
      ['check', fifo],
      ['check', '--repair', fifo],
      ['compact', fifo],
      ['resize', fifo, '2M'],
      ['commit', fifo],
      ['map', fifo],
      ['cat', fifo],
    ]) {
      const res = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' })
      assert.equal(res.signal, null, `vhd ${args.join(' ')} hung (killed after 30 s)`)
      assert.equal(res.status, 1, `vhd ${args.join(' ')}: ${res.stdout}${res.stderr}`)
      assert.match(res.stderr, /^vhd: ERR_VHD_FILE_TYPE: .*fifo is a FIFO \(named pipe\)/, args.join(' '))
    }
    assert.ok(fs.statSync(fifo).isFIFO())
    assert.deepEqual(fs.readdirSync(dir), ['fifo'])
  })

  test('convert --overwrite onto a character device or a link to it is refused; it stays a device', { skip: NEEDS_ROOT }, () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'chardev-'))
    const device = mknodNull(path.join(dir, 'null'))
    const link = path.join(dir, 'link')
    fs.symlinkSync(device, link)
    const src = path.join(tmp.dir, 'chardev-src.raw')
    fs.writeFileSync(src, pattern(MiB, 4))
    for (const destination of [device, link]) {
      vhdFails(['convert', '--overwrite', '--to', 'raw', src, destination], 'ERR_VHD_FILE_TYPE', /is a character device: the destination must be a regular file or a block device/)
      vhdFails(['create', '--overwrite', destination, '1M'], 'ERR_VHD_FILE_TYPE', /is a character device/)
      assert.ok(fs.statSync(destination).isCharacterDevice())
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), ['link', 'null'])
  })

  test('convert --overwrite onto a block device writes it in place, as qemu-img does', { skip: NEEDS_ROOT }, () => {
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'blockdev-'))
    const backing = path.join(dir, 'backing')
    fs.writeFileSync(backing, Buffer.alloc(8 * MiB, 0xaa))
    const attach = spawnSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' })
    assert.equal(attach.status, 0, `losetup cannot attach a loop device: ${attach.error || ''}${attach.stderr}`)
    const loop = attach.stdout.trim()
    try {
      // Named through a node made here, never /dev/loopN itself (see core/tests/file_types.rs).
      const [major, minor] = run('stat', ['-c', '%t %T', loop]).trim().split(' ').map((hex) => String(parseInt(hex, 16)))
      const node = path.join(dir, 'device')
      run('mknod', [node, 'b', major, minor])
      const src = path.join(dir, 'src.raw')
      const data = Buffer.concat([pattern(MiB, 8), Buffer.alloc(2 * MiB), pattern(MiB, 9)])
      fs.writeFileSync(src, data)
      vhdFails(['convert', '--to', 'raw', src, node], 'ERR_VHD_EXISTS')
      const res = vhdOk(['convert', '--overwrite', '--to', 'raw', src, node])
      assert.match(res.stdout, /virtual size 4 MiB/)
      const written = fs.readFileSync(node)
      assert.equal(written.length, 8 * MiB)
      assert.ok(written.subarray(0, 4 * MiB).equals(data), 'the disk, zeros written as zeros')
      assert.ok(written.subarray(4 * MiB).equals(Buffer.alloc(4 * MiB, 0xaa)), 'the rest left as it was')
      assert.ok(fs.statSync(node).isBlockDevice())
      const big = path.join(dir, 'big.raw')
      fs.writeFileSync(big, Buffer.alloc(9 * MiB, 1))
      vhdFails(['convert', '--overwrite', '--to', 'raw', big, node], 'ERR_VHD_INVALID_ARGUMENT', /is a block device of 8388608 bytes, too small/)
    } finally {
      spawnSync('losetup', ['--detach', loop])
    }
  })
})

describe('check', () => {
  /** A dynamic image (qemu) with block 1 allocated, then its BAT entry cleared: a leak. */
  function leakyImage(name) {
    const file = qemuImage(name, 'dynamic', 8 * MiB, ['write -P 1 0 4k', 'write -P 2 2M 4k'])
    const info = JSON.parse(vhdOk(['info', '--json', file]).stdout)
    const fd = fs.openSync(file, 'r+')
    fs.writeSync(fd, Buffer.alloc(4, 0xff), 0, 4, info.header.tableOffset + 4)
    fs.closeSync(fd)
    return file
  }

  test('a clean image: exit code 0 and qemu-img check\'s sentence', () => {
    const file = path.join(tmp.dir, 'check-clean.vhd')
    vhdOk(['create', file, '8M'])
    const { stdout } = vhdOk(['check', file])
    assert.match(stdout, /^No errors were found on the image\.$/m)
    const json = JSON.parse(vhdOk(['check', '--json', file]).stdout)
    assert.equal(json.exitCode, 0)
    assert.equal(json.corruptions, 0)
    assert.equal(json.type, 'dynamic')
    // A fresh image has no findings at all (issue 15): its CHS geometry is in info.
    assert.deepEqual(json.findings, [])
    assert.equal(stdout.split('\n')[0], 'No errors were found on the image.')
  })

  test('check --json is what VHD.check() resolves to, key for key (one shape)', async () => {
    const file = path.join(tmp.dir, 'check-shape.vhd')
    vhdOk(['create', file, '8M'])
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 512 + 64] ^= 0xff // the footer's checksum: a finding with an offset
    fs.writeFileSync(file, bytes)
    const cli = JSON.parse(vhd(['check', '--json', file]).stdout)
    const js = await VHD.check(file)
    assert.deepEqual(cli, js)
    assert.deepEqual(Object.keys(cli), Object.keys(js))
    assert.equal(typeof cli.path, 'string')
    assert.equal('filename' in cli, false)
    assert.deepEqual([typeof cli.leaks, typeof cli.corruptions], ['number', 'number'])
    assert.ok(cli.findings.some((f) => f.code === 'footer-checksum' && typeof f.offset === 'number'))

    const repaired = JSON.parse(vhdOk(['check', '--repair', '--json', file]).stdout)
    fs.writeFileSync(file, bytes)
    const repairedJs = await VHD.check(file, { repair: true })
    // The same keys and values, but for the time stamps of the messages, if any.
    assert.deepEqual(Object.keys(repaired), Object.keys(repairedJs))
    assert.deepEqual(repaired.repairs.map((r) => r.code), repairedJs.repairs.map((r) => r.code))
    assert.deepEqual([repaired.exitCode, repaired.before.exitCode], [0, 2])
  })

  test('a corrupt image: exit code 2', () => {
    const file = path.join(tmp.dir, 'check-corrupt.vhd')
    vhdOk(['create', file, '8M'])
    const bytes = fs.readFileSync(file)
    bytes[bytes.length - 512 + 64] ^= 0xff // the footer's checksum
    fs.writeFileSync(file, bytes)
    const res = vhd(['check', file])
    assert.equal(res.status, 2, res.stderr)
    assert.match(res.stdout, /^ERROR \[footer-checksum\]/m)
    assert.match(res.stdout, /\d+ errors were found on the image\.\nData may be corrupted, or further writes to the image may corrupt it\./)
    const json = JSON.parse(vhd(['check', '--json', file]).stdout)
    assert.equal(json.exitCode, 2)
    assert.ok(json.findings.some((f) => f.code === 'footer-checksum' && f.severity === 'corrupt'))
  })

  test('leaked space only: exit code 3', { skip: needs('qemu') }, () => {
    const file = leakyImage('check-leak.vhd')
    const res = vhd(['check', file])
    assert.equal(res.status, 3, res.stdout + res.stderr)
    assert.match(res.stdout, /1 leaked blocks were found on the image\.\nThis means waste of disk space, but no harm to data\./)
    assert.equal(JSON.parse(vhd(['check', '--json', file]).stdout).leakedBlocks, 1)
  })

  test('check --repair refuses to cut a leaked block that holds data (file untouched); --force reclaims it; qemu-img reads the same disk', { skip: needs('qemu') }, () => {
    // Block 1 holds data, but its BAT entry is gone: cutting it could destroy data a BAT
    // entry lost, so not without --force.
    const file = leakyImage('check-repair.vhd')
    const before = qemuRaw(file)
    const bytes = fs.readFileSync(file)
    const refused = vhd(['check', '--repair', file])
    assert.equal(refused.status, 1, refused.stdout + refused.stderr)
    assert.match(refused.stdout, /^Leaked \[leaked-block\]/m)
    assert.match(refused.stdout, /Repair refused, nothing was written\. It would:\n {4}bytes 2099712\.\.4197376, .* hold 1 plausible block\(s\)/)
    assert.match(refused.stdout, /Keep a copy of .*check-repair\.vhd, then run 'vhd check --repair --force'/)
    assert.match(refused.stderr, /^vhd: ERR_VHD_REPAIR_REFUSED: the repair of .*check-repair\.vhd was refused, and nothing was written: .*Keep a copy of the file/)
    assert.ok(fs.readFileSync(file).equals(bytes), 'a refused repair wrote')
    const json = JSON.parse(vhd(['check', '--repair', '--json', file]).stdout)
    assert.deepEqual([json.refused, json.code, json.exitCode, json.repairs, json.leakedBlocks], [true, 'ERR_VHD_REPAIR_REFUSED', 1, [], 1])
    assert.match(json.risks[0], /plausible block/)
    assert.ok(fs.readFileSync(file).equals(bytes), 'a refused repair wrote')
    vhdFails(['check', '--force', file], 'ERR_VHD_USAGE', /--force only applies to --repair/)

    const res = vhd(['check', '--repair', '--force', file])
    assert.equal(res.status, 0, res.stdout + res.stderr)
    assert.match(res.stdout, /^Forced: bytes 2099712\.\.4197376, .* hold 1 plausible block\(s\)/m)
    assert.match(res.stdout, /The following inconsistencies were found and repaired:\n\n {4}1 leaked blocks\n {4}0 corruptions\n/)
    assert.match(res.stdout, /Double checking the fixed image now\.\.\.\n(Info .*\n\n)?No errors were found on the image\./)
    assert.equal(vhd(['check', file]).status, 0)
    const again = JSON.parse(vhdOk(['check', '--repair', '--json', file]).stdout)
    assert.deepEqual([again.repairs, again.exitCode, again.leakedBlocks], [[], 0, 0])
    assert.ok(qemuRaw(file).equals(before), 'the repair changed what the disk reads')
  })

  test('check --repair restores a table offset that lost a bit instead of believing it (issue 13)', () => {
    const file = path.join(tmp.dir, 'check-flipped.vhd')
    const raw = path.join(tmp.dir, 'check-flipped.raw')
    // Ten 2 MiB blocks, each with data: the file is about 20 MiB.
    const disk = Buffer.alloc(20 * MiB)
    for (let block = 0; block < 10; block++) disk.fill(block + 1, block * 2 * MiB + 4096, block * 2 * MiB + MiB)
    fs.writeFileSync(raw, disk)
    vhdOk(['convert', '--to', 'dynamic', '-q', raw, file])
    const bytes = fs.readFileSync(file)
    const damaged = Buffer.from(bytes)
    damaged[512 + 21] ^= 0x10 // table offset 0x600 → 0x100600, inside block 0's data
    fs.writeFileSync(file, damaged)
    assert.equal(vhd(['check', file]).status, 2)
    const res = vhd(['check', '--repair', file])
    assert.equal(res.status, 0, res.stdout + res.stderr)
    assert.match(res.stdout, /Repairing \[header-checksum\]: the dynamic header's table offset 0x100600 had a flipped bit/)
    assert.ok(fs.readFileSync(file).equals(bytes), 'the header was not restored as it was')
    assert.ok(fs.statSync(file).size > 20 * MiB, 'the file was cut')
  })

  test('past 1000 findings of a kind: the text and --json say how many were not listed', async () => {
    const file = path.join(tmp.dir, 'check-many.vhd')
    await imageWithManyFindings(file, { overlaps: 1500, outside: 1200 })
    const res = vhd(['check', file])
    assert.equal(res.status, 2, res.stderr)
    assert.match(res.stdout, /^ERROR \[overlap\]: … and 500 more overlap findings, not listed/m)
    assert.match(res.stdout, /^ERROR \[bitmap-out-of-range\]: … and 200 more bitmap-out-of-range findings/m)
    assert.match(res.stdout, /^2700 errors were found on the image\./m)

    const json = JSON.parse(vhd(['check', '--json', file]).stdout)
    assert.equal(json.corruptions, 2700)
    const overlaps = json.findings.filter((f) => f.code === 'overlap')
    assert.equal(overlaps.length, 1001)
    assert.ok(overlaps.slice(0, 1000).every((f) => !('omitted' in f) && typeof f.offset === 'number'))
    assert.deepEqual([overlaps[1000].omitted, overlaps[1000].offset, overlaps[1000].severity], [500, undefined, 'corrupt'])

    // Dropping 1200 allocated blocks needs --force.
    const refused = JSON.parse(vhd(['check', '--repair', '--json', file]).stdout)
    assert.deepEqual([refused.refused, refused.exitCode], [true, 1])
    assert.match(refused.risks[0], /^1200 BAT entries point at blocks that are not in the file/)
    const repair = JSON.parse(vhd(['check', '--repair', '--force', '--json', file]).stdout)
    assert.match(repair.forced[0], /^1200 BAT entries point at blocks that are not in the file/)
    const drops = repair.repairs.filter((a) => a.code === 'bitmap-out-of-range')
    assert.equal(drops.length, 1001)
    assert.deepEqual([drops[999].omitted, drops[1000].omitted], [undefined, 200])
    assert.deepEqual([repair.lost.length, repair.lostOmitted], [1000, 200])
    assert.deepEqual([repair.before.corruptions, repair.corruptions, repair.exitCode], [2700, 1500, 2])
  })

  test('check of a file that is not there: exit code 1', () => {
    vhdFails(['check', 'nothing.vhd'], 'ENOENT')
  })
})

// ---- changing images ----

describe('compact, resize, commit, rebase, snapshot', () => {
  test('compact drops all-zero blocks; qemu-img compare finds the same disk', { skip: needs('qemu') }, () => {
    const file = qemuImage('compact.vhd', 'dynamic', 8 * MiB, ['write -P 1 0 64k', 'write -P 0 2M 2M', 'write -P 0 4M 1M'])
    const copy = `${file}.before`
    fs.copyFileSync(file, copy)
    const sizeBefore = fs.statSync(file).size
    const { stdout } = vhdOk(['compact', file])
    assert.match(stdout, /^Image compacted: 3 blocks to 1/)
    assert.ok(fs.statSync(file).size < sizeBefore - 4 * MiB, 'the file shrank')
    qemuImg('compare', '-q', '-f', 'vpc', '-F', 'vpc', copy, file)
    vhdOk(['check', file])
  })

  test('resize grows and shrinks; qemu-img sees the new size and the same data', { skip: needs('qemu') }, () => {
    const file = qemuImage('resize.vhd', 'dynamic', 8 * MiB, ['write -P 9 1M 64k'])
    const before = qemuRaw(file)
    assert.match(vhdOk(['resize', file, '16M']).stdout, /^Image resized from 8 MiB .* to 16 MiB/)
    assert.equal(qemuInfo(file)['virtual-size'], 16 * MiB)
    vhdOk(['resize', file, '+1M'])
    assert.equal(qemuInfo(file)['virtual-size'], 17 * MiB)
    vhdOk(['resize', file, '-9M'])
    assert.equal(qemuInfo(file)['virtual-size'], 8 * MiB)
    assert.ok(qemuRaw(file).equals(before))
    // Shrinking over data needs --force.
    vhdFails(['resize', file, '1M'], 'ERR_VHD_INVALID_ARGUMENT')
    assert.equal(qemuInfo(file)['virtual-size'], 8 * MiB)
    vhdOk(['resize', '--force', file, '1M'])
    assert.equal(qemuInfo(file)['virtual-size'], MiB)
    const fixed = qemuImage('resize-fixed.vhd', 'fixed', 2 * MiB, ['write -P 4 0 4k'])
    vhdOk(['resize', fixed, '3M'])
    assert.equal(qemuInfo(fixed)['virtual-size'], 3 * MiB)
    assert.equal(fs.statSync(fixed).size, 3 * MiB + 512)
  })

  test('commit writes the child into its parent; commit of a dynamic image is refused', { skip: needs('qemu', 'pyvhdi') }, async () => {
    const base = qemuImage('commit-base.vhd', 'dynamic', 6 * MiB, ['write -P 1 0 1M'])
    const child = path.join(tmp.dir, 'commit-child.vhd')
    vhdOk(['create', '--parent', base, child])
    await writeInto(child, [[512 * KiB, pattern(MiB, 11)], [4 * MiB, pattern(8 * KiB, 12)]])
    const expected = pyvhdiRead(child, base)
    assert.match(vhdOk(['commit', child]).stdout, /^Image committed: /)
    assert.equal(sha256(qemuRaw(base)), sha256(expected))
    vhdFails(['commit', base], 'ERR_VHD_WRONG_TYPE', /expected a differencing VHD, found a dynamic VHD/)
  })

  test('rebase points a child at its moved parent', { skip: needs('vhdiinfo', 'pyvhdi') }, async () => {
    const dir = path.join(tmp.dir, 'rebase')
    fs.mkdirSync(path.join(dir, 'moved'), { recursive: true })
    const base = path.join(dir, 'base.vhd')
    const child = path.join(dir, 'child.vhd')
    vhdOk(['create', base, '4M'])
    await writeInto(base, [[0, pattern(64 * KiB, 13)]])
    vhdOk(['create', '--parent', base, child])
    const moved = path.join(dir, 'moved', 'renamed-base.vhd')
    fs.renameSync(base, moved)
    vhdFails(['cat', child], 'ERR_VHD_PARENT_NOT_FOUND')
    // info still describes the child, and says what is wrong with its parent (issue 15).
    const broken = vhd(['info', child])
    assert.equal(broken.status, 0, broken.stderr)
    assert.match(broken.stdout, /^parent chain: BROKEN \(ERR_VHD_PARENT_NOT_FOUND\)/m)
    assert.match(broken.stderr, /^vhd: warning: ERR_VHD_PARENT_NOT_FOUND: /)
    vhdOk(['rebase', child, moved])
    const info = JSON.parse(vhdOk(['info', '--json', child]).stdout)
    assert.equal(info.parent.path, fs.realpathSync(moved))
    assert.equal(vhdiinfo(child)['Parent filename'], 'renamed-base.vhd')
    assert.ok(pyvhdiRead(child, moved).equals(pyvhdiRead(moved)))
  })

  test('snapshot makes a differencing child that libvhdi reads as the parent', { skip: needs('qemu', 'vhdiinfo', 'pyvhdi') }, () => {
    const base = qemuImage('snapshot-base.vhd', 'dynamic', 4 * MiB, ['write -P 3 0 1M'])
    const child = path.join(tmp.dir, 'snapshot-child.vhd')
    vhdOk(['snapshot', base, child])
    const libvhdi = vhdiinfo(child)
    assert.equal(libvhdi['Disk type'], 'Differential')
    assert.equal(libvhdi['Parent identifier'], vhdiinfo(base).Identifier)
    assert.ok(pyvhdiRead(child, base).equals(qemuRaw(base)))
    vhdFails(['snapshot', base, child], 'ERR_VHD_EXISTS')
  })
})

// ---- as installed by npm ----

const MINUTE = 60 * 1000
test('npm install of the packed tarball gives a working `npx vhd`', { timeout: 25 * MINUTE }, () => {
  const { cargoTargetDir } = require('../scripts/install.js')
  const KEEP = new Set(['cache', 'registry', 'userconfig', 'globalconfig', 'proxy', 'https_proxy', 'noproxy', 'cafile', 'strict_ssl'].map((k) => `npm_config_${k}`))
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase()
    if (lower.startsWith('npm_') && !KEEP.has(lower)) continue
    if (key === 'INIT_CWD' || key === 'NODE_TEST_CONTEXT' || key === 'VHD_BUILD_FROM_SOURCE') continue
    env[key] = value
  }
  // Reuse this repository's compiled dependencies: only the workspace crates are rebuilt.
  env.CARGO_TARGET_DIR = cargoTargetDir(ROOT)
  const sh = (cmd, args, cwd, timeout = 5 * MINUTE) => {
    const res = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 * MiB })
    assert.equal(res.status, 0, `${cmd} ${args.join(' ')} failed: ${res.error || ''}${res.stdout}${res.stderr}`.slice(-8000))
    return res
  }
  const dest = path.join(tmp.dir, 'packed')
  fs.mkdirSync(dest)
  const [packed] = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', dest], ROOT).stdout)
  const files = packed.files.map((f) => f.path)
  for (const f of ['bin/vhd.js', 'cli/Cargo.toml', 'cli/src/lib.rs', 'cli/src/main.rs', 'src/cli.rs', 'nbd/Cargo.toml', 'nbd/src/lib.rs']) {
    assert.ok(files.includes(f), `${f} is missing from the tarball`)
  }
  const tarball = path.join(dest, packed.filename)
  const project = path.join(tmp.dir, 'project')
  fs.mkdirSync(project)
  const pkg = { name: 'scratch-cli', version: '1.0.0', private: true, allowScripts: { [`file:${tarball}`]: true } }
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify(pkg))
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], project, 20 * MINUTE)

  const help = sh('npx', ['--no-install', 'vhd', '--help'], project).stdout
  assert.match(help, /^vhd version 1\.0\.0/)
  const created = sh('npx', ['--no-install', 'vhd', 'create', 'disk.vhd', '64M'], project).stdout
  assert.match(created, /^Formatting 'disk\.vhd', fmt=vpc subformat=dynamic size=67108864/)
  const info = JSON.parse(sh('npx', ['--no-install', 'vhd', 'info', '--json', 'disk.vhd'], project).stdout)
  assert.equal(info.type, 'dynamic')
  assert.equal(info.virtualSize, 64 * MiB)
  const failed = spawnSync('npx', ['--no-install', 'vhd', 'info', 'nothing.vhd'], { cwd: project, env, encoding: 'utf8' })
  assert.equal(failed.status, 1)
  assert.match(failed.stderr, /^vhd: ENOENT: nothing\.vhd: /m)
})

describe('Ctrl-C', () => {
  for (const signalName of ['SIGINT', 'SIGTERM']) test(`the first ${signalName} cancels a long convert cleanly: exit 130, no output, no temporary file`, async () => {
    const { spawn } = require('node:child_process')
    const dir = fs.mkdtempSync(path.join(tmp.dir, 'sigint-'))
    // A 16 GiB sparse raw file with data in every 2 MiB (cheap to make): every chunk is
    // read, which takes far longer than the signal takes to arrive.
    const source = path.join(dir, 'big.raw')
    dataInEveryChunk(source, 16 * 1024 * MiB)
    const destination = path.join(dir, 'out.vhd')
    const child = spawn(process.execPath, [BIN, 'convert', '-p', source, destination], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let signalled = false
    child.stderr.on('data', (chunk) => {
      stderr += chunk
      // The progress bar is drawn: the conversion is under way.
      if (!signalled && stderr.includes('/100%)')) {
        signalled = true
        child.kill(signalName)
      }
    })
    const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])))
    assert.ok(signalled, `the progress bar was drawn: ${stderr}`)
    assert.equal(signal, null, 'the process exited by itself, not by the signal')
    assert.equal(code, 130, stderr)
    assert.match(stderr, /vhd: ERR_VHD_CANCELLED: /)
    assert.deepEqual(fs.readdirSync(dir), ['big.raw'], 'neither the output nor a temporary file is left')
  })
})
