'use strict'

// Constants of the format and of vhd@0.5.0's module, with its names and values.
//
// Every table 0.5.0 exports is here with the same keys and values. The format tables (TYPE,
// PLATFORM, FEATURES, SECTOR) and the Windows virtual disk API flag tables (ACCESS, ATTACH,
// ...) are frozen: they are facts, and a program that changed them would only corrupt what
// it writes. CREATOR_APPLICATION and CREATOR_VERSION are plain properties, left writable as
// in 0.5.0: they are what `new Footer()` starts with, and a 0.5.0 program may set them to
// put its own name in the footers it builds.

const { version } = require('../package.json')

/** 2000-01-01T00:00:00Z, the VHD epoch, in ms since the Unix epoch. */
const VHD_EPOCH_MS = 946684800000

/** Disk types, with vhd@0.5.0's names and values. */
const TYPE = Object.freeze({
  NONE: 0,
  RESERVED_DEPRECATED1: 1,
  FIXED: 2,
  DYNAMIC: 3,
  DIFF: 4,
  RESERVED_DEPRECATED2: 5,
  RESERVED_DEPRECATED3: 6,
})

/**
 * Platform codes: the creator host OS of a footer (`WI2K`, `MAC`), and the kind of path a
 * parent locator holds (`W2RU`/`W2KU`: UTF-16 relative/absolute Windows paths, `WI2R`/`WI2K`:
 * their deprecated ASCII forms, `MAC`: a Mac OS alias, `MACX`: a UTF-8 file URL). Each code
 * is its four ASCII characters read as a big-endian number ('Wi2k' = 0x5769326B).
 */
const PLATFORM = Object.freeze({
  NONE: 0x00000000,
  WI2R: 0x57693272,
  WI2K: 0x5769326b,
  W2RU: 0x57327275,
  W2KU: 0x57326b75,
  MAC: 0x4d616320,
  MACX: 0x4d616358,
})

/** Footer feature flags; the reserved bit is always set. */
const FEATURES = Object.freeze({
  NONE: 0x00000000,
  TEMPORARY: 0x00000001,
  RESERVED: 0x00000002,
})

/** Block allocation table values: `FREE` marks a block that is not in the file. */
const SECTOR = Object.freeze({
  FREE: 0xffffffff,
})

// Sizes, with 0.5.0's names: it calls a 512-byte sector a "block" and a BAT block a "sector".

/** Smallest disk 0.5.0 documents: 3 MiB. */
const MIN_SIZE = 3 * 1024 * 1024
/** 512: the size of a disk sector. */
const BLOCK_SIZE = 512
/** 2 MiB: the default size of a dynamic disk's data block. */
const SECTOR_SIZE = BLOCK_SIZE * 4096
/** Bytes per block allocation table entry. */
const TABLE_ENTRY_SIZE = 4
/** Bytes in a dynamic disk header. */
const HEADER_SIZE = 1024
/** Bytes in a hard disk footer. */
const FOOTER_SIZE = 512
/** "No offset": the data offset of a fixed disk's footer, unused header offsets. */
const NULL_OFFSET = 0xffffffffffffffffn
/** 2040 GiB: the largest dynamic disk the specification allows. */
const MAX_DYNAMIC_SIZE = 2040 * 1024 ** 3

// Flags and versions of the Windows virtual disk API (virtdisk.h), as 0.5.0 exports them.
// The version tables have numeric keys ('1', '2') besides UNSPECIFIED, like 0.5.0's.

/** ATTACH_VIRTUAL_DISK_VERSION. */
const VERSION = Object.freeze({ UNSPECIFIED: 0, 1: 1 })

/** VIRTUAL_DISK_ACCESS_MASK. */
const ACCESS = Object.freeze({
  NONE: 0x00000000,
  ATTACH_RO: 0x00010000,
  ATTACH_RW: 0x00020000,
  DETACH: 0x00040000,
  GET_INFO: 0x00080000,
  CREATE: 0x00100000,
  METAOPS: 0x00200000,
  READ: 0x000d0000,
  ALL: 0x003f0000,
  WRITABLE: 0x00320000,
})

/** ATTACH_VIRTUAL_DISK_FLAG. */
const ATTACH = Object.freeze({
  NONE: 0x00000000,
  READ_ONLY: 0x00000001,
  NO_DRIVE_LETTER: 0x00000002,
  PERMANENT_LIFETIME: 0x00000004,
  NO_LOCAL_HOST: 0x00000008,
})

/** COMPACT_VIRTUAL_DISK_FLAG. */
const COMPACT = Object.freeze({ NONE: 0x00000000 })

/** CREATE_VIRTUAL_DISK_FLAG. */
const CREATE = Object.freeze({
  NONE: 0x00000000,
  FULL_PHYSICAL_ALLOCATION: 0x00000001,
  PREVENT_WRITES_TO_SOURCE_DISK: 0x00000002,
  DO_NOT_COPY_METADATA_FROM_PARENT: 0x00000004,
})

