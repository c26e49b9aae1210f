//! Every object the binding passes to or returns from JavaScript (`#[napi(object)]`), in one
//! place: the schema of the native layer, which `napi build` writes to `binding.d.ts`. The
//! modules that fill them (or read them) keep the logic; this module keeps only the shapes.
//!
//! 64-bit fields: see the crate documentation (`src/lib.rs`) for the one rule every
//! object here follows.

use napi::bindgen_prelude::{BigInt, Buffer, Either, Utf16String};
use napi_derive::napi;

// ---------------------------------------------------------------------------------------
// Names (src/lib.rs `names`)

/// The names the options take, each list from vhd-core's table (`vhd_core::names::Named`),
/// own names only (the command line's aliases, such as `vpc`, are not listed).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct Names {
    /// Image types `create` makes: `'fixed'`, `'dynamic'`, `'differencing'`.
    pub disk_types: Vec<String>,
    /// What `convert` writes: `'raw'`, `'fixed'`, `'dynamic'`.
    pub output_formats: Vec<String>,
    /// How `convert` reads its source: `'auto'`, `'raw'`, `'vhd'`.
    pub source_formats: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Maintenance operations: progress, arguments and results (src/ops/)

/// How far an operation got.
#[napi(object)]
#[derive(Debug, Clone, Copy)]
pub struct ProgressReport {
    pub bytes_done: f64,
    pub bytes_total: f64,
}

/// How to convert (the checked form of `VHD.convert`'s options).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ConvertArgs {
    /// `'raw'`, `'fixed'` or `'dynamic'`.
    pub to: String,
    /// `'auto'` (default), `'raw'` or `'vhd'`.
    pub source_format: Option<String>,
    /// A fixed image of a whole number of MiB, as Azure requires.
    pub azure: Option<bool>,
    /// Block size of dynamic output (default 2 MiB).
    pub block_size: Option<f64>,
    /// Replace an existing destination.
    pub overwrite: Option<bool>,
    /// The output's 16-byte unique id as 32 hexadecimal digits (default: random).
    pub unique_id: Option<String>,
    /// The output's time stamp in seconds since 2000-01-01 (default: now).
    pub timestamp: Option<f64>,
    /// How to open a VHD source (parents, checksums); it is always read-only.
    pub open: Option<OpenArgs>,
}

/// How a conversion source was read (`'raw'` or `'vhd'`) and why.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct DetectedSource {
    pub format: String,
    pub reason: String,
}

/// What `convert` did.
#[napi(object)]
pub struct ConvertResult {
    pub source_size: f64,
    pub virtual_size: f64,
    pub file_size: f64,
    pub allocated_blocks: f64,
    /// How the source was read, and why.
    pub detected: DetectedSource,
    /// What the caller should know (e.g. a file read as raw although it starts like a VHD).
    pub warnings: Vec<String>,
}

/// Options of the operations on one image in place.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct InPlaceArgs {
    /// How to open the image (parents of a differencing image, `parentRoot`…); `rebase`:
    /// how to open the child over its new parent (`ignoreParentTimestamp` accepts a copy).
    pub open: Option<OpenArgs>,
    /// `resize`: shrink even when the part cut off holds data.
    pub force: Option<bool>,
}

/// What `compact` did.
#[napi(object)]
pub struct CompactResult {
    pub file_size_before: f64,
    pub file_size_after: f64,
    pub blocks_before: f64,
    pub blocks_after: f64,
}

/// What `commit` did.
#[napi(object)]
pub struct CommitResult {
    pub parent: String,
    pub bytes_committed: f64,
    pub child_file_size: f64,
}

/// What `resize` did.
#[napi(object)]
pub struct ResizeResult {
    pub old_size: f64,
    pub new_size: f64,
    pub file_size: f64,
}

/// How to check.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct CheckArgs {
    /// Repair what can be repaired without losing data.
    pub repair: Option<bool>,
    /// With `repair`: carry out a repair that loses data (see `vhd_core::ops::RepairOptions`).
    pub force: Option<bool>,
    /// Parents named by the caller, nearest first, and the other open options that apply.
    pub open: Option<OpenArgs>,
    /// Do not look for the parent of a differencing image.
    pub skip_parent: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// An open image's metadata (src/info.rs)

