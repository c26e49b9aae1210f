//! The repair property, shared by the `repair` fuzz target (`fuzz/`, as
//! `vhd_core_fuzz::repair`) and its bounded run in `cargo test`
//! (`core/tests/repair_property.rs`): take a valid image of
//! each kind (fixed, dynamic, differencing with its parent), damage it, repair it, and
//! require that
//!
//! - a refused repair (`ERR_VHD_REPAIR_REFUSED`) left the file byte for byte as it was;
//! - any other error is a bug (the file is writable, unlocked, and on a local disk);
//! - every sector a reader got from the damaged image (checksums ignored) reads the same
//!   after a repair that was not forced;
//! - after a repair that was not forced and wrote, when the damage was one byte (a flipped
//!   bit, or a byte changed) and the image checks clean, it reads exactly as it did before
//!   the damage, and has the same size: repair restored what was there, it did not bless
//!   damage;
//! - the check a repair reports afterwards is what a check of the file finds;
//! - the parent of a differencing image is never written.
//!
//! Then the same damaged image is repaired with force, which must not fail either (its
//! losses are its report's business).
//!
//! Only `vhd_core`'s public API and `std` are used.

use std::path::{Path, PathBuf};
use vhd_core::ops::{repair_with, RepairOptions};
use vhd_core::{
    check, create, CheckOptions, CreateOptions, DiskType, Error, Image, OpenOptions, VirtualDisk,
};

/// The kinds of image damaged, in the order [`Images::base`] takes them.
pub const KINDS: [&str; 3] = ["fixed", "dynamic", "differencing"];

/// A folder with one valid image of each kind (and the differencing image's parent), and
/// the bytes of each, to damage.
pub struct Images {
    folder: PathBuf,
    bases: Vec<Vec<u8>>,
    parent: Vec<u8>,
}

/// One way of damaging an image.
#[derive(Debug, Clone, Copy)]
pub enum Damage {
    /// XOR the byte at this offset (taken modulo the file's length) with a non-zero mask.
    Xor { offset: u64, mask: u8 },
    /// Cut the file by this many bytes (at most its length less one).
    Cut(u64),
    /// Append this many bytes of 0x5A.
    Grow(u64),
}

impl Images {
    /// Makes the images in `folder` (created if need be; its files are overwritten).
    pub fn new(folder: &Path) -> Images {
        std::fs::create_dir_all(folder).expect("cannot create the repair folder");
        let parent_path = folder.join("parent.vhd");
        let mut parent = CreateOptions::new(DiskType::Dynamic, 512 * 1024);
        parent.block_size = 16 * 1024;
        parent.overwrite = true;
        let mut disk = create(&parent_path, &parent).expect("cannot create the parent");
        fill(&mut disk, 11);
        drop(disk);

        let mut bases = Vec::new();
        for kind in KINDS {
            let path = folder.join(format!("{kind}.vhd"));
            let mut options = match kind {
                "fixed" => CreateOptions::new(DiskType::Fixed, 256 * 1024),
                "dynamic" => {
                    let mut options = CreateOptions::new(DiskType::Dynamic, 512 * 1024);
                    options.block_size = 16 * 1024;
                    options
                }
                _ => CreateOptions::differencing(&parent_path),
            };
            options.overwrite = true;
            let mut disk = create(&path, &options).expect("cannot create an image");
            fill(&mut disk, kind.len() as u64);
            drop(disk);
            bases.push(std::fs::read(&path).expect("cannot read an image"));
        }
        Images {
            folder: folder.to_path_buf(),
            bases,
            parent: std::fs::read(&parent_path).expect("cannot read the parent"),
        }
    }

    /// The valid image of kind `KINDS[kind]`.
    pub fn base(&self, kind: usize) -> &[u8] {
        &self.bases[kind]
    }

    fn path(&self, kind: usize) -> PathBuf {
        self.folder.join(format!("{}.vhd", KINDS[kind]))
    }

    /// Damages the image of kind `kind` as `damage` says, repairs it, and checks the
    /// property (see the module documentation). Returns what is wrong, if anything.
    pub fn check_repair(&self, kind: usize, damage: &[Damage]) -> Result<(), String> {
        let original = &self.bases[kind];
        let mut bytes = original.clone();
        for &d in damage {
            apply(&mut bytes, d);
        }
        let one_byte = damage.len() == 1 && matches!(damage[0], Damage::Xor { .. });
        let path = self.path(kind);
        let what = format!("{} damaged by {damage:?}", KINDS[kind]);
        std::fs::write(&path, &bytes).map_err(|e| format!("{what}: writing: {e}"))?;
        let before = sectors(&path);
        let options = CheckOptions::default();
        match repair_with(&path, &options, &RepairOptions { force: false }) {
            Err(Error::RepairRefused { .. }) => {
                if std::fs::read(&path).map_err(|e| e.to_string())? != bytes {
                    return Err(format!("{what}: a refused repair changed the file"));
                }
            }
            Err(e) => return Err(format!("{what}: repair failed: {e}")),
            Ok(report) => {
                same_check(&path, &report.after).map_err(|e| format!("{what}: {e}"))?;
                let after = sectors(&path);
                if let Some(sector) = changed(&before, &after) {
                    return Err(format!(
                        "{what}: sector {sector}, readable before the repair, reads differently after it\n{report:#?}"
                    ));
                }
                if one_byte && report.changed() && report.after.is_clean() {
                    let expected = sectors_of(original, &path);
                    if after.len() != expected.len()
                        || after
                            .iter()
                            .zip(&expected)
                            .any(|(a, e)| a.is_some() && a != e)
                    {
                        return Err(format!(
                            "{what}: the repaired image checks clean but does not read as before the damage ({} sectors, {} before)\n{report:#?}",
                            after.len(),
                            expected.len()
                        ));
                    }
                }
            }
        }
        // Forced, on the same damage: it may lose data, never fail.
        std::fs::write(&path, &bytes).map_err(|e| format!("{what}: writing: {e}"))?;
        match repair_with(&path, &options, &RepairOptions { force: true }) {
            Ok(report) => {
                same_check(&path, &report.after).map_err(|e| format!("{what} (forced): {e}"))?
            }
            Err(e) => return Err(format!("{what}: forced repair failed: {e}")),
        }
        if kind == 2
            && std::fs::read(self.folder.join("parent.vhd")).map_err(|e| e.to_string())?
                != self.parent
        {
            return Err(format!("{what}: the parent was written"));
        }
        Ok(())
    }
}

