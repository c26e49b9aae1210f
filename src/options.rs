//! Argument objects and number arguments, checked before anything reaches the core.
//!
//! `index.js` validates every argument already; these checks are repeated here so that the
//! native class is safe on its own: a bad value is an error, never a panic or a wild slice.

use crate::errors::Failure;
use crate::types::{CreateArgs, OpenArgs};
use std::ops::Range;
use std::path::PathBuf;
use vhd_core::{DiskType, ParentPath};

/// `Number.MAX_SAFE_INTEGER`: the largest offset or length accepted.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

impl OpenArgs {
    pub fn to_core(&self) -> Result<vhd_core::OpenOptions, Failure> {
        let expected_type = match self.expected_type.as_deref() {
            None => None,
            Some(name) => Some(disk_type("expectedType", name)?),
        };
        let parents = self
            .parents
            .iter()
            .flatten()
            .map(|parent| {
                let path = PathBuf::from(&parent.path);
                if parent.raw.unwrap_or(false) {
                    ParentPath::Raw(path)
                } else {
                    ParentPath::Vhd(path)
                }
            })
            .collect();
        Ok(vhd_core::OpenOptions {
            read_only: self.read_only.unwrap_or(false),
            ignore_checksums: self.ignore_checksums.unwrap_or(false),
            expected_type,
            parents,
            ignore_parent_timestamp: self.ignore_parent_timestamp.unwrap_or(false),
            lock: self.lock.unwrap_or(true),
            parent_root: self.parent_root.as_ref().map(PathBuf::from),
            allow_remote_parents: self.allow_remote_parents.unwrap_or(false),
        })
    }
}

impl CreateArgs {
    pub fn to_core(&self) -> Result<vhd_core::CreateOptions, Failure> {
        let disk_type = disk_type("type", &self.disk_type)?;
        // An absent size is 0: the parent's size for a differencing image, and for the other
        // types a size the core refuses (ERR_VHD_INVALID_ARGUMENT).
        let size = self.size.map_or(Ok(0), |size| integer("size", size))?;
        let mut options = vhd_core::CreateOptions::new(disk_type, size);
        match (&self.parent, disk_type) {
            (Some(parent), DiskType::Differencing) => options.parent = Some(parent.into()),
            (Some(_), _) => {
                return Err(Failure::invalid_value(
                    "parent",
                    "only differencing images have a parent",
                ))
            }
            // The core reports a differencing image without a parent.
            (None, _) => {}
        }
        if let Some(block_size) = self.block_size {
            let value = integer("blockSize", block_size)?;
            options.block_size = u32::try_from(value).map_err(|_| {
                Failure::out_of_range("blockSize", "a power of two of at most 256 MiB", value)
            })?;
        }
        if let Some(creator) = &self.creator_application {
            options.creator_application = creator_application(creator)?;
        }
        options.overwrite = self.overwrite.unwrap_or(false);
        if let Some(open) = &self.parent_open {
            options.parent_open = open.to_core()?;
        }
        Ok(options)
    }
}

fn disk_type(name: &str, value: &str) -> Result<DiskType, Failure> {
    value
        .parse()
        .map_err(|e: vhd_core::names::UnknownName| Failure::invalid_value(name, e.to_string()))
}

/// 1 to 4 printable ASCII characters, padded with spaces as Virtual PC and Windows do.
fn creator_application(value: &str) -> Result<[u8; 4], Failure> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 4 || !bytes.iter().all(|b| (0x20..0x7F).contains(b)) {
        return Err(Failure::invalid_value(
            "creatorApplication",
            format!("expected 1 to 4 printable ASCII characters, received {value:?}"),
        ));
    }
    let mut field = *b"    ";
    field[..bytes.len()].copy_from_slice(bytes);
    Ok(field)
}

/// A non-negative safe integer.
pub fn integer(name: &str, value: f64) -> Result<u64, Failure> {
    if value.is_finite() && value.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&value) {
        Ok(value as u64)
    } else {
        Err(Failure::out_of_range(
            name,
            "an integer >= 0 and <= 2^53 - 1",
            value,
        ))
    }
}

/// A descriptor number or open flags: an integer from 0 to 2^31 - 1.
pub fn non_negative_i32(name: &str, value: f64) -> Result<i32, Failure> {
    integer(name, value)
        .ok()
        .and_then(|value| i32::try_from(value).ok())
        .ok_or_else(|| Failure::out_of_range(name, ">= 0 && <= 2147483647", value))
}

