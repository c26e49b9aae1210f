//! Growing and shrinking images.

use super::Progress;
use crate::error::{Error, Result};
use crate::image::COPY_CHUNK;
use crate::zeros::is_all_zero;
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
/// and CHS geometry (computed for the new size, as [`crate::create()`] does) change; the
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
///   image), unless `options.force`. The blocks past the new end are freed: their BAT
///   entries are unallocated (and made durable), then the footer records the new size,
///   then the blocks at the end of the file are moved into the freed space (each copied
///   and made durable before its BAT entry points at the copy) and the file is cut after
///   the last block (the footer written there first). The part of the new last
///   block past the new end is cleared (zeros in a dynamic image, absent sectors in a
///   differencing one), so that growing again later shows zeros (a differencing image:
///   the parent's data), never the data cut off.
///
/// The scan of the part cut off reports progress and may be cancelled; nothing has been
/// changed then. Each step after it is made durable before the next one starts, in an
/// order that leaves a valid image (of the old or the new size) at every instant; the
/// footer at the end, which readers use, is written before its copy at offset 0, so a
/// crash between the two leaves a copy that `check` reports as differing (the image reads
/// right; rewriting the copy repairs it). The
/// image is opened with an exclusive lock: an image open elsewhere is refused
/// ([`Error::Locked`]).
pub fn resize(
    path: &Path,
    new_size: u64,
    options: &ResizeOptions,
    progress: Progress,
) -> Result<ResizeReport> {
    resize_unnamed(path, new_size, options, progress).map_err(|e| e.in_file(path))
}

/// [`resize`], whose I/O errors may not name the file yet.
fn resize_unnamed(
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
    let image = Image::open(path, &options.open)?;
    let old_size = resize_image(image, new_size, options, progress)?;
    let file_size = std::fs::metadata(path)
        .map_err(|e| Error::io_at(path, "fstat", "reading the size", e))?
        .len();
    Ok(ResizeReport {
        old_size,
        new_size,
        file_size,
    })
}

/// [`resize`] of the image held by `file` (at `path`, which names it and leads to its
/// parents): the injection point of the crash tests, which hand in a storage that dies or
/// loses power after any write. Not a stable interface.
#[doc(hidden)]
pub fn resize_through(
    file: Box<dyn crate::Storage>,
    path: &Path,
    new_size: u64,
    options: &ResizeOptions,
    progress: Progress,
) -> Result<()> {
    let image = Image::open_storage(file, path, &options.open)?;
    resize_image(image, new_size, options, progress).map(drop)
}

