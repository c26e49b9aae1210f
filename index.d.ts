/// <reference types="node" />

// Types of the `vhd` package (index.js): Microsoft VHD images, fixed, dynamic and
// differencing.
//
// Every asynchronous method has two forms: with an error-first callback (returns undefined;
// the callback is called exactly once, asynchronously) and without (returns a promise).
// Argument type errors are thrown synchronously in the callback form and reject the promise
// in the promise form.
//
// 64-bit values, one rule everywhere: the fields of the on-disk structures (`Footer`,
// `Header`, `Locator`: `disk.footer`, `disk.header`, `image.footer`, `Footer.parse`…) that
// are 64 bits wide on disk (`dataOffset`, `originalSize`, `currentSize`, `tableOffset`) are
// BigInts, as in vhd@0.5.0: a crafted image may hold any value there. Everything else
// (sizes, offsets and counts of `disk`, `info`, `convert`, `check`, `compact`, `resize`,
// `commit`, allocated ranges) is a Number: exact, since images we open are far below 2^53
// bytes. `info` is plain JSON, the CLI's `info --json` object: a stored field a crafted image
// set above 2^53 (an original size, a locator's data offset) is rounded there as `JSON.parse`
// rounds the CLI's exact text; `disk.footer` and `disk.header` have the exact BigInt. As
// arguments, offsets and sizes are Numbers or BigInts (`Integer`).

import type { URL } from 'node:url'

/** A file path, or a `file:` URL. */
export type PathLike = string | URL

/** An offset or a length: a non-negative safe integer, as a Number or a BigInt. */
export type Integer = number | bigint

/** Anything whose bytes can be written: Buffer, Uint8Array, other typed arrays, DataView. */
export type Bytes = ArrayBufferView

/** Disk types, with vhd@0.5.0's names and values. */
export declare const TYPE: {
  readonly NONE: 0
  readonly RESERVED_DEPRECATED1: 1
  readonly FIXED: 2
  readonly DYNAMIC: 3
  readonly DIFF: 4
  readonly RESERVED_DEPRECATED2: 5
  readonly RESERVED_DEPRECATED3: 6
}

/** The package version, e.g. `'1.0.0'`. */
export declare const version: string

/** The `code` of an error about the image or its use. */
export type VhdErrorCode =
  /** Use of an image that is not open (never opened, or closed). */
  | 'ERR_VHD_CLOSED'
  /** `open` on an image that is open or being opened. */
  | 'ERR_VHD_ALREADY_OPEN'
  /** A footer or dynamic header checksum does not match (see `ignoreChecksums`). */
  | 'ERR_VHD_CHECKSUM'
  /**
   * A damaged VHD: a footer or dynamic header without its cookie (`conectix`, `cxsparse`)
   * where the rest of the file says it is a VHD. A file with no sign of a VHD at all is
   * `ERR_VHD_NOT_VHD`.
   */
  | 'ERR_VHD_BAD_COOKIE'
  /** The file ends before a structure the image needs. */
  | 'ERR_VHD_TRUNCATED'
  /** A footer or header field holds an impossible value. */
  | 'ERR_VHD_INVALID_FIELD'
  /**
   * A block allocation table entry points outside the file: its block (sector bitmap, and
   * data up to the end of the disk in whole sectors) does not lie in front of the footer.
   */
  | 'ERR_VHD_BAT_OUT_OF_RANGE'
  /** A class that is not the image's type: `VHD.Fixed` on a dynamic image, `VHD.Dynamic` on a differencing one… */
  | 'ERR_VHD_WRONG_TYPE'
  /** A valid image or operation this version does not handle. */
  | 'ERR_VHD_UNSUPPORTED'
  /**
   * A long operation stopped at a clean point because it was asked to (the CLI's Ctrl-C).
   * With an `AbortSignal`, operations reject with an `AbortError` (`ABORT_ERR`) instead.
   */
  | 'ERR_VHD_CANCELLED'
  /** A write that would run past the end of the virtual disk (a RangeError). */
  | 'ERR_VHD_OUT_OF_RANGE'
  /** A write on a read-only image. */
  | 'ERR_VHD_READ_ONLY'
  /** `create` on an existing file without `overwrite`. */
  | 'ERR_VHD_EXISTS'
  /** A size or block size `create` cannot use (a RangeError). */
  | 'ERR_VHD_INVALID_ARGUMENT'
  /** An OS error without a well-known name. */
  | 'ERR_VHD_IO'
  /** A bug in this library (a caught panic). */
  | 'ERR_VHD_INTERNAL'
  /**
   * No parent of a differencing image was found: the message names it and lists every place
   * tried with why, in words ("missing", "not a VHD", "not a regular file"…).
   */
  | 'ERR_VHD_PARENT_NOT_FOUND'
  /**
   * The file where the parent should be is another disk (its unique id is not the recorded
   * one); neither id is in the message.
   */
  | 'ERR_VHD_PARENT_MISMATCH'
  /** The parent's time stamp is not the one the child recorded (see `ignoreParentTimestamp`). */
  | 'ERR_VHD_PARENT_MODIFIED'
  /**
   * Finding the parent chain looked at more than 1024 candidate files: a crafted chain that
   * names its parents in too many ways.
   */
  | 'ERR_VHD_PARENT_SEARCH_LIMIT'
  /** The parent chain comes back to an image already in it. */
  | 'ERR_VHD_PARENT_LOOP'
  /** The parent chain is deeper than 64 images. */
  | 'ERR_VHD_CHAIN_TOO_DEEP'
  /**
   * The file is locked by another open image, in this process or another one (see
   * `OpenOptions.lock`); the message names the file. Also from `create` with `overwrite`
   * over an image open elsewhere.
   */
  | 'ERR_VHD_LOCKED'
  /**
   * A parent found through the child's locators or parent name lies outside
   * `OpenOptions.parentRoot`, and no candidate inside it was usable; it was not opened.
   */
  | 'ERR_VHD_PARENT_OUTSIDE_ROOT'
  /**
   * Two block allocation table entries, or an entry and the image's own structures (footer
   * copy, dynamic header, BAT, a differencing image's parent locator data), claim the same
   * bytes.
   */
  | 'ERR_VHD_BAT_OVERLAP'
  /**
   * The buffer a read was filling was transferred (`postMessage`, `structuredClone` with a
   * transfer list), detached or shrunk (a resizable `ArrayBuffer`) before the read settled:
   * the bytes read had nowhere to go. Nothing else was written.
   */
  | 'ERR_VHD_BUFFER_DETACHED'
  /**
   * The path names something that is not read or written here: a directory, a FIFO, a
   * socket or a character device (`/dev/null`), or a block device where only a regular
   * file will do (an image opened for writing, a new image). Decided on the opened file,
   * without waiting on a FIFO; nothing was read or written. (`convert` writes onto a block
   * device, and sources and read-only images may be block devices.)
   */
  | 'ERR_VHD_FILE_TYPE'
  /**
   * `getAllocatedRanges` on an image with more than 2^20 (1048576) allocated ranges: a
   * crafted image can hold millions in a few MiB of file. Iterate them with
   * `disk.allocatedRanges()` instead, which holds a bounded number at a time.
   */
  | 'ERR_VHD_TOO_MANY_RANGES'
  /**
   * `check` with `repair` planned changes that would lose data: drop allocated blocks, cut
   * space that holds what looks like block data, accept a size other fields contradict, or
   * change a sector that reads now. Nothing was written (the file is byte for byte as it
   * was); the message lists what would be lost. Keep a copy of the file, then pass `force`
   * to repair anyway.
   */
  | 'ERR_VHD_REPAIR_REFUSED'
  /**
   * The file is not a VHD image: shorter than a footer, or with no VHD footer at its end
   * nor any other sign of a VHD. The message says what it looks like when it is a known
   * format: "disk.qcow2 is not a VHD image (it looks like a qcow2 image)" (qcow2, VMDK,
   * VHDX, VDI, ISO 9660, compressed files…).
   */
  | 'ERR_VHD_NOT_VHD'
  /**
   * `VHD.convert` with `sourceFormat: 'auto'` (the default) found another image format, an
   * ISO 9660 image, a compressed file or an archive: its bytes are not a raw disk, so it is
   * refused rather than wrapped. Convert it with `qemu-img convert -O vpc`, or pass
   * `sourceFormat: 'raw'` to wrap its bytes as they are. Nothing was written.
   */
  | 'ERR_VHD_FOREIGN_FORMAT'
  /**
   * The output is the input, however spelled (a symbolic or hard link, `./`): a snapshot,
   * or a differencing image created over its own parent. Nothing was written.
   */
  | 'ERR_VHD_OUTPUT_IS_INPUT'

/** The `code` of an argument error, as Node's own. */
export type ArgumentErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_ILLEGAL_CONSTRUCTOR'
  /** A structure parsed from a buffer too short for it (`Footer.parse`, `Header.parse`…). */
  | 'ERR_BUFFER_OUT_OF_BOUNDS'

/** OS error names, as Node reports them on `fs` errors. */
export type SystemErrorCode =
  | 'EPERM'
  | 'ENOENT'
  | 'EINTR'
  | 'EIO'
  | 'ENXIO'
  | 'EBADF'
  | 'EAGAIN'
  | 'ENOMEM'
  | 'EACCES'
  | 'EBUSY'
  | 'EEXIST'
  | 'EXDEV'
  | 'ENODEV'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'EINVAL'
  | 'ENFILE'
  | 'EMFILE'
  | 'ETXTBSY'
  | 'EFBIG'
  | 'ENOSPC'
  | 'EROFS'
  | 'ENAMETOOLONG'
  | 'ELOOP'
  | 'EDQUOT'
  /** `VHD.serve`: the socket path or TCP port is taken (another server listens there). */
  | 'EADDRINUSE'
  /** `VHD.serve`: the host is no address of this machine. */
  | 'EADDRNOTAVAIL'

/** Codes of errors not about one call's image or arguments. */
export type OtherErrorCode =
  /** An operation given an `AbortSignal` was aborted (an `AbortError`, as Node's own). */
  | 'ABORT_ERR'
  /**
   * `require('vhd')` found no native addon for this platform: the message lists what was
   * tried and what to do (install Rust and `npm rebuild vhd`).
   */
  | 'ERR_VHD_NATIVE_NOT_FOUND'
  /**
   * A method needs an optional peer dependency that is not installed: `toFileDisk()` needs
   * `file-disk` (`npm install file-disk`). The message names the package; `cause` is the
   * failed `require`'s error.
   */
  | 'ERR_VHD_MISSING_PEER'

/**
 * Every `code` an error of this package can have (`__test__/types.test.js` checks it against
 * the codes the native layer and lib/ can produce).
 */
export type ErrorCode = VhdErrorCode | ArgumentErrorCode | SystemErrorCode | OtherErrorCode

/**
 * Every error this package reports has a `code`. Errors of the OS have, like Node's own
 * `fs` errors, the OS error's name as `code` (`ENOENT`, `ENOSPC`, `EROFS`…; `ERR_VHD_IO`
 * when it has no well-known name), `errno` (negative, as in Node, on Unix), `syscall`
 * (`open`, `read`, `write`, `fsync`…) and `path`: the file as the caller named it, never a
 * temporary file. Bad numbers and out-of-range writes are RangeErrors, bad argument types
 * TypeErrors, everything else Errors. Messages that suggest an option name it as a
 * JavaScript caller passes it (`pass { overwrite: true } to replace it`).
 *
 * The `stack` of an error of an operation (`VHD.open`, `VHD.create`, `VHD.convert`,
 * `check`, `close`…) shows where it was called, although the error was made when the work
 * finished on another thread. So does that of a `read`, `readInto` or `write` that went to
 * the I/O threads (a read that waited for a disk, every write); a read done at once (from
 * the page cache, the fast path) fails on the caller's stack anyway.
 */
