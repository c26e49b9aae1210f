//! Everything known about an image, for `vhd info`: every footer and dynamic header field,
//! the parent locators, the parent chain and how much space the image uses.
//!
//! [`info`] collects; [`ImageInfo::to_json`] is the one JSON shape of it, which the command
//! line prints (`vhd info --json`) and the Node.js binding returns (`VHD.info`) unchanged.
//! Text formatting is the command line's business.

use crate::bat::BlockAllocationTable;
use crate::error::{Error, Result};
use crate::footer::{
    format_unique_id, DiskType, Footer, FEATURE_RESERVED, FEATURE_TEMPORARY, HOST_OS_MACINTOSH,
    HOST_OS_WINDOWS, NO_DATA_OFFSET, VHD_EPOCH_UNIX_SECONDS,
};
use crate::image::LoneChild;
use crate::json::Json;
use crate::parent_locator::ParentLocator;
use crate::{DynamicHeader, FooterSource, Image, OpenOptions, Parent, VirtualDisk};
use std::path::{Path, PathBuf};

/// What one image of a parent chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// A VHD of this type.
    Vhd(DiskType),
    /// A raw disk file at the base of the chain (named by the caller).
    Raw,
}

impl ChainKind {
    /// `"fixed"`, `"dynamic"`, `"differencing"` or `"raw"`.
    pub fn name(self) -> &'static str {
        match self {
            ChainKind::Vhd(disk_type) => disk_type.name(),
            ChainKind::Raw => "raw",
        }
    }
}

/// One image of a parent chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEntry {
    /// The path the image was opened from.
    pub path: PathBuf,
    /// Its kind.
    pub kind: ChainKind,
    /// Its virtual size in bytes.
    pub virtual_size: u64,
}

/// One used entry of the dynamic header's parent locator table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatorInfo {
    /// Position in the table (0..8).
    pub index: usize,
    /// The entry as stored.
    pub entry: ParentLocator,
    /// The decoded path, for the kinds that hold one (`W2ru`, `W2ku`, `Wi2r`, `Wi2k`,
    /// `MacX`) when their data lies in the file.
    pub path: Option<String>,
}

/// The parent a differencing image records, and the file it was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentInfo {
    /// The parent name from the dynamic header (UTF-16 big-endian, decoded).
    pub name: String,
    /// The parent's unique id the child records.
    pub unique_id: [u8; 16],
    /// The parent's modification time the child records (seconds since 2000-01-01).
    pub timestamp: u32,
    /// Whether the child records the parent's time stamp at all (0 means not: see
    /// [`PARENT_TIMESTAMP_NOT_RECORDED`](crate::dynamic_header::PARENT_TIMESTAMP_NOT_RECORDED)).
    pub timestamp_recorded: bool,
    /// The file used as the parent, with symbolic links and `..` resolved when possible.
    pub path: PathBuf,
}

/// A stored checksum and the one the structure's fields call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumInfo {
    /// The checksum in the file.
    pub stored: u32,
    /// The checksum the structure's other bytes call for.
    pub computed: u32,
}

impl ChecksumInfo {
    /// Whether the stored checksum is right.
    pub fn is_valid(&self) -> bool {
        self.stored == self.computed
    }
}

/// Every footer and header field, the parent chain and the allocated size of an image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The path the image was opened from.
    pub path: PathBuf,
    /// Fixed, dynamic or differencing.
    pub disk_type: DiskType,
    /// The virtual size in bytes (the footer's current size).
    pub virtual_size: u64,
    /// The size the CHS geometry describes (what Virtual PC-era readers use).
    pub geometry_size: u64,
    /// The length of the image file in bytes.
    pub file_size: u64,
    /// Bytes the file occupies on the host file system (holes excluded), where the
    /// platform says (Unix); `None` elsewhere.
    pub disk_usage: Option<u64>,
    /// Bytes of the virtual disk this file stores: the whole disk for a fixed image, the
    /// allocated blocks (the part inside the virtual size) for dynamic and differencing.
    pub allocated_bytes: u64,
    /// Allocated BAT entries (dynamic and differencing images).
    pub allocated_blocks: Option<u64>,
    /// The footer the image was opened with.
    pub footer: Footer,
    /// Where that footer was found.
    pub footer_source: FooterSource,
    /// The footer's checksum.
    pub footer_checksum: ChecksumInfo,
    /// The dynamic disk header (dynamic and differencing images).
    pub header: Option<DynamicHeader>,
    /// The dynamic header's checksum.
    pub header_checksum: Option<ChecksumInfo>,
    /// The used parent locator entries (dynamic and differencing images).
    pub parent_locators: Vec<LocatorInfo>,
    /// The parent of a differencing image.
    pub parent: Option<ParentInfo>,
    /// This image and every one below it, nearest first.
    pub chain: Vec<ChainEntry>,
    /// Why the image cannot be written (opened read-only, damaged footer…), if it cannot.
    pub read_only_reason: Option<String>,
    /// What is wrong with the parent chain of a differencing image described by
    /// [`info_at`] although its parent could not be opened (then `parent` is `None` and
    /// `chain` holds the image alone); `None` when the chain opened.
    pub parent_problem: Option<ParentProblem>,
}

