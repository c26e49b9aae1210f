//! `allocated_ranges` (the allocation map) against `qemu-img map` for fixed and dynamic
//! images made by qemu-img and by us, and for differencing chains against the writes the
//! test made (at known depths, partial sector bitmaps included) and libvhdi's reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use vhd_core::ops::{
    allocated_ranges, allocated_ranges_iter, AllocatedRange, RangeCursor, MAX_LISTED_RANGES,
};
use vhd_core::{create, CreateOptions, DiskType, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;

/// A number field of one `qemu-img map --output=json` entry (one entry per line).
fn json_number(entry: &str, key: &str) -> Option<u64> {
    let at = entry.find(&format!("\"{key}\": "))? + key.len() + 4;
    let digits: String = entry[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `(start, length, file offset)` of the data ranges `qemu-img map` reports, adjacent
/// ones with contiguous file offsets merged (qemu splits a fixed image where the file's
/// holes start and end).
fn qemu_map(image: &Path) -> Vec<(u64, u64, u64)> {
    let out = run_ok(
        Command::new("qemu-img")
            .args(["map", "--output=json", "-f", "vpc"])
            .arg(image),
    );
    let mut ranges: Vec<(u64, u64, u64)> = Vec::new();
    for entry in String::from_utf8(out).unwrap().lines() {
        if !entry.contains("\"data\": true") {
            continue;
        }
        let start = json_number(entry, "start").unwrap();
        let length = json_number(entry, "length").unwrap();
        let offset = json_number(entry, "offset").unwrap();
        match ranges.last_mut() {
            Some(last) if last.0 + last.1 == start && last.2 + last.1 == offset => last.1 += length,
            _ => ranges.push((start, length, offset)),
        }
    }
    ranges
}

fn ours(ranges: &[AllocatedRange]) -> Vec<(u64, u64, u64)> {
    ranges
        .iter()
        .map(|r| {
            assert_eq!(r.depth, 0, "{r:?}: a single image holds everything itself");
            (r.offset, r.length, r.file_offset.unwrap())
        })
        .collect()
}

fn qemu_write(path: &Path, pattern: u8, offset: u64, length: u64) {
    run_ok(Command::new("qemu-io").args([
        "-f",
        "vpc",
        "-c",
        &format!("write -P {pattern} {offset} {length}"),
        path.to_str().unwrap(),
    ]));
}

/// Writes spread over the disk: inside one block, across a block boundary, in the last
/// (partial) block, and a lone sector.
fn writes(size: u64) -> Vec<(u64, u64)> {
    vec![
        (4096, 8192),
        (2 * MIB - 4096, 12288),
        (size - 1024, 1024),
        (5 * MIB + 512, 512),
    ]
}

#[test]
fn qemu_made_images_map_as_qemu_img_maps_them() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("map-qemu");
    // Not a multiple of the 2 MiB block: the last block is clipped.
    let size = 9 * MIB + 3 * 512;
    for subformat in ["dynamic", "fixed"] {
        let path = dir.join(&format!("{subformat}.vhd"));
        qemu_create(&path, subformat, size);
        assert_eq!(
            ours(&allocated_ranges(&open_ro(&path)).unwrap()),
            qemu_map(&path)
        );
        for (i, (offset, length)) in writes(size).into_iter().enumerate() {
            qemu_write(&path, i as u8 + 1, offset, length);
        }
        let map = qemu_map(&path);
        let expected_runs = if subformat == "fixed" { 1 } else { 4 };
        assert_eq!(
            map.len(),
            expected_runs,
            "{subformat}: qemu-img map {map:?}"
        );
        assert_eq!(
            ours(&allocated_ranges(&open_ro(&path)).unwrap()),
            map,
            "{subformat} image made and written by qemu"
        );
    }
}

#[test]
fn our_images_map_as_qemu_img_maps_them() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("map-ours");
    let mut rng = Rng::new("map ours");
    let size = 9 * MIB + 3 * 512;
    let kinds = [
        CreateOptions::new(DiskType::Fixed, size),
        CreateOptions::new(DiskType::Dynamic, size),
        CreateOptions {
            block_size: 512 * 1024,
            ..CreateOptions::new(DiskType::Dynamic, size)
        },
    ];
    for (k, options) in kinds.iter().enumerate() {
        let path = dir.join(&format!("ours{k}.vhd"));
        let mut image = create(&path, options).unwrap();
        // Blocks allocated out of disk order, so that file offsets are not disk offsets.
        let mut spans = writes(size);
        spans.reverse();
        for (offset, length) in spans {
            image.write_at(&rng.bytes(length as usize), offset).unwrap();
        }
        // Unflushed allocations are in the map already.
        let before_flush = allocated_ranges(&image).unwrap();
        image.flush().unwrap();
        assert_eq!(allocated_ranges(&image).unwrap(), before_flush);
        drop(image);
        assert_eq!(
            ours(&allocated_ranges(&open_ro(&path)).unwrap()),
            qemu_map(&path),
            "{options:?}"
        );
    }
}

/// What the test wrote: for each sector, the depth of the image that holds it (0 = top).
struct Model {
    holder: Vec<Option<usize>>,
}

impl Model {
    /// `(offset, length, depth)` runs of equal holders, in disk order.
    fn runs(&self) -> Vec<(u64, u64, usize)> {
        let mut runs: Vec<(u64, u64, usize)> = Vec::new();
        for (sector, holder) in self.holder.iter().enumerate() {
            let Some(depth) = *holder else { continue };
            let offset = sector as u64 * 512;
            match runs.last_mut() {
                Some(last) if last.2 == depth && last.0 + last.1 == offset => last.1 += 512,
                _ => runs.push((offset, 512, depth)),
            }
        }
        runs
    }

    /// Marks `offset..offset + length` as held at `depth` unless a nearer image holds it.
    fn hold(&mut self, offset: u64, length: u64, depth: usize) {
        let first = (offset / 512) as usize;
        let end = ((offset + length).div_ceil(512) as usize).min(self.holder.len());
        for holder in &mut self.holder[first..end] {
            if holder.is_none_or(|d| d > depth) {
                *holder = Some(depth);
            }
        }
    }
}

/// Our ranges with file offsets set aside, runs at the same depth merged.
fn by_depth(ranges: &[AllocatedRange]) -> Vec<(u64, u64, usize)> {
    let mut runs: Vec<(u64, u64, usize)> = Vec::new();
    for r in ranges {
        match runs.last_mut() {
            Some(last) if last.2 == r.depth && last.0 + last.1 == r.offset => last.1 += r.length,
            _ => runs.push((r.offset, r.length, r.depth)),
        }
    }
    runs
}

/// Each range's bytes, read from its file at its file offset, must be what a reader of
/// the whole chain sees at its virtual offset.
fn assert_file_offsets(top: &Image, ranges: &[AllocatedRange], disk: &[u8], what: &str) {
    let chain = top.chain();
    for r in ranges {
        let bytes = file_bytes(chain[r.depth], r.file_offset.unwrap(), r.length as usize);
        let start = r.offset as usize;
        assert_same_bytes(
            &bytes,
            &disk[start..start + r.length as usize],
            &format!("{what}: {r:?} in {}", chain[r.depth].display()),
        );
    }
}

/// A dynamic base (depth 2), a child (depth 1) and a grandchild (depth 0), each written in
/// whole 4 KiB units, so that libvhdi reads the chain right.
#[test]
fn a_chain_maps_to_the_images_that_hold_each_sector() {
    if !require_pyvhdi() {
        return;
    }
    let dir = TempDir::new("map-chain");
    let mut rng = Rng::new("map chain");
    let size = 12 * MIB + 4096;
    let block = 2 * MIB;
    let mut model = Model {
        holder: vec![None; (size / 512) as usize],
    };
    // Writes per level, top (depth 0) first; a dynamic base holds whole blocks.
    let levels: [&[(u64, u64)]; 3] = [
        &[
            (0, 4096),
            (3 * MIB, 64 * 1024),
            (size - 4096, 4096),
            (7 * MIB, 4096),
        ],
        &[(0, 3 * MIB), (7 * MIB - 8192, 16384), (9 * MIB, 4096)],
        &[(MIB, 4096), (6 * MIB, 2 * MIB + 4096), (size - 8192, 4096)],
    ];
    let paths: Vec<PathBuf> = ["base.vhd", "child.vhd", "top.vhd"]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    for (level, path) in paths.iter().enumerate() {
        let depth = 2 - level;
        let options = match level {
            0 => CreateOptions::new(DiskType::Dynamic, size),
            _ => CreateOptions::differencing(&paths[level - 1]),
        };
        let mut image = create(path, &options).unwrap();
        for &(offset, length) in levels[depth] {
            image.write_at(&rng.bytes(length as usize), offset).unwrap();
            if depth == 2 {
                let first = offset / block * block;
                let end = ((offset + length).div_ceil(block) * block).min(size);
                model.hold(first, end - first, depth);
            } else {
                model.hold(offset, length, depth);
            }
        }
        image.flush().unwrap();
    }
    let top = open_ro(&paths[2]);
    let ranges = allocated_ranges(&top).unwrap();
    assert_eq!(by_depth(&ranges), model.runs(), "ranges by depth");
    for depth in 0..3 {
        assert!(
            ranges.iter().any(|r| r.depth == depth),
            "depth {depth} holds data"
        );
    }
    let disk = libvhdi_read_chain(&paths, &dir);
    assert_same_bytes(&read_all(&top), &disk, "our read of the chain vs libvhdi's");
    assert_file_offsets(&top, &ranges, &disk, "chain");
}

/// Single sectors and odd runs leave sector bitmap bytes partly set; the map follows the
/// bits exactly. (libvhdi misreads such chains, so the contents are checked against what
/// the test wrote.)
#[test]
fn partial_sector_bitmaps_map_sector_by_sector() {
    let dir = TempDir::new("map-partial");
    let mut rng = Rng::new("map partial");
    let size = 6 * MIB;
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let mut disk = vec![0u8; size as usize];
    let mut model = Model {
        holder: vec![None; (size / 512) as usize],
    };
    let mut image = create(&base, &CreateOptions::new(DiskType::Fixed, size)).unwrap();
    let data = rng.bytes(size as usize);
    image.write_at(&data, 0).unwrap();
    disk.copy_from_slice(&data);
    model.hold(0, size, 1);
    drop(image);

    let mut image = create(
        &child,
        &CreateOptions {
            block_size: 512 * 1024,
            ..CreateOptions::differencing(&base)
        },
    )
    .unwrap();
    for _ in 0..60 {
        let offset = rng.below(size / 512) * 512;
        let length = (rng.range(1, 12) * 512).min(size - offset);
        let bytes = rng.bytes(length as usize);
        image.write_at(&bytes, offset).unwrap();
        disk[offset as usize..(offset + length) as usize].copy_from_slice(&bytes);
        for sector in offset / 512..(offset + length) / 512 {
            model.holder[sector as usize] = Some(0);
        }
    }
    let unflushed = allocated_ranges(&image).unwrap();
    image.flush().unwrap();
    drop(image);
    let top = open_ro(&child);
    let ranges = allocated_ranges(&top).unwrap();
    assert_eq!(ranges, unflushed, "the map before the flush");
    assert_eq!(by_depth(&ranges), model.runs(), "ranges by depth");
    assert_same_bytes(&read_all(&top), &disk, "our read of the chain");
    assert_file_offsets(&top, &ranges, &disk, "partial bitmaps");
    // The fixed base holds its data at the disk's own offsets.
    for r in ranges.iter().filter(|r| r.depth == 1) {
        assert_eq!(r.file_offset, Some(r.offset), "{r:?}");
    }
}

/// A child larger than its parent: past the parent's end, only what the child holds.
#[test]
fn nothing_is_mapped_past_a_smaller_parents_end() {
    let dir = TempDir::new("map-larger");
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let mut image = create(&base, &CreateOptions::new(DiskType::Fixed, 3 * MIB)).unwrap();
    image.write_at(&[7u8; 4096], 0).unwrap();
    drop(image);
    let mut image = create(
        &child,
        &CreateOptions {
            size: 8 * MIB,
            ..CreateOptions::differencing(&base)
        },
    )
    .unwrap();
    image.write_at(&[9u8; 4096], 5 * MIB).unwrap();
    image.flush().unwrap();
    let runs = by_depth(&image.allocated_ranges().unwrap());
    assert_eq!(runs, vec![(0, 3 * MIB, 1), (5 * MIB, 4096, 0)]);
}

/// The Windows (diskpart) child of the corpus, whose parent is lost, over a raw stand-in:
/// the sectors it holds are the ones the corpus README lists from its bitmap (134, 143,
/// 152–159, 184–185, 188, 190–192, 194, 196); the raw base holds everything else.
#[test]
fn a_windows_child_maps_the_sectors_its_bitmap_holds() {
    let Some(corpus) = corpus_dir() else {
        return;
    };
    let dir = TempDir::new("map-windows");
    let child = corpus.join("dfvfs/fat-differential.vhd");
    let raw = dir.join("standin.raw");
    std::fs::write(&raw, vec![0u8; 4 << 20]).unwrap();
    let image = Image::open(
        &child,
        &OpenOptions {
            read_only: true,
            parents: vec![vhd_core::ParentPath::Raw(raw)],
            ..Default::default()
        },
    )
    .unwrap();
    let ranges = allocated_ranges(&image).unwrap();
    let held: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|r| r.depth == 0)
        .map(|r| (r.offset / 512, r.length / 512))
        .collect();
    let listed = [
        (134, 1),
        (143, 1),
        (152, 8),
        (184, 2),
        (188, 1),
        (190, 3),
        (194, 1),
        (196, 1),
    ];
    assert_eq!(held, listed);
    let base: u64 = ranges
        .iter()
        .filter(|r| r.depth == 1)
        .map(|r| r.length)
        .sum();
    assert_eq!(base, image.size() - 18 * 512, "the raw base holds the rest");
}

