'use strict'

// Drop-in compatibility with vhd@0.5.0 (the dev dependency `vhd-js`) for its structure
// classes (Footer, Header, Locator), its helpers (checksum, getDiskGeometry) and its
// constants. Every scenario runs through both modules: the results must be identical
// wherever 0.5.0 is right. Where 0.5.0 is wrong, the test title says so ("fixes 0.5.0: ...")
// and the test checks both that 0.5.0 fails and that this package is right; deliberate
// differences say "differs from 0.5.0".
//
// The structures come from the real images of the corpus (shared/corpus beside the
// repository) and from images made here with VHD.create. Without the corpus, its cases are
// skipped, except under CI (CI set), where that is a failure.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')
const OLD = require('vhd-js')
const VHD = require('..')
const { MiB, tempDir, vhdChecksum, throwsWith } = require('./helpers.js')

const CORPUS = path.join(__dirname, '..', '..', 'shared', 'corpus')
const haveCorpus = fs.existsSync(CORPUS)
const MISSING = 'the test corpus (shared/corpus beside the repository) is missing'
const skipCorpus = !haveCorpus && !process.env.CI ? `${MISSING}; skipping the corpus cases` : false

/** The bytes of a corpus file (decompressed when it ends in .gz). */
function corpus(name) {
  assert.ok(haveCorpus, `${MISSING}, and CI requires the corpus cases`)
  const bytes = fs.readFileSync(path.join(CORPUS, name))
  return name.endsWith('.gz') ? zlib.gunzipSync(bytes) : bytes
}

