//! The footer at the end, its copy at offset 0, and a fixed image's data: which footer to
//! trust, and what is wrong with each.

use super::{Checker, FindingKind, Severity};
use crate::error::Result;
use crate::footer::{
    DiskType, Footer, FEATURE_RESERVED, FOOTER_SIZE, FORMAT_VERSION, NO_DATA_OFFSET,
};
use crate::image::FooterSource;

/// The footer the rest of the check relies on, and where it is.
pub(super) struct ChosenFooter {
    pub footer: Footer,
    /// Blocks must end here: the offset of the footer at the end of the file (or the end
    /// of the file when there is none).
    pub limit: u64,
    /// The footer at the end is missing and the copy at offset 0 stands in for it.
    pub end_missing: bool,
    /// The copy at offset 0 was already judged (it is the footer in use).
    pub copy_used: bool,
    /// The copy at offset 0, parsed, with whether its checksum is right.
    pub copy: Option<(Footer, bool)>,
}

/// Whether `copy` (valid) differs from `footer` (the one at the end, valid) exactly as a
/// resize killed between writing them leaves it: in the current and original sizes (and the
/// geometry, when the sizes have different ones), nothing else, with the footer as resize
/// writes it (original size = current size, the geometry of that size).
fn is_resize_window(footer: &Footer, copy: &Footer) -> bool {
    let resized = Footer {
        current_size: footer.current_size,
        original_size: footer.original_size,
        geometry: footer.geometry,
        checksum: footer.checksum,
        ..copy.clone()
    };
    resized == *footer
        && copy.current_size != footer.current_size
        && copy.original_size != footer.original_size
        && footer.original_size == footer.current_size
        && footer.geometry == crate::Geometry::for_size(footer.current_size)
}