/// Writes a pattern into a few places of `disk` (leaving other blocks unallocated).
fn fill(disk: &mut vhd_core::Image, seed: u64) {
    let size = disk.size();
    for i in 0..6u64 {
        let offset = (i * 77_777 + seed * 512) % (size - 4096);
        let data: Vec<u8> = (0..3000u64)
            .map(|j| (i * 31 + j + seed) as u8 | 1)
            .collect();
        disk.write_at(&data, offset).expect("cannot write an image");
    }
    disk.flush().expect("cannot flush an image");
}

fn apply(bytes: &mut Vec<u8>, damage: Damage) {
    match damage {
        Damage::Xor { offset, mask } => {
            if !bytes.is_empty() {
                let at = (offset % bytes.len() as u64) as usize;
                bytes[at] ^= mask.max(1);
            }
        }
        Damage::Cut(n) => {
            let keep = bytes.len().saturating_sub(n as usize).max(1);
            bytes.truncate(keep);
        }
        Damage::Grow(n) => bytes.resize(bytes.len() + n as usize, 0x5A),
    }
}

/// Every sector of the image at `path` as a reader gets it (checksums and the parent's
/// time stamp ignored): `None` where a read fails; empty when the image does not open.
fn sectors(path: &Path) -> Vec<Option<Vec<u8>>> {
    let options = OpenOptions {
        read_only: true,
        ignore_checksums: true,
        ignore_parent_timestamp: true,
        ..OpenOptions::default()
    };
    let Ok(image) = Image::open(path, &options) else {
        return Vec::new();
    };
    let mut sectors = Vec::new();
    let mut buf = [0u8; 512];
    let mut offset = 0;
    while offset < image.size() {
        let length = (image.size() - offset).min(512) as usize;
        sectors.push(
            image
                .read_at(&mut buf[..length], offset)
                .ok()
                .map(|_| buf[..length].to_vec()),
        );
        offset += 512;
    }
    sectors
}

/// [`sectors`] of `bytes`, written at `path` for the time of the read.
fn sectors_of(bytes: &[u8], path: &Path) -> Vec<Option<Vec<u8>>> {
    let saved = std::fs::read(path).expect("cannot read the image");
    std::fs::write(path, bytes).expect("cannot write the image");
    let sectors = sectors(path);
    std::fs::write(path, saved).expect("cannot write the image");
    sectors
}

/// The first sector readable in `before` that does not read the same in `after`.
fn changed(before: &[Option<Vec<u8>>], after: &[Option<Vec<u8>>]) -> Option<usize> {
    before.iter().enumerate().find_map(|(i, sector)| {
        let sector = sector.as_ref()?;
        (after.get(i).and_then(|s| s.as_ref()) != Some(sector)).then_some(i)
    })
}

/// The check a repair reported afterwards must be what a check of the file finds.
fn same_check(path: &Path, after: &vhd_core::CheckReport) -> Result<(), String> {
    let now = check(path, &CheckOptions::default()).map_err(|e| format!("check after: {e}"))?;
    if now.findings() != after.findings() || now.file_size() != after.file_size() {
        return Err(format!(
            "the repair reported a check after it that is not what a check finds:\nreported:\n{after}\nfound:\n{now}"
        ));
    }
    Ok(())
}

/// Damage decoded from fuzzer input: the first byte picks the kind of image, then each
/// 4 bytes are one damage: where (mostly among the structures: the footer, the first 4
/// KiB with the footer copy, dynamic header and BAT, or anywhere), and how.
pub fn decode(data: &[u8], base_len: impl Fn(usize) -> u64) -> Option<(usize, Vec<Damage>)> {
    let (&first, rest) = data.split_first()?;
    let kind = first as usize % KINDS.len();
    let len = base_len(kind);
    let damage = rest
        .chunks_exact(4)
        .take(6)
        .map(|c| {
            let value = u64::from(u16::from_le_bytes([c[1], c[2]]));
            match c[0] % 8 {
                0..=2 => Damage::Xor {
                    offset: len.saturating_sub(512) + value % 512,
                    mask: c[3],
                },
                3..=5 => Damage::Xor {
                    offset: value % 4096,
                    mask: c[3],
                },
                6 => Damage::Xor {
                    offset: value * 64 + u64::from(c[3]),
                    mask: 1 << (c[3] % 8),
                },
                _ => {
                    if c[3] % 2 == 0 {
                        Damage::Cut(value % 40_000)
                    } else {
                        Damage::Grow(value % 40_000)
                    }
                }
            }
        })
        .collect();
    Some((kind, damage))
}
