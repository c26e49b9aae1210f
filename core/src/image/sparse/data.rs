//! Block data: reads (one block, or a run of blocks stored one after another, in one
//! `preadv`), and writes bounded by the block's extent.

use super::{SparseFile, COPY_CHUNK};
use crate::error::{Error, Result};
use crate::image::layout::block_extent;
use crate::image::{read_exact, read_exact_waiting, read_failure, write_all};
use crate::storage::{read_exact_gapped_with, Wait};
use std::ops::Range;

impl SparseFile {
    /// Reads block data: `buf.len()` bytes at `offset_in_block` of the block at `sector`.
    pub(crate) fn read_data(
        &self,
        sector: u32,
        offset_in_block: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        let at = self.data_offset(sector) + offset_in_block;
        read_exact(self.file.as_ref(), buf, at, "block data")
    }

    /// Reads block data into `parts` in turn, from file offset `at`, skipping one sector
    /// bitmap's worth of the file after each part (see [`DataRun`]).
    pub(super) fn read_data_run(&self, at: u64, parts: &mut [&mut [u8]], wait: Wait) -> Result<()> {
        read_exact_gapped_with(self.file.as_ref(), parts, self.bitmap_size, at, wait).map_err(|e| {
            // What the run spans in the file, bitmaps between its parts included.
            let data = parts.iter().map(|part| part.len() as u64).sum::<u64>();
            let gaps = (parts.len() as u64).saturating_sub(1) * self.bitmap_size;
            read_failure(self.file.as_ref(), e, at, data + gaps, "block data")
        })
    }

    /// Writes block data: `data` at `offset_in_block` of allocated `block`, which starts at
    /// file `sector`.
    pub(crate) fn write_data(
        &self,
        block: u32,
        sector: u32,
        offset_in_block: u64,
        data: &[u8],
    ) -> Result<()> {
        self.write_data_in_disk(block, sector, offset_in_block, data, self.size())
    }

    /// [`SparseFile::write_data`] into a disk of `virtual_size` bytes: a resize that grows
    /// the disk clears the part of the last block that appears before the footer records
    /// the new size (having checked that those bytes are the block's own).
    pub(super) fn write_data_in_disk(
        &self,
        block: u32,
        sector: u32,
        offset_in_block: u64,
        data: &[u8],
        virtual_size: u64,
    ) -> Result<()> {
        let at = self.data_offset(sector).saturating_add(offset_in_block);
        let end = at.saturating_add(data.len() as u64);
        // Every block of the disk has its extent to itself, in front of the footer: opening
        // checked it for the blocks already there, a block allocated since is a whole new
        // unit behind which the footer moved, and a resize that makes an extent longer
        // checks the bytes it adds. Outside it lie the footer, a parent locator's path or
        // another block, so a write there is refused, not done. No caller asks for one:
        // this is the last line of defence, should a bug compute a wrong offset.
        let extent = block_extent(sector, block, self.header.block_size, virtual_size);
        if end > extent.end {
            return Err(Error::BatEntryOutOfRange {
                path: None,
                index: block,
                sector,
                offset: at,
                end,
                limit: extent.end,
            });
        }
        write_all(self.file.as_ref(), data, at, "block data")
    }

    /// Writes zeros over `range` of the data of allocated `block`, at file `sector`.
    pub(crate) fn zero_data(&self, block: u32, sector: u32, range: Range<u64>) -> Result<()> {
        self.zero_data_in_disk(block, sector, range, self.size())
    }

    /// [`SparseFile::zero_data`] into a disk of `virtual_size` bytes (see
    /// [`SparseFile::write_data_in_disk`]).
    pub(super) fn zero_data_in_disk(
        &self,
        block: u32,
        sector: u32,
        range: Range<u64>,
        virtual_size: u64,
    ) -> Result<()> {
        let zeros = vec![0u8; COPY_CHUNK.min(range.end - range.start) as usize];
        let mut at = range.start;
        while at < range.end {
            let n = COPY_CHUNK.min(range.end - at) as usize;
            self.write_data_in_disk(block, sector, at, &zeros[..n], virtual_size)?;
            at += n as u64;
        }
        Ok(())
    }
}

/// Most parts of one [`DataRun`]: as many as one read gathers (one `preadv` of the parts
/// and the bitmaps between them).
const MAX_RUN_PARTS: usize = crate::storage::PARTS_PER_READ;

/// Parts of a read whose data lie one after another in the file with exactly a sector
/// bitmap's worth of bytes between each two (the data of a block, and of the block stored
/// right after it), gathered to be read at once ([`Storage::read_exact_gapped_at`]: one
/// `preadv`) rather than one block at a time.
pub(crate) struct DataRun<'a> {
    /// File offsets where the first part starts and where the last one ends.
    start: u64,
    end: u64,
    parts: [&'a mut [u8]; MAX_RUN_PARTS],
    count: usize,
    /// Whether its reads may wait for the device.
    wait: Wait,
}

impl<'a> DataRun<'a> {
    pub(crate) fn new(wait: Wait) -> DataRun<'a> {
        DataRun {
            start: 0,
            end: 0,
            parts: Default::default(),
            count: 0,
            wait,
        }
    }

    /// Adds `dest`, to be filled from `offset_in_block` of the data of the block at file
    /// `sector`. The parts gathered so far are read first unless `dest` continues them:
    /// its data starts one bitmap after the end of the last part's.
    pub(crate) fn push(
        &mut self,
        sparse: &SparseFile,
        sector: u32,
        offset_in_block: u64,
        dest: &'a mut [u8],
    ) -> Result<()> {
        let at = sparse.data_offset(sector) + offset_in_block;
        let continues =
            self.count > 0 && self.count < MAX_RUN_PARTS && at == self.end + sparse.bitmap_size;
        if !continues {
            self.finish(sparse)?;
            self.start = at;
        }
        self.end = at + dest.len() as u64;
        self.parts[self.count] = dest;
        self.count += 1;
        Ok(())
    }

    /// Reads the parts gathered so far: one part (most small reads) with a plain `pread`.
    pub(crate) fn finish(&mut self, sparse: &SparseFile) -> Result<()> {
        match self.count {
            0 => return Ok(()),
            1 => read_exact_waiting(
                sparse.file.as_ref(),
                self.parts[0],
                self.start,
                "block data",
                self.wait,
            )?,
            count => sparse.read_data_run(self.start, &mut self.parts[..count], self.wait)?,
        }
        self.count = 0;
        Ok(())
    }
}