/// Why the parent of a differencing image could not be opened (see [`info_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentProblem {
    /// The stable code of the error the open gave, e.g. `ERR_VHD_PARENT_NOT_FOUND`.
    pub code: &'static str,
    /// Its message: the parent looked for, and every place tried.
    pub message: String,
}

/// Describes an open image. It reads only the file's metadata (size, host allocation):
/// everything else was read when the image was opened.
pub fn info(image: &Image) -> Result<ImageInfo> {
    let bat = match image {
        Image::Fixed(_) => None,
        Image::Dynamic(i) => Some(i.bat()),
        Image::Differencing(i) => Some(i.bat()),
    };
    describe(Parts {
        path: image.path(),
        disk_type: image.disk_type(),
        size: image.size(),
        footer: image.footer(),
        header: image.header(),
        bat,
        locator_texts: image.parent_locator_texts(),
        footer_source: image.footer_source(),
        read_only_reason: image.read_only_reason(),
        parent: parent_info(image),
        chain: chain(image),
        parent_problem: None,
    })
}

/// Describes the image at `path`, opened read-only as `options` say (the read-only flag is
/// set here). A differencing image whose parent chain is broken (the parent missing,
/// another image, modified since, unusable) is still described:
/// its own footer, header, locators and allocation, with no parent and a chain of itself
/// alone, and [`ImageInfo::parent_problem`] saying what is wrong with the parent (as `qemu-img
/// info` shows an image whose backing file is missing). Any other failure to open is an
/// error, a parent outside [`OpenOptions::parent_root`] included (a rule of the caller's,
/// which the open keeps).
pub fn info_at(path: &Path, options: &OpenOptions) -> Result<ImageInfo> {
    let options = OpenOptions {
        read_only: true,
        ..options.clone()
    };
    let problem = match Image::open(path, &options) {
        Ok(image) => return info(&image),
        // A chain that crosses the parent root the caller set is refused, not described:
        // the root is a rule of the caller's, not a fault of the image.
        Err(e) if matches!(e.root(), Error::ParentOutsideRoot { .. }) => return Err(e),
        Err(e) if crate::ops::check::is_parent_error(&e) => e,
        Err(e) => return Err(e),
    };
    let child = LoneChild::open(path, &options)?;
    describe(Parts {
        path: child.path(),
        disk_type: DiskType::Differencing,
        size: child.size(),
        footer: child.footer(),
        header: Some(child.header()),
        bat: Some(child.bat()),
        locator_texts: Some(child.locator_texts()),
        footer_source: child.footer_source(),
        read_only_reason: child.read_only_reason(),
        parent: None,
        chain: vec![ChainEntry {
            path: child.path().to_path_buf(),
            kind: ChainKind::Vhd(DiskType::Differencing),
            virtual_size: child.size(),
        }],
        parent_problem: Some(ParentProblem {
            code: problem.code(),
            message: problem.to_string(),
        }),
    })
}

/// What [`describe`] needs of an image, from an open [`Image`] or a [`LoneChild`].
struct Parts<'a> {
    path: &'a Path,
    disk_type: DiskType,
    size: u64,
    footer: &'a Footer,
    header: Option<&'a DynamicHeader>,
    bat: Option<&'a BlockAllocationTable>,
    locator_texts: Option<[Option<String>; 8]>,
    footer_source: FooterSource,
    read_only_reason: Option<&'a str>,
    parent: Option<ParentInfo>,
    chain: Vec<ChainEntry>,
    parent_problem: Option<ParentProblem>,
}

