//! The two computations behind vhd@0.5.0's helper functions `VHD.checksum` and
//! `VHD.getDiskGeometry`, done by the core. `lib/structures.js` checks the arguments first
//! and gives them their defaults; the checks are repeated here so that the native functions
//! are safe on their own.

use crate::errors::{guard, Failure};
use crate::options::integer;
use crate::types::DiskGeometry;
use napi::bindgen_prelude::Uint8ArraySlice;
use napi::Env;
use napi_derive::napi;
use std::ops::Range;
use vhd_core::Geometry;

impl From<Geometry> for DiskGeometry {
    fn from(g: Geometry) -> DiskGeometry {
        DiskGeometry {
            cylinders: u32::from(g.cylinders),
            heads: u32::from(g.heads),
            sectors: u32::from(g.sectors_per_track),
        }
    }
}

/// `length` bytes at `offset` of a buffer of `buffer_length` bytes, all inside it.
fn byte_range(buffer_length: usize, offset: f64, length: f64) -> Result<Range<usize>, Failure> {
    let start = integer("offset", offset)?;
    let length = integer("length", length)?;
    let buffer_length = buffer_length as u64;
    if start > buffer_length {
        return Err(Failure::out_of_range(
            "offset",
            &format!(">= 0 && <= {buffer_length}"),
            start,
        ));
    }
    if length > buffer_length - start {
        return Err(Failure::out_of_range(
            "length",
            &format!(">= 0 && <= {}", buffer_length - start),
            length,
        ));
    }
    // Both are within the buffer, so they fit in usize.
    Ok(start as usize..(start + length) as usize)
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
            &buffer[byte_range(buffer.len(), offset, length)?],
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

    #[test]
    fn ranges_stay_inside_the_buffer() {
        assert_eq!(byte_range(10, 2.0, 8.0).unwrap(), 2..10);
        assert_eq!(byte_range(10, 10.0, 0.0).unwrap(), 10..10);
        for (offset, length) in [
            (11.0, 0.0),
            (2.0, 9.0),
            (-1.0, 1.0),
            (0.5, 1.0),
            (0.0, f64::NAN),
        ] {
            let failure = byte_range(10, offset, length).unwrap_err();
            assert_eq!(failure.code, "ERR_OUT_OF_RANGE", "{offset} {length}");
        }
        let failure = byte_range(10, 11.0, 0.0).unwrap_err();
        assert!(
            failure.message.contains("\"offset\""),
            "{}",
            failure.message
        );
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