/// Resizes the open `image`; returns its old size.
fn resize_image(
    mut image: Image,
    new_size: u64,
    options: &ResizeOptions,
    progress: Progress,
) -> Result<u64> {
    if let Some(reason) = image.read_only_reason() {
        return Err(Error::ReadOnly {
            path: None,
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
    Ok(old_size)
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
            return Err(Error::ShrinkRefused {
                path: image.path().to_path_buf(),
                new_size,
                first_data: first,
            });
        }
        at += n;
        progress.report("resize", at - new_size, old_size - new_size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Crash safety: the resize of a sparse image killed after any number of writes leaves
    //! an image that opens, that `check` finds not corrupt, and that reads as before (at
    //! the old or the new size).

    use crate::storage::FaultStorage;
    use crate::VirtualDisk;
    use crate::{
        check, create, CheckOptions, CreateOptions, DiskType, FindingKind, Image, OpenOptions,
    };
    use std::path::PathBuf;

    const BLOCK: u64 = 256 * 1024;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("vhd-core-resize-{}-{name}", std::process::id()))
    }

    fn set_size(image: &mut Image, size: u64) -> crate::Result<()> {
        match image {
            Image::Dynamic(dynamic) => dynamic.sparse_mut().set_size(size),
            Image::Differencing(child) => child.sparse_mut().set_size(size),
            Image::Fixed(fixed) => fixed.set_size(size),
        }
    }

    /// A dynamic image of 128 blocks of 256 KiB (a full 512-byte BAT): data in blocks
    /// 0, 1, 2 (right after the BAT) and 60, zeros in block 100, written first.
    fn image_bytes(path: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
        let options = CreateOptions {
            block_size: BLOCK as u32,
            overwrite: true,
            ..CreateOptions::new(DiskType::Dynamic, 128 * BLOCK)
        };
        let mut image = create(path, &options).unwrap();
        let mut contents = vec![0u8; 128 * BLOCK as usize];
        image.write_at(&[1], 100 * BLOCK).unwrap();
        image.write_at(&[0], 100 * BLOCK).unwrap();
        for block in [0u64, 1, 2, 60] {
            let data: Vec<u8> = (0..BLOCK).map(|i| (i * 7 + block) as u8 | 1).collect();
            image.write_at(&data, block * BLOCK).unwrap();
            contents[(block * BLOCK) as usize..][..BLOCK as usize].copy_from_slice(&data);
        }
        drop(image);
        (std::fs::read(path).unwrap(), contents)
    }

    fn killed_at_every_write(name: &str, new_size: u64) {
        let path = temp_path(name);
        let (original, contents) = image_bytes(&path);
        let open = |file: FaultStorage| {
            let options = OpenOptions {
                lock: false,
                ..Default::default()
            };
            Image::open_storage(Box::new(file), &path, &options).unwrap()
        };
        let counter = FaultStorage::in_memory(original.clone());
        set_size(&mut open(counter.clone()), new_size).unwrap();
        let total = counter.changes();
        let mut stale_copies = 0;
        for die_after in 0..=total {
            let file = FaultStorage::in_memory(original.clone());
            if die_after < total {
                // (After its last write, death would still fail the syncs that follow.)
                file.die_after(die_after);
            }
            let result = set_size(&mut open(file.clone()), new_size);
            assert_eq!(
                result.is_ok(),
                die_after == total,
                "killed after {die_after}"
            );
            std::fs::write(&path, file.after_death().unwrap()).unwrap();
            // Between the footer at the end and its copy at offset 0, the copy describes
            // the other size; the end footer rules. That is a state of its own, repairable
            // and no damage (`footer-copy-stale`, a leak); nothing else may be wrong.
            let report = check(&path, &CheckOptions::default()).unwrap();
            assert!(
                !report.has_corruption(),
                "killed after {die_after}: {report}"
            );
            let copy_stale = report.count_of(FindingKind::FooterCopyStale) > 0;
            stale_copies += usize::from(copy_stale);
            let image = Image::open(&path, &OpenOptions::default()).unwrap();
            let size = image.size();
            assert!(
                size == new_size || size == contents.len() as u64,
                "size {size}"
            );
            let mut read = vec![0u8; size as usize];
            image.read_at(&mut read, 0).unwrap();
            let common = read.len().min(contents.len());
            assert!(
                read[..common] == contents[..common],
                "killed after {die_after}"
            );
            assert!(
                read[common..].iter().all(|&b| b == 0),
                "killed after {die_after}"
            );
            if die_after == total {
                assert_eq!(report.exit_code(), 0, "{report}");
            }
            drop(image);
            if copy_stale {
                crate::ops::repair(&path, &CheckOptions::default()).unwrap();
                let repaired = check(&path, &CheckOptions::default()).unwrap();
                assert!(
                    repaired.count_of(FindingKind::FooterCopyStale) == 0
                        && !repaired.has_corruption(),
                    "killed after {die_after}, repaired: {repaired}"
                );
            }
        }
        assert!(
            stale_copies > 0,
            "no kill fell between the footer and its copy"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_grow_that_moves_blocks_for_the_bat_survives_being_killed_anywhere() {
        killed_at_every_write("grow", 140 * BLOCK);
    }

    #[test]
    fn a_shrink_that_moves_blocks_survives_being_killed_anywhere() {
        killed_at_every_write("shrink", 64 * BLOCK);
    }
}
