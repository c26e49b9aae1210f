//! A partition as a disk of its own: a byte range of another [`VirtualDisk`].

use crate::error::{Error, Result};
use crate::image::check_range;
use crate::VirtualDisk;
use std::ops::Range;

/// The bytes `offset..offset + size` of a disk, as a [`VirtualDisk`] of `size` bytes: what
/// `convert --partition`, `cat --partition` and `map --partition` read.
///
/// Every call is confined to the range: a read past its end is short, a write or discard
/// past it fails with [`Error::OutOfRange`] (nothing is written). What the disk knows of
/// its holes ([`reads_without_io`](VirtualDisk::reads_without_io),
/// [`next_data`](VirtualDisk::next_data)) is passed through, so copying a partition of a
/// sparse image skips its holes as copying the whole disk does.
#[derive(Debug)]
pub struct PartitionView<D> {
    disk: D,
    offset: u64,
    size: u64,
}

impl<D: VirtualDisk> PartitionView<D> {
    /// The view of `size` bytes at `offset` of `disk`. Fails with
    /// [`Error::InvalidArgument`] (argument `partition`) when the range does not lie inside
    /// the disk.
    pub fn new(disk: D, offset: u64, size: u64) -> Result<PartitionView<D>> {
        if offset.checked_add(size).is_none_or(|end| end > disk.size()) {
            return Err(Error::InvalidArgument {
                name: "partition",
                reason: format!(
                    "bytes {offset}..{} do not lie inside the disk ({} bytes)",
                    offset.saturating_add(size),
                    disk.size()
                ),
            });
        }
        Ok(PartitionView { disk, offset, size })
    }

    /// Where the view starts in the disk, in bytes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The disk the view is of.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// The view's own disk back.
    pub fn into_inner(self) -> D {
        self.disk
    }

    /// `length` bytes at `offset` clipped to the view: the length that lies inside.
    fn clip(&self, offset: u64, length: u64) -> u64 {
        length.min(self.size.saturating_sub(offset))
    }
}

impl<D: VirtualDisk> VirtualDisk for PartitionView<D> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let length = self.clip(offset, buf.len() as u64) as usize;
        if length == 0 {
            return Ok(0);
        }
        self.disk.read_at(&mut buf[..length], self.offset + offset)
    }

    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        let length = self.clip(offset, buf.len() as u64) as usize;
        if length == 0 {
            return Some(0);
        }
        self.disk
            .read_at_now(&mut buf[..length], self.offset + offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        check_range("write", offset, buf.len() as u64, self.size)?;
        self.disk.write_at(buf, self.offset + offset)
    }

    fn flush(&mut self) -> Result<()> {
        self.disk.flush()
    }

    fn reads_without_io(&self, offset: u64, length: u64) -> bool {
        let length = self.clip(offset, length);
        length == 0 || self.disk.reads_without_io(self.offset + offset, length)
    }

    fn next_data(&self, offset: u64) -> Result<Option<Range<u64>>> {
        if offset >= self.size {
            return Ok(None);
        }
        let end = self.offset + self.size;
        Ok(self
            .disk
            .next_data(self.offset + offset)?
            .filter(|data| data.start < end)
            .map(|data| data.start - self.offset..data.end.min(end) - self.offset))
    }

    fn discard(&mut self, offset: u64, length: u64) -> Result<()> {
        check_range("discard", offset, length, self.size)?;
        self.disk.discard(self.offset + offset, length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::MemoryDisk;

    fn disk() -> MemoryDisk {
        MemoryDisk((0..4096u32).map(|i| (i % 251) as u8).collect())
    }

    #[test]
    fn reads_and_writes_stay_inside() {
        let mut view = PartitionView::new(disk(), 1024, 1024).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(view.read_at(&mut buf, 1020).unwrap(), 4);
        assert_eq!(buf[0], (2044 % 251) as u8);
        assert_eq!(view.read_at(&mut buf, 1024).unwrap(), 0);
        assert!(matches!(
            view.write_at(&[1; 8], 1020),
            Err(Error::OutOfRange { .. })
        ));
        view.write_at(&[7; 4], 1020).unwrap();
        let mut whole = [0u8; 8];
        view.disk().read_at(&mut whole, 2044).unwrap();
        assert_eq!(
            whole,
            [
                7,
                7,
                7,
                7,
                (2048 % 251) as u8,
                (2049 % 251) as u8,
                (2050 % 251) as u8,
                (2051 % 251) as u8
            ]
        );
        assert!(PartitionView::new(disk(), 4000, 100).is_err());
        assert_eq!(view.next_data(0).unwrap(), Some(0..1024));
        assert_eq!(view.next_data(1024).unwrap(), None);
    }
}
