//! Differencing chains made by us: filled by seeded random writes at every level, read back
//! through the chain and compared with a plain `Vec<u8>` model, and (where every write is in
//! whole 4 KiB units, see `shared/FORMAT-NOTES.md`) with libvhdi reading the same chain.
//! Also: a long differential run on the top of a depth-2 chain (its parents must never
//! change), `vhdiinfo` on our children, and the order in which new bitmap bits and BAT
//! entries reach the file.
//!
//! Replay a failing run with `VHD_TEST_SEED=<seed printed by the test>`.

use std::path::{Path, PathBuf};
use std::process::Command;
use vhd_core::{create, CreateOptions, DiskType, Error, Image, VirtualDisk};
use vhd_testkit::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The image at the bottom of a chain.
#[derive(Clone, Copy, Debug)]
enum Base {
    /// A fixed image; the children over it are made with blocks of this size.
    Fixed(u32),
    /// A dynamic image with blocks of this size (its children take the same size).
    Dynamic(u32),
}

impl Base {
    fn block_size(self) -> u32 {
        match self {
            Base::Fixed(b) | Base::Dynamic(b) => b,
        }
    }
}

/// What the writes look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grain {
    /// Every write, at every level, covers whole 4 KiB units at 4 KiB offsets: every byte of
    /// every sector bitmap is all set or all clear, so libvhdi 20210425 reads it right.
    Aligned,
    /// Any offset and length, down to single bytes: judged by the model alone.
    Any,
}

/// A range `(offset, length)` inside a disk of `size` bytes with blocks of `block` bytes,
/// biased towards block boundaries, single sectors and tiny pieces.
fn pick_range(rng: &mut Rng, grain: Grain, size: u64, block: u64) -> (u64, usize) {
    let blocks = size.div_ceil(block);
    let (start, end) = match rng.below(6) {
        // Across a block boundary.
        0 if blocks > 1 => {
            let boundary = rng.range(1, blocks - 1) * block;
            let spread = 20_000.min(block);
            (
                boundary - rng.range(1, spread),
                boundary + rng.range(1, spread),
            )
        }
        // Tiny: 1..511 bytes, often inside one sector, sometimes across two.
        1 => {
            let start = rng.below(size);
            (start, start + rng.range(1, 511))
        }
        // Whole sectors.
        2 => {
            let start = rng.below(size / 512) * 512;
            (start, start + rng.range(1, 24) * 512)
        }
        // Large: up to one and a half blocks.
        3 => {
            let start = rng.below(size);
            (start, start + rng.range(block / 2, block * 3 / 2))
        }
        _ => {
            let start = rng.below(size);
            (start, start + rng.range(1, 70_000))
        }
    };
    let (start, end) = match grain {
        Grain::Any => (start, end.min(size)),
        Grain::Aligned => (
            start / 4096 * 4096,
            end.div_ceil(4096).min(size / 4096) * 4096,
        ),
    };
    let start = start.min(end - 1);
    let start = match grain {
        Grain::Any => start,
        Grain::Aligned => start / 4096 * 4096,
    };
    (start, (end - start) as usize)
}

/// Data for a write of `len` bytes: random, all zeros, or a repeated byte.
fn pick_data(rng: &mut Rng, len: usize) -> Vec<u8> {
    match rng.below(10) {
        0 | 1 => vec![0u8; len],
        2 => vec![rng.range(1, 255) as u8; len],
        _ => rng.bytes(len),
    }
}

/// Reads `len` bytes at `offset` and compares them with the model.
#[track_caller]
fn check_read(image: &Image, model: &[u8], offset: u64, len: usize, what: &str) {
    let mut buf = vec![0xEEu8; len];
    let n = image
        .read_at(&mut buf, offset)
        .unwrap_or_else(|e| panic!("{what}: read {len} at {offset}: {e}"));
    let expected = (model.len() as u64).saturating_sub(offset).min(len as u64) as usize;
    assert_eq!(n, expected, "{what}: length of read {len} at {offset}");
    assert!(
        buf[n..].iter().all(|&b| b == 0xEE),
        "{what}: a short read wrote past its end"
    );
    if n > 0 {
        let start = offset as usize;
        assert_same_bytes(
            &buf[..n],
            &model[start..start + n],
            &format!("{what}: read {len} at {offset}"),
        );
    }
}

