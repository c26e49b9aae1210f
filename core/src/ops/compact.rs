//! Rewriting a sparse image without its all-zero blocks.

use super::Progress;
use crate::bat::{BlockAllocationTable, BAT_ENTRY_SIZE};
use crate::dynamic_header::DYNAMIC_HEADER_SIZE;
use crate::error::{Error, Result};
use crate::footer::FOOTER_SIZE;
use crate::image::{locator_is_read, locator_space, SparseLayout, COPY_CHUNK};
use crate::new_file::{NewFile, Replace};
use crate::parent_locator::{ParentLocator, MAX_LOCATOR_BYTES};
use crate::storage::Storage;
use crate::zeros::is_all_zero;
use crate::{DifferencingImage, Image, OpenOptions, VirtualDisk};
use std::fs::File;
use std::path::Path;

/// Offset of the dynamic header in a compacted file (right after the footer copy).
const HEADER_OFFSET: u64 = FOOTER_SIZE as u64;
/// Offset of the BAT in a compacted file (right after the header).
const TABLE_OFFSET: u64 = HEADER_OFFSET + DYNAMIC_HEADER_SIZE as u64;

/// What `compact` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Size of the file before, in bytes.
    pub file_size_before: u64,
    /// Size of the file after, in bytes.
    pub file_size_after: u64,
    /// Allocated blocks before (every BAT entry that points somewhere).
    pub blocks_before: u64,
    /// Allocated blocks after.
    pub blocks_after: u64,
}

/// Rewrites the dynamic or differencing image at `path` without the blocks it does not
/// need; what a reader sees (through the parent chain, for a differencing image) is
/// unchanged.
///
/// Dropped: in a dynamic image, blocks whose data (inside the virtual size) is all zeros;
/// in a differencing image, blocks whose present sectors all hold what the parent chain
/// reads there (a block with an empty sector bitmap, or zeros over zeros); in both, space
/// no BAT entry refers to (leaked blocks, padding) and BAT entries past the end of the
/// disk. Kept as they were: the footer (unique id, time stamp, creator, sizes, geometry,
/// even its reserved bytes), the dynamic header's fields (block size, BAT entry count,
/// parent unique id, time stamp and name) and the parent locators' data (a locator whose
/// data length passes what any reader reads, 64 KiB, or whose data lies outside the file, is
/// dropped: nothing ever read it). The new file is
/// laid out as [`crate::create()`] lays it out: footer copy, header, BAT, locator data, then
/// the blocks kept, in disk order, then the footer.
///
/// Fixed images are refused with [`Error::WrongDiskType`] (they have nothing to drop);
/// `options.read_only` with [`Error::InvalidArgument`] (the image is rewritten). The image
/// is opened with `options` (parents, checksums), read-write: an image open elsewhere is
/// refused with [`Error::Locked`] (unless `options.lock` is off), and the lock is held
/// until the new file has replaced it.
///
/// Crash and cancel safety: the new image is written into a new file in the same folder
/// (without a name where the file system allows, otherwise `.NAME.compact-PID-N.vhd-tmp`:
/// see `new_file`), given the original's owner, group, permissions and extended
/// attributes (ACLs included) before anything is written, then its modification time
/// (children of this image compare their parent's time stamp with it, and the contents
/// did not change); it is made durable, renamed over the original, and the folder is made
/// durable. Until the rename the original is untouched; an error or a cancellation
/// through `progress` (checked after every block) removes the new file. When the owner,
/// group or an extended attribute cannot be given to the new file (compacting another
/// user's file without being root), compact is refused with an I/O error that says so,
/// before anything is written. A symbolic link is followed (the file it names is
/// replaced); other hard links to the file keep the old file.
pub fn compact(path: &Path, options: &OpenOptions, progress: Progress) -> Result<CompactReport> {
    compact_unnamed(path, options, progress).map_err(|e| e.in_file(path))
}

