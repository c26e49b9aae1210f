'use strict'

// `VHD.Image`: vhd@0.5.0's image class, with its constructor options, methods, callback
// shapes and properties: an adapter over a `Disk` of lib/disk.js (which holds its state and
// lifecycle). It reads and writes fixed, dynamic and differencing images alike.
//
// The file is opened with `fs.open` (so that `fd`, `flags` and `mode` mean what they mean to
// fs, and `image.fd` is a real descriptor, as in 0.5.0); the native image works on a
// duplicate of that descriptor. `readFooter`, `readHeader` and `readAllocationTable` read
// the file itself at the position they are given, as 0.5.0's do.

const fs = require('node:fs')
const { Buffer, constants: bufferConstants } = require('node:buffer')
const native = require('../binding.js')
const { TYPE, SECTOR_SIZE, BLOCK_SIZE, TABLE_ENTRY_SIZE, SECTOR } = require('./constants.js')
const { Footer, Header, checksum } = require('./structures.js')
const {
  withCode,
  invalidArgType,
  invalidArgValue,
  outOfRange,
  toIndex,
  toPath,
  toBytes,
  toOpenOptions,
  call,
  callIo,
} = require('./args.js')
const { Disk, internal, kInit, kLife, kOptions, kOpenNative, kBat, kClose, kRead, kWrite } = require('./disk.js')
const { kReadInto, kWriteFrom, kWhenOpen, inspectCustom, inspectAs, disposable } = require('./protocol.js')

const { summary } = internal

const kDisk = Symbol('disk')
const kRelease = Symbol('release')
const kReadFile = Symbol('readFile')
const kOpenFd = Symbol('openFd')

// ---------------------------------------------------------------------------------------
// `flags`: fs's flags, mapped onto what an image can do. An image is opened read-only or
// read-write; it is never created or truncated (that would destroy it: make new images with
// `VHD.create`), so the flags that create, truncate or append only open the existing file
// read-write. Exclusive creation ('wx', 'ax'…) cannot open an existing file: refused. The
// synchronous forms ('rs', 'rs+', 'as'…) keep O_SYNC.

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL } = fs.constants
const O_ACCMODE = O_RDONLY | O_WRONLY | O_RDWR
const O_SYNC = fs.constants.O_SYNC ?? 0
// Added to every open: an open for reading never waits for a FIFO's writer (the native side
// then refuses anything but a regular file or a block device with ERR_VHD_FILE_TYPE).
// Regular files and block devices ignore it. (0 where the platform has no such flag.)
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0

const STRING_FLAGS = new Map()
for (const [names, readOnly, sync, exclusive] of /** @type {[string[], boolean, boolean, boolean][]} */ ([
  [['r'], true, false, false],
  [['rs', 'sr'], true, true, false],
  [['r+', 'w', 'w+', 'a', 'a+'], false, false, false],
  [['rs+', 'sr+', 'as', 'sa', 'as+', 'sa+'], false, true, false],
  [['wx', 'xw', 'wx+', 'xw+', 'ax', 'xa', 'ax+', 'xa+'], false, false, true],
])) {
  // What each name opens, worked out once (`null`: the name creates a file, refused).
  const access = exclusive ? null : Object.freeze({ readOnly, fsFlags: (readOnly ? O_RDONLY : O_RDWR) | (sync ? O_SYNC : 0) | O_NONBLOCK })
  for (const name of names) STRING_FLAGS.set(name, access)
}

/** `{ readOnly, fsFlags }` for the `flags` option (default 'r+', as in 0.5.0). */
function toAccess(flags) {
  if (flags === undefined || flags === null) flags = 'r+'
  if (typeof flags === 'string') {
    const access = STRING_FLAGS.get(flags)
    if (access === undefined) {
      throw invalidArgValue('options.flags', `must be one of fs's flags ('r', 'r+', 'rs+', 'w+'…). Received '${flags}'`)
    }
    if (access === null) {
      throw invalidArgValue('options.flags', `'${flags}' creates a new file; an image opens an existing one (make new images with VHD.create)`)
    }
    return access
  }
  if (typeof flags === 'number') {
    // fs takes flags as a 32-bit integer: anything else would be cut down to one silently.
    if (!Number.isInteger(flags) || flags < 0 || flags > 0x7fffffff) {
      throw outOfRange('options.flags', 'an integer >= 0 && <= 2147483647', flags)
    }
    if (flags & O_EXCL) {
      throw invalidArgValue('options.flags', 'O_EXCL creates a new file; an image opens an existing one (make new images with VHD.create)')
    }
    const readOnly = (flags & O_ACCMODE) === O_RDONLY
    const kept = flags & ~(O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND)
    return { readOnly, fsFlags: kept | (readOnly ? O_RDONLY : O_RDWR) | O_NONBLOCK }
  }
  throw invalidArgType('options.flags', 'of type string or a non-negative integer', flags)
}

