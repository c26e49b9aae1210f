//! `convert` and `VhdStream` against the oracles.
//!
//! Sources are made by qemu-img (raw with random and zero stripes, fixed and dynamic VHDs
//! from it) and by our library (differencing chains, flattened by libvhdi into a raw
//! reference), plus corpus images whose contents the corpus README gives. Every output is
//! checked with `qemu-img compare` against its source or reference, every VHD output is
//! opened by `vhdiinfo`, and structures (BAT, footer, geometry) are parsed here, by hand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use vhd_core::ops::{
    convert, open_source, open_source_with_detection, ConvertOptions, ConvertReport, OutputFormat,
    Progress, SourceFormat, VhdStream,
};
use vhd_core::{create, CreateOptions, DiskType, Error, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const OUTPUTS: [OutputFormat; 3] = [
    OutputFormat::Raw,
    OutputFormat::Fixed,
    OutputFormat::Dynamic,
];

// ---------------------------------------------------------------------------------------------
// Helpers

/// Disk contents in 256 KiB stripes, each random, zero, or zero but for one byte (so that
/// a block is "non-zero" because of a single byte), in random order.
fn striped(rng: &mut Rng, len: u64) -> Vec<u8> {
    let mut data = vec![0u8; len as usize];
    for stripe in data.chunks_mut(256 << 10) {
        match rng.below(3) {
            0 => rng.fill(stripe),
            1 => {}
            _ => {
                let at = rng.below(stripe.len() as u64) as usize;
                stripe[at] = 1 + rng.below(255) as u8;
            }
        }
    }
    data
}

fn options(to: OutputFormat) -> ConvertOptions {
    ConvertOptions::new(to)
}

fn run_convert(source: &Path, destination: &Path, options: &ConvertOptions) -> ConvertReport {
    convert(source, destination, options, Progress::default()).unwrap_or_else(|e| {
        panic!(
            "convert {} -> {} ({:?}): {e}",
            source.display(),
            destination.display(),
            options.to
        )
    })
}

/// qemu's name of the format of `output`.
fn qemu_format(output: OutputFormat) -> &'static str {
    match output {
        OutputFormat::Raw => "raw",
        _ => "vpc",
    }
}

fn extension(output: OutputFormat) -> &'static str {
    match output {
        OutputFormat::Raw => "raw",
        OutputFormat::Fixed => "fixed.vhd",
        OutputFormat::Dynamic => "dynamic.vhd",
    }
}

/// `qemu-img convert` of raw `source` into a fixed or dynamic VHD of the exact size.
fn qemu_vhd(source: &Path, destination: &Path, subformat: &str) {
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc", "-o"])
            .arg(format!("subformat={subformat},force_size=on"))
            .arg(source)
            .arg(destination),
    );
}

/// `qemu-img compare` says both disks hold the same data.
#[track_caller]
fn assert_qemu_same(a: &Path, format_a: &str, b: &Path, format_b: &str) {
    let (code, text) = run_status(
        Command::new("qemu-img")
            .args(["compare", "-f", format_a, "-F", format_b])
            .arg(a)
            .arg(b),
    );
    assert_eq!(
        code,
        0,
        "qemu-img compare {} ({format_a}) {} ({format_b}): {text}",
        a.display(),
        b.display()
    );
}

/// The virtual size qemu-img reports for `path`.
fn qemu_size(path: &Path, format: &str) -> u64 {
    let out = run_ok(
        Command::new("qemu-img")
            .args(["info", "--output=json", "-f", format])
            .arg(path),
    );
    let text = String::from_utf8(out).unwrap();
    // The top-level key (4 spaces in), not the one of the protocol layer nested below.
    let line = text
        .lines()
        .find(|l| l.starts_with("    \"virtual-size\":"))
        .unwrap_or_else(|| panic!("no virtual-size in {text}"));
    line.split(':')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

/// `vhdiinfo` opens the image; returns its (disk type, media size).
fn vhdiinfo(path: &Path) -> (String, u64) {
    let out = String::from_utf8(run_ok(Command::new("vhdiinfo").arg(path))).unwrap();
    let field = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in vhdiinfo's output: {out}"))
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .to_string()
    };
    let media = field("Media size");
    let bytes = media
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(" bytes)")
        .parse()
        .unwrap();
    (field("Disk type"), bytes)
}

/// Checks `output` (of `to`) against the `reference` disk and its expected virtual size:
/// qemu-img compare and size, and vhdiinfo's type and size for VHDs.
#[track_caller]
fn check_output(
    output: &Path,
    to: OutputFormat,
    reference: &Path,
    reference_format: &str,
    size: u64,
) {
    assert_qemu_same(reference, reference_format, output, qemu_format(to));
    assert_eq!(
        qemu_size(output, qemu_format(to)),
        size,
        "{}",
        output.display()
    );
    let expected_type = match to {
        OutputFormat::Raw => {
            assert_eq!(file_len(output), size);
            return;
        }
        OutputFormat::Fixed => "Fixed",
        OutputFormat::Dynamic => "Dynamic",
    };
    assert_eq!(vhdiinfo(output), (expected_type.to_string(), size));
}

/// The (disk block → file sector) entries of a dynamic VHD's BAT, parsed by hand.
fn allocated_blocks(path: &Path) -> Vec<(u32, u32)> {
    let footer = file_bytes(path, file_len(path) - 512, 512);
    let header_offset = be_u64(&footer, 16);
    let header = file_bytes(path, header_offset, 1024);
    let table_offset = be_u64(&header, 16);
    let entries = be_u32(&header, 28) as usize;
    let table = file_bytes(path, table_offset, entries * 4);
    (0..entries)
        .map(|i| (i as u32, be_u32(&table, i * 4)))
        .filter(|&(_, sector)| sector != u32::MAX)
        .collect()
}

/// The blocks of `data` (in `block_size` units) that hold a non-zero byte.
fn non_zero_blocks(data: &[u8], block_size: usize) -> Vec<u32> {
    data.chunks(block_size)
        .enumerate()
        .filter(|(_, block)| block.iter().any(|&b| b != 0))
        .map(|(i, _)| i as u32)
        .collect()
}