impl Checker<'_> {
    /// Finds the footer at the end (512 or 511 bytes) and the copy at offset 0, reports
    /// what is wrong with them, and picks the one to trust.
    pub(super) fn choose_footer(&mut self) -> Result<Option<ChosenFooter>> {
        let size = self.file_size;
        if size < FOOTER_SIZE as u64 - 1 {
            self.add(
                Severity::Corrupt,
                FindingKind::Truncated,
                Some(0),
                format!("the file has {size} bytes: too short to hold a footer"),
            );
            return Ok(None);
        }
        let mut end = None;
        if size >= FOOTER_SIZE as u64 {
            end = self
                .read_footer(size - FOOTER_SIZE as u64, FOOTER_SIZE)?
                .map(|(f, good)| (f, good, size - FOOTER_SIZE as u64, FooterSource::End));
        }
        if end.is_none() {
            end = self
                .read_footer(size - 511, 511)?
                .map(|(f, good)| (f, good, size - 511, FooterSource::End511));
        }
        let copy = if size >= 2 * FOOTER_SIZE as u64 {
            self.read_footer(0, FOOTER_SIZE)?
        } else {
            None
        };
        self.report.layout.end_footer = end
            .as_ref()
            .map(|(footer, good, offset, _)| (footer.clone(), *good, *offset));
        self.report.layout.copy = copy.clone();
        let copy_usable = |copy: &Option<(Footer, bool)>| {
            copy.as_ref().is_some_and(|(f, good)| {
                *good
                    && matches!(
                        f.disk_type(),
                        Some(DiskType::Dynamic | DiskType::Differencing)
                    )
            })
        };
        // Where the footer to trust was found, the one at the end (`None`: the copy stands
        // in for it), where blocks must end, and whether the footer at the end is missing.
        let (source, end_footer, limit, end_missing) = match end {
            Some((footer, true, offset, source)) => {
                if source == FooterSource::End511 {
                    self.add(
                        Severity::Info,
                        FindingKind::FooterField,
                        Some(offset),
                        format!("the footer at {offset} is 511 bytes long (as some old Virtual PC images have it)"),
                    );
                }
                (source, Some(footer), offset, false)
            }
            Some((footer, false, offset, source)) => {
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterChecksum,
                    Some(offset + 64),
                    format!(
                        "the footer at {offset} has checksum {:#010x}, but its contents sum to {:#010x}",
                        footer.checksum,
                        footer.computed_checksum()
                    ),
                );
                if copy_usable(&copy) {
                    (FooterSource::Copy, None, offset, false)
                } else {
                    // Go on with the damaged footer: the rest may still be worth checking.
                    (source, Some(footer), offset, false)
                }
            }
            // Whether this is a crash's leftover or damage depends on what lies at the end
            // of the file: decided once the structures are known.
            None if copy_usable(&copy) => (FooterSource::Copy, None, size, true),
            None => {
                let copy_note = match &copy {
                    Some((_, false)) => ", and the copy at offset 0 has a bad checksum",
                    Some((_, true)) => ", and the copy at offset 0 is a fixed disk's footer",
                    None => ", and there is no copy at offset 0",
                };
                // What it is instead, when its signature says (one home: `sniff`).
                let verdict = match crate::sniff::sniff(self.file) {
                    Some(format) if copy.is_none() => {
                        format!("this is not a VHD image: it looks like {format}")
                    }
                    _ => "this is not a VHD image, or it was truncated".to_string(),
                };
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterMissing,
                    Some(size.saturating_sub(FOOTER_SIZE as u64)),
                    format!(
                        "no footer (cookie \"conectix\") in the last 512 bytes of the {size}-byte file{copy_note}: {verdict}"
                    ),
                );
                return Ok(None);
            }
        };
        self.report.footer_source = Some(source);
        let copy_used = end_footer.is_none();
        let footer = match end_footer {
            Some(footer) => footer,
            None => copy.clone().expect("the copy is usable").0,
        };
        Ok(Some(ChosenFooter {
            footer,
            limit,
            end_missing,
            copy_used,
            copy,
        }))
    }

    pub(super) fn check_footer_fields(&mut self, footer: &Footer) {
        if footer.format_version != FORMAT_VERSION {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(12),
                format!(
                    "the footer's format version is {:#010x}, not 1.0 (0x00010000)",
                    footer.format_version
                ),
            );
        }
        if footer.features & FEATURE_RESERVED == 0 {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(8),
                format!(
                    "the footer's features ({:#010x}) lack the reserved bit 0x2 the specification says is always set",
                    footer.features
                ),
            );
        }
        if !footer.current_size.is_multiple_of(512) {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(48),
                format!(
                    "the virtual size {} is not a whole number of 512-byte sectors",
                    footer.current_size
                ),
            );
        }
        // A size that is not the CHS geometry's is not a finding: it is the rule for
        // images made to an exact size (this library's, qemu-img's force_size, Hyper-V's),
        // and `ImageInfo::geometry_size` (`vhd info`) shows what the geometry describes.
    }

    pub(super) fn check_fixed(&mut self, chosen: &ChosenFooter) {
        let footer = &chosen.footer;
        let limit = chosen.limit;
        if footer.data_offset != NO_DATA_OFFSET {
            self.add(
                Severity::Info,
                FindingKind::FooterField,
                Some(16),
                format!(
                    "the data offset of a fixed image is {:#x}, not 0xffffffffffffffff",
                    footer.data_offset
                ),
            );
        }
        let size = footer.current_size;
        if size > limit {
            self.add(
                Severity::Corrupt,
                FindingKind::Truncated,
                Some(limit),
                format!(
                    "the {size}-byte virtual disk of this fixed image needs bytes 0..{size} in front of the footer, but the footer is at {limit}"
                ),
            );
        } else if size < limit {
            self.add(
                Severity::Info,
                FindingKind::UnusedSpace,
                Some(size),
                format!(
                    "bytes {size}..{limit}, between the end of the virtual disk and the footer, are not used"
                ),
            );
        }
    }

    pub(super) fn check_copy(&mut self, footer: &Footer, copy: &Option<(Footer, bool)>) {
        match copy {
            None => self.add(
                Severity::Corrupt,
                FindingKind::FooterCopyMissing,
                Some(0),
                "there is no footer copy (cookie \"conectix\") at offset 0, which dynamic and differencing images must have".into(),
            ),
            Some((copy, false)) => self.add(
                Severity::Corrupt,
                FindingKind::FooterCopyChecksum,
                Some(64),
                format!(
                    "the footer copy at offset 0 has checksum {:#010x}, but its contents sum to {:#010x}",
                    copy.checksum,
                    copy.computed_checksum()
                ),
            ),
            Some((copy, true)) if copy != footer => {
                let mut differing = Vec::new();
                let mut key = false;
                let mut field = |name: &str, same: bool, is_key: bool| {
                    if !same {
                        differing.push(name.to_string());
                        key |= is_key;
                    }
                };
                field("disk type", copy.disk_type_code == footer.disk_type_code, true);
                field("data offset", copy.data_offset == footer.data_offset, true);
                field("current size", copy.current_size == footer.current_size, true);
                field("unique id", copy.unique_id == footer.unique_id, true);
                field("time stamp", copy.timestamp == footer.timestamp, false);
                field("original size", copy.original_size == footer.original_size, false);
                field("geometry", copy.geometry == footer.geometry, false);
                field(
                    "creator",
                    copy.creator_application == footer.creator_application
                        && copy.creator_version == footer.creator_version
                        && copy.creator_host_os == footer.creator_host_os,
                    false,
                );
                field("saved state", copy.saved_state == footer.saved_state, false);
                field(
                    "other fields",
                    copy.features == footer.features
                        && copy.format_version == footer.format_version
                        && copy.reserved == footer.reserved,
                    false,
                );
                if is_resize_window(footer, copy) {
                    self.add(
                        Severity::Leak,
                        FindingKind::FooterCopyStale,
                        Some(0),
                        format!(
                            "the footer copy at offset 0 still gives the size before a resize ({} bytes; the footer gives {}): a resize was interrupted after writing the footer; the image reads right; repair writes the copy from the footer",
                            copy.current_size, footer.current_size
                        ),
                    );
                    return;
                }
                let severity = if key { Severity::Corrupt } else { Severity::Info };
                self.add(
                    severity,
                    FindingKind::FooterCopyMismatch,
                    Some(0),
                    format!(
                        "the footer copy at offset 0 differs from the footer in: {}",
                        differing.join(", ")
                    ),
                );
            }
            Some(_) => {}
        }
    }
}