/// Everything about an open image.
#[napi(object, object_from_js = false)]
pub struct ImageInfo {
    /// The path the image was opened from.
    pub path: String,
    /// The footer's disk type: 2 fixed, 3 dynamic, 4 differencing.
    pub disk_type: u32,
    /// `'fixed'`, `'dynamic'` or `'differencing'`.
    pub type_name: String,
    /// Virtual size in bytes (the footer's current size).
    pub size: f64,
    /// Bytes the footer's CHS geometry describes.
    pub geometry_size: f64,
    /// Bytes of data per block (dynamic and differencing images).
    pub block_size: Option<u32>,
    /// `'end'`, `'end511'` or `'copy'` (the damaged end footer was replaced by the copy).
    pub footer_source: String,
    pub read_only: bool,
    /// Why the image cannot be written (opened read-only, damaged footer, ignored checksums).
    pub read_only_reason: Option<String>,
    pub footer: FooterFields,
    /// Dynamic and differencing images (all 8 parent locator entries).
    pub header: Option<HeaderFields>,
    /// The path each of the 8 parent locator entries holds, decoded (W2ru/W2ku UTF-16LE,
    /// Wi2r/Wi2k ASCII, MacX URL), or null; empty for fixed images.
    pub locator_texts: Vec<Option<String>>,
    /// Differencing images: every image below this one, nearest first, down to the base
    /// (empty for fixed and dynamic images).
    pub parents: Vec<ParentInfo>,
}

/// An image below a differencing image: a VHD, or a raw disk file at the base.
#[napi(object)]
pub struct ParentInfo {
    /// Where it was found (a locator, the header's parent name, or the `parents` option).
    pub path: String,
    /// The footer's disk type (2 fixed, 3 dynamic, 4 differencing); `null` for a raw base.
    pub disk_type: Option<u32>,
    /// `'fixed'`, `'dynamic'`, `'differencing'` or `'raw'`.
    pub type_name: String,
    /// Virtual size in bytes (a raw base: its file size).
    pub size: f64,
    /// The footer's unique id; `null` for a raw base.
    pub unique_id: Option<Buffer>,
    /// A raw disk file named by the caller.
    pub raw: bool,
}

// ---------------------------------------------------------------------------------------
// The on-disk structures, with vhd@0.5.0's names and encodings (src/structures.rs): the one
// form of a footer, header and locator the binding gives, which `VHD.Footer`, `VHD.Header`
// and `VHD.Locator` instances (and `disk.footer`, `disk.header`) are filled with, and takes
// back to lay them out as bytes (`writeFooter`…). Text fields are UTF-16 units (`Utf16String`)
// so that a JavaScript string crosses unchanged, unpaired surrogates included; 64-bit fields
// are BigInts.

/// A format, creator or header version, as vhd@0.5.0 splits it.
#[napi(object)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

/// Every field of a hard disk footer (vhd@0.5.0's `Footer`).
#[napi(object)]
pub struct FooterFields {
    /// The cookie, `'conectix'` (Latin-1: written as the low byte of each unit, 8 at most).
    pub signature: Utf16String,
    pub features: u32,
    pub format_version: Version,
    /// Absolute offset of the dynamic disk header; all ones for fixed disks.
    pub data_offset: BigInt,
    /// Milliseconds since the Unix epoch (whole seconds on disk, counted from 2000).
    pub timestamp: f64,
    /// Up to 4 Latin-1 characters, up to the first NUL (written NUL-padded).
    pub creator_application: Utf16String,
    pub creator_version: Version,
    #[napi(js_name = "creatorHostOS")]
    pub creator_host_os: u32,
    pub original_size: BigInt,
    /// The virtual size in bytes.
    pub current_size: BigInt,
    pub disk_geometry: DiskGeometry,
    pub disk_type: u32,
    /// The stored checksum (a write computes its own).
    pub checksum: u32,
    /// The 16-byte unique id (a shorter one is written zero-padded).
    pub uuid: Buffer,
    pub saved_state: u32,
    /// The 427 reserved bytes.
    pub reserved: Buffer,
}

/// Every field of a dynamic disk header (vhd@0.5.0's `Header`).
#[napi(object)]
pub struct HeaderFields {
    /// The cookie, `'cxsparse'` (written as the footer's is).
    pub signature: Utf16String,
    pub data_offset: BigInt,
    /// Absolute offset of the block allocation table.
    pub table_offset: BigInt,
    pub header_version: Version,
    pub max_table_entries: u32,
    /// The block size in bytes (vhd@0.5.0's name for it).
    pub sector_size: u32,
    /// The stored checksum (a write computes its own).
    pub checksum: u32,
    /// The parent's 16-byte unique id.
    pub parent_id: Buffer,
    /// Milliseconds since the Unix epoch.
    pub parent_timestamp: f64,
    pub reserved1: u32,
    /// UTF-16 big-endian up to the first NUL (unpaired surrogates kept, as JavaScript can);
    /// written cut to 256 units, never half a surrogate pair.
    pub parent_name: Utf16String,
    /// The entries in header order: all 8 for an open image's header; up to the last one
    /// that is not all zeros for a parse of bytes (vhd@0.5.0's `Header#parse`). A write
    /// lays out the first 8 (missing ones as zeros).
    pub parent_locators: Vec<LocatorFields>,
    /// The 256 reserved bytes at the end.
    pub reserved2: Buffer,
}

