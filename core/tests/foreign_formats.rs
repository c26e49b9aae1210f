//! Files that are not VHDs: opening one says "X is not a VHD image" and what it looks like;
//! `convert` with auto-detection refuses another image format (made by qemu-img), an ISO
//! 9660 image or a compressed file instead of wrapping its bytes as a raw disk, and reads
//! it as raw only when told to.

use std::path::Path;
use std::process::Command;
use vhd_core::ops::{convert, ConvertOptions, OutputFormat, Progress, SourceFormat};
use vhd_core::sniff::KnownFormat;
use vhd_core::{Error, Hint, Image, OpenOptions};
use vhd_testkit::*;

/// A minimal ISO 9660 image: 16 empty system-area sectors, a primary volume descriptor
/// (type 1, `CD001`, version 1) and a terminator (type 255), 2048 bytes each.
fn iso_image(path: &Path) {
    let mut bytes = vec![0u8; 18 * 2048];
    let pvd = 16 * 2048;
    bytes[pvd] = 1;
    bytes[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    bytes[pvd + 6] = 1;
    let end = 17 * 2048;
    bytes[end] = 255;
    bytes[end + 1..end + 6].copy_from_slice(b"CD001");
    bytes[end + 6] = 1;
    std::fs::write(path, bytes).unwrap();
}

/// Files of other formats, each with what it must be recognised as: made by qemu-img
/// when it is installed (skipped otherwise, failing under CI), and by hand.
fn foreign_files(dir: &TempDir) -> Vec<(std::path::PathBuf, KnownFormat)> {
    let mut files = Vec::new();
    let iso = dir.join("cd.iso");
    iso_image(&iso);
    files.push((iso, KnownFormat::Iso9660));
    let gz = dir.join("disk.raw.gz");
    let mut gzip = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gzip.resize(4096, 0);
    std::fs::write(&gz, gzip).unwrap();
    files.push((gz, KnownFormat::Gzip));
    if require_qemu() {
        for (format, known) in [
            ("qcow2", KnownFormat::Qcow2),
            ("vmdk", KnownFormat::VmdkSparse),
            ("vhdx", KnownFormat::Vhdx),
            ("vdi", KnownFormat::Vdi),
        ] {
            let path = dir.join(&format!("disk.{format}"));
            let status = Command::new("qemu-img")
                .args(["create", "-q", "-f", format])
                .arg(&path)
                .arg("4M")
                .status()
                .unwrap();
            assert!(status.success(), "qemu-img create -f {format}");
            files.push((path, known));
        }
    }
    files
}

#[test]
fn opening_a_file_of_another_format_says_it_is_not_a_vhd_and_what_it_is() {
    let dir = TempDir::new("foreign-open");
    for (path, known) in foreign_files(&dir) {
        let e = Image::open(&path, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_NOT_VHD", "{}: {e}", path.display());
        assert!(
            matches!(&e, Error::NotVhd { looks_like: Some(k), path: p, .. } if *k == known && *p == path),
            "{}: {e:?}",
            path.display()
        );
        let message = e.to_string();
        let expected = format!(
            "{} is not a VHD image (it looks like {})",
            path.display(),
            known.description()
        );
        assert_eq!(message, expected);
    }
}

#[test]
fn files_shorter_than_a_footer_are_not_vhds_and_say_their_size() {
    let dir = TempDir::new("foreign-short");
    for size in [0usize, 100, 511] {
        let path = dir.join(&format!("short-{size}.bin"));
        std::fs::write(&path, vec![0x42u8; size]).unwrap();
        let e = Image::open(&path, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_NOT_VHD", "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is not a VHD image (it is {size} bytes long; a VHD has at least a \
                 512-byte footer)",
                path.display()
            )
        );
    }
}

#[test]
fn auto_detected_conversion_refuses_other_formats_and_raw_takes_their_bytes() {
    let dir = TempDir::new("foreign-convert");
    for (path, known) in foreign_files(&dir) {
        let output = dir.join("out.vhd");
        let options = ConvertOptions::new(OutputFormat::Dynamic);
        let e = convert(&path, &output, &options, Progress::default()).unwrap_err();
        assert_eq!(
            e.code(),
            "ERR_VHD_FOREIGN_FORMAT",
            "{}: {e}",
            path.display()
        );
        assert!(
            matches!(&e, Error::ForeignFormat { format, .. } if *format == known),
            "{e:?}"
        );
        assert_eq!(e.hint(), Some(Hint::SourceRaw));
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("{} is {}", path.display(), known.description())),
            "{message}"
        );
        assert!(!output.exists(), "nothing is written");
        // Told to, it reads the file's bytes as a raw disk.
        let raw = ConvertOptions {
            source_format: SourceFormat::Raw,
            ..options
        };
        let report = convert(&path, &output, &raw, Progress::default()).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(report.source_size, size, "{}", path.display());
        std::fs::remove_file(&output).unwrap();
    }
}

#[test]
fn a_raw_disk_with_a_partition_table_still_converts_as_raw() {
    let dir = TempDir::new("foreign-mbr");
    let path = dir.join("disk.raw");
    let mut bytes = vec![0u8; 1 << 20];
    bytes[510] = 0x55;
    bytes[511] = 0xaa;
    std::fs::write(&path, &bytes).unwrap();
    let output = dir.join("out.vhd");
    let report = convert(
        &path,
        &output,
        &ConvertOptions::new(OutputFormat::Dynamic),
        Progress::default(),
    )
    .unwrap();
    assert_eq!(report.detection.format, SourceFormat::Raw);
}
