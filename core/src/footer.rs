//! The hard disk footer: 512 bytes at the end of every VHD (and copied at offset 0 of
//! dynamic and differencing images).

use crate::checksum::{checksum, verify};
use crate::error::{Error, Result};
use crate::geometry::Geometry;
use byteorder::{BigEndian, ByteOrder};

/// Size of the footer on disk.
pub const FOOTER_SIZE: usize = 512;
/// The footer's cookie.
pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";
/// `data_offset` of a fixed disk, which has no dynamic header.
pub const NO_DATA_OFFSET: u64 = u64::MAX;
/// Format version 1.0, the only one there is.
pub const FORMAT_VERSION: u32 = 0x0001_0000;
/// Feature bit that the specification says must always be set.
pub const FEATURE_RESERVED: u32 = 0x0000_0002;
/// Feature bit marking a temporary disk.
pub const FEATURE_TEMPORARY: u32 = 0x0000_0001;
/// Creator host OS code for Windows, `Wi2k`.
pub const HOST_OS_WINDOWS: u32 = 0x5769_326B;
/// Creator host OS code for Macintosh, `Mac `.
pub const HOST_OS_MACINTOSH: u32 = 0x4D61_6320;
/// Seconds from the Unix epoch to the VHD epoch, 2000-01-01T00:00:00Z.
pub const VHD_EPOCH_UNIX_SECONDS: u64 = 946_684_800;

const CHECKSUM_FIELD: usize = 64;

/// The kind of image, footer field "disk type".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskType {
    /// Data first, footer last; the file is the virtual disk plus 512 bytes.
    Fixed = 2,
    /// Blocks allocated on first write, found through the block allocation table.
    Dynamic = 3,
    /// A dynamic image whose unwritten sectors come from a parent image.
    Differencing = 4,
}

impl DiskType {
    /// The footer's code for this type.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The type for a footer code, if it is one of the three that exist.
    pub fn from_code(code: u32) -> Option<DiskType> {
        match code {
            2 => Some(DiskType::Fixed),
            3 => Some(DiskType::Dynamic),
            4 => Some(DiskType::Differencing),
            _ => None,
        }
    }

    /// Lower-case name: "fixed", "dynamic" or "differencing" (what [`str::parse`] takes).
    pub fn name(self) -> &'static str {
        crate::names::name_of(&self, &DISK_TYPE_NAMES)
    }
}

/// The names of the disk types.
const DISK_TYPE_NAMES: [(&str, DiskType); 3] = [
    ("fixed", DiskType::Fixed),
    ("dynamic", DiskType::Dynamic),
    ("differencing", DiskType::Differencing),
];

crate::names::named!(DiskType, DISK_TYPE_NAMES);

/// Every field of the hard disk footer.
///
/// `checksum` is the value stored on disk; [`Footer::to_bytes`] writes it as is, so that
/// parsing and writing a footer gives back the same bytes. Call [`Footer::update_checksum`]
/// after changing a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub features: u32,
    pub format_version: u32,
    /// Offset of the dynamic disk header, or [`NO_DATA_OFFSET`] for fixed disks.
    pub data_offset: u64,
    /// Seconds since 2000-01-01T00:00:00Z.
    pub timestamp: u32,
    /// Four bytes naming the program that made the image (`win `, `qemu`, `vpc `, `d2v\0`…).
    pub creator_application: [u8; 4],
    /// Major version in the high 16 bits, minor in the low 16.
    pub creator_version: u32,
    pub creator_host_os: u32,
    pub original_size: u64,
    /// The virtual size in bytes.
    pub current_size: u64,
    pub geometry: Geometry,
    /// Raw disk type code; see [`Footer::disk_type`].
    pub disk_type_code: u32,
    pub checksum: u32,
    pub unique_id: [u8; 16],
    pub saved_state: u8,
    /// Bytes 85..512. Reserved, but some writers leave data there and the checksum covers
    /// it, so it is kept verbatim.
    pub reserved: [u8; 427],
}

