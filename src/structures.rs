//! vhd@0.5.0's structures and helpers, done by the core: the one form of a footer, header
//! and parent locator the binding gives JavaScript ([`footer_fields`], [`header_fields`]:
//! an open image's, and `VHD.Footer.parse` & co.'s through [`parse_footer`],
//! [`parse_header`], [`parse_locator`]), and the computations behind `VHD.checksum` and
//! `VHD.getDiskGeometry`. `lib/structures.js` checks the arguments first and gives them
//! their defaults; the checks are repeated here so that the native functions are safe on
//! their own.
//!
//! 64-bit fields are BigInts (`u64`), as in vhd@0.5.0; time stamps are milliseconds since
//! the Unix epoch, versions `{ major, minor }`, as there.

use crate::errors::{guard, ErrorClass, Failure};
use crate::options::{buffer_range, integer};
use crate::types::{
    DiskGeometry, FooterFields, HeaderFields, LocatorFields, ParsedHeader, Version,
};
use napi::bindgen_prelude::{BigInt, Buffer, Uint8ArraySlice, Utf16String};
use napi::Env;
use napi_derive::napi;
use vhd_core::dynamic_header::{DYNAMIC_HEADER_COOKIE, DYNAMIC_HEADER_SIZE, PARENT_LOCATOR_COUNT};
use vhd_core::footer::{FOOTER_COOKIE, FOOTER_SIZE, VHD_EPOCH_UNIX_SECONDS};
use vhd_core::parent_locator::PARENT_LOCATOR_ENTRY_SIZE;
use vhd_core::{DynamicHeader, Footer, Geometry, ParentLocator};

/// Where the checksum is in a footer and in a dynamic header.
const FOOTER_CHECKSUM_AT: usize = 64;
const HEADER_CHECKSUM_AT: usize = 36;

/// A VHD time stamp (seconds since 2000) as milliseconds since the Unix epoch (exact).
fn unix_ms(timestamp: u32) -> f64 {
    ((VHD_EPOCH_UNIX_SECONDS + u64::from(timestamp)) * 1000) as f64
}

/// A 32-bit version as `{ major, minor }` (its two 16-bit halves).
fn version(value: u32) -> Version {
    Version {
        major: value >> 16,
        minor: value & 0xFFFF,
    }
}

/// Latin-1 text up to the first NUL (vhd@0.5.0 keeps trailing spaces: `'win '`).
fn latin1_until_nul(bytes: &[u8]) -> Utf16String {
    let units: Vec<u16> = bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| u16::from(b))
        .collect();
    Utf16String::from(units)
}

/// Text as `N` Latin-1 bytes, NUL-padded: the low byte of each of its first `N` units, as
/// Node's `buffer.write(text, at, N, 'latin1')` writes it.
fn latin1_bytes<const N: usize>(text: &[u16]) -> [u8; N] {
    let mut bytes = [0u8; N];
    for (byte, unit) in bytes.iter_mut().zip(text) {
        *byte = (unit & 0xFF) as u8;
    }
    bytes
}

/// The first `N` bytes of `bytes`, zero-padded.
fn padded<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// A 64-bit field: a BigInt from 0 to 2^64 - 1.
fn uint64(value: &BigInt, field: &str) -> Result<u64, Failure> {
    match value.get_u64() {
        (false, value, true) => Ok(value),
        _ => Err(Failure::out_of_range(
            field,
            ">= 0n && <= 18446744073709551615n",
            "a BigInt out of range",
        )),
    }
}

/// A field narrower than the u32 it came as.
fn narrow<T: TryFrom<u32>>(value: u32, field: &str, max: u32) -> Result<T, Failure> {
    T::try_from(value)
        .map_err(|_| Failure::out_of_range(field, &format!("an integer >= 0 && <= {max}"), value))
}

/// `{ major, minor }` as the 32-bit field (16 bits each).
fn version_value(version: &Version, field: &str) -> Result<u32, Failure> {
    let major: u16 = narrow(version.major, &format!("{field}.major"), 0xFFFF)?;
    let minor: u16 = narrow(version.minor, &format!("{field}.minor"), 0xFFFF)?;
    Ok(u32::from(major) << 16 | u32::from(minor))
}