/// Reads the whole disk in pieces of random lengths (so that reads start and end anywhere,
/// across blocks and across runs of present and absent sectors) and compares.
fn check_in_odd_pieces(image: &Image, model: &[u8], rng: &mut Rng, what: &str) {
    let mut offset = 0u64;
    while offset < model.len() as u64 {
        let len = match rng.below(4) {
            0 => rng.range(1, 700),
            1 => rng.range(1, 9000),
            _ => rng.range(1, 900_000),
        } as usize;
        check_read(image, model, offset, len, what);
        offset += len as u64;
    }
}

/// Applies `ops` random operations (writes, reads, flushes, reopens) to the image at `path`,
/// keeping `model` up to date. `image` is the open image; it is returned open.
#[allow(clippy::too_many_arguments)]
fn fill_level(
    mut image: Image,
    path: &Path,
    model: &mut [u8],
    rng: &mut Rng,
    grain: Grain,
    block: u64,
    ops: usize,
    what: &str,
) -> Image {
    let size = model.len() as u64;
    let differencing = image.disk_type() == DiskType::Differencing;
    if differencing {
        if grain == Grain::Any {
            // A few bytes into a block the child does not have yet, not on sector
            // boundaries: the rest of the sectors touched must keep the parent's bytes.
            let block_index = rng.below(size / block);
            let Image::Differencing(d) = &image else {
                unreachable!()
            };
            assert_eq!(
                d.bat().get(block_index as u32),
                None,
                "{what}: block allocated"
            );
            let offset = block_index * block + rng.below(block - 1100) + 1;
            let offset = if offset.is_multiple_of(512) {
                offset + 3
            } else {
                offset
            };
            let len = rng.range(1, 1000) as usize;
            let data = rng.bytes(len);
            image.write_at(&data, offset).unwrap();
            model[offset as usize..offset as usize + len].copy_from_slice(&data);
            let around = offset / 512 * 512;
            check_read(
                &image,
                model,
                around,
                ((offset + len as u64).div_ceil(512) * 512 - around) as usize,
                &format!("{what}: unaligned write into a new block"),
            );
        }
        // Zeros written over parent data that is not zero must read as zeros: the child
        // holds them, they do not fall through to the parent.
        let (offset, len) = (0..1000)
            .map(|_| pick_range(rng, grain, size, block))
            .find(|&(o, l)| model[o as usize..o as usize + l].iter().any(|&b| b != 0))
            .expect("no range with parent data to hide");
        image.write_at(&vec![0u8; len], offset).unwrap();
        model[offset as usize..offset as usize + len].fill(0);
        check_read(
            &image,
            model,
            offset,
            len,
            &format!("{what}: zeros over the parent"),
        );
    }
    for op in 0..ops {
        let what = format!("{what}, op {op}");
        match rng.below(100) {
            0..=54 => {
                let (offset, len) = pick_range(rng, grain, size, block);
                let data = pick_data(rng, len);
                image
                    .write_at(&data, offset)
                    .unwrap_or_else(|e| panic!("{what}: write {len} at {offset}: {e}"));
                model[offset as usize..offset as usize + len].copy_from_slice(&data);
            }
            55..=84 => {
                // Reads are not bound by the write grain.
                let (offset, len) = pick_range(rng, Grain::Any, size, block);
                check_read(&image, model, offset, len, &what);
            }
            85..=92 => image.flush().unwrap(),
            _ => {
                image.flush().unwrap();
                drop(image);
                image = open_rw(path);
                check_read(&image, model, 0, model.len(), &format!("{what}: reopened"));
            }
        }
    }
    image
}