/** Every image of the corpus that is stored raw or gzip-compressed. */
function corpusImages() {
  if (!haveCorpus) return []
  const found = []
  for (const dir of fs.readdirSync(CORPUS, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue
    for (const file of fs.readdirSync(path.join(CORPUS, dir.name))) {
      if (/\.vhdf?(\.gz)?$/.test(file)) found.push(`${dir.name}/${file}`)
    }
  }
  return found.sort()
}

// ---------------------------------------------------------------------------------------
// Helpers

/** A structure's fields as plain data (the classes differ, the fields must not). */
function plain(structure) {
  const fields = { ...structure }
  if (Array.isArray(fields.parentLocators)) fields.parentLocators = fields.parentLocators.map((l) => ({ ...l }))
  return fields
}

/** `fields` without the named keys. */
function without(fields, ...keys) {
  const copy = { ...fields }
  for (const key of keys) delete copy[key]
  return copy
}

/** A parent locator entry read straight from the bytes, as the specification lays it out. */
function rawLocator(header, slot) {
  const at = 576 + slot * 24
  return {
    platformCode: header.readUInt32BE(at),
    dataSpace: header.readUInt32BE(at + 4),
    dataLength: header.readUInt32BE(at + 8),
    reserved: header.readUInt32BE(at + 12),
    dataOffset: header.readBigUInt64BE(at + 16),
  }
}

/** The entries of a header up to the last one that is not all zeros. */
function rawLocators(header) {
  const entries = Array.from({ length: 8 }, (_, slot) => rawLocator(header, slot))
  let used = 8
  while (used > 0 && header.subarray(576 + (used - 1) * 24, 576 + used * 24).every((b) => b === 0)) used--
  return entries.slice(0, used)
}

/** Asserts `written` is `original` with a correct checksum (the same bytes when it was right). */
function assertRewritten(written, original, checksumOffset) {
  assert.equal(written.length, original.length)
  assert.equal(written.readUInt32BE(checksumOffset), vhdChecksum(written, checksumOffset), 'the checksum written is right')
  const a = Buffer.from(written)
  const b = Buffer.from(original)
  a.fill(0, checksumOffset, checksumOffset + 4)
  b.fill(0, checksumOffset, checksumOffset + 4)
  assert.ok(a.equals(b), 'every other byte is the original one')
  if (original.readUInt32BE(checksumOffset) === vhdChecksum(original, checksumOffset)) {
    assert.ok(written.equals(original), 'a structure with a right checksum is written back byte for byte')
  }
}

/**
 * Parses and writes a footer through both modules: identical fields and bytes, and the
 * original bytes back. Returns our Footer.
 */
function compareFooter(bytes, label) {
  const ours = VHD.Footer.parse(bytes)
  const old = OLD.Footer.parse(bytes)
  assert.deepEqual(plain(ours), plain(old), `${label}: the fields are 0.5.0's`)
  assert.ok(ours instanceof VHD.Footer)
  assert.deepEqual(plain(new VHD.Footer().parse(bytes)), plain(ours), `${label}: instance parse = static parse`)
  const written = ours.write()
  assertRewritten(written, bytes, 64)
  assert.ok(written.equals(old.write()), `${label}: the bytes written are 0.5.0's`)
  return ours
}

/**
 * Parses and writes a dynamic disk header through both modules: every field but the three
 * 0.5.0 gets wrong is identical; those are checked against the bytes. Returns our Header.
 */
function compareHeader(bytes, label) {
  const ours = VHD.Header.parse(bytes)
  const old = OLD.Header.parse(bytes)
  const wrongIn050 = ['parentName', 'parentLocators', 'calculatedChecksum']
  assert.deepEqual(without(plain(ours), ...wrongIn050), without(plain(old), ...wrongIn050), `${label}: the fields are 0.5.0's`)
  assert.deepEqual(ours.parentLocators.map((l) => ({ ...l })), rawLocators(bytes), `${label}: the locators are the entries`)
  assert.ok(ours.parentLocators.every((l) => l instanceof VHD.Locator))
  assert.equal(ours.calculatedChecksum, vhdChecksum(bytes, 36), `${label}: calculatedChecksum`)
  if (ours.parentName === '') assert.equal(old.parentName, '')
  const written = ours.write()
  assertRewritten(written, bytes, 36)
  if (ours.parentName === '' && ours.parentLocators.length === 0) {
    assert.ok(written.equals(old.write()), `${label}: the bytes written are 0.5.0's`)
  }
  return ours
}

// ---------------------------------------------------------------------------------------
// Constants

// Constants whose values must be exactly 0.5.0's.
const SAME_CONSTANTS = [
  'TYPE', 'PLATFORM', 'FEATURES', 'SECTOR', 'EPOCH', 'MIN_SIZE', 'BLOCK_SIZE', 'SECTOR_SIZE',
  'TABLE_ENTRY_SIZE', 'HEADER_SIZE', 'FOOTER_SIZE', 'NULL_OFFSET', 'MAX_DYNAMIC_SIZE', 'VERSION',
  'ACCESS', 'ATTACH', 'COMPACT', 'CREATE', 'DEPENDENCY', 'DETACH', 'EXPAND', 'GETINFO', 'MERGE',
  'MIRROR', 'OPEN', 'RESIZE', 'SETINFO', 'STORAGE', 'VENDOR',
]

// 0.5.0's Footer#parse changes its CREATOR_VERSION (a bug, tested below): its value as loaded.
const OLD_CREATOR_VERSION = { ...OLD.CREATOR_VERSION }

test('every constant and enum of 0.5.0 has the same value', () => {
  for (const name of SAME_CONSTANTS) {
    assert.ok(name in VHD, `VHD.${name} is exported`)
    assert.deepEqual(VHD[name], OLD[name], `VHD.${name}`)
  }
  // Nothing 0.5.0 exports as a value is missing (functions and classes are tested below).
  const values = Object.keys(OLD).filter((key) => typeof OLD[key] !== 'function')
  assert.deepEqual(values.filter((key) => !(key in VHD)), [])
  assert.deepEqual(values.sort(), [...SAME_CONSTANTS, 'CREATOR_APPLICATION', 'CREATOR_VERSION'].sort())
})

test('CREATOR_APPLICATION and CREATOR_VERSION have 0.5.0\'s shapes and describe the images we write', async () => {
  assert.equal(typeof OLD.CREATOR_APPLICATION, 'string')
  assert.equal(OLD.CREATOR_APPLICATION.length, 4)
  assert.equal(VHD.CREATOR_APPLICATION, 'win ')
  assert.deepEqual(Object.keys(VHD.CREATOR_VERSION), Object.keys(OLD_CREATOR_VERSION))
  const [major, minor] = VHD.version.split('.').map(Number)
  assert.deepEqual(VHD.CREATOR_VERSION, { major, minor })
  assert.deepEqual(VHD.CREATOR_VERSION, { major: 1, minor: 0 })
  // They are what VHD.create writes.
  const tmp = tempDir('vhd-compat-')
  try {
    const file = tmp.file()
    await (await VHD.create(file, { type: 'fixed', size: 3 * MiB })).close()
    const bytes = fs.readFileSync(file)
    const footer = VHD.Footer.parse(bytes.subarray(-512))
    assert.equal(footer.creatorApplication, VHD.CREATOR_APPLICATION)
    assert.deepEqual(footer.creatorVersion, VHD.CREATOR_VERSION)
  } finally {
    tmp.cleanup()
  }
})

test('the creator defaults can be reassigned, as in 0.5.0: new Footers take them', () => {
  const saved = [VHD.CREATOR_APPLICATION, VHD.CREATOR_VERSION, OLD.CREATOR_APPLICATION, OLD.CREATOR_VERSION]
  try {
    for (const M of [VHD, OLD]) {
      M.CREATOR_APPLICATION = 'test'
      M.CREATOR_VERSION = { major: 7, minor: 3 }
      const footer = new M.Footer()
      assert.equal(footer.creatorApplication, 'test')
      assert.deepEqual(footer.creatorVersion, { major: 7, minor: 3 })
    }
  } finally {
    ;[VHD.CREATOR_APPLICATION, VHD.CREATOR_VERSION, OLD.CREATOR_APPLICATION, OLD.CREATOR_VERSION] = saved
  }
  assert.equal(new VHD.Footer().creatorApplication, 'win ')
})

test('the structure classes have 0.5.0\'s static constants', () => {
  for (const [name, keys] of [
    ['Footer', ['SIZE', 'CHECKSUM_OFFSET', 'SIGNATURE']],
    ['Header', ['SIZE', 'PARENT_LOCATOR_COUNT', 'CHECKSUM_OFFSET', 'SIGNATURE']],
    ['Locator', ['SIZE']],
  ]) {
    for (const key of keys) assert.equal(VHD[name][key], OLD[name][key], `${name}.${key}`)
    assert.equal(typeof VHD[name].parse, 'function', `static ${name}.parse`)
  }
})

// ---------------------------------------------------------------------------------------
// New structures

test('new Footer(), Header() and Locator() have 0.5.0\'s defaults and write the same bytes', () => {
  const footer = new VHD.Footer()
  const oldFooter = new OLD.Footer()
  assert.deepEqual(
    without(plain(footer), 'creatorApplication', 'creatorVersion'),
    without(plain(oldFooter), 'creatorApplication', 'creatorVersion'),
  )
  assert.equal(footer.creatorApplication, VHD.CREATOR_APPLICATION)
  assert.deepEqual(footer.creatorVersion, VHD.CREATOR_VERSION)
  assert.notEqual(footer.creatorVersion, VHD.CREATOR_VERSION, 'a copy, not the shared object')
  oldFooter.creatorApplication = footer.creatorApplication
  oldFooter.creatorVersion = { ...footer.creatorVersion }
  const bytes = footer.write()
  assert.equal(bytes.length, 512)
  assert.ok(bytes.equals(oldFooter.write()))
  assert.equal(bytes.readUInt32BE(64), vhdChecksum(bytes, 64))

  const header = new VHD.Header()
  assert.deepEqual(plain(header), plain(new OLD.Header()))
  assert.ok(header.write().equals(new OLD.Header().write()))
  assert.equal(header.write().length, 1024)

  const locator = new VHD.Locator()
  assert.deepEqual(plain(locator), plain(new OLD.Locator()))
  assert.ok(locator.write().equals(new OLD.Locator().write()))
})

test('write() returns the buffer it was given and allocates offset + size bytes without one, like 0.5.0', () => {
  for (const name of ['Footer', 'Header']) {
    const size = VHD[name].SIZE
    const given = Buffer.alloc(size + 40, 0xee)
    assert.equal(new VHD[name]().write(given, 40), given)
    assert.ok(given.subarray(0, 40).every((b) => b === 0xee), 'nothing is written before the offset')
    const made = new VHD[name]().write(undefined, 40)
    assert.equal(made.length, new OLD[name]().write(undefined, 40).length)
    assert.equal(made.length, size + 40)
    assert.ok(made.subarray(40).equals(new VHD[name]().write()))
    const view = new Uint8Array(size)
    assert.equal(new VHD[name]().write(view), view, 'a Uint8Array is written into too')
    // Too small: nothing written, a RangeError.
    const small = Buffer.alloc(size + 10)
    throwsWith(() => new VHD[name]().write(small, 11), 'ERR_OUT_OF_RANGE', RangeError)
    assert.ok(small.every((b) => b === 0))
  }
})

test('fixes 0.5.0: Locator#write without a buffer allocates offset + 24 bytes (0.5.0 allocates 24 and throws)', () => {
  assert.throws(() => new OLD.Locator().write(undefined, 8), RangeError)
  const made = new VHD.Locator().write(undefined, 8)
  assert.equal(made.length, 32)
})

test('a bad cookie fails to parse, as in 0.5.0, with the same message and a code', () => {
  const footer = new VHD.Footer().write()
  footer.write('notvhd!!', 0, 'latin1')
  const header = new VHD.Header().write()
  header.write('cxspars_', 0, 'latin1')
  for (const [name, bytes] of [['Footer', footer], ['Header', header]]) {
    let oldMessage
    assert.throws(() => OLD[name].parse(bytes), (error) => {
      oldMessage = error.message
      return true
    })
    assert.throws(() => VHD[name].parse(bytes), (error) => {
      assert.equal(error.message, oldMessage)
      assert.equal(error.code, 'ERR_VHD_BAD_COOKIE')
      return true
    })
  }
})

test('parse checks its arguments: bytes, and a structure that fits in them', () => {
  throwsWith(() => VHD.Footer.parse('conectix'), 'ERR_INVALID_ARG_TYPE', TypeError)
  throwsWith(() => VHD.Header.parse(null), 'ERR_INVALID_ARG_TYPE', TypeError)
  throwsWith(() => VHD.Footer.parse(Buffer.alloc(100)), 'ERR_BUFFER_OUT_OF_BOUNDS', RangeError)
  throwsWith(() => VHD.Header.parse(Buffer.alloc(1024), 1), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.Locator.parse(Buffer.alloc(24), -1), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.Locator.parse(Buffer.alloc(24), 0.5), 'ERR_OUT_OF_RANGE', RangeError)
  // A Uint8Array or a DataView works like a Buffer.
  const bytes = new VHD.Footer().write()
  const viaView = VHD.Footer.parse(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  assert.deepEqual(plain(viaView), plain(VHD.Footer.parse(bytes)))
})

test('parse → write → parse keeps every field (64-bit fields as BigInt; Numbers accepted on write)', () => {
  const footer = new VHD.Footer()
  Object.assign(footer, {
    features: 3,
    dataOffset: 512n,
    timestamp: VHD.EPOCH + 123456789000,
    creatorApplication: 'abcd',
    creatorVersion: { major: 9, minor: 8 },
    creatorHostOS: VHD.PLATFORM.WI2K,
    originalSize: 5n * 2n ** 40n,
    currentSize: 6 * 2 ** 40, // a Number is written too
    diskGeometry: { cylinders: 65535, heads: 16, sectors: 255 },
    diskType: VHD.TYPE.DYNAMIC,
    uuid: crypto.randomBytes(16),
    savedState: 1,
    reserved: crypto.randomBytes(427),
  })
  const again = VHD.Footer.parse(footer.write())
  assert.deepEqual(
    without(plain(again), 'checksum', 'currentSize'),
    without(plain(footer), 'checksum', 'currentSize'),
  )
  assert.equal(again.currentSize, 6n * 2n ** 40n)
  assert.equal(typeof again.dataOffset, 'bigint')

  const header = new VHD.Header()
  Object.assign(header, {
    dataOffset: VHD.NULL_OFFSET,
    tableOffset: 1536n,
    maxTableEntries: 1234,
    sectorSize: 2 * MiB,
    parentId: crypto.randomBytes(16),
    parentTimestamp: VHD.EPOCH + 1000,
    reserved1: 7,
    parentName: 'parent.vhd',
    reserved2: crypto.randomBytes(256),
  })
  const locator = Object.assign(new VHD.Locator(), { platformCode: VHD.PLATFORM.W2KU, dataSpace: 512, dataLength: 20, dataOffset: 0x1_0000_0000n })
  header.parentLocators = [new VHD.Locator(), locator]
  const parsed = VHD.Header.parse(header.write())
  assert.deepEqual(without(plain(parsed), 'checksum', 'calculatedChecksum'), without(plain(header), 'checksum'))
  assert.equal(parsed.checksum, parsed.calculatedChecksum)
})

test('Header#write takes 0.5.0 Locator objects and plain objects in parentLocators', () => {
  const fields = { platformCode: VHD.PLATFORM.W2RU, dataSpace: 512, dataLength: 26, reserved: 0, dataOffset: 4096n }
  const ours = Object.assign(new VHD.Locator(), fields)
  const theirs = Object.assign(new OLD.Locator(), fields)
  const expected = Object.assign(new VHD.Header(), { parentLocators: [ours] }).write()
  assert.ok(Object.assign(new VHD.Header(), { parentLocators: [theirs] }).write().equals(expected))
  assert.ok(Object.assign(new VHD.Header(), { parentLocators: [{ ...fields }] }).write().equals(expected))
})

// ---------------------------------------------------------------------------------------
// Corpus

test('the corpus is there', { skip: skipCorpus }, () => {
  assert.ok(haveCorpus, `${MISSING}, and CI requires the corpus cases`)
})

test('corpus node-vhd/footer.bin: Footer parses and writes like 0.5.0', { skip: skipCorpus }, () => {
  const bytes = corpus('node-vhd/footer.bin')
  const footer = compareFooter(bytes, 'footer.bin')
  assert.equal(footer.diskType, VHD.TYPE.FIXED)
  assert.equal(footer.creatorApplication, 'win ')
  assert.equal(footer.currentSize, 10485760n)
})

test('corpus node-vhd/header.bin: footer copy and Header parse and write like 0.5.0', { skip: skipCorpus }, () => {
  const bytes = corpus('node-vhd/header.bin')
  const footer = compareFooter(bytes.subarray(0, 512), 'header.bin footer')
  assert.equal(footer.dataOffset, 512n)
  const header = compareHeader(bytes.subarray(512, 1536), 'header.bin header')
  assert.equal(header.sectorSize, 2 * MiB)
  assert.equal(header.maxTableEntries, 256)
  // At an offset in a larger buffer, the same.
  assert.deepEqual(plain(VHD.Header.parse(bytes, 512)), plain(header))
  assert.deepEqual(plain(OLD.Header.parse(bytes, 512)).maxTableEntries, 256)
})

test('corpus libvhdi-fragments/file_footer.1: Footer parses and writes like 0.5.0', { skip: skipCorpus }, () => {
  const footer = compareFooter(corpus('libvhdi-fragments/file_footer.1'), 'file_footer.1')
  assert.equal(footer.diskType, VHD.TYPE.DIFF)
  assert.equal(footer.creatorApplication, 'vpc ')
})

test('fixes 0.5.0: the header\'s parent locators are parsed, each with its data offset at +16 (libvhdi-fragments/dynamic_disk_header.1)', { skip: skipCorpus }, () => {
  const bytes = corpus('libvhdi-fragments/dynamic_disk_header.1')
  const header = compareHeader(bytes, 'dynamic_disk_header.1')
  // Slots 0-3 are empty; 4-7 hold W2ku, W2ru, Wi2k, Wi2r.
  const P = VHD.PLATFORM
  assert.deepEqual(
    header.parentLocators.map((l) => [l.platformCode, l.dataSpace, l.dataLength, l.reserved, l.dataOffset]),
    [
      [0, 0, 0, 0, 0n], [0, 0, 0, 0, 0n], [0, 0, 0, 0, 0n], [0, 0, 0, 0, 0n],
      [P.W2KU, 512, 42, 0, 4608n],
      [P.W2RU, 512, 26, 0, 4096n],
      [P.WI2K, 512, 21, 0, 3584n],
      [P.WI2R, 512, 13, 0, 3072n],
    ],
  )
  // 0.5.0 finds none of them: it tests the bytes at +12 (reserved, then the high half of
  // the offset), which are zero.
  assert.deepEqual(OLD.Header.parse(bytes).parentLocators, [])
  // Its Locator reads (and writes) the data offset at +12 too.
  const entry = bytes.subarray(576 + 4 * 24, 576 + 5 * 24)
  const oldLocator = new OLD.Locator().parse(entry)
  assert.equal(oldLocator.dataOffset, 0n, '0.5.0 reads the wrong bytes')
  const locator = VHD.Locator.parse(entry)
  assert.equal(locator.dataOffset, 4608n)
  assert.ok(locator.write().equals(entry))
  assert.ok(!oldLocator.write().equals(entry))
  assert.deepEqual(plain(new VHD.Locator().parse(bytes, 576 + 4 * 24)), plain(locator))
  // The parent name: 'dynamic.vhd', which 0.5.0 decodes as little-endian.
  assert.equal(header.parentName, 'dynamic.vhd')
  assert.notEqual(OLD.Header.parse(bytes).parentName, 'dynamic.vhd')
})

test('fixes 0.5.0: the parent name is UTF-16 big-endian, parsed and written (dfvfs/fat-differential.vhd, made by Windows)', { skip: skipCorpus }, () => {
  const file = corpus('dfvfs/fat-differential.vhd')
  const footer = compareFooter(file.subarray(-512), 'fat-differential footer')
  const at = Number(footer.dataOffset)
  const bytes = file.subarray(at, at + 1024)
  const header = compareHeader(bytes, 'fat-differential header')
  assert.equal(header.parentName, 'C:\\Projects\\dfvfs\\test_data\\fat-parent.vhd')
  const old = OLD.Header.parse(bytes)
  assert.notEqual(old.parentName, header.parentName, '0.5.0 decodes little-endian')
  assert.equal(Buffer.from(old.parentName, 'utf16le').swap16().toString('utf16le'), header.parentName)
  // The two Windows locators, with their data where they say.
  const [absolute, relative] = header.parentLocators
  assert.equal(header.parentLocators.length, 2)
  assert.equal(absolute.platformCode, VHD.PLATFORM.W2KU)
  assert.equal(relative.platformCode, VHD.PLATFORM.W2RU)
  const text = (l) => file.toString('utf16le', Number(l.dataOffset), Number(l.dataOffset) + l.dataLength)
  assert.equal(text(absolute), header.parentName)
  assert.equal(text(relative), '.\\fat-parent.vhd')
  assert.deepEqual(OLD.Header.parse(bytes).parentLocators, [])
  // 0.5.0 writes the name little-endian and drops the locators.
  assert.ok(!old.write().equals(bytes))

  // A name beyond ASCII, written and read back.
  const name = 'C:\\Disks\\Überträger-😀.vhd'
  const written = Object.assign(new VHD.Header(), { parentName: name }).write()
  assert.ok(written.subarray(64, 64 + name.length * 2 + 2).equals(Buffer.concat([Buffer.from(name, 'utf16le').swap16(), Buffer.alloc(2)])))
  assert.equal(VHD.Header.parse(written).parentName, name)
  const oldWritten = Object.assign(new OLD.Header(), { parentName: name }).write()
  assert.ok(oldWritten.subarray(64, 64 + name.length * 2).equals(Buffer.from(name, 'utf16le')), '0.5.0 writes little-endian')
  // Longer than the field: cut to 256 UTF-16 units, never inside a surrogate pair.
  const long = `${'x'.repeat(255)}😀`
  assert.equal(VHD.Header.parse(Object.assign(new VHD.Header(), { parentName: long }).write()).parentName, 'x'.repeat(255))
})

test('fixes 0.5.0: Header#parse throws a TypeError (Locator.parse() without a buffer) on a locator whose data is beyond 4 GiB', { skip: skipCorpus }, () => {
  const file = corpus('dfvfs/fat-differential.vhd')
  const at = Number(VHD.Footer.parse(file.subarray(-512)).dataOffset)
  const header = VHD.Header.parse(file, at)
  header.parentLocators[1].dataOffset = 0x1_0000_3000n
  const bytes = header.write()
  assert.throws(() => OLD.Header.parse(bytes), TypeError)
  const parsed = VHD.Header.parse(bytes)
  assert.equal(parsed.parentLocators[1].dataOffset, 0x1_0000_3000n)
  assert.equal(parsed.checksum, parsed.calculatedChecksum)
})

test('fixes 0.5.0: Header#parse sets calculatedChecksum to the right checksum (0.5.0 also sums the stored one)', { skip: skipCorpus }, () => {
  const bytes = corpus('node-vhd/header.bin').subarray(512, 1536)
  const ours = VHD.Header.parse(bytes)
  assert.equal(ours.calculatedChecksum, ours.checksum)
  const old = OLD.Header.parse(bytes)
  assert.notEqual(old.calculatedChecksum, old.checksum)
  // A damaged header: calculatedChecksum tells.
  const damaged = Buffer.from(bytes)
  damaged[100] ^= 1
  const parsed = VHD.Header.parse(damaged)
  assert.notEqual(parsed.calculatedChecksum, parsed.checksum)
  assert.equal(parsed.calculatedChecksum, vhdChecksum(damaged, 36))
})

test('bad checksums (dfvfs/image-differential.vhd): parsed as stored, written right', { skip: skipCorpus }, () => {
  const file = corpus('dfvfs/image-differential.vhd')
  const end = file.subarray(-512)
  const footer = VHD.Footer.parse(end)
  assert.notEqual(footer.checksum, vhdChecksum(end, 64), 'the corpus footer checksum is bad')
  compareFooter(end, 'image-differential footer')
  const at = Number(footer.dataOffset)
  const header = compareHeader(file.subarray(at, at + 1024), 'image-differential header')
  assert.notEqual(header.checksum, header.calculatedChecksum)
  assert.equal(header.parentLocators.length, 0)
})

const images = corpusImages()
for (const name of images) {
  test(`corpus ${name}: footer, footer copy and header parse and write like 0.5.0`, () => {
    const file = corpus(name)
    const end = file.subarray(-512)
    const footer = compareFooter(end, `${name} footer`)
    // At an offset in the whole file: the same fields.
    assert.deepEqual(plain(VHD.Footer.parse(file, file.length - 512)), plain(footer))
    if (file[0] !== 0) assert.deepEqual(plain(OLD.Footer.parse(file, file.length - 512)), plain(footer))
    if (footer.diskType === VHD.TYPE.FIXED) return
    assert.deepEqual(plain(compareFooter(file.subarray(0, 512), `${name} footer copy`)), plain(footer))
    const at = Number(footer.dataOffset)
    const header = compareHeader(file.subarray(at, at + 1024), `${name} header`)
    assert.deepEqual(plain(VHD.Header.parse(file, at)), plain(header))
    // Where 0.5.0 has no parent name or locators to get wrong, it parses the same header
    // at an offset as well (apart from calculatedChecksum).
    if (header.parentName === '' && header.parentLocators.length === 0) {
      assert.deepEqual(
        without(plain(OLD.Header.parse(file, at)), 'calculatedChecksum'),
        without(plain(header), 'calculatedChecksum'),
      )
    }
  })
}
if (haveCorpus) {
  test('the corpus images were all found', () => {
    assert.ok(images.length >= 20, `${images.length} images`)
  })
}

// Disk2VHD NUL-terminates its creator application. The image is bzip2-compressed; its first
// 512 bytes are the footer copy.
const bzip2 = spawnSync('bzip2', ['--help'], { encoding: 'utf8' })
const skipD2v = skipCorpus || (bzip2.error ? 'bzip2 is not installed; skipping the Disk2VHD footer' : false)

test('differs from 0.5.0: a creator application of under 4 characters is NUL-padded on write, so Disk2VHD\'s \'d2v\\0\' round-trips (0.5.0 writes \'d2v \')', { skip: skipD2v }, () => {
  const compressed = path.join(CORPUS, 'qemu-iotests', 'd2v-zerofilled.vhd.bz2')
  const res = spawnSync('sh', ['-c', 'bzip2 -dc "$1" | head -c 512', 'sh', compressed], { maxBuffer: 4096 })
  const bytes = res.stdout
  assert.equal(bytes.length, 512, `bzip2: ${res.stderr}`)
  const ours = VHD.Footer.parse(bytes)
  const old = OLD.Footer.parse(bytes)
  assert.deepEqual(plain(ours), plain(old))
  assert.equal(ours.creatorApplication, 'd2v')
  assert.ok(ours.write().equals(bytes))
  const oldBytes = old.write()
  assert.equal(oldBytes.toString('latin1', 28, 32), 'd2v ')
  assert.notEqual(oldBytes.readUInt32BE(64), bytes.readUInt32BE(64))
})

test('differs from 0.5.0: short creator applications are NUL-padded, 4 characters written as they are', () => {
  const footer = Object.assign(new VHD.Footer(), { creatorApplication: 'ab' })
  const bytes = footer.write()
  assert.ok(bytes.subarray(28, 32).equals(Buffer.from('ab\0\0', 'latin1')))
  assert.equal(VHD.Footer.parse(bytes).creatorApplication, 'ab')
  const old = Object.assign(new OLD.Footer(), { creatorApplication: 'ab' })
  assert.equal(old.write().toString('latin1', 28, 32), 'ab  ')
  assert.equal(OLD.Footer.parse(old.write()).creatorApplication, 'ab  ', '0.5.0 reads back something else')
  for (const app of ['win ', 'qemu', 'vpc ', 'abcdef']) {
    // (0.5.0's default creator version changes as it parses: both get the same one.)
    const fields = { creatorApplication: app, creatorVersion: { major: 1, minor: 0 } }
    const a = Object.assign(new VHD.Footer(), fields).write()
    const b = Object.assign(new OLD.Footer(), fields).write()
    assert.ok(a.subarray(0, 64).equals(b.subarray(0, 64)), app)
  }
})

test('differs from 0.5.0: text fields are Latin-1, so bytes >= 0x80 are kept (0.5.0 clears their high bit)', () => {
  const bytes = new VHD.Footer().write()
  bytes[28] = 0xe9
  bytes.writeUInt32BE(vhdChecksum(bytes, 64), 64)
  assert.equal(VHD.Footer.parse(bytes).creatorApplication, '\u00e9in ')
  assert.ok(VHD.Footer.parse(bytes).write().equals(bytes))
  assert.equal(OLD.Footer.parse(bytes).creatorApplication, 'iin ')
})

// ---------------------------------------------------------------------------------------
// Fixed 0.5.0 bugs found outside the corpus

test('fixes 0.5.0: Footer#parse puts the parsed creator version in the module\'s CREATOR_VERSION', () => {
  const bytes = Object.assign(new VHD.Footer(), { creatorVersion: { major: 42, minor: 17 } }).write()
  const oldBefore = { ...OLD.CREATOR_VERSION }
  try {
    OLD.Footer.parse(bytes)
    assert.deepEqual(OLD.CREATOR_VERSION, { major: 42, minor: 17 }, '0.5.0 changed its constant')
    assert.deepEqual(new OLD.Footer().creatorVersion, { major: 42, minor: 17 }, 'and its new Footers')
  } finally {
    Object.assign(OLD.CREATOR_VERSION, oldBefore)
  }
  const before = { ...VHD.CREATOR_VERSION }
  const footer = new VHD.Footer()
  const parsed = footer.parse(bytes)
  assert.equal(parsed, footer)
  assert.deepEqual(parsed.creatorVersion, { major: 42, minor: 17 })
  assert.deepEqual(VHD.CREATOR_VERSION, before)
  assert.deepEqual(new VHD.Footer().creatorVersion, before)
})

test('fixes 0.5.0: write at a nonzero offset computes the checksum over the structure (0.5.0 sums past it)', () => {
  for (const name of ['Footer', 'Header']) {
    const at = 100
    const field = VHD[name].CHECKSUM_OFFSET
    const ours = new VHD[name]().write(undefined, at)
    const atZero = new VHD[name]().write()
    assert.ok(ours.subarray(at).equals(atZero), `${name}: the same bytes as at offset 0`)
    assert.equal(ours.readUInt32BE(at + field), vhdChecksum(atZero, field))
    const old = new OLD[name]()
    if (name === 'Footer') Object.assign(old, { creatorApplication: 'win ', creatorVersion: { major: 1, minor: 0 } })
    const oldBytes = old.write(undefined, at)
    assert.notEqual(oldBytes.readUInt32BE(at + field), vhdChecksum(atZero, field), `${name}: 0.5.0's checksum is wrong`)
    // Into a given buffer with other bytes after the structure.
    const given = crypto.randomBytes(at + VHD[name].SIZE + 64)
    new VHD[name]().write(given, at)
    assert.ok(given.subarray(at, at + VHD[name].SIZE).equals(atZero))
  }
})

test('fixes 0.5.0: Footer#parse at an offset finds the footer whatever buffer[0] is (0.5.0 shifts by one when buffer[0] is 0)', () => {
  const footer = new VHD.Footer().write()
  const buffer = Buffer.concat([Buffer.alloc(512), footer])
  assert.throws(() => OLD.Footer.parse(buffer, 512), /Invalid footer signature/)
  assert.deepEqual(plain(VHD.Footer.parse(buffer, 512)), plain(VHD.Footer.parse(footer)))
})

test('the 511-byte footer of Virtual PC before 2004: found one byte on, as in 0.5.0, whatever byte precedes it', () => {
  const footer = Object.assign(new VHD.Footer(), { reserved: Buffer.alloc(427, 0x55), uuid: crypto.randomBytes(16) })
  const full = footer.write()
  // The last 512 bytes of a file that ends with the first 511 bytes of a footer.
  const short = Buffer.concat([Buffer.from([0]), full.subarray(0, 511)])
  const ours = VHD.Footer.parse(short)
  const old = OLD.Footer.parse(short)
  assert.deepEqual(plain(ours), plain(old))
  assert.equal(ours.reserved[426], 0, 'the missing last byte is zero')
  assert.ok(ours.reserved.subarray(0, 426).equals(Buffer.alloc(426, 0x55)))
  // fixes 0.5.0: a non-zero byte before it (0.5.0 throws).
  const afterData = Buffer.concat([Buffer.from([0x41]), full.subarray(0, 511)])
  assert.throws(() => OLD.Footer.parse(afterData), /Invalid footer signature/)
  assert.deepEqual(plain(VHD.Footer.parse(afterData)), plain(ours))
  // And at an offset in a larger buffer (a byte after it is not part of it).
  const inFile = Buffer.concat([crypto.randomBytes(1000), Buffer.from([0x41]), full.subarray(0, 511)])
  assert.deepEqual(plain(VHD.Footer.parse(inFile, 1000)), plain(ours))
  const followed = Buffer.concat([short, Buffer.from([0x99])])
  assert.deepEqual(plain(VHD.Footer.parse(followed)), plain(ours))
  // Just the 511 bytes, as 0.5.0 takes them too.
  const alone = full.subarray(0, 511)
  assert.deepEqual(plain(VHD.Footer.parse(alone)), plain(OLD.Footer.parse(alone)))
  assert.deepEqual(plain(VHD.Footer.parse(alone)), plain(ours))
  throwsWith(() => VHD.Footer.parse(full.subarray(0, 510)), 'ERR_BUFFER_OUT_OF_BOUNDS', RangeError)
})

// ---------------------------------------------------------------------------------------
// Images made by VHD.create

let tmp
before(() => {
  tmp = tempDir('vhd-compat-structures-')
})
after(() => tmp.cleanup())

async function make(options) {
  const file = tmp.file(options.type)
  await (await VHD.create(file, options)).close()
  return file
}

test('images made by VHD.create (fixed, dynamic, differencing): structures parse and write like 0.5.0 and like VHD.open reads them', async () => {
  const fixed = await make({ type: 'fixed', size: 5 * MiB })
  const dynamic = await make({ type: 'dynamic', size: 12 * MiB, blockSize: 512 * 1024 })
  const child = await make({ type: 'differencing', parent: dynamic })
  for (const file of [fixed, dynamic, child]) {
    const bytes = fs.readFileSync(file)
    const footer = compareFooter(bytes.subarray(-512), file)
    assert.deepEqual(footer.diskGeometry, VHD.getDiskGeometry(Number(footer.currentSize / 512n)))
    const disk = await VHD.open(file, { readOnly: true })
    try {
      assert.ok(disk.footer instanceof VHD.Footer, 'disk.footer is a VHD.Footer')
      assert.deepEqual(plain(disk.footer), plain(footer), 'VHD.open reads the same footer')
      if (footer.diskType === VHD.TYPE.FIXED) {
        assert.equal(bytes[0], 0)
        // fixes 0.5.0: a fixed image's data starts with a 0 byte, so 0.5.0 cannot parse the
        // footer at its offset in the whole file.
        assert.throws(() => OLD.Footer.parse(bytes, bytes.length - 512), /Invalid footer signature/)
        assert.deepEqual(plain(VHD.Footer.parse(bytes, bytes.length - 512)), plain(footer))
        continue
      }
      compareFooter(bytes.subarray(0, 512), `${file} copy`)
      const at = Number(footer.dataOffset)
      const raw = bytes.subarray(at, at + 1024)
      const header = compareHeader(raw, file)
      // VHD.open's header: the same fields, with all 8 entries and their decoded paths.
      const opened = disk.header
      assert.ok(opened instanceof VHD.Header, 'disk.header is a VHD.Header')
      assert.deepEqual(
        without(opened, 'parentLocators'),
        without(plain(header), 'parentLocators', 'calculatedChecksum'),
      )
      const entries = opened.parentLocators.map(({ text, ...fields }) => fields)
      assert.deepEqual(entries.slice(0, header.parentLocators.length), plain(header).parentLocators)
      assert.ok(entries.slice(header.parentLocators.length).every((l) => l.platformCode === 0 && l.dataOffset === 0n))
      if (footer.diskType === VHD.TYPE.DIFF) {
        // fixes 0.5.0 (parent name and locators) on our own differencing images.
        assert.equal(header.parentName, path.basename(dynamic))
        assert.ok(header.parentLocators.length > 0)
        for (const locator of header.parentLocators) {
          if (locator.platformCode === 0) continue
          // Windows paths are UTF-16 little-endian, MacX file URLs UTF-8.
          const encoding = locator.platformCode === VHD.PLATFORM.MACX ? 'utf8' : 'utf16le'
          const start = Number(locator.dataOffset)
          const text = bytes.toString(encoding, start, start + locator.dataLength)
          assert.ok(text.endsWith(path.basename(dynamic)), text)
        }
        const parentUuid = VHD.Footer.parse(fs.readFileSync(dynamic).subarray(-512)).uuid
        assert.ok(header.parentId.equals(parentUuid))
        const old = OLD.Header.parse(raw)
        assert.notEqual(old.parentName, header.parentName)
        assert.deepEqual(old.parentLocators, [])
      }
    } finally {
      await disk.close()
    }
  }
})

// ---------------------------------------------------------------------------------------
// checksum

test('checksum gives 0.5.0\'s results over random buffers, offsets and lengths', () => {
  for (let i = 0; i < 300; i++) {
    const buffer = crypto.randomBytes(crypto.randomInt(0, 3000))
    const offset = crypto.randomInt(0, buffer.length + 1)
    const length = crypto.randomInt(0, buffer.length - offset + 1)
    assert.equal(VHD.checksum(buffer, offset, length), OLD.checksum(buffer, offset, length))
    assert.equal(VHD.checksum(buffer, offset), OLD.checksum(buffer, offset))
    assert.equal(VHD.checksum(buffer), OLD.checksum(buffer))
    assert.equal(VHD.checksum(buffer, undefined, length), OLD.checksum(buffer, undefined, length))
    assert.equal(VHD.checksum(buffer, offset, null), OLD.checksum(buffer, offset, null))
  }
  // Sums beyond 2^32 wrap the same way.
  const big = Buffer.alloc(17 * MiB, 0xff)
  assert.equal(VHD.checksum(big), OLD.checksum(big))
  assert.equal(VHD.checksum(Buffer.alloc(0)), 0xffffffff)
  // Typed arrays and BigInt offsets.
  const bytes = crypto.randomBytes(100)
  const u8 = new Uint8Array(bytes)
  assert.equal(VHD.checksum(u8, 10n, 50n), OLD.checksum(bytes, 10, 50))
})

test('differs from 0.5.0: checksum checks its arguments (0.5.0 returns 0xFFFFFFFF past the end)', () => {
  const buffer = Buffer.alloc(16, 1)
  assert.equal(OLD.checksum(buffer, 10, 10), 0xffffffff)
  throwsWith(() => VHD.checksum(buffer, 10, 10), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.checksum(buffer, 17), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.checksum(buffer, -1), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.checksum(buffer, 1.5), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.checksum(buffer, '1'), 'ERR_INVALID_ARG_TYPE', TypeError)
  throwsWith(() => VHD.checksum([1, 2, 3]), 'ERR_INVALID_ARG_TYPE', TypeError)
  throwsWith(() => VHD.checksum(), 'ERR_INVALID_ARG_TYPE', TypeError)
})

// ---------------------------------------------------------------------------------------
// getDiskGeometry

/** The specification's "CHS Calculation", in integer arithmetic. */
function specGeometry(totalSectors) {
  const total = Math.min(totalSectors, 65535 * 16 * 255)
  let sectors
  let heads
  let cylinderTimesHeads
  if (total >= 65535 * 16 * 63) {
    sectors = 255
    heads = 16
    cylinderTimesHeads = Math.floor(total / sectors)
  } else {
    sectors = 17
    cylinderTimesHeads = Math.floor(total / sectors)
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024))
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectors = 31
      heads = 16
      cylinderTimesHeads = Math.floor(total / sectors)
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectors = 63
      heads = 16
      cylinderTimesHeads = Math.floor(total / sectors)
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectors }
}

