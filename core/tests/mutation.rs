//! Hostile images: small valid images of every kind (fixed, dynamic with small and large
//! blocks, a differencing child over a dynamic parent, and that parent), damaged by more
//! than 39,000 seeded mutations in all: bit flips and random bytes in the footer, its copy,
//! the dynamic header, the BAT, the parent locators and the sector bitmaps; fields set to
//! edge values (often with the checksum fixed, so that the damage gets past it); BAT entries
//! pointed at each other, at the metadata and out of the file; swapped blocks; truncation
//! and garbage appended. Each is opened read-only and read (the start of the disk, then
//! random pieces), and must give data or an error, never a panic, in bounded time and
//! memory (no single allocation much larger than the file), with the file unchanged.
//! Sparse images that still open read-write (some cut short so that the disk ends inside
//! the last block, with the footer or a parent locator's data in the rest of its last
//! sector) are also written: the footer and the locators survive every write.
//!
//! Partition tables inside the disk (GPT with 128- and 256-byte entries, an MBR with a
//! chain of EBRs) get 7,500 seeded mutations of their own: bit flips, random bytes, fields
//! set to edge values (with the CRCs fixed after the damage more often than not), EBR links
//! pointed at each other, the disk cut or grown; every table reads in bounded time and
//! memory, keeps its promises (`check_table`), and reads the same through a dynamic VHD.
//!
//! Also: [`OpenOptions::parent_root`] keeps parents that a child names outside a folder
//! unopened, and the inputs the fuzzer (`fuzz/`) found stay fixed.
//!
//! A failure prints the seed, the case and its mutations; `VHD_TEST_SEED=<seed>` replays
//! the run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vhd_core::sector_bitmap::bitmap_size;
use vhd_core::{
    create, BlockAllocationTable, CreateOptions, DiskType, DynamicHeader, Error, Footer, Image,
    MemoryStorage, OpenOptions, ParentPath, VirtualDisk,
};
use vhd_testkit::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

// ---------------------------------------------------------------------------------------------
// The largest single allocation, per thread

/// The system allocator, noting the largest allocation each thread makes.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: nothing to note while the thread is being torn down.
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns what it returns with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let value = f();
    (value, LARGEST.with(|l| l.get()))
}

// ---------------------------------------------------------------------------------------------
// The valid images and where their structures are

