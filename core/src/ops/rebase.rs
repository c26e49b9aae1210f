//! Pointing a differencing image at a parent that moved.

use crate::error::{Error, Result};
use std::path::Path;

/// How to rebase.
#[derive(Debug, Clone, Default)]
pub struct RebaseOptions {
    /// Accept a new parent whose time stamp differs from the one the child records (a
    /// copied parent); the unique id must still match.
    pub ignore_parent_timestamp: bool,
}

/// Rewrites the parent locators and parent name of the differencing image at `path` so
/// that they name `new_parent`, after checking its unique id.
pub fn rebase(path: &Path, new_parent: &Path, options: &RebaseOptions) -> Result<()> {
    let _ = (path, new_parent, options);
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
