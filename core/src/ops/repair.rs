//! `check --repair`: fixing what `check` finds, where that is safe.

use crate::check::{CheckOptions, CheckReport};
use crate::error::{Error, Result};
use std::path::Path;

/// One change `repair` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairAction {
    pub description: String,
}

/// What `repair` found and did.
#[derive(Debug, Clone)]
pub struct RepairReport {
    /// The check before repairing.
    pub before: CheckReport,
    /// The changes made, in order.
    pub actions: Vec<RepairAction>,
    /// The check after repairing.
    pub after: CheckReport,
}

/// Checks the image at `path` and repairs what can be repaired safely.
pub fn repair(path: &Path, options: &CheckOptions) -> Result<RepairReport> {
    let _ = (path, options);
    Err(Error::Unsupported(format!(
        "{} is not implemented yet",
        module_path!()
    )))
}
