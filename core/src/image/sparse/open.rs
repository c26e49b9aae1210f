//! Opening: the dynamic header, the BAT and the blocks checked against the layout, and
//! whether a parent locator stands in the way of writes.

use super::{SparseFile, MAX_BLOCK_SIZE};
use crate::bat::BlockAllocationTable;
use crate::dynamic_header::{DynamicHeader, DYNAMIC_HEADER_SIZE};
use crate::error::{Error, Result};
use crate::footer::Footer;
use crate::image::layout::{bat_extent, between_footers, header_extent};
use crate::image::layout::{BlockList, LocatorInTheWay, Occupant};
use crate::image::{read_exact, Access, FooterSource, LocatedFooter, OpenOptions};
use crate::sector_bitmap::bitmap_size;
use crate::storage::Storage;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::RwLock;

impl SparseFile {
    /// Returned boxed: `Image::open` recurses once per level of a parent chain (up to
    /// `MAX_CHAIN_DEPTH`), and the ~2 KiB structure moved by value through every frame of
    /// that recursion (several copies per frame in debug builds) overflowed a 2 MiB thread
    /// stack at about 43 levels. Boxed, only a pointer moves.
    pub(in crate::image) fn open(
        file: Box<dyn Storage>,
        path: &Path,
        located: LocatedFooter,
        mut access: Access,
        options: &OpenOptions,
    ) -> Result<Box<SparseFile>> {
        let header = read_header(file.as_ref(), &located)?;
        let footer = located.footer.clone();
        if let Err(e) = header.verify_checksum(footer.data_offset) {
            if !options.ignore_checksums {
                return Err(e);
            }
            access.force_read_only(format!("checksums were ignored to open it ({e})"));
        }
        validate_block_size(&header, footer.data_offset)?;
        let bat = read_bat(file.as_ref(), &header, &footer, &located)?;
        let block_size = u64::from(header.block_size);
        let bitmap_size = bitmap_size(header.block_size);
        let mut image = SparseFile {
            path: path.to_path_buf(),
            footer_source: located.source,
            next_block_offset: 0,
            block_size,
            bitmap_size,
            bat,
            header,
            footer,
            file,
            access,
            unflushed_blocks: BTreeSet::new(),
            bitmaps: RwLock::new(HashMap::new()),
            dirty_bitmaps: BTreeSet::new(),
            freed_entries: BTreeSet::new(),
            freed_units: Vec::new(),
            free_units: Vec::new(),
        };
        image.validate_blocks(located.end_offset)?;
        image.next_block_offset = image.end_of_used_space(located.end_offset);
        if let Some(reason) = image.locator_in_the_way(located.end_offset) {
            image.access.force_read_only(reason);
        }
        Ok(Box::new(image))
    }

    /// Why a differencing image may not be written because of where a parent locator's
    /// data lies ([`FileLayout::locator_in_the_way`]), in words.
    pub(super) fn locator_in_the_way(&self, footer_offset: u64) -> Option<String> {
        let (locator, problem) = self.layout(footer_offset).locator_in_the_way()?;
        let (start, end) = locator.data;
        let what = format!(
            "the data of parent locator {} (bytes {start}..{end})",
            locator.index
        );
        Some(match problem {
            LocatorInTheWay::PastFooter => {
                let verb = if start >= footer_offset {
                    "lies"
                } else {
                    "runs"
                };
                format!(
                    "{what} {verb} past the footer (at {footer_offset}), where new blocks \
                     would be written over it"
                )
            }
            LocatorInTheWay::Overlaps(structure) => format!(
                "{what} overlaps {}, which writes would change",
                structure.name(&self.header)
            ),
        })
    }

    /// Every allocated block's extent ([`block_extent`]: its sector bitmap, and its data up
    /// to the end of the disk in whole sectors) must lie in the file, in front of the footer.
    /// The blocks of the disk must not overlap each other nor the footer copy, the dynamic
    /// header, the BAT or (in a differencing image, which reads them to find its parent) a
    /// parent locator's data in the file ([`FileLayout::overlaps`]): a write to one would
    /// change another block, or destroy the image's structures. Writes never leave these
    /// extents ([`SparseFile::write_data`]). An entry past the end of the disk is never
    /// read nor written: only its bitmap must lie in front of the footer.
    pub(super) fn validate_blocks(&self, footer_offset: u64) -> Result<()> {
        let layout = self.layout(footer_offset);
        let geometry = layout.geometry();
        let in_disk = |&(block, sector): &(u32, u32)| geometry.extent(block, sector).in_disk;
        let mut blocks = BlockList::with_capacity(self.bat.allocated().filter(in_disk).count());
        for (block, sector) in self.bat.allocated() {
            let extent = geometry.extent(block, sector);
            if geometry.out_of_range(&extent).is_some() {
                return Err(Error::BatEntryOutOfRange {
                    path: None,
                    index: block,
                    sector,
                    offset: extent.start,
                    end: extent.data_end,
                    limit: footer_offset,
                });
            }
            if extent.in_disk {
                blocks.push(block, sector);
            }
        }
        blocks.sort();
        // The first overlap that involves a block (structures that overlap each other are
        // the locator's business: `locator_in_the_way`).
        let overlap = layout.overlaps(&blocks).find_map(|(region, before)| {
            match (region.occupant, before.occupant) {
                (Occupant::Block(block), _) => Some((block, region.start, before)),
                (_, Occupant::Block(block)) => Some((block, before.start, region)),
                _ => None,
            }
        });
        let Some((block, start, other)) = overlap else {
            return Ok(());
        };
        let sector = (start / 512) as u32;
        let extent = geometry.extent(block, sector);
        let other = match other.occupant {
            Occupant::Block(other) => format!("block {other}"),
            Occupant::Structure(structure) => format!(
                "{} (bytes {}..{})",
                structure.name(&self.header),
                other.start,
                other.end
            ),
        };
        Err(Error::BatEntryOverlap {
            path: None,
            index: block,
            sector,
            offset: extent.start,
            end: extent.data_end,
            other,
        })
    }
}