impl Footer {
    /// Parses a footer, checking its cookie. `offset` is where it was read, for messages.
    ///
    /// The checksum is not verified here: see [`Footer::verify_checksum`].
    pub fn parse(bytes: &[u8; FOOTER_SIZE], offset: u64) -> Result<Footer> {
        if &bytes[0..8] != FOOTER_COOKIE {
            return Err(Error::BadCookie {
                path: None,
                structure: "footer",
                offset,
                expected: "conectix",
                found: String::from_utf8_lossy(&bytes[0..8]).into_owned(),
            });
        }
        let mut reserved = [0u8; 427];
        reserved.copy_from_slice(&bytes[85..512]);
        Ok(Footer {
            features: BigEndian::read_u32(&bytes[8..]),
            format_version: BigEndian::read_u32(&bytes[12..]),
            data_offset: BigEndian::read_u64(&bytes[16..]),
            timestamp: BigEndian::read_u32(&bytes[24..]),
            creator_application: bytes[28..32].try_into().unwrap(),
            creator_version: BigEndian::read_u32(&bytes[32..]),
            creator_host_os: BigEndian::read_u32(&bytes[36..]),
            original_size: BigEndian::read_u64(&bytes[40..]),
            current_size: BigEndian::read_u64(&bytes[48..]),
            geometry: Geometry::from_bytes(bytes[56..60].try_into().unwrap()),
            disk_type_code: BigEndian::read_u32(&bytes[60..]),
            checksum: BigEndian::read_u32(&bytes[64..]),
            unique_id: bytes[68..84].try_into().unwrap(),
            saved_state: bytes[84],
            reserved,
        })
    }

    /// The footer's 512 bytes, with the stored checksum.
    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0u8; FOOTER_SIZE];
        b[0..8].copy_from_slice(FOOTER_COOKIE);
        BigEndian::write_u32(&mut b[8..], self.features);
        BigEndian::write_u32(&mut b[12..], self.format_version);
        BigEndian::write_u64(&mut b[16..], self.data_offset);
        BigEndian::write_u32(&mut b[24..], self.timestamp);
        b[28..32].copy_from_slice(&self.creator_application);
        BigEndian::write_u32(&mut b[32..], self.creator_version);
        BigEndian::write_u32(&mut b[36..], self.creator_host_os);
        BigEndian::write_u64(&mut b[40..], self.original_size);
        BigEndian::write_u64(&mut b[48..], self.current_size);
        b[56..60].copy_from_slice(&self.geometry.to_bytes());
        BigEndian::write_u32(&mut b[60..], self.disk_type_code);
        BigEndian::write_u32(&mut b[64..], self.checksum);
        b[68..84].copy_from_slice(&self.unique_id);
        b[84] = self.saved_state;
        b[85..].copy_from_slice(&self.reserved);
        b
    }

    /// The checksum the footer's current fields call for.
    pub fn computed_checksum(&self) -> u32 {
        checksum(&self.to_bytes(), CHECKSUM_FIELD)
    }

    /// Stores the checksum the current fields call for.
    pub fn update_checksum(&mut self) {
        self.checksum = self.computed_checksum();
    }

    /// Fails with [`Error::Checksum`] when the stored checksum is wrong.
    pub fn verify_checksum(&self, offset: u64) -> Result<()> {
        verify("footer", offset, self.checksum, self.computed_checksum())
    }

    /// The disk type, if the code is one of fixed, dynamic or differencing.
    pub fn disk_type(&self) -> Option<DiskType> {
        DiskType::from_code(self.disk_type_code)
    }

    /// The time stamp as seconds since the Unix epoch.
    pub fn unix_timestamp(&self) -> u64 {
        VHD_EPOCH_UNIX_SECONDS + u64::from(self.timestamp)
    }

    /// The creator application with trailing spaces and NULs removed, e.g. `"win"`, `"d2v"`.
    pub fn creator_application_str(&self) -> String {
        String::from_utf8_lossy(&self.creator_application)
            .trim_end_matches([' ', '\0'])
            .to_string()
    }

    /// `(major, minor)` of the creator version.
    pub fn creator_version_parts(&self) -> (u16, u16) {
        (
            (self.creator_version >> 16) as u16,
            self.creator_version as u16,
        )
    }

    /// The size the CHS geometry describes, which Virtual PC-era readers (and qemu, for
    /// images whose creator is `vpc ` or `qemu`) take as the disk size.
    pub fn geometry_size(&self) -> u64 {
        self.geometry.size()
    }
}