/// A header parsed from bytes, and the checksum those bytes call for.
#[napi(object, object_from_js = false)]
pub struct ParsedHeader {
    pub header: HeaderFields,
    /// The checksum of the 1024 bytes with the checksum field taken as zero.
    pub calculated_checksum: u32,
}

/// One parent locator entry (vhd@0.5.0's `Locator`).
#[napi(object)]
pub struct LocatorFields {
    /// A platform code: what kind of path the entry points to (0: unused entry).
    pub platform_code: u32,
    pub data_space: u32,
    pub data_length: u32,
    /// The reserved field at +12.
    pub reserved: u32,
    /// Absolute file offset of the path.
    pub data_offset: BigInt,
}

// ---------------------------------------------------------------------------------------
// Arguments of open and create (src/options.rs)

/// How to open an image.
#[napi(object)]
#[derive(Debug, Default, Clone)]
pub struct OpenArgs {
    /// Open the file read-only (default false: read-write).
    pub read_only: Option<bool>,
    /// Accept bad checksums; an image opened that way is read-only.
    pub ignore_checksums: Option<bool>,
    /// `'fixed'`, `'dynamic'` or `'differencing'`: fail with `ERR_VHD_WRONG_TYPE` otherwise.
    pub expected_type: Option<String>,
    /// Parents of a differencing image named by the caller, nearest first; levels beyond
    /// the list are found through the parent locators.
    pub parents: Option<Vec<ParentArg>>,
    /// Accept a parent whose time stamp is not the one the child recorded (default false).
    pub ignore_parent_timestamp: Option<bool>,
    /// Lock the file (and, shared, its parents) while open (default true).
    pub lock: Option<bool>,
    /// Parents found through locators must lie inside this folder (untrusted images).
    pub parent_root: Option<String>,
    /// Windows: follow a locator naming a network path (`\\server\share\…`) (default false).
    pub allow_remote_parents: Option<bool>,
}

/// A parent named by the caller.
#[napi(object)]
#[derive(Debug, Default, Clone)]
pub struct ParentArg {
    pub path: String,
    /// A raw disk file (no VHD structures): the base of the chain (default false).
    pub raw: Option<bool>,
}

/// How to create an image.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct CreateArgs {
    /// `'fixed'`, `'dynamic'` or `'differencing'`.
    #[napi(js_name = "type")]
    pub disk_type: String,
    /// Virtual size in bytes, a positive multiple of 512. Required for fixed and dynamic
    /// images; for differencing ones, absent or 0 means the parent's size.
    pub size: Option<f64>,
    /// Block size of dynamic images (default 2 MiB); a differencing image takes its
    /// parent's block size (this one over a fixed parent).
    pub block_size: Option<f64>,
    /// The parent of a differencing image (required for them, refused for the others).
    pub parent: Option<String>,
    /// Creator application: 1 to 4 ASCII characters, padded with spaces (default `win `).
    pub creator_application: Option<String>,
    /// Replace an existing file (default false: `ERR_VHD_EXISTS`).
    pub overwrite: Option<bool>,
    /// How to open the parent of a differencing image and the chain below it (its
    /// `parentRoot` above all); it is opened read-only whatever `readOnly` says. Unused for
    /// the other types.
    pub parent_open: Option<OpenArgs>,
}

// ---------------------------------------------------------------------------------------
// vhd@0.5.0's helpers (src/structures.rs)

/// Cylinders, heads and sectors per track, with vhd@0.5.0's property names.
#[napi(object)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskGeometry {
    pub cylinders: u32,
    pub heads: u32,
    /// Sectors per track.
    pub sectors: u32,
}

// ---------------------------------------------------------------------------------------
// Allocated ranges (src/image.rs)

