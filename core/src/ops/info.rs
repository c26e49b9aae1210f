//! Everything known about an image, for `vhd info`: every footer and dynamic header field,
//! the parent locators, the parent chain and how much space the image uses.
//!
//! [`info`] only collects; formatting (text or JSON) is the caller's business.

use crate::bat::BlockAllocationTable;
use crate::error::{Error, Result};
use crate::footer::{DiskType, Footer};
use crate::parent_locator::ParentLocator;
use crate::{DynamicHeader, FooterSource, Image, Parent, VirtualDisk};
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
}

/// Describes an open image. It reads only the file's metadata (size, host allocation):
/// everything else was read when the image was opened.
pub fn info(image: &Image) -> Result<ImageInfo> {
    let path = image.path();
    let metadata = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading the metadata of {}", path.display()), e))?;
    let footer = image.footer().clone();
    let header = image.header().cloned();
    let bat = bat_of(image);
    let allocated_blocks = bat.map(|bat| bat.allocated().count() as u64);
    Ok(ImageInfo {
        path: path.to_path_buf(),
        disk_type: image.disk_type(),
        virtual_size: image.size(),
        geometry_size: footer.geometry_size(),
        file_size: metadata.len(),
        disk_usage: disk_usage(&metadata),
        allocated_bytes: allocated_bytes(image, bat),
        allocated_blocks,
        footer_checksum: ChecksumInfo {
            stored: footer.checksum,
            computed: footer.computed_checksum(),
        },
        header_checksum: header.as_ref().map(|h| ChecksumInfo {
            stored: h.checksum,
            computed: h.computed_checksum(),
        }),
        parent_locators: locators(image),
        parent: parent_info(image),
        chain: chain(image),
        footer_source: image.footer_source(),
        read_only_reason: image.read_only_reason().map(str::to_string),
        footer,
        header,
    })
}

fn bat_of(image: &Image) -> Option<&BlockAllocationTable> {
    match image {
        Image::Fixed(_) => None,
        Image::Dynamic(i) => Some(i.bat()),
        Image::Differencing(i) => Some(i.bat()),
    }
}

/// The virtual disk bytes stored in the file. Entries past the end of the disk hold no
/// disk data, and the last block counts only up to the end of the disk.
fn allocated_bytes(image: &Image, bat: Option<&BlockAllocationTable>) -> u64 {
    let (Some(bat), Some(header)) = (bat, image.header()) else {
        return image.size();
    };
    let block_size = u64::from(header.block_size);
    bat.allocated()
        .map(|(block, _)| {
            let start = u64::from(block) * block_size;
            block_size.min(image.size().saturating_sub(start))
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

fn locators(image: &Image) -> Vec<LocatorInfo> {
    let (Some(header), Some(texts)) = (image.header(), image.parent_locator_texts()) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create, CreateOptions, OpenOptions};

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