export interface VhdError extends Error {
  code: ErrorCode
  errno?: number
  /** For OS errors: the system call that failed, as Node names it. */
  syscall?: string
  /** For OS errors: the file, as the caller named it. */
  path?: string
}

export type Callback = (error: VhdError | null) => void
export type ReadCallback = (error: VhdError | null, bytesRead: number, buffer: Buffer) => void
export type WriteCallback<T extends Bytes> = (error: VhdError | null, bytesWritten: number, buffer: T) => void
export type DiskCallback<D> = (error: VhdError | null, disk: D) => void

/**
 * `buffer` is a new Buffer of exactly the requested length; `bytesRead` is shorter only when
 * the read runs past the end of the disk (0 at or past the end), and the rest of `buffer`
 * is then zeros, as with `fs.read`.
 */
export interface ReadResult {
  bytesRead: number
  buffer: Buffer
}

/** `buffer` is the buffer that was written; `bytesWritten` is always all of it. */
export interface WriteResult<T extends Bytes = Buffer> {
  bytesWritten: number
  buffer: T
}

/**
 * A parent of a differencing image named by the caller: the path of a VHD image (its unique
 * id must still be the one the child records), or `{ path, raw: true }` for a raw disk file
 * (no VHD structures) as the base of the chain.
 */
export type ParentSpec = PathLike | { path: PathLike; raw?: boolean }

export interface OpenOptions {
  /**
   * Open the file read-only. **Default false: images open read-write, with an exclusive
   * lock** (see `lock`), so that no other open of the file succeeds until `close`; pass
   * `readOnly: true` to only read (a shared lock). Parents are always read-only.
   */
  readOnly?: boolean
  /** Open images whose checksums are wrong; such an image is read-only. Default false. */
  ignoreChecksums?: boolean
  /**
   * Differencing images: the parent, instead of the one the child's locators name (the
   * levels below it are still found through locators). Not with `parents`.
   */
  parent?: ParentSpec
  /**
   * Differencing images: the parents, nearest first (entry 0 is the parent of the image,
   * entry 1 the parent of that one…); levels beyond the list are found through locators.
   * Not with `parent`.
   */
  parents?: ParentSpec[]
  /**
   * Accept a parent whose time stamp is not the one the child recorded (a copied parent
   * gets a new modification time); its unique id is still checked. Default false.
   */
  ignoreParentTimestamp?: boolean
  /**
   * Lock the file while the image is open (default true): a read-write open takes an
   * exclusive lock, a read-only open a shared one, and every parent of a differencing image
   * a shared one (parents are only read). Any number of read-only opens may share a file; a
   * read-write open excludes every other open. A conflicting open fails at once with
   * `ERR_VHD_LOCKED` (it never waits). The locks are released by `close`.
   *
   * Other processes are kept out by the operating system's whole-file locks (`flock` on
   * Unix, `LockFileEx` on Windows); on Unix they are advisory: they keep out other opens
   * that lock (this package, and tools that lock), not a program that ignores locks. Within
   * this process, opens of one file conflict just as two processes' do, whatever route
   * reaches the file: a path, a hard or symbolic link, a `VHD.Image` on a given `fd`, twice
   * on the same descriptor or on a duplicate of it (the file is recognised by its device
   * and inode). On NFS, other machines see the locks where the server's lock manager is
   * used (not with the `nolock` or `local_lock=flock`/`all` mount options). A file system
   * without locks is used without the OS lock. A descriptor handed to another process
   * carries its lock with it. `false`: no lock is taken or checked, for the image nor its
   * parents.
   */
  lock?: boolean
  /**
   * For images from untrusted sources: a parent found through the child's parent locators
   * or parent name (at any level of the chain) is used only if it lies inside this folder
   * once symbolic links and `..` are resolved; a candidate outside it is never opened. When
   * no candidate inside is usable but one outside exists, the open fails with
   * `ERR_VHD_PARENT_OUTSIDE_ROOT`. Parents named in `parent`/`parents` are trusted and not
   * checked (their own parents, found through locators, are). Default: parents may be
   * anywhere.
   *
   * With or without it, a candidate is opened only as a regular file (never a FIFO, device
   * or socket), and nothing of a file that does not verify as the parent (its bytes, size,
   * unique id or time stamps) reaches an error: the message lists each place tried with why
   * it was not the parent, in words ("missing", "not a VHD", "a different disk",
   * "modified since the child was made", "outside the parent root"…). Without a root, a
   * crafted child can still learn whether a path exists and holds a VHD.
   */
  parentRoot?: PathLike
  /**
   * Windows only: follow a parent locator that names a network path (`\\server\share\…`,
   * `\\?\UNC\…`); default false, and then only its file name in the child's folder is
   * tried (opening the path would contact the server the image names, and offer it the
   * user's credentials). Device paths (`\\.\…`) are never followed. Other systems never
   * open Windows drive or network paths (only their file name in the child's folder).
   */
  allowRemoteParents?: boolean
}

/** Options every type of new image takes. */
export interface CommonCreateOptions {
  /**
   * Bytes per block, a power of two from 4 KiB to 256 MiB (default 2 MiB). Ignored by fixed
   * images; a differencing image takes its parent's block size (this one over a fixed parent).
   */
  blockSize?: Integer
  /** 1 to 4 ASCII characters, padded with spaces (default `'win '`). */
  creatorApplication?: string
  /**
   * Replace an existing file (default false: `ERR_VHD_EXISTS`). The new image is written
   * beside it, made durable, then renamed over it: a crash leaves the old file or the new
   * image, whole. It keeps the old file's owner, group, permissions and extended attributes
   * (refused, before anything is written, when they cannot be kept: another user's file,
   * without being root). A symbolic link is followed; other hard links keep the old file.
   */
  overwrite?: boolean
  /**
   * Differencing images, for parents from untrusted sources: as `OpenOptions.parentRoot`,
   * for the chain below `parent`. The `parent` named here is trusted; the images below it,
   * found through its locators, must lie inside this folder (`ERR_VHD_PARENT_OUTSIDE_ROOT`
   * otherwise, and nothing is created). The image returned is reopened (after `close`)
   * over the same parent with the same `parentRoot`. Accepted, and unused, for fixed and
   * dynamic images, so that one policy can be passed to every call.
   */
  parentRoot?: PathLike
}

/** Options of a new fixed or dynamic image. */
export interface BaseCreateOptions extends CommonCreateOptions {
  /** `'fixed'` or `'dynamic'` (or `TYPE.FIXED` / `TYPE.DYNAMIC`). */
  type: 'fixed' | 'dynamic' | 2 | 3
  /** Virtual size in bytes: a positive multiple of 512. */
  size: Integer
}

/** Options of a new differencing image. */
export interface DifferencingCreateOptions extends CommonCreateOptions {
  /** `'differencing'` (or `TYPE.DIFF`); may be left out, as `parent` says it. */
  type?: 'differencing' | 4
  /**
   * The parent image (fixed, dynamic or differencing; its whole chain must open). The child
   * records its unique id, modification time and name, and its absolute path, its path
   * relative to the child and its file URL as locators. The parent is only read.
   */
  parent: PathLike
  /**
   * Virtual size in bytes, a multiple of 512; absent or 0: the parent's. A larger size is
   * allowed: what lies past the parent's end reads as zeros.
   */
  size?: Integer
}

export type CreateOptions = BaseCreateOptions | DifferencingCreateOptions

export interface Version {
  major: number
  minor: number
}

/** Every field of a hard disk footer, with vhd@0.5.0's names and encodings: what a `Footer` holds. */
export interface FooterFields {
  /** `'conectix'`. */
  signature: string
  /** `FEATURES` flags (a new `VHD.Footer`: `FEATURES.RESERVED`). */
  features: number
  formatVersion: Version
  /** Absolute offset of the dynamic disk header; `NULL_OFFSET` for fixed disks. */
  dataOffset: bigint
  /** Milliseconds since the Unix epoch (whole seconds on disk; a new `VHD.Footer`: `EPOCH`). */
  timestamp: number
  /** Up to 4 Latin-1 characters, e.g. `'win '`, `'qemu'`, `'vpc '`; written NUL-padded when shorter. */
  creatorApplication: string
  creatorVersion: Version
  /**
   * A `PLATFORM` code: `0x5769326B` (Wi2k) or `0x4D616320` (Mac ) (a new `VHD.Footer`: `WI2K`
   * on Windows, `MAC` elsewhere, as in 0.5.0).
   */
  creatorHostOS: number
  originalSize: bigint
  /** The virtual size. */
  currentSize: bigint
  diskGeometry: { cylinders: number; heads: number; sectors: number }
  /** A `TYPE` value. */
  diskType: number
  /** The stored checksum, as read. */
  checksum: number
  /** The 16-byte unique id. */
  uuid: Buffer
  savedState: number
  /** The 427 reserved bytes. */
  reserved: Buffer
}

/** A parent locator entry, with vhd@0.5.0's `Locator` field names. */
export interface ParentLocator {
  platformCode: number
  dataSpace: number
  dataLength: number
  reserved: number
  dataOffset: bigint
  /**
   * The path the entry holds, decoded: `W2ru`/`W2ku` (UTF-16LE), `Wi2r`/`Wi2k` (ASCII) and
   * `MacX` (a `file://` URL); `null` for empty entries, other kinds, or data not in the file.
   */
  text: string | null
}

/**
 * The dynamic disk header of an open image (`disk.header`): a `Header` whose
 * `parentLocators` are all 8 entries, empty ones included, in header order, each with
 * `text`, the path it holds decoded.
 */
export interface DiskHeader extends Header {
  parentLocators: ParentLocator[]
}

/**
 * An image below a differencing image (a fresh copy on every access).
 */
export interface ParentInfo {
  /** Where it was found: through a locator or the header's parent name, or as named by `parent`/`parents`. */
  path: string
  /** `TYPE.FIXED`, `TYPE.DYNAMIC` or `TYPE.DIFF`; `null` for a raw base. */
  type: 2 | 3 | 4 | null
  /** Virtual size in bytes (a raw base: its file size). */
  size: number
  /** The 16-byte unique id of its footer; `null` for a raw base. */
  uuid: Buffer | null
  /** A raw disk file named with `{ path, raw: true }`. */
  raw: boolean
  /** The next image down; `null` at the base. */
  parent: ParentInfo | null
}

/**
 * What `Fixed`, `Dynamic` and `Differencing` share (not constructible itself).
 *
 * Before `open` and after `close`, every accessor except `path` and `isOpen` is `undefined`.
 * `footer` and `header` are fresh copies on every access.
 */
/**
 * `util.inspect` (and so `console.log`) of a disk or a `VHD.Image` shows a summary:
 * `Dynamic { path, type, size, readOnly, parent }` (`readOnlyReason` when read-only without
 * being asked; an `Image` adds `fd`), or `{ path, state }` when it is not open.
 */
export declare abstract class Disk {
  protected constructor(path: PathLike, options?: OpenOptions)

  /** The path given to the constructor (a URL is converted to a path). */
  get path(): string
  /** True between a successful `open` and `close`. */
  get isOpen(): boolean
  /** `TYPE.FIXED`, `TYPE.DYNAMIC` or `TYPE.DIFF`. */
  get type(): number | undefined
  /** Virtual size in bytes. */
  get size(): number | undefined
  /** Bytes per block (dynamic and differencing images; `undefined` for fixed ones). */
  get blockSize(): number | undefined
  /** Bytes the footer's CHS geometry describes (what CHS-only readers see). */
  get geometrySize(): number | undefined
  /** True when opened read-only, or when the image may only be read (see `readOnlyReason`). */
  get readOnly(): boolean | undefined
  /** Why the image is read-only, `null` when it is writable. */
  get readOnlyReason(): string | null | undefined
  /**
   * Where the footer came from: the end of the file, a 511-byte footer at the end (old
   * images), or the copy at offset 0 because the end one is damaged (then read-only).
   */
  get footerSource(): 'end' | 'end511' | 'copy' | undefined
  /** A `Footer` (an instance of `VHD.Footer`), a fresh copy on every access. */
  get footer(): Footer | undefined
  /** A `Header` (an instance of `VHD.Header`); dynamic and differencing images only. */
  get header(): DiskHeader | undefined
  /** Blocks allocated so far (dynamic and differencing images only). */
  get allocatedBlocks(): number | undefined