/// [`compact`], whose I/O errors may not name the file yet.
fn compact_unnamed(
    path: &Path,
    options: &OpenOptions,
    progress: Progress,
) -> Result<CompactReport> {
    if options.read_only {
        return Err(Error::InvalidArgument {
            name: "options.read_only",
            reason: "compact rewrites the image: open it read-write".into(),
        });
    }
    let image = Image::open(path, options)?;
    if let Some(reason) = image.read_only_reason() {
        return Err(Error::ReadOnly {
            path: None,
            reason: reason.to_string(),
        });
    }
    let (sparse, child) = match &image {
        Image::Fixed(_) => {
            return Err(Error::WrongDiskType {
                path: path.to_path_buf(),
                expected: "dynamic or differencing",
                found: "fixed",
            })
        }
        Image::Dynamic(dynamic) => (dynamic.sparse(), None),
        Image::Differencing(child) => (child.sparse(), Some(child)),
    };
    // A symbolic link is followed: the file it names is replaced, the link stays.
    let target = path
        .canonicalize()
        .map_err(|e| Error::io_at(path, "realpath", "resolving", e))?;
    let metadata = std::fs::metadata(&target)
        .map_err(|e| Error::io_at(&target, "stat", "reading the metadata", e))?;
    let new = NewFile::create(&target, "compact")?;
    new.take_attributes_of(&target, &metadata)?;
    let blocks_after = write_compacted(sparse, child, new.file(), progress)?;
    // Children of this image compare their parent's time stamp with it, and the contents
    // did not change.
    if let Ok(modified) = metadata.modified() {
        new.file()
            .set_modified(modified)
            .map_err(|e| new.io_error("futimens", "setting the modification time", e))?;
    }
    drop(new.persist(Replace::Yes)?);
    let report = CompactReport {
        file_size_before: metadata.len(),
        file_size_after: std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0),
        blocks_before: sparse.bat().allocated().count() as u64,
        blocks_after,
    };
    // The original (now unlinked) stays locked until here.
    drop(image);
    Ok(report)
}

/// Writes the compacted image into `out`; returns the number of blocks kept.
fn write_compacted(
    sparse: &SparseLayout,
    child: Option<&DifferencingImage>,
    out: &File,
    progress: Progress,
) -> Result<u64> {
    let mut header = sparse.header().clone();
    let entries = sparse.bat().len();
    header.table_offset = TABLE_OFFSET;
    let mut offset = TABLE_OFFSET + (entries as u64 * BAT_ENTRY_SIZE).next_multiple_of(512);
    let file_size = sparse
        .file()
        .file_size()
        .map_err(|e| Error::io("reading the size of the image", e))?;
    // Parent locator data, each in whole sectors, right after the BAT.
    for locator in header.parent_locators.iter_mut().filter(|l| !l.is_empty()) {
        let length = u64::from(locator.platform_data_length);
        let inside = locator
            .platform_data_offset
            .checked_add(length)
            .is_some_and(|end| end <= file_size);
        if !locator_is_read(locator) || !inside {
            // No reader ever reads such a locator (see `MAX_LOCATOR_BYTES`): it is dropped,
            // not copied, so that a damaged length of up to 4 GiB is never allocated.
            *locator = ParentLocator::default();
            continue;
        }
        let bound = u64::from(MAX_LOCATOR_BYTES);
        let mut space = locator_space(locator).next_multiple_of(512);
        if space > bound {
            // A damaged (huge) data space: keep what a path can need, in bytes.
            space = bound;
            locator.platform_data_space = space as u32;
        }
        let mut data = vec![0u8; length.min(space) as usize];
        crate::image::read_exact(
            sparse.file(),
            &mut data,
            locator.platform_data_offset,
            "parent locator data",
        )?;
        write(out, &data, offset)?;
        locator.platform_data_offset = offset;
        offset += space;
    }
    let mut bat = BlockAllocationTable::new(entries as u32);
    let mut kept = 0;
    let size = sparse.size();
    let block_size = u64::from(sparse.block_size());
    let blocks_in_disk = size.div_ceil(block_size);
    for block in 0..blocks_in_disk {
        let block = block as u32;
        if let Some(sector) = sparse.bat().get(block) {
            if block_is_needed(sparse, child, block, sector)? {
                copy_block(sparse, block, sector, out, offset)?;
                bat.set(block, (offset / 512) as u32);
                offset += sparse.unit_size();
                kept += 1;
            }
        }
        let done = ((u64::from(block) + 1) * block_size).min(size);
        progress.report("compact", done, size)?;
    }
    let mut footer = sparse.footer().clone();
    if footer.data_offset != HEADER_OFFSET {
        footer.data_offset = HEADER_OFFSET;
        footer.update_checksum();
    }
    header.update_checksum();
    let mut table = bat.to_bytes();
    table.resize(table.len().next_multiple_of(512), 0xFF);
    write(out, &footer.to_bytes(), offset)?;
    write(out, &table, TABLE_OFFSET)?;
    write(out, &header.to_bytes(), HEADER_OFFSET)?;
    write(out, &footer.to_bytes(), 0)?;
    Ok(kept)
}

