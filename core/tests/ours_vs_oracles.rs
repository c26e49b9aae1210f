//! Images we create and fill, read back by the other implementations: `vhdiinfo`,
//! `qemu-img convert` / `qemu-img compare`, pyvhdi (libvhdi), and our own reader after
//! reopening; plus the layout facts the specification fixes (footer copy, checksums,
//! geometry, exact size, exact sector bitmaps).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use vhd_core::{create, CreateOptions, DiskType, VirtualDisk};
use vhd_testkit::*;

/// Reads the whole virtual disk with pyvhdi in 64 KiB pieces (libvhdi 20210425 misreads
/// single reads spanning several blocks with partly set bitmaps) into `out`; prints the
/// media size.
const PYVHDI_DUMP: &str = r#"
import sys, pyvhdi
f = pyvhdi.file()
f.open(sys.argv[1])
size = f.get_media_size()
with open(sys.argv[2], "wb") as out:
    offset = 0
    while offset < size:
        n = min(65536, size - offset)
        data = f.read_buffer_at_offset(n, offset)
        assert len(data) == n, (offset, n, len(data))
        out.write(data)
        offset += n
f.close()
print(size)
"#;

/// Reads `length` bytes at each `offset` (argv pairs) with pyvhdi and writes them to stdout.
const PYVHDI_READ_AT: &str = r#"
import sys, pyvhdi
f = pyvhdi.file()
f.open(sys.argv[1])
print(f.get_media_size(), flush=True)
args = sys.argv[2:]
for i in range(0, len(args), 2):
    offset, length = int(args[i]), int(args[i + 1])
    data = f.read_buffer_at_offset(length, offset)
    sys.stdout.buffer.write(data.hex().encode() + b"\n")
f.close()
"#;

/// What we wrote, tracked independently of the library.
struct Model {
    data: Vec<u8>,
    block_size: u64,
    /// Blocks that must be allocated (they received non-zero data, or any data after that).
    allocated: BTreeSet<u64>,
    /// Sectors (disk-wide numbers) whose bitmap bit must be set.
    sectors: BTreeSet<u64>,
}

impl Model {
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.data[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        // Mirror of the rule "an all-zero write to an unallocated block allocates nothing".
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let block = pos / self.block_size;
            let take = ((block + 1) * self.block_size - pos).min((data.len() - done) as u64);
            let piece = &data[done..done + take as usize];
            if self.allocated.contains(&block) || piece.iter().any(|&b| b != 0) {
                self.allocated.insert(block);
                self.sectors.extend(pos / 512..=(pos + take - 1) / 512);
            }
            done += take as usize;
        }
    }
}

/// Creates an image and fills it with random writes (unaligned, block-spanning, overwriting,
/// some all-zero, some at the very end), flushing now and then; returns the model.
fn make_image(
    path: &Path,
    rng: &mut Rng,
    disk_type: DiskType,
    size: u64,
    block_size: u32,
    writes: usize,
) -> Model {
    let mut options = CreateOptions::new(disk_type, size);
    options.block_size = block_size;
    let mut disk = create(path, &options).expect("create");
    assert_eq!(disk.size(), size);
    let block = u64::from(block_size);
    let mut model = Model {
        data: vec![0; size as usize],
        block_size: block,
        allocated: BTreeSet::new(),
        sectors: BTreeSet::new(),
    };
    for i in 0..writes {
        let offset = match rng.below(5) {
            0 | 1 => rng.below(size),
            2 => (rng.below(size / block + 1) * block)
                .saturating_sub(rng.below(1500))
                .min(size - 1),
            3 => size - rng.range(1, 4096.min(size)),
            // Overwrite a region written before.
            _ => model
                .sectors
                .iter()
                .nth(rng.below(model.sectors.len().max(1) as u64) as usize)
                .map_or(0, |s| s * 512 + rng.below(512)),
        };
        let max_len = size - offset;
        let len = match rng.below(4) {
            0 => 1,
            1 => rng.range(1, 1100),
            2 => rng.range(1, block + 2048),
            _ => rng.range(1, 2 * block + 1),
        }
        .min(max_len) as usize;
        let data = if rng.chance(15) {
            vec![0u8; len]
        } else {
            rng.bytes(len)
        };
        disk.write_at(&data, offset)
            .unwrap_or_else(|e| panic!("write {len} at {offset}: {e}"));
        model.write(offset, &data);
        if i % 37 == 36 {
            disk.flush().unwrap();
        }
    }
    disk.flush().unwrap();
    drop(disk);
    model
}

