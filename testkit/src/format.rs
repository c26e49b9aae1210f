//! The format's arithmetic and byte layout, written independently of the library (so that
//! tests do not check the library against itself): checksums, the specification's CHS
//! geometry, big-endian fields, BAT entries read from the file itself.

use std::io::{Read, Write};
use std::path::Path;

/// The VHD checksum: one's complement of the byte sum, with the checksum field left out.
pub fn vhd_checksum(bytes: &[u8], field: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

/// Stores the right checksum in a 512-byte footer (field at 64).
pub fn fix_footer_checksum(footer: &mut [u8]) {
    let c = vhd_checksum(&footer[..512], 64);
    footer[64..68].copy_from_slice(&c.to_be_bytes());
}

/// Stores the right checksum in a 1024-byte dynamic header (field at 36).
pub fn fix_header_checksum(header: &mut [u8]) {
    let c = vhd_checksum(&header[..1024], 36);
    header[36..40].copy_from_slice(&c.to_be_bytes());
}

/// CHS geometry (cylinders, heads, sectors per track) for `total_sectors`, transcribed from
/// the specification's appendix.
pub fn spec_geometry(total_sectors: u64) -> (u64, u64, u64) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        let mut s = 17;
        let mut c = total / s;
        let mut h = c.div_ceil(1024);
        if h < 4 {
            h = 4;
        }
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    (cth / heads, heads, spt)
}

/// The big-endian `u32` at `at` in `b`.
pub fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The big-endian `u64` at `at` in `b`.
pub fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads `len` bytes of a file at `offset`.
pub fn file_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Overwrites bytes of a file at `offset`.
pub fn patch_file(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// The file's length in bytes.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The file offset of BAT entry `block`, found through the file's own footer and header
/// (not through the library, which is what the tests check).
pub fn bat_entry_offset(path: &Path, block: u32) -> u64 {
    let footer = file_bytes(path, file_len(path) - 512, 512);
    let header = file_bytes(path, be_u64(&footer, 16), 1024);
    be_u64(&header, 16) + 4 * u64::from(block)
}

/// BAT entry `block` as the file holds it (see `bat_entry_offset`).
pub fn bat_entry_in_file(path: &Path, block: u32) -> u32 {
    be_u32(&file_bytes(path, bat_entry_offset(path, block), 4), 0)
}

/// The text of UTF-16LE bytes (a `W2ku`/`W2ru` locator payload), decoded here rather than
/// by the library.
pub fn utf16le_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}