/**
 * Checks `mode` as `fs.open` would (a 32-bit unsigned integer or an octal string), so that
 * a bad one fails in the constructor rather than at `open` (or never, with `fd`).
 */
function checkMode(mode) {
  if (mode === undefined || mode === null) return
  if (typeof mode === 'number') {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0xffffffff) {
      throw outOfRange('options.mode', 'an integer >= 0 && <= 4294967295', mode)
    }
    return
  }
  if (typeof mode === 'string') {
    if (!/^[0-7]+$/.test(mode) || Number.parseInt(mode, 8) > 0xffffffff) {
      throw invalidArgValue('options.mode', `must be a 32-bit unsigned integer or an octal string. Received '${mode}'`)
    }
    return
  }
  throw invalidArgType('options.mode', 'of type number or an octal string', mode)
}

/** `fs.read` reads at most this many bytes at once. */
const MAX_IO_LENGTH = 2 ** 31 - 1

function toFd(fd) {
  if (typeof fd !== 'number') throw invalidArgType('options.fd', 'of type number', fd)
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw outOfRange('options.fd', '>= 0 && <= 2147483647', fd)
  return fd
}

// ---------------------------------------------------------------------------------------
// Small helpers


function fsOpen(path, flags, mode) {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, mode, (error, fd) => (error ? reject(error) : resolve(fd)))
  })
}

function fsClose(fd) {
  return new Promise((resolve, reject) => {
    fs.close(fd, (error) => (error ? reject(error) : resolve()))
  })
}

/** The VHD checksum of a structure's bytes with its checksum field taken as zero. */
function checksumWithout(bytes, field) {
  const copy = Buffer.from(bytes)
  copy.fill(0, field, field + 4)
  return checksum(copy)
}

/** Checks `(buffer, offset, length, position)` as 0.5.0's read and write take them. */
function toIo(buffer, offset, length, position) {
  const bytes = toBytes(buffer)
  offset = offset === undefined || offset === null ? 0 : toIndex(offset, 'offset')
  if (offset > bytes.length) throw outOfRange('offset', `>= 0 && <= ${bytes.length}`, offset)
  length = length === undefined || length === null ? bytes.length - offset : toIndex(length, 'length')
  if (length > bytes.length - offset) throw outOfRange('length', `>= 0 && <= ${bytes.length - offset}`, length)
  return [bytes, offset, length, toIndex(position, 'position')]
}

/** @type {Set<number | null>} */
const SPARSE = new Set([TYPE.DYNAMIC, TYPE.DIFF])

/** A position that is not used (a fixed image's header): any Number or BigInt, or nothing. */
function anyPosition(position) {
  if (position === undefined || position === null || typeof position === 'number' || typeof position === 'bigint') return null
  throw invalidArgType('position', 'of type number or bigint', position)
}

// ---------------------------------------------------------------------------------------

/** The record of the file behind a `VHD.Image`, kept on its disk. */
const kFile = Symbol('file')

/**
 * @typedef {object} ImageFile
 * @property {string | null} path the path given, or null
 * @property {number | null} givenFd the descriptor given, or null
 * @property {number | null} fd the descriptor open now: the given one, or the one `open` opened
 * @property {{ readOnly: boolean, fsFlags: number }} access
 * @property {number | string} mode
 * @property {import('../binding.js').NativeImage | null} opened
 *   the native image of the last open (it keeps the footer and header it read, also after
 *   close), until `structuresOf` parses them
 * @property {{ footer: Footer | null, header: Header | null } | null} structures
 *   `image.footer` and `image.header` of the last open, kept after `close`
 */

/**
 * The disk behind a `VHD.Image`: of any type, opened from a descriptor that `fs.open` opened
 * with the image's flags (or the one given), which is closed after the image.
 */
