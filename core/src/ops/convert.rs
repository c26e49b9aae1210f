//! Conversion between raw, fixed, dynamic and (flattened) differencing images.

use super::Progress;
use crate::error::{Error, Result};
use crate::OpenOptions;
use std::path::Path;

/// What `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The virtual disk's bytes, nothing else.
    Raw,
    /// A fixed VHD: the data, then the footer.
    Fixed,
    /// A dynamic VHD; all-zero blocks are left unallocated.
    Dynamic,
}

/// How `convert` reads its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceFormat {
    /// A VHD if the file ends with a valid footer, raw otherwise.
    #[default]
    Auto,
    /// A raw disk: the file's bytes are the disk's.
    Raw,
    /// A VHD of any kind (a differencing image is read through its chain).
    Vhd,
}

/// How to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub to: OutputFormat,
    pub source_format: SourceFormat,
    /// Make what Azure accepts: a fixed image whose virtual size is rounded up to a whole MiB.
    pub azure: bool,
    /// Block size of dynamic output (default 2 MiB).
    pub block_size: u32,
    /// Replace an existing destination instead of failing with [`Error::AlreadyExists`].
    pub overwrite: bool,
    /// Unique id of the output; random when `None`.
    pub unique_id: Option<[u8; 16]>,
    /// Time stamp of the output (seconds since 2000-01-01); now when `None`.
    pub timestamp: Option<u32>,
    /// How to open a VHD source (its parents, checksums); it is always opened read-only.
    pub open: OpenOptions,
}

/// What `convert` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// Virtual size of the output in bytes.
    pub virtual_size: u64,
    /// Size of the output file in bytes.
    pub file_size: u64,
    /// Blocks allocated in dynamic output (0 for other formats).
    pub allocated_blocks: u64,
}

/// Converts `source` into a new image at `destination`.
pub fn convert(
    source: &Path,
    destination: &Path,
    options: &ConvertOptions,
    progress: Progress,
) -> Result<ConvertReport> {
    let _ = (source, destination, options, progress);
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