/** DEPENDENT_DISK_FLAG. */
const DEPENDENCY = Object.freeze({
  NONE: 0x00000000,
  MULT_BACKING_FILES: 0x00000001,
  FULLY_ALLOCATED: 0x00000002,
  READ_ONLY: 0x00000004,
  REMOTE: 0x00000008,
  SYSTEM_VOLUME: 0x00000010,
  SYSTEM_VOLUME_PARENT: 0x00000020,
  REMOVABLE: 0x00000040,
  NO_DRIVE_LETTER: 0x00000080,
  PARENT: 0x00000100,
  NO_HOST_DISK: 0x00000200,
  PERMANENT_LIFETIME: 0x00000400,
})

/** DETACH_VIRTUAL_DISK_FLAG. */
const DETACH = Object.freeze({ NONE: 0x00000000 })

/** EXPAND_VIRTUAL_DISK_FLAG. */
const EXPAND = Object.freeze({ NONE: 0x00000000 })

/** GET_VIRTUAL_DISK_INFO_VERSION. */
const GETINFO = Object.freeze({
  UNSPECIFIED: 0x00,
  SIZE: 0x01,
  IDENTIFIER: 0x02,
  PARENT_LOCATION: 0x03,
  PARENT_IDENTIFIER: 0x04,
  PARENT_TIMESTAMP: 0x05,
  VIRTUAL_STORAGE_TYPE: 0x06,
  PROVIDER_SUBTYPE: 0x07,
  IS_4K_ALIGNED: 0x08,
  PHYSICAL_DISK: 0x09,
  VHD_PHYSICAL_SECTOR_SIZE: 0x0a,
  SMALLEST_SAFE_VIRTUAL_SIZE: 0x0b,
  FRAGMENTATION: 0x0c,
})

/** MERGE_VIRTUAL_DISK_FLAG. */
const MERGE = Object.freeze({ NONE: 0x00000000 })

/** MIRROR_VIRTUAL_DISK_FLAG. */
const MIRROR = Object.freeze({
  NONE: 0x00000000,
  EXISTING_FILE: 0x00000001,
})

/** OPEN_VIRTUAL_DISK_FLAG. */
const OPEN = Object.freeze({
  NONE: 0x00000000,
  NO_PARENTS: 0x00000001,
  BLANK_FILE: 0x00000002,
  BOOT_DRIVE: 0x00000004,
  CACHED_IO: 0x00000008,
  CUSTOM_DIFF_CHAIN: 0x00000010,
})

/** RESIZE_VIRTUAL_DISK_FLAG. */
const RESIZE = Object.freeze({
  NONE: 0x0,
  ALLOW_UNSAFE_VIRTUAL_SIZE: 0x1,
  RESIZE_TO_SMALLEST_SAFE_VIRTUAL_SIZE: 0x2,
})

/** SET_VIRTUAL_DISK_INFO_VERSION. */
const SETINFO = Object.freeze({
  UNSPECIFIED: 0,
  PARENT_PATH: 1,
  IDENTIFIER: 2,
  PARENT_PATH_WITH_DEPTH: 3,
  PHYSICAL_SECTOR_SIZE: 4,
})

/** STORAGE_DEPENDENCY_INFO flags. */
const STORAGE = Object.freeze({
  NONE: 0x00000000,
  HOST_VOLUMES: 0x00000001,
  DISK_HANDLE: 0x00000002,
})

/** VIRTUAL_STORAGE_TYPE_VENDOR identifiers. */
const VENDOR = Object.freeze({
  MICROSOFT: 'EC984AEC-A0F9-47E9-901F-71415A66345B',
  UNKNOWN: '',
})

/** Our major.minor version: what we write as the creator version (core/src/create.rs does too). */
function ownVersion() {
  const [major, minor] = version.split('.').map(Number)
  return { major, minor }
}

module.exports = {
  VHD_EPOCH_MS,
  TYPE,
  PLATFORM,
  FEATURES,
  SECTOR,
  EPOCH: VHD_EPOCH_MS,
  MIN_SIZE,
  BLOCK_SIZE,
  SECTOR_SIZE,
  TABLE_ENTRY_SIZE,
  HEADER_SIZE,
  FOOTER_SIZE,
  NULL_OFFSET,
  MAX_DYNAMIC_SIZE,
  VERSION,
  ACCESS,
  ATTACH,
  COMPACT,
  CREATE,
  DEPENDENCY,
  DETACH,
  EXPAND,
  GETINFO,
  MERGE,
  MIRROR,
  OPEN,
  RESIZE,
  SETINFO,
  STORAGE,
  VENDOR,
  /** The creator application of the images we make (space-padded, as Windows writes it). */
  CREATOR_APPLICATION: 'win ',
  /** The creator version of the images we make: our major.minor version. */
  CREATOR_VERSION: ownVersion(),
}