/// Builds a chain of `depth` differencing images over `base`, filling every level fully
/// before the next one is made over it, and checks every depth on the way.
fn chain_test(label: &str, base: Base, grain: Grain, size: u64, depth: usize) {
    let use_libvhdi = grain == Grain::Aligned && require_pyvhdi();
    if !require_tool("sha256sum") {
        return;
    }
    let dir = TempDir::new(label);
    let mut rng = Rng::new(&format!("differencing {label}"));
    let block = u64::from(base.block_size());
    let mut model = vec![0u8; size as usize];

    let base_path = dir.join("base.vhd");
    let options = match base {
        Base::Fixed(_) => CreateOptions::new(DiskType::Fixed, size),
        Base::Dynamic(block_size) => CreateOptions {
            block_size,
            ..CreateOptions::new(DiskType::Dynamic, size)
        },
    };
    let mut image = create(&base_path, &options).unwrap();
    // Parent data everywhere in the first half, for the children to cover or let through.
    let data = rng.bytes(size as usize / 2);
    image.write_at(&data, 0).unwrap();
    model[..data.len()].copy_from_slice(&data);
    let image = fill_level(
        image, &base_path, &mut model, &mut rng, grain, block, 80, "base",
    );
    drop(image);
    let mut chain = vec![base_path];
    let mut hashes = vec![sha256_file(&chain[0])];

    for level in 1..=depth {
        let path = dir.join(&format!("child{level}.vhd"));
        let parent = chain.last().unwrap().clone();
        let options = CreateOptions {
            // Used over the fixed base only; a sparse parent's block size wins.
            block_size: base.block_size(),
            ..CreateOptions::differencing(&parent)
        };
        let image = create(&path, &options).unwrap();
        let what = format!("{label}: level {level}");
        assert_eq!(image.disk_type(), DiskType::Differencing, "{what}");
        assert_eq!(image.size(), size, "{what}: the parent's size");
        let Image::Differencing(d) = &image else {
            unreachable!()
        };
        assert_eq!(u64::from(d.block_size()), block, "{what}: block size");
        assert_eq!(d.parent().path(), parent.as_path(), "{what}: parent");
        // A new child reads exactly as its parent.
        assert_same_bytes(&read_all(&image), &model, &format!("{what}: new child"));

        let image = fill_level(image, &path, &mut model, &mut rng, grain, block, 150, &what);
        drop(image);
        chain.push(path);

        // The parents were never written.
        for (file, hash) in chain.iter().zip(&hashes) {
            assert_eq!(
                &sha256_file(file),
                hash,
                "{what}: {} changed",
                file.display()
            );
        }
        hashes.push(sha256_file(chain.last().unwrap()));

        // The whole chain, read by us from a fresh open...
        let top = open_ro(chain.last().unwrap());
        let expected_chain: Vec<&Path> = chain.iter().rev().map(PathBuf::as_path).collect();
        assert_eq!(top.chain(), expected_chain, "{what}: chain");
        assert_same_bytes(&read_all(&top), &model, &format!("{what}: whole disk"));
        check_in_odd_pieces(&top, &model, &mut rng, &format!("{what}: odd pieces"));
        // ...and by libvhdi.
        if use_libvhdi {
            let theirs = libvhdi_read_chain(&chain, &dir);
            assert_same_bytes(&theirs, &model, &format!("{what}: read by libvhdi"));
        }
        println!("{what}: ok");
    }
}

// Sizes end part-way through a block, in whole 4 KiB units.

#[test]
fn aligned_chain_over_a_fixed_base() {
    chain_test(
        "aligned-fixed",
        Base::Fixed(2 << 20),
        Grain::Aligned,
        5 * MIB + 12 * KIB,
        3,
    );
}

#[test]
fn aligned_chain_over_a_dynamic_base_2m_blocks() {
    chain_test(
        "aligned-dyn-2m",
        Base::Dynamic(2 << 20),
        Grain::Aligned,
        5 * MIB + 12 * KIB,
        3,
    );
}

#[test]
fn aligned_chain_over_a_dynamic_base_512k_blocks() {
    chain_test(
        "aligned-dyn-512k",
        Base::Dynamic(512 << 10),
        Grain::Aligned,
        3 * MIB + 12 * KIB,
        3,
    );
}

#[test]
fn unaligned_chain_over_a_fixed_base() {
    // Children over a fixed base take the block size they are given: 512 KiB here.
    chain_test(
        "unaligned-fixed",
        Base::Fixed(512 << 10),
        Grain::Any,
        3 * MIB + 12 * KIB + 1536,
        3,
    );
}

#[test]
fn unaligned_chain_over_a_dynamic_base_2m_blocks() {
    chain_test(
        "unaligned-dyn-2m",
        Base::Dynamic(2 << 20),
        Grain::Any,
        5 * MIB + 12 * KIB + 512,
        3,
    );
}

