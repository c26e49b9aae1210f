//! Which parts of a virtual disk hold data, and which image of a chain holds them.

use crate::error::Result;
use crate::Image;

pub use crate::image::{AllocatedRanges, RangeCursor, MAX_LISTED_RANGES};

/// A run of the virtual disk whose data is stored (rather than implied zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatedRange {
    /// Start in the virtual disk, in bytes.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Which image of the chain holds it: 0 is the image itself, 1 its parent, and so on
    /// ([`Image::chain`]`()[depth]` is its file).
    pub depth: usize,
    /// Where the data starts in that image's file (the run is contiguous there: runs are
    /// only merged when their data is). Always set by [`allocated_ranges`].
    pub file_offset: Option<u64>,
}

/// The allocated ranges of `image`, in virtual-disk order, like `qemu-img map`: fixed
/// images and raw bases hold the whole disk; a dynamic image holds its allocated blocks
/// (whole blocks, the last one clipped at the disk size); in a differencing image each
/// sector is held by the nearest image of the chain whose sector bitmap marks it present.
/// Sectors held nowhere (they read as zeros) are left out, and adjacent runs at the same
/// depth whose data is contiguous in the file are merged. See [`Image::allocated_ranges`].
///
/// Works per block and per bitmap byte from the BATs and the cached sector bitmaps; it
/// reads no data, and includes writes not yet flushed.
///
/// Refused past [`MAX_LISTED_RANGES`] ranges ([`crate::Error::TooManyRanges`]): iterate with
/// [`allocated_ranges_iter`] instead, whose memory is bounded whatever the count.
pub fn allocated_ranges(image: &Image) -> Result<Vec<AllocatedRange>> {
    image.allocated_ranges()
}

/// The same ranges as [`allocated_ranges`], one by one, worked out a window of the disk at
/// a time: at most [`RangeCursor::MAX_HELD`] are held at once, however many there are.
/// [`RangeCursor`] is the same walk, resumable between calls.
pub fn allocated_ranges_iter(image: &Image) -> AllocatedRanges<'_> {
    image.allocated_ranges_iter()
}