/// Whether `block` (allocated at file `sector`) changes what a reader sees: in a dynamic
/// image, whether its data holds anything but zeros; in a differencing image, whether it
/// reads differently from the parent chain.
fn block_is_needed(
    sparse: &SparseLayout,
    child: Option<&DifferencingImage>,
    block: u32,
    sector: u32,
) -> Result<bool> {
    let block_size = u64::from(sparse.block_size());
    let block_start = u64::from(block) * block_size;
    let length = block_size.min(sparse.size() - block_start);
    let mut ours = vec![0u8; COPY_CHUNK.min(length) as usize];
    let mut theirs = vec![0u8; if child.is_some() { ours.len() } else { 0 }];
    let mut at = 0;
    while at < length {
        let n = COPY_CHUNK.min(length - at) as usize;
        let differs = match child {
            None => {
                sparse.read_data(sector, at, &mut ours[..n])?;
                !is_all_zero(&ours[..n])
            }
            Some(child) => {
                child.read_at(&mut ours[..n], block_start + at)?;
                child.read_parent(&mut theirs[..n], block_start + at)?;
                ours[..n] != theirs[..n]
            }
        };
        if differs {
            return Ok(true);
        }
        at += n as u64;
    }
    Ok(false)
}

/// Copies the sector bitmap and the data (the part inside the virtual size; the rest of
/// the last block is left as a hole of zeros) of `block` to `offset` of `out`.
fn copy_block(
    sparse: &SparseLayout,
    block: u32,
    sector: u32,
    out: &File,
    offset: u64,
) -> Result<()> {
    let mut bitmap = vec![0u8; sparse.bitmap_bytes() as usize];
    crate::image::read_exact(
        sparse.file(),
        &mut bitmap,
        u64::from(sector) * 512,
        "a sector bitmap",
    )?;
    write(out, &bitmap, offset)?;
    let block_size = u64::from(sparse.block_size());
    let length = block_size.min(sparse.size() - u64::from(block) * block_size);
    let mut buf = vec![0u8; COPY_CHUNK.min(length) as usize];
    let data_offset = offset + sparse.bitmap_bytes();
    let mut at = 0;
    while at < length {
        let n = COPY_CHUNK.min(length - at) as usize;
        sparse.read_data(sector, at, &mut buf[..n])?;
        write(out, &buf[..n], data_offset + at)?;
        at += n as u64;
    }
    Ok(())
}

fn write(out: &File, bytes: &[u8], offset: u64) -> Result<()> {
    out.write_all_at(bytes, offset)
        .map_err(|e| Error::io(format!("writing the compacted image at offset {offset}"), e))
}
