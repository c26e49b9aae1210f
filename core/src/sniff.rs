//! What a file that is not a VHD looks like: the one place that knows the signatures of
//! other disk-image and archive formats, so that opening one says "x.qcow2 is not a VHD
//! image: it is a qcow2 image" instead of a bad footer cookie, and `convert` refuses to
//! wrap a qcow2 or VMDK file as if its bytes were a raw disk.
//!
//! Only the file's first [`SNIFF_LENGTH`] bytes are read (the ISO 9660 signature is the
//! farthest, at 0x8001), whatever the file's size.

use crate::storage::Storage;

/// How many bytes from the start of a file [`sniff`] reads at most.
pub const SNIFF_LENGTH: usize = 0x8800;

/// A file format recognised by its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnownFormat {
    /// QEMU's qcow2 (or qcow), `QFI\xfb` at 0.
    Qcow2,
    /// QEMU's QED, `QED\0` at 0.
    Qed,
    /// A VMDK sparse extent (`KDMV` at 0, also stream-optimized).
    VmdkSparse,
    /// A VMDK text descriptor (`# Disk DescriptorFile`), which names its extents.
    VmdkDescriptor,
    /// Hyper-V's VHDX, `vhdxfile` at 0.
    Vhdx,
    /// VirtualBox's VDI, signature 0xbeda107f at 64.
    Vdi,
    /// Parallels' disk format.
    Parallels,
    /// An ISO 9660 CD/DVD image, `CD001` at 0x8001: raw bytes of optical media.
    Iso9660,
    /// A gzip stream.
    Gzip,
    /// An xz stream.
    Xz,
    /// A bzip2 stream.
    Bzip2,
    /// A Zstandard stream.
    Zstd,
    /// A ZIP archive.
    Zip,
    /// A raw disk with a GUID partition table (`EFI PART` at 512).
    RawGpt,
    /// A raw disk (or partition) with a boot sector signature (0x55 0xaa at 510).
    RawBootSector,
}

impl KnownFormat {
    /// The format's name in messages, e.g. "a qcow2 image".
    pub fn description(self) -> &'static str {
        match self {
            KnownFormat::Qcow2 => "a qcow2 image",
            KnownFormat::Qed => "a QED image",
            KnownFormat::VmdkSparse => "a VMDK image (sparse extent)",
            KnownFormat::VmdkDescriptor => "a VMDK descriptor",
            KnownFormat::Vhdx => "a VHDX image",
            KnownFormat::Vdi => "a VirtualBox VDI image",
            KnownFormat::Parallels => "a Parallels image",
            KnownFormat::Iso9660 => "an ISO 9660 CD/DVD image",
            KnownFormat::Gzip => "a gzip-compressed file",
            KnownFormat::Xz => "an xz-compressed file",
            KnownFormat::Bzip2 => "a bzip2-compressed file",
            KnownFormat::Zstd => "a Zstandard-compressed file",
            KnownFormat::Zip => "a ZIP archive",
            KnownFormat::RawGpt => "a raw disk with a GPT partition table",
            KnownFormat::RawBootSector => "a raw disk with a boot sector (MBR)",
        }
    }

    /// Whether the file holds a disk only in some encoding of its own (another image
    /// format, a compressed stream, an archive): its bytes are not the disk's, so reading
    /// them as a raw disk would make a VHD of the container, not of the disk in it. Raw
    /// disks with a partition table and ISO 9660 images are raw bytes of a disk, but an
    /// ISO is rarely meant as a hard disk, so it is counted here too: a conversion that
    /// wants it says so (`--from raw`).
    pub fn is_container(self) -> bool {
        !matches!(self, KnownFormat::RawGpt | KnownFormat::RawBootSector)
    }

    /// What to do instead of reading the file as a raw disk, in words (no option names).
    pub fn advice(self) -> &'static str {
        match self {
            KnownFormat::Gzip
            | KnownFormat::Xz
            | KnownFormat::Bzip2
            | KnownFormat::Zstd
            | KnownFormat::Zip => "decompress it first",
            KnownFormat::Iso9660 => "it is the raw bytes of a CD/DVD",
            _ => "convert it with qemu-img convert -O vpc",
        }
    }
}

impl std::fmt::Display for KnownFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