/// The checked arguments of a read or write: the part of a buffer of `buffer_length`
/// bytes it names (see [`buffer_range`]), and its position on the disk.
pub fn io_range(
    buffer_length: usize,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> Result<(Range<usize>, u64), Failure> {
    Ok((
        buffer_range(buffer_length, "bufferOffset", buffer_offset, length)?,
        integer("position", position)?,
    ))
}

/// The part of a buffer of `buffer_length` bytes that a call names: `length` bytes at
/// `offset` (the argument `offset_name`), which must lie inside the buffer.
pub fn buffer_range(
    buffer_length: usize,
    offset_name: &str,
    offset: f64,
    length: f64,
) -> Result<Range<usize>, Failure> {
    let start = integer(offset_name, offset)?;
    let length = integer("length", length)?;
    let buffer_length = buffer_length as u64;
    if start > buffer_length {
        return Err(Failure::out_of_range(
            offset_name,
            &format!("<= {buffer_length} (the buffer length)"),
            start,
        ));
    }
    if length > buffer_length - start {
        return Err(Failure::out_of_range(
            "length",
            &format!("<= {} (the room in the buffer)", buffer_length - start),
            length,
        ));
    }
    // Both fit in the buffer, so in usize.
    Ok(start as usize..(start + length) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ParentArg;

    fn fd_number(value: f64) -> Result<i32, crate::errors::Failure> {
        non_negative_i32("fd", value)
    }

    #[test]
    fn descriptor_numbers_and_flags_are_checked_not_wrapped() {
        assert_eq!(fd_number(0.0).unwrap(), 0);
        assert_eq!(fd_number(2_147_483_647.0).unwrap(), i32::MAX);
        for bad in [
            -1.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
            2_147_483_648.0,
            4_294_967_296.0,
        ] {
            assert_eq!(
                fd_number(bad).unwrap_err().code,
                "ERR_OUT_OF_RANGE",
                "{bad}"
            );
            assert!(non_negative_i32("flags", bad)
                .unwrap_err()
                .message
                .contains("\"flags\""));
        }
    }

    #[test]
    fn integers_must_be_safe_and_non_negative() {
        assert_eq!(integer("x", 0.0).unwrap(), 0);
        assert_eq!(integer("x", MAX_SAFE_INTEGER).unwrap(), (1 << 53) - 1);
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, MAX_SAFE_INTEGER + 2.0] {
            let failure = integer("x", bad).unwrap_err();
            assert_eq!(failure.code, "ERR_OUT_OF_RANGE", "{bad}");
        }
    }

    #[test]
    fn buffer_ranges_stay_inside_the_buffer_and_name_the_offset() {
        assert_eq!(buffer_range(10, "offset", 2.0, 8.0).unwrap(), 2..10);
        assert_eq!(buffer_range(10, "offset", 10.0, 0.0).unwrap(), 10..10);
        for (offset, length) in [
            (11.0, 0.0),
            (2.0, 9.0),
            (-1.0, 1.0),
            (0.5, 1.0),
            (0.0, f64::NAN),
        ] {
            let failure = buffer_range(10, "offset", offset, length).unwrap_err();
            assert_eq!(failure.code, "ERR_OUT_OF_RANGE", "{offset} {length}");
        }
        let failure = buffer_range(10, "offset", 11.0, 0.0).unwrap_err();
        assert!(
            failure.message.contains("\"offset\""),
            "{}",
            failure.message
        );
    }

    #[test]
    fn creator_application_is_space_padded_ascii() {
        assert_eq!(&creator_application("qemu").unwrap(), b"qemu");
        assert_eq!(&creator_application("vpc").unwrap(), b"vpc ");
        assert!(creator_application("").is_err());
        assert!(creator_application("toolong").is_err());
        assert!(creator_application("é").is_err());
    }

    #[test]
    fn create_args_convert_to_core_options() {
        let args = CreateArgs {
            disk_type: "dynamic".into(),
            size: Some(8.0 * 1024.0 * 1024.0),
            block_size: Some(524_288.0),
            parent: None,
            creator_application: None,
            overwrite: Some(true),
            parent_open: None,
        };
        let options = args.to_core().unwrap();
        assert_eq!(options.disk_type, DiskType::Dynamic);
        assert_eq!(options.block_size, 524_288);
        assert!(options.overwrite);
        let with_parent = CreateArgs {
            parent: Some("p.vhd".into()),
            ..args.clone()
        };
        assert_eq!(
            with_parent.to_core().unwrap_err().code,
            "ERR_INVALID_ARG_VALUE"
        );
        let bad = CreateArgs {
            disk_type: "sparse".into(),
            ..args
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
    }

    #[test]
    fn differencing_create_args_take_the_parent_and_default_to_its_size() {
        let args = CreateArgs {
            disk_type: "differencing".into(),
            size: None,
            block_size: None,
            parent: Some("base.vhd".into()),
            creator_application: None,
            overwrite: None,
            parent_open: Some(OpenArgs {
                parent_root: Some("images".into()),
                ..OpenArgs::default()
            }),
        };
        let options = args.to_core().unwrap();
        assert_eq!(options.disk_type, DiskType::Differencing);
        assert_eq!(options.size, 0);
        assert_eq!(options.parent, Some(PathBuf::from("base.vhd")));
        assert_eq!(
            options.parent_open.parent_root,
            Some(PathBuf::from("images"))
        );
    }

    #[test]
    fn open_args_name_parents_nearest_first() {
        let args = OpenArgs {
            parents: Some(vec![
                ParentArg {
                    path: "mid.vhd".into(),
                    raw: None,
                },
                ParentArg {
                    path: "base.img".into(),
                    raw: Some(true),
                },
            ]),
            ignore_parent_timestamp: Some(true),
            ..OpenArgs::default()
        };
        let options = args.to_core().unwrap();
        assert_eq!(
            options.parents,
            vec![
                ParentPath::Vhd("mid.vhd".into()),
                ParentPath::Raw("base.img".into())
            ]
        );
        assert!(options.ignore_parent_timestamp);
        assert!(OpenArgs::default().to_core().unwrap().parents.is_empty());
    }
}