test('fixes 0.5.0: getDiskGeometry gives the specification\'s whole numbers (0.5.0 returns fractions)', () => {
  // Geometries of real images.
  const known = [
    [3 * MiB, { cylinders: 90, heads: 4, sectors: 17 }],
    [10 * MiB, { cylinders: 301, heads: 4, sectors: 17 }],
    [200 * MiB, { cylinders: 825, heads: 16, sectors: 31 }],
    [136365211648, { cylinders: 65278, heads: 16, sectors: 255 }],
  ]
  for (const [size, geometry] of known) assert.deepEqual(VHD.getDiskGeometry(size / 512), geometry, `${size}`)
  assert.deepEqual(OLD.getDiskGeometry(10 * MiB / 512), { cylinders: 20480 / 17 / 4, heads: 4, sectors: 17 })

  const counts = [0, 1, 17 * 4, 65535 * 16 * 63 - 1, 65535 * 16 * 63, 65535 * 16 * 255, 65535 * 16 * 255 + 1, 2 ** 40]
  for (let mib = 1; mib <= 4096; mib++) counts.push(mib * 2048)
  for (let i = 0; i < 2000; i++) counts.push(crypto.randomInt(0, 2 ** 32))
  let fractional = 0
  for (const count of counts) {
    const ours = VHD.getDiskGeometry(count)
    assert.deepEqual(ours, specGeometry(count), `${count} sectors`)
    assert.ok(Object.values(ours).every(Number.isInteger))
    assert.ok(ours.cylinders * ours.heads * ours.sectors <= count)
    const old = OLD.getDiskGeometry(count)
    if (!Object.values(old).every(Number.isInteger)) fractional++
  }
  assert.ok(fractional > counts.length / 2, `0.5.0 gives fractions for ${fractional} of ${counts.length} sizes`)
  assert.deepEqual(VHD.getDiskGeometry(BigInt(10 * MiB / 512)), known[1][1])
})