class ImageDisk extends Disk {
  /**
   * Opens the path with the image's fs flags and the image in one native task (`fs.open`
   * then `openFd` took two trips to the thread pool, which made `VHD.Image#open` slower than
   * `VHD.open`); the descriptor opened with those flags becomes `image.fd`. Plain promises,
   * not an async function, and no more functions than needed: on the first open of a
   * process each `await` is a step of its own and each function costs tens of µs to compile.
   */
  [kOpenNative]() {
    const file = this[kFile]
    if (file.givenFd !== null || process.platform === 'win32') return this[kOpenFd](file)
    // `mode` only matters to a file being created, which an image never is; passed as fs.open would.
    const mode = typeof file.mode === 'string' ? Number.parseInt(file.mode, 8) : file.mode
    return native.openPath(/** @type {string} */ (file.path), file.access.fsFlags, mode, this[kOptions]).then((image) => {
      try {
        recordOpen(file, image, image.takeFd())
      } catch (error) {
        const fail = () => Promise.reject(error)
        return image.close().then(fail, fail)
      }
      return { native: image, release: () => this[kRelease]() }
    })
  }

  /**
   * Opens the image from the descriptor given, or from one `fs.open` opens (where `openPath`
   * is not available).
   * @param {ImageFile} file
   */
  async [kOpenFd](file) {
    const given = file.givenFd
    const fd = given ?? (await fsOpen(/** @type {string} */ (file.path), file.access.fsFlags, file.mode))
    /** @type {import('../binding.js').NativeImage | null} */
    let image = null
    try {
      image = await native.openFd(fd, file.path, this[kOptions])
      recordOpen(file, image, fd)
      return { native: image, release: () => this[kRelease]() }
    } catch (error) {
      // Opened natively but failed afterwards: release it (and its lock) now, not at GC.
      if (image !== null && image.isOpen) await image.close().catch(() => {})
      // A descriptor the caller gave stays theirs when the open fails.
      if (given === null) await fsClose(fd).catch(() => {})
      throw error
    }
  }

  /** After the native image closed: closes the descriptor (a given one too, as 0.5.0 does). */
  [kRelease]() {
    const file = this[kFile]
    const fd = file.fd
    file.fd = null
    return fd === null ? Promise.resolve() : fsClose(fd)
  }
}

/**
 * What an open leaves in the file record: the descriptor, and the native image, whose
 * footer and header are parsed when first asked for (most users of VHD.Image read and
 * write without them).
 * @param {ImageFile} file
 * @param {import('../binding.js').NativeImage} image
 * @param {number | null} fd
 */
function recordOpen(file, image, fd) {
  file.opened = image
  file.structures = null
  file.fd = fd
}

/**
 * `image.footer` and `image.header`: vhd@0.5.0's `Footer` and `Header` instances of the
 * image last opened, made once per open when first asked for (parsing them at every open
 * made VHD.Image's open half again as slow as VHD.open's). The one place they are made.
 * @param {ImageFile} file
 */
function structuresOf(file) {
  const opened = file.opened
  if (opened !== null) {
    const header = opened.headerBytes()
    file.structures = { footer: Footer.parse(opened.footerBytes()), header: header ? Header.parse(header) : null }
    file.opened = null
  }
  return file.structures
}

/**
 * vhd@0.5.0's `VHD.Image`: `new Image({ path, fd, flags, mode })`, then `open`, `read`,
 * `write`, `close`. Every method takes a callback (called with the image as `this`) or,
 * without one, returns a promise.
 *
 * An adapter over a `Disk` (lib/disk.js), whose lifecycle it has: it keeps no state of its
 * own besides its constructor's options.
 *
 * `fd` takes precedence over `path` (0.5.0 ignored `fd`); `path` then only names the file in
 * messages and is where a differencing image's relative parent locators start from. With
 * `fd` alone they start from the current directory (or name the parent with `parent`).
 * `close` closes the descriptor, a given one too, as 0.5.0's `close` does.
 *
 * Options besides 0.5.0's: those of `VHD.open` (`readOnly`, `ignoreChecksums`, `parent`,
 * `parents`, `ignoreParentTimestamp`, `lock`, `parentRoot`).
 *
 * Locking (`lock`, default true) is the same as `VHD.open`'s, on the descriptor: the native
 * open locks its duplicate, exclusively when the image is opened read-write (flags 'r+',
 * 'w'… without `readOnly`), shared when read-only ('r', 'rs', or `readOnly: true`); the
 * parents of a differencing image are shared-locked. A conflict fails `open` with
 * ERR_VHD_LOCKED (and closes a descriptor `open` opened). Two `Image`s on one descriptor
 * conflict as two opens of the file do (the core recognises the file, not the descriptor,
 * whose duplicates share one OS lock). `close` releases the lock.
 */
