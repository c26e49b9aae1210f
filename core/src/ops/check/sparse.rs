//! Dynamic and differencing images: the dynamic header, where the BAT lies, the parent
//! locators; then the passes over the blocks ([`super::blocks`], [`super::space`]).

use super::footer::ChosenFooter;
use super::{Checker, FindingKind, Severity};
use crate::dynamic_header::{
    DynamicHeader, DYNAMIC_HEADER_SIZE, HEADER_VERSION, PARENT_TIMESTAMP_NOT_RECORDED,
};
use crate::error::Result;
use crate::footer::{DiskType, FOOTER_SIZE};
use crate::image::FileLayout;
use crate::image::{bat_extent, between_footers, header_extent};
use crate::parent_locator::platform;
use std::ops::Range;

impl Checker<'_> {
    /// Dynamic and differencing images. Returns whether the layout could be read.
    pub(super) fn check_sparse(
        &mut self,
        chosen: &ChosenFooter,
        disk_type: DiskType,
    ) -> Result<bool> {
        let footer = &chosen.footer;
        let limit = chosen.limit;
        let size = self.file_size;
        if !chosen.copy_used {
            self.check_copy(footer, &chosen.copy);
        }
        // The dynamic header.
        let header_offset = footer.data_offset;
        let header_end = header_extent(header_offset).end;
        if !between_footers(&(header_offset..header_end), limit) {
            let (kind, reason) = if header_offset >= FOOTER_SIZE as u64 && header_end > size {
                (FindingKind::Truncated, "runs past the end of the file")
            } else {
                (
                    FindingKind::FooterField,
                    "must lie between the footer copy and the footer",
                )
            };
            self.add(
                Severity::Corrupt,
                kind,
                Some(16),
                format!(
                    "the footer's data offset {header_offset} puts the dynamic header at bytes {header_offset}..{header_end}, which {reason} (the footer is at {limit}, the file has {size} bytes)"
                ),
            );
            return Ok(false);
        }
        self.header_offset = header_offset;
        let mut bytes = [0u8; DYNAMIC_HEADER_SIZE];
        self.read(&mut bytes, header_offset, "the dynamic header")?;
        let header = match DynamicHeader::parse(&bytes, header_offset) {
            Ok(header) => header,
            Err(_) => {
                self.add(
                    Severity::Corrupt,
                    FindingKind::HeaderCookie,
                    Some(header_offset),
                    format!(
                        "no dynamic header (cookie \"cxsparse\") at offset {header_offset}, where the footer's data offset points: found {:?}",
                        String::from_utf8_lossy(&bytes[..8])
                    ),
                );
                return Ok(false);
            }
        };
        self.report.layout.header = Some((header_offset, header.clone()));
        if header.verify_checksum(header_offset).is_err() {
            self.add(
                Severity::Corrupt,
                FindingKind::HeaderChecksum,
                Some(header_offset + 36),
                format!(
                    "the dynamic header at {header_offset} has checksum {:#010x}, but its contents sum to {:#010x}",
                    header.checksum,
                    header.computed_checksum()
                ),
            );
        }
        if header.header_version != HEADER_VERSION {
            self.add(
                Severity::Info,
                FindingKind::HeaderField,
                Some(header_offset + 24),
                format!(
                    "the dynamic header's version is {:#010x}, not 1.0 (0x00010000)",
                    header.header_version
                ),
            );
        }
        if disk_type == DiskType::Differencing && header.commit_in_progress() {
            self.add(
                Severity::Leak,
                FindingKind::CommitInterrupted,
                Some(header_offset + 768),
                "a commit of this image into its parent was interrupted: the chain reads as it should, but the parent's modification time is not recorded (a later change of the parent would go unnoticed); run the commit again to finish it, or check --repair to record the parent's time stamp".to_string(),
            );
        } else if disk_type == DiskType::Differencing && !header.records_parent_timestamp() {
            self.add(
                Severity::Info,
                FindingKind::ParentTimestampNotRecorded,
                Some(header_offset + 56),
                format!("the parent time stamp is {PARENT_TIMESTAMP_NOT_RECORDED}"),
            );
        }
        let block_size = header.block_size;
        if block_size < 512 || !block_size.is_power_of_two() {
            self.add(
                Severity::Corrupt,
                FindingKind::HeaderField,
                Some(header_offset + 32),
                format!("the block size {block_size} is not a power of two of at least 512 bytes"),
            );
            return Ok(false);
        }
        self.report.block_size = Some(block_size);
        let entries = u64::from(header.max_table_entries);
        self.report.table_entries = entries;
        let virtual_size = footer.current_size;
        let needed = virtual_size.div_ceil(u64::from(block_size));
        if entries < needed {
            self.add(
                Severity::Corrupt,
                FindingKind::HeaderField,
                Some(header_offset + 28),
                format!(
                    "max table entries is {entries}, but {needed} blocks of {block_size} bytes are needed for the {virtual_size}-byte disk"
                ),
            );
        } else if entries > needed {
            self.add(
                Severity::Info,
                FindingKind::HeaderField,
                Some(header_offset + 28),
                format!(
                    "max table entries is {entries}, more than the {needed} the {virtual_size}-byte disk needs"
                ),
            );
        }
        // The BAT.
        let Range {
            start: table,
            end: table_end,
        } = bat_extent(&header);
        if !between_footers(&(table..table_end), limit) {
            let kind = if table_end > size {
                FindingKind::Truncated
            } else {
                FindingKind::HeaderField
            };
            self.add(
                Severity::Corrupt,
                kind,
                Some(header_offset + 16),
                format!(
                    "the table offset {table} puts the {entries}-entry BAT at bytes {table}..{table_end}, outside the space between the footer copy and the footer at {limit} ({size}-byte file)"
                ),
            );
            return Ok(false);
        }
        if !table.is_multiple_of(512) {
            self.add(
                Severity::Info,
                FindingKind::HeaderField,
                Some(header_offset + 16),
                format!("the table offset {table} is not a multiple of 512"),
            );
        }
        let differencing = disk_type == DiskType::Differencing;
        let layout = FileLayout::new(&header, header_offset, virtual_size, limit, differencing);
        self.check_locators(&header, disk_type, &layout);
        self.report.layout.geometry = Some(layout.geometry());
        let mut blocks = self.check_blocks(&header, &layout)?;
        // File order, then BAT order: the order the blocks are judged and listed in.
        blocks.sort();
        self.report.layout.first_block = blocks.iter().next().map(|(_, sector)| sector);
        self.check_bitmaps(&layout, &blocks, disk_type)?;
        self.check_overlaps(&layout, &blocks, &header);
        self.check_unused(&layout, &blocks, chosen.end_missing);
        Ok(true)
    }

    /// Parent locators: an unknown platform code is worth a remark; data outside the space
    /// between the footer copy and the footer is damage in a differencing image (which reads
    /// it) and a remark in others. (Data in the file is a structure of the layout: blocks
    /// may not overlap it, [`FileLayout::structures`].)
    fn check_locators(&mut self, header: &DynamicHeader, disk_type: DiskType, layout: &FileLayout) {
        // Locators matter to differencing images only; others may carry leftovers.
        let severity = if disk_type == DiskType::Differencing {
            Severity::Corrupt
        } else {
            Severity::Info
        };
        let limit = layout.limit();
        for extent in layout.locators() {
            let i = extent.index;
            let locator = &header.parent_locators[i];
            let entry_offset = Some(self.header_offset + 576 + 24 * i as u64);
            let known = matches!(
                locator.platform_code,
                platform::WI2R
                    | platform::WI2K
                    | platform::W2RU
                    | platform::W2KU
                    | platform::MAC
                    | platform::MACX
            );
            if !known {
                self.add(
                    Severity::Info,
                    FindingKind::LocatorOutOfRange,
                    entry_offset,
                    format!(
                        "parent locator {i} has the unknown platform code {:#010x} ({:?})",
                        locator.platform_code,
                        locator.platform_name()
                    ),
                );
            }
            if !extent.in_file {
                let (start, end) = extent.data;
                self.add(
                    severity,
                    FindingKind::LocatorOutOfRange,
                    entry_offset,
                    format!(
                        "the data of parent locator {i} ({}) is at bytes {start}..{end}, outside the space between the footer copy and the footer at {limit}",
                        locator.platform_name()
                    ),
                );
            }
        }
    }
}