/// A run of the virtual disk whose data is stored rather than implied zeros.
#[napi(object)]
pub struct AllocatedRangeInfo {
    /// Start in the virtual disk, in bytes.
    pub offset: f64,
    pub length: f64,
    /// Which image of the chain holds it: 0 this one, 1 its parent, and so on.
    pub depth: u32,
    /// Where the data starts in that image's file, when the run is contiguous there.
    pub file_offset: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// Partition tables (src/image.rs)

/// One partition, with the field names of `partitioninfo`'s `getPartitions()` and more.
#[napi(object)]
pub struct PartitionInfo {
    /// Linux's number: MBR primaries 1–4, logical partitions from 5, GPT entry slot + 1.
    pub index: u32,
    /// Start in the virtual disk, in bytes.
    pub offset: f64,
    /// Length in bytes.
    pub size: f64,
    /// The MBR type byte, or the GPT type GUID as an upper-case string.
    #[napi(js_name = "type")]
    pub kind: Either<u32, String>,
    /// The type's well-known name ("Linux filesystem", "EFI System"...).
    pub type_name: Option<String>,
    /// GPT: the partition's unique GUID, upper case.
    pub guid: Option<String>,
    /// GPT: the partition's name.
    pub name: Option<String>,
    /// MBR: boot indicator 0x80; GPT: attribute bit 2 (legacy BIOS bootable).
    pub bootable: bool,
    /// GPT: the attribute bits (0n for MBR).
    pub attributes: BigInt,
    /// First sector (512 bytes each).
    #[napi(js_name = "firstLBA")]
    pub first_lba: f64,
    /// Last sector, inclusive.
    #[napi(js_name = "lastLBA")]
    pub last_lba: f64,
}

/// Something damaged or doubtful about a partition table, not fatal.
#[napi(object)]
pub struct PartitionTableFinding {
    /// A stable code: 'gpt-primary-damaged', 'partition-past-end', 'ebr-loop'...
    pub code: String,
    pub message: String,
}

/// The partition table of a disk.
#[napi(object)]
pub struct PartitionTableInfo {
    #[napi(js_name = "type", ts_type = "'gpt' | 'mbr' | 'none'")]
    pub kind: String,
    pub partitions: Vec<PartitionInfo>,
    pub findings: Vec<PartitionTableFinding>,
}

impl From<vhd_core::partition::Partition> for PartitionInfo {
    fn from(p: vhd_core::partition::Partition) -> PartitionInfo {
        use vhd_core::partition::PartitionType;
        PartitionInfo {
            index: p.index,
            offset: p.offset as f64,
            size: p.size as f64,
            kind: match p.kind {
                PartitionType::Mbr(byte) => Either::A(u32::from(byte)),
                PartitionType::Gpt(guid) => Either::B(guid.to_string()),
            },
            type_name: p.type_name.map(str::to_string),
            guid: p.guid.map(|g| g.to_string()),
            name: p.name,
            bootable: p.bootable,
            attributes: BigInt::from(p.attributes),
            first_lba: p.first_lba as f64,
            last_lba: p.last_lba as f64,
        }
    }
}

impl From<vhd_core::partition::PartitionTable> for PartitionTableInfo {
    fn from(table: vhd_core::partition::PartitionTable) -> PartitionTableInfo {
        PartitionTableInfo {
            kind: table.kind.name().to_string(),
            partitions: table
                .partitions
                .into_iter()
                .map(PartitionInfo::from)
                .collect(),
            findings: table
                .findings
                .into_iter()
                .map(|f| PartitionTableFinding {
                    code: f.code().to_string(),
                    message: f.message,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// NBD (src/serve.rs `serve`)

/// Where `VHD.serve` listens and how it serves (checked by lib/serve.js).
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct ServeArgs {
    /// The Unix socket to create, its path as the caller gave it (or `host` and `port`).
    pub socket: Option<String>,
    /// The IP address to listen on for TCP (`'localhost'` already made `127.0.0.1`).
    pub host: Option<String>,
    /// The TCP port (0: any free port).
    pub port: Option<u32>,
    /// The export's name (default: the empty name, the default export).
    pub export_name: Option<String>,
    /// Serve read-only (also the case for an image opened read-only).
    pub read_only: Option<bool>,
    /// Accept a host that is not a loopback address.
    pub allow_remote: Option<bool>,
    /// Pass the server's log lines (one per connection) to `log`.
    pub log: Option<bool>,
}

/// Where a server listens, as `server.address` gives it: `{ socket }` or `{ host, port }`.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ServerAddress {
    pub socket: Option<String>,
    pub host: Option<String>,
    pub port: Option<u32>,
}