/// The files of a folder, by name.
fn folder_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// sha256 of the whole stream, read sequentially in 1 MiB pieces as the binding does.
fn stream_sha256(stream: &VhdStream) -> String {
    sha256_stream(|w| {
        let mut buf = vec![0u8; MIB as usize];
        let mut offset = 0;
        loop {
            let n = stream.read_at(&mut buf, offset).unwrap();
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).unwrap();
            offset += n as u64;
        }
        assert_eq!(offset, stream.len());
    })
}

/// A raw source file of `len` striped bytes; returns its contents.
fn raw_source(path: &Path, rng: &mut Rng, len: u64) -> Vec<u8> {
    let data = striped(rng, len);
    std::fs::write(path, &data).unwrap();
    data
}

// ---------------------------------------------------------------------------------------------
// Every direction

/// Raw, qemu-made fixed and qemu-made dynamic sources, each converted to raw, fixed and
/// dynamic; the size (13 MiB + 3 sectors) leaves the last 2 MiB block partly outside it.
#[test]
fn every_direction_from_qemu_made_sources() {
    if !require_qemu() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("convert-directions");
    let mut rng = Rng::new("convert every direction");
    let size = 13 * MIB + 3 * 512;
    let raw = dir.join("source.raw");
    raw_source(&raw, &mut rng, size);
    let fixed = dir.join("source-fixed.vhd");
    let dynamic = dir.join("source-dynamic.vhd");
    qemu_vhd(&raw, &fixed, "fixed");
    qemu_vhd(&raw, &dynamic, "dynamic");

    for (source, format) in [(&raw, "raw"), (&fixed, "vpc"), (&dynamic, "vpc")] {
        for to in OUTPUTS {
            let name = source.file_name().unwrap().to_string_lossy();
            let output = dir.join(&format!("{name}.to.{}", extension(to)));
            let report = run_convert(source, &output, &options(to));
            assert_eq!(report.virtual_size, size);
            assert_eq!(report.source_size, size);
            assert_eq!(report.file_size, file_len(&output));
            check_output(&output, to, source, format, size);
        }
    }
}

/// A raw file whose size is not a multiple of 512 is rounded up with zeros, as qemu does.
#[test]
fn raw_source_of_odd_size_is_rounded_up_to_whole_sectors() {
    if !require_qemu() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("convert-odd");
    let mut rng = Rng::new("convert odd size");
    let raw = dir.join("odd.raw");
    let size = 3 * MIB + 1000;
    raw_source(&raw, &mut rng, size);
    let rounded = size.next_multiple_of(512);
    for to in OUTPUTS {
        let output = dir.join(&format!("odd-out.{}", extension(to)));
        let report = run_convert(&raw, &output, &options(to));
        assert_eq!((report.source_size, report.virtual_size), (size, rounded));
        // qemu reads the raw source rounded up to whole sectors too.
        assert_eq!(qemu_size(&raw, "raw"), rounded);
        check_output(&output, to, &raw, "raw", rounded);
    }
}

// ---------------------------------------------------------------------------------------------
// Differencing chains

/// Writes random 4 KiB-aligned runs (some of zeros, which must hide the parent's data)
/// into `image`.
fn scribble(image: &mut Image, rng: &mut Rng, runs: usize) {
    let size = image.size();
    for _ in 0..runs {
        let len = rng.range(1, 64) * 4096;
        let offset = rng.below((size - len) / 4096 + 1) * 4096;
        let data = if rng.chance(20) {
            vec![0u8; len as usize]
        } else {
            rng.bytes(len as usize)
        };
        image.write_at(&data, offset).unwrap();
    }
    image.flush().unwrap();
}

/// A chain of `depth` images (a base of `base_type`, then differencing children) written
/// by our library; returns the paths, base first.
fn make_chain(dir: &TempDir, rng: &mut Rng, base_type: DiskType, depth: usize) -> Vec<PathBuf> {
    let size = 9 * MIB + 4096;
    let mut chain = vec![dir.join("level0.vhd")];
    let mut image = create(&chain[0], &CreateOptions::new(base_type, size)).unwrap();
    scribble(&mut image, rng, 24);
    drop(image);
    for level in 1..depth {
        let path = dir.join(&format!("level{level}.vhd"));
        let mut image = create(&path, &CreateOptions::differencing(&chain[level - 1])).unwrap();
        scribble(&mut image, rng, 16);
        drop(image);
        chain.push(path);
    }
    chain
}