/// A unique id in the usual text form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (bytes in
/// file order).
pub fn format_unique_id(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A file modification time as a VHD time stamp (seconds since 2000-01-01, saturating).
pub fn vhd_timestamp(time: std::time::SystemTime) -> u32 {
    let unix = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    unix.saturating_sub(VHD_EPOCH_UNIX_SECONDS)
        .min(u64::from(u32::MAX)) as u32
}

/// The current time as a VHD time stamp (seconds since 2000-01-01, saturating).
pub fn vhd_timestamp_now() -> u32 {
    vhd_timestamp(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The footer of the Windows 10 fixed image in node-vhd's test suite (footer.bin).
    pub(crate) const NODE_VHD_FOOTER: &str =
        "636f6e65637469780000000200010000ffffffffffffffff20dc650377696e20\
        000a00005769326b0000000000a000000000000000a00000012d041100000002\
        ffffe5d071a5d438d9d5f44b8d26726a7e7ef18e";

    fn node_vhd_footer() -> [u8; 512] {
        let hex: String = NODE_VHD_FOOTER.split_whitespace().collect();
        let mut b = [0u8; 512];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            b[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
        }
        b
    }

    #[test]
    fn parses_every_field_of_a_windows_footer() {
        let bytes = node_vhd_footer();
        let f = Footer::parse(&bytes, 0).unwrap();
        assert_eq!(f.features, 2);
        assert_eq!(f.format_version, FORMAT_VERSION);
        assert_eq!(f.data_offset, NO_DATA_OFFSET);
        assert_eq!(f.timestamp, 0x20DC_6503);
        assert_eq!(f.unix_timestamp() * 1000, 1_497_999_491_000);
        assert_eq!(&f.creator_application, b"win ");
        assert_eq!(f.creator_application_str(), "win");
        assert_eq!(f.creator_version_parts(), (10, 0));
        assert_eq!(f.creator_host_os, HOST_OS_WINDOWS);
        assert_eq!(f.original_size, 10_485_760);
        assert_eq!(f.current_size, 10_485_760);
        assert_eq!(f.geometry, Geometry::for_size(10_485_760));
        assert_eq!(f.disk_type(), Some(DiskType::Fixed));
        assert_eq!(f.checksum, 0xFFFF_E5D0);
        assert_eq!(f.unique_id[0], 0x71);
        assert_eq!(f.saved_state, 0);
        f.verify_checksum(0).unwrap();
        assert_eq!(f.to_bytes(), bytes);
    }

    #[test]
    fn bad_cookie_and_checksum_are_reported_with_offsets() {
        let mut bytes = node_vhd_footer();
        bytes[0] = b'X';
        let e = Footer::parse(&bytes, 4096).unwrap_err();
        assert!(matches!(e, Error::BadCookie { offset: 4096, .. }), "{e}");
        assert_eq!(e.code(), "ERR_VHD_BAD_COOKIE");

        let mut bytes = node_vhd_footer();
        bytes[40] ^= 1;
        let f = Footer::parse(&bytes, 512).unwrap();
        let e = f.verify_checksum(512).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Checksum {
                    stored: 0xFFFF_E5D0,
                    offset: 512,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("0xffffe5d0"), "{e}");
    }

    #[test]
    fn reserved_bytes_are_kept_and_checksummed() {
        let mut bytes = node_vhd_footer();
        bytes[300] = 0x55;
        let mut f = Footer::parse(&bytes, 0).unwrap();
        assert!(f.verify_checksum(0).is_err());
        f.update_checksum();
        f.verify_checksum(0).unwrap();
        assert_eq!(f.to_bytes()[300], 0x55);
    }

    #[test]
    fn creator_application_may_be_nul_padded() {
        let mut bytes = node_vhd_footer();
        bytes[28..32].copy_from_slice(b"d2v\0");
        assert_eq!(
            Footer::parse(&bytes, 0).unwrap().creator_application_str(),
            "d2v"
        );
    }
}