#[test]
fn unaligned_chain_over_a_dynamic_base_512k_blocks() {
    chain_test(
        "unaligned-dyn-512k",
        Base::Dynamic(512 << 10),
        Grain::Any,
        3 * MIB + 12 * KIB + 3584,
        3,
    );
}

#[test]
fn aligned_chain_with_4k_blocks() {
    // Blocks smaller than their bitmap's sector, over a fixed base.
    chain_test(
        "aligned-fixed-4k",
        Base::Fixed(4096),
        Grain::Aligned,
        MIB + 12 * KIB,
        3,
    );
}

#[test]
fn unaligned_chain_with_4k_blocks() {
    chain_test(
        "unaligned-dyn-4k",
        Base::Dynamic(4096),
        Grain::Any,
        MIB + 12 * KIB + 1536,
        3,
    );
}

#[test]
fn unaligned_chain_with_4m_blocks() {
    // Bitmaps of two sectors.
    chain_test(
        "unaligned-dyn-4m",
        Base::Dynamic(4 << 20),
        Grain::Any,
        9 * MIB + 4 * KIB + 512,
        2,
    );
}

/// Reads from several threads at once through one open chain whose bitmaps are not loaded
/// yet (they are cached as the reads go).
#[test]
fn parallel_reads_through_a_chain() {
    let dir = TempDir::new("diff-parallel");
    let mut rng = Rng::new("differencing parallel_reads_through_a_chain");
    let size = 3 * MIB + 512;
    let block = 512u64 << 10;
    let mut model = vec![0u8; size as usize];
    let base = dir.join("base.vhd");
    let options = CreateOptions {
        block_size: block as u32,
        ..CreateOptions::new(DiskType::Dynamic, size)
    };
    let image = create(&base, &options).unwrap();
    drop(fill_level(
        image,
        &base,
        &mut model,
        &mut rng,
        Grain::Any,
        block,
        40,
        "base",
    ));
    let mid = dir.join("mid.vhd");
    let image = create(&mid, &CreateOptions::differencing(&base)).unwrap();
    drop(fill_level(
        image,
        &mid,
        &mut model,
        &mut rng,
        Grain::Any,
        block,
        40,
        "mid",
    ));
    let top = dir.join("top.vhd");
    let image = create(&top, &CreateOptions::differencing(&mid)).unwrap();
    drop(fill_level(
        image,
        &top,
        &mut model,
        &mut rng,
        Grain::Any,
        block,
        40,
        "top",
    ));

    let image = open_ro(&top);
    let seeds: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
    std::thread::scope(|scope| {
        for (t, seed) in seeds.into_iter().enumerate() {
            let (image, model) = (&image, &model);
            scope.spawn(move || {
                let mut rng = Rng::from_seed(seed);
                for i in 0..300 {
                    let (offset, len) = pick_range(&mut rng, Grain::Any, size, block);
                    check_read(image, model, offset, len, &format!("thread {t}, read {i}"));
                }
            });
        }
    });
}

/// The cases the random runs must hit, spelled out once with known bytes.
#[test]
fn zeros_hide_the_parent_and_partial_sectors_keep_it() {
    let dir = TempDir::new("diff-known");
    let base = dir.join("base.vhd");
    let options = CreateOptions {
        block_size: 512 << 10,
        ..CreateOptions::new(DiskType::Dynamic, 2 * MIB)
    };
    let mut image = create(&base, &options).unwrap();
    image.write_at(&vec![0xBBu8; 2 * MIB as usize], 0).unwrap();
    drop(image);
    let child = dir.join("child.vhd");
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    let mut model = vec![0xBBu8; 2 * MIB as usize];

    // Writing nothing allocates nothing, even at the very end.
    image.write_at(&[], 512 << 10).unwrap();
    image.write_at(&[], 2 * MIB).unwrap();
    let Image::Differencing(d) = &image else {
        unreachable!()
    };
    assert_eq!(d.bat().allocated().count(), 0);
    // Zeros over the parent, in a new block and across a block boundary.
    let at = (512 << 10) - 4096;
    image.write_at(&[0u8; 8192], at).unwrap();
    model[at as usize..at as usize + 8192].fill(0);
    // Three bytes in the middle of a sector of a new block.
    let at = 3 * (512 << 10) + 7 * 512 + 100;
    image.write_at(b"abc", at).unwrap();
    model[at as usize..at as usize + 3].copy_from_slice(b"abc");
    // A write across two sectors, neither complete, in an allocated block.
    let at = 3 * (512 << 10) + 20 * 512 - 10;
    image.write_at(&[0u8; 20], at).unwrap();
    model[at as usize..at as usize + 20].fill(0);
    for round in 0..2 {
        let what = if round == 0 {
            "before reopening"
        } else {
            "reopened"
        };
        let mut sector = [0u8; 1024];
        image
            .read_at(&mut sector, 3 * (512 << 10) + 7 * 512)
            .unwrap();
        assert_eq!(&sector[..100], &[0xBB; 100][..], "{what}");
        assert_eq!(&sector[100..103], b"abc", "{what}");
        assert_eq!(&sector[103..], &[0xBB; 921][..], "{what}");
        assert_same_bytes(&read_all(&image), &model, what);
        drop(image);
        image = open_rw(&child);
    }
}

