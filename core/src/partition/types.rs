//! Well-known partition types: the names of MBR type bytes and GPT type GUIDs, as
//! `fdisk`/`sfdisk --list` (libfdisk) spell them.

use super::Guid;

/// The GPT type GUID of an EFI system partition.
pub const EFI_SYSTEM: Guid = Guid::from_fields(
    0xC12A_7328,
    0xF81F,
    0x11D2,
    *b"\xBA\x4B\x00\xA0\xC9\x3E\xC9\x3B",
);
/// The GPT type GUID of a Microsoft basic data partition (FAT, NTFS, exFAT).
pub const MICROSOFT_BASIC_DATA: Guid = Guid::from_fields(
    0xEBD0_A0A2,
    0xB9E5,
    0x4433,
    *b"\x87\xC0\x68\xB6\xB7\x26\x99\xC7",
);
/// The GPT type GUID of a Linux file system partition.
pub const LINUX_FILESYSTEM: Guid = Guid::from_fields(
    0x0FC6_3DAF,
    0x8483,
    0x4772,
    *b"\x8E\x79\x3D\x69\xD8\x47\x7D\xE4",
);

/// GPT type GUIDs and their names.
const GPT_TYPES: &[(Guid, &str)] = &[
    (EFI_SYSTEM, "EFI System"),
    (
        Guid::from_fields(
            0x2168_6148,
            0x6449,
            0x6E6F,
            *b"\x74\x4E\x65\x65\x64\x45\x46\x49",
        ),
        "BIOS boot",
    ),
    (MICROSOFT_BASIC_DATA, "Microsoft basic data"),
    (
        Guid::from_fields(
            0xE3C9_E316,
            0x0B5C,
            0x4DB8,
            *b"\x81\x7D\xF9\x2D\xF0\x02\x15\xAE",
        ),
        "Microsoft reserved",
    ),
    (
        Guid::from_fields(
            0xDE94_BBA4,
            0x06D1,
            0x4D40,
            *b"\xA1\x6A\xBF\xD5\x01\x79\xD6\xAC",
        ),
        "Windows recovery environment",
    ),
    (
        Guid::from_fields(
            0x5808_C8AA,
            0x7E8F,
            0x42E0,
            *b"\x85\xD2\xE1\xE9\x04\x34\xCF\xB3",
        ),
        "Microsoft LDM metadata",
    ),
    (
        Guid::from_fields(
            0xAF9B_60A0,
            0x1431,
            0x4F62,
            *b"\xBC\x68\x33\x11\x71\x4A\x69\xAD",
        ),
        "Microsoft LDM data",
    ),
    (LINUX_FILESYSTEM, "Linux filesystem"),
    (
        Guid::from_fields(
            0x0657_FD6D,
            0xA4AB,
            0x43C4,
            *b"\x84\xE5\x09\x33\xC8\x4B\x4F\x4F",
        ),
        "Linux swap",
    ),
    (
        Guid::from_fields(
            0xE6D6_D379,
            0xF507,
            0x44C2,
            *b"\xA2\x3C\x23\x8F\x2A\x3D\xF9\x28",
        ),
        "Linux LVM",
    ),
    (
        Guid::from_fields(
            0xA19D_880F,
            0x05FC,
            0x4D3B,
            *b"\xA0\x06\x74\x3F\x0F\x84\x91\x1E",
        ),
        "Linux RAID",
    ),
    (
        Guid::from_fields(
            0x933A_C7E1,
            0x2EB4,
            0x4F13,
            *b"\xB8\x44\x0E\x14\xE2\xAE\xF9\x15",
        ),
        "Linux home",
    ),
    (
        Guid::from_fields(
            0x3B8F_8425,
            0x20E0,
            0x4F3B,
            *b"\x90\x7F\x1A\x25\xA7\x6F\x98\xE8",
        ),
        "Linux server data",
    ),
    (
        Guid::from_fields(
            0x4F68_BCE3,
            0xE8CD,
            0x4DB1,
            *b"\x96\xE7\xFB\xCA\xF9\x84\xB7\x09",
        ),
        "Linux root (x86-64)",
    ),
    (
        Guid::from_fields(
            0x4447_9540,
            0xF297,
            0x41B2,
            *b"\x9A\xF7\xD1\x31\xD5\xF0\x45\x8A",
        ),
        "Linux root (x86)",
    ),
    (
        Guid::from_fields(
            0xB921_B045,
            0x1DF0,
            0x41C3,
            *b"\xAF\x44\x4C\x6F\x28\x0D\x3F\xAE",
        ),
        "Linux root (ARM-64)",
    ),
    (
        Guid::from_fields(
            0x8484_680C,
            0x9521,
            0x48C6,
            *b"\x9C\x11\xB0\x72\x06\x56\xF6\x9E",
        ),
        "Linux /usr (x86-64)",
    ),
    (
        Guid::from_fields(
            0xBC13_C2FF,
            0x59E6,
            0x4262,
            *b"\xA3\x52\xB2\x75\xFD\x6F\x71\x72",
        ),
        "Linux extended boot",
    ),
    (
        Guid::from_fields(
            0x8DA6_3339,
            0x0007,
            0x60C0,
            *b"\xC4\x36\x08\x3A\xC8\x23\x09\x08",
        ),
        "Linux reserved",
    ),
    (
        Guid::from_fields(
            0xCA7D_7CCB,
            0x63ED,
            0x4C53,
            *b"\x86\x1C\x17\x42\x53\x60\x59\xCC",
        ),
        "Linux LUKS",
    ),
    (
        Guid::from_fields(
            0x4846_5300,
            0x0000,
            0x11AA,
            *b"\xAA\x11\x00\x30\x65\x43\xEC\xAC",
        ),
        "Apple HFS/HFS+",
    ),
    (
        Guid::from_fields(
            0x7C34_74B3,
            0x6B6E,
            0x11D4,
            *b"\xBA\x6F\x00\x80\xC7\x52\xA9\x86",
        ),
        "FreeBSD UFS",
    ),
    (
        Guid::from_fields(
            0xFE3A_2A5D,
            0x4F32,
            0x41A7,
            *b"\xB7\x25\xAC\xCC\x32\x85\xA3\x09",
        ),
        "ChromeOS kernel",
    ),
];