fn describe(parts: Parts) -> Result<ImageInfo> {
    let path = parts.path;
    let metadata = std::fs::metadata(path)
        .map_err(|e| Error::io_at(path, "stat", "reading the metadata", e))?;
    let footer = parts.footer.clone();
    let header = parts.header.cloned();
    Ok(ImageInfo {
        path: path.to_path_buf(),
        disk_type: parts.disk_type,
        virtual_size: parts.size,
        geometry_size: footer.geometry_size(),
        file_size: metadata.len(),
        disk_usage: disk_usage(&metadata),
        allocated_bytes: allocated_bytes(parts.size, parts.bat, parts.header),
        allocated_blocks: parts.bat.map(|bat| bat.allocated().count() as u64),
        footer_checksum: ChecksumInfo {
            stored: footer.checksum,
            computed: footer.computed_checksum(),
        },
        header_checksum: header.as_ref().map(|h| ChecksumInfo {
            stored: h.checksum,
            computed: h.computed_checksum(),
        }),
        parent_locators: locators(parts.header, parts.locator_texts),
        parent: parts.parent,
        chain: parts.chain,
        footer_source: parts.footer_source,
        read_only_reason: parts.read_only_reason.map(str::to_string),
        parent_problem: parts.parent_problem,
        footer,
        header,
    })
}

/// The virtual disk bytes stored in the file. Entries past the end of the disk hold no
/// disk data, and the last block counts only up to the end of the disk.
fn allocated_bytes(
    size: u64,
    bat: Option<&BlockAllocationTable>,
    header: Option<&DynamicHeader>,
) -> u64 {
    let (Some(bat), Some(header)) = (bat, header) else {
        return size;
    };
    let block_size = u64::from(header.block_size);
    bat.allocated()
        .map(|(block, _)| {
            let start = u64::from(block) * block_size;
            block_size.min(size.saturating_sub(start))
        })
        .sum()
}

#[cfg(unix)]
fn disk_usage(metadata: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    // `blocks` counts 512-byte units whatever the file system's block size.
    Some(metadata.blocks() * 512)
}

#[cfg(not(unix))]
fn disk_usage(_metadata: &std::fs::Metadata) -> Option<u64> {
    None
}

fn locators(
    header: Option<&DynamicHeader>,
    texts: Option<[Option<String>; 8]>,
) -> Vec<LocatorInfo> {
    let (Some(header), Some(texts)) = (header, texts) else {
        return Vec::new();
    };
    header
        .parent_locators
        .iter()
        .zip(texts)
        .enumerate()
        .filter(|(_, (entry, _))| !entry.is_empty())
        .map(|(index, (entry, path))| LocatorInfo {
            index,
            entry: *entry,
            path,
        })
        .collect()
}

fn parent_info(image: &Image) -> Option<ParentInfo> {
    let (Some(parent), Some(header)) = (image.parent(), image.header()) else {
        return None;
    };
    Some(ParentInfo {
        name: header.parent_name(),
        unique_id: header.parent_unique_id,
        timestamp: header.parent_timestamp,
        timestamp_recorded: header.records_parent_timestamp(),
        path: resolved(parent.path()),
    })
}