/// Milliseconds since the Unix epoch as whole seconds since 2000 (2000-01-01 to 2136-02-07).
fn vhd_seconds(ms: f64, field: &str) -> Result<u32, Failure> {
    let seconds = ((ms - (VHD_EPOCH_UNIX_SECONDS * 1000) as f64) / 1000.0).floor();
    if !(0.0..=f64::from(u32::MAX)).contains(&seconds) {
        return Err(Failure::out_of_range(
            field,
            "a time from 2000-01-01 to 2136-02-07 (ms since 1970)",
            ms,
        ));
    }
    Ok(seconds as u32)
}

/// `name` as the header's 256 UTF-16 units: cut to 256, never half a surrogate pair.
fn parent_name_field(name: &[u16]) -> [u8; 512] {
    let mut units = &name[..name.len().min(256)];
    if units.len() == 256 && (0xD800..=0xDBFF).contains(&units[255]) {
        units = &units[..255];
    }
    let mut bytes = [0u8; 512];
    for (pair, unit) in bytes.chunks_exact_mut(2).zip(units) {
        pair.copy_from_slice(&unit.to_be_bytes());
    }
    bytes
}

/// `bytes` with the checksum of the structure stored in its field at `at`.
fn with_checksum<const N: usize>(mut bytes: [u8; N], at: usize) -> [u8; N] {
    let sum = vhd_core::checksum::checksum(&bytes, at);
    bytes[at..at + 4].copy_from_slice(&sum.to_be_bytes());
    bytes
}

/// Every field of `footer`, as `VHD.Footer` holds it.
pub fn footer_fields(footer: &Footer) -> FooterFields {
    FooterFields {
        signature: latin1_until_nul(FOOTER_COOKIE),
        features: footer.features,
        format_version: version(footer.format_version),
        data_offset: BigInt::from(footer.data_offset),
        timestamp: unix_ms(footer.timestamp),
        creator_application: latin1_until_nul(&footer.creator_application),
        creator_version: version(footer.creator_version),
        creator_host_os: footer.creator_host_os,
        original_size: BigInt::from(footer.original_size),
        current_size: BigInt::from(footer.current_size),
        disk_geometry: footer.geometry.into(),
        disk_type: footer.disk_type_code,
        checksum: footer.checksum,
        uuid: Buffer::from(footer.unique_id.to_vec()),
        saved_state: u32::from(footer.saved_state),
        reserved: Buffer::from(footer.reserved.to_vec()),
    }
}

/// Every field of `header`, as `VHD.Header` holds it, with its first `locators` entries.
pub fn header_fields(header: &DynamicHeader, locators: usize) -> HeaderFields {
    HeaderFields {
        signature: latin1_until_nul(DYNAMIC_HEADER_COOKIE),
        data_offset: BigInt::from(header.data_offset),
        table_offset: BigInt::from(header.table_offset),
        header_version: version(header.header_version),
        max_table_entries: header.max_table_entries,
        sector_size: header.block_size,
        checksum: header.checksum,
        parent_id: Buffer::from(header.parent_unique_id.to_vec()),
        parent_timestamp: unix_ms(header.parent_timestamp),
        reserved1: header.reserved1,
        parent_name: Utf16String::from(header.parent_name_units()),
        parent_locators: header.parent_locators[..locators]
            .iter()
            .map(locator_fields)
            .collect(),
        reserved2: Buffer::from(header.reserved2.to_vec()),
    }
}

fn locator_fields(locator: &ParentLocator) -> LocatorFields {
    LocatorFields {
        platform_code: locator.platform_code,
        data_space: locator.platform_data_space,
        data_length: locator.platform_data_length,
        reserved: locator.reserved,
        data_offset: BigInt::from(locator.platform_data_offset),
    }
}

/// The footer `fields` describe, as 512 bytes with their checksum (vhd@0.5.0's
/// `Footer#write`: the signature is written as given, the stored checksum ignored).
fn footer_bytes_of(fields: &FooterFields) -> Result<[u8; FOOTER_SIZE], Failure> {
    let footer = Footer {
        features: fields.features,
        format_version: version_value(&fields.format_version, "formatVersion")?,
        data_offset: uint64(&fields.data_offset, "dataOffset")?,
        timestamp: vhd_seconds(fields.timestamp, "timestamp")?,
        creator_application: latin1_bytes(&fields.creator_application),
        creator_version: version_value(&fields.creator_version, "creatorVersion")?,
        creator_host_os: fields.creator_host_os,
        original_size: uint64(&fields.original_size, "originalSize")?,
        current_size: uint64(&fields.current_size, "currentSize")?,
        geometry: Geometry {
            cylinders: narrow(
                fields.disk_geometry.cylinders,
                "diskGeometry.cylinders",
                0xFFFF,
            )?,
            heads: narrow(fields.disk_geometry.heads, "diskGeometry.heads", 0xFF)?,
            sectors_per_track: narrow(fields.disk_geometry.sectors, "diskGeometry.sectors", 0xFF)?,
        },
        disk_type_code: fields.disk_type,
        checksum: 0,
        unique_id: padded(&fields.uuid),
        saved_state: narrow(fields.saved_state, "savedState", 0xFF)?,
        reserved: padded(&fields.reserved),
    };
    let mut bytes = footer.to_bytes();
    bytes[..8].copy_from_slice(&latin1_bytes::<8>(&fields.signature));
    Ok(with_checksum(bytes, FOOTER_CHECKSUM_AT))
}

