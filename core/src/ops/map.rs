//! Which parts of a virtual disk hold data, and which image of a chain holds them.

use crate::error::{Error, Result};
use crate::Image;

/// A run of the virtual disk whose data is stored (rather than implied zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatedRange {
    /// Start in the virtual disk, in bytes.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Which image of the chain holds it: 0 is the image itself, 1 its parent, and so on.
    pub depth: usize,
    /// Where the data starts in that image's file, when the run is contiguous there.
    pub file_offset: Option<u64>,
}

/// The allocated ranges of `image`, in disk order, adjacent runs merged.
pub fn allocated_ranges(image: &Image) -> Result<Vec<AllocatedRange>> {
    let _ = image;
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