// ---------------------------------------------------------------------------------------------
// Differential testing on the top of a depth-2 chain

/// Thousands of random reads, writes, flushes and reopens on the top of base → mid → top,
/// compared with a model as they go. The two parents' files must end byte-identical (and
/// with their modification times) to what they were before.
fn differential_depth_two(label: &str, base: Base, size: u64, ops: usize) {
    if !require_tool("sha256sum") {
        return;
    }
    let dir = TempDir::new(label);
    let mut rng = Rng::new(&format!("differencing differential {label}"));
    let block = u64::from(base.block_size());
    let mut model = vec![0u8; size as usize];
    let paths: Vec<PathBuf> = ["base.vhd", "mid.vhd", "top.vhd"]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    let options = match base {
        Base::Fixed(_) => CreateOptions::new(DiskType::Fixed, size),
        Base::Dynamic(block_size) => CreateOptions {
            block_size,
            ..CreateOptions::new(DiskType::Dynamic, size)
        },
    };
    let image = create(&paths[0], &options).unwrap();
    drop(fill_level(
        image,
        &paths[0],
        &mut model,
        &mut rng,
        Grain::Any,
        block,
        25,
        "base",
    ));
    let options = CreateOptions {
        block_size: base.block_size(),
        ..CreateOptions::differencing(&paths[0])
    };
    let image = create(&paths[1], &options).unwrap();
    drop(fill_level(
        image,
        &paths[1],
        &mut model,
        &mut rng,
        Grain::Any,
        block,
        25,
        "mid",
    ));
    drop(create(&paths[2], &CreateOptions::differencing(&paths[1])).unwrap());

    let parents = &paths[..2];
    let before: Vec<(String, std::time::SystemTime)> = parents
        .iter()
        .map(|p| {
            (
                sha256_file(p),
                std::fs::metadata(p).unwrap().modified().unwrap(),
            )
        })
        .collect();

    let top = &paths[2];
    let mut image = open_rw(top);
    let mut read_only = false;
    let (mut writes, mut reads, mut reopens) = (0, 0, 0);
    for op in 0..ops {
        let what = format!("{label}: op {op}");
        match rng.below(100) {
            0..=44 => {
                let (offset, len) = pick_range(&mut rng, Grain::Any, size, block);
                let data = pick_data(&mut rng, len);
                let result = image.write_at(&data, offset);
                if read_only {
                    let e = result.expect_err("a write to a read-only image succeeded");
                    assert!(matches!(e, Error::ReadOnly { .. }), "{what}: {e}");
                    continue;
                }
                result.unwrap_or_else(|e| panic!("{what}: write {len} at {offset}: {e}"));
                model[offset as usize..offset as usize + len].copy_from_slice(&data);
                writes += 1;
            }
            45..=84 => {
                let (offset, len) = match rng.below(20) {
                    // Short reads at the end, and nothing past it.
                    0 => (size - rng.range(1, 3000), rng.range(1, 6000) as usize),
                    1 => (size + rng.below(3), rng.range(1, 100) as usize),
                    _ => pick_range(&mut rng, Grain::Any, size, block),
                };
                check_read(&image, &model, offset, len, &what);
                reads += 1;
            }
            85..=87 => {
                // Past the end: refused, nothing written.
                let offset = size - rng.range(0, 1000);
                let len = (size - offset) as usize + rng.range(1, 1000) as usize;
                let e = image.write_at(&vec![0x55; len], offset).unwrap_err();
                let expected = if read_only {
                    "ERR_VHD_READ_ONLY"
                } else {
                    "ERR_VHD_OUT_OF_RANGE"
                };
                assert_eq!(e.code(), expected, "{what}: {e}");
            }
            88..=95 => image.flush().unwrap(),
            _ => {
                image.flush().unwrap();
                drop(image);
                read_only = rng.chance(15);
                image = if read_only {
                    open_ro(top)
                } else {
                    open_rw(top)
                };
                reopens += 1;
            }
        }
        if op % 500 == 499 {
            assert_same_bytes(&read_all(&image), &model, &format!("{what}: whole disk"));
        }
    }
    drop(image);
    let image = open_ro(top);
    assert_same_bytes(&read_all(&image), &model, &format!("{label}: at the end"));
    drop(image);
    println!("{label}: {writes} writes, {reads} reads, {reopens} reopens");
    assert!(writes > ops / 4 && reads > ops / 4);

    for (path, (hash, modified)) in parents.iter().zip(&before) {
        assert_eq!(&sha256_file(path), hash, "{} was modified", path.display());
        assert_eq!(
            &std::fs::metadata(path).unwrap().modified().unwrap(),
            modified,
            "{}: modification time",
            path.display()
        );
    }
}

