//! Dynamic images: blocks allocated on first write; an unallocated block reads as zeros.

use super::sparse::{DataRun, SparseFile};
use super::{check_range, check_write_range, readable_length, Access, FooterSource, VirtualDisk};
use crate::bat::BlockAllocationTable;
use crate::dynamic_header::DynamicHeader;
use crate::error::Result;
use crate::footer::Footer;
use crate::storage::Wait;
use crate::zeros::is_all_zero;
use std::path::Path;

/// An open dynamic image.
///
/// Reads use an allocated block's data as it is (its sector bitmap is kept exact for other
/// readers, but a sector never written reads as zeros either way).
#[derive(Debug)]
pub struct DynamicImage {
    // Boxed to keep `Image` small: see `SparseFile::open`.
    sparse: Box<SparseFile>,
}

impl DynamicImage {
    pub(super) fn new(sparse: Box<SparseFile>) -> DynamicImage {
        DynamicImage { sparse }
    }

    /// The hard disk footer.
    pub fn footer(&self) -> &Footer {
        self.sparse.footer()
    }

    /// The dynamic disk header.
    pub fn header(&self) -> &DynamicHeader {
        self.sparse.header()
    }

    /// The decoded path of each parent locator entry (see [`crate::Image::parent_locator_texts`]).
    pub fn parent_locator_texts(&self) -> [Option<String>; 8] {
        self.sparse.locator_texts()
    }

    /// The block allocation table as it is in memory (including unflushed allocations).
    pub fn bat(&self) -> &BlockAllocationTable {
        self.sparse.bat()
    }

    /// Bytes of data per block.
    pub fn block_size(&self) -> u32 {
        self.sparse.block_size()
    }

    /// Where the footer was found.
    pub fn footer_source(&self) -> FooterSource {
        self.sparse.footer_source()
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        self.sparse.path()
    }

    pub(crate) fn access(&self) -> &Access {
        self.sparse.access()
    }

    /// The sparse file under the image, for the maintenance operations.
    pub(crate) fn sparse(&self) -> &SparseFile {
        &self.sparse
    }

    /// The sparse file under the image, for the maintenance operations.
    pub(crate) fn sparse_mut(&mut self) -> &mut SparseFile {
        &mut self.sparse
    }
}

impl DynamicImage {
    /// [`VirtualDisk::read_at`], waiting for the device or not.
    fn read_waiting(&self, buf: &mut [u8], offset: u64, wait: Wait) -> Result<usize> {
        let length = readable_length(offset, buf.len(), self.size());
        let mut rest = &mut buf[..length];
        let mut run = DataRun::new(wait);
        for span in self.sparse.spans(offset, length) {
            let (dest, tail) = std::mem::take(&mut rest).split_at_mut(span.buf_range.len());
            rest = tail;
            match self.sparse.bat().get(span.block) {
                None => dest.fill(0),
                Some(sector) => run.push(&self.sparse, sector, span.offset_in_block, dest)?,
            }
        }
        run.finish(&self.sparse)?;
        Ok(length)
    }
}

impl VirtualDisk for DynamicImage {
    fn size(&self) -> u64 {
        self.sparse.size()
    }

    /// Unallocated blocks fill zeros; allocated blocks that follow one another in the file
    /// are read together, with one `preadv` (see `DataRun` in `sparse/data.rs`).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.read_waiting(buf, offset, Wait::Yes)
    }

    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        self.read_waiting(buf, offset, Wait::No).ok()
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.sparse.access().check_writable()?;
        check_write_range(offset, buf.len(), self.size())?;
        for span in self.sparse.spans(offset, buf.len()) {
            let data = &buf[span.buf_range.clone()];
            let sector = match self.sparse.bat().get(span.block) {
                Some(sector) => sector,
                // An unallocated block already reads as zeros.
                None if is_all_zero(data) => continue,
                None => self.sparse.allocate(span.block)?,
            };
            self.sparse
                .write_data(span.block, sector, span.offset_in_block, data)?;
            self.sparse.mark_present(span.block, sector, &span)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.sparse.flush()
    }

    /// Unallocates the blocks the range covers whole (the last block of the disk counts as
    /// whole when the range covers it up to the end of the disk) and zeroes the rest of the
    /// range in allocated blocks; unallocated ones already read as zeros. Then flushes, and
    /// cuts the file when freed blocks were at its end.
    fn discard(&mut self, offset: u64, length: u64) -> Result<()> {
        self.sparse.access().check_writable()?;
        check_range("discard", offset, length, self.size())?;
        let size = self.size();
        let block_size = u64::from(self.block_size());
        let mut position = offset;
        let end = offset + length;
        while position < end {
            let block = (position / block_size) as u32;
            let block_start = u64::from(block) * block_size;
            let block_end = (block_start + block_size).min(size);
            let span_end = block_end.min(end);
            if let Some(sector) = self.sparse.bat().get(block) {
                if position == block_start && span_end == block_end {
                    self.sparse.free_block(block);
                } else {
                    let range = position - block_start..span_end - block_start;
                    self.sparse.zero_data(block, sector, range)?;
                }
            }
            position = span_end;
        }
        self.sparse.flush()?;
        self.sparse.reclaim_tail()
    }
}