/// The header `fields` describe, as 1024 bytes with their checksum (vhd@0.5.0's
/// `Header#write`).
fn header_bytes_of(fields: &HeaderFields) -> Result<[u8; DYNAMIC_HEADER_SIZE], Failure> {
    let mut parent_locators = [ParentLocator::default(); PARENT_LOCATOR_COUNT];
    for (slot, entry) in parent_locators.iter_mut().zip(&fields.parent_locators) {
        *slot = locator_of(entry)?;
    }
    let header = DynamicHeader {
        data_offset: uint64(&fields.data_offset, "dataOffset")?,
        table_offset: uint64(&fields.table_offset, "tableOffset")?,
        header_version: version_value(&fields.header_version, "headerVersion")?,
        max_table_entries: fields.max_table_entries,
        block_size: fields.sector_size,
        checksum: 0,
        parent_unique_id: padded(&fields.parent_id),
        parent_timestamp: vhd_seconds(fields.parent_timestamp, "parentTimestamp")?,
        reserved1: fields.reserved1,
        parent_unicode_name: parent_name_field(&fields.parent_name),
        parent_locators,
        reserved2: padded(&fields.reserved2),
    };
    let mut bytes = header.to_bytes();
    bytes[..8].copy_from_slice(&latin1_bytes::<8>(&fields.signature));
    Ok(with_checksum(bytes, HEADER_CHECKSUM_AT))
}

fn locator_of(fields: &LocatorFields) -> Result<ParentLocator, Failure> {
    Ok(ParentLocator {
        platform_code: fields.platform_code,
        platform_data_space: fields.data_space,
        platform_data_length: fields.data_length,
        reserved: fields.reserved,
        platform_data_offset: uint64(&fields.data_offset, "dataOffset")?,
    })
}

/// Entries up to the last one that is not all zeros (vhd@0.5.0's `Header#parse` gives no
/// more; an empty entry between used ones stays, so that slots keep their places).
fn used_locators(header: &DynamicHeader) -> usize {
    header
        .parent_locators
        .iter()
        .rposition(|l| l.to_bytes() != [0; PARENT_LOCATOR_ENTRY_SIZE])
        .map_or(0, |last| last + 1)
}

/// Fails unless `size` bytes at `offset` lie in a buffer of `length` bytes (the errors of
/// `lib/structures.js`'s own check, so that both say the same).
fn check_room(length: usize, offset: u64, size: usize, what: &str) -> Result<usize, Failure> {
    if length < size {
        return Err(Failure::new(
            ErrorClass::RangeError,
            "ERR_BUFFER_OUT_OF_BOUNDS",
            format!("The buffer ({length} bytes) is too short for a {what} ({size} bytes)"),
        ));
    }
    if offset > (length - size) as u64 {
        return Err(Failure::out_of_range(
            "offset",
            &format!(">= 0 && <= {}", length - size),
            offset,
        ));
    }
    // Inside the buffer: it fits in usize.
    Ok(offset as usize)
}

/// vhd@0.5.0's error for a structure without its cookie.
fn bad_cookie(what: &str, found: &[u8], expected: &[u8; 8]) -> Failure {
    Failure::new(
        ErrorClass::Error,
        "ERR_VHD_BAD_COOKIE",
        format!(
            "Invalid {what} signature \"{}\"; expected \"{}\"",
            found.iter().map(|&b| char::from(b)).collect::<String>(),
            expected.iter().map(|&b| char::from(b)).collect::<String>()
        ),
    )
}

/// The start offset of a footer: a whole number no larger than the buffer (the footer may
/// be shorter than 512 bytes there: see [`footer_bytes`]).
fn start(buffer_length: usize, offset: f64) -> Result<usize, Failure> {
    let offset = integer("offset", offset)?;
    if offset > buffer_length as u64 {
        return Err(Failure::out_of_range(
            "offset",
            &format!(">= 0 && <= {buffer_length}"),
            offset,
        ));
    }
    Ok(offset as usize)
}

