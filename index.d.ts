/// <reference types="node" />

// Types of the `vhd` package (index.js): Microsoft VHD images, fixed, dynamic and
// differencing.
//
// Every asynchronous method has two forms: with an error-first callback (returns undefined;
// the callback is called exactly once, asynchronously) and without (returns a promise).
// Argument type errors are thrown synchronously in the callback form and reject the promise
// in the promise form.

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
  /** Not a VHD: no `conectix` footer (or no `cxsparse` header). */
  | 'ERR_VHD_BAD_COOKIE'
  /** The file ends before a structure the image needs. */
  | 'ERR_VHD_TRUNCATED'
  /** A footer or header field holds an impossible value. */
  | 'ERR_VHD_INVALID_FIELD'
  /** A block allocation table entry points outside the file. */
  | 'ERR_VHD_BAT_OUT_OF_RANGE'
  /** A class that is not the image's type: `VHD.Fixed` on a dynamic image, `VHD.Dynamic` on a differencing one… */
  | 'ERR_VHD_WRONG_TYPE'
  /** A valid image or operation this version does not handle. */
  | 'ERR_VHD_UNSUPPORTED'
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
  /** No parent of a differencing image was found (the message names it and every path tried). */
  | 'ERR_VHD_PARENT_NOT_FOUND'
  /** The file where the parent should be is another image (its unique id is not the recorded one). */
  | 'ERR_VHD_PARENT_MISMATCH'
  /** The parent's time stamp is not the one the child recorded (see `ignoreParentTimestamp`). */
  | 'ERR_VHD_PARENT_MODIFIED'
  /** The parent chain comes back to an image already in it. */
  | 'ERR_VHD_PARENT_LOOP'
  /** The parent chain is deeper than 64 images. */
  | 'ERR_VHD_CHAIN_TOO_DEEP'

/** The `code` of an argument error, as Node's own. */
export type ArgumentErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_ILLEGAL_CONSTRUCTOR'

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

export type ErrorCode = VhdErrorCode | ArgumentErrorCode | SystemErrorCode

/**
 * Every error this package reports has a `code`. Errors of the OS also have `errno`
 * (negative, as in Node, on Unix). Bad numbers and out-of-range writes are RangeErrors,
 * bad argument types TypeErrors, everything else Errors.
 */
export interface VhdError extends Error {
  code: ErrorCode
  errno?: number
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
  /** Open the file read-only (default false: images open read-write). Parents are always read-only. */
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
  /** Replace an existing file (default false: `ERR_VHD_EXISTS`). */
  overwrite?: boolean
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
  /** `'differencing'` (or `TYPE.DIFF`). */
  type: 'differencing' | 4
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

/** The hard disk footer, with vhd@0.5.0's `Footer` field names. */
export interface Footer {
  /** `'conectix'`. */
  signature: string
  features: number
  formatVersion: Version
  dataOffset: bigint
  /** Milliseconds since the Unix epoch (whole seconds). */
  timestamp: number
  /** Up to 4 ASCII characters, e.g. `'win '`, `'qemu'`, `'vpc '`. */
  creatorApplication: string
  creatorVersion: Version
  /** `0x5769326B` (Wi2k) or `0x4D616320` (Mac ). */
  creatorHostOS: number
  originalSize: bigint
  /** The virtual size. */
  currentSize: bigint
  diskGeometry: { cylinders: number; heads: number; sectors: number }
  /** A `TYPE` value. */
  diskType: number
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

/** The dynamic disk header, with vhd@0.5.0's `Header` field names. */
export interface Header {
  /** `'cxsparse'`. */
  signature: string
  dataOffset: bigint
  tableOffset: bigint
  headerVersion: Version
  maxTableEntries: number
  /** The block size in bytes (vhd@0.5.0's name for it). */
  sectorSize: number
  checksum: number
  /** The parent's 16-byte unique id (differencing images). */
  parentId: Buffer
  /** Milliseconds since the Unix epoch. */
  parentTimestamp: number
  reserved1: number
  /** Decoded from UTF-16 big-endian, up to the first NUL. */
  parentName: string
  /** All 8 entries, empty ones included, in header order. */
  parentLocators: ParentLocator[]
  /** The 256 reserved bytes. */
  reserved2: Buffer
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
  get footer(): Footer | undefined
  /** Dynamic and differencing images only. */
  get header(): Header | undefined
  /** Blocks allocated so far (dynamic and differencing images only). */
  get allocatedBlocks(): number | undefined

  /** Opens the image (read-write unless `readOnly`); resolves to the disk itself. */
  open(): Promise<this>
  open(callback: Callback): void

  /** Reads `length` bytes at `offset` into a new Buffer. */
  read(offset: Integer, length: Integer): Promise<ReadResult>
  read(offset: Integer, length: Integer, callback: ReadCallback): void

  /** Writes all of `buffer` at `offset`; a write past the end fails and writes nothing. */
  write<T extends Bytes>(buffer: T, offset: Integer): Promise<WriteResult<T>>
  write<T extends Bytes>(buffer: T, offset: Integer, callback: WriteCallback<T>): void

  /** `read` on the calling thread. */
  readSync(offset: Integer, length: Integer): ReadResult
  /** `write` on the calling thread. */
  writeSync<T extends Bytes>(buffer: T, offset: Integer): WriteResult<T>

  /** Makes every write so far durable. */
  flush(): Promise<void>
  flush(callback: Callback): void

  /** Waits for operations in progress, flushes, and closes the file (even if the flush fails). */
  close(): Promise<void>
  close(callback: Callback): void
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

/** Opens an image of any type as a `Fixed`, `Dynamic` or `Differencing` (read-write by default). */
export declare function open(path: PathLike, options?: OpenOptions): Promise<AnyDisk>
export declare function open(path: PathLike, callback: DiskCallback<AnyDisk>): void
export declare function open(path: PathLike, options: OpenOptions | undefined, callback: DiskCallback<AnyDisk>): void

/** Creates an image and resolves to it, open read-write. */
export declare function create(path: PathLike, options: BaseCreateOptions & { type: 'fixed' | 2 }): Promise<Fixed>
export declare function create(path: PathLike, options: BaseCreateOptions & { type: 'dynamic' | 3 }): Promise<Dynamic>
export declare function create(path: PathLike, options: DifferencingCreateOptions): Promise<Differencing>
export declare function create(path: PathLike, options: CreateOptions): Promise<AnyDisk>
export declare function create(
  path: PathLike,
  options: BaseCreateOptions & { type: 'fixed' | 2 },
  callback: DiskCallback<Fixed>,
): void
export declare function create(
  path: PathLike,
  options: BaseCreateOptions & { type: 'dynamic' | 3 },
  callback: DiskCallback<Dynamic>,
): void
export declare function create(
  path: PathLike,
  options: DifferencingCreateOptions,
  callback: DiskCallback<Differencing>,
): void
export declare function create(path: PathLike, options: CreateOptions, callback: DiskCallback<AnyDisk>): void