  /** Opens the image (read-write unless `readOnly`); resolves to the disk itself. */
  open(): Promise<this>
  open(callback: Callback): void

  /**
   * Reads `length` bytes at `offset` into a new Buffer. Not `fs.read`'s shape: a call with
   * a buffer first (`disk.read(buffer, 0, 8, 4096)`) fails with `ERR_INVALID_ARG_TYPE`
   * and says to use `readInto`.
   */
  read(offset: Integer, length: Integer): Promise<ReadResult>
  read(offset: Integer, length: Integer, callback: ReadCallback): void

  /**
   * Writes all of `buffer` at `offset`; a write past the end fails and writes nothing. Not
   * `fs.write`'s shape: `disk.write(buffer, 0, 8, 4096)` (and the same of `writeSync`)
   * fails with `ERR_INVALID_ARG_TYPE` and writes nothing; pass `buffer.subarray(…)`.
   */
  write<T extends Bytes>(buffer: T, offset: Integer): Promise<WriteResult<T>>
  write<T extends Bytes>(buffer: T, offset: Integer, callback: WriteCallback<T>): void

  /**
   * Reads `length` bytes from `position` into `buffer` at `bufferOffset`, like `fs.read`:
   * nothing is allocated. Short past the end of the disk (the rest of the range is left as
   * it was); 0 at or past the end.
   */
  readInto<T extends Bytes>(buffer: T, bufferOffset: Integer, length: Integer, position: Integer): Promise<{ bytesRead: number; buffer: T }>
  readInto<T extends Bytes>(
    buffer: T,
    bufferOffset: Integer,
    length: Integer,
    position: Integer,
    callback: (error: VhdError | null, bytesRead: number, buffer: T) => void,
  ): void
  /** `readInto` on the calling thread: returns the number of bytes read. */
  readIntoSync(buffer: Bytes, bufferOffset: Integer, length: Integer, position: Integer): number

  /** `read` on the calling thread. */
  readSync(offset: Integer, length: Integer): ReadResult
  /** `write` on the calling thread. */
  writeSync<T extends Bytes>(buffer: T, offset: Integer): WriteResult<T>

  /**
   * Makes every write started before this call durable, metadata included: it waits for
   * the reads, writes and discards in flight, then flushes (operations started after it do
   * not delay it).
   */
  flush(): Promise<void>
  flush(callback: Callback): void

  /**
   * Waits for operations in progress, flushes, and closes the file (even if the flush fails).
   * As `FileHandle.close()`: a `close()` while one is in progress settles with that one, and
   * closing a disk that is closed, never opened or failed to open resolves.
   */
  close(): Promise<void>
  close(callback: Callback): void

  /** `close()`, for `await using disk = await VHD.open(path)` (TypeScript 5.2+). */
  [Symbol.asyncDispose](): Promise<void>
}

/** A fixed image. Opening another type fails with `ERR_VHD_WRONG_TYPE`. */
export declare class Fixed extends Disk {
  constructor(path: PathLike, options?: OpenOptions)
}

/** A dynamic image. Opening another type fails with `ERR_VHD_WRONG_TYPE`. */
export declare class Dynamic extends Disk {
  constructor(path: PathLike, options?: OpenOptions)
}

/**
 * A differencing image: the sectors written here, every other one read from its parent.
 * It opens with its whole parent chain; only this image is ever written, the parents are
 * opened read-only. Opening another type fails with `ERR_VHD_WRONG_TYPE`.
 */
export declare class Differencing extends Disk {
  constructor(path: PathLike, options?: OpenOptions)
  /** The parent, and through its own `parent` every image below. */
  get parent(): ParentInfo | undefined
  /** The paths of this image and of every image below it: this one first, the base last. */
  get chain(): string[] | undefined
}

/** An image of any type. */
export type AnyDisk = Fixed | Dynamic | Differencing

/**
 * What every open disk has: the accessors that are `undefined` only before `open` and after
 * `close`, with their values' types. `open` and `create` resolve to the `Open…` types, so that
 * `tsc --strict` code reads `disk.size` with no `!`. (After `close` the values are
 * `undefined` again: the types do not follow a `close`.)
 */
export interface OpenDiskFields {
  readonly size: number
  readonly geometrySize: number
  readonly readOnly: boolean
  readonly readOnlyReason: string | null
  readonly footerSource: 'end' | 'end511' | 'copy'
  readonly footer: Footer
}

/** A fixed image as `open` and `create` resolve it: `type` is `TYPE.FIXED` (2). */
export type OpenFixed = Fixed &
  OpenDiskFields & {
    readonly type: 2
    /** Fixed images have no blocks, no dynamic header. */
    readonly blockSize: undefined
    readonly header: undefined
    readonly allocatedBlocks: undefined
  }

/** What an open dynamic or differencing image has besides `OpenDiskFields`. */
export interface OpenSparseFields {
  readonly blockSize: number
  readonly header: DiskHeader
  readonly allocatedBlocks: number
}

/** A dynamic image as `open` and `create` resolve it: `type` is `TYPE.DYNAMIC` (3). */
export type OpenDynamic = Dynamic & OpenDiskFields & OpenSparseFields & { readonly type: 3 }

/**
 * A differencing image as `open` and `create` resolve it: `type` is `TYPE.DIFF` (4), and its
 * parent chain is known.
 */
export type OpenDifferencing = Differencing &
  OpenDiskFields &
  OpenSparseFields & {
    readonly type: 4
    readonly parent: ParentInfo
    readonly chain: string[]
  }

/**
 * An open image of any type. `type` tells them apart:
 * `if (disk.type === VHD.TYPE.DIFF) console.log(disk.parent.path)`.
 */
export type OpenDisk = OpenFixed | OpenDynamic | OpenDifferencing

/**
 * Opens an image of any type as a `Fixed`, `Dynamic` or `Differencing`. **Read-write, with an
 * exclusive lock, unless `readOnly: true` is given**: another open of the same file (in this
 * process or another) fails with `ERR_VHD_LOCKED` until this one is closed.
 */
export declare function open(path: PathLike, options?: OpenOptions): Promise<OpenDisk>
export declare function open(path: PathLike, callback: DiskCallback<OpenDisk>): void
export declare function open(path: PathLike, options: OpenOptions | undefined, callback: DiskCallback<OpenDisk>): void

/** Creates an image and resolves to it, open read-write. */
export declare function create(path: PathLike, options: BaseCreateOptions & { type: 'fixed' | 2 }): Promise<OpenFixed>
export declare function create(path: PathLike, options: BaseCreateOptions & { type: 'dynamic' | 3 }): Promise<OpenDynamic>
export declare function create(path: PathLike, options: DifferencingCreateOptions): Promise<OpenDifferencing>
export declare function create(path: PathLike, options: CreateOptions): Promise<OpenDisk>
export declare function create(
  path: PathLike,
  options: BaseCreateOptions & { type: 'fixed' | 2 },
  callback: DiskCallback<OpenFixed>,
): void
export declare function create(
  path: PathLike,
  options: BaseCreateOptions & { type: 'dynamic' | 3 },
  callback: DiskCallback<OpenDynamic>,
): void
export declare function create(
  path: PathLike,
  options: DifferencingCreateOptions,
  callback: DiskCallback<OpenDifferencing>,
): void
export declare function create(path: PathLike, options: CreateOptions, callback: DiskCallback<OpenDisk>): void

// ---------------------------------------------------------------------------------------
// vhd@0.5.0's structure classes, helpers and constants (lib/structures.js, lib/constants.js)
//
// The types `Footer`, `Header` and `Locator` are the instances of the classes (`disk.footer`
// is a `Footer`, `disk.header` a `Header`). `FooterStructure`, `HeaderStructure` and
// `LocatorStructure` are other names of them, kept for code written against 1.0's types.

/** The fields of a parent locator entry (what `Header#write` needs of each entry). */
export interface LocatorFields {
  /** A `PLATFORM` code; 0 for an unused entry. */
  platformCode: number
  /** Room reserved for the path (bytes as Windows writes it; the specification says sectors). */
  dataSpace: number
  /** Length of the path in bytes. */
  dataLength: number
  /** The reserved field at +12. */
  reserved: number
  /** Absolute file offset of the path, at +16. */
  dataOffset: bigint
}

/** A parent locator entry (24 bytes). */
export interface LocatorStructure extends LocatorFields {
  /** Fills the fields from the entry at `offset` (default 0) of `buffer`; returns `this`. */
  parse(buffer: Bytes, offset?: Integer | null): this
  /** Writes the entry into a new Buffer of `offset + 24` bytes, at `offset` (default 0). */
  write(buffer?: null, offset?: Integer | null): Buffer
  /** Writes the entry at `offset` (default 0) of `buffer`; returns `buffer`. */
  write<T extends Bytes>(buffer: T, offset?: Integer | null): T
}

export interface LocatorConstructor {
  /** An unused entry (every field 0). */
  new (): LocatorStructure
  readonly prototype: LocatorStructure
  parse(buffer: Bytes, offset?: Integer | null): LocatorStructure
  readonly SIZE: 24
}

/** vhd@0.5.0's parent locator entry class. */
export declare const Locator: LocatorConstructor
export type Locator = LocatorStructure

/**
 * A hard disk footer (512 bytes), as vhd@0.5.0's `Footer`. `parse` fails with a
 * `ERR_VHD_BAD_COOKIE` error without the 'conectix' cookie; `write` computes the checksum
 * (the `checksum` field is what `parse` read).
 */
export interface Footer extends FooterFields {
  /**
   * Fills the fields from the footer at `offset` (default 0) of `buffer`, or one byte
   * further on (a 511-byte footer); returns `this`.
   */
  parse(buffer: Bytes, offset?: Integer | null): this
  /** Writes the footer into a new Buffer of `offset + 512` bytes, at `offset` (default 0). */
  write(buffer?: null, offset?: Integer | null): Buffer
  /** Writes the footer at `offset` (default 0) of `buffer`; returns `buffer`. */
  write<T extends Bytes>(buffer: T, offset?: Integer | null): T
}

export type FooterStructure = Footer

export interface FooterConstructor {
  /** A footer with vhd@0.5.0's defaults, and `CREATOR_APPLICATION`/`CREATOR_VERSION`. */
  new (): Footer
  readonly prototype: Footer
  parse(buffer: Bytes, offset?: Integer | null): Footer
  readonly SIZE: 512
  readonly CHECKSUM_OFFSET: 64
  readonly SIGNATURE: 'conectix'
}

/** vhd@0.5.0's hard disk footer class. */
export declare const Footer: FooterConstructor

/**
 * A dynamic disk header (1024 bytes), as vhd@0.5.0's `Header`. `parse` fails with a
 * `ERR_VHD_BAD_COOKIE` error without the 'cxsparse' cookie; `write` computes the checksum.
 */
