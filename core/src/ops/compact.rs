//! Rewriting a sparse image without its all-zero blocks.

use super::Progress;
use crate::error::{Error, Result};
use crate::OpenOptions;
use std::path::Path;

/// What `compact` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    pub file_size_before: u64,
    pub file_size_after: u64,
    pub blocks_before: u64,
    pub blocks_after: u64,
}

/// Rewrites the dynamic or differencing image at `path` without the blocks it does not
/// need; what a reader sees is unchanged.
pub fn compact(path: &Path, options: &OpenOptions, progress: Progress) -> Result<CompactReport> {
    let _ = (path, options, progress);
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