/// A crafted image with millions of runs is mapped with bounded memory: the iterator holds
/// at most a window's ranges, and the list form refuses past its bound, pointing at the
/// iterator, rather than build them all.
#[test]
fn millions_of_ranges_are_iterated_in_bounded_memory_and_refused_as_a_list() {
    let dir = TempDir::new("map-alternating");
    // 513 blocks of 2048 ranges: just past the list's bound of 2^20.
    let blocks = 513;
    let path = alternating_bitmaps(dir.path(), blocks);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let on_disk = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            on_disk < 16 * MIB,
            "{on_disk} bytes on disk: the data areas are holes"
        );
    }
    let image = open_ro(&path);

    let mut ranges = allocated_ranges_iter(&image);
    let mut count = 0u64;
    let mut most_held = 0;
    while let Some(range) = ranges.next() {
        let range = range.unwrap();
        most_held = most_held.max(ranges.held());
        // Sector 2k of the disk, at depth 0: odd sectors are held nowhere.
        assert_eq!(
            (range.offset, range.length, range.depth),
            (count * 1024, 512, 0)
        );
        count += 1;
    }
    assert_eq!(count, u64::from(blocks) * 2048);
    assert!(
        most_held <= RangeCursor::MAX_HELD,
        "{most_held} ranges held at once (bound {})",
        RangeCursor::MAX_HELD
    );

    let error = allocated_ranges(&image).unwrap_err();
    assert_eq!(error.code(), "ERR_VHD_TOO_MANY_RANGES");
    assert_mentions(
        &error.to_string(),
        &[
            path.to_str().unwrap(),
            &MAX_LISTED_RANGES.to_string(),
            "allocatedRanges()",
            "iterate",
        ],
    );
}