test('getDiskGeometry checks its argument (0.5.0 returns NaN geometries)', () => {
  assert.ok(Number.isNaN(OLD.getDiskGeometry(undefined).cylinders))
  throwsWith(() => VHD.getDiskGeometry(), 'ERR_INVALID_ARG_TYPE', TypeError)
  throwsWith(() => VHD.getDiskGeometry('20480'), 'ERR_INVALID_ARG_TYPE', TypeError)
  throwsWith(() => VHD.getDiskGeometry(-1), 'ERR_OUT_OF_RANGE', RangeError)
  throwsWith(() => VHD.getDiskGeometry(10.5), 'ERR_OUT_OF_RANGE', RangeError)
})

// One parse: disk.footer and disk.header are the Footer and Header that Footer.parse and
// Header.parse give for the image's bytes (fields made natively once). The copies that were
// wrong: disk.footer decoded the creator application as 7-bit ASCII (0xE9 became 'i'), and
// disk.header decoded the parent name lossily (an unpaired surrogate became U+FFFD).
test('disk.footer and disk.header are the Footer and Header the bytes parse to (Latin-1 creator, parent name unit for unit)', async () => {
  const file = await make({ type: 'dynamic', size: 4 * MiB })
  const bytes = fs.readFileSync(file)
  for (const at of [0, bytes.length - 512]) {
    bytes.write('w\u00e9n ', at + 28, 4, 'latin1')
    bytes.writeUInt32BE(vhdChecksum(bytes.subarray(at, at + 512), 64), at + 64)
  }
  // A dynamic image ignores its parent name: a crafted one with an unpaired surrogate.
  const units = [0x0061, 0xd800, 0x0062]
  units.forEach((unit, i) => bytes.writeUInt16BE(unit, 512 + 64 + 2 * i))
  bytes.writeUInt32BE(vhdChecksum(bytes.subarray(512, 512 + 1024), 36), 512 + 36)
  fs.writeFileSync(file, bytes)

  const disk = await VHD.open(file, { readOnly: true })
  try {
    const footer = VHD.Footer.parse(bytes, bytes.length - 512)
    assert.ok(disk.footer instanceof VHD.Footer)
    assert.equal(disk.footer.creatorApplication, 'w\u00e9n ')
    assert.deepEqual(plain(disk.footer), plain(footer))
    const header = VHD.Header.parse(bytes, 512)
    assert.ok(disk.header instanceof VHD.Header)
    assert.equal(disk.header.parentName, 'a\ud800b')
    assert.equal(header.parentName, 'a\ud800b')
    assert.deepEqual(without(plain(disk.header), 'parentLocators'), without(plain(header), 'parentLocators', 'calculatedChecksum'))
    // Fresh copies: changing one changes nothing.
    disk.footer.uuid.fill(0)
    disk.header.parentId.fill(1)
    assert.ok(disk.footer.uuid.equals(footer.uuid))
    assert.ok(disk.header.parentId.equals(header.parentId))
  } finally {
    await disk.close()
  }
})