/// MBR type bytes and their names.
const MBR_TYPES: &[(u8, &str)] = &[
    (0x01, "FAT12"),
    (0x04, "FAT16 <32M"),
    (0x05, "Extended"),
    (0x06, "FAT16"),
    (0x07, "HPFS/NTFS/exFAT"),
    (0x0B, "W95 FAT32"),
    (0x0C, "W95 FAT32 (LBA)"),
    (0x0E, "W95 FAT16 (LBA)"),
    (0x0F, "W95 Ext'd (LBA)"),
    (0x11, "Hidden FAT12"),
    (0x14, "Hidden FAT16 <32M"),
    (0x16, "Hidden FAT16"),
    (0x17, "Hidden HPFS/NTFS"),
    (0x1B, "Hidden W95 FAT32"),
    (0x1C, "Hidden W95 FAT32 (LBA)"),
    (0x1E, "Hidden W95 FAT16 (LBA)"),
    (0x27, "Hidden NTFS WinRE"),
    (0x82, "Linux swap / Solaris"),
    (0x83, "Linux"),
    (0x85, "Linux extended"),
    (0x86, "NTFS volume set"),
    (0x87, "NTFS volume set"),
    (0x8E, "Linux LVM"),
    (0xA5, "FreeBSD"),
    (0xA6, "OpenBSD"),
    (0xA8, "Darwin UFS"),
    (0xA9, "NetBSD"),
    (0xAF, "HFS / HFS+"),
    (0xEE, "GPT"),
    (0xEF, "EFI (FAT-12/16/32)"),
    (0xFD, "Linux raid autodetect"),
];

/// The name of a GPT partition type, when it is a well-known one.
pub fn gpt_type_name(guid: &Guid) -> Option<&'static str> {
    GPT_TYPES
        .iter()
        .find(|(g, _)| g == guid)
        .map(|(_, name)| *name)
}

/// The name of an MBR partition type byte, when it is a well-known one.
pub fn mbr_type_name(byte: u8) -> Option<&'static str> {
    MBR_TYPES
        .iter()
        .find(|(b, _)| *b == byte)
        .map(|(_, name)| *name)
}

/// True for the MBR types of an extended partition (the container of logical partitions,
/// found through a chain of EBRs): `0x05`, `0x0F` and `0x85`, as Linux and libfdisk take.
pub fn is_extended(byte: u8) -> bool {
    matches!(byte, 0x05 | 0x0F | 0x85)
}

/// The MBR type of the protective partition of a GPT disk.
pub const PROTECTIVE: u8 = 0xEE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_known_types() {
        assert_eq!(
            EFI_SYSTEM.to_string(),
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        );
        assert_eq!(gpt_type_name(&LINUX_FILESYSTEM), Some("Linux filesystem"));
        let bios: Guid = "21686148-6449-6e6f-744e-656564454649".parse().unwrap();
        assert_eq!(gpt_type_name(&bios), Some("BIOS boot"));
        assert_eq!(mbr_type_name(0x83), Some("Linux"));
        assert_eq!(mbr_type_name(0x42), None);
    }
}