export interface Header {
  /** `'cxsparse'`. */
  signature: string
  /** Unused by the format (`NULL_OFFSET`). */
  dataOffset: bigint
  /** Absolute offset of the block allocation table. */
  tableOffset: bigint
  headerVersion: Version
  maxTableEntries: number
  /** The block size in bytes (vhd@0.5.0's name for it). */
  sectorSize: number
  /** The stored checksum, as parsed. */
  checksum: number
  /** Set by `parse`: the checksum the parsed bytes should carry. */
  calculatedChecksum?: number
  /** The parent's 16-byte unique id. */
  parentId: Buffer
  /** Milliseconds since the Unix epoch. */
  parentTimestamp: number
  reserved1: number
  /** UTF-16 big-endian in the header, at most 256 UTF-16 units. */
  parentName: string
  /**
   * Entry `i` is slot `i` of the header (missing entries are written as zeros). `parse`
   * gives the entries up to the last one that is not all zeros (`[]` without locators).
   */
  parentLocators: Array<LocatorFields | null | undefined>
  /** The 256 reserved bytes. */
  reserved2: Buffer
  /** Fills the fields from the header at `offset` (default 0) of `buffer`; returns `this`. */
  parse(buffer: Bytes, offset?: Integer | null): this
  /** Writes the header into a new Buffer of `offset + 1024` bytes, at `offset` (default 0). */
  write(buffer?: null, offset?: Integer | null): Buffer
  /** Writes the header at `offset` (default 0) of `buffer`; returns `buffer`. */
  write<T extends Bytes>(buffer: T, offset?: Integer | null): T
}

export type HeaderStructure = Header

/** A header as `parse` leaves it: its entries are `Locator`s. */
export interface ParsedHeaderStructure extends Header {
  calculatedChecksum: number
  parentLocators: LocatorStructure[]
}

export interface HeaderConstructor {
  /** A header with vhd@0.5.0's defaults (no locators). */
  new (): Header
  readonly prototype: Header
  parse(buffer: Bytes, offset?: Integer | null): ParsedHeaderStructure
  readonly SIZE: 1024
  readonly PARENT_LOCATOR_COUNT: 8
  readonly CHECKSUM_OFFSET: 36
  readonly SIGNATURE: 'cxsparse'
}

/** vhd@0.5.0's dynamic disk header class. */
export declare const Header: HeaderConstructor

/** Cylinders, heads and sectors per track. */
export interface DiskGeometry {
  cylinders: number
  heads: number
  sectors: number
}

/**
 * The VHD checksum of `length` bytes (default: to the end) at `offset` (default 0): the
 * one's complement of their sum, as an unsigned 32-bit number.
 */
export declare function checksum(buffer: Bytes, offset?: Integer | null, length?: Integer | null): number

/** The specification's CHS geometry for a disk of `totalSectors` 512-byte sectors (whole numbers). */
export declare function getDiskGeometry(totalSectors: Integer): DiskGeometry

/** Platform codes: the creator host OS of a footer, and the kind of path of a parent locator. */
export declare const PLATFORM: {
  readonly NONE: 0x00000000
  readonly WI2R: 0x57693272
  readonly WI2K: 0x5769326b
  readonly W2RU: 0x57327275
  readonly W2KU: 0x57326b75
  readonly MAC: 0x4d616320
  readonly MACX: 0x4d616358
}

/** Footer feature flags. */
export declare const FEATURES: {
  readonly NONE: 0x00000000
  readonly TEMPORARY: 0x00000001
  readonly RESERVED: 0x00000002
}

/** Block allocation table values. */
export declare const SECTOR: { readonly FREE: 0xffffffff }

/** 2000-01-01T00:00:00Z in ms since the Unix epoch. */
export declare const EPOCH: 946684800000
/** 3 MiB. */
export declare const MIN_SIZE: 3145728
/** 512 (vhd@0.5.0 calls a disk sector a block). */
export declare const BLOCK_SIZE: 512
/** 2 MiB, the default data block size (vhd@0.5.0 calls a block a sector). */
export declare const SECTOR_SIZE: 2097152
export declare const TABLE_ENTRY_SIZE: 4
export declare const HEADER_SIZE: 1024
export declare const FOOTER_SIZE: 512
export declare const NULL_OFFSET: 18446744073709551615n
/** 2040 GiB. */
export declare const MAX_DYNAMIC_SIZE: 2190433320960

/** The creator application of the images this package writes (`'win '`); new Footers start with it. */
export declare let CREATOR_APPLICATION: string
/** The creator version of the images this package writes (1.0); new Footers start with it. */
export declare let CREATOR_VERSION: Version

// Flags and versions of the Windows virtual disk API, as vhd@0.5.0 exports them.
export declare const VERSION: { readonly UNSPECIFIED: 0; readonly 1: 1 }
export declare const ACCESS: {
  readonly NONE: 0x00000000
  readonly ATTACH_RO: 0x00010000
  readonly ATTACH_RW: 0x00020000
  readonly DETACH: 0x00040000
  readonly GET_INFO: 0x00080000
  readonly CREATE: 0x00100000
  readonly METAOPS: 0x00200000
  readonly READ: 0x000d0000
  readonly ALL: 0x003f0000
  readonly WRITABLE: 0x00320000
}
export declare const ATTACH: {
  readonly NONE: 0x00000000
  readonly READ_ONLY: 0x00000001
  readonly NO_DRIVE_LETTER: 0x00000002
  readonly PERMANENT_LIFETIME: 0x00000004
  readonly NO_LOCAL_HOST: 0x00000008
}
export declare const COMPACT: { readonly NONE: 0 }
export declare const CREATE: {
  readonly NONE: 0x00000000
  readonly FULL_PHYSICAL_ALLOCATION: 0x00000001
  readonly PREVENT_WRITES_TO_SOURCE_DISK: 0x00000002
  readonly DO_NOT_COPY_METADATA_FROM_PARENT: 0x00000004
}
export declare const DEPENDENCY: {
  readonly NONE: 0x00000000
  readonly MULT_BACKING_FILES: 0x00000001
  readonly FULLY_ALLOCATED: 0x00000002
  readonly READ_ONLY: 0x00000004
  readonly REMOTE: 0x00000008
  readonly SYSTEM_VOLUME: 0x00000010
  readonly SYSTEM_VOLUME_PARENT: 0x00000020
  readonly REMOVABLE: 0x00000040
  readonly NO_DRIVE_LETTER: 0x00000080
  readonly PARENT: 0x00000100
  readonly NO_HOST_DISK: 0x00000200
  readonly PERMANENT_LIFETIME: 0x00000400
}
export declare const DETACH: { readonly NONE: 0 }
export declare const EXPAND: { readonly NONE: 0 }
export declare const GETINFO: {
  readonly UNSPECIFIED: 0x00
  readonly SIZE: 0x01
  readonly IDENTIFIER: 0x02
  readonly PARENT_LOCATION: 0x03
  readonly PARENT_IDENTIFIER: 0x04
  readonly PARENT_TIMESTAMP: 0x05
  readonly VIRTUAL_STORAGE_TYPE: 0x06
  readonly PROVIDER_SUBTYPE: 0x07
  readonly IS_4K_ALIGNED: 0x08
  readonly PHYSICAL_DISK: 0x09
  readonly VHD_PHYSICAL_SECTOR_SIZE: 0x0a
  readonly SMALLEST_SAFE_VIRTUAL_SIZE: 0x0b
  readonly FRAGMENTATION: 0x0c
}
export declare const MERGE: { readonly NONE: 0 }
export declare const MIRROR: { readonly NONE: 0x00000000; readonly EXISTING_FILE: 0x00000001 }
export declare const OPEN: {
  readonly NONE: 0x00000000
  readonly NO_PARENTS: 0x00000001
  readonly BLANK_FILE: 0x00000002
  readonly BOOT_DRIVE: 0x00000004
  readonly CACHED_IO: 0x00000008
  readonly CUSTOM_DIFF_CHAIN: 0x00000010
}
export declare const RESIZE: {
  readonly NONE: 0x0
  readonly ALLOW_UNSAFE_VIRTUAL_SIZE: 0x1
  readonly RESIZE_TO_SMALLEST_SAFE_VIRTUAL_SIZE: 0x2
}
export declare const SETINFO: {
  readonly UNSPECIFIED: 0
  readonly PARENT_PATH: 1
  readonly IDENTIFIER: 2
  readonly PARENT_PATH_WITH_DEPTH: 3
  readonly PHYSICAL_SECTOR_SIZE: 4
}
export declare const STORAGE: {
  readonly NONE: 0x00000000
  readonly HOST_VOLUMES: 0x00000001
  readonly DISK_HANDLE: 0x00000002
}
export declare const VENDOR: {
  readonly MICROSOFT: 'EC984AEC-A0F9-47E9-901F-71415A66345B'
  readonly UNKNOWN: ''
}

// ---------------------------------------------------------------------------------------
// vhd@0.5.0's image class and streams (lib/image.js, lib/streams.js)

import { Readable, Writable } from 'node:stream'

/** `fs` open flags: a string (`'r'`, `'r+'`, `'w+'`…) or `fs.constants.O_*` flags. */
export type OpenFlags = string | number

/**
 * `new Image(options)`: `path`, or `fd` (which takes precedence; `path` then names the file
 * in messages and is where a differencing image's relative parent locators start from,
 * else the current directory). Plus the options of `open`.
 */
export interface ImageOptions extends OpenOptions {
  path?: PathLike | null
  fd?: number | null
  /**
   * Default `'r+'`. `'r'`/`'rs'` open read-only; `'r+'`, `'rs+'`, `'w'`, `'w+'`, `'a'`, `'a+'`…
   * open the existing image read-write (it is never truncated nor created); `'wx'`, `'ax'`…
   * are refused. A number: its access mode decides, `O_CREAT`, `O_TRUNC` and `O_APPEND` are
   * dropped, `O_EXCL` is refused.
   */
  flags?: OpenFlags
  /** Default `0o666`; unused (the file is never created). */
  mode?: number | string
  /**
   * Lock the file while the image is open (default true), as `OpenOptions.lock`: the
   * descriptor gets an exclusive lock when `flags` open read-write (`'r+'`, `'w'`…) and
   * `readOnly` is not set, a shared one for `'r'`/`'rs'` (or `readOnly: true`); the parents of
   * a differencing image are shared-locked. A conflicting open fails with `ERR_VHD_LOCKED`
   * and closes the descriptor it opened (a given `fd` stays open): so does a second
   * `VHD.Image` on the same (or a duplicated) `fd`, or on the same file by any route, that
   * conflicts with the first. `false`: no lock.
   */
  lock?: boolean
  /** As `OpenOptions.parentRoot`: the folder parents found through locators must lie in. */
  parentRoot?: PathLike
}

/** An `Image` callback: called with the image as `this`, as in vhd@0.5.0. */
export type ImageCallback<Args extends unknown[] = []> = (this: Image, error: VhdError | null, ...results: Args) => void

/**
 * vhd@0.5.0's image class: every method takes a callback (called with the image as `this`)
 * or, without one, returns a promise.
 */
export declare class Image {
  constructor(options: ImageOptions)
  /** The descriptor given, or the one `open` opened; `null` before `open` and after `close`. */
  fd: number | null
  /** The path given (a URL as a path), `null` with only `fd`. */
  path: string | null
  flags: OpenFlags
  mode: number | string
  /** Once open (kept after `close`). */
  footer: FooterStructure | null
  /** Dynamic and differencing images, once open (kept after `close`). */
  header: ParsedHeaderStructure | null
  /** `TYPE.FIXED`, `TYPE.DYNAMIC` or `TYPE.DIFF`; `null` before `open`. */
  get type(): number | null
  /**
   * The virtual size (the footer's current size): a BigInt for fixed images and a Number
   * for dynamic and differencing ones, as in vhd@0.5.0; `null` before `open`.
   */
  get size(): bigint | number | null
  /** The block size of dynamic and differencing images (0.5.0's name); 2 MiB for fixed ones. */
  get sectorSize(): number
  /** 512-byte sectors per block. */
  get blocksPerSector(): number
  /** 512-byte sectors of each block's sector bitmap. */
  get bitmapBlocks(): number
  /**
   * The block allocation table (big-endian 32-bit entries, 0xFFFFFFFF: not allocated) as it
   * is now; `null` for fixed images and before `open`.
   */
  get bat(): Buffer | null