/// The 512 bytes of the footer at `offset` of `buffer`, or one byte further on when only
/// there is the cookie (a 511-byte footer, as Virtual PC before 2004 wrote, read as the
/// last 512 bytes of its file); 511 bytes are enough (the last reserved byte reads as 0).
fn footer_bytes(buffer: &[u8], offset: usize) -> Result<[u8; FOOTER_SIZE], Failure> {
    let cookie_at = |at: usize| buffer.get(at..at + 8) == Some(&FOOTER_COOKIE[..]);
    let at = if !cookie_at(offset) && cookie_at(offset + 1) {
        offset + 1
    } else {
        offset
    };
    let wanted = if at > offset {
        FOOTER_SIZE - 1
    } else {
        FOOTER_SIZE
    };
    let available = wanted.min(buffer.len() - at.min(buffer.len()));
    if available < FOOTER_SIZE - 1 {
        check_room(buffer.len(), at as u64, FOOTER_SIZE, "footer")?;
    }
    let mut bytes = [0u8; FOOTER_SIZE];
    bytes[..available].copy_from_slice(&buffer[at..at + available]);
    if &bytes[..8] != FOOTER_COOKIE {
        return Err(bad_cookie("footer", &bytes[..8], FOOTER_COOKIE));
    }
    Ok(bytes)
}

fn parse_footer_at(buffer: &[u8], offset: f64) -> Result<FooterFields, Failure> {
    let bytes = footer_bytes(buffer, start(buffer.len(), offset)?)?;
    Ok(footer_fields(&Footer::parse(&bytes, 0)?))
}

fn parse_header_at(buffer: &[u8], offset: f64) -> Result<ParsedHeader, Failure> {
    let at = check_room(
        buffer.len(),
        integer("offset", offset)?,
        DYNAMIC_HEADER_SIZE,
        "dynamic disk header",
    )?;
    let bytes: &[u8; DYNAMIC_HEADER_SIZE] = buffer[at..at + DYNAMIC_HEADER_SIZE]
        .try_into()
        .expect("the room was checked");
    if &bytes[..8] != DYNAMIC_HEADER_COOKIE {
        return Err(bad_cookie("header", &bytes[..8], DYNAMIC_HEADER_COOKIE));
    }
    let header = DynamicHeader::parse(bytes, 0)?;
    Ok(ParsedHeader {
        calculated_checksum: header.computed_checksum(),
        header: header_fields(&header, used_locators(&header)),
    })
}

fn parse_locator_at(buffer: &[u8], offset: f64) -> Result<LocatorFields, Failure> {
    let at = check_room(
        buffer.len(),
        integer("offset", offset)?,
        PARENT_LOCATOR_ENTRY_SIZE,
        "parent locator entry",
    )?;
    let bytes = buffer[at..at + PARENT_LOCATOR_ENTRY_SIZE]
        .try_into()
        .expect("the room was checked");
    Ok(locator_fields(&ParentLocator::parse(bytes)))
}

/// The fields of the footer at `offset` of `buffer` (or one byte further on: a 511-byte
/// footer); fails with `ERR_VHD_BAD_COOKIE` without the `conectix` cookie. Nothing else is
/// checked: this is vhd@0.5.0's `Footer#parse`.
#[napi(catch_unwind)]
pub fn parse_footer(env: Env, buffer: Uint8ArraySlice, offset: f64) -> napi::Result<FooterFields> {
    guard(|| parse_footer_at(&buffer, offset)).map_err(|failure| failure.into_napi(&env))
}

/// The fields of the dynamic disk header at `offset` of `buffer` (its locator entries up
/// to the last used one) and the checksum its bytes call for; fails with
/// `ERR_VHD_BAD_COOKIE` without the `cxsparse` cookie (vhd@0.5.0's `Header#parse`).
#[napi(catch_unwind)]
pub fn parse_header(env: Env, buffer: Uint8ArraySlice, offset: f64) -> napi::Result<ParsedHeader> {
    guard(|| parse_header_at(&buffer, offset)).map_err(|failure| failure.into_napi(&env))
}

/// The 512 bytes of the footer `fields` describe, with their checksum (`VHD.Footer#write`;
/// lib/structures.js checks each field first, naming it).
#[napi(catch_unwind)]
pub fn write_footer(env: Env, fields: FooterFields) -> napi::Result<Buffer> {
    guard(|| Ok(Buffer::from(footer_bytes_of(&fields)?.to_vec())))
        .map_err(|failure| failure.into_napi(&env))
}