/// Chains of 2 and 3 images, over fixed and dynamic bases, flattened into every output and
/// compared with libvhdi's reading of the chain.
#[test]
fn differencing_chains_are_flattened() {
    if !require_qemu() || !require_tool("vhdiinfo") || !require_pyvhdi() {
        return;
    }
    let mut rng = Rng::new("convert chains");
    for (base_type, depth) in [
        (DiskType::Dynamic, 2),
        (DiskType::Fixed, 3),
        (DiskType::Dynamic, 3),
    ] {
        let dir = TempDir::new("convert-chain");
        let chain = make_chain(&dir, &mut rng, base_type, depth);
        let reference = dir.join("reference.raw");
        libvhdi_flatten(&chain, &reference);
        let top = chain.last().unwrap();
        for to in OUTPUTS {
            let output = dir.join(&format!("flat.{}", extension(to)));
            let report = run_convert(top, &output, &options(to));
            check_output(&output, to, &reference, "raw", file_len(&reference));
            assert_eq!(report.virtual_size, file_len(&reference));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Azure

/// Azure output: fixed, the size rounded up to a whole MiB, file = N MiB + 512, the
/// specification's CHS geometry for that size, a valid checksum; qemu sees the same size
/// and data.
#[test]
fn azure_output_is_a_whole_mib_fixed_image_with_the_spec_geometry() {
    if !require_qemu() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("convert-azure");
    let mut rng = Rng::new("convert azure");
    // A qemu dynamic image of 20 MiB + 123 sectors: 21 MiB once rounded.
    let raw = dir.join("source.raw");
    let size = 20 * MIB + 123 * 512;
    raw_source(&raw, &mut rng, size);
    let source = dir.join("source.vhd");
    qemu_vhd(&raw, &source, "dynamic");

    let output = dir.join("azure.vhd");
    let report = run_convert(
        &source,
        &output,
        &ConvertOptions {
            azure: true,
            ..options(OutputFormat::Fixed)
        },
    );
    let expected = 21 * MIB;
    assert_eq!(report.virtual_size, expected);
    assert_eq!(file_len(&output), expected + 512);

    let footer = file_bytes(&output, expected, 512);
    assert_eq!(&footer[..8], b"conectix");
    assert_eq!(be_u32(&footer, 60), 2, "disk type fixed");
    assert_eq!(be_u64(&footer, 48), expected, "current size");
    assert_eq!(be_u64(&footer, 40), expected, "original size");
    assert_eq!(be_u32(&footer, 64), vhd_checksum(&footer, 64), "checksum");
    let (cylinders, heads, sectors) = spec_geometry(expected / 512);
    assert_eq!(
        (
            u64::from(u16::from_be_bytes([footer[56], footer[57]])),
            u64::from(footer[58]),
            u64::from(footer[59])
        ),
        (cylinders, heads, sectors),
        "geometry"
    );
    assert_eq!(qemu_size(&output, "vpc"), expected);
    assert_eq!(vhdiinfo(&output), ("Fixed".to_string(), expected));
    // The data is the source's, then zeros (qemu-img compare checks the tail is zero).
    assert_qemu_same(&raw, "raw", &output, "vpc");
}

/// What Azure would refuse is refused, before any file is made.
#[test]
fn azure_refuses_what_azure_refuses() {
    let dir = TempDir::new("convert-azure-refusals");
    let small = dir.join("small.raw");
    std::fs::write(&small, vec![7u8; MIB as usize]).unwrap();
    let output = dir.join("out.vhd");
    let azure = |to| ConvertOptions {
        azure: true,
        ..options(to)
    };
    for (to, why) in [
        (OutputFormat::Fixed, "1 MiB is under Azure's 20 MiB minimum"),
        (OutputFormat::Dynamic, "Azure takes only fixed images"),
        (OutputFormat::Raw, "Azure takes only fixed images"),
    ] {
        let err = convert(&small, &output, &azure(to), Progress::default()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { name: "azure", .. }),
            "{why}: {err}"
        );
        assert!(!output.exists());
    }
    assert_eq!(
        folder_names(dir.path()),
        BTreeSet::from(["small.raw".to_string()])
    );
}

// ---------------------------------------------------------------------------------------------
// Sparse output

/// A mostly-zero disk: dynamic output allocates exactly the non-zero blocks (BAT parsed by
/// hand), in ascending order right after the BAT; raw and fixed output leave zero chunks as
/// holes; qemu reads the same data.
#[test]
fn dynamic_output_of_a_mostly_zero_disk_allocates_only_non_zero_blocks() {
    if !require_qemu() || !require_tool("vhdiinfo") {
        return;
    }
    let dir = TempDir::new("convert-sparse");
    let mut rng = Rng::new("convert sparse");
    let size = 40 * MIB + 512;
    let mut data = vec![0u8; size as usize];
    // A few random runs, one single byte in the last (partial) block, one at a block's end.
    for _ in 0..4 {
        let len = rng.range(1, 300 * 1024) as usize;
        let at = rng.below(size - len as u64) as usize;
        rng.fill(&mut data[at..at + len]);
    }
    data[(size - 1) as usize] = 0x5A;
    data[(6 * MIB - 1) as usize] = 0xA5;
    let raw = dir.join("sparse.raw");
    std::fs::write(&raw, &data).unwrap();
    // Through a qemu dynamic image too, whose unallocated blocks we need not read.
    let qemu_dynamic = dir.join("sparse-qemu.vhd");
    qemu_vhd(&raw, &qemu_dynamic, "dynamic");

    for block_size in [2 * MIB as u32, 512 << 10, 8 * MIB as u32] {
        for source in [&raw, &qemu_dynamic] {
            let output = dir.join(&format!("out-{block_size}.vhd"));
            let report = run_convert(
                source,
                &output,
                &ConvertOptions {
                    block_size,
                    overwrite: true,
                    ..options(OutputFormat::Dynamic)
                },
            );
            let expected = non_zero_blocks(&data, block_size as usize);
            let entries = allocated_blocks(&output);
            let blocks: Vec<u32> = entries.iter().map(|&(b, _)| b).collect();
            assert_eq!(blocks, expected, "block size {block_size}");
            assert_eq!(report.allocated_blocks, expected.len() as u64);
            // Blocks follow each other after the BAT, in ascending order, and the file ends
            // right after the last one.
            let bitmap = (u64::from(block_size) / 512)
                .div_ceil(8)
                .next_multiple_of(512);
            let entries_count = size.div_ceil(u64::from(block_size));
            let first = 1536 + (entries_count * 4).next_multiple_of(512);
            for (i, &(_, sector)) in entries.iter().enumerate() {
                assert_eq!(
                    u64::from(sector) * 512,
                    first + i as u64 * (bitmap + u64::from(block_size))
                );
            }
            assert_eq!(
                file_len(&output),
                first + entries.len() as u64 * (bitmap + u64::from(block_size)) + 512
            );
            // Every stored block says all its sectors are present, and the footer copy at
            // offset 0 is the end footer.
            for &(block, sector) in &entries {
                let bits = file_bytes(&output, u64::from(sector) * 512, bitmap as usize);
                assert!(bits.iter().all(|&b| b == 0xFF), "bitmap of block {block}");
            }
            assert_eq!(
                file_bytes(&output, 0, 512),
                file_bytes(&output, file_len(&output) - 512, 512)
            );
            check_output(&output, OutputFormat::Dynamic, &raw, "raw", size);
        }
    }

    // Raw and fixed output: the zero chunks are holes (fewer blocks on disk than bytes).
    #[cfg(unix)]
    for to in [OutputFormat::Raw, OutputFormat::Fixed] {
        use std::os::unix::fs::MetadataExt;
        let output = dir.join(&format!("holes.{}", extension(to)));
        run_convert(&qemu_dynamic, &output, &options(to));
        let on_disk = std::fs::metadata(&output).unwrap().blocks() * 512;
        assert!(
            on_disk < 16 * MIB,
            "{to:?}: {on_disk} bytes on disk for {size}"
        );
        check_output(&output, to, &raw, "raw", size);
    }
}

// ---------------------------------------------------------------------------------------------
// The stream

/// The stream's bytes are the file convert writes (same unique id and time stamp, which
/// both footers carry), for a raw source and a differencing chain; its length is known up
/// front; reads at random offsets and lengths, from several threads at once, match the file.
#[test]
fn stream_bytes_equal_the_converted_file() {
    if !require_tool("sha256sum") {
        return;
    }
    let dir = TempDir::new("convert-stream");
    let mut rng = Rng::new("convert stream");
    let raw = dir.join("source.raw");
    raw_source(&raw, &mut rng, 11 * MIB + 7 * 512);
    let chain = make_chain(&dir, &mut rng, DiskType::Dynamic, 2);
    let mut unique_id = [0u8; 16];
    rng.fill(&mut unique_id);
    let timestamp = 0x2B00_0000u32;
    for (source_path, to, block_size) in [
        (&raw, OutputFormat::Fixed, 2 * MIB as u32),
        (&raw, OutputFormat::Dynamic, 2 * MIB as u32),
        (&raw, OutputFormat::Dynamic, 4096),
        (&raw, OutputFormat::Dynamic, 4 * MIB as u32),
        (&chain[1], OutputFormat::Dynamic, 512 << 10),
        (&chain[1], OutputFormat::Fixed, 2 * MIB as u32),
    ] {
        let what = format!("{} {to:?} {block_size}", source_path.display());
        let options = ConvertOptions {
            block_size,
            unique_id: Some(unique_id),
            timestamp: Some(timestamp),
            ..options(to)
        };
        let output = dir.join(&format!("out-{block_size}.{}", extension(to)));
        let _ = std::fs::remove_file(&output);
        run_convert(source_path, &output, &options);
        let source = open_source(source_path, SourceFormat::Auto, &OpenOptions::default()).unwrap();
        let stream = VhdStream::new(source, &options, Progress::default()).unwrap();
        assert_eq!(stream.len(), file_len(&output), "{what}");
        assert_eq!(stream_sha256(&stream), sha256_file(&output), "{what}");

        let file = std::fs::read(&output).unwrap();
        let footer = &file[file.len() - 512..];
        assert_eq!(&footer[68..84], &unique_id, "{what}");
        assert_eq!(be_u32(footer, 24), timestamp, "{what}");

        let seeds: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        std::thread::scope(|scope| {
            for seed in seeds {
                let (stream, file, what) = (&stream, &file, &what);
                scope.spawn(move || {
                    let mut rng = Rng::from_seed(seed);
                    for _ in 0..100 {
                        check_random_read(stream, file, &mut rng, what);
                    }
                });
            }
        });
    }
}

/// One read of the stream at a random offset (up to past the end) and length, against the
/// file's bytes.
fn check_random_read(stream: &VhdStream, file: &[u8], rng: &mut Rng, what: &str) {
    let offset = rng.below(file.len() as u64 + 2);
    let len = match rng.below(3) {
        0 => rng.range(1, 600),
        1 => rng.range(1, 3 * MIB),
        _ => rng.range(1, 4096),
    } as usize;
    let mut buf = vec![0xEEu8; len];
    let n = stream.read_at(&mut buf, offset).unwrap();
    let start = (offset as usize).min(file.len());
    let end = (offset as usize).saturating_add(len).min(file.len());
    let what = format!("{what}: read of {len} at {offset}");
    assert_eq!(n, end - start, "{what}");
    assert_same_bytes(&buf[..n], &file[start..end], &what);
}

/// A stream of raw output makes no sense and is refused; so is a bad block size.
#[test]
fn stream_refuses_raw_output_and_bad_block_sizes() {
    let dir = TempDir::new("convert-stream-refusals");
    let raw = dir.join("source.raw");
    std::fs::write(&raw, vec![1u8; 4096]).unwrap();
    let open = || open_source(&raw, SourceFormat::Raw, &OpenOptions::default()).unwrap();
    let err = VhdStream::new(open(), &options(OutputFormat::Raw), Progress::default()).unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { name: "to", .. }),
        "{err}"
    );
    for block_size in [0, 3000, 1 << 29] {
        let options = ConvertOptions {
            block_size,
            ..options(OutputFormat::Dynamic)
        };
        let err = VhdStream::new(open(), &options, Progress::default()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{block_size}: {err}"
        );
        let output = dir.join("out.vhd");
        let err = convert(&raw, &output, &options, Progress::default()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{block_size}: {err}"
        );
        assert!(!output.exists());
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus images as sources

/// libvhdi's sha256 of the whole disk, from the corpus README.
const CORPUS: &[(&str, &str)] = &[
    (
        "dissect-hypervisor/dynamic.vhd.gz",
        "ecff2ef6615a3cddc6a6885f1c6d9cf13a232697e1dc6575f2c2f01f57247784",
    ),
    (
        "node-vhd/fixed.vhd.gz",
        "fa0490edf13cf9699ac7ead2b2024f2ec7921f583ff824039bca0529055e409d",
    ),
    (
        "freebsd-mkimg/img-63x255-4096-gpt.vhd.gz",
        "c2a3b28d9792cee03e54d915fbbfdd7b167dd4d3f879e32e86508d62fab359ee",
    ),
    (
        "rdisk/vhd_dynamic_small.vhd",
        "8fe72dbeebd3f1cb9d3ad92c9f5835043ef31648a90c7db4fe4e3f143167416a",
    ),
    (
        "dfvfs/ext2.vhd",
        "870be7ae16c1fa8faab05c6eb9205dc9a7ae35c5f552c5cf8a267c0bc6a5cb99",
    ),
];

/// Corpus images from Windows, mkimg and qemu as sources: raw output has the corpus's
/// sha256; fixed and dynamic output read back through qemu-img with the same sha256, and
/// qemu-img compare agrees with the source.
#[test]
fn corpus_images_convert_to_their_known_contents() {
    if !require_qemu() || !require_tool("vhdiinfo") || !require_tool("sha256sum") {
        return;
    }
    let Some(corpus) = corpus_dir() else {
        return;
    };
    let dir = TempDir::new("convert-corpus");
    for (name, sha256) in CORPUS {
        let stored = corpus.join(name);
        let source = if name.ends_with(".gz") {
            let Some(path) = decompress(&stored, dir.path()) else {
                return;
            };
            path
        } else {
            stored
        };
        for to in OUTPUTS {
            let output = dir.join(&format!("corpus.{}", extension(to)));
            let _ = std::fs::remove_file(&output);
            let report = run_convert(&source, &output, &options(to));
            let flat = dir.join("flat.raw");
            run_ok(
                Command::new("qemu-img")
                    .args(["convert", "-f", qemu_format(to), "-O", "raw"])
                    .arg(&output)
                    .arg(&flat),
            );
            assert_eq!(&sha256_file(&flat), sha256, "{name} -> {to:?}");
            std::fs::remove_file(&flat).unwrap();
            check_output(&output, to, &source, "vpc", report.virtual_size);
        }
    }
}

/// The dfvfs chain (bad checksums everywhere, no parent locators: opened with checksums
/// ignored) flattens to the disk libvhdi reads; a chain whose parent is missing fails
/// with ParentNotFound and writes nothing.
#[test]
fn corpus_chain_with_bad_checksums_and_a_missing_parent() {
    if !require_tool("sha256sum") {
        return;
    }
    let Some(corpus) = corpus_dir() else {
        return;
    };
    let dir = TempDir::new("convert-corpus-chain");
    for name in [
        "image.vhd",
        "image-differential.vhd",
        "fat-differential.vhd",
    ] {
        std::fs::copy(corpus.join("dfvfs").join(name), dir.join(name)).unwrap();
    }
    let ignore = ConvertOptions {
        open: OpenOptions {
            ignore_checksums: true,
            ..OpenOptions::default()
        },
        ..options(OutputFormat::Raw)
    };
    let output = dir.join("flat.raw");
    run_convert(&dir.join("image-differential.vhd"), &output, &ignore);
    assert_eq!(
        sha256_file(&output),
        "c6db12a7db548e193c29420c1b4533e4708b20c5033db5cc29ef075d48316d25"
    );
    // Strict checksums: the bad footer makes Auto take it as raw, which only Vhd refuses.
    let strict = ConvertOptions {
        source_format: SourceFormat::Vhd,
        ..options(OutputFormat::Raw)
    };
    let err = convert(
        &dir.join("image-differential.vhd"),
        &dir.join("strict.raw"),
        &strict,
        Progress::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_CHECKSUM", "{err}");

    let before = folder_names(dir.path());
    let err = convert(
        &dir.join("fat-differential.vhd"),
        &dir.join("fat.raw"),
        &options(OutputFormat::Dynamic),
        Progress::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_PARENT_NOT_FOUND", "{err}");
    assert_eq!(folder_names(dir.path()), before);
}

// ---------------------------------------------------------------------------------------------
// Source detection

/// Auto takes a VHD as a VHD and anything else as raw; Raw takes a VHD file's bytes as
/// they are.
#[test]
fn source_format_detection() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("convert-detect");
    let mut rng = Rng::new("convert detect");
    let raw = dir.join("source.raw");
    let data = raw_source(&raw, &mut rng, 3 * MIB);
    let vhd = dir.join("source.vhd");
    qemu_vhd(&raw, &vhd, "dynamic");

    let auto = open_source(&vhd, SourceFormat::Auto, &OpenOptions::default()).unwrap();
    assert_eq!(read_all(auto.as_ref()), data);
    drop(auto);
    let as_raw = open_source(&vhd, SourceFormat::Raw, &OpenOptions::default()).unwrap();
    assert_eq!(read_all(as_raw.as_ref()), std::fs::read(&vhd).unwrap());
    drop(as_raw);
    let auto_raw = open_source(&raw, SourceFormat::Auto, &OpenOptions::default()).unwrap();
    assert_eq!(read_all(auto_raw.as_ref()), data);
    let err = open_source(&raw, SourceFormat::Vhd, &OpenOptions::default())
        .err()
        .expect("a raw file is not a VHD");
    assert_eq!(err.code(), "ERR_VHD_NOT_VHD", "{err}");

    // The VHD file converted as raw is its own bytes; qemu agrees.
    let output = dir.join("bytes.raw");
    run_convert(
        &vhd,
        &output,
        &ConvertOptions {
            source_format: SourceFormat::Raw,
            ..options(OutputFormat::Raw)
        },
    );
    assert_qemu_same(&vhd, "raw", &output, "raw");

    // Auto takes a fixed image ending in the 511-byte footer of old Virtual PC images for a
    // VHD; its disk is qemu's source.
    let fixed = dir.join("short-footer.vhd");
    qemu_vhd(&raw, &fixed, "fixed");
    let len = file_len(&fixed);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fixed)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let output = dir.join("short-footer.raw");
    let report = run_convert(&fixed, &output, &options(OutputFormat::Raw));
    assert_qemu_same(&raw, "raw", &output, "raw");
    assert_eq!(file_len(&output), 3 * MIB);
    assert_eq!(report.detection.format, SourceFormat::Vhd);
    assert_eq!(report.detection.warning, None);

    // A dynamic image whose end footer is broken: only its footer copy says "VHD", which
    // a raw disk's guest could have written, so Auto reads its bytes as raw and warns;
    // said to be a VHD, it is read through the copy (qemu's source again).
    let broken = dir.join("broken-end.vhd");
    std::fs::copy(&vhd, &broken).unwrap();
    patch_file(&broken, file_len(&broken) - 512, b"garbage!");
    let output = dir.join("broken-auto.raw");
    let report = run_convert(&broken, &output, &options(OutputFormat::Raw));
    assert_eq!(report.detection.format, SourceFormat::Raw);
    let warning = report.detection.warning.expect("a warning");
    assert_mentions(&warning, &[&broken.display().to_string(), "raw", "'vhd'"]);
    assert_same_bytes(
        &std::fs::read(&output).unwrap(),
        &std::fs::read(&broken).unwrap(),
        "the broken image's bytes, read as raw",
    );
    let output = dir.join("broken-vhd.raw");
    let report = run_convert(
        &broken,
        &output,
        &ConvertOptions {
            source_format: SourceFormat::Vhd,
            ..options(OutputFormat::Raw)
        },
    );
    assert_qemu_same(&raw, "raw", &output, "raw");
    assert_eq!(file_len(&output), 3 * MIB);
    assert_eq!(report.detection.format, SourceFormat::Vhd);
    assert_eq!(report.detection.warning, None);
}

/// The first sectors of a 1 MiB dynamic VHD (footer copy, header, BAT, one block of data),
/// followed by 3 MiB of other data: a 4 MiB raw disk whose guest wrote what a VHD starts
/// with.
fn raw_disk_starting_like_a_vhd(dir: &TempDir, rng: &mut Rng) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let inner = dir.join("inner.vhd");
    let mut image = create(
        &inner,
        &CreateOptions {
            block_size: 64 << 10,
            ..CreateOptions::new(DiskType::Dynamic, MIB)
        },
    )
    .unwrap();
    let inner_data = rng.bytes(4096);
    image.write_at(&inner_data, 0).unwrap();
    drop(image);
    let mut inner_disk = vec![0u8; MIB as usize];
    inner_disk[..4096].copy_from_slice(&inner_data);
    let vhd = std::fs::read(&inner).unwrap();
    std::fs::remove_file(&inner).unwrap();
    // Everything but the end footer, then other data.
    let mut disk = vhd[..vhd.len() - 512].to_vec();
    disk.extend(rng.bytes(4 * MIB as usize - disk.len()));
    let path = dir.join("looks-like-a-vhd.raw");
    std::fs::write(&path, &disk).unwrap();
    (path, disk, inner_disk)
}

/// A raw disk whose first sector is a valid dynamic footer copy (and whose next ones are
/// the rest of a VHD's head) is not a VHD: Auto converts its own 4 MiB, byte for byte, to
/// every format and in the VHD stream, and says why; only `SourceFormat::Vhd` reads it
/// through the copy (as the 1 MiB disk it describes).
#[test]
fn a_raw_disk_whose_first_sector_is_a_footer_copy_stays_raw() {
    let dir = TempDir::new("convert-lone-copy");
    let mut rng = Rng::new("convert lone copy");
    let (raw, disk, inner_disk) = raw_disk_starting_like_a_vhd(&dir, &mut rng);
    for to in OUTPUTS {
        let output = dir.join(&format!("out.{}", extension(to)));
        let report = run_convert(&raw, &output, &options(to));
        assert_eq!(report.source_size, 4 * MIB, "{to:?}");
        assert_eq!(report.detection.format, SourceFormat::Raw, "{to:?}");
        assert!(
            report.detection.reason.contains("footer copy"),
            "{:?}",
            report.detection
        );
        let warning = report.detection.warning.expect("a warning");
        assert_mentions(&warning, &[&raw.display().to_string(), "raw", "'vhd'"]);
        let converted = match to {
            OutputFormat::Raw => std::fs::read(&output).unwrap(),
            _ => read_all(&Image::open(&output, &read_only()).unwrap()),
        };
        assert_same_bytes(&converted, &disk, &format!("{to:?} output"));
    }
    let (stream_source, detection) =
        open_source_with_detection(&raw, SourceFormat::Auto, &OpenOptions::default()).unwrap();
    assert_eq!(detection.format, SourceFormat::Raw);
    assert!(detection.warning.is_some());
    assert_eq!(read_all(stream_source.as_ref()), disk);
    drop(stream_source);

    // Said to be a VHD, it is one: the 1 MiB disk of its footer copy (read-only).
    let output = dir.join("as-vhd.raw");
    let report = run_convert(
        &raw,
        &output,
        &ConvertOptions {
            source_format: SourceFormat::Vhd,
            ..options(OutputFormat::Raw)
        },
    );
    assert_eq!(report.source_size, MIB);
    assert_eq!(report.detection.warning, None);
    assert_same_bytes(
        &std::fs::read(&output).unwrap(),
        &inner_disk,
        "the VHD's disk",
    );
}

/// A source that an image holds open read-write elsewhere is refused (Locked), and nothing
/// is written.
#[test]
fn source_open_read_write_elsewhere_is_refused() {
    let dir = TempDir::new("convert-source-locked");
    let source = dir.join("busy.vhd");
    let image = create(&source, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap();
    let err = convert(
        &source,
        &dir.join("out.vhd"),
        &options(OutputFormat::Fixed),
        Progress::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_LOCKED", "{err}");
    drop(image);
    assert_eq!(
        folder_names(dir.path()),
        BTreeSet::from(["busy.vhd".to_string()])
    );
}

// ---------------------------------------------------------------------------------------------
// Failures leave everything as it was

/// Cancelled mid-way: Error::Cancelled, no destination, no temporary file; an existing
/// destination being overwritten is untouched.
#[test]
fn cancel_leaves_no_output_and_the_old_destination_intact() {
    let dir = TempDir::new("convert-cancel");
    let mut rng = Rng::new("convert cancel");
    let raw = dir.join("source.raw");
    let size = 16 * MIB;
    let data = raw_source(&raw, &mut rng, size);
    let old = rng.bytes(5000);
    for to in OUTPUTS {
        for existing in [false, true] {
            let output = dir.join("out.img");
            let _ = std::fs::remove_file(&output);
            if existing {
                std::fs::write(&output, &old).unwrap();
            }
            let cancel = AtomicBool::new(false);
            let seen = Mutex::new(Vec::new());
            let on_progress = |done, total| {
                seen.lock().unwrap().push((done, total));
                if done >= 6 * MIB {
                    cancel.store(true, Ordering::Relaxed);
                }
            };
            let progress = Progress::default()
                .with_callback(&on_progress)
                .with_cancel(&cancel);
            let options = ConvertOptions {
                overwrite: true,
                ..options(to)
            };
            let err = convert(&raw, &output, &options, progress).unwrap_err();
            assert!(matches!(err, Error::Cancelled { .. }), "{to:?}: {err}");
            let seen = seen.into_inner().unwrap();
            assert!(
                seen.iter()
                    .all(|&(done, total)| total == size && done < size),
                "{seen:?}"
            );
            if existing {
                assert_eq!(std::fs::read(&output).unwrap(), old, "{to:?}");
            } else {
                assert!(!output.exists(), "{to:?}");
            }
            let mut expected = BTreeSet::from(["source.raw".to_string()]);
            if existing {
                expected.insert("out.img".into());
            }
            assert_eq!(folder_names(dir.path()), expected, "{to:?}");
        }
    }
    // The source is untouched and a VHD stream's scan stops the same way.
    assert_eq!(std::fs::read(&raw).unwrap(), data);
    let cancel = AtomicBool::new(true);
    let source = open_source(&raw, SourceFormat::Auto, &OpenOptions::default()).unwrap();
    let err = VhdStream::new(
        source,
        &options(OutputFormat::Dynamic),
        Progress::default().with_cancel(&cancel),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
}

/// Progress goes up to (size, size), never backwards, in chunks of a few MiB.
#[test]
fn progress_reports_every_chunk_up_to_the_virtual_size() {
    let dir = TempDir::new("convert-progress");
    let mut rng = Rng::new("convert progress");
    let raw = dir.join("source.raw");
    let size = 9 * MIB + 512;
    raw_source(&raw, &mut rng, size);
    for to in OUTPUTS {
        let seen = Mutex::new(Vec::new());
        let on_progress = |done, total| seen.lock().unwrap().push((done, total));
        let output = dir.join(&format!("out.{}", extension(to)));
        convert(
            &raw,
            &output,
            &options(to),
            Progress::default().with_callback(&on_progress),
        )
        .unwrap();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.last(), Some(&(size, size)), "{to:?}");
        assert!(seen.len() >= 4, "{to:?}: {seen:?}");
        assert!(
            seen.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[1].0 - w[0].0 <= 4 * MIB),
            "{to:?}: {seen:?}"
        );
        assert!(seen.iter().all(|&(_, total)| total == size));
    }
}

/// An existing destination: AlreadyExists (untouched) without overwrite; replaced with it;
/// Locked while an image holds it open.
#[test]
fn existing_destination_needs_overwrite_and_no_open_image() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("convert-existing");
    let mut rng = Rng::new("convert existing");
    let raw = dir.join("source.raw");
    raw_source(&raw, &mut rng, 4 * MIB);
    let output = dir.join("out.vhd");
    create(&output, &CreateOptions::new(DiskType::Dynamic, MIB)).unwrap();
    let before = std::fs::read(&output).unwrap();

    let err = convert(
        &raw,
        &output,
        &options(OutputFormat::Dynamic),
        Progress::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists(p) if p == &output),
        "{err}"
    );
    assert_eq!(std::fs::read(&output).unwrap(), before);

    let overwrite = ConvertOptions {
        overwrite: true,
        ..options(OutputFormat::Dynamic)
    };
    let open = open_rw(&output);
    let err = convert(&raw, &output, &overwrite, Progress::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_VHD_LOCKED", "{err}");
    drop(open);
    assert_eq!(std::fs::read(&output).unwrap(), before);

    run_convert(&raw, &output, &overwrite);
    assert_qemu_same(&raw, "raw", &output, "vpc");
    assert_eq!(
        folder_names(dir.path()),
        BTreeSet::from(["source.raw".to_string(), "out.vhd".to_string()])
    );
}

/// The destination may not be the source, nor a parent of it, by whatever name (another
/// path, a hard link, a symbolic link); nothing is touched.
#[test]
fn destination_that_is_the_source_or_a_parent_is_refused() {
    let dir = TempDir::new("convert-self");
    let mut rng = Rng::new("convert self");
    let chain = make_chain(&dir, &mut rng, DiskType::Dynamic, 2);
    let sums: Vec<Vec<u8>> = chain.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let top = &chain[1];
    let mut aliases = vec![
        top.clone(),
        dir.path().join(".").join("level1.vhd"),
        chain[0].clone(),
    ];
    std::fs::hard_link(top, dir.join("hard-link.vhd")).unwrap();
    aliases.push(dir.join("hard-link.vhd"));
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&chain[0], dir.join("sym-link.vhd")).unwrap();
        aliases.push(dir.join("sym-link.vhd"));
    }
    let overwrite = ConvertOptions {
        overwrite: true,
        ..options(OutputFormat::Fixed)
    };
    let names = folder_names(dir.path());
    for alias in &aliases {
        let err = convert(top, alias, &overwrite, Progress::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidArgument {
                    name: "destination",
                    ..
                }
            ),
            "{}: {err}",
            alias.display()
        );
    }
    for (path, before) in chain.iter().zip(&sums) {
        assert_eq!(&std::fs::read(path).unwrap(), before, "{}", path.display());
    }
    assert_eq!(folder_names(dir.path()), names);
}