  open(): Promise<this>
  open(callback: ImageCallback): void

  /** Reads into `buffer` at `offset` (default 0); short past the end of the disk, like `fs.read`. */
  read<T extends Bytes>(buffer: T, offset: Integer | null | undefined, length: Integer | null | undefined, position: Integer): Promise<{ bytesRead: number; buffer: T }>
  read<T extends Bytes>(buffer: T, offset: Integer | null | undefined, length: Integer | null | undefined, position: Integer, callback: ImageCallback<[bytesRead: number, buffer: T]>): void

  /** Writes from `buffer` at `offset` (default 0); a write past the end fails and writes nothing. */
  write<T extends Bytes>(buffer: T, offset: Integer | null | undefined, length: Integer | null | undefined, position: Integer): Promise<{ bytesWritten: number; buffer: T }>
  write<T extends Bytes>(buffer: T, offset: Integer | null | undefined, length: Integer | null | undefined, position: Integer, callback: ImageCallback<[bytesWritten: number, buffer: T]>): void
  /** `read` on the calling thread, like `fs.readSync`: returns the number of bytes read (not in vhd@0.5.0). */
  readSync(buffer: Bytes, offset: Integer | null | undefined, length: Integer | null | undefined, position: Integer): number
  /** `write` on the calling thread, like `fs.writeSync`: returns the number of bytes written (not in vhd@0.5.0). */
  writeSync(buffer: Bytes, offset: Integer | null | undefined, length: Integer | null | undefined, position: Integer): number

  /** As `Disk.flush`: every write started before this call made durable (not in vhd@0.5.0). */
  flush(): Promise<void>
  flush(callback: ImageCallback): void

  /**
   * Waits for operations in progress, flushes, closes the image and its descriptor. Closing
   * again, or an image that is not open, resolves (as `FileHandle.close()`; 0.5.0: EBADF).
   */
  close(): Promise<void>
  close(callback: ImageCallback): void

  /** `close()`, for `await using image = await new VHD.Image(options).open()`. */
  [Symbol.asyncDispose](): Promise<void>

  /** Parses the footer at `position` of the file; `checksum` is the one its bytes call for. */
  readFooter(position: Integer): Promise<{ footer: FooterStructure; checksum: number }>
  readFooter(position: Integer, callback: ImageCallback<[footer: FooterStructure, checksum: number]>): void

  /** Parses the dynamic disk header at `position` of the file; fixed images: no header. */
  readHeader(position: Integer): Promise<{ header: ParsedHeaderStructure; checksum: number } | { header: null; checksum: null }>
  readHeader(position: Integer, callback: ImageCallback<[header?: ParsedHeaderStructure, checksum?: number]>): void

  /** `length` bytes of the file at `position`. */
  readAllocationTable(position: Integer, length: Integer): Promise<Buffer>
  readAllocationTable(position: Integer, length: Integer, callback: ImageCallback<[buffer: Buffer]>): void

  /** The block holding 512-byte sector `lba`. */
  sectorNumber(lba: number): number
  /** The index of 512-byte sector `lba` in its block. */
  blockInSector(lba: number): number
  /** The block allocation table entry of a block (`SECTOR.FREE` when not allocated). */
  getSectorAddress(sectorNumber: number): number
  sectorNeedsAllocation(sectorNumber: number): boolean

  /** A read stream of the virtual disk; the image stays open when it ends (unless `autoClose`). */
  createReadStream(options?: ReadStreamOptions): ReadStream
  /** A write stream into the virtual disk; the image stays open when it finishes (unless `autoClose`). */
  createWriteStream(options?: WriteStreamOptions): WriteStream
}

/** What both streams take. */
export interface StreamOptions extends OpenOptions {
  /** An open image (or one being opened). Without it, the stream opens a `VHD.Image` from `path`/`fd`. */
  image?: Image | Disk | Partition | null
  path?: PathLike | null
  fd?: number | null
  flags?: OpenFlags
  mode?: number | string
  /** The first byte of the virtual disk (default 0). */
  start?: Integer | null
  /** Bytes per chunk (default 1 MiB). */
  highWaterMark?: Integer | null
  /**
   * Close the image when the stream ends or fails: default false for an `image` given, true
   * for an image the stream opened.
   */
  autoClose?: boolean | null
  signal?: AbortSignal
  emitClose?: boolean
  /**
   * For a stream that opens its own image from `path`/`fd`: lock the file while the stream
   * has it open (default true; see `ImageOptions.lock`): a read stream (flags `'r'`) takes
   * a shared lock, a write stream (flags `'w'`) an exclusive one, so a write stream on an
   * image open elsewhere fails with `ERR_VHD_LOCKED`. Ignored with `image` (its own open
   * decided).
   */
  lock?: boolean
  /** For a stream that opens its own image: as `OpenOptions.parentRoot`. Ignored with `image`. */
  parentRoot?: PathLike
}

export interface ReadStreamOptions extends StreamOptions {
  /** Exclusive, as in vhd@0.5.0 (default: the end of the disk). */
  end?: Integer | null
  encoding?: BufferEncoding
}

export interface WriteStreamOptions extends StreamOptions {
  /**
   * Default true: `'finish'` comes once everything written is durable (image metadata
   * included). False: once it is written.
   */
  flush?: boolean | null
}

/**
 * A readable stream of a virtual disk, in chunks of `highWaterMark` bytes, from `start` up to
 * `end` (exclusive). Default flags `'r'`.
 */
export declare class ReadStream extends Readable {
  constructor(options: ReadStreamOptions)
  image: Image | Disk | Partition
  path: string | null
  fd: number | null
  flags: OpenFlags
  mode: number | string
  start: number
  /** Exclusive; `Infinity`: the end of the disk. */
  end: number
  /** The offset of the next read. */
  position: number
  bytesRead: number
  autoClose: boolean
  highWaterMark: number
  /** Ends the stream and closes the image, whatever `autoClose` says. */
  close(callback?: (error: VhdError | null) => void): void
  /** Does nothing: the stream opens by itself (vhd@0.5.0 needed it). */
  open(): void
}

/**
 * A writable stream into a virtual disk from `start`. A write that would run past the end
 * writes nothing and fails the stream with `ERR_VHD_OUT_OF_RANGE` (earlier writes that fit
 * are written). Default flags `'w'` (the existing image, read-write).
 */
export declare class WriteStream extends Writable {
  constructor(options: WriteStreamOptions)
  image: Image | Disk | Partition
  path: string | null
  fd: number | null
  flags: OpenFlags
  mode: number | string
  start: number
  /** The offset of the next write. */
  position: number
  bytesWritten: number
  autoClose: boolean
  highWaterMark: number
  /** Ends the stream, then closes the image, whatever `autoClose` says. */
  close(callback?: (error: VhdError | null) => void): void
  /** Does nothing: the stream opens by itself (vhd@0.5.0 needed it). */
  open(): void
}

// `Fixed`, `Dynamic` and `Differencing` make streams too.
export interface Disk {
  /** A read stream of the virtual disk; the disk stays open when it ends (unless `autoClose`). */
  createReadStream(options?: ReadStreamOptions): ReadStream
  /** A write stream into the virtual disk; the disk stays open when it finishes (unless `autoClose`). */
  createWriteStream(options?: WriteStreamOptions): WriteStream
}

// ---------------------------------------------------------------------------------------
// Maintenance operations on whole images (lib/ops.js)
//
// Each takes paths, opens what it needs itself (an image open for writing elsewhere is
// refused with `ERR_VHD_LOCKED`), and runs off the JavaScript thread. The long ones take
// `onProgress` and `signal`; every one has a callback form too.

/** How far a long operation got. */
export interface Progress {
  bytesDone: number
  bytesTotal: number
}

/**
 * `onProgress` and `signal` of a long operation.
 *
 * `onProgress` is called at most once per 1 % or per 100 ms, with `bytesDone` never going
 * down, and, when the operation succeeds, last with `bytesDone === bytesTotal`, before the
 * promise resolves; never after it settles. If it throws, the operation is cancelled and the
 * promise rejects with what it threw, once the operation has stopped and cleaned up as for
 * `signal`. A throw cancels only what has not happened: when the operation completed anyway
 * (the throw came at the last report, `bytesDone === bytesTotal`, or after the last unit of
 * work), its result is on disk and the promise resolves; the error is dropped.
 * (`createVhdStream` is the exception: nothing is committed by opening a stream, so a throw
 * closes the stream it opened, releasing its source, and the promise rejects.)
 *
 * Aborting `signal` stops the operation at its next unit of work (a chunk of at most a few
 * MiB); the promise rejects with an `AbortError` (`code` `'ABORT_ERR'`, `cause` the signal's
 * reason) once the operation has stopped and cleaned up: nothing on disk was lost, and an
 * output file is not left behind. A signal already aborted rejects at once and nothing
 * starts. An operation that finished before it saw the abort resolves normally.
 */
export interface ProgressOptions {
  onProgress?: (progress: Progress) => void
  signal?: AbortSignal
}

/** What Node's own APIs reject with when their `signal` aborts. */
export declare class AbortError extends Error {
  constructor(message?: string, options?: { cause?: unknown })
  name: 'AbortError'
  code: 'ABORT_ERR'
}

/**
 * The options that say how to open a source or an image's parents (`readOnly` does not
 * apply). Every operation that opens a chain takes them, `parentRoot` included: a service
 * handling images from untrusted sources passes the same `parentRoot` to every call.
 */
export type ChainOptions = Omit<OpenOptions, 'readOnly'>

/** Options shared by `convert` and `createVhdStream`. */
export interface ConversionOptions extends ChainOptions, ProgressOptions {
  /**
   * Make what Azure accepts: a fixed image whose virtual size is rounded up to a whole MiB
   * (implies `to: 'fixed'`; another type is refused).
   */
  azure?: boolean
  /** Block size of dynamic output: a power of two from 4 KiB to 256 MiB (default 2 MiB). */
  blockSize?: Integer
  /**
   * How to read the source: `'auto'` (default: a VHD if it ends with a valid footer, raw
   * otherwise), `'raw'` or `'vhd'` (a differencing image is read through its chain; one
   * whose end footer is damaged, through its footer copy at offset 0).
   *
   * `'auto'` never takes the footer copy at offset 0 alone for proof of a VHD: the guest of
   * a raw disk writes that sector. A file with a valid copy there but no valid footer at
   * its end is read as raw, and `warnings` says so; pass `'vhd'` to read it as a damaged VHD.
   * Another image format (qcow2, VMDK, VHDX, VDI…), an ISO 9660 image, a compressed file or
   * an archive is refused by `'auto'` with `ERR_VHD_FOREIGN_FORMAT` (nothing is written):
   * convert it with `qemu-img convert -O vpc`, or pass `'raw'` to wrap its bytes as they are.
   */
  sourceFormat?: 'auto' | 'raw' | 'vhd'
  /** The output's unique id: 16 bytes or a UUID string (default: random). */
  uniqueId?: Bytes | string
  /** The output's time stamp: a Date or milliseconds since the Unix epoch (default: now). */
  timestamp?: Date | number
}

export interface ConvertOptions extends ConversionOptions {
  /** The output: the raw disk, a fixed VHD or a dynamic one (all-zero blocks left out). Optional with `azure`. */
  to?: 'raw' | 'fixed' | 'dynamic'
  /**
   * Replace an existing destination (default false: `ERR_VHD_EXISTS`): a regular file is
   * replaced atomically; a block device is written in place from its start (never
   * truncated; it must hold the whole output). A directory, FIFO, socket or character
   * device is refused with `ERR_VHD_FILE_TYPE` (with or without `overwrite`).
   */
  overwrite?: boolean
}

