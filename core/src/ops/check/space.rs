//! The file's bytes: structures and blocks that share them (overlaps), and space no
//! structure uses (leaked blocks, padding).

use super::{Checker, FindingKind, Severity, MAX_LISTED_PER_KIND};
use crate::dynamic_header::DynamicHeader;
use crate::footer::FOOTER_SIZE;
use crate::image::{BlockList, FileLayout, Occupant, Region, Stretch, Structure};

impl Checker<'_> {
    /// Every structure must have its bytes to itself ([`FileLayout::overlaps`]: one pass,
    /// however many blocks share their bytes).
    pub(super) fn check_overlaps(
        &mut self,
        layout: &FileLayout,
        blocks: &BlockList,
        header: &DynamicHeader,
    ) {
        for (region, before) in layout.overlaps(blocks) {
            self.note_overlapping(&region);
            self.note_overlapping(&before);
            self.report.add(
                Severity::Corrupt,
                FindingKind::Overlap,
                Some(region.start),
                || {
                    format!(
                        "{} overlaps {}",
                        describe(&region, header),
                        describe(&before, header)
                    )
                },
            );
        }
    }

    /// Keeps the BAT entry of a block that overlaps something, for a repair.
    fn note_overlapping(&mut self, region: &Region) {
        let Occupant::Block(block) = region.occupant else {
            return;
        };
        let overlapping = &mut self.report.layout.overlapping;
        let entry = (block, (region.start / 512) as u32);
        if overlapping.len() < MAX_LISTED_PER_KIND && !overlapping.contains(&entry) {
            overlapping.push(entry);
        }
    }

    /// Space no structure uses: leaked blocks and padding (see the module documentation).
    pub(super) fn check_unused(
        &mut self,
        layout: &FileLayout,
        blocks: &BlockList,
        end_missing: bool,
    ) {
        let geometry = layout.geometry();
        let limit = geometry.limit();
        let unit = geometry.unit();
        let metadata_end = layout.metadata_end();
        let used_end = layout.used_end(blocks);
        self.report.layout.used_end = used_end;
        if end_missing {
            // The file ends without its footer: decide what the tail is.
            let size = self.file_size;
            let tail_start = used_end.max(metadata_end);
            if size >= tail_start + FOOTER_SIZE as u64 {
                // The last 512 bytes are where the footer belongs; the rest is what the
                // interrupted allocations wrote (or only sized) of their blocks.
                let tail = size - tail_start;
                let blocks = (tail - FOOTER_SIZE as u64).div_ceil(unit).max(1);
                self.report.leaked_blocks += blocks;
                self.add(
                    Severity::Leak,
                    FindingKind::FooterMissing,
                    Some(size - FOOTER_SIZE as u64),
                    format!(
                        "no footer at the end of the file: it ends in bytes {tail_start}..{size}, which no structure uses ({blocks} leaked block(s) of {unit} bytes), as an allocation cut short by a crash leaves it; the footer copy at offset 0 is intact, and the footer belongs at {tail_start}"
                    ),
                );
            } else {
                self.add(
                    Severity::Corrupt,
                    FindingKind::FooterMissing,
                    Some(size.saturating_sub(FOOTER_SIZE as u64)),
                    format!(
                        "no footer at the end of the {size}-byte file, whose last bytes belong to a structure (used space ends at {used_end}): the file was truncated or its footer overwritten (the footer copy at offset 0 is intact)"
                    ),
                );
            }
        }
        // The gaps between the used stretches of the file, and up to the footer.
        let mut scan = UnusedScan {
            metadata_end,
            limit,
            end_missing,
            unit,
            padding: Padding::default(),
        };
        let mut position = 0;
        for region in layout.regions(blocks, Stretch::Space) {
            if region.start > position {
                self.unused_stretch(position, region.start, &mut scan);
            }
            position = position.max(region.end);
        }
        if !end_missing && limit > position {
            self.unused_stretch(position, limit, &mut scan);
        }
        self.report_padding(&scan.padding);
    }

    /// Bytes `start..end` that no structure uses: leaked blocks when at least one block's
    /// worth lies past the metadata, padding otherwise.
    fn unused_stretch(&mut self, start: u64, end: u64, scan: &mut UnusedScan) {
        let length = end - start;
        let unit = scan.unit;
        if start < scan.metadata_end || length < unit {
            scan.padding.add(start, end);
            return;
        }
        if end == scan.limit && !scan.end_missing {
            self.report.layout.trailing_leak = Some((start, end));
        }
        let blocks = length / unit;
        self.report.leaked_blocks += blocks;
        self.report.add(Severity::Leak, FindingKind::LeakedBlock, Some(start), || {
            format!(
                "bytes {start}..{end} ({length} bytes: {blocks} block(s) of {unit} bytes, bitmap included) are not referenced by any BAT entry"
            )
        });
    }

    /// Unused space that is not a leak, in one finding: writers that align blocks (Windows
    /// aligns each block's data to 4 KiB) leave a gap after every block.
    fn report_padding(&mut self, padding: &Padding) {
        let Some(&(first, _)) = padding.first.first() else {
            return;
        };
        let total = padding.bytes;
        let mut listed: Vec<String> = padding
            .first
            .iter()
            .map(|(s, e)| format!("{s}..{e}"))
            .collect();
        if padding.count > padding.first.len() as u64 {
            listed.push("…".into());
        }
        let message = if padding.count == 1 {
            format!(
                "bytes {} ({total} bytes) are not used by any structure",
                listed[0]
            )
        } else {
            format!(
                "{} stretches of the file ({total} bytes in all) are not used by any structure: bytes {}",
                padding.count,
                listed.join(", ")
            )
        };
        self.add(
            Severity::Info,
            FindingKind::UnusedSpace,
            Some(first),
            message,
        );
    }
}

/// What [`Checker::check_unused`] knows as it walks the gaps of the file.
struct UnusedScan {
    /// Where the metadata ends: unused space before is never a leak.
    metadata_end: u64,
    limit: u64,
    end_missing: bool,
    /// One block's bytes, bitmap included.
    unit: u64,
    padding: Padding,
}

/// Unused stretches too small (or too early in the file) to be leaks, summed up.
#[derive(Default)]
struct Padding {
    count: u64,
    bytes: u64,
    /// The first few, for the message.
    first: Vec<(u64, u64)>,
}

impl Padding {
    fn add(&mut self, start: u64, end: u64) {
        self.count += 1;
        self.bytes += end - start;
        if self.first.len() < 4 {
            self.first.push((start, end));
        }
    }
}

/// A stretch of the file in the words of a finding.
fn describe(region: &Region, header: &DynamicHeader) -> String {
    let Region { start, end, .. } = *region;
    match region.occupant {
        Occupant::Structure(Structure::FooterCopy) => "the footer copy".into(),
        Occupant::Structure(Structure::Header) => {
            format!("the dynamic header (bytes {start}..{end})")
        }
        Occupant::Structure(Structure::Bat) => format!("the BAT (bytes {start}..{end})"),
        Occupant::Structure(Structure::Locator(i)) => format!(
            "the data of parent locator {i} ({}, bytes {start}..{end})",
            header.parent_locators[i].platform_name()
        ),
        Occupant::Block(block) => {
            format!(
                "block {block} (sector {}, bytes {start}..{end})",
                start / 512
            )
        }
    }
}
