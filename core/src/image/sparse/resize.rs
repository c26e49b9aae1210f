//! Changing the virtual size: blocks freed past the new end, the last block cleared, blocks
//! packed and the file cut after the last one.

use super::SparseFile;
use crate::error::{Error, Result};
use crate::footer::FOOTER_SIZE;
use crate::image::layout::block_extent;
use crate::image::{read_exact, sync, write_all};
use std::ops::Range;

/// Unit of the copies that discard, resize and compact make: large sequential I/O.
pub(crate) const COPY_CHUNK: u64 = 4 << 20;

impl SparseFile {
    /// Changes the virtual size to `new_size` (validated by the caller): the BAT grows when
    /// it has too few entries, blocks past the new end are freed, and the part of the disk
    /// that appears (or disappears) inside the last block is cleared (zeros in a dynamic
    /// image, absent sectors in a differencing one). Then the footer (current size and
    /// geometry) is written at the end, made durable, and copied to offset 0.
    pub(crate) fn set_size(&mut self, new_size: u64) -> Result<()> {
        self.access.check_writable()?;
        self.flush()?;
        let old_size = self.size();
        let new_blocks = new_size.div_ceil(self.block_size);
        let old_blocks = old_size.div_ceil(self.block_size);
        // Entries past the end of the disk were never checked nor read: drop them all.
        for block in old_blocks.min(new_blocks)..self.bat.len() as u64 {
            let block = block as u32;
            if u64::from(block) < old_blocks {
                self.free_block(block);
            } else {
                self.drop_entry(block);
            }
        }
        // The part of the last block between the two sizes must read as nothing there.
        let (low, high) = (old_size.min(new_size), old_size.max(new_size));
        if !low.is_multiple_of(self.block_size) {
            let block = (low / self.block_size) as u32;
            let block_start = u64::from(block) * self.block_size;
            let end = self.block_size.min(high - block_start);
            self.clear_in_block(block, low - block_start..end, new_size > old_size)?;
        }
        self.flush()?;
        if new_blocks > self.bat.len() as u64 {
            self.grow_bat(new_blocks as u32)?;
        }
        let shrinking = new_size < old_size;
        let mut footer = self.footer.clone();
        // The original size too: libvhdi takes the disk's size from it, not from the
        // current size (the specification calls it informational).
        footer.original_size = new_size;
        footer.current_size = new_size;
        footer.geometry = crate::Geometry::for_size(new_size);
        footer.update_checksum();
        self.write_footers(footer)?;
        if shrinking {
            self.pack_blocks()?;
        }
        self.reclaim_tail()
    }

    /// Makes `range` of `block` (if allocated) read as nothing stored: absent sectors in a
    /// differencing image, zeros in a dynamic one. When `appearing`, the range lies past
    /// the old end of the disk, where the block's space was never checked: it must then
    /// be in the file, clear of everything else.
    pub(super) fn clear_in_block(
        &mut self,
        block: u32,
        range: Range<u64>,
        appearing: bool,
    ) -> Result<()> {
        let Some(sector) = self.bat.get(block) else {
            return Ok(());
        };
        // The disk as large as the range needs (the new size, seen from this block).
        let block_start = u64::from(block) * self.block_size;
        let size = self.size().max(block_start + range.end);
        if appearing {
            // The bytes the block's extent gains (to its whole last sector).
            let start = self.data_offset(sector) + range.start;
            let end = block_extent(sector, block, self.header.block_size, size).end;
            if !self.space_is_free(start..end, Some(block)) {
                return Err(Error::Unsupported(format!(
                    "block {block} of {} lies only partly in the file (bytes {start}..{end} of its \
                     data belong to something else or to no file): compact the image first",
                    self.path.display()
                )));
            }
        }
        if self.footer.disk_type() == Some(crate::DiskType::Differencing) {
            let sectors = range.start.div_ceil(512) as u32..range.end.div_ceil(512) as u32;
            self.mark_absent(block, sector, sectors)?;
            Ok(())
        } else {
            self.zero_data_in_disk(block, sector, range, size)
        }
    }

    /// Whether file bytes `range` lie in front of the footer and clear of everything else
    /// but block `except` ([`FileLayout::is_free`]).
    pub(super) fn space_is_free(&self, range: Range<u64>, except: Option<u32>) -> bool {
        self.layout(self.next_block_offset)
            .is_free(range, self.bat.allocated(), except)
    }

    /// Moves the blocks at the end of the file into the free space below them, last block
    /// first, so that `reclaim_tail` can cut the file after the blocks that remain. Each
    /// block is copied into space nothing points at and made durable before its BAT entry
    /// is pointed at the copy (and made durable): a crash leaves the old copy in use, or
    /// the new one with the old space unreferenced. Called right after a flush.
    pub(super) fn pack_blocks(&mut self) -> Result<()> {
        let unit = self.unit_size();
        loop {
            let Some(lowest_free) = self.free_units.iter().copied().min() else {
                return Ok(());
            };
            let last = self
                .bat
                .allocated()
                .max_by_key(|&(_, sector)| sector)
                .filter(|&(_, sector)| u64::from(sector) * 512 > lowest_free);
            let Some((block, sector)) = last else {
                return Ok(());
            };
            let from = u64::from(sector) * 512;
            // The disk's last block may be only partly in the file.
            self.copy_within(from, lowest_free, unit.min(self.next_block_offset - from))?;
            sync(self.file.as_ref())?;
            self.bat.set(block, (lowest_free / 512) as u32);
            self.write_bat_entries(&[block])?;
            sync(self.file.as_ref())?;
            self.free_units.retain(|&offset| offset != lowest_free);
            if (u64::from(block) + 1) * self.block_size <= self.size() {
                self.free_units.push(from);
            }
        }
    }

    /// Shrinks the file when its end holds only freed space: the footer is written where
    /// the used space ends and made durable, then the file is cut after it, so that the
    /// file ends with a valid footer at every instant. Called right after a flush (the
    /// freed blocks' entries are durable). A storage that cannot be cut keeps the space,
    /// for later allocations.
    pub(crate) fn reclaim_tail(&mut self) -> Result<()> {
        let end = self.used_end(self.next_block_offset).next_multiple_of(512);
        if end >= self.next_block_offset {
            return Ok(());
        }
        self.write_footer_at(end)?;
        sync(self.file.as_ref())?;
        match self.file.set_len(end + FOOTER_SIZE as u64) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(()),
            Err(e) => return Err(Error::io("cutting the file after its footer", e)),
        }
        sync(self.file.as_ref())?;
        self.next_block_offset = end;
        self.free_units.retain(|&offset| offset < end);
        Ok(())
    }

    /// Copies `length` bytes of the file from `from` to `to` (regions apart), in large
    /// pieces.
    pub(super) fn copy_within(&self, from: u64, to: u64, length: u64) -> Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK.min(length) as usize];
        let mut done = 0;
        while done < length {
            let n = COPY_CHUNK.min(length - done) as usize;
            read_exact(
                self.file.as_ref(),
                &mut buf[..n],
                from + done,
                "data to move",
            )?;
            write_all(self.file.as_ref(), &buf[..n], to + done, "moved data")?;
            done += n as u64;
        }
        Ok(())
    }
}
