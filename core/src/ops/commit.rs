//! Merging a differencing image into its parent.

use super::Progress;
use crate::error::{Error, Result};
use crate::OpenOptions;
use std::path::{Path, PathBuf};

/// What `commit` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// The parent that received the data.
    pub parent: PathBuf,
    /// Bytes copied into the parent.
    pub bytes_committed: u64,
}

/// Writes the sectors present in the differencing image at `path` into its parent, then
/// empties the child.
pub fn commit(path: &Path, options: &OpenOptions, progress: Progress) -> Result<CommitReport> {
    let _ = (path, options, progress);
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