/// What the start of `file` looks like, if it has a signature this module knows. Reads at
/// most [`SNIFF_LENGTH`] bytes; a file that cannot be read is `None`.
pub fn sniff(file: &dyn Storage) -> Option<KnownFormat> {
    let size = file.file_size().ok()?;
    let length = size.min(SNIFF_LENGTH as u64) as usize;
    let mut bytes = vec![0u8; length];
    file.read_exact_at(&mut bytes, 0).ok()?;
    sniff_bytes(&bytes)
}

/// [`sniff`] on the first bytes of a file (as many as there are, up to [`SNIFF_LENGTH`]).
pub fn sniff_bytes(bytes: &[u8]) -> Option<KnownFormat> {
    let at = |offset: usize, signature: &[u8]| {
        bytes
            .get(offset..offset + signature.len())
            .is_some_and(|b| b == signature)
    };
    let signatures: [(usize, &[u8], KnownFormat); 13] = [
        (0, b"QFI\xfb", KnownFormat::Qcow2),
        (0, b"QED\0", KnownFormat::Qed),
        (0, b"KDMV", KnownFormat::VmdkSparse),
        (0, b"# Disk DescriptorFile", KnownFormat::VmdkDescriptor),
        (0, b"vhdxfile", KnownFormat::Vhdx),
        (64, &0xbeda_107f_u32.to_le_bytes(), KnownFormat::Vdi),
        (0, b"WithoutFreeSpace", KnownFormat::Parallels),
        (0, b"WithouFreSpacExt", KnownFormat::Parallels),
        (0, b"\x1f\x8b", KnownFormat::Gzip),
        (0, b"\xfd7zXZ\0", KnownFormat::Xz),
        (0, b"BZh", KnownFormat::Bzip2),
        (0, b"\x28\xb5\x2f\xfd", KnownFormat::Zstd),
        (0, b"PK\x03\x04", KnownFormat::Zip),
    ];
    if let Some((_, _, format)) = signatures.iter().find(|(o, s, _)| at(*o, s)) {
        return Some(*format);
    }
    // The primary volume descriptor is in sector 16 of 2048 bytes; some images start
    // with a second or third descriptor.
    if [0x8001, 0x8801, 0x9001].iter().any(|&o| at(o, b"CD001")) {
        return Some(KnownFormat::Iso9660);
    }
    if at(512, b"EFI PART") {
        return Some(KnownFormat::RawGpt);
    }
    if at(510, b"\x55\xaa") {
        return Some(KnownFormat::RawBootSector);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(offset: usize, signature: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; SNIFF_LENGTH];
        bytes[offset..offset + signature.len()].copy_from_slice(signature);
        bytes
    }

    #[test]
    fn each_signature_is_recognised_where_it_lies() {
        assert_eq!(sniff_bytes(&with(0, b"QFI\xfb")), Some(KnownFormat::Qcow2));
        assert_eq!(
            sniff_bytes(&with(0, b"KDMV")),
            Some(KnownFormat::VmdkSparse)
        );
        assert_eq!(sniff_bytes(&with(0, b"vhdxfile")), Some(KnownFormat::Vhdx));
        assert_eq!(
            sniff_bytes(&with(64, &[0x7f, 0x10, 0xda, 0xbe])),
            Some(KnownFormat::Vdi)
        );
        assert_eq!(
            sniff_bytes(&with(0x8001, b"CD001")),
            Some(KnownFormat::Iso9660)
        );
        assert_eq!(
            sniff_bytes(&with(512, b"EFI PART")),
            Some(KnownFormat::RawGpt)
        );
        assert_eq!(
            sniff_bytes(&with(510, b"\x55\xaa")),
            Some(KnownFormat::RawBootSector)
        );
        assert_eq!(sniff_bytes(&with(0, b"\x1f\x8b")), Some(KnownFormat::Gzip));
    }

    #[test]
    fn short_and_unknown_files_are_nothing() {
        assert_eq!(sniff_bytes(b""), None);
        assert_eq!(sniff_bytes(b"QF"), None);
        assert_eq!(sniff_bytes(&vec![0u8; SNIFF_LENGTH]), None);
    }

    #[test]
    fn raw_disks_are_not_containers() {
        assert!(!KnownFormat::RawGpt.is_container());
        assert!(!KnownFormat::RawBootSector.is_container());
        assert!(KnownFormat::Qcow2.is_container());
        assert!(KnownFormat::Iso9660.is_container());
    }
}