/** How a conversion source was read, and why. */
export interface DetectedSource {
  /** `'vhd'`, or `'raw'`: the file's bytes are the disk. */
  format: 'raw' | 'vhd'
  /** Why, in words: "read as raw, as asked", "it ends with a valid VHD footer"… */
  reason: string
}

export interface ConvertReport {
  /** Size of the source disk in bytes. */
  sourceSize: number
  /** Virtual size of the output: the source's rounded up to whole sectors (with `azure`, to a whole MiB). */
  virtualSize: number
  /** Size of the output file in bytes (on a block device: the length written from its start). */
  fileSize: number
  /** Blocks allocated in dynamic output (0 for the other formats). */
  allocatedBlocks: number
  /** How the source was read (`sourceFormat: 'auto'` decides), and why. */
  detected: DetectedSource
  /**
   * What the caller should know, in sentences (empty as a rule): e.g. that `'auto'` read as
   * raw a file whose first sector is a VHD footer copy. The command line prints each on
   * stderr as `vhd: warning: ...`.
   */
  warnings: string[]
}

/**
 * Converts `source` (a raw disk, or a VHD of any type, chains flattened) into a new file at
 * `destination`. It is written to a temporary file renamed into place at the end: a failed
 * or cancelled conversion leaves the destination as it was.
 */
export declare function convert(source: PathLike, destination: PathLike, options: ConvertOptions): Promise<ConvertReport>
export declare function convert(
  source: PathLike,
  destination: PathLike,
  options: ConvertOptions,
  callback: (error: VhdError | AbortError | null, report: ConvertReport) => void,
): void

export interface VhdStreamOptions extends ConversionOptions {
  /** `'fixed'` or `'dynamic'`; optional with `azure`. */
  type?: 'fixed' | 'dynamic'
  /** The Readable's buffer, in bytes (Node's default otherwise). */
  highWaterMark?: Integer
}

/**
 * The bytes of a VHD file, computed as they are read: what `createVhdStream` resolves to
 * (a Readable; the class itself is not exported).
 */
export interface VhdStream extends Readable {
  /** The total number of bytes the stream gives, known before the first one. */
  readonly length: number
  /** How the source is read, and why (as `ConvertReport.detected`). */
  readonly detected: Readonly<DetectedSource>
  /** What the caller should know about the source (as `ConvertReport.warnings`). */
  readonly warnings: readonly string[]
}

/**
 * A Readable of the VHD file `convert` would write for `source` with the same options,
 * byte for byte, computed as it is read (about 1 MiB at a time, as the consumer asks): a
 * raw disk uploaded as a VHD with no temporary file. Resolves once the output is planned,
 * its `length` known (dynamic output reads the whole source once first: that is what
 * `onProgress` reports and `signal` stops). `destroy()` closes the source; read errors
 * are emitted as `'error'`.
 */
export declare function createVhdStream(source: PathLike, options: VhdStreamOptions): Promise<VhdStream>

/**
 * One problem `check` found; or, with `omitted`, the summary of the problems of its kind
 * that were not listed: at most 1000 findings of each kind are listed (a crafted image can
 * have millions), then one summary whose `message` reads `'… and N more overlap findings,
 * not listed …'`.
 */
export interface CheckFinding {
  /**
   * `'corrupt'`: damage; `'leak'`: wasted space, nothing lost; `'info'`: harmless. For a
   * summary: the worst of those it stands for.
   */
  severity: 'info' | 'leak' | 'corrupt'
  /** A stable code of the kind of problem, e.g. `'footer-checksum'`. */
  code: string
  message: string
  /** Where in the file, when it is about one place (never on a summary). */
  offset?: number
  /**
   * Only on a summary, the last finding of its kind in the list: how many findings of that
   * kind were found and not listed.
   */
  omitted?: number
}

/**
 * One change `check` with `repair` made; or, with `omitted`, the summary of the changes of
 * its kind that were not listed (at most 1000 of each kind are).
 */
export interface CheckRepair {
  /** The code of the finding it repairs. */
  code: string
  /** Where in the file (for a cut: the new file size; for a summary: the first change it stands for). */
  offset: number
  description: string
  /** Only on a summary: how many changes of its kind were made and not listed. */
  omitted?: number
}

export interface CheckOptions extends Omit<ChainOptions, 'ignoreChecksums'> {
  /**
   * Repair what can be repaired without losing data (the file is then locked exclusively).
   * Default false. A repair plans before it writes: a structure whose checksum failed is not
   * believed on its own word (the footer copy, the sizes, the file's length and the
   * consistency of the block allocation table decide, and a field that lost one bit is
   * restored), and a plan that would lose data is refused with `ERR_VHD_REPAIR_REFUSED`
   * unless `force` is set.
   */
  repair?: boolean
  /**
   * With `repair` only (otherwise `ERR_INVALID_ARG_VALUE`): carry out a repair that drops
   * allocated blocks, cuts space that holds what looks like block data, accepts a size
   * other fields contradict, or changes sectors that read now. Keep a copy of the file
   * first; `lost` lists the ranges of the disk that read differently. Default false.
   */
  force?: boolean
  /** Do not look for a differencing image's parent (the link to it is then not checked). */
  skipParent?: boolean
}

/**
 * What `check` found: the same object `vhd check --json` prints, key for key (one shape,
 * built once by the core). The keys follow `qemu-img check --output=json` where they mean
 * the same (`corruptions`, `leaks`, `format`), in camelCase.
 */
export interface CheckReport {
  /** The path checked. */
  path: string
  /** Always `'vpc'` (qemu's name for VHD). */
  format: 'vpc'
  /** The disk type, when the footer names one. */
  type: 'fixed' | 'dynamic' | 'differencing' | null
  /** The virtual size, from the footer used (null when no footer could be read). */
  virtualSize: number | null
  /** The block size of dynamic and differencing images (null for fixed images). */
  blockSize: number | null
  /** The file's size in bytes (qemu-img's `image-end-offset`). */
  fileSize: number
  /** Entries of the block allocation table (0 for fixed images; qemu-img's `total-clusters`). */
  tableEntries: number
  /** BAT entries that point at a block (qemu-img's `allocated-clusters`). */
  allocatedBlocks: number
  /** Block-sized stretches of the file that no BAT entry refers to. */
  leakedBlocks: number
  /** No damage, no broken parent link and no leaks (information does not count). */
  clean: boolean
  /** Something is damaged (a broken parent link included): the disk may not read right. */
  corrupt: boolean
  /** How many findings are damage (`'corrupt'`), listed or not (qemu-img's `corruptions`). */
  corruptions: number
  /** How many findings are leaks (`'leak'`), listed or not (qemu-img's `leaks`). Was a boolean before 1.0: 0 is falsy. */
  leaks: number
  /**
   * The link to the parent of a differencing image is broken: its parent is missing, another
   * image, modified since the child was made, or unusable (findings `parent-not-found`,
   * `parent-mismatch`, `parent-modified`, `parent-unusable`).
   */
  parentLinkBroken: boolean
  /** The parent found for a differencing image (null otherwise, or when none was found). */
  parent: string | null
  /**
   * As `qemu-img check`: 0 clean, 2 corrupt, 3 leaks only; 4 when the only damage is a broken
   * parent link. With `repair`: of the image after repairing.
   */
  exitCode: 0 | 2 | 3 | 4
  /**
   * Everything found (with `repair`: before repairing), in the order found: at most 1000
   * findings of each kind, then, for each kind that had more, one summary (a finding with
   * `omitted`: how many more there were).
   */
  findings: CheckFinding[]
  /** With `repair`: the changes made, in order (empty when nothing needed or could safely get one); bounded as `findings` are. */
  repairs?: CheckRepair[]
  /** With `repair`: what is still wrong (damage or leaks), bounded as `findings` are. */
  notRepaired?: CheckFinding[]
  /**
   * With `repair`: ranges of the virtual disk that read differently now (as zeros, or from
   * the parent) because the blocks their BAT entries pointed at were not in the file. In
   * disk order, ranges that touch merged, at most 1000.
   */
  lost?: Array<{ offset: number; length: number }>
  /** With `repair`: how many more such ranges were not listed in `lost`. */
  lostOmitted?: number
  /**
   * With `repair`: what a repair with `force` lost or accepted that a repair without it
   * refuses (`ERR_VHD_REPAIR_REFUSED`), one sentence each; empty when nothing of the kind
   * was done.
   */
  forced?: string[]
}

/**
 * Checks the structure of an image, as `qemu-img check` does, without changing it; with
 * `repair`, repairs what can be repaired without losing data and reports the image as it
 * is then. Problems of the image are in the report; the promise rejects only when the
 * check cannot run (no such file, locked…), or when a repair would lose data and `force`
 * is not set (`ERR_VHD_REPAIR_REFUSED`: nothing was written, the message says what would
 * be lost).
 */
export declare function check(path: PathLike, options?: CheckOptions): Promise<CheckReport>
export declare function check(path: PathLike, callback: (error: VhdError | null, report: CheckReport) => void): void
export declare function check(
  path: PathLike,
  options: CheckOptions | undefined,
  callback: (error: VhdError | null, report: CheckReport) => void,
): void

/** Options of `compact` and `commit`. */
export interface InPlaceOptions extends ChainOptions, ProgressOptions {}

export interface CompactReport {
  fileSizeBefore: number
  fileSizeAfter: number
  blocksBefore: number
  blocksAfter: number
}

/**
 * Rewrites a dynamic or differencing image without the blocks it does not need; what it reads
 * is unchanged. The new file is written beside the image (without a name where the file system
 * allows, so that a killed compact leaves nothing behind), with the image's owner, group,
 * permissions, extended attributes (ACLs included) and modification time, made durable and
 * renamed over it. Refused (before anything is written) when the owner, group or an attribute
 * cannot be kept: another user's file, without being root.
 */
export declare function compact(path: PathLike, options?: InPlaceOptions): Promise<CompactReport>
export declare function compact(path: PathLike, callback: (error: VhdError | AbortError | null, report: CompactReport) => void): void
export declare function compact(
  path: PathLike,
  options: InPlaceOptions | undefined,
  callback: (error: VhdError | AbortError | null, report: CompactReport) => void,
): void

export interface CommitReport {
  /** The parent that received the data. */
  parent: string
  /** Bytes copied into the parent (every sector the child held). */
  bytesCommitted: number
  /** The child's file size once emptied. */
  childFileSize: number
}

/**
 * Writes the sectors a differencing image holds into its parent, then empties the child:
 * the chain reads as before. Other children of that parent become invalid.
 */
export declare function commit(path: PathLike, options?: InPlaceOptions): Promise<CommitReport>
export declare function commit(path: PathLike, callback: (error: VhdError | AbortError | null, report: CommitReport) => void): void
export declare function commit(
  path: PathLike,
  options: InPlaceOptions | undefined,
  callback: (error: VhdError | AbortError | null, report: CommitReport) => void,
): void

export interface ResizeOptions extends ChainOptions, ProgressOptions {
  /** Shrink even when the part cut off holds data (default false: refused). */
  force?: boolean
}

export interface ResizeReport {
  /** Virtual size before, in bytes. */
  oldSize: number
  /** Virtual size after, in bytes. */
  newSize: number
  /** Size of the file after, in bytes. */
  fileSize: number
}

