//! Sector bitmaps: the sectors of a block that hold data in this image.
//!
//! Each allocated block starts with a bitmap, one bit per 512-byte sector, most significant
//! bit first, padded to a whole sector. In a differencing image a clear bit means "read the
//! parent"; in a dynamic image the block's data is used as it is.

/// Bytes of the sector bitmap that precedes each block of `block_size` bytes.
pub fn bitmap_size(block_size: u32) -> u64 {
    let sectors = u64::from(block_size).div_ceil(512);
    sectors.div_ceil(8).next_multiple_of(512)
}

/// A block's sector bitmap, as stored on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectorBitmap {
    bytes: Vec<u8>,
}

impl SectorBitmap {
    /// An all-clear bitmap for a block of `block_size` bytes.
    pub fn new(block_size: u32) -> Self {
        SectorBitmap {
            bytes: vec![0; bitmap_size(block_size) as usize],
        }
    }

    /// A bitmap from its on-disk bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SectorBitmap { bytes }
    }

    /// The on-disk bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True when `sector` (counted from the start of the block) is marked present.
    pub fn is_set(&self, sector: u32) -> bool {
        let (index, bit) = position(sector);
        self.bytes[index] & bit != 0
    }

    /// True when no sector is marked present.
    pub fn is_empty(&self) -> bool {
        crate::zeros::is_all_zero(&self.bytes)
    }

    /// The end of the run of sectors from `from` (exclusive, at most `limit`) that are all
    /// in the state of sector `from`: all present or all absent. Whole bytes of one state
    /// (8 sectors) are skipped at once, so that a full or empty bitmap costs a byte per 8
    /// sectors, not a bit test per sector.
    pub fn run_end(&self, from: u32, limit: u32) -> u32 {
        if from >= limit {
            return limit;
        }
        let present = self.is_set(from);
        let uniform = if present { 0xFF } else { 0x00 };
        let mut sector = from + 1;
        while sector < limit {
            if sector.is_multiple_of(8) && self.bytes[(sector / 8) as usize] == uniform {
                sector += 8;
            } else if self.is_set(sector) == present {
                sector += 1;
            } else {
                return sector;
            }
        }
        limit
    }

    /// Marks `count` sectors from `first` present. Returns whether any bit changed.
    pub fn set_range(&mut self, first: u32, count: u32) -> bool {
        let mut changed = false;
        for sector in first..first + count {
            let (index, bit) = position(sector);
            changed |= self.bytes[index] & bit == 0;
            self.bytes[index] |= bit;
        }
        changed
    }

    /// Marks `count` sectors from `first` absent. Returns whether any bit changed.
    pub fn clear_range(&mut self, first: u32, count: u32) -> bool {
        let mut changed = false;
        for sector in first..first + count {
            let (index, bit) = position(sector);
            changed |= self.bytes[index] & bit != 0;
            self.bytes[index] &= !bit;
        }
        changed
    }
}

/// The byte of the bitmap that holds `sector`'s bit, and the bit: sector 0 is the most
/// significant bit of byte 0 (bits are big-endian).
fn position(sector: u32) -> (usize, u8) {
    ((sector / 8) as usize, 0x80 >> (sector % 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_a_sector() {
        assert_eq!(bitmap_size(2 * 1024 * 1024), 512);
        assert_eq!(bitmap_size(512 * 1024), 512);
        assert_eq!(bitmap_size(4 * 1024 * 1024), 1024);
        assert_eq!(bitmap_size(4096), 512);
    }

    #[test]
    fn sector_zero_is_the_most_significant_bit() {
        let mut b = SectorBitmap::new(2 * 1024 * 1024);
        assert!(b.set_range(0, 1));
        assert_eq!(b.as_bytes()[0], 0x80);
        assert!(b.set_range(6, 4));
        assert_eq!(&b.as_bytes()[0..2], &[0x83, 0xC0]);
        assert!(!b.set_range(7, 2));
        assert!(b.is_set(9) && !b.is_set(10) && !b.is_set(5));
        assert!(b.clear_range(0, 7));
        assert_eq!(&b.as_bytes()[0..2], &[0x01, 0xC0]);
        assert!(!b.clear_range(2, 3) && !b.is_empty());
        assert!(b.clear_range(7, 3) && b.is_empty());
    }

    #[test]
    fn runs_skip_whole_bytes_and_stop_at_the_first_change() {
        let mut b = SectorBitmap::new(64 * 512);
        b.set_range(3, 20); // sectors 3..23
        assert_eq!(b.run_end(0, 64), 3);
        assert_eq!(b.run_end(3, 64), 23);
        assert_eq!(b.run_end(5, 64), 23);
        assert_eq!(b.run_end(23, 64), 64);
        assert_eq!(b.run_end(3, 10), 10);
        assert_eq!(b.run_end(10, 10), 10);
        // A whole byte skipped may overshoot the limit: the run still ends there.
        assert_eq!(b.run_end(24, 30), 30);
    }
}