/// A valid image and the byte ranges of its structures.
struct Base {
    bytes: Vec<u8>,
    disk_type: DiskType,
    /// Named byte ranges of the file to damage.
    regions: Vec<(&'static str, Range<usize>)>,
    /// For dynamic and differencing images.
    sparse: Option<Sparse>,
}

struct Sparse {
    header_offset: usize,
    table_offset: usize,
    entries: usize,
    block_size: u64,
    bitmap_size: usize,
    /// (block, first sector) of every allocated block.
    allocated: Vec<(u32, u32)>,
    /// Parent locator entries in use.
    used_locators: Vec<usize>,
}

impl Base {
    fn read(path: &Path) -> Base {
        let bytes = std::fs::read(path).unwrap();
        let len = bytes.len();
        let footer = Footer::parse(bytes[len - 512..].try_into().unwrap(), 0).unwrap();
        let disk_type = footer.disk_type().unwrap();
        let mut regions = vec![
            ("footer", len - 512..len),
            ("first sector", 0..512),
            ("anywhere", 0..len),
        ];
        let sparse = (disk_type != DiskType::Fixed).then(|| {
            let header_offset = footer.data_offset as usize;
            let header = DynamicHeader::parse(
                bytes[header_offset..header_offset + 1024]
                    .try_into()
                    .unwrap(),
                0,
            )
            .unwrap();
            let table_offset = header.table_offset as usize;
            let entries = header.max_table_entries as usize;
            let bat = BlockAllocationTable::parse(&bytes[table_offset..table_offset + 4 * entries]);
            let bitmap_size = bitmap_size(header.block_size) as usize;
            regions.push(("header", header_offset..header_offset + 1024));
            regions.push(("header fields", header_offset..header_offset + 64));
            regions.push(("locator entries", header_offset + 576..header_offset + 768));
            regions.push(("BAT", table_offset..table_offset + 4 * entries));
            for locator in header.parent_locators.iter().filter(|l| !l.is_empty()) {
                let start = locator.platform_data_offset as usize;
                regions.push((
                    "locator data",
                    start..start + locator.platform_data_length as usize,
                ));
            }
            let allocated: Vec<(u32, u32)> = bat.allocated().collect();
            for &(_, sector) in &allocated {
                let start = sector as usize * 512;
                regions.push(("bitmap", start..start + bitmap_size));
                regions.push((
                    "block data",
                    start + bitmap_size
                        ..(start + bitmap_size + header.block_size as usize).min(len - 512),
                ));
            }
            Sparse {
                header_offset,
                table_offset,
                entries,
                block_size: u64::from(header.block_size),
                bitmap_size,
                allocated,
                used_locators: (0..8)
                    .filter(|&i| !header.parent_locators[i].is_empty())
                    .collect(),
            }
        });
        Base {
            bytes,
            disk_type,
            regions,
            sparse,
        }
    }
}

/// Writes `chunks` of `(offset, length)` with random data into `disk`, then closes it.
fn fill(mut disk: Image, rng: &mut Rng, chunks: &[(u64, usize)]) {
    for &(offset, length) in chunks {
        disk.write_at(&rng.bytes(length), offset).unwrap();
    }
    disk.flush().unwrap();
}

/// The images every test damages, made in `dir` with a fixed seed (the mutations vary, the
/// images do not).
struct Images {
    dir: TempDir,
    fixed: PathBuf,
    dynamic_small: PathBuf,
    dynamic_large: PathBuf,
    parent: PathBuf,
    child: PathBuf,
}

fn images(label: &str) -> Images {
    let dir = TempDir::new(label);
    let mut rng = Rng::from_seed(0x5EED);

    let fixed = dir.join("fixed.vhd");
    let disk = create(&fixed, &CreateOptions::new(DiskType::Fixed, MIB)).unwrap();
    fill(disk, &mut rng, &[(0, MIB as usize)]);

    // 4 KiB blocks; the last one partial (the size is not a whole number of blocks).
    let dynamic_small = dir.join("dynamic-4k.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, MIB + 1536);
    options.block_size = 4096;
    let disk = create(&dynamic_small, &options).unwrap();
    let chunks: Vec<(u64, usize)> = (0..40)
        .map(|i| ((i * 37 % 257) * 4096 + i * 13, 3000))
        .chain([(MIB, 1536)])
        .collect();
    fill(disk, &mut rng, &chunks);

    // 64 KiB blocks.
    let dynamic_large = dir.join("dynamic-64k.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, 2 * MIB);
    options.block_size = 64 * 1024;
    let disk = create(&dynamic_large, &options).unwrap();
    fill(
        disk,
        &mut rng,
        &[
            (0, 70_000),
            (300_000, 5000),
            (1_500_000, 200_000),
            (2 * MIB - 10, 10),
        ],
    );

    // A parent with 16 KiB blocks, and a child over it written in pieces of sectors (so
    // that its bitmaps are partly set).
    let parent = dir.join("parent.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, MIB);
    options.block_size = 16 * 1024;
    let disk = create(&parent, &options).unwrap();
    fill(
        disk,
        &mut rng,
        &[(0, 100_000), (500_000, 50_000), (MIB - 700, 700)],
    );
    let child = dir.join("child.vhd");
    let disk = create(&child, &CreateOptions::differencing(&parent)).unwrap();
    let chunks: Vec<(u64, usize)> = (0..30)
        .map(|i| (i * 33_331 % MIB, 1 + (i as usize * 797) % 9000))
        .collect();
    fill(disk, &mut rng, &chunks);

    Images {
        dir,
        fixed,
        dynamic_small,
        dynamic_large,
        parent,
        child,
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// Values that break arithmetic and bounds checks.
fn edge_value(rng: &mut Rng, len: u64, block_size: u64) -> u64 {
    let values = [
        0,
        1,
        2,
        3,
        4,
        511,
        512,
        513,
        1024,
        1536,
        4095,
        4096,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFE,
        0xFFFF_FFFF,
        1 << 32,
        1 << 40,
        1 << 63,
        u64::MAX,
        u64::MAX - 511,
        u64::MAX - 1024,
        len,
        len - 512,
        len - 511,
        len + 512,
        len / 512,
        len / 512 - 1,
        len / 512 + 1,
        block_size,
        block_size * 2,
        block_size / 2,
        block_size * 1024,
        1 << 28,
        1 << 29,
        1 << 31,
    ];
    match rng.below(5) {
        0 => rng.next_u64(),
        1 => rng.next_u64() & 0xFFFF_FFFF,
        2 => rng.below(len + 1024),
        _ => values[rng.below(values.len() as u64) as usize],
    }
}

fn write_be(bytes: &mut [u8], at: usize, width: usize, value: u64) {
    if at + width <= bytes.len() {
        bytes[at..at + width].copy_from_slice(&value.to_be_bytes()[8 - width..]);
    }
}

/// Footer fields (offset, width): data offset, original and current size, geometry, type.
const FOOTER_FIELDS: [(usize, usize); 6] = [(16, 8), (40, 8), (48, 8), (56, 4), (60, 4), (8, 4)];
/// Header fields: data offset, table offset, version, max table entries, block size,
/// parent time stamp.
const HEADER_FIELDS: [(usize, usize); 6] = [(8, 8), (16, 8), (24, 4), (28, 4), (32, 4), (56, 4)];

const LOCATOR_CODES: [&[u8; 4]; 6] = [b"W2ku", b"W2ru", b"Wi2k", b"Wi2r", b"MacX", b"Mac "];

/// Applies one random mutation to `bytes` and says what it did.
fn mutate_once(base: &Base, bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let len = bytes.len() as u64;
    let block_size = base.sparse.as_ref().map_or(4096, |s| s.block_size);
    let pick_region = |rng: &mut Rng| {
        let (name, range) = &base.regions[rng.below(base.regions.len() as u64) as usize];
        (*name, range.clone())
    };
    let choice = rng.below(90);
    match choice {
        // Bit flips in a structure.
        0..=19 => {
            let (name, range) = pick_region(rng);
            let flips = rng.range(1, 8);
            let mut done = Vec::new();
            for _ in 0..flips {
                let at = rng.range(range.start as u64, range.end as u64 - 1) as usize;
                let bit = rng.below(8);
                if at < bytes.len() {
                    bytes[at] ^= 1 << bit;
                }
                done.push(format!("{at}:{bit}"));
            }
            format!("flip bits in the {name}: {}", done.join(" "))
        }
        // Random bytes in a structure.
        20..=29 => {
            let (name, range) = pick_region(rng);
            let at = rng.range(range.start as u64, range.end as u64 - 1) as usize;
            let n = rng.range(1, 32) as usize;
            let end = (at + n).min(bytes.len());
            let garbage = rng.bytes(end.saturating_sub(at));
            if at < end {
                bytes[at..end].copy_from_slice(&garbage);
            }
            format!("random bytes in the {name} at {at}..{end}")
        }
        // A footer field set to an edge value, in the end footer, its copy, or both.
        30..=44 => {
            let (at, width) = FOOTER_FIELDS[rng.below(FOOTER_FIELDS.len() as u64) as usize];
            let value = edge_value(rng, len, block_size);
            let where_ = rng.below(3);
            let end = bytes.len() - 512;
            if where_ != 1 {
                write_be(&mut bytes[end..], at, width, value);
            }
            if where_ != 0 {
                write_be(&mut bytes[..512], at, width, value);
            }
            let names = ["end footer", "footer copy", "both footers"];
            format!(
                "footer field at +{at} = {value:#x} in the {}",
                names[where_ as usize]
            )
        }
        // A header field set to an edge value.
        45..=52 => match &base.sparse {
            Some(s) => {
                let (at, width) = HEADER_FIELDS[rng.below(HEADER_FIELDS.len() as u64) as usize];
                let value = edge_value(rng, len, block_size);
                write_be(&mut bytes[s.header_offset..], at, width, value);
                format!("header field at +{at} = {value:#x}")
            }
            None => mutate_once(base, bytes, rng),
        },
        // A parent locator entry's code, space, length or offset set to an edge value;
        // mostly in an entry that is in use.
        53..=59 => match &base.sparse {
            Some(s) => {
                let entry = if rng.chance(75) && !s.used_locators.is_empty() {
                    s.used_locators[rng.below(s.used_locators.len() as u64) as usize]
                } else {
                    rng.below(8) as usize
                };
                let fields = [(0, 4), (4, 4), (8, 4), (16, 8)];
                let (at, width) = fields[rng.below(4) as usize];
                let lengths = [
                    0,
                    1,
                    2,
                    3,
                    511,
                    512,
                    513,
                    65_535,
                    65_536,
                    65_537,
                    0xFFFF_FFFF,
                ];
                let value = match at {
                    0 if rng.chance(70) => u64::from(u32::from_be_bytes(
                        *LOCATOR_CODES[rng.below(LOCATOR_CODES.len() as u64) as usize],
                    )),
                    4 | 8 if rng.chance(50) => lengths[rng.below(lengths.len() as u64) as usize],
                    16 if rng.chance(30) => u64::MAX - rng.below(512),
                    16 if rng.chance(30) => len - rng.below(1024),
                    _ => edge_value(rng, len, block_size),
                };
                let field = s.header_offset + 576 + 24 * entry + at;
                write_be(bytes, field, width, value);
                format!("locator {entry} field +{at} = {value:#x}")
            }
            None => mutate_once(base, bytes, rng),
        },
        // A BAT entry pointed somewhere.
        60..=71 => match &base.sparse {
            Some(s) => {
                let index = if rng.chance(70) && !s.allocated.is_empty() {
                    s.allocated[rng.below(s.allocated.len() as u64) as usize].0 as usize
                } else {
                    rng.below(s.entries as u64) as usize
                };
                let other = |rng: &mut Rng| {
                    if s.allocated.is_empty() {
                        0
                    } else {
                        s.allocated[rng.below(s.allocated.len() as u64) as usize].1
                    }
                };
                let sector: u32 = match rng.below(10) {
                    0 => other(rng),
                    1 => other(rng) + 1,
                    2 => other(rng).wrapping_sub(1),
                    3 => 0,
                    4 => (s.header_offset / 512) as u32 + rng.below(2) as u32,
                    5 => (s.table_offset / 512) as u32,
                    6 => (len / 512) as u32 - 1 - rng.below(3) as u32,
                    7 => 0xFFFF_FFFF,
                    8 => rng.below(len / 512 + 4) as u32,
                    _ => rng.next_u64() as u32,
                };
                write_be(
                    &mut bytes[s.table_offset..],
                    index * 4,
                    4,
                    u64::from(sector),
                );
                format!("BAT entry {index} = sector {sector:#x}")
            }
            None => mutate_once(base, bytes, rng),
        },
        // Two blocks swapped: their BAT entries, or their contents.
        72..=75 => match &base.sparse {
            Some(s) if s.allocated.len() >= 2 => {
                let a = s.allocated[rng.below(s.allocated.len() as u64) as usize];
                let b = s.allocated[rng.below(s.allocated.len() as u64) as usize];
                if rng.chance(50) {
                    write_be(
                        &mut bytes[s.table_offset..],
                        a.0 as usize * 4,
                        4,
                        u64::from(b.1),
                    );
                    write_be(
                        &mut bytes[s.table_offset..],
                        b.0 as usize * 4,
                        4,
                        u64::from(a.1),
                    );
                    format!("BAT entries of blocks {} and {} swapped", a.0, b.0)
                } else {
                    let span = s.bitmap_size + s.block_size as usize;
                    let (x, y) = (a.1 as usize * 512, b.1 as usize * 512);
                    if x != y && x + span <= bytes.len() - 512 && y + span <= bytes.len() - 512 {
                        let copy_x = bytes[x..x + span].to_vec();
                        bytes.copy_within(y..y + span, x);
                        bytes[y..y + span].copy_from_slice(&copy_x);
                    }
                    format!("contents of blocks {} and {} swapped", a.0, b.0)
                }
            }
            _ => mutate_once(base, bytes, rng),
        },
        // A bitmap all set or all clear.
        76..=79 => match &base.sparse {
            Some(s) if !s.allocated.is_empty() => {
                let (block, sector) = s.allocated[rng.below(s.allocated.len() as u64) as usize];
                let start = sector as usize * 512;
                let value = if rng.chance(50) { 0xFF } else { 0 };
                bytes[start..start + s.bitmap_size].fill(value);
                format!("bitmap of block {block} filled with {value:#x}")
            }
            _ => mutate_once(base, bytes, rng),
        },
        // A locator's data replaced by a path.
        80..=83 => match &base.sparse {
            Some(s) => {
                let names = [
                    "",
                    ".",
                    "..",
                    "\\",
                    "..\\..\\..\\x.vhd",
                    ".\\child.vhd",
                    ".\\parent.vhd",
                    "parent.vhd",
                    "C:\\a\\parent.vhd",
                    "\\\\server\\share\\parent.vhd",
                    "file://./parent.vhd",
                    "file://%zz",
                    "\u{0}\u{0}",
                ];
                let name = names[rng.below(names.len() as u64) as usize];
                let entry = s.header_offset + 576 + 24 * rng.below(8) as usize;
                let offset = u64::from_be_bytes(bytes[entry + 16..entry + 24].try_into().unwrap());
                let data: Vec<u8> = if rng.chance(50) {
                    name.encode_utf16().flat_map(u16::to_le_bytes).collect()
                } else {
                    name.as_bytes().to_vec()
                };
                // `checked_add`: a mutated offset near u64::MAX would wrap past the check.
                if let Some(o) = usize::try_from(offset).ok().filter(|&o| {
                    o.checked_add(data.len())
                        .is_some_and(|end| end <= bytes.len())
                }) {
                    bytes[o..o + data.len()].copy_from_slice(&data);
                    write_be(&mut bytes[entry..], 8, 4, data.len() as u64);
                }
                format!(
                    "locator at header +{} holds {name:?}",
                    entry - s.header_offset
                )
            }
            None => mutate_once(base, bytes, rng),
        },
        // A footer (valid or not) at offset 0 of any image.
        84..=87 => {
            let end = bytes.len() - 512;
            let footer = bytes[end..].to_vec();
            bytes[..512].copy_from_slice(&footer);
            if rng.chance(50) {
                write_be(&mut bytes[..512], 60, 4, rng.range(2, 4));
            }
            "the end footer copied to offset 0".into()
        }
        // A footer (valid or not) at offset 0 of any image.
        _ => {
            let end = bytes.len() - 512;
            let footer = bytes[end..].to_vec();
            bytes[..512].copy_from_slice(&footer);
            if rng.chance(50) {
                write_be(&mut bytes[..512], 60, 4, rng.range(2, 4));
            }
            "the end footer copied to offset 0".into()
        }
    }
}

/// Cuts the file short or appends garbage (the last mutation: the others assume the
/// file's length unchanged).
fn resize(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    let len = bytes.len() as u64;
    if rng.chance(65) {
        // Near the end, or anywhere.
        let new_len = if rng.chance(50) {
            len.saturating_sub(rng.range(1, 2048))
        } else {
            rng.below(len)
        };
        bytes.truncate(new_len as usize);
        format!("truncated to {new_len} bytes")
    } else {
        let n = rng.range(1, 8192) as usize;
        let garbage = if rng.chance(50) {
            rng.bytes(n)
        } else {
            vec![0; n]
        };
        bytes.extend_from_slice(&garbage);
        format!("{n} bytes appended")
    }
}

/// Applies 1 to 3 mutations, often fixing the checksums afterwards so that the damage is
/// not simply refused by a checksum. Returns the list of what was done.
fn mutate(base: &Base, rng: &mut Rng) -> (Vec<u8>, Vec<String>) {
    let mut bytes = base.bytes.clone();
    let mut done = Vec::new();
    // Sometimes only resized.
    if !rng.chance(10) {
        for _ in 0..rng.range(1, 3) {
            done.push(mutate_once(base, &mut bytes, rng));
        }
    }
    if rng.chance(60) {
        let end = bytes.len() - 512;
        fix_footer_checksum(&mut bytes[end..]);
        fix_footer_checksum(&mut bytes[..512]);
        if let Some(s) = &base.sparse {
            if s.header_offset + 1024 <= bytes.len() {
                fix_header_checksum(&mut bytes[s.header_offset..s.header_offset + 1024]);
            }
        }
        done.push("checksums fixed".into());
    }
    if done.is_empty() || rng.chance(20) {
        done.push(resize(&mut bytes, rng));
    }
    (bytes, done)
}

// ---------------------------------------------------------------------------------------------
// Running a case

/// How far a case got.
#[derive(Default)]
struct Tally {
    cases: u64,
    opened: u64,
    reads: u64,
    read_errors: u64,
    /// Error code of each refused open, with its count.
    refused: BTreeMap<&'static str, u64>,
    slowest: Duration,
    largest_allocation: usize,
}

impl Tally {
    fn report(&self, label: &str) {
        println!(
            "{label}: {} cases, {} opened ({} reads, {} read errors), slowest {:?}, largest allocation {} bytes; refused: {:?}",
            self.cases,
            self.opened,
            self.reads,
            self.read_errors,
            self.slowest,
            self.largest_allocation,
            self.refused
        );
    }
}

/// Every call a reader makes: accessors, the first `whole` bytes of the disk, random reads
/// (some past the end). Checks that a read returns what `read_at` promises.
fn exercise(image: &Image, rng: &mut Rng, buf: &mut [u8], tally: &mut Tally) {
    let _ = (
        image.footer(),
        image.header(),
        image.parent_locator_texts(),
        image.chain(),
        image.read_only_reason(),
        image.footer_source(),
    );
    assert!(
        image.read_only_reason().is_some(),
        "opened read-only, yet writable"
    );
    let size = image.size();
    let max_length = buf.len() as u64;
    let mut check = |offset: u64, length: usize, tally: &mut Tally| {
        tally.reads += 1;
        match image.read_at(&mut buf[..length], offset) {
            Ok(n) => {
                let expected = size.saturating_sub(offset).min(length as u64) as usize;
                assert_eq!(
                    n, expected,
                    "read of {length} at {offset} from a {size}-byte disk"
                );
                true
            }
            Err(e) => {
                tally.read_errors += 1;
                assert!(e.code().starts_with("ERR_VHD_") && !e.to_string().is_empty());
                false
            }
        }
    };
    // The start of the disk, in pieces, up to 1 MiB; stop at the first error.
    let whole = size.min(MIB);
    let mut offset = 0;
    while offset < whole {
        let length = rng.range(1, max_length).min(whole - offset) as usize;
        if !check(offset, length, tally) {
            break;
        }
        offset += length as u64;
    }
    // Random pieces anywhere, and past the end.
    for _ in 0..16 {
        let offset = match rng.below(8) {
            0 => size.saturating_sub(rng.below(1024)),
            1 => size + rng.below(4096),
            2 => u64::MAX - rng.below(1024),
            _ => rng.below(size.max(1)),
        };
        let length = rng.range(1, max_length) as usize;
        check(offset, length, tally);
    }
}

/// Where a case's image is opened from.
enum Source<'a> {
    /// An in-memory file, opened as if it were at this path (a differencing child finds
    /// its parent beside it).
    Memory(&'a Path),
    /// A real file at this path, written for the case.
    File(&'a Path),
}

/// Opens `bytes` read-only and reads it; returns a description of a failure, if any.
fn run_case(
    bytes: Vec<u8>,
    source: Source,
    options: &OpenOptions,
    rng: &mut Rng,
    buf: &mut [u8],
    tally: &mut Tally,
    size_bound: usize,
) {
    let started = Instant::now();
    let file_len = bytes.len();
    let (result, largest) = match source {
        Source::Memory(path) => {
            let file = MemoryStorage::read_only(bytes);
            let (result, largest) = largest_allocation(|| {
                Image::open_storage(Box::new(file.clone()), path, options)
                    .map(|image| exercise(&image, rng, buf, tally))
            });
            assert_eq!(file.refused_writes(), 0, "the image was written");
            (result, largest)
        }
        Source::File(path) => {
            std::fs::write(path, &bytes).unwrap();
            let result = largest_allocation(|| {
                Image::open(path, options).map(|image| exercise(&image, rng, buf, tally))
            });
            assert!(std::fs::read(path).unwrap() == bytes, "the file changed");
            result
        }
    };
    tally.cases += 1;
    match result {
        Ok(()) => tally.opened += 1,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            *tally.refused.entry(e.code()).or_default() += 1;
        }
    }
    // No allocation is sized by a field the file does not back: the BAT is the largest
    // structure read, and it must fit in the file.
    let bound = size_bound.max(file_len) + 256 * KIB as usize;
    assert!(
        largest <= bound,
        "an allocation of {largest} bytes for a {file_len}-byte file"
    );
    tally.largest_allocation = tally.largest_allocation.max(largest);
    let elapsed = started.elapsed();
    tally.slowest = tally.slowest.max(elapsed);
    assert!(
        elapsed < Duration::from_secs(20),
        "the case took {elapsed:?}"
    );
}

/// Runs `count` mutations of `base`. `setup` may adjust each case (where it is opened
/// from, which options); a panic anywhere is caught and reported with the seed, the case
/// and its mutations.
fn campaign(
    label: &str,
    base: &Base,
    count: u64,
    mut case: impl FnMut(Vec<u8>, &mut Rng, &mut [u8], &mut Tally),
) {
    let mut rng = Rng::new(label);
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 64 * KIB as usize];
    let mut failures = Vec::new();
    for index in 0..count {
        let case_seed = rng.next_u64();
        let mut case_rng = Rng::from_seed(case_seed);
        let (bytes, done) = mutate(base, &mut case_rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            case(bytes, &mut case_rng, &mut buf, &mut tally)
        }));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!(
                "case {index} (case seed {case_seed:#x}): {message}\n    mutations: {}",
                done.join("; ")
            ));
            if failures.len() >= 10 {
                break;
            }
        }
    }
    tally.report(label);
    assert!(
        failures.is_empty(),
        "{label}: {} failing cases (seed {:#x}; replay with VHD_TEST_SEED={:#x}):\n{}",
        failures.len(),
        rng.seed(),
        rng.seed(),
        failures.join("\n")
    );
    // The mutations must get past the first checks often enough to test the rest.
    assert!(
        tally.opened * 10 >= tally.cases,
        "{label}: only {} of {} cases opened",
        tally.opened,
        tally.cases
    );
}

/// A standalone image (fixed or dynamic): mostly in memory, every 40th case from a file.
fn standalone(label: &str, path: &Path, count: u64) {
    let base = Base::read(path);
    let file = path.with_extension("mutated.vhd");
    let size_bound = base.bytes.len();
    campaign(label, &base, count, |bytes, rng, buf, tally| {
        let source = if tally.cases % 40 == 39 {
            Source::File(&file)
        } else {
            Source::Memory(path)
        };
        let mut options = read_only();
        options.ignore_checksums = rng.chance(10);
        run_case(bytes, source, &options, rng, buf, tally, size_bound);
    });
}

#[test]
fn mutated_fixed_images() {
    let images = images("mutation-fixed");
    assert_eq!(Base::read(&images.fixed).disk_type, DiskType::Fixed);
    standalone("mutation fixed", &images.fixed, 5000);
}

#[test]
fn mutated_dynamic_images_with_4k_blocks() {
    let images = images("mutation-dyn4k");
    standalone("mutation dynamic 4k", &images.dynamic_small, 10_000);
}

#[test]
fn mutated_dynamic_images_with_64k_blocks() {
    let images = images("mutation-dyn64k");
    standalone("mutation dynamic 64k", &images.dynamic_large, 8000);
}

#[test]
fn mutated_differencing_children() {
    let images = images("mutation-child");
    let base = Base::read(&images.child);
    assert_eq!(base.disk_type, DiskType::Differencing);
    let parent_len = std::fs::metadata(&images.parent).unwrap().len() as usize;
    let size_bound = base.bytes.len().max(parent_len);
    let file = images.dir.join("mutated-child.vhd");
    campaign(
        "mutation differencing child",
        &base,
        14_000,
        |bytes, rng, buf, tally| {
            let source = if tally.cases % 40 == 39 {
                Source::File(&file)
            } else {
                Source::Memory(&images.child)
            };
            let mut options = read_only();
            options.ignore_checksums = rng.chance(10);
            options.ignore_parent_timestamp = rng.chance(20);
            // Mostly confined to the folder; a damaged absolute locator may then point
            // anywhere, but is not followed.
            if rng.chance(75) {
                options.parent_root = Some(images.dir.path().to_path_buf());
            }
            run_case(bytes, source, &options, rng, buf, tally, size_bound);
        },
    );
}

#[test]
fn mutated_parents() {
    // The parent damaged under an intact child: the child must refuse it or read it.
    let images = images("mutation-parent");
    let base = Base::read(&images.parent);
    let folder = TempDir::new("mutation-parent-copy");
    let parent = folder.join("parent.vhd");
    let child = folder.join("child.vhd");
    let child_bytes = std::fs::read(&images.child).unwrap();
    let size_bound = base.bytes.len().max(child_bytes.len());
    campaign("mutation parent", &base, 2000, |bytes, rng, buf, tally| {
        std::fs::write(&parent, &bytes).unwrap();
        let options = OpenOptions {
            read_only: true,
            ignore_parent_timestamp: true,
            // Not the intact parent, which the child's absolute locator names.
            parent_root: Some(folder.path().to_path_buf()),
            ignore_checksums: rng.chance(10),
            ..OpenOptions::default()
        };
        run_case(
            child_bytes.clone(),
            Source::Memory(&child),
            &options,
            rng,
            buf,
            tally,
            size_bound,
        );
        assert!(
            std::fs::read(&parent).unwrap() == bytes,
            "the parent changed"
        );
    });
}

/// The report's shape, on the unmutated image: the disk made to end inside the block stored
/// last in the file, at a random byte, and then either the file cut right after the disk's
/// last byte (the footer follows it, inside the disk's last sector) or a parent locator's
/// data moved into the rest of that sector.
fn cut_short(base: &Base, rng: &mut Rng) -> Vec<u8> {
    let s = base.sparse.as_ref().unwrap();
    let mut bytes = base.bytes.clone();
    let &(block, sector) = s
        .allocated
        .iter()
        .max_by_key(|(_, sector)| *sector)
        .unwrap();
    let in_block = rng.range(1, s.block_size);
    let size = u64::from(block) * s.block_size + in_block;
    let mut footer = bytes[bytes.len() - 512..].to_vec();
    write_be(&mut footer, 40, 8, size);
    write_be(&mut footer, 48, 8, size);
    fix_footer_checksum(&mut footer);
    bytes[..512].copy_from_slice(&footer);
    let data = sector as usize * 512 + s.bitmap_size;
    let sector_end = data + (in_block as usize).next_multiple_of(512);
    let disk_end = data + in_block as usize;
    if s.used_locators.is_empty() || sector_end == disk_end || rng.chance(50) {
        bytes.truncate(disk_end);
    } else {
        let entry = s.header_offset + 576 + 24 * s.used_locators[0];
        write_be(&mut bytes, entry + 16, 8, disk_end as u64);
        write_be(&mut bytes, entry + 8, 4, (sector_end - disk_end) as u64);
        fix_header_checksum(&mut bytes[s.header_offset..s.header_offset + 1024]);
        bytes.truncate(bytes.len() - 512);
    }
    bytes.extend_from_slice(&footer);
    bytes
}

/// The parent locator texts a write must keep. A differencing image's locators are all kept
/// (one whose data lies on the image's metadata or blocks makes it read-only). A dynamic
/// image has no parent: its locators mean nothing to a reader, and their data is a structure
/// of its layout only as far as new blocks must not be put on it. Data that a crafted header
/// puts on the image's own header, BAT or an allocated block reads those bytes, which a write
/// changes as it must (seed 0x28c191b30fdb7002: locator 0 at offset 0, 64 KiB long): such a
/// locator is left out. `bytes`: the file before the writes.
fn kept_locator_texts(image: &Image, bytes: &[u8]) -> Option<[Option<String>; 8]> {
    let texts = image.parent_locator_texts()?;
    let header = image.header()?;
    if image.disk_type() == vhd_core::DiskType::Differencing {
        return Some(texts);
    }
    let table = header.table_offset;
    let table_end = table + u64::from(header.max_table_entries) * 4;
    let metadata = 0..table_end.max(image.footer().data_offset + 1024);
    let mut taken = Vec::from([metadata]);
    let block_bytes = u64::from(header.block_size)
        .div_ceil(512 * 8)
        .next_multiple_of(512)
        + u64::from(header.block_size);
    for at in (table..table_end.min(bytes.len() as u64)).step_by(4) {
        let at = at as usize;
        let Some(entry) = bytes.get(at..at + 4) else {
            break;
        };
        let sector = u32::from_be_bytes(entry.try_into().unwrap());
        if sector != u32::MAX {
            let start = u64::from(sector) * 512;
            taken.push(start..start + block_bytes);
        }
    }
    Some(std::array::from_fn(|i| {
        let locator = &header.parent_locators[i];
        let start = locator.platform_data_offset;
        let data = start..start.saturating_add(u64::from(locator.platform_data_length));
        let on_taken = taken
            .iter()
            .any(|r| r.start < data.end && data.start < r.end);
        if on_taken {
            None
        } else {
            texts[i].clone()
        }
    }))
}

/// Mutated sparse images (and, one case in five, the image cut short as `cut_short` does)
/// that open read-write are written (the last byte of the disk, where a write to a
/// differencing image widens into the footer or locator data that a crafted image keeps in
/// the rest of the disk's last sector, and a few random places): the writes must never
/// destroy the footer nor a parent locator's data. The image then opens again from the
/// same footer, names the same parents and reads back what was written.
#[test]
fn mutated_images_written_keep_their_footer_and_locators() {
    let images = images("mutation-written");
    for (label, path, count) in [
        ("mutation written dynamic 4k", &images.dynamic_small, 1500),
        ("mutation written differencing child", &images.child, 2500),
    ] {
        let base = Base::read(path);
        let mut written = 0;
        campaign(label, &base, count, |bytes, rng, _buf, tally| {
            tally.cases += 1;
            let bytes = if rng.chance(20) {
                cut_short(&base, rng)
            } else {
                bytes
            };
            let before = bytes.clone();
            let file = MemoryStorage::new(bytes);
            let options = OpenOptions {
                ignore_parent_timestamp: true,
                parent_root: Some(images.dir.path().to_path_buf()),
                ..OpenOptions::default()
            };
            let Ok(mut image) = Image::open_storage(Box::new(file.clone()), path, &options) else {
                return;
            };
            tally.opened += 1;
            if image.read_only_reason().is_some() || image.size() == 0 {
                return;
            }
            let source = image.footer_source();
            let locators = kept_locator_texts(&image, &before);
            let size = image.size();
            let mut writes = vec![(size - 1, 1)];
            for _ in 0..2 {
                let offset = rng.below(size);
                writes.push((offset, rng.range(1, 3000).min(size - offset) as usize));
            }
            let mut done = Vec::new();
            for (offset, length) in writes {
                let data = rng.bytes(length);
                if image.write_at(&data, offset).is_ok() {
                    done.push((offset, data));
                }
            }
            if image.flush().is_err() {
                return;
            }
            drop(image);
            written += 1;
            let again = Image::open_storage(Box::new(file), path, &options).unwrap_or_else(|e| {
                panic!("after the writes {done:?}, the image no longer opens: {e}")
            });
            // A 511-byte footer is rewritten whole (512 bytes) when a block is appended
            // where it was: that is the footer kept, not lost.
            let kept = match (source, again.footer_source()) {
                (vhd_core::FooterSource::End511, vhd_core::FooterSource::End) => true,
                (before, after) => before == after,
            };
            assert!(
                kept,
                "the footer was lost: {source:?} before, {:?} after",
                again.footer_source()
            );
            assert_eq!(
                kept_locator_texts(&again, &before),
                locators,
                "a locator changed"
            );
            // The last write to each byte is what reads back.
            let mut expected = BTreeMap::new();
            for (offset, data) in &done {
                for (i, byte) in data.iter().enumerate() {
                    expected.insert(offset + i as u64, *byte);
                }
            }
            for (offset, byte) in expected {
                let mut got = [0u8];
                again.read_at(&mut got, offset).unwrap();
                assert_eq!(got[0], byte, "byte {offset}");
            }
        });
        assert!(
            written * 4 >= count,
            "{label}: only {written} cases written"
        );
    }
}

#[test]
fn unmutated_images_read_back() {
    // The campaigns' starting points open and read, with and without a file behind them.
    let images = images("mutation-valid");
    for path in [
        &images.fixed,
        &images.dynamic_small,
        &images.dynamic_large,
        &images.parent,
        &images.child,
    ] {
        let from_file = open_ro(path);
        let expected = read_all(&from_file);
        drop(from_file);
        let file = MemoryStorage::read_only(std::fs::read(path).unwrap());
        let options = OpenOptions {
            parent_root: Some(images.dir.path().to_path_buf()),
            ..read_only()
        };
        let image = Image::open_storage(Box::new(file), path, &options).unwrap();
        assert_same_bytes(&read_all(&image), &expected, &path.display().to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Parents outside the root

/// A dynamic image with data, and a child of it made in `child_dir`.
fn parent_and_child(parent_dir: &Path, child_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let parent = parent_dir.join(format!("{name}-parent.vhd"));
    let mut disk = create(&parent, &CreateOptions::new(DiskType::Dynamic, MIB)).unwrap();
    disk.write_at(b"parent data", 4096).unwrap();
    drop(disk);
    let child = child_dir.join(format!("{name}.vhd"));
    drop(create(&child, &CreateOptions::differencing(&parent)).unwrap());
    (parent, child)
}

fn within(root: &Path) -> OpenOptions {
    OpenOptions {
        read_only: true,
        parent_root: Some(root.to_path_buf()),
        ..OpenOptions::default()
    }
}

#[test]
fn parents_outside_the_root_are_not_opened() {
    let root = TempDir::new("root");
    let elsewhere = TempDir::new("outside");
    // The child's locators name the parent by its absolute path (W2ku), its path relative
    // to the child (W2ru, `..\<other folder>\…`) and a file URL (MacX): all outside.
    let (parent, child) = parent_and_child(elsewhere.path(), root.path(), "child");
    let texts = open_ro(&child).parent_locator_texts().unwrap();
    assert!(
        texts
            .iter()
            .flatten()
            .any(|t| t.starts_with('/') || t.contains(":\\")),
        "{texts:?}"
    );

    // Without a root, the parent is found.
    let image = open_ro(&child);
    assert_eq!(
        image.chain()[1].canonicalize().unwrap(),
        parent.canonicalize().unwrap()
    );
    drop(image);

    // With one, it is not even opened: were it, this writer's lock would refuse it.
    let writer = open_rw(&parent);
    let e = Image::open(&child, &within(root.path())).unwrap_err();
    // The candidate is reported as the child spells it (where it leads is not told).
    assert!(
        matches!(&e, Error::ParentOutsideRoot { child: c, parent: p, root: r, .. }
            if c == &child && p.canonicalize().unwrap() == parent.canonicalize().unwrap() && r == &root.path().canonicalize().unwrap()),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_PARENT_OUTSIDE_ROOT");
    let message = e.to_string();
    for part in [
        child.display().to_string(),
        parent.file_name().unwrap().to_str().unwrap().to_string(),
        root.path().display().to_string(),
        "(outside the parent root)".to_string(),
    ] {
        assert!(message.contains(&part), "{message} does not name {part}");
    }
    // (Without the root, the lock shows that it is opened.)
    let e = Image::open(&child, &read_only()).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_LOCKED", "{e}");
    drop(writer);

    // A parent the caller names is trusted, wherever it is.
    let options = OpenOptions {
        parents: vec![ParentPath::Vhd(parent.clone())],
        ..within(root.path())
    };
    let image = Image::open(&child, &options).unwrap();
    let mut buf = [0u8; 11];
    image.read_at(&mut buf, 4096).unwrap();
    assert_eq!(&buf, b"parent data");
    drop(image);

    // A root that does not exist is a bad argument.
    let options = within(&root.join("missing"));
    let e = Image::open(&child, &options).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_INVALID_ARGUMENT", "{e}");

    // Moved inside the root, the parent is found by its name beside the child (and
    // reported by its resolved path).
    let inside = root.join("child-parent.vhd");
    std::fs::copy(&parent, &inside).unwrap();
    let options = OpenOptions {
        ignore_parent_timestamp: true,
        ..within(root.path())
    };
    let image = Image::open(&child, &options).unwrap();
    assert_eq!(image.chain()[1], inside.canonicalize().unwrap().as_path());
    // The root may be given by a path that is not canonical itself.
    let dotted = root
        .path()
        .join(".")
        .join("..")
        .join(root.path().file_name().unwrap());
    drop(image);
    drop(
        Image::open(
            &child,
            &OpenOptions {
                parent_root: Some(dotted),
                ..options.clone()
            },
        )
        .unwrap(),
    );
}

#[test]
fn relative_locators_cannot_climb_out_of_the_root() {
    // The root is a folder below the one the parent is in; the child sits in the root
    // and names its parent `..\<name>`.
    let top = TempDir::new("climb");
    let root = top.join("root");
    std::fs::create_dir(&root).unwrap();
    let (parent, child) = parent_and_child(top.path(), &root, "child");
    let texts = open_ro(&child).parent_locator_texts().unwrap();
    assert!(
        texts.iter().flatten().any(|t| t.starts_with("..\\")),
        "{texts:?}"
    );
    let e = Image::open(&child, &within(&root)).unwrap_err();
    assert!(
        matches!(&e, Error::ParentOutsideRoot { parent: p, .. } if p.canonicalize().unwrap() == parent.canonicalize().unwrap()),
        "{e:?}"
    );
    // The folder above is allowed, and then it is found.
    drop(Image::open(&child, &within(top.path())).unwrap());
}

#[cfg(unix)]
#[test]
fn symbolic_links_cannot_lead_out_of_the_root() {
    let root = TempDir::new("link-root");
    let elsewhere = TempDir::new("link-outside");
    let (parent, child) = parent_and_child(elsewhere.path(), root.path(), "child");
    // Beside the child, under the parent's name: a link to the parent outside. The child
    // names the parent by that name too.
    let link = root.join("child-parent.vhd");
    std::os::unix::fs::symlink(&parent, &link).unwrap();
    let e = Image::open(&child, &within(root.path())).unwrap_err();
    assert!(
        matches!(&e, Error::ParentOutsideRoot { parent: p, .. } if p.canonicalize().unwrap() == parent.canonicalize().unwrap()),
        "{e:?}"
    );
    // The link is listed as the child names it.
    let message = e.to_string();
    let listed = format!("{} (outside the parent root)", link.display());
    assert!(message.contains(&listed), "{message}");
    // Without a root, the link is followed.
    drop(open_ro(&child));

    // A link to the whole outside folder, inside the root, does not help either.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.join("sub")).unwrap();
    let e = Image::open(&child, &within(root.path())).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_OUTSIDE_ROOT", "{e}");
}

#[test]
fn a_grandparent_outside_the_root_is_refused_too() {
    let root = TempDir::new("grand-root");
    let elsewhere = TempDir::new("grand-outside");
    let (base, mid) = parent_and_child(elsewhere.path(), root.path(), "mid");
    let top = root.join("top.vhd");
    drop(create(&top, &CreateOptions::differencing(&mid)).unwrap());
    let e = Image::open(&top, &within(root.path())).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_OUTSIDE_ROOT", "{e}");
    assert!(
        matches!(e.root(), Error::ParentOutsideRoot { parent: p, .. } if p.canonicalize().unwrap() == base.canonicalize().unwrap()),
        "{e:?}"
    );
    // Naming the middle image does not vouch for what it names.
    let options = OpenOptions {
        parents: vec![ParentPath::Vhd(mid.clone())],
        ..within(root.path())
    };
    let e = Image::open(&top, &options).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_OUTSIDE_ROOT", "{e}");
    // Naming both does.
    let options = OpenOptions {
        parents: vec![ParentPath::Vhd(mid), ParentPath::Vhd(base)],
        ..within(root.path())
    };
    drop(Image::open(&top, &options).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn huge_fields_are_refused_without_huge_allocations() {
    let images = images("mutation-limits");
    let base = Base::read(&images.dynamic_large);
    let s = base.sparse.as_ref().unwrap();
    let cases: [(&str, usize, usize, u64); 4] = [
        // 4 Gi BAT entries: 16 GiB of table, far more than the file holds.
        ("max table entries", 28, 4, 0xFFFF_FFFF),
        // 2 GiB blocks: a 512 KiB bitmap each, and more than any real image.
        ("block size", 32, 4, 1 << 31),
        ("block size", 32, 4, 1 << 29),
        ("table offset", 16, 8, u64::MAX - 100),
    ];
    for (field, at, width, value) in cases {
        let mut bytes = base.bytes.clone();
        write_be(&mut bytes[s.header_offset..], at, width, value);
        fix_header_checksum(&mut bytes[s.header_offset..s.header_offset + 1024]);
        let file = MemoryStorage::read_only(bytes);
        let (result, largest) = largest_allocation(|| {
            Image::open_storage(Box::new(file), &images.dynamic_large, &read_only()).map(|_| ())
        });
        let e = result.unwrap_err();
        assert!(
            e.to_string().contains(field) || e.code() == "ERR_VHD_TRUNCATED",
            "{field}: {e}"
        );
        assert!(
            largest < 1 << 20,
            "{field} = {value:#x}: an allocation of {largest} bytes"
        );
    }
    // The current size may not outgrow max table entries × block size.
    let mut bytes = base.bytes.clone();
    let len = bytes.len();
    for at in [0, len - 512] {
        write_be(&mut bytes[at..], 48, 8, 1 << 50);
        fix_footer_checksum(&mut bytes[at..at + 512]);
    }
    let e = Image::open_storage(
        Box::new(MemoryStorage::read_only(bytes)),
        &images.dynamic_large,
        &read_only(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("max table entries"), "{e}");

    // Block sizes up to the limit still open.
    let path = images.dir.join("256m.vhd");
    let mut options = CreateOptions::new(DiskType::Dynamic, 512 * MIB);
    options.block_size = 256 << 20;
    let mut disk = create(&path, &options).unwrap();
    disk.write_at(b"big blocks", 300 * MIB).unwrap();
    drop(disk);
    let disk = open_ro(&path);
    let mut buf = [0u8; 10];
    disk.read_at(&mut buf, 300 * MIB).unwrap();
    assert_eq!(&buf, b"big blocks");
}

#[test]
fn blocks_that_overlap_are_refused() {
    let images = images("mutation-overlap");
    let base = Base::read(&images.dynamic_small);
    let s = base.sparse.as_ref().unwrap();
    let (a, b) = (s.allocated[0], s.allocated[1]);
    let set = |entry: u32, sector: u64| {
        let mut bytes = base.bytes.clone();
        write_be(&mut bytes[s.table_offset..], entry as usize * 4, 4, sector);
        Image::open_storage(
            Box::new(MemoryStorage::read_only(bytes)),
            &images.dynamic_small,
            &read_only(),
        )
    };
    for (sector, what) in [
        (u64::from(b.1), "block"),
        (u64::from(b.1) + 1, "block"),
        (0, "footer copy"),
        (s.header_offset as u64 / 512 + 1, "dynamic header"),
        (s.table_offset as u64 / 512, "block allocation table"),
    ] {
        let e = set(a.0, sector).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_BAT_OVERLAP", "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
    // Pointing elsewhere inside the file, clear of everything, is fine (the data is then
    // whatever is there).
    let len = base.bytes.len() as u64;
    drop(
        set(
            a.0,
            u64::from(s.allocated.iter().map(|x| x.1).max().unwrap()) + 1 + 8,
        )
        .map_err(|e| {
            // Past the last block there is only the footer, so this may run out of the file.
            assert!(
                matches!(e, Error::BatEntryOutOfRange { .. }),
                "{e:?} ({len})"
            );
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// Found by reading the code

#[test]
fn locator_data_at_the_end_of_the_address_space() {
    // A locator whose data would end past u64::MAX: the error path of the read computed
    // that end and overflowed (a panic in debug builds) while looking for the parent.
    let images = images("mutation-locator-end");
    let base = Base::read(&images.child);
    let s = base.sparse.as_ref().unwrap();
    for entry in &s.used_locators {
        for offset in [u64::MAX, u64::MAX - 1, u64::MAX - 100, u64::MAX - 511] {
            let mut bytes = base.bytes.clone();
            write_be(
                &mut bytes,
                s.header_offset + 576 + 24 * entry + 16,
                8,
                offset,
            );
            fix_header_checksum(&mut bytes[s.header_offset..s.header_offset + 1024]);
            let file = MemoryStorage::read_only(bytes);
            let image = Image::open_storage(Box::new(file), &images.child, &read_only())
                .unwrap_or_else(|e| panic!("locator {entry} at {offset:#x}: {e}"));
            assert_eq!(image.parent_locator_texts().unwrap()[*entry], None);
        }
    }
}

#[test]
fn reads_past_the_end_ask_the_storage_nothing() {
    // A fixed image read at or past its end returns 0 bytes; it used to ask the storage
    // for 0 bytes at that offset, which a storage may refuse (this one does).
    let images = images("mutation-read-past-end");
    let bytes = std::fs::read(&images.fixed).unwrap();
    let image = Image::open_storage(
        Box::new(MemoryStorage::read_only(bytes)),
        &images.fixed,
        &read_only(),
    )
    .unwrap();
    let mut buf = [0u8; 16];
    for offset in [MIB, MIB + 1, MIB + 4096, u64::MAX] {
        assert_eq!(image.read_at(&mut buf, offset).unwrap(), 0, "at {offset}");
    }
}

// ---------------------------------------------------------------------------------------------
// What the fuzzer found (fuzz/README.md): each input built here, byte for byte, and run as
// the fuzz target runs it (strict, then ignoring checksums and parent time stamps).

#[test]
fn fuzzer_findings() {
    let folder = TempDir::new("fuzz-regression");
    let path = folder.join("input.vhd");
    let strict = OpenOptions {
        parent_root: Some(folder.path().to_path_buf()),
        ..read_only()
    };
    let forgiving = OpenOptions {
        ignore_checksums: true,
        ignore_parent_timestamp: true,
        ..strict.clone()
    };
    for (name, bytes) in fuzz_regressions() {
        let file = MemoryStorage::read_only(bytes);
        let mut tally = Tally::default();
        let mut rng = Rng::from_seed(1);
        let mut buf = vec![0u8; 64 * 1024];
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let image = Image::open_storage(Box::new(file.clone()), &path, &strict)
                .or_else(|_| Image::open_storage(Box::new(file.clone()), &path, &forgiving));
            if let Ok(image) = image {
                exercise(&image, &mut rng, &mut buf, &mut tally);
            }
        }));
        assert!(outcome.is_ok(), "{name} panicked");
    }
}

/// A piece of a fuzzer input: bytes (in hex) at an offset, or a run of one byte value.
enum Piece {
    Hex(usize, &'static str),
    Fill(usize, u8, usize),
}

fn build(len: usize, pieces: &[Piece]) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    for piece in pieces {
        match *piece {
            Piece::Hex(at, hex) => {
                for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
                    let text = std::str::from_utf8(pair).unwrap();
                    bytes[at + i] = u8::from_str_radix(text, 16).unwrap();
                }
            }
            Piece::Fill(at, value, count) => bytes[at..at + count].fill(value),
        }
    }
    bytes
}

/// The inputs, minimized (`-minimize_crash=1`). The fuzzer found no bug in the code as it
/// is; to check that it would, the overflow that `locator_data_at_the_end_of_the_address_space`
/// guards against was put back, and it found an input that reaches it within seconds:
/// a dynamic image cut before its end footer (opened from the copy), whose header's
/// checksum is wrong and whose third locator entry points at `0xffff_ffff_ffff_b801`.
fn fuzz_regressions() -> Vec<(&'static str, Vec<u8>)> {
    use Piece::{Fill, Hex};
    let locator_overflow = build(
        1607,
        &[
            Hex(0, "636f6e6563746978"),
            Hex(11, "02"),
            Hex(13, "01"),
            Hex(22, "02"),
            Hex(24, "20"),
            Hex(28, "77696e20"),
            Hex(33, "01"),
            Hex(36, "5769326b"),
            Hex(45, "0106"),
            Hex(53, "0106"),
            Hex(57, "010411"),
            Hex(63, "03fffff3847668642d66757a7a2d736565642d6964"),
            Hex(512, "6378737061727365"),
            Fill(520, 0xFF, 8),
            Hex(534, "06"),
            Hex(537, "01"),
            Hex(543, "11"),
            Hex(546, "10"),
            Hex(548, "fffff476"),
            Hex(590, "01"),
            Fill(595, 0xFF, 67),
            Hex(662, "aa01"),
            Fill(670, 0xFF, 113),
            Hex(795, "fbffffffffffffff"),
            Fill(895, 0xFF, 94),
            Fill(1145, 0xFF, 18),
            Hex(1163, "b801"),
            Fill(1171, 0xFF, 244),
            Fill(1492, 0xFF, 112),
        ],
    );
    vec![("locator data past u64::MAX", locator_overflow)]
}

// ---------------------------------------------------------------------------------------------
// Partition tables inside the disk (issue 16)

/// A disk with a partition table, and the byte ranges and fields of its structures.
struct TableBase {
    label: &'static str,
    disk: Vec<u8>,
    regions: Vec<(&'static str, Range<usize>)>,
    /// (offset, width in bytes) of little-endian fields worth setting to edge values.
    fields: Vec<(usize, usize)>,
    /// Sectors of GPT headers, whose CRCs a mutation may fix after the damage.
    gpt_headers: Vec<usize>,
    /// Sectors of EBRs, whose links a mutation may point at each other.
    ebrs: Vec<usize>,
}

fn gpt_base(label: &'static str, gpt: &partition_tables::Gpt) -> TableBase {
    use partition_tables::*;
    let sectors = SECTORS;
    let disk = gpt_disk(sectors, gpt);
    let array = gpt.array_sectors() as usize * SECTOR;
    let last = (sectors as usize - 1) * SECTOR;
    let mut fields = Vec::new();
    for header in [SECTOR, last] {
        for (at, width) in [
            (12, 4),
            (24, 8),
            (32, 8),
            (40, 8),
            (48, 8),
            (72, 8),
            (80, 4),
            (84, 4),
        ] {
            fields.push((header + at, width));
        }
    }
    for slot in 0..gpt.partitions.len() + 1 {
        let entry = 2 * SECTOR + slot * gpt.entry_size as usize;
        fields.extend([(entry + 32, 8), (entry + 40, 8), (entry, 4)]);
    }
    fields.extend([(446 + 8, 4), (446 + 12, 4)]);
    TableBase {
        label,
        regions: vec![
            ("protective MBR", 0..SECTOR),
            ("primary header", SECTOR..2 * SECTOR),
            ("primary array", 2 * SECTOR..2 * SECTOR + array),
            ("backup array", last - array..last),
            ("backup header", last..last + SECTOR),
        ],
        fields,
        gpt_headers: vec![1, sectors as usize - 1],
        ebrs: Vec::new(),
        disk,
    }
}

fn mbr_base() -> TableBase {
    use partition_tables::*;
    let links = 6u32;
    let mut disk = mbr_with_extended(8192 + 16 * u64::from(links) + 64);
    for n in 0..links {
        ebr(&mut disk, n, (n + 1 < links).then_some(n + 1));
    }
    let ebrs: Vec<usize> = (0..links as usize).map(|n| 8192 + 16 * n).collect();
    let mut regions = vec![("MBR", 0..SECTOR)];
    let mut fields = Vec::new();
    for sector in std::iter::once(0).chain(ebrs.iter().copied()) {
        regions.push(("EBR", sector * SECTOR..(sector + 1) * SECTOR));
        for slot in 0..4 {
            let entry = sector * SECTOR + 446 + slot * 16;
            fields.extend([(entry, 1), (entry + 4, 1), (entry + 8, 4), (entry + 12, 4)]);
        }
    }
    TableBase {
        label: "MBR with an EBR chain",
        disk,
        regions,
        fields,
        gpt_headers: Vec::new(),
        ebrs,
    }
}

fn table_edge_value(rng: &mut Rng, sectors: u64, old: u64) -> u64 {
    match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => u64::from(u32::MAX),
        3 => u64::MAX,
        4 => sectors - 1,
        5 => sectors,
        6 => sectors + 1,
        7 => 1 << rng.below(64),
        8 => old.wrapping_add(1),
        9 => old.wrapping_sub(1),
        10 => 128 << rng.below(8),
        _ => rng.next_u64() >> rng.below(64),
    }
}

/// One damage to `disk`, described.
fn mutate_table(base: &TableBase, disk: &mut Vec<u8>, rng: &mut Rng) -> String {
    let sectors = disk.len() as u64 / 512;
    if disk.len() < base.disk.len() {
        // Cut short by an earlier mutation: the structures may be gone.
        return "nothing more (the disk was cut short)".into();
    }
    match rng.below(10) {
        0..=2 => {
            let (name, range) = &base.regions[rng.below(base.regions.len() as u64) as usize];
            let at = range.start + rng.below(range.len() as u64) as usize;
            let bit = rng.below(8);
            disk[at] ^= 1 << bit;
            format!("flip bit {bit} of byte {at} ({name})")
        }
        3 => {
            let (name, range) = &base.regions[rng.below(base.regions.len() as u64) as usize];
            let len = rng.range(1, 16) as usize;
            let at = range.start + rng.below(range.len() as u64) as usize;
            let end = (at + len).min(disk.len());
            rng.fill(&mut disk[at..end]);
            format!("random bytes {at}..{end} ({name})")
        }
        4..=7 => {
            let (at, width) = base.fields[rng.below(base.fields.len() as u64) as usize];
            let mut old = [0u8; 8];
            old[..width].copy_from_slice(&disk[at..at + width]);
            let value = table_edge_value(rng, sectors, u64::from_le_bytes(old));
            disk[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            format!("field at {at} ({width} bytes) = {value:#x}")
        }
        8 if !base.ebrs.is_empty() => {
            let from = base.ebrs[rng.below(base.ebrs.len() as u64) as usize];
            let to = base.ebrs[rng.below(base.ebrs.len() as u64) as usize];
            let link = (to - 8192) as u32;
            partition_tables::mbr_entry(disk, from, 1, 0x05, link, 16);
            format!("EBR at sector {from} links to sector {to}")
        }
        _ => {
            let new_sectors = rng.range(0, sectors + 64) as usize;
            disk.resize(new_sectors * 512, 0);
            format!("disk resized to {new_sectors} sectors")
        }
    }
}

#[test]
fn mutated_partition_tables() {
    use partition_tables::*;
    use vhd_core::partition::read_partition_table;
    let bases = [
        gpt_base("GPT", &Gpt::usual(&[(40, 99), (100, 1999), (2000, 4000)])),
        gpt_base(
            "GPT with 16 entries of 256 bytes",
            &Gpt {
                entry_count: 16,
                entry_size: 256,
                partitions: vec![(40, 99), (100, 4000)],
            },
        ),
        mbr_base(),
    ];
    // Some cases are read through a dynamic VHD as well: the same table must come out.
    let folder = TempDir::new("mutated-partition-tables");
    let mut failures = Vec::new();
    for base in &bases {
        let mut rng = Rng::new(base.label);
        let vhd_path = folder.join("table.vhd");
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for index in 0..2500u64 {
            let case_seed = rng.next_u64();
            let mut case_rng = Rng::from_seed(case_seed);
            let mut disk = base.disk.clone();
            let mut done = Vec::new();
            for _ in 0..case_rng.range(1, 4) {
                done.push(mutate_table(base, &mut disk, &mut case_rng));
            }
            if case_rng.chance(60) {
                for &sector in &base.gpt_headers {
                    if (sector + 1) * SECTOR <= disk.len() {
                        fix_gpt_crcs(&mut disk, sector);
                    }
                }
                done.push("GPT CRCs fixed".into());
            }
            let through_vhd = index % 100 == 0 && disk.len() >= 512;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let memory = MemoryDisk(disk.clone());
                let started = Instant::now();
                let (table, largest) = largest_allocation(|| read_partition_table(&memory));
                let table = table.expect("a disk in memory reads");
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "took {:?}",
                    started.elapsed()
                );
                assert!(
                    largest <= disk.len() + 256 * KIB as usize,
                    "an allocation of {largest} bytes for a {}-byte disk",
                    disk.len()
                );
                check_table(&memory, &table);
                if through_vhd {
                    let size = disk.len() as u64;
                    let mut image = create(
                        &vhd_path,
                        &CreateOptions {
                            overwrite: true,
                            block_size: 64 * KIB as u32,
                            ..CreateOptions::new(DiskType::Dynamic, size)
                        },
                    )
                    .unwrap();
                    image.write_at(&disk, 0).unwrap();
                    image.flush().unwrap();
                    drop(image);
                    let image = Image::open(&vhd_path, &read_only()).unwrap();
                    assert_eq!(read_partition_table(&image).unwrap(), table);
                }
                table
            }));
            match outcome {
                Ok(table) => {
                    let key = format!(
                        "{} {}",
                        table.kind.name(),
                        table.findings.first().map_or("clean", |f| f.code())
                    );
                    *kinds.entry(key).or_default() += 1;
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!(
                        "{} case {index} (case seed {case_seed:#x}): {message}\n    mutations: {}",
                        base.label,
                        done.join("; ")
                    ));
                }
            }
            if failures.len() >= 10 {
                break;
            }
        }
        eprintln!("{}: {kinds:?}", base.label);
        // The damage must get past the checks often enough: tables still read, some
        // with findings.
        let read_as_base = kinds
            .iter()
            .filter(|(k, _)| !k.starts_with("none"))
            .map(|(_, n)| n)
            .sum::<u64>();
        assert!(read_as_base >= 1000, "{}: {kinds:?}", base.label);
        assert!(
            kinds.keys().filter(|k| !k.ends_with("clean")).count() >= 3,
            "{}: {kinds:?}",
            base.label
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
