//! Growing and shrinking images.

use super::Progress;
use crate::error::{Error, Result};
use crate::image::{is_all_zero, COPY_CHUNK};
use crate::{DiskType, Image, OpenOptions, VirtualDisk, MAX_DYNAMIC_SIZE, MAX_FIXED_SIZE};
use std::path::Path;

/// How to resize.
#[derive(Debug, Clone, Default)]
pub struct ResizeOptions {
    /// Shrink even when the part cut off holds data (it is lost).
    pub force: bool,
    /// How to open the image (the parents of a differencing image, checksums). It is
    /// always opened read-write, so `read_only` must be `false`; keep `lock` on (the
    /// default) so that an image open elsewhere is refused.
    pub open: OpenOptions,
}

/// What `resize` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeReport {
    /// Virtual size before, in bytes.
    pub old_size: u64,
    /// Virtual size after, in bytes.
    pub new_size: u64,
    /// Size of the file afterwards, in bytes.
    pub file_size: u64,
}

/// Changes the virtual size of the image at `path` to `new_size` bytes (a positive multiple
/// of 512, at most [`MAX_FIXED_SIZE`] for fixed images and [`MAX_DYNAMIC_SIZE`] for the
/// others; [`Error::InvalidArgument`] otherwise). The footer's current size, original size
/// and CHS geometry (computed for the new size, as [`crate::create`] does) change; the
/// unique id, time stamps and creator stay. The original size changes too although the
/// specification calls it the size at creation: it is only informational there, but
/// libvhdi (vhdiinfo, pyvhdi, and the forensic tools built on them) reads the disk at
/// that size, and would cut off everything a grow added.
///
/// - Growing: the new part reads as zeros. A fixed image's file grows (as a hole) and its
///   footer moves; a dynamic image's BAT grows when it has too few entries, moving the
///   blocks (and parent locator data) that follow it to the end of the file. A
///   differencing image grows like a dynamic one, and its new part shows what its parent
///   holds there (zeros past the parent's end), as in a child created larger than its
///   parent.
/// - Shrinking: refused with [`Error::InvalidArgument`] when the part cut off holds data
///   (anything but zeros as a reader sees it, through the parent chain for a differencing
///   image), unless `options.force`. The blocks past the new end are freed (the file is
///   cut when they were at its end; blocks elsewhere stay as unreferenced space, which
///   `check` reports as leaked and [`super::compact`] reclaims). The part of the new last
///   block past the new end is cleared (zeros, or absent sectors in a differencing image),
///   so that growing again later shows no old data.
///
/// The scan of the part cut off reports progress and may be cancelled; nothing has been
/// changed then. Each step after it is made durable before the next one starts, in an
/// order that leaves a valid image at every instant (see the steps of each kind). The
/// image is opened with an exclusive lock: an image open elsewhere is refused
/// ([`Error::Locked`]).
pub fn resize(
    path: &Path,
    new_size: u64,
    options: &ResizeOptions,
    progress: Progress,
) -> Result<ResizeReport> {
    if options.open.read_only {
        return Err(Error::InvalidArgument {
            name: "open.read_only",
            reason: "resize writes the image: open it read-write".into(),
        });
    }
    let mut image = Image::open(path, &options.open)?;
    if let Some(reason) = image.read_only_reason() {
        return Err(Error::ReadOnly {
            reason: reason.to_string(),
        });
    }
    validate_size(&image, new_size)?;
    let old_size = image.size();
    if new_size < old_size && !options.force {
        ensure_nothing_cut_off(&image, new_size, progress)?;
    }
    progress.check_cancelled("resize")?;
    if new_size != old_size {
        match &mut image {
            Image::Fixed(fixed) => fixed.set_size(new_size)?,
            Image::Dynamic(dynamic) => dynamic.sparse_mut().set_size(new_size)?,
            Image::Differencing(child) => child.sparse_mut().set_size(new_size)?,
        }
    }
    drop(image);
    let file_size = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading the size of {}", path.display()), e))?
        .len();
    Ok(ResizeReport {
        old_size,
        new_size,
        file_size,
    })
}

fn validate_size(image: &Image, new_size: u64) -> Result<()> {
    let invalid = |reason: String| Error::InvalidArgument {
        name: "size",
        reason,
    };
    if new_size == 0 || !new_size.is_multiple_of(512) {
        return Err(invalid(format!(
            "{new_size} bytes: the size must be a positive multiple of 512"
        )));
    }
    let max = match image.disk_type() {
        DiskType::Fixed => MAX_FIXED_SIZE,
        _ => MAX_DYNAMIC_SIZE,
    };
    if new_size > max {
        return Err(invalid(format!(
            "{new_size} bytes: a {} image holds at most {max} bytes",
            image.disk_type().name()
        )));
    }
    if let Some(header) = image.header() {
        let entries = new_size.div_ceil(u64::from(header.block_size));
        let limit = u64::from(header.max_table_entries).max(crate::MAX_CREATED_TABLE_ENTRIES);
        if entries > limit {
            return Err(invalid(format!(
                "{new_size} bytes in {}-byte blocks need {entries} BAT entries; at most \
                 {limit} are allowed",
                header.block_size
            )));
        }
    }
    Ok(())
}

/// Fails unless everything from `new_size` to the end of the disk reads as zeros. Blocks
/// a dynamic image does not hold are skipped without reading.
fn ensure_nothing_cut_off(image: &Image, new_size: u64, progress: Progress) -> Result<()> {
    let old_size = image.size();
    let mut buf = vec![0u8; COPY_CHUNK.min(old_size - new_size) as usize];
    let mut at = new_size;
    while at < old_size {
        let mut n = COPY_CHUNK.min(old_size - at);
        if let Image::Dynamic(dynamic) = image {
            let block_size = u64::from(dynamic.block_size());
            let block = at / block_size;
            let block_end = ((block + 1) * block_size).min(old_size);
            if dynamic.bat().get(block as u32).is_none() {
                at = block_end;
                continue;
            }
            n = n.min(block_end - at);
        }
        let chunk = &mut buf[..n as usize];
        image.read_at(chunk, at)?;
        if !is_all_zero(chunk) {
            let first = at + chunk.iter().position(|&b| b != 0).unwrap_or(0) as u64;
            return Err(Error::InvalidArgument {
                name: "size",
                reason: format!(
                    "shrinking {} to {new_size} bytes would cut off data (byte {first} is not \
                     zero); pass force to shrink anyway",
                    image.path().display()
                ),
            });
        }
        at += n;
        progress.report("resize", at - new_size, old_size - new_size)?;
    }
    Ok(())
}