/// The 1024 bytes of the dynamic disk header `fields` describe, with their checksum
/// (`VHD.Header#write`).
#[napi(catch_unwind)]
pub fn write_header(env: Env, fields: HeaderFields) -> napi::Result<Buffer> {
    guard(|| Ok(Buffer::from(header_bytes_of(&fields)?.to_vec())))
        .map_err(|failure| failure.into_napi(&env))
}

/// The 24 bytes of the parent locator entry `fields` describe (`VHD.Locator#write`).
#[napi(catch_unwind)]
pub fn write_locator(env: Env, fields: LocatorFields) -> napi::Result<Buffer> {
    guard(|| Ok(Buffer::from(locator_of(&fields)?.to_bytes().to_vec())))
        .map_err(|failure| failure.into_napi(&env))
}

/// The fields of the 24-byte parent locator entry at `offset` of `buffer`.
#[napi(catch_unwind)]
pub fn parse_locator(
    env: Env,
    buffer: Uint8ArraySlice,
    offset: f64,
) -> napi::Result<LocatorFields> {
    guard(|| parse_locator_at(&buffer, offset)).map_err(|failure| failure.into_napi(&env))
}

impl From<Geometry> for DiskGeometry {
    fn from(g: Geometry) -> DiskGeometry {
        DiskGeometry {
            cylinders: u32::from(g.cylinders),
            heads: u32::from(g.heads),
            sectors: u32::from(g.sectors_per_track),
        }
    }
}

/// The VHD checksum of a run of bytes: the one's complement of their sum (modulo 2^32).
/// Nothing is skipped: the caller leaves a structure's checksum field out, or zeroes it.
fn checksum_of(bytes: &[u8]) -> u32 {
    // A checksum field placed just past the end: every byte counts.
    vhd_core::checksum::checksum(bytes, bytes.len())
}

/// The VHD checksum of `buffer[offset..offset + length]`.
#[napi(catch_unwind)]
pub fn checksum(env: Env, buffer: Uint8ArraySlice, offset: f64, length: f64) -> napi::Result<u32> {
    guard(|| {
        Ok(checksum_of(
            &buffer[buffer_range(buffer.len(), "offset", offset, length)?],
        ))
    })
    .map_err(|failure| failure.into_napi(&env))
}