/// The cursor that the JavaScript iterator resumes between batches gives exactly the ranges
/// of one walk, on a chain whose runs cross the windows the walk works in.
#[test]
fn a_resumed_cursor_gives_the_ranges_of_one_walk() {
    let dir = TempDir::new("map-cursor");
    let mut rng = Rng::new("map cursor");
    let size = 21 * MIB;
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    let mut image = create(&base, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    for (offset, length) in [(0, 9 * MIB), (12 * MIB - 512, 3 * MIB)] {
        image.write_at(&rng.bytes(length as usize), offset).unwrap();
    }
    drop(image);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    for _ in 0..200 {
        let offset = rng.below(size / 512) * 512;
        let length = (rng.range(1, 40) * 512).min(size - offset);
        image.write_at(&rng.bytes(length as usize), offset).unwrap();
    }
    // A run across the window boundary at 4 MiB, and one across 16 MiB.
    image
        .write_at(&rng.bytes(MIB as usize), 4 * MIB - 4096)
        .unwrap();
    image.write_at(&rng.bytes(8192), 16 * MIB - 512).unwrap();
    image.flush().unwrap();
    drop(image);
    let top = open_ro(&child);
    let walked: Vec<AllocatedRange> = allocated_ranges_iter(&top).map(Result::unwrap).collect();
    assert_eq!(allocated_ranges(&top).unwrap(), walked);
    let mut cursor = RangeCursor::new();
    let mut resumed = Vec::new();
    while !cursor.is_finished() {
        let before = resumed.len();
        cursor.next_ranges(&top, &mut resumed).unwrap();
        assert!(resumed.len() - before <= RangeCursor::MAX_HELD);
    }
    assert_eq!(resumed, walked);
    // A walk of one range finds the same ranges, clipped to it (what NBD block status asks).
    for _ in 0..50 {
        let start = rng.below(size);
        let end = rng.range(start + 1, size + 1);
        let clipped: Vec<AllocatedRange> = walked
            .iter()
            .filter(|r| r.offset < end && r.offset + r.length > start)
            .map(|r| {
                let lo = r.offset.max(start);
                let hi = (r.offset + r.length).min(end);
                AllocatedRange {
                    offset: lo,
                    length: hi - lo,
                    file_offset: r.file_offset.map(|f| f + (lo - r.offset)),
                    ..*r
                }
            })
            .collect();
        let mut cursor = RangeCursor::range(start, end);
        let mut found = Vec::new();
        while !cursor.is_finished() {
            cursor.next_ranges(&top, &mut found).unwrap();
        }
        assert_eq!(found, clipped, "{start}..{end}");
    }
    // Every sector held is in exactly one range, in disk order, none overlapping.
    for pair in walked.windows(2) {
        assert!(
            pair[0].offset + pair[0].length <= pair[1].offset,
            "{pair:?}"
        );
    }
    assert!(walked.iter().any(|r| r.depth == 0) && walked.iter().any(|r| r.depth == 1));
}
