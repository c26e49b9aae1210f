//! Growing and shrinking images.

use super::Progress;
use crate::error::{Error, Result};
use std::path::Path;

/// How to resize.
#[derive(Debug, Clone, Default)]
pub struct ResizeOptions {
    /// Shrink even when the part cut off holds data.
    pub force: bool,
}

/// Changes the virtual size of the image at `path` to `new_size` bytes.
pub fn resize(path: &Path, new_size: u64, options: &ResizeOptions, progress: Progress) -> Result<()> {
    let _ = (path, new_size, options, progress);
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