/// The geometry the specification's "CHS Calculation" gives a disk of `totalSectors`
/// 512-byte sectors (whole numbers; 65535/16/255 at most).
#[napi(catch_unwind)]
pub fn disk_geometry(env: Env, total_sectors: f64) -> napi::Result<DiskGeometry> {
    guard(|| {
        let total = integer("totalSectors", total_sectors)?;
        Ok(Geometry::for_sectors(total).into())
    })
    .map_err(|failure| failure.into_napi(&env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_counts_every_byte() {
        assert_eq!(checksum_of(&[]), 0xFFFF_FFFF);
        assert_eq!(checksum_of(&[1, 2, 3]), !6u32);
        // The sum wraps at 2^32 like vhd@0.5.0's (a JS number reduced by `~`).
        assert_eq!(checksum_of(&[0xFF; 1 << 16]), !(0xFFu32 << 16));
    }

    /// A fixed disk's footer of 1 MiB made by Disk2VHD (`d2v\0`).
    fn footer_bytes() -> [u8; FOOTER_SIZE] {
        let mut bytes = [0u8; FOOTER_SIZE];
        bytes[..8].copy_from_slice(FOOTER_COOKIE);
        bytes[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        bytes[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
        bytes[28..32].copy_from_slice(b"d2v\0");
        bytes[48..56].copy_from_slice(&(1u64 << 20).to_be_bytes());
        bytes[60..64].copy_from_slice(&2u32.to_be_bytes());
        let mut footer = Footer::parse(&bytes, 0).unwrap();
        footer.update_checksum();
        footer.to_bytes()
    }

    fn failure_of<T>(result: Result<T, Failure>) -> Failure {
        match result {
            Ok(_) => panic!("expected a failure"),
            Err(failure) => failure,
        }
    }

    #[test]
    fn a_footer_parses_at_its_offset_or_one_byte_on() {
        let bytes = footer_bytes();
        let Ok(fields) = parse_footer_at(&bytes, 0.0) else {
            panic!("parses")
        };
        assert_eq!(fields.signature.to_string(), "conectix");
        assert_eq!(fields.creator_application.to_string(), "d2v");
        assert_eq!(fields.current_size.get_u64().1, 1 << 20);
        assert_eq!(fields.format_version, Version { major: 1, minor: 0 });
        // A 511-byte footer read as the last 512 bytes of its file: one byte in.
        let mut shifted = vec![0xAA];
        shifted.extend_from_slice(&bytes[..511]);
        let Ok(fields) = parse_footer_at(&shifted, 0.0) else {
            panic!("parses one byte on")
        };
        assert_eq!(fields.current_size.get_u64().1, 1 << 20);
        assert_eq!(fields.reserved[426], 0);
        let failure = failure_of(parse_footer_at(&bytes[..500], 0.0));
        assert_eq!(failure.code, "ERR_BUFFER_OUT_OF_BOUNDS");
        let failure = failure_of(parse_footer_at(&bytes, 513.0));
        assert_eq!(failure.code, "ERR_OUT_OF_RANGE");
        let mut bad = bytes;
        bad[0] = b'C';
        let failure = failure_of(parse_footer_at(&bad, 0.0));
        assert_eq!(failure.code, "ERR_VHD_BAD_COOKIE");
        assert_eq!(
            failure.message,
            "Invalid footer signature \"Conectix\"; expected \"conectix\""
        );
    }

    #[test]
    fn a_header_parse_keeps_the_locators_up_to_the_last_used_one() {
        let mut header = DynamicHeader::new(1536, 4, 2 << 20);
        header.parent_locators[2].reserved = 1;
        header.update_checksum();
        let bytes = header.to_bytes();
        let Ok(parsed) = parse_header_at(&bytes, 0.0) else {
            panic!("parses")
        };
        assert_eq!(parsed.header.parent_locators.len(), 3);
        assert_eq!(parsed.calculated_checksum, header.checksum);
        assert_eq!(parsed.header.table_offset.get_u64().1, 1536);
        assert_eq!(parsed.header.sector_size, 2 << 20);
        assert_eq!(header_fields(&header, 8).parent_locators.len(), 8);
        let failure = failure_of(parse_header_at(&bytes, 1.0));
        assert_eq!(failure.code, "ERR_OUT_OF_RANGE");
        assert!(failure.message.contains("<= 0"), "{}", failure.message);
        let Ok(locator) = parse_locator_at(&bytes, 576.0 + 48.0) else {
            panic!("parses")
        };
        assert_eq!(locator.reserved, 1);
    }

    #[test]
    fn parse_then_write_gives_the_bytes_back() {
        let bytes = footer_bytes();
        let Ok(fields) = parse_footer_at(&bytes, 0.0) else {
            panic!("parses")
        };
        assert_eq!(footer_bytes_of(&fields).ok(), Some(bytes));
        let mut header = DynamicHeader::new(1536, 4, 2 << 20);
        header.set_parent_name("p\u{e9}re.vhd").unwrap();
        header.parent_locators[1].platform_data_offset = 0x1_0000_3000;
        header.update_checksum();
        let bytes = header.to_bytes();
        let Ok(parsed) = parse_header_at(&bytes, 0.0) else {
            panic!("parses")
        };
        assert_eq!(header_bytes_of(&parsed.header).ok(), Some(bytes));
        let locator = locator_fields(&header.parent_locators[1]);
        assert_eq!(
            locator_of(&locator).map(|l| l.to_bytes()).ok(),
            Some(header.parent_locators[1].to_bytes())
        );
    }

    #[test]
    fn a_parent_name_is_cut_to_256_units_never_half_a_pair() {
        let mut name = vec![u16::from(b'a'); 255];
        name.extend([0xD83D, 0xDE00]);
        let field = parent_name_field(&name);
        assert_eq!(&field[508..512], &[0, b'a', 0, 0]);
        assert_eq!(
            latin1_bytes::<4>(&[0x41, 0x1E9, 0x42]),
            [0x41, 0xE9, 0x42, 0]
        );
        assert!(vhd_seconds(946_684_799_999.0, "t").is_err());
        assert_eq!(vhd_seconds(946_684_801_500.0, "t").ok(), Some(1));
        assert!(vhd_seconds(f64::NAN, "t").is_err());
    }

    #[test]
    fn geometry_has_0_5_0_names() {
        let g = DiskGeometry::from(Geometry::for_sectors(20480));
        assert_eq!(
            g,
            DiskGeometry {
                cylinders: 301,
                heads: 4,
                sectors: 17
            }
        );
    }
}
