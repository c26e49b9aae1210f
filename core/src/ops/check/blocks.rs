//! The BAT's entries: each block in front of the footer, past the end of the disk, and
//! what its sector bitmap holds.

use super::{Checker, FindingKind, Severity};
use crate::bat::{BlockAllocationTable, BAT_ENTRY_SIZE};
use crate::dynamic_header::DynamicHeader;
use crate::error::Result;
use crate::footer::{DiskType, FOOTER_COOKIE};
use crate::image::bat_entry_offset;
use crate::image::{BlockExtent, BlockList, FileLayout, OutOfRange};

/// BAT entries read at a time (64 KiB): the check never holds the whole table.
const BAT_CHUNK_ENTRIES: u64 = 16 * 1024;

/// The most bytes read at once for the cookies of sector bitmaps that lie close together.
const BITMAP_WINDOW: u64 = 64 * 1024;
/// Bitmaps closer than this to the previous one are read with it: the bytes between (a
/// page or two) cost less than a read of their own. Further apart, as the blocks of images
/// with usual block sizes are, each cookie is read alone.
const BITMAP_GAP: u64 = 8 * 1024;

impl Checker<'_> {
    /// Reads the BAT a chunk at a time and checks each allocated entry (see
    /// [`Checker::check_entry`]). The table itself is not kept.
    pub(super) fn check_blocks(
        &mut self,
        header: &DynamicHeader,
        layout: &FileLayout,
    ) -> Result<BlockList> {
        let entries = u64::from(header.max_table_entries);
        let mut chunk = vec![0u8; (BAT_CHUNK_ENTRIES.min(entries) * BAT_ENTRY_SIZE) as usize];
        let mut blocks = BlockList::with_capacity(entries as usize);
        let mut first = 0;
        while first < entries {
            let count = BAT_CHUNK_ENTRIES.min(entries - first);
            let bytes = &mut chunk[..(count * BAT_ENTRY_SIZE) as usize];
            let at = bat_entry_offset(header, first as u32);
            self.read(bytes, at, "the block allocation table")?;
            for (index, sector) in BlockAllocationTable::parse(bytes).allocated() {
                let block = first as u32 + index;
                if self.check_entry(header, block, sector, layout) {
                    blocks.push(block, sector);
                }
            }
            first += count;
        }
        self.report.layout.bat_read = true;
        Ok(blocks)
    }

    /// One allocated BAT entry: its block must be in front of the footer (else it is
    /// recorded for a repair), and one past the end of the disk is worth a remark. Returns
    /// whether the block is in front of the footer, to be compared with the others.
    fn check_entry(
        &mut self,
        header: &DynamicHeader,
        block: u32,
        sector: u32,
        layout: &FileLayout,
    ) -> bool {
        self.report.allocated_blocks += 1;
        let geometry = layout.geometry();
        let extent = geometry.extent(block, sector);
        let entry_offset = Some(bat_entry_offset(header, block));
        if !extent.in_disk {
            let size = geometry.virtual_size();
            self.report.add(Severity::Info, FindingKind::BatPastDiskEnd, entry_offset, || {
                format!("BAT entry {block} points at sector {sector}, but block {block} lies past the end of the {size}-byte disk")
            });
        }
        let BlockExtent {
            start,
            bitmap_end,
            data_end,
            ..
        } = extent;
        let limit = geometry.limit();
        match geometry.out_of_range(&extent).map(out_of_range_kind) {
            None => true,
            Some(kind) => {
                self.report.add(Severity::Corrupt, kind, entry_offset, || {
                    if kind == FindingKind::BitmapOutOfRange {
                        format!("BAT entry {block} points at sector {sector}: its sector bitmap (bytes {start}..{bitmap_end}) is not in front of the footer at {limit}")
                    } else {
                        format!("BAT entry {block} points at sector {sector}: the block's bitmap and data (bytes {start}..{data_end}) run past the footer at {limit}")
                    }
                });
                self.report.layout.out_of_range.push((block, sector));
                false
            }
        }
    }

    /// Bitmap sanity. What a sector bitmap holds cannot be judged from the bitmap alone
    /// (any pattern of bits is valid, and qemu sets every bit, even past the end of the
    /// disk), with one exception that a crash produces: a bitmap that starts with the
    /// footer's cookie is the footer that stood at the end of the file before the block
    /// was allocated, left there because the BAT entry reached the disk and the bitmap did
    /// not. Only a differencing image reads its bitmaps (a dynamic image reads the block's
    /// data as it is), so only there is it damage.
    ///
    /// The blocks of the disk are taken in file order, and the starts of bitmaps that
    /// follow each other closely ([`BITMAP_GAP`]) are read at once, up to [`BITMAP_WINDOW`]
    /// bytes: a crafted BAT whose millions of entries point into one stretch of the file
    /// costs a few reads, not one each (and a bitmap several entries share is read once).
    pub(super) fn check_bitmaps(
        &mut self,
        layout: &FileLayout,
        blocks: &BlockList,
        disk_type: DiskType,
    ) -> Result<()> {
        let cookie = FOOTER_COOKIE.len() as u64;
        // The `i`th block, where its bitmap starts, and whether it is in the disk (only
        // those bitmaps are read).
        let geometry = layout.geometry();
        let bitmap = |i: usize| {
            let (block, sector) = blocks.get(i);
            let extent = geometry.extent(block, sector);
            (block, extent.start, extent.in_disk)
        };
        let mut window = Vec::new();
        let mut window_start = 0;
        for i in 0..blocks.len() {
            let (block, start, in_disk) = bitmap(i);
            if !in_disk {
                continue;
            }
            // Starts only grow: a cookie not in the window is past it.
            if start + cookie > window_start + window.len() as u64 {
                let mut last = start;
                for (_, next, next_in_disk) in (i + 1..blocks.len()).map(bitmap) {
                    if next + cookie - start > BITMAP_WINDOW {
                        break;
                    }
                    if next_in_disk {
                        if next - last > BITMAP_GAP {
                            break;
                        }
                        last = next;
                    }
                }
                let end = last + cookie;
                window_start = start;
                window.resize((end - start) as usize, 0);
                self.read(&mut window, start, "sector bitmaps")?;
            }
            let at = (start - window_start) as usize;
            if window[at..at + cookie as usize] == FOOTER_COOKIE[..] {
                self.bitmap_holds_footer(block, start, disk_type);
            }
        }
        Ok(())
    }

    fn bitmap_holds_footer(&mut self, block: u32, start: u64, disk_type: DiskType) {
        let (severity, effect) = if disk_type == DiskType::Differencing {
            (
                Severity::Corrupt,
                "its set bits hide the parent's data for sectors the child may never have written",
            )
        } else {
            (
                Severity::Info,
                "a dynamic image does not read its bitmaps, so nothing reads wrong",
            )
        };
        self.report.add(severity, FindingKind::BitmapHoldsFooter, Some(start), || {
            format!(
                "the sector bitmap of block {block} (at {start}) holds a footer (cookie \"conectix\"): the block's BAT entry was written but its bitmap was not; {effect}"
            )
        });
    }
}

/// The finding a block not (wholly) in front of the footer gives.
pub(super) fn out_of_range_kind(out_of_range: OutOfRange) -> FindingKind {
    match out_of_range {
        OutOfRange::Bitmap => FindingKind::BitmapOutOfRange,
        OutOfRange::Data => FindingKind::BatOutOfRange,
    }
}