/// Reads the dynamic header at the footer's data offset. It must lie between the footer
/// copy and the end footer; when the end footer is missing (the file was cut and the copy
/// is in use), a header that runs past the end of the file was truncated.
fn read_header(file: &dyn Storage, located: &LocatedFooter) -> Result<DynamicHeader> {
    let offset = located.footer.data_offset;
    let Range { end, .. } = header_extent(offset);
    let file_size = located.file_size;
    let cut = located.source == FooterSource::Copy && offset < file_size;
    if cut && end > file_size {
        return Err(Error::Truncated {
            path: None,
            what: "the dynamic header".into(),
            offset,
            end,
            file_size,
        });
    }
    let limit = if cut { file_size } else { located.end_offset };
    if !between_footers(&(offset..end), limit) {
        return Err(Error::InvalidField {
            path: None,
            structure: "footer",
            field: "data offset",
            offset: 16,
            found: offset,
            reason: format!(
                "the dynamic header must lie between the footer copy and the end footer of the {file_size}-byte file"
            ),
        });
    }
    let mut bytes = [0u8; DYNAMIC_HEADER_SIZE];
    read_exact(file, &mut bytes, offset, "the dynamic header")?;
    DynamicHeader::parse(&bytes, offset)
}

fn validate_block_size(header: &DynamicHeader, header_offset: u64) -> Result<()> {
    let size = header.block_size;
    if !(512..=MAX_BLOCK_SIZE).contains(&size) || !size.is_power_of_two() {
        return Err(Error::InvalidField {
            path: None,
            structure: "dynamic header",
            field: "block size",
            offset: header_offset + 32,
            found: u64::from(size),
            reason: format!(
                "must be a power of two of at least 512 bytes and at most {} MiB",
                MAX_BLOCK_SIZE >> 20
            ),
        });
    }
    Ok(())
}

/// Reads the BAT after checking that it covers the disk and fits in the file, so that a
/// hostile header cannot make us allocate more memory than the file holds, and that it
/// lies between the footer copy and the end footer, clear of the dynamic header (so that
/// writing an entry cannot destroy either).
fn read_bat(
    file: &dyn Storage,
    header: &DynamicHeader,
    footer: &Footer,
    located: &LocatedFooter,
) -> Result<BlockAllocationTable> {
    let file_size = located.file_size;
    let entries = u64::from(header.max_table_entries);
    let needed = footer.current_size.div_ceil(u64::from(header.block_size));
    if entries < needed {
        return Err(Error::InvalidField {
            path: None,
            structure: "dynamic header",
            field: "max table entries",
            offset: footer.data_offset + 28,
            found: entries,
            reason: format!(
                "{needed} blocks of {} bytes are needed for a {}-byte disk",
                header.block_size, footer.current_size
            ),
        });
    }
    let Range { start, end } = bat_extent(header);
    if end > file_size {
        return Err(Error::Truncated {
            path: None,
            what: format!("the block allocation table ({entries} entries)"),
            offset: start,
            end,
            file_size,
        });
    }
    let Range {
        start: header_start,
        end: header_end,
    } = header_extent(footer.data_offset);
    // The end footer, or the end of a file cut before it (read from the footer copy).
    let limit = located.end_offset;
    let clear_of_header = end <= header_start || header_end <= start;
    if !between_footers(&(start..end), limit) || !clear_of_header {
        return Err(Error::InvalidField {
            path: None,
            structure: "dynamic header",
            field: "table offset",
            offset: header_start + 16,
            found: start,
            reason: format!(
                "the {entries}-entry table (bytes {start}..{end}) must lie between the footer \
                 copy and the end footer (at {limit}), clear of the dynamic header (bytes \
                 {header_start}..{header_end})"
            ),
        });
    }
    BlockAllocationTable::read_with(entries as usize, |bytes, position| {
        read_exact(file, bytes, start + position, "the block allocation table")
    })
}