/// The layout the specification fixes, checked on the raw file bytes.
fn check_layout(path: &Path, model: &Model, disk_type: DiskType, size: u64, block_size: u32) {
    let file = std::fs::read(path).unwrap();
    let what = path.display().to_string();
    assert_eq!(file.len() % 512, 0, "{what}: file length");
    let footer = &file[file.len() - 512..];
    assert_eq!(&footer[0..8], b"conectix", "{what}");
    assert_eq!(
        be_u32(footer, 64),
        vhd_checksum(footer, 64),
        "{what}: footer checksum"
    );
    assert_eq!(be_u32(footer, 8), 2, "{what}: features");
    assert_eq!(be_u32(footer, 12), 0x0001_0000, "{what}: format version");
    assert_eq!(&footer[28..32], b"win ", "{what}: creator application");
    assert_eq!(be_u64(footer, 40), size, "{what}: original size");
    assert_eq!(be_u64(footer, 48), size, "{what}: current size");
    let (c, h, s) = spec_geometry(size / 512);
    assert_eq!(
        (
            u64::from(u16::from_be_bytes([footer[56], footer[57]])),
            u64::from(footer[58]),
            u64::from(footer[59])
        ),
        (c, h, s),
        "{what}: geometry"
    );
    assert_eq!(be_u32(footer, 60), disk_type as u32, "{what}: disk type");
    assert_eq!(footer[84], 0, "{what}: saved state");
    assert_eq!(
        footer[68 + 6] >> 4,
        4,
        "{what}: the unique id is a version 4 UUID"
    );

    if disk_type == DiskType::Fixed {
        assert_eq!(file.len() as u64, size + 512, "{what}: fixed file length");
        assert_eq!(be_u64(footer, 16), u64::MAX, "{what}: data offset");
        assert_same_bytes(&file[..size as usize], &model.data, &what);
        return;
    }

    assert_same_bytes(&file[..512], footer, &format!("{what}: footer copy at 0"));
    let header_offset = be_u64(footer, 16) as usize;
    assert_eq!(header_offset, 512, "{what}: data offset");
    let header = &file[header_offset..header_offset + 1024];
    assert_eq!(&header[0..8], b"cxsparse", "{what}");
    assert_eq!(
        be_u32(header, 36),
        vhd_checksum(header, 36),
        "{what}: header checksum"
    );
    assert_eq!(be_u64(header, 8), u64::MAX, "{what}: header data offset");
    assert_eq!(be_u32(header, 24), 0x0001_0000, "{what}: header version");
    let block = u64::from(block_size);
    let entries = size.div_ceil(block);
    assert_eq!(
        u64::from(be_u32(header, 28)),
        entries,
        "{what}: max table entries"
    );
    assert_eq!(be_u32(header, 32), block_size, "{what}: block size");
    let table = be_u64(header, 16) as usize;
    let bat: Vec<u32> = (0..entries as usize)
        .map(|i| be_u32(&file, table + 4 * i))
        .collect();
    // The rest of the BAT's last sector is 0xFF padding, as Hyper-V writes it.
    let bat_end = table + 4 * entries as usize;
    assert!(
        file[bat_end..bat_end.next_multiple_of(512)]
            .iter()
            .all(|&b| b == 0xFF),
        "{what}: BAT padding"
    );

    let bitmap_bytes = (block / 512).div_ceil(8).next_multiple_of(512) as usize;
    let mut block_starts = Vec::new();
    for (index, &sector) in bat.iter().enumerate() {
        let index = index as u64;
        if sector == u32::MAX {
            assert!(
                !model.allocated.contains(&index),
                "{what}: block {index} should be allocated"
            );
            continue;
        }
        assert!(
            model.allocated.contains(&index),
            "{what}: block {index} is allocated but received only zeros"
        );
        let start = sector as usize * 512;
        block_starts.push(start);
        let bitmap = &file[start..start + bitmap_bytes];
        for s in 0..block / 512 {
            let bit = bitmap[(s / 8) as usize] & (0x80 >> (s % 8)) != 0;
            let disk_sector = index * (block / 512) + s;
            assert_eq!(
                bit,
                model.sectors.contains(&disk_sector),
                "{what}: bitmap bit of sector {s} of block {index}"
            );
        }
        // Bits past the end of the block (the bitmap's sector padding) are clear.
        let used_bits = (block / 512) as usize;
        for bit in used_bits..bitmap_bytes * 8 {
            assert_eq!(
                bitmap[bit / 8] & (0x80 >> (bit % 8)),
                0,
                "{what}: padding bit"
            );
        }
        let data_start = start + bitmap_bytes;
        let disk_start = (index * block) as usize;
        let n = (block as usize).min(size as usize - disk_start);
        assert_same_bytes(
            &file[data_start..data_start + n],
            &model.data[disk_start..disk_start + n],
            &format!("{what}: data of block {index} in the file"),
        );
    }
    // Blocks are packed one after another after the BAT, and the footer follows the last.
    block_starts.sort_unstable();
    let mut expected_start = bat_end.next_multiple_of(512);
    for start in block_starts {
        assert_eq!(start, expected_start, "{what}: block placement");
        expected_start += bitmap_bytes + block as usize;
    }
    assert_eq!(file.len(), expected_start + 512, "{what}: file length");
}