/** Changes the virtual size of an image to `size` bytes (a multiple of 512). */
export declare function resize(path: PathLike, size: Integer, options?: ResizeOptions): Promise<ResizeReport>
export declare function resize(
  path: PathLike,
  size: Integer,
  callback: (error: VhdError | AbortError | null, report: ResizeReport) => void,
): void
export declare function resize(
  path: PathLike,
  size: Integer,
  options: ResizeOptions | undefined,
  callback: (error: VhdError | AbortError | null, report: ResizeReport) => void,
): void

/**
 * How `rebase` opens the child over its new parent: as `OpenOptions`, except that the new
 * parent is `rebase`'s second argument (trusted: `parentRoot` applies to the images below
 * it, found through its locators), so `parent` and `parents` are refused
 * (`ERR_INVALID_ARG_VALUE`).
 */
export interface RebaseOptions extends Omit<ChainOptions, 'parent' | 'parents'> {
  /**
   * Accept a new parent whose time stamp differs from the recorded one (a copy); its
   * unique id must still match. The child then records the new parent's modification time.
   */
  ignoreParentTimestamp?: boolean
}

/** Points a differencing image at `parent` (a moved or copied parent), after checking its unique id. */
export declare function rebase(path: PathLike, parent: PathLike, options?: RebaseOptions): Promise<void>
export declare function rebase(path: PathLike, parent: PathLike, callback: Callback): void
export declare function rebase(path: PathLike, parent: PathLike, options: RebaseOptions | undefined, callback: Callback): void

/**
 * Creates `child`, a differencing image over the image at `path`, and resolves to it, open
 * read-write. `options` say how to open the image at `path` (read-only) and its chain: it
 * is named here, so trusted, while `parentRoot` applies to the images below it, found
 * through its locators. The child returned is reopened (after `close`) over `path` with
 * the same options.
 */
export declare function snapshot(path: PathLike, child: PathLike, options?: ChainOptions): Promise<Differencing>
export declare function snapshot(path: PathLike, child: PathLike, callback: DiskCallback<Differencing>): void
export declare function snapshot(
  path: PathLike,
  child: PathLike,
  options: ChainOptions | undefined,
  callback: DiskCallback<Differencing>,
): void

/** A stored checksum and the one the fields call for. */
export interface ChecksumInfo {
  stored: number
  computed: number
  valid: boolean
}

/** A used parent locator entry. */
export interface LocatorInfo {
  /** Position in the table (0 to 7). */
  index: number
  /** The platform code's 4 characters, e.g. `'W2ru'`. */
  platformCode: string
  dataSpace: number
  dataLength: number
  dataOffset: number
  /** The path it holds, decoded; `null` for other kinds or data not in the file. */
  path: string | null
}

/**
 * What `info` reports: the object the CLI's `info --json` prints, key for key (plain JSON
 * values; time stamps as ISO 8601 like `'2024-05-01T12:00:00Z'`, unique ids as UUIDs with
 * the bytes in file order).
 */
export interface ImageInfo {
  path: string
  format: 'vpc'
  type: 'fixed' | 'dynamic' | 'differencing'
  virtualSize: number
  /** The footer's CHS geometry and the size it describes. */
  geometry: { cylinders: number; heads: number; sectorsPerTrack: number; size: number }
  /** `null` for fixed images. */
  blockSize: number | null
  /** Bytes of the virtual disk the file stores (a fixed image: all of them). */
  allocatedBytes: number
  allocatedBlocks: number | null
  fileSize: number
  /** Bytes the file occupies on the host file system (holes excluded); `null` where unknown. */
  diskUsage: number | null
  /** `hostOs`: `'Windows'`, `'Macintosh'`, or the code's characters quoted. */
  creator: { application: string; version: string; hostOs: string }
  uniqueId: string
  timestamp: string
  features: { value: number; temporary: boolean; reserved: boolean }
  checksums: { footer: ChecksumInfo; header: ChecksumInfo | null }
  footerSource: 'end' | 'end511' | 'copy'
  /** Every footer field as stored (`dataOffset` `null` for fixed images, `timestamp` in seconds since 2000). */
  footer: {
    features: number
    formatVersion: number
    dataOffset: number | null
    timestamp: number
    creatorApplication: string
    creatorVersion: number
    creatorHostOs: number
    originalSize: number
    currentSize: number
    diskType: number
    checksum: number
    uniqueId: string
    savedState: number
  }
  /** Every dynamic header field but the locator table; `null` for fixed images. */
  header: {
    dataOffset: number | null
    tableOffset: number
    headerVersion: number
    maxTableEntries: number
    blockSize: number
    checksum: number
    parentUniqueId: string
    parentTimestamp: number
    parentName: string
  } | null
  /**
   * The parent a differencing image records, the file found for it, and its locators.
   * `timestampRecorded` is false for a child that records a parent time stamp of 0 (as
   * Windows diskpart writes): only the parent's unique id binds it to its parent.
   */
  parent: {
    name: string
    uniqueId: string
    timestamp: string
    timestampRecorded: boolean
    path: string
    locators: LocatorInfo[]
  } | null
  /**
   * `null`, unless this is a differencing image whose parent chain is broken (a parent
   * missing, another disk, modified since, unusable): then it is still described, with
   * `parent` null and `chain` of the image alone, and this says what is wrong with its
   * parent: the error's code (`ERR_VHD_PARENT_NOT_FOUND`…) and message. A chain that crosses
   * `parentRoot` is refused instead (`ERR_VHD_PARENT_OUTSIDE_ROOT`), as by `vhd info`.
   */
  parentProblem: { code: ErrorCode; message: string } | null
  /** This image and every one below it, nearest first. */
  chain: Array<{ path: string; type: 'fixed' | 'dynamic' | 'differencing' | 'raw'; virtualSize: number }>
}

/** Opens an image read-only and describes it. */
export declare function info(path: PathLike, options?: ChainOptions): Promise<ImageInfo>
export declare function info(path: PathLike, callback: (error: VhdError | null, info: ImageInfo) => void): void
export declare function info(
  path: PathLike,
  options: ChainOptions | undefined,
  callback: (error: VhdError | null, info: ImageInfo) => void,
): void

/** A run of the virtual disk whose data is stored rather than implied zeros. */
export interface AllocatedRange {
  offset: number
  length: number
  /** Which image of the chain holds it: 0 this one, 1 its parent, and so on. */
  depth: number
  /** Where the data starts in that image's file; `null` when it is not contiguous there. */
  fileOffset: number | null
}

export interface Disk {
  /**
   * Says that `length` bytes at `offset` are no longer needed, and makes that durable.
   * Dynamic images: whole blocks are unallocated, the rest is zeroed; it all reads as zeros.
   * Differencing images: whole sectors are marked absent, so that the parent's data shows
   * through them again (blocks left with none present are unallocated); parts of sectors
   * are zeroed. Fixed images: zeros are written. A range past the end of the disk fails
   * with `ERR_VHD_OUT_OF_RANGE`.
   */
  discard(offset: Integer, length: Integer): Promise<void>
  discard(offset: Integer, length: Integer, callback: Callback): void
  /**
   * The allocated runs of the virtual disk, in disk order, adjacent runs merged. Refused
   * with `ERR_VHD_TOO_MANY_RANGES` past 2^20 (1048576) runs, which a crafted image can hold
   * in a few MiB of file: iterate them with `allocatedRanges()` instead.
   */
  getAllocatedRanges(): Promise<AllocatedRange[]>
  getAllocatedRanges(callback: (error: VhdError | null, ranges: AllocatedRange[]) => void): void
  /**
   * The same runs as `getAllocatedRanges`, one by one: `for await (const range of
   * disk.allocatedRanges())`. Found a batch at a time off the JavaScript thread, so memory
   * stays bounded however many there are. A batch found after a write reflects it; closing
   * the disk ends the iteration with `ERR_VHD_CLOSED`.
   */
  allocatedRanges(): AsyncGenerator<AllocatedRange, void, undefined>
}

// ---------------------------------------------------------------------------------------
// Partitions and file systems inside images (lib/partition.js, lib/block-device.js,
// lib/file-disk.js; docs/partitions.md)

/**
 * A partition of the table, with the field names and meanings of `partitioninfo`'s
 * `getPartitions()` (`index`, `offset`, `size`, `type`, and for GPT `guid` and `name`), then
 * ours.
 */
export interface PartitionEntry {
  /** Its number as Linux counts them: MBR primary 1–4, logical from 5; GPT in entry order from 1. */
  index: number
  /** Where it starts on the disk, in bytes. */
  offset: number
  /** Its size in bytes. */
  size: number
  /**
   * MBR: the type byte (`0x83`, `0x0c`, `0x05` for an extended partition…). GPT: the type
   * GUID, upper case as partitioninfo and sfdisk give it (`'0FC63DAF-8483-4772-8E79-3D69D8477DE4'`).
   */
  type: number | string
  /** GPT only: the partition's unique GUID, upper case. */
  guid?: string
  /** GPT only: its name (UTF-16 in the table; `''` when it has none). */
  name?: string
  /** The type's well-known name, when it has one (`'EFI System'`, `'Linux filesystem'`, `'W95 FAT32 (LBA)'`…). */
  typeName?: string
  /** MBR: the boot indicator (0x80). GPT: attribute bit 2 (legacy BIOS bootable). */
  bootable: boolean
  /** GPT: the 64 attribute bits (bit 0 required, 2 legacy BIOS bootable, 48–63 the type's own). MBR: 0n. */
  attributes: bigint
  /** Its first 512-byte sector. */
  firstLBA: number
  /** Its last 512-byte sector (inclusive, as in the GPT). */
  lastLBA: number
}

/** Something odd about a table that is still read: a backup GPT used, a partition past the end of the disk, overlaps… */
export interface PartitionFinding {
  /** A stable code, e.g. for a program to act on. */
  code: string
  message: string
}

/** What `disk.getPartitions()` resolves to. */
export interface PartitionTable {
  /** `'none'`: no MBR signature and no GPT (a file system on the whole disk, or nothing). */
  type: 'gpt' | 'mbr' | 'none'
  /** The partitions, by index (for MBR: the primary ones, the extended one among them, then the logical ones). */
  partitions: PartitionEntry[]
  findings: PartitionFinding[]
}

export interface Disk {
  /**
   * The partition table (MBR with its extended partition's logical ones, or GPT, whose
   * checksums are checked, the backup used when the primary is damaged, which a finding
   * then says). Read off the JavaScript thread; a hostile table gives findings or an error,
   * never a hang.
   */
  getPartitions(): Promise<PartitionTable>
  getPartitions(callback: (error: VhdError | null, table: PartitionTable) => void): void
  /**
   * The partition numbered `index` (as `getPartitions()` numbers them) as a
   * `VHD.Partition`. A number the table does not have, an extended partition (the
   * container of the logical ones) or a partition that runs past the end of the disk is a
   * RangeError (`ERR_VHD_INVALID_ARGUMENT`) that says which and lists the partitions there
   * are: the rule of the CLI's `--partition N`. An index that is no integer from 0 to
   * 2³²−1 is `ERR_INVALID_ARG_TYPE` or `ERR_OUT_OF_RANGE`, as elsewhere.
   */
  partition(index: Integer): Promise<Partition>
  partition(index: Integer, callback: (error: VhdError | null, partition: Partition) => void): void
  /** The disk as a `blockdevice` module BlockDevice (see `BlockDevice`). */
  toBlockDevice(): BlockDevice
  /**
   * The disk as an instance of the `file-disk` module's `Disk` class (see `FileDiskLike`).
   * Throws `ERR_VHD_MISSING_PEER` when `file-disk` (an optional peer dependency) is not
   * installed, and `ERR_VHD_CLOSED` unless the disk is open.
   */
  toFileDisk(): FileDiskLike
}