class Image {
  /** @param {any} options */
  constructor(options) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options)
    const path = options.path === undefined || options.path === null ? null : toPath(options.path, 'options.path')
    const fd = options.fd === undefined || options.fd === null ? null : toFd(options.fd)
    if (path === null && fd === null) {
      throw invalidArgType('options.path', 'of type string or an instance of URL (or options.fd a file descriptor)', options.path)
    }
    // The common cases inline (a named flag, no mode): every function a first open calls
    // costs it tens of µs to compile (see docs/performance.md).
    const flags = options.flags ?? 'r+'
    const access = (typeof flags === 'string' && STRING_FLAGS.get(flags)) || toAccess(flags)
    if (options.mode !== undefined && options.mode !== null) checkMode(options.mode)
    const openOptions = toOpenOptions(options)
    openOptions.readOnly = openOptions.readOnly || access.readOnly

    /** The path given (a URL as a path); `null` when only `fd` was given. */
    this.path = path
    /** As given (default 'r+'): 'r' opens read-only, 'r+', 'w+'… read-write. */
    this.flags = options.flags ?? 'r+'
    /** As given (default 0o666); the file is never created, so it is not used. */
    this.mode = options.mode ?? 0o666
    /** @type {ImageFile} */
    const file = { path, givenFd: fd, fd, access, mode: this.mode, opened: null, structures: null }
    // Made as `wrap` makes disks, without the public constructor's checks (done above).
    /** @type {ImageDisk} */
    const disk = Object.create(ImageDisk.prototype)
    disk[kInit](path ?? '', openOptions, path ?? `fd ${fd}`)
    disk[kFile] = file
    this[kDisk] = disk
  }

  /** The file descriptor: the one given, or the one `open` opened; `null` when closed. */
  get fd() {
    return this[kDisk][kFile].fd
  }

  set fd(fd) {
    // 0.5.0's `fd` is a plain property: `close` closes whatever it holds then.
    this[kDisk][kFile].fd = fd
  }

  /** The hard disk footer (a `VHD.Footer`), once open; kept after `close`. */
  get footer() {
    return structuresOf(this[kDisk][kFile])?.footer ?? null
  }

  // 0.5.0's `footer` and `header` are plain properties: what is assigned reads back (until
  // the next open).
  set footer(footer) {
    const file = this[kDisk][kFile]
    file.structures = { footer, header: structuresOf(file)?.header ?? null }
  }

  /** The dynamic disk header (a `VHD.Header`) of dynamic and differencing images, once open. */
  get header() {
    return structuresOf(this[kDisk][kFile])?.header ?? null
  }

  set header(header) {
    const file = this[kDisk][kFile]
    file.structures = { footer: structuresOf(file)?.footer ?? null, header }
  }

  /**
   * `TYPE.FIXED`, `TYPE.DYNAMIC` or `TYPE.DIFF`; `null` before `open`.
   * @returns {number | null}
   */
  get type() {
    const footer = this.footer
    return footer ? footer.diskType : null
  }

  /**
   * The virtual size: the footer's current size (0.5.0 gave dynamic images the size of
   * their whole block table instead). As in 0.5.0, a BigInt for fixed images and a Number
   * for dynamic and differencing ones; `null` before `open`.
   */
  get size() {
    const footer = this.footer
    if (!footer) return null
    return this.header ? Number(footer.currentSize) : footer.currentSize
  }

  /** The block size of dynamic and differencing images (0.5.0's name); 2 MiB for fixed ones. */
  get sectorSize() {
    const header = this.header
    return header ? header.sectorSize : SECTOR_SIZE
  }

  /** 512-byte sectors per block. */
  get blocksPerSector() {
    return this.sectorSize / BLOCK_SIZE
  }

  /** 512-byte sectors taken by each block's sector bitmap. */
  get bitmapBlocks() {
    return Math.ceil(this.blocksPerSector / BLOCK_SIZE / 8)
  }

  /**
   * The block allocation table of dynamic and differencing images: a Buffer of big-endian
   * 32-bit entries (0xFFFFFFFF: not allocated), as it is now, blocks allocated by writes
   * included. `null` for fixed images and before `open`; after `close`, the last table.
   * The same Buffer is returned until a write may have changed the table.
   */
  get bat() {
    return this[kDisk][kBat]()
  }

  /** Opens the file and the image (the whole parent chain of a differencing image). */
  open(callback) {
    return call(
      callback,
      null,
      () => {
        const disk = this[kDisk]
        return disk[kLife].open(disk[kOpenNative], disk, this)
      },
      null,
      this,
    )
  }

  /** Resolves once the image is open (now, or when the `open` in progress succeeds). */
  [kWhenOpen]() {
    return this[kDisk][kWhenOpen]()
  }

  [kReadInto](bytes, offset, length, position) {
    return this[kDisk][kReadInto](bytes, offset, length, position)
  }

  [kWriteFrom](bytes, offset, length, position) {
    return this[kDisk][kWriteFrom](bytes, offset, length, position)
  }

  /**
   * Reads `length` bytes of the virtual disk at `position` into `buffer` at `offset`:
   * `callback(error, bytesRead, buffer)`, or a promise of `{ bytesRead, buffer }`. A read
   * that runs past the end of the disk is short, like `fs.read`.
   */
  read(buffer, offset, length, position, callback) {
    return callIo(
      callback,
      () => toIo(buffer, offset, length, position),
      ([bytes, offset, length, position], map, done) => this[kDisk][kRead](bytes, offset, length, position, map, done),
      (bytesRead) => [bytesRead, buffer],
      (bytesRead) => ({ bytesRead, buffer }),
      this,
    )
  }

  /**
   * Writes `length` bytes of `buffer` from `offset` to the virtual disk at `position`:
   * `callback(error, bytesWritten, buffer)`, or a promise of `{ bytesWritten, buffer }`. A
   * write past the end of the disk fails with ERR_VHD_OUT_OF_RANGE and writes nothing.
   */
  write(buffer, offset, length, position, callback) {
    return callIo(
      callback,
      () => toIo(buffer, offset, length, position),
      ([bytes, offset, length, position], map, done) => this[kDisk][kWrite](bytes, offset, length, position, map, done),
      (bytesWritten) => [bytesWritten, buffer],
      (bytesWritten) => ({ bytesWritten, buffer }),
      this,
    )
  }

  /**
   * `read` on the calling thread, like `fs.readSync`: returns the number of bytes read. For
   * small reads, where the thread-pool round trip costs more than the read (not in 0.5.0).
   */
  readSync(buffer, offset, length, position) {
    const [bytes, start, count, at] = toIo(buffer, offset, length, position)
    return this[kDisk].readIntoSync(bytes, start, count, at)
  }

  /** `write` on the calling thread, like `fs.writeSync`: returns the number of bytes written (not in 0.5.0). */
  writeSync(buffer, offset, length, position) {
    const [bytes, start, count, at] = toIo(buffer, offset, length, position)
    return this[kDisk].writeSync(bytes.subarray(start, start + count), at).bytesWritten
  }

  /** Makes every write started before this call durable (not in 0.5.0). */
  flush(callback) {
    return call(callback, null, () => this[kDisk].flush(), null, this)
  }

  /**
   * Waits for the operations in progress, flushes, closes the image and the file
   * descriptor (a descriptor given as `fd` too, as 0.5.0 does). `footer`, `header` and
   * `bat` keep their last values. Closing again, or an image that is not open, resolves
   * (as `FileHandle.close()` does; 0.5.0 failed with EBADF).
   */
  close(callback) {
    return call(callback, null, () => this[kDisk][kClose](true), null, this)
  }


  /**
   * Reads and parses a footer at `position` of the file: `callback(error, footer,
   * checksum)`, or a promise of `{ footer, checksum }`, where `checksum` is the one the
   * bytes call for (compare it with `footer.checksum`).
   */
  readFooter(position, callback) {
    return call(
      callback,
      () => [toIndex(position, 'position')],
      async ([position]) => {
        const bytes = await this[kReadFile](Footer.SIZE, position)
        const footer = Footer.parse(bytes)
        // A 511-byte footer read as the last 512 bytes of a file starts one byte in.
        const start = bytes.toString('latin1', 0, 8) === Footer.SIGNATURE ? 0 : 1
        const structure = Buffer.alloc(Footer.SIZE)
        bytes.copy(structure, 0, start)
        return { footer, checksum: checksumWithout(structure, Footer.CHECKSUM_OFFSET) }
      },
      (result) => [result.footer, result.checksum],
      this,
    )
  }

  /**
   * Reads and parses a dynamic disk header at `position` of the file: `callback(error,
   * header, checksum)`, or a promise of `{ header, checksum }`. For a fixed image, as in
   * 0.5.0, nothing is read: `callback(null)`, or `{ header: null, checksum: null }`.
   */
  readHeader(position, callback) {
    return call(
      callback,
      // A fixed image's footer has no header offset (all ones): 0.5.0 ignores the position,
      // so any Number or BigInt is taken (Number(footer.dataOffset) is 2^64); its type is
      // still checked.
      () => [this.type === TYPE.FIXED ? anyPosition(position) : toIndex(position, 'position')],
      async ([position]) => {
        if (!SPARSE.has(this.type)) {
          this[kDisk][kLife].current()
          return { header: null, checksum: null }
        }
        const bytes = await this[kReadFile](Header.SIZE, position)
        const header = Header.parse(bytes)
        return { header, checksum: checksumWithout(bytes, Header.CHECKSUM_OFFSET) }
      },
      (result) => (result.header === null ? [] : [result.header, result.checksum]),
      this,
    )
  }

  /**
   * Reads `length` bytes of the file at `position` (where the header says the block
   * allocation table is): `callback(error, buffer)`, or a promise of the Buffer.
   */
  readAllocationTable(position, length, callback) {
    return call(
      callback,
      () => [toIndex(position, 'position'), toIndex(length, 'length', Math.min(MAX_IO_LENGTH, bufferConstants.MAX_LENGTH))],
      ([position, length]) => this[kReadFile](length, position),
      (buffer) => [buffer],
      this,
    )
  }

  /** Exactly `length` bytes of the file at `position`, or ERR_VHD_TRUNCATED. */
  async [kReadFile](length, position) {
    this[kDisk][kLife].current()
    const truncated = (bytesRead) =>
      withCode(
        new Error(`${this[kDisk][kLife].name}: expected ${length} bytes at offset ${position}, read ${bytesRead} (the file ends first)`),
        'ERR_VHD_TRUNCATED',
      )
    // Nothing is allocated for bytes the file does not have (a huge length is refused here,
    // not after allocating it).
    const { size } = await new Promise((resolve, reject) => {
      fs.fstat(this.fd, (error, stats) => (error ? reject(error) : resolve(stats)))
    })
    if (position + length > size) throw truncated(Math.max(0, Math.min(length, size - position)))
    const buffer = Buffer.alloc(length)
    const bytesRead = await new Promise((resolve, reject) => {
      fs.read(this.fd, buffer, 0, length, position, (error, n) => (error ? reject(error) : resolve(n)))
    })
    if (bytesRead !== length) throw truncated(bytesRead)
    return buffer
  }

  // 0.5.0's block table queries (it calls a block a "sector" and a 512-byte sector a "block").

  /** The block that holds 512-byte sector `lba`. */
  sectorNumber(lba) {
    return Math.floor(toIndex(lba, 'lba') / this.blocksPerSector)
  }

  /** The index of 512-byte sector `lba` in its block. */
  blockInSector(lba) {
    return toIndex(lba, 'lba') % this.blocksPerSector
  }

  /** The block allocation table entry of block `sectorNumber` (`SECTOR.FREE` beyond the table). */
  getSectorAddress(sectorNumber) {
    sectorNumber = toIndex(sectorNumber, 'sectorNumber')
    const bat = this.bat
    return bat && sectorNumber < bat.length / TABLE_ENTRY_SIZE
      ? bat.readUInt32BE(sectorNumber * TABLE_ENTRY_SIZE)
      : SECTOR.FREE
  }

  /** True when block `sectorNumber` is not allocated. */
  sectorNeedsAllocation(sectorNumber) {
    return this.getSectorAddress(sectorNumber) === SECTOR.FREE
  }

  /** What `console.log(image)` and `util.inspect` show: the disk's summary and the descriptor. */
  [inspectCustom](depth, options, inspect) {
    return inspectAs(this, { ...summary(this[kDisk]), path: this.path, fd: this.fd }, depth, options, inspect)
  }
}

// `await using image = await new VHD.Image(...).open()` closes it when the block ends.
disposable(Image)

module.exports = { Image }