#[test]
fn differential_over_a_dynamic_base() {
    differential_depth_two(
        "diff-dyn-512k",
        Base::Dynamic(512 << 10),
        3 * MIB + 5 * 512,
        6000,
    );
}

#[test]
fn differential_over_a_fixed_base() {
    differential_depth_two("diff-fixed", Base::Fixed(2 << 20), 5 * MIB + 512, 4000);
}

// ---------------------------------------------------------------------------------------------
// vhdiinfo on our children

/// The value of `key` in vhdiinfo's `key : value` lines.
fn vhdiinfo_field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key:?} in vhdiinfo output:\n{text}"))
}

#[test]
fn vhdiinfo_describes_our_children() {
    if !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("diff-vhdiinfo");
    let base = dir.join("base disk.vhd");
    let options = CreateOptions {
        block_size: 512 << 10,
        ..CreateOptions::new(DiskType::Dynamic, 3 * MIB)
    };
    drop(create(&base, &options).unwrap());
    let child = dir.join("child.vhd");
    drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
    // A grandchild, larger than its parent.
    let grandchild = dir.join("grandchild.vhd");
    let options = CreateOptions {
        size: 4 * MIB + 512,
        ..CreateOptions::differencing(&child)
    };
    drop(create(&grandchild, &options).unwrap());

    for (path, parent, size) in [
        (&child, &base, 3 * MIB),
        (&grandchild, &child, 4 * MIB + 512),
    ] {
        let (code, text) = run_status(Command::new("vhdiinfo").arg(path));
        assert_eq!(code, 0, "vhdiinfo {}: {text}", path.display());
        let ours = open_ro(path);
        let parent_image = open_ro(parent);
        assert_eq!(vhdiinfo_field(&text, "Disk type"), "Differential", "{text}");
        assert!(
            vhdiinfo_field(&text, "Media size").ends_with(&format!("({size} bytes)")),
            "{text}"
        );
        assert_eq!(
            vhdiinfo_field(&text, "Identifier"),
            vhd_core::footer::format_unique_id(&ours.footer().unique_id),
            "{text}"
        );
        assert_eq!(
            vhdiinfo_field(&text, "Parent identifier"),
            vhd_core::footer::format_unique_id(&parent_image.footer().unique_id),
            "{text}"
        );
        assert_eq!(
            vhdiinfo_field(&text, "Parent filename"),
            parent.file_name().unwrap().to_str().unwrap(),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Durability order, seen through the file's bytes

#[test]
fn new_bits_and_bat_entries_reach_the_file_only_on_flush() {
    let dir = TempDir::new("diff-durability");
    let base = dir.join("base.vhd");
    let block = 512u64 << 10;
    let options = CreateOptions {
        block_size: block as u32,
        ..CreateOptions::new(DiskType::Dynamic, 4 * block)
    };
    let mut image = create(&base, &options).unwrap();
    image
        .write_at(&vec![0x11u8; 4 * block as usize], 0)
        .unwrap();
    drop(image);
    let child = dir.join("child.vhd");
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();

    // Block 1: sectors 0..7 present, flushed.
    image.write_at(&[0xA1u8; 4096], block).unwrap();
    image.flush().unwrap();
    let sector = bat_entry_in_file(&child, 1);
    assert_ne!(sector, 0xFFFF_FFFF);
    let bitmap_at = u64::from(sector) * 512;
    let bitmap = file_bytes(&child, bitmap_at, 512);
    assert_eq!(bitmap[0], 0xFF);
    assert!(bitmap[1..].iter().all(|&b| b == 0), "{:02x?}", &bitmap[..8]);

    // Sector 10 of block 1 (byte 1, bit 0x20): its data goes to the file at once, its bit
    // only to memory.
    let file_before = std::fs::read(&child).unwrap();
    image.write_at(&[0xA2u8; 512], block + 10 * 512).unwrap();
    let bitmap = file_bytes(&child, bitmap_at, 512);
    assert_eq!(bitmap[1], 0, "a new bit reached the file before flush");
    assert_eq!(
        file_bytes(&child, bitmap_at + 512 + 10 * 512, 512),
        vec![0xA2u8; 512],
        "the data is written at once"
    );
    // Reads already see it.
    let mut buf = [0u8; 1024];
    image.read_at(&mut buf, block + 10 * 512 - 512).unwrap();
    assert_eq!(
        &buf[..512],
        &[0x11u8; 512][..],
        "sector 9 comes from the parent"
    );
    assert_eq!(&buf[512..], &[0xA2u8; 512][..], "sector 10 is the child's");

    // Block 3, new: the BAT entry stays 0xFFFFFFFF in the file and its bitmap is not
    // written, while the data is already there and the file still ends with a footer.
    image.write_at(&[0xA3u8; 2048], 3 * block + 4096).unwrap();
    assert_eq!(bat_entry_in_file(&child, 3), 0xFFFF_FFFF);
    let Image::Differencing(d) = &image else {
        unreachable!()
    };
    let new_sector = d.bat().get(3).expect("allocated in memory");
    let new_bitmap_at = u64::from(new_sector) * 512;
    // Its bitmap is not written yet: the file holds there what it held before (the new
    // block went where the footer was, so the old footer's bytes, or a hole of zeros).
    let untouched: Vec<u8> = (new_bitmap_at..new_bitmap_at + 512)
        .map(|i| file_before.get(i as usize).copied().unwrap_or(0))
        .collect();
    assert_eq!(file_bytes(&child, new_bitmap_at, 512), untouched);
    assert_eq!(
        file_bytes(&child, new_bitmap_at + 512 + 4096, 2048),
        vec![0xA3u8; 2048]
    );
    let len = file_len(&child);
    assert_eq!(
        file_bytes(&child, len - 512, 512),
        file_before[..512].to_vec()
    );
    // Nothing else of what was in the file changed: the data of sector 10 aside, the old
    // bytes are all still there (the new block went where the footer was).
    let now = std::fs::read(&child).unwrap();
    let data_10 = (bitmap_at + 512 + 10 * 512) as usize;
    let old_footer = file_before.len() - 512;
    for (i, (a, b)) in file_before.iter().zip(&now).enumerate() {
        if (data_10..data_10 + 512).contains(&i) || i >= old_footer {
            continue;
        }
        assert_eq!(a, b, "byte {i} of the file changed before flush");
    }

    image.flush().unwrap();
    assert_eq!(file_bytes(&child, bitmap_at, 2), vec![0xFF, 0x20]);
    assert_eq!(bat_entry_in_file(&child, 3), new_sector);
    // Sectors 8..11 of block 3 (bytes 4096..6143): byte 1 = 0xF0.
    assert_eq!(file_bytes(&child, new_bitmap_at, 2), vec![0x00, 0xF0]);

    // A drop without flush writes what memory holds, too.
    image.write_at(&[0xA4u8; 512], block + 15 * 512).unwrap();
    assert_eq!(file_bytes(&child, bitmap_at, 2), vec![0xFF, 0x20]);
    drop(image);
    assert_eq!(file_bytes(&child, bitmap_at, 2), vec![0xFF, 0x21]);
    let image = open_ro(&child);
    let mut buf = [0u8; 512];
    image.read_at(&mut buf, block + 15 * 512).unwrap();
    assert_eq!(buf, [0xA4u8; 512]);
}