/**
 * One partition of a disk (`await disk.partition(index)`): its bytes, with the I/O of a disk,
 * positions counted from its start. A read past its end is short, as at the end of a disk; a
 * write or discard past it is a RangeError (`ERR_VHD_OUT_OF_RANGE`) that writes nothing: no
 * byte outside it changes. Its argument checks are the disk's own. It has no `open` or
 * `close`: it works while its disk is open (the disk's `close` waits for its operations in
 * flight; later ones fail with `ERR_VHD_CLOSED`, and work again once the disk is opened
 * again), and it is read-only when its disk is. A stream of it with `autoClose` closes its
 * disk. `disk.partition()` refuses a table entry that runs past the end of the disk.
 * `util.inspect` shows `Partition { disk, index, offset, size, type, typeName, name, readOnly }`.
 */
export declare class Partition {
  /** Not constructible: `disk.partition(index)` makes them. */
  private constructor()
  /** The disk it is part of. */
  get disk(): AnyDisk
  /** The disk's file (`disk.path`): what its errors name, as the disk's own do. */
  get path(): string
  /** Its number (see `PartitionEntry.index`). */
  get index(): number
  /** Where it starts on the disk, in bytes. */
  get offset(): number
  /** Its size in bytes. */
  get size(): number
  /** Its table entry, a fresh copy on every access. */
  get entry(): PartitionEntry
  /** Whether its disk is read-only (`undefined` while the disk is not open). */
  get readOnly(): boolean | undefined
  /** Whether its disk is open. */
  get isOpen(): boolean

  read(offset: Integer, length: Integer): Promise<ReadResult>
  read(offset: Integer, length: Integer, callback: ReadCallback): void
  write<T extends Bytes>(buffer: T, offset: Integer): Promise<WriteResult<T>>
  write<T extends Bytes>(buffer: T, offset: Integer, callback: WriteCallback<T>): void
  readInto<T extends Bytes>(buffer: T, bufferOffset: Integer, length: Integer, position: Integer): Promise<{ bytesRead: number; buffer: T }>
  readInto<T extends Bytes>(
    buffer: T,
    bufferOffset: Integer,
    length: Integer,
    position: Integer,
    callback: (error: VhdError | null, bytesRead: number, buffer: T) => void,
  ): void
  readIntoSync(buffer: Bytes, bufferOffset: Integer, length: Integer, position: Integer): number
  readSync(offset: Integer, length: Integer): ReadResult
  writeSync<T extends Bytes>(buffer: T, offset: Integer): WriteResult<T>
  /** The disk's `discard` of a range of the partition (see `Disk.discard`). */
  discard(offset: Integer, length: Integer): Promise<void>
  discard(offset: Integer, length: Integer, callback: Callback): void
  /** The disk's `flush`. */
  flush(): Promise<void>
  flush(callback: Callback): void
  /** A read stream of the partition (`end` exclusive, at most its size). */
  createReadStream(options?: ReadStreamOptions): ReadStream
  /** A write stream into the partition; a chunk past its end fails the stream with `ERR_VHD_OUT_OF_RANGE`. */
  createWriteStream(options?: WriteStreamOptions): WriteStream
  /** The partition as a `blockdevice` BlockDevice (block 0 its first sector). */
  toBlockDevice(): BlockDevice
  /** The partition as a `file-disk` Disk (offset 0 its first byte); see `Disk.toFileDisk`. */
  toFileDisk(): FileDiskLike
}

/**
 * The API of the `blockdevice` npm module (v0.7), so that code written for it, `mbr` and
 * `gpt` runs on a VHD unchanged. Every method also returns a promise without a callback;
 * callbacks are called with the device as `this`, as there.
 */
export interface BlockDevice {
  /** 512. */
  blockSize: number
  /** The size in bytes (`undefined` once the disk is closed). */
  readonly size: number | undefined
  /**
   * Reads the blocks `[fromLBA, toLBA)` (`toLBA` exclusive) into `buffer` (zeroed first; a
   * new one without it). As in blockdevice, `fromLBA` defaults to 0, `toLBA` to
   * `fromLBA + 1`, and the two are swapped when `fromLBA > toLBA`. Short at the end of the
   * disk (the rest zeros).
   */
  readBlocks(fromLBA: Integer, toLBA?: Integer, buffer?: Bytes | null): Promise<{ buffer: Buffer; bytesRead: number }>
  readBlocks(fromLBA: Integer, toLBA: Integer | undefined, callback: (error: VhdError | null, buffer: Buffer, bytesRead: number) => void): void
  readBlocks(
    fromLBA: Integer,
    toLBA: Integer | undefined,
    buffer: Bytes | null | undefined,
    callback: (error: VhdError | null, buffer: Buffer, bytesRead: number) => void,
  ): void
  /** Writes `buffer` (a whole number of blocks, else `ERR_INVALID_ARG_VALUE`) from block `fromLBA`. */
  writeBlocks<T extends Bytes>(fromLBA: Integer, buffer: T): Promise<{ bytesWritten: number; buffer: T }>
  writeBlocks(fromLBA: Integer, buffer: Bytes, callback: (error: VhdError | null, bytesWritten: number) => void): void
  /**
   * blockdevice's `Partition`: the blocks from `firstLBA` up to, not including, `lastLBA`
   * (as there: `sectors` is `lastLBA - firstLBA`), numbered from `firstLBA`.
   */
  partition(options: { firstLBA?: Integer; lastLBA: Integer }): BlockDevicePartition
}

/** blockdevice's `Partition`: a range of a `BlockDevice`'s blocks. */
export interface BlockDevicePartition {
  readonly device: BlockDevice
  readonly firstLBA: number
  /** The block after its last one. */
  readonly lastLBA: number
  readonly blockSize: number
  /** `lastLBA - firstLBA`. */
  readonly sectors: number
  readonly size: number
  /** Blocks `[from, to)` counted from `firstLBA`; outside `[firstLBA, lastLBA]` an error (`ERR_VHD_OUT_OF_RANGE`). */
  readBlocks(from: Integer, to?: Integer, buffer?: Bytes | null): Promise<{ buffer: Buffer; bytesRead: number }>
  readBlocks(from: Integer, to: Integer | undefined, callback: (error: VhdError | null, buffer: Buffer, bytesRead: number) => void): void
  readBlocks(
    from: Integer,
    to: Integer | undefined,
    buffer: Bytes | null | undefined,
    callback: (error: VhdError | null, buffer: Buffer, bytesRead: number) => void,
  ): void
  /** A write that does not fit before `lastLBA` is an error (`ERR_VHD_OUT_OF_RANGE`) and writes nothing. */
  writeBlocks<T extends Bytes>(from: Integer, buffer: T): Promise<{ bytesWritten: number; buffer: T }>
  writeBlocks(from: Integer, buffer: Bytes, callback: (error: VhdError | null, bytesWritten: number) => void): void
}

/**
 * What `toFileDisk()` returns: an instance of `file-disk`'s `Disk` class (a subclass of it;
 * declared here by its shape, so that these types need no `file-disk` installed). Reads and
 * writes go through the image's own I/O, `flush` is the image's (durable). `discard` is
 * file-disk's: recorded in memory, the image unchanged. On a read-only image, `readOnly` and
 * `recordWrites` are true: writes are kept in memory and read back, never written to the
 * image (ext2fs writes while it mounts).
 */
export interface FileDiskLike {
  readOnly: boolean
  recordWrites: boolean
  recordReads: boolean
  discardIsZero: boolean
  capacity: number | null
  read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesRead: number; buffer: Buffer }>
  write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<{ bytesWritten: number; buffer: Buffer }>
  flush(): Promise<void>
  discard(offset: number, length: number): Promise<void>
  getCapacity(): Promise<number>
  getStream(position?: number, length?: number | null, highWaterMark?: number): Promise<Readable>
}

// ---------------------------------------------------------------------------------------
// NBD: serving an image or a chain (docs/nbd.md)

/** Where `serve` listens: a Unix socket (`socket`), or TCP (`port`, with `host`). */
export type ServeAddressOptions =
  | {
      /** The Unix socket to create (a stale one, no server answering, is replaced). */
      socket: PathLike
      port?: undefined
      host?: undefined
      allowRemote?: undefined
    }
  | {
      /** The TCP port; 0 picks a free one (`server.address.port` tells which). */
      port: number
      /**
       * An IP address of this machine, or `'localhost'`. Default `'127.0.0.1'`. NBD is
       * cleartext and unauthenticated: anyone who reaches the port reads and writes the
       * image, so an address other than a loopback one needs `allowRemote: true`.
       */
      host?: string
      /** Accept a `host` that is not a loopback address (default false). */
      allowRemote?: boolean
      socket?: undefined
    }

/** How `serve` serves. */
export interface ServeCommonOptions {
  /**
   * Serve read-only: clients' writes, trims and write-zeroes fail (`EPERM`). A read-only
   * disk (or an image opened read-only) is always served read-only. Given a path, the image
   * is then opened read-only (a shared lock). Default false.
   */
  readOnly?: boolean
  /** The export's name (clients asking for it, or for the default export, get the image). Default `''`. */
  exportName?: string
  /**
   * Called with one line per connection as it closes (who, what it did, why it ended), on
   * the JavaScript thread; without it, the lines are dropped. An exception it throws is an
   * uncaught exception, as an event listener's.
   */
  log?: (line: string) => void
}

/** `serve`'s options for an open disk (the disk is open already: no open options). */
export type ServeDiskOptions = ServeCommonOptions & ServeAddressOptions

/** `serve`'s options for a path: how to serve, and how to open the image (`VHD.open`'s). */
export type ServePathOptions = ServeCommonOptions & ServeAddressOptions & Omit<OpenOptions, 'readOnly'>

/** Where an `NbdServer` listens. */
export type NbdAddress = { socket: string } | { host: string; port: number }

/**
 * A running NBD server (`serve`). It runs on native threads: the event loop is never
 * blocked by its clients, and it keeps the process alive until `close()`.
 */
export declare class NbdServer {
  /** Not constructible: `VHD.serve` makes them. */
  private constructor()
  /** Where it listens: `{ socket }` (the path as given), or `{ host, port }` (the port bound). */
  get address(): NbdAddress
  /**
   * The export's NBD URI, as `nbdinfo`, `nbdcopy`, `nbdfuse`, `qemu-img` and `qemu-io` take
   * it: `nbd+unix:///?socket=/run/disk.sock`, `nbd://127.0.0.1:10809/`.
   */
  get uri(): string
  /** Clients connected now. */
  get connections(): number
  /** True until `close()` is called. */
  get listening(): boolean
  /**
   * Stops accepting, lets the clients' requests in flight finish, flushes, closes the
   * connections and removes the Unix socket; then, when the server opened the image itself
   * (`serve` of a path), closes it. Closing again returns the same promise.
   */
  close(): Promise<void>
  close(callback: Callback): void
  /** `close()`, for `await using server = await VHD.serve(...)`. */
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * Serves an image or a chain over NBD (the Network Block Device protocol), read-write
 * unless `readOnly`, so that NBD clients (`nbd-client`, `nbdcopy`, `nbdfuse`, qemu) can
 * use it; resolves once the server listens. Given a path, the image is opened (as
 * `VHD.open` opens it) and closed with the server. Given an open disk, the server serves
 * that very image: the disk and the clients see each other's writes, and `disk.close()`
 * closes the server first (its clients' requests in flight finish and are flushed). See
 * docs/nbd.md.
 */
export declare function serve(image: AnyDisk, options: ServeDiskOptions): Promise<NbdServer>
export declare function serve(image: PathLike, options: ServePathOptions): Promise<NbdServer>
export declare function serve(image: AnyDisk, options: ServeDiskOptions, callback: (error: VhdError | null, server: NbdServer) => void): void
export declare function serve(image: PathLike, options: ServePathOptions, callback: (error: VhdError | null, server: NbdServer) => void): void
