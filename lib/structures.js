'use strict'

// vhd@0.5.0's structure classes, `Footer`, `Header` and `Locator`, and its helpers
// `checksum` and `getDiskGeometry`, with the same names, fields and defaults.
//
// The classes are field containers: `parse` fills the fields from bytes, `write` turns the
// fields into bytes. Neither checks the values beyond what is needed to lay them out (the
// cookie is checked on parse, as 0.5.0 does); images are read and written by `VHD.open`
// and `VHD.create`, which check everything.
//
// The bytes are vhd-core's business, parsed and laid out natively (src/structures.rs):
// `parse` fills an instance with the fields `native.parseFooter` (`parseHeader`,
// `parseLocator`) returns, the same form an open image's footer and header come in, which
// `footerFrom` and `headerFrom` make the `Footer` and `Header` of `disk.footer` and
// `disk.header`; `write` checks each field here (naming it in errors) and hands the fields
// in that form to `native.writeFooter` (`writeHeader`, `writeLocator`). 64-bit fields are
// BigInts, time stamps ms since the Unix epoch, as in 0.5.0.
//
// Where 0.5.0 is wrong, these follow the specification instead:
// - the header's parent locators are parsed (0.5.0 never parses them), each with its data
//   offset at +16, after the 4 reserved bytes at +12 (0.5.0 reads and writes it at +12);
// - the header's parent name is UTF-16 big-endian (0.5.0 uses little-endian);
// - `write` computes the checksum over exactly the structure at any offset (0.5.0 sums
//   `offset + size` bytes from the offset, so only offset 0 is right), and
//   `Header#parse` sets `calculatedChecksum` to the checksum of the bytes with the checksum
//   field taken as zero (0.5.0 sums the stored checksum too);
// - parsing never changes shared state: 0.5.0's `Footer#parse` writes the parsed creator
//   version into the module's `CREATOR_VERSION` object, which every new Footer shares.
//
// `write` always computes the checksum and stores it in the bytes (not in the object's
// `checksum` field, which keeps what `parse` read), like 0.5.0: parse → write gives back the
// same bytes for every structure whose checksum was right.

const { Buffer } = require('node:buffer')
const native = require('../binding.js')
const constants = require('./constants.js')
const { invalidArgType, outOfRange, withCode, toBytes, toIndex } = require('./args.js')

const { VHD_EPOCH_MS, PLATFORM, FEATURES, TYPE } = constants

// Where `new Footer()` takes CREATOR_APPLICATION and CREATOR_VERSION from: the package's
// export object once index.js has registered it, so that assigning `VHD.CREATOR_APPLICATION`
// changes the footers made afterwards, as in 0.5.0.
let creatorDefaults = constants

/** Makes `new Footer()` read CREATOR_APPLICATION and CREATOR_VERSION from `source`. */
function setCreatorDefaults(source) {
  creatorDefaults = source
}

// ---------------------------------------------------------------------------------------
// Arguments and byte helpers

