//! A VHD file computed on the fly from a source disk, read like a file: what a stream
//! upload sends, byte for byte what `convert` writes.

use super::{ConvertOptions, Progress, SourceFormat};
use crate::error::{Error, Result};
use crate::{OpenOptions, VirtualDisk};
use std::path::Path;

/// A source disk for conversion: a raw file or a VHD (chains flattened), read-only.
pub type Source = Box<dyn VirtualDisk + Send + Sync>;

/// Opens `path` read-only as a conversion source.
pub fn open_source(path: &Path, format: SourceFormat, open: &OpenOptions) -> Result<Source> {
    let _ = (path, format, open);
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}

/// The bytes of the fixed or dynamic VHD that `convert` would write for a source.
pub struct VhdStream {
    _source: Source,
}

impl VhdStream {
    /// Plans the output (dynamic output reads the whole source once, to leave all-zero
    /// blocks out, so that the length is known before the first byte).
    pub fn new(source: Source, options: &ConvertOptions, progress: Progress) -> Result<VhdStream> {
        let _ = (source, options, progress);
        Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
    }

    /// Total length of the VHD file in bytes.
    pub fn len(&self) -> u64 {
        0
    }

    /// Whether the output is empty (it never is: every VHD has a footer).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads output bytes at `offset`, like `pread`; short only at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let _ = (buf, offset);
        Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
    }
}