/// A large, mostly empty image converts in the time of its data: unallocated ranges are not
/// read (the unit test of `scan_blocks` counts the reads), and the outputs hold the data
/// where it was, zeros elsewhere, and (dynamic) only the blocks that hold data.
#[test]
fn a_large_mostly_empty_image_converts_by_its_allocated_blocks() {
    let dir = TempDir::new("convert-sparse");
    let source = dir.join("big.vhd");
    let size = 64 << 30;
    let mut image = create(&source, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    let mut rng = Rng::new("convert-sparse");
    let writes = [
        (3 * MIB + 512, rng.bytes(4096)),
        (size - MIB, rng.bytes(MIB as usize)),
    ];
    for (at, bytes) in &writes {
        image.write_at(bytes, *at).unwrap();
    }
    image.flush().unwrap();
    drop(image);
    // A differencing child over it adds one more block, and flattens with it.
    let child = dir.join("child.vhd");
    let mut top = create(&child, &CreateOptions::differencing(&source)).unwrap();
    let late = (40 << 30, rng.bytes(512));
    top.write_at(&late.1, late.0).unwrap();
    top.flush().unwrap();
    drop(top);
    for (from, data) in [
        (&source, &writes[..]),
        (
            &child,
            &[writes[0].clone(), writes[1].clone(), late.clone()][..],
        ),
    ] {
        for to in OUTPUTS {
            let out = dir.join(&format!(
                "out-{}.{}",
                from.file_name().unwrap().to_string_lossy(),
                extension(to)
            ));
            let report = run_convert(from, &out, &options(to));
            assert_eq!(report.virtual_size, size);
            let disk = open_source(&out, SourceFormat::Auto, &OpenOptions::default()).unwrap();
            for (at, bytes) in data {
                let mut back = vec![0u8; bytes.len()];
                disk.read_at(&mut back, *at).unwrap();
                assert_same_bytes(&back, bytes, &format!("{to:?} from {}", from.display()));
            }
            let mut zeros = vec![1u8; MIB as usize];
            disk.read_at(&mut zeros, 20 << 30).unwrap();
            assert!(
                zeros.iter().all(|&b| b == 0),
                "{to:?}: a hole reads as zeros"
            );
            if to == OutputFormat::Dynamic {
                assert_eq!(
                    report.allocated_blocks,
                    data.len() as u64,
                    "one block per write"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse raw sources

/// Bytes this process has taken from read system calls so far, holes included (`rchar` of
/// `/proc/self/io`, every thread of the process).
#[cfg(target_os = "linux")]
fn bytes_read_by_this_process() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap_or_else(|| panic!("no rchar in /proc/self/io: {io}"))
        .trim()
        .parse()
        .unwrap()
}

/// A sparse raw file of 16 GiB holding 4 MiB converts by its data: the holes the file
/// system knows (`SEEK_DATA`/`SEEK_HOLE`) are jumped over, not read (before, all 16 GiB
/// were read, for each output), so does a sparse fixed image made from it; the outputs
/// hold the data where it was and zeros elsewhere, and raw and fixed outputs keep the
/// holes (they take a few MiB of disk).
#[cfg(target_os = "linux")]
#[test]
fn a_sparse_raw_file_converts_by_its_data_and_leaves_holes() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let dir = TempDir::new("convert-sparse-raw");
    let raw = dir.join("sparse.raw");
    let size = 16 << 30;
    let mut rng = Rng::new("convert-sparse-raw");
    // Data inside a chunk, across a chunk boundary, and at the very end.
    let writes = [
        (5 * MIB + 4096, rng.bytes(64 << 10)),
        ((10 << 30) - MIB, rng.bytes(3 * MIB as usize)),
        (size - 4096, rng.bytes(4096)),
    ];
    {
        let file = std::fs::File::create(&raw).unwrap();
        file.set_len(size).unwrap();
        for (at, bytes) in &writes {
            file.write_all_at(bytes, *at).unwrap();
        }
    }
    let on_disk = |path: &Path| std::fs::metadata(path).unwrap().blocks() * 512;
    if on_disk(&raw) > 64 * MIB {
        skip("the temporary folder's file system keeps no holes in sparse files");
        return;
    }
    let fixed = dir.join("out.fixed.vhd");
    for (from, to) in [
        (&raw, OutputFormat::Raw),
        (&raw, OutputFormat::Fixed),
        (&raw, OutputFormat::Dynamic),
        // The sparse fixed image just made, as a source.
        (&fixed, OutputFormat::Dynamic),
    ] {
        let out = if from == &raw {
            dir.join(&format!("out.{}", extension(to)))
        } else {
            dir.join("from-fixed.dynamic.vhd")
        };
        let before = bytes_read_by_this_process();
        let report = run_convert(from, &out, &options(to));
        let read = bytes_read_by_this_process() - before;
        let what = format!("{to:?} from {}", from.display());
        // The data is 4 MiB, read in 2 MiB chunks (other tests of this binary read too).
        assert!(read < 1 << 30, "{what}: read {read} bytes");
        assert_eq!(report.virtual_size, size, "{what}");
        if to != OutputFormat::Dynamic {
            assert!(
                on_disk(&out) < 64 * MIB,
                "{what}: {} bytes on disk",
                on_disk(&out)
            );
        }
        let disk = open_source(&out, SourceFormat::Auto, &OpenOptions::default()).unwrap();
        for (at, bytes) in &writes {
            let mut back = vec![0u8; bytes.len()];
            disk.read_at(&mut back, *at).unwrap();
            assert_same_bytes(&back, bytes, &what);
        }
        for at in [0, 5 * MIB, 6 * MIB, 8 << 30, size - MIB] {
            let mut back = vec![1u8; 4096];
            disk.read_at(&mut back, at).unwrap();
            let expected: Vec<u8> = (0..4096u64)
                .map(|i| {
                    writes
                        .iter()
                        .find(|(w, b)| (*w..*w + b.len() as u64).contains(&(at + i)))
                        .map_or(0, |(w, b)| b[(at + i - w) as usize])
                })
                .collect();
            assert_same_bytes(&back, &expected, &format!("{what}, at {at}"));
        }
        if to == OutputFormat::Dynamic {
            // 5 MiB, 10 GiB - 1 MiB (two blocks), the last block.
            assert_eq!(report.allocated_blocks, 4, "{what}");
        }
    }
}

/// A raw disk whose file is cut while it is read fails as a read past the end of the file
/// would, instead of taking the missing part for holes (zeros).
#[cfg(target_os = "linux")]
#[test]
fn a_raw_disk_cut_while_it_is_read_fails_instead_of_reading_zeros() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("convert-raw-cut");
    let raw = dir.join("cut.raw");
    let file = std::fs::File::create(&raw).unwrap();
    file.set_len(64 * MIB).unwrap();
    file.write_all_at(&[7; 4096], 0).unwrap();
    file.write_all_at(&[9; 4096], 32 * MIB).unwrap();
    let disk = vhd_core::RawDisk::open(&raw).unwrap();
    let data = disk.next_data(0).unwrap().expect("data at 0");
    assert_eq!(data.start, 0);
    let next = disk.next_data(MIB).unwrap().expect("data at 32 MiB");
    assert!(
        next.start <= 32 * MIB && next.end > 32 * MIB && next.end <= 64 * MIB,
        "{next:?}"
    );
    assert_eq!(disk.next_data(33 * MIB).unwrap(), None, "holes to the end");
    assert_eq!(disk.next_data(64 * MIB).unwrap(), None, "the end");
    file.set_len(2 * MIB).unwrap();
    match disk.next_data(4 * MIB) {
        Err(Error::Truncated { file_size, .. }) => assert_eq!(file_size, 2 * MIB),
        other => panic!("a cut file must fail: {other:?}"),
    }
}

/// tmpfs (`/dev/shm`) knows its holes too: a raw disk there is read by its data.
#[cfg(target_os = "linux")]
#[test]
fn a_sparse_raw_file_on_tmpfs_is_read_by_its_data() {
    use std::os::unix::fs::FileExt;
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        skip("no /dev/shm");
        return;
    }
    let raw = shm.join(format!("vhd-test-sparse-{}.raw", std::process::id()));
    let file = std::fs::File::create(&raw).unwrap();
    file.set_len(1 << 30).unwrap();
    file.write_all_at(&[5; 4096], 700 * MIB).unwrap();
    let disk = vhd_core::RawDisk::open(&raw).unwrap();
    let next = disk.next_data(0).unwrap();
    let _ = std::fs::remove_file(&raw);
    let next = next.expect("data at 700 MiB");
    assert!(
        next.start > 600 * MIB && next.start <= 700 * MIB && next.end <= 701 * MIB,
        "{next:?}"
    );
}