/** `buffer` (any ArrayBufferView) as a Buffer over the same memory. */
function asBuffer(buffer) {
  const bytes = toBytes(buffer)
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** An offset argument: absent (undefined or null, as 0.5.0's `offset || 0`) is 0. */
function toOffset(offset) {
  return offset === undefined || offset === null ? 0 : toIndex(offset, 'offset')
}

/** Fails unless `size` bytes at `offset` lie inside `buffer`. */
function checkRoom(buffer, offset, size, what) {
  if (buffer.length < size) {
    throw withCode(
      new RangeError(`The buffer (${buffer.length} bytes) is too short for a ${what} (${size} bytes)`),
      'ERR_BUFFER_OUT_OF_BOUNDS',
    )
  }
  if (offset > buffer.length - size) {
    throw outOfRange('offset', `>= 0 && <= ${buffer.length - size}`, offset)
  }
}

const MAX_UINT64 = 2n ** 64n - 1n

/** A 64-bit field as a BigInt; integer Numbers are accepted too (0.5.0 takes only BigInt). */
function toUint64(value, field) {
  let big
  if (typeof value === 'bigint') big = value
  else if (typeof value === 'number' && Number.isInteger(value)) big = BigInt(value)
  else if (typeof value === 'number') throw outOfRange(field, 'an integer', value)
  else throw invalidArgType(field, 'of type bigint', value)
  if (big < 0n || big > MAX_UINT64) throw outOfRange(field, `>= 0 && <= ${MAX_UINT64}`, value)
  return big
}

/**
 * A whole-number field of `bits` bits (8, 16 or 32). 0.5.0 let Buffer coerce anything (a
 * string or NaN became 0); here a field that is not a Number in range fails, naming the
 * field.
 */
function uint(value, bits, field) {
  if (typeof value !== 'number') throw invalidArgType(field, 'of type number', value)
  const max = 2 ** bits - 1
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw outOfRange(field, `an integer >= 0 && <= ${max}`, value)
  }
  return value
}

/** An object field (a version, the disk geometry), or a TypeError naming it. */
function objectField(value, field, expected) {
  if (value === null || typeof value !== 'object') throw invalidArgType(field, expected, value)
  return value
}

/** Ms since the Unix epoch (a Number or a Date) that whole seconds since 2000 can hold. */
function timestamp(value, field) {
  if (typeof value !== 'number' && !(value instanceof Date)) {
    throw invalidArgType(field, 'of type number or an instance of Date', value)
  }
  const ms = Number(value)
  const seconds = Math.floor((ms - VHD_EPOCH_MS) / 1000)
  // Seconds since 2000 in 32 bits: from 2000-01-01 to 2136-02-07.
  if (!(seconds >= 0 && seconds <= 0xffffffff)) {
    throw outOfRange(field, `a time from ${VHD_EPOCH_MS} (2000-01-01) to ${VHD_EPOCH_MS + 0xffffffff * 1000} (ms since 1970)`, ms)
  }
  return ms
}

function version(value, field) {
  objectField(value, field, 'an object with major and minor')
  return { major: uint(value.major, 16, `${field}.major`), minor: uint(value.minor, 16, `${field}.minor`) }
}

/** A bytes field (a Buffer or typed array) as a Buffer; the writer takes as many as fit. */
function bytesField(bytes, field) {
  if (!ArrayBuffer.isView(bytes)) throw invalidArgType(field, 'an instance of Buffer or Uint8Array', bytes)
  return asBuffer(bytes)
}

/**
 * Copies `size` bytes serialized in `scratch` into the caller's buffer, or into a new one
 * of `offset + size` bytes (the structure at `offset`, as 0.5.0 allocates).
 */
function output(scratch, buffer, offset, what) {
  if (buffer === undefined || buffer === null) {
    const out = Buffer.alloc(offset + scratch.length)
    scratch.copy(out, offset)
    return out
  }
  const target = asBuffer(buffer)
  checkRoom(target, offset, scratch.length, what)
  scratch.copy(target, offset)
  return buffer
}


// ---------------------------------------------------------------------------------------
// Parent locator entry

/**
 * | field          | offset | size |
 * |----------------|--------|------|
 * | platform code  | 0      | 4    |
 * | data space     | 4      | 4    |
 * | data length    | 8      | 4    |
 * | reserved       | 12     | 4    |
 * | data offset    | 16     | 8    |
 */
class Locator {
  constructor() {
    /** A `PLATFORM` code: what kind of path the entry points to (0: unused entry). */
    this.platformCode = PLATFORM.NONE
    /** Room reserved for the path (Windows writes bytes, the specification says sectors). */
    this.dataSpace = 0
    /** Length of the path in bytes. */
    this.dataLength = 0
    /** The reserved field at +12 (zero). */
    this.reserved = 0
    /** Absolute file offset of the path (BigInt). */
    this.dataOffset = 0n
  }

  static parse(buffer, offset) {
    return new Locator().parse(buffer, offset)
  }

  /** Fills the fields from the 24 bytes at `offset` (default 0) of `buffer`. */
  parse(buffer, offset) {
    return Object.assign(this, native.parseLocator(asBuffer(buffer), toOffset(offset)))
  }

  /**
   * Writes the entry at `offset` (default 0) of `buffer` and returns `buffer`; without a
   * buffer, into a new one of `offset + 24` bytes.
   */
  write(buffer, offset) {
    offset = toOffset(offset)
    return output(native.writeLocator(locatorFields(this)), buffer, offset, 'parent locator entry')
  }
}

/** Locator.SIZE: bytes in a parent locator entry. */
Locator.SIZE = 24

/**
 * The checked fields of any object with the Locator fields (a Locator, 0.5.0's, or
 * plain), for the native writer; `name` prefixes the field names in errors.
 */
function locatorFields(entry, name = '') {
  objectField(entry, name || 'locator', 'an object with the Locator fields')
  return {
    platformCode: uint(entry.platformCode, 32, `${name}platformCode`),
    dataSpace: uint(entry.dataSpace, 32, `${name}dataSpace`),
    dataLength: uint(entry.dataLength, 32, `${name}dataLength`),
    // 0.5.0's Locator objects have a `reserved` field too; one without it writes zero.
    reserved: uint(entry.reserved ?? 0, 32, `${name}reserved`),
    dataOffset: toUint64(entry.dataOffset, `${name}dataOffset`),
  }
}

/** An unused parent locator entry (all zeros). */
const EMPTY_LOCATOR = Object.freeze({ platformCode: 0, dataSpace: 0, dataLength: 0, reserved: 0, dataOffset: 0n })

// ---------------------------------------------------------------------------------------
// Hard disk footer

/**
 * | field               | offset | size |
 * |---------------------|--------|------|
 * | cookie              | 0      | 8    |
 * | features            | 8      | 4    |
 * | format version      | 12     | 4    |
 * | data offset         | 16     | 8    |
 * | time stamp          | 24     | 4    |
 * | creator application | 28     | 4    |
 * | creator version     | 32     | 4    |
 * | creator host OS     | 36     | 4    |
 * | original size       | 40     | 8    |
 * | current size        | 48     | 8    |
 * | disk geometry       | 56     | 4    |
 * | disk type           | 60     | 4    |
 * | checksum            | 64     | 4    |
 * | unique id           | 68     | 16   |
 * | saved state         | 84     | 1    |
 * | reserved            | 85     | 427  |
 */
class Footer {
  constructor() {
    /** The cookie, 'conectix'. */
    this.signature = Footer.SIGNATURE
    /** Feature flags (`FEATURES`); the reserved bit is always set. */
    this.features = FEATURES.NONE | FEATURES.RESERVED
    this.formatVersion = { major: 1, minor: 0 }
    /** Absolute offset of the dynamic disk header; all ones for fixed disks (BigInt). */
    this.dataOffset = constants.NULL_OFFSET
    /** Creation time, in ms since the Unix epoch (whole seconds). */
    this.timestamp = VHD_EPOCH_MS
    this.creatorApplication = creatorDefaults.CREATOR_APPLICATION
    const { major, minor } = creatorDefaults.CREATOR_VERSION
    this.creatorVersion = { major, minor }
    /** A `PLATFORM` code; 0.5.0's default: `WI2K` on Windows, `MAC` elsewhere. */
    this.creatorHostOS = process.platform === 'win32' ? PLATFORM.WI2K : PLATFORM.MAC
    /** Size at creation, in bytes (BigInt). */
    this.originalSize = 0n
    /** Virtual size, in bytes (BigInt). */
    this.currentSize = 0n
    this.diskGeometry = { cylinders: 0, heads: 0, sectors: 0 }
    /** A `TYPE` value. */
    this.diskType = TYPE.NONE
    /** The stored checksum (what `parse` read; `write` computes its own). */
    this.checksum = 0
    /** The 16-byte unique id. */
    this.uuid = Buffer.alloc(16)
    this.savedState = 0
    /** The 427 reserved bytes. */
    this.reserved = Buffer.alloc(427)
  }

  static parse(buffer, offset) {
    return new Footer().parse(buffer, offset)
  }

  /**
   * Fills the fields from the footer at `offset` (default 0) of `buffer`. Virtual PC before
   * 2004 wrote 511-byte footers: one is found one byte further on when the cookie is there
   * (the last 512 bytes of such a file), and 511 bytes are enough (the last reserved byte
   * reads as 0). Fails with ERR_VHD_BAD_COOKIE without the 'conectix' cookie.
   */
  parse(buffer, offset) {
    return Object.assign(this, native.parseFooter(asBuffer(buffer), toOffset(offset)))
  }

  /**
   * Writes the footer, with its checksum computed, at `offset` (default 0) of `buffer` and
   * returns `buffer`; without a buffer, into a new one of `offset + 512` bytes.
   */
  write(buffer, offset) {
    offset = toOffset(offset)
    return output(native.writeFooter(footerFields(this)), buffer, offset, 'footer')
  }
}

/**
 * The checked fields of a footer, for the native writer (the layout is vhd-core's): each
 * field that is not what it must be fails, naming it, in the order of the bytes.
 */
function footerFields(footer) {
  const signature = String(footer.signature)
  const features = uint(footer.features, 32, 'features')
  const formatVersion = version(footer.formatVersion, 'formatVersion')
  const dataOffset = toUint64(footer.dataOffset, 'dataOffset')
  const ms = timestamp(footer.timestamp, 'timestamp')
  // NUL-padded, so that parse → write keeps 'd2v\0' (Disk2VHD); 0.5.0 pads with spaces.
  const creatorApplication = String(footer.creatorApplication)
  const creatorVersion = version(footer.creatorVersion, 'creatorVersion')
  const creatorHostOS = uint(footer.creatorHostOS, 32, 'creatorHostOS')
  const originalSize = toUint64(footer.originalSize, 'originalSize')
  const currentSize = toUint64(footer.currentSize, 'currentSize')
  const geometry = objectField(footer.diskGeometry, 'diskGeometry', 'an object with cylinders, heads and sectors')
  const diskGeometry = {
    cylinders: uint(geometry.cylinders, 16, 'diskGeometry.cylinders'),
    heads: uint(geometry.heads, 8, 'diskGeometry.heads'),
    sectors: uint(geometry.sectors, 8, 'diskGeometry.sectors'),
  }
  const diskType = uint(footer.diskType, 32, 'diskType')
  const uuid = bytesField(footer.uuid, 'uuid')
  const savedState = uint(footer.savedState, 8, 'savedState')
  const reserved = bytesField(footer.reserved, 'reserved')
  return {
    signature, features, formatVersion, dataOffset, timestamp: ms, creatorApplication, creatorVersion,
    creatorHostOS, originalSize, currentSize, diskGeometry, diskType, checksum: 0, uuid, savedState, reserved,
  }
}

/** Footer.SIZE: bytes in a footer. */
Footer.SIZE = 512
/** Footer.CHECKSUM_OFFSET: where the checksum is in a footer. */
Footer.CHECKSUM_OFFSET = 64
/** Footer.SIGNATURE: the footer's cookie. */
Footer.SIGNATURE = 'conectix'

// ---------------------------------------------------------------------------------------
// Dynamic disk header

/**
 * | field                   | offset | size    |
 * |-------------------------|--------|---------|
 * | cookie                  | 0      | 8       |
 * | data offset             | 8      | 8       |
 * | table offset            | 16     | 8       |
 * | header version          | 24     | 4       |
 * | max table entries       | 28     | 4       |
 * | block size              | 32     | 4       |
 * | checksum                | 36     | 4       |
 * | parent unique id        | 40     | 16      |
 * | parent time stamp       | 56     | 4       |
 * | reserved                | 60     | 4       |
 * | parent unicode name     | 64     | 512     |
 * | parent locator entries  | 576    | 8 × 24  |
 * | reserved                | 768    | 256     |
 */
class Header {
  constructor() {
    /** The cookie, 'cxsparse'. */
    this.signature = Header.SIGNATURE
    /** Unused by the format: all ones (BigInt). */
    this.dataOffset = constants.NULL_OFFSET
    /** Absolute offset of the block allocation table (BigInt). */
    this.tableOffset = constants.NULL_OFFSET
    this.headerVersion = { major: 1, minor: 0 }
    /** Entries in the block allocation table. */
    this.maxTableEntries = 0
    /** The block size in bytes (0.5.0's name for it). */
    this.sectorSize = 0
    /** The stored checksum (what `parse` read; `write` computes its own). */
    this.checksum = 0
    /** The parent's 16-byte unique id (differencing disks). */
    this.parentId = Buffer.alloc(16)
    /** The parent's time stamp, in ms since the Unix epoch. */
    this.parentTimestamp = VHD_EPOCH_MS
    /** The reserved field at 60. */
    this.reserved1 = 0
    /** The parent's file name (UTF-16 big-endian in the header). */
    this.parentName = ''
    /**
     * The parent locator entries, in header order (entry i is written at slot i; a missing
     * entry is written as zeros). `parse` gives the entries up to the last one that is not
     * all zeros, so a header without locators gives [].
     */
    this.parentLocators = []
    /** The 256 reserved bytes at the end. */
    this.reserved2 = Buffer.alloc(256)
  }

  static parse(buffer, offset) {
    return new Header().parse(buffer, offset)
  }

  /**
   * Fills the fields from the header at `offset` (default 0) of `buffer`, and sets
   * `calculatedChecksum` to the checksum the bytes should carry. Fails with
   * ERR_VHD_BAD_COOKIE without the 'cxsparse' cookie.
   */
  parse(buffer, offset) {
    const { header, calculatedChecksum } = native.parseHeader(asBuffer(buffer), toOffset(offset))
    Object.assign(this, header)
    this.parentLocators = header.parentLocators.map((fields) => Object.assign(new Locator(), fields))
    this.calculatedChecksum = calculatedChecksum
    return this
  }

  /**
   * Writes the header, with its checksum computed, at `offset` (default 0) of `buffer` and
   * returns `buffer`; without a buffer, into a new one of `offset + 1024` bytes.
   */
  write(buffer, offset) {
    offset = toOffset(offset)
    return output(native.writeHeader(headerFields(this)), buffer, offset, 'dynamic disk header')
  }
}

/** Header.SIZE: bytes in a dynamic disk header. */
Header.SIZE = 1024
/** Header.PARENT_LOCATOR_COUNT: parent locator entries in a header. */
Header.PARENT_LOCATOR_COUNT = 8
/** Header.CHECKSUM_OFFSET: where the checksum is in a header. */
Header.CHECKSUM_OFFSET = 36
/** Header.SIGNATURE: the header's cookie. */
Header.SIGNATURE = 'cxsparse'

/** The checked fields of a header, for the native writer, in the order of the bytes. */
function headerFields(header) {
  const signature = String(header.signature)
  const dataOffset = toUint64(header.dataOffset, 'dataOffset')
  const tableOffset = toUint64(header.tableOffset, 'tableOffset')
  const headerVersion = version(header.headerVersion, 'headerVersion')
  const maxTableEntries = uint(header.maxTableEntries, 32, 'maxTableEntries')
  const sectorSize = uint(header.sectorSize, 32, 'sectorSize')
  const parentId = bytesField(header.parentId, 'parentId')
  const parentTimestamp = timestamp(header.parentTimestamp, 'parentTimestamp')
  const reserved1 = uint(header.reserved1, 32, 'reserved1')
  // Cut to 256 UTF-16 units by the writer, never half a surrogate pair.
  const parentName = String(header.parentName)
  const locators = header.parentLocators ?? []
  if (!Array.isArray(locators)) throw invalidArgType('parentLocators', 'an instance of Array', locators)
  // Entry i is slot i; a missing entry is written as zeros.
  const parentLocators = []
  for (let i = 0; i < Header.PARENT_LOCATOR_COUNT; i++) {
    const entry = locators[i]
    parentLocators.push(entry === undefined || entry === null ? EMPTY_LOCATOR : locatorFields(entry, `parentLocators[${i}].`))
  }
  const reserved2 = bytesField(header.reserved2, 'reserved2')
  return {
    signature, dataOffset, tableOffset, headerVersion, maxTableEntries, sectorSize, checksum: 0, parentId,
    parentTimestamp, reserved1, parentName, parentLocators, reserved2,
  }
}

// ---------------------------------------------------------------------------------------
// An open image's footer and header

/** A deep copy of native fields: no Buffer or object shared with `value`. */
function copyOf(value) {
  if (Buffer.isBuffer(value)) return Buffer.from(value)
  if (Array.isArray(value)) return value.map(copyOf)
  if (value === null || typeof value !== 'object') return value
  const copy = {}
  for (const key of Object.keys(value)) copy[key] = copyOf(value[key])
  return copy
}

/** A new `Footer` holding the native fields of an open image's footer (copied). */
function footerFrom(fields) {
  return Object.assign(new Footer(), copyOf(fields))
}

/**
 * A new `Header` holding the native fields of an open image's header (copied): all 8
 * parent locator entries, each with `text`, the path it holds decoded (`texts[i]`), or null.
 */
function headerFrom(fields, texts) {
  const header = Object.assign(new Header(), copyOf(fields))
  header.parentLocators = header.parentLocators.map((entry, i) => ({ ...entry, text: texts[i] ?? null }))
  return header
}

// ---------------------------------------------------------------------------------------
// Helpers

/**
 * The VHD checksum of `length` bytes (default: to the end) at `offset` (default 0) of
 * `buffer`: the one's complement of their sum, as an unsigned 32-bit number.
 */
function checksum(buffer, offset, length) {
  const bytes = toBytes(buffer)
  const start = toOffset(offset)
  if (start > bytes.length) throw outOfRange('offset', `>= 0 && <= ${bytes.length}`, start)
  const count = length === undefined || length === null ? bytes.length - start : toIndex(length, 'length')
  if (count > bytes.length - start) {
    throw outOfRange('length', `>= 0 && <= ${bytes.length - start}`, count)
  }
  return native.checksum(bytes, start, count)
}

/**
 * The CHS geometry the specification gives a disk of `totalSectors` 512-byte sectors:
 * `{ cylinders, heads, sectors }`, whole numbers (0.5.0 returns fractions).
 */
function getDiskGeometry(totalSectors) {
  return native.diskGeometry(toIndex(totalSectors, 'totalSectors'))
}

module.exports = {
  Footer,
  Header,
  Locator,
  footerFrom,
  headerFrom,
  checksum,
  getDiskGeometry,
  setCreatorDefaults,
}