fn resolved(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

fn chain(image: &Image) -> Vec<ChainEntry> {
    let mut entries = vec![ChainEntry {
        path: image.path().to_path_buf(),
        kind: ChainKind::Vhd(image.disk_type()),
        virtual_size: image.size(),
    }];
    let mut next = image.parent();
    while let Some(parent) = next {
        let kind = match parent {
            Parent::Image(image) => ChainKind::Vhd(image.disk_type()),
            Parent::Raw(_) => ChainKind::Raw,
        };
        entries.push(ChainEntry {
            path: parent.path().to_path_buf(),
            kind,
            virtual_size: parent.disk().size(),
        });
        next = match parent {
            Parent::Image(image) => image.parent(),
            Parent::Raw(_) => None,
        };
    }
    entries
}

impl ImageInfo {
    /// The description `vhd info --json` prints and `VHD.info` resolves to, key for key:
    /// built here once, written as text by the command line and made a JavaScript object
    /// by the binding. Time stamps of the summary are ISO 8601, those of `footer` and
    /// `header` the stored seconds since 2000; unique ids are UUIDs with the bytes in file
    /// order; a data offset of all ones (none) is `null`.
    pub fn to_json(&self) -> Json {
        to_json(self)
    }
}

fn to_json(info: &ImageInfo) -> Json {
    let footer = &info.footer;
    let geometry = footer.geometry;
    Json::object([
        ("path", Json::str(display_path(&info.path))),
        ("format", Json::str("vpc")),
        ("type", Json::str(info.disk_type.name())),
        ("virtualSize", Json::UInt(info.virtual_size)),
        (
            "geometry",
            Json::object([
                ("cylinders", Json::UInt(geometry.cylinders.into())),
                ("heads", Json::UInt(geometry.heads.into())),
                (
                    "sectorsPerTrack",
                    Json::UInt(geometry.sectors_per_track.into()),
                ),
                ("size", Json::UInt(info.geometry_size)),
            ]),
        ),
        (
            "blockSize",
            Json::opt(info.header.as_ref(), |h| Json::UInt(h.block_size.into())),
        ),
        ("allocatedBytes", Json::UInt(info.allocated_bytes)),
        (
            "allocatedBlocks",
            Json::opt(info.allocated_blocks, Json::UInt),
        ),
        ("fileSize", Json::UInt(info.file_size)),
        ("diskUsage", Json::opt(info.disk_usage, Json::UInt)),
        (
            "creator",
            Json::object([
                ("application", Json::str(footer.creator_application_str())),
                ("version", Json::str(creator_version_text(footer))),
                ("hostOs", Json::str(host_os_name(footer.creator_host_os))),
            ]),
        ),
        ("uniqueId", Json::str(format_unique_id(&footer.unique_id))),
        ("timestamp", Json::str(iso_time(footer.timestamp))),
        (
            "features",
            Json::object([
                ("value", Json::UInt(footer.features.into())),
                (
                    "temporary",
                    Json::Bool(footer.features & FEATURE_TEMPORARY != 0),
                ),
                (
                    "reserved",
                    Json::Bool(footer.features & FEATURE_RESERVED != 0),
                ),
            ]),
        ),
        (
            "checksums",
            Json::object([
                ("footer", checksum_json(info.footer_checksum)),
                ("header", Json::opt(info.header_checksum, checksum_json)),
            ]),
        ),
        ("footerSource", Json::str(info.footer_source.to_string())),
        ("footer", footer_json(footer)),
        ("header", Json::opt(info.header.as_ref(), header_json)),
        ("parent", parent_json(info)),
        (
            "parentProblem",
            Json::opt(info.parent_problem.as_ref(), |problem| {
                Json::object([
                    ("code", Json::str(problem.code)),
                    ("message", Json::str(&problem.message)),
                ])
            }),
        ),
        (
            "chain",
            Json::Array(
                info.chain
                    .iter()
                    .map(|entry| {
                        Json::object([
                            ("path", Json::str(display_path(&entry.path))),
                            ("type", Json::str(entry.kind.name())),
                            ("virtualSize", Json::UInt(entry.virtual_size)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

fn checksum_json(checksum: ChecksumInfo) -> Json {
    Json::object([
        ("stored", Json::UInt(checksum.stored.into())),
        ("computed", Json::UInt(checksum.computed.into())),
        ("valid", Json::Bool(checksum.is_valid())),
    ])
}

/// Every footer field, as stored.
fn footer_json(footer: &Footer) -> Json {
    Json::object([
        ("features", Json::UInt(footer.features.into())),
        ("formatVersion", Json::UInt(footer.format_version.into())),
        ("dataOffset", data_offset_json(footer.data_offset)),
        ("timestamp", Json::UInt(footer.timestamp.into())),
        (
            "creatorApplication",
            Json::str(footer.creator_application_str()),
        ),
        ("creatorVersion", Json::UInt(footer.creator_version.into())),
        ("creatorHostOs", Json::UInt(footer.creator_host_os.into())),
        ("originalSize", Json::UInt(footer.original_size)),
        ("currentSize", Json::UInt(footer.current_size)),
        ("diskType", Json::UInt(footer.disk_type_code.into())),
        ("checksum", Json::UInt(footer.checksum.into())),
        ("uniqueId", Json::str(format_unique_id(&footer.unique_id))),
        ("savedState", Json::UInt(footer.saved_state.into())),
    ])
}

/// A fixed image's data offset is all ones: null rather than 2^64 - 1.
fn data_offset_json(offset: u64) -> Json {
    if offset == NO_DATA_OFFSET {
        Json::Null
    } else {
        Json::UInt(offset)
    }
}

/// Every dynamic header field but the locator table (see `parent.locators`).
fn header_json(header: &DynamicHeader) -> Json {
    Json::object([
        ("dataOffset", data_offset_json(header.data_offset)),
        ("tableOffset", Json::UInt(header.table_offset)),
        ("headerVersion", Json::UInt(header.header_version.into())),
        (
            "maxTableEntries",
            Json::UInt(header.max_table_entries.into()),
        ),
        ("blockSize", Json::UInt(header.block_size.into())),
        ("checksum", Json::UInt(header.checksum.into())),
        (
            "parentUniqueId",
            Json::str(format_unique_id(&header.parent_unique_id)),
        ),
        (
            "parentTimestamp",
            Json::UInt(header.parent_timestamp.into()),
        ),
        ("parentName", Json::str(header.parent_name())),
    ])
}

fn parent_json(info: &ImageInfo) -> Json {
    let Some(parent) = &info.parent else {
        return Json::Null;
    };
    Json::object([
        ("name", Json::str(&parent.name)),
        ("uniqueId", Json::str(format_unique_id(&parent.unique_id))),
        ("timestamp", Json::str(iso_time(parent.timestamp))),
        ("timestampRecorded", Json::Bool(parent.timestamp_recorded)),
        ("path", Json::str(display_path(&parent.path))),
        (
            "locators",
            Json::Array(info.parent_locators.iter().map(locator_json).collect()),
        ),
    ])
}

fn locator_json(locator: &LocatorInfo) -> Json {
    let entry = &locator.entry;
    Json::object([
        ("index", Json::UInt(locator.index as u64)),
        ("platformCode", Json::str(entry.platform_name())),
        ("dataSpace", Json::UInt(entry.platform_data_space.into())),
        ("dataLength", Json::UInt(entry.platform_data_length.into())),
        ("dataOffset", Json::UInt(entry.platform_data_offset)),
        ("path", Json::opt(locator.path.clone(), Json::String)),
    ])
}

/// The creator version as `major.minor`.
pub fn creator_version_text(footer: &Footer) -> String {
    let (major, minor) = footer.creator_version_parts();
    format!("{major}.{minor}")
}

/// The creator host OS: `Windows`, `Macintosh`, or the code's 4 characters quoted.
pub fn host_os_name(code: u32) -> String {
    match code {
        HOST_OS_WINDOWS => "Windows".into(),
        HOST_OS_MACINTOSH => "Macintosh".into(),
        other => format!("{:?}", String::from_utf8_lossy(&other.to_be_bytes())),
    }
}

/// A VHD time stamp (seconds since 2000-01-01 UTC) as ISO 8601, `2024-05-01T12:00:00Z`.
pub fn iso_time(timestamp: u32) -> String {
    let unix = VHD_EPOCH_UNIX_SECONDS + u64::from(timestamp);
    let (days, seconds) = (unix / 86_400, unix % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create, CreateOptions, OpenOptions};

    #[test]
    fn iso_time_of_known_instants() {
        assert_eq!(iso_time(0), "2000-01-01T00:00:00Z");
        // 2024-02-29T12:34:56Z, a leap day.
        assert_eq!(
            iso_time(1_709_210_096 - 946_684_800),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(iso_time(u32::MAX), "2136-02-07T06:28:15Z");
    }

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vhd-info-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn dynamic_image_counts_its_allocated_blocks() {
        let dir = temp_dir("dynamic");
        let path = dir.join("d.vhd");
        let mut options = CreateOptions::new(DiskType::Dynamic, 5 * 1024 * 1024);
        options.block_size = 2 << 20;
        let mut disk = create(&path, &options).unwrap();
        // Blocks 0 and 2 (the last one holds only 1 MiB of disk).
        disk.write_at(b"x", 0).unwrap();
        disk.write_at(b"y", 5 * 1024 * 1024 - 1).unwrap();
        disk.flush().unwrap();
        let info = info(&disk).unwrap();
        assert_eq!(info.disk_type, DiskType::Dynamic);
        assert_eq!(info.allocated_blocks, Some(2));
        assert_eq!(info.allocated_bytes, (2 << 20) + (1 << 20));
        assert!(info.footer_checksum.is_valid());
        assert!(info.header_checksum.unwrap().is_valid());
        assert!(info.parent.is_none() && info.parent_locators.is_empty());
        assert_eq!(info.chain.len(), 1);
        drop(disk);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn differencing_image_names_its_parent_and_chain() {
        let dir = temp_dir("diff");
        let base = dir.join("base.vhd");
        drop(create(&base, &CreateOptions::new(DiskType::Fixed, 1 << 20)).unwrap());
        let child = dir.join("child.vhd");
        drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
        let read_only = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        let image = Image::open(&child, &read_only).unwrap();
        let info = info(&image).unwrap();
        let parent = info.parent.unwrap();
        assert_eq!(parent.name, "base.vhd");
        assert_eq!(parent.path, base.canonicalize().unwrap());
        assert_eq!(
            parent.unique_id,
            Image::open(&base, &read_only).unwrap().footer().unique_id
        );
        let kinds: Vec<_> = info.chain.iter().map(|c| c.kind.name()).collect();
        assert_eq!(kinds, ["differencing", "fixed"]);
        assert!(info
            .parent_locators
            .iter()
            .any(|l| l.entry.platform_name() == "W2ru"));
        assert_eq!(info.allocated_bytes, 0);
        assert!(info.read_only_reason.is_some());
        drop(image);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