/// vhdiinfo opens the image and reports the right media size.
fn check_vhdiinfo(path: &Path, size: u64) {
    let (code, text) = run_status(Command::new("vhdiinfo").arg(path));
    assert_eq!(code, 0, "vhdiinfo {}: {text}", path.display());
    let reported = text
        .lines()
        .find(|l| l.contains("Media size"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no media size in vhdiinfo output:\n{text}"));
    assert_eq!(reported, size, "vhdiinfo media size of {}", path.display());
}

/// qemu-img convert gives the model; qemu-img compare against the model says identical.
fn check_qemu(path: &Path, model: &[u8], dir: &TempDir) {
    let converted = qemu_raw(path, dir);
    assert_same_bytes(
        &converted,
        model,
        &format!("qemu-img convert of {}", path.display()),
    );
    assert_qemu_reads(path, model, dir);
}

/// pyvhdi reads the model back (64 KiB at a time).
fn check_pyvhdi(path: &Path, model: &[u8], dir: &TempDir) {
    let out = dir.join("pyvhdi.raw");
    let stdout = run_ok(
        Command::new(python())
            .args(["-c", PYVHDI_DUMP])
            .arg(path)
            .arg(&out),
    );
    let size: u64 = String::from_utf8_lossy(&stdout).trim().parse().unwrap();
    assert_eq!(size, model.len() as u64, "pyvhdi media size");
    let read = std::fs::read(&out).unwrap();
    assert_same_bytes(&read, model, &format!("pyvhdi read of {}", path.display()));
    std::fs::remove_file(&out).unwrap();
}

/// Creates, fills and checks one image against every oracle.
fn round_trip(label: &str, disk_type: DiskType, size: u64, block_size: u32, writes: usize) {
    if !(require_qemu() && require_tool("vhdiinfo") && require_pyvhdi()) {
        return;
    }
    let mut rng = Rng::new(&format!("ours_vs_oracles {label}"));
    let dir = TempDir::new("ours");
    let path = dir.join(&format!("{label}.vhd"));
    let model = make_image(&path, &mut rng, disk_type, size, block_size, writes);

    check_layout(&path, &model, disk_type, size, block_size);
    check_vhdiinfo(&path, size);
    check_qemu(&path, &model.data, &dir);
    check_pyvhdi(&path, &model.data, &dir);

    let disk = open_rw(&path);
    assert_eq!(disk.disk_type(), disk_type);
    assert_eq!(disk.size(), size);
    assert_eq!(disk.read_only_reason(), None);
    assert_same_bytes(&read_all(&disk), &model.data, "our reader after reopening");
}

#[test]
fn dynamic_512k_blocks() {
    // 9.54 blocks.
    round_trip("dyn-512k", DiskType::Dynamic, 5_000_192, 512 * 1024, 150);
}

#[test]
fn dynamic_2m_blocks() {
    // 9 MiB + 512: 4.5 blocks, the last one holding a single sector past the half.
    round_trip("dyn-2m", DiskType::Dynamic, 9_437_696, 2 << 20, 150);
}

#[test]
fn dynamic_4m_blocks() {
    // 3.1 blocks; 4 MiB blocks have a two-sector bitmap.
    round_trip("dyn-4m", DiskType::Dynamic, 13_000_192, 4 << 20, 120);
}

#[test]
fn dynamic_smallest_blocks() {
    // 4 KiB blocks: a whole bitmap sector for 8 data sectors.
    round_trip("dyn-4k", DiskType::Dynamic, 1_049_088, 4096, 300);
}

#[test]
fn fixed() {
    // 7 MiB + 512, not a CHS multiple.
    round_trip("fixed", DiskType::Fixed, 7_340_544, 2 << 20, 150);
}

#[test]
fn tiny_disks() {
    // One sector, fixed and dynamic.
    round_trip("fixed-1s", DiskType::Fixed, 512, 2 << 20, 5);
    round_trip("dyn-1s", DiskType::Dynamic, 512, 2 << 20, 5);
}

/// The largest dynamic disk (2040 GiB), written near both ends: every reader agrees on its
/// size and finds the data at the far end.
#[test]
fn largest_dynamic_disk() {
    if !(require_qemu() && require_tool("vhdiinfo") && require_pyvhdi()) {
        return;
    }
    let dir = TempDir::new("largest");
    let path = dir.join("largest.vhd");
    let size = vhd_core::MAX_DYNAMIC_SIZE;
    let writes: [(u64, u64, u8); 3] = [
        (0, 1000, 0x11),
        (size / 2 - 700, 3000, 0x22),
        (size - 4096 - 100, 4096 + 100, 0x33),
    ];
    {
        let mut disk = create(&path, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
        for &(offset, len, byte) in &writes {
            disk.write_at(&vec![byte; len as usize], offset).unwrap();
        }
        disk.flush().unwrap();
    }
    check_vhdiinfo(&path, size);
    let info = run_ok(
        Command::new("qemu-img")
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(&path),
    );
    let info = String::from_utf8_lossy(&info);
    assert!(
        info.contains(&format!("\"virtual-size\": {size}")),
        "qemu-img info: {info}"
    );
    // qemu-io checks a fill pattern without converting two terabytes.
    for &(offset, len, byte) in &writes {
        let cmd = format!("read -P {byte} {offset} {len}");
        let (code, text) = run_status(
            Command::new("qemu-io")
                .args(["-f", "vpc", "-r", "-c", &cmd])
                .arg(&path),
        );
        assert!(
            code == 0 && !text.contains("Pattern verification failed"),
            "qemu-io {cmd}: {text}"
        );
    }
    // One byte of context on each side of every write.
    let ranges: Vec<(u64, usize)> = writes
        .iter()
        .map(|&(offset, len, _)| {
            let at = offset.saturating_sub(1);
            (at, ((offset + len + 1).min(size) - at) as usize)
        })
        .collect();
    let args: Vec<String> = ranges
        .iter()
        .flat_map(|&(at, len)| [at.to_string(), len.to_string()])
        .collect();
    let out = run_ok(
        Command::new(python())
            .args(["-c", PYVHDI_READ_AT])
            .arg(&path)
            .args(&args),
    );
    let out = String::from_utf8_lossy(&out);
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap().parse::<u64>().unwrap(), size);
    let disk = open_rw(&path);
    for (&(at, len), &(offset, write_len, byte)) in ranges.iter().zip(&writes) {
        let expected: Vec<u8> = (at..at + len as u64)
            .map(|p| {
                if p >= offset && p < offset + write_len {
                    byte
                } else {
                    0
                }
            })
            .collect();
        let mut ours = vec![0xA5u8; len];
        assert_eq!(disk.read_at(&mut ours, at).unwrap(), len);
        assert_same_bytes(&ours, &expected, &format!("our read at {at}"));
        let theirs = lines.next().unwrap();
        let hex_expected: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(theirs, hex_expected, "pyvhdi read at {at}");
    }
}

/// The geometry we write is the specification's, for sizes all over the range (the
/// thresholds between 17, 31, 63 and 255 sectors per track included).
#[test]
fn geometry_matches_the_specification() {
    let mut rng = Rng::new("ours_vs_oracles geometry_matches_the_specification");
    let thresholds = [
        17 * 4 * 1024,
        17 * 16 * 1024,
        31 * 16 * 1024,
        63 * 16 * 1024,
        65535 * 16 * 63,
        65535 * 16 * 255,
    ];
    let mut samples: Vec<u64> = (1..5000).collect();
    for t in thresholds {
        samples.extend(t - 20..t + 20);
    }
    samples.extend((0..20_000).map(|_| rng.range(1, vhd_core::MAX_DYNAMIC_SIZE / 512 * 2)));
    for sectors in samples {
        let g = vhd_core::Geometry::for_sectors(sectors);
        let ours = (
            u64::from(g.cylinders),
            u64::from(g.heads),
            u64::from(g.sectors_per_track),
        );
        assert_eq!(ours, spec_geometry(sectors), "{sectors} sectors");
        assert!(g.total_sectors() <= sectors);
    }
}
