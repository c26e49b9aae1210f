//! A raw disk file (no VHD structures) serving as the base of a differencing chain, when the
//! caller names it explicitly. It is only ever read.

use super::{file_next_data, read_exact_waiting, readable_length, LockedFile, VirtualDisk};
use crate::error::{Error, Result};
use crate::storage::Wait;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A plain file read as a virtual disk of its own size.
#[derive(Debug)]
pub struct RawDisk {
    file: LockedFile,
    path: PathBuf,
    size: u64,
}

impl RawDisk {
    /// Opens `path` read-only, without locking it.
    pub fn open(path: &Path) -> Result<RawDisk> {
        RawDisk::open_with_lock(path, false)
    }

    /// Opens `path` read-only, with a shared lock when `lock` is set (as every parent of a
    /// chain is locked: see [`crate::OpenOptions::lock`]).
    /// A FIFO, socket, directory or character device is refused ([`Error::FileType`]); a
    /// block device is read as the disk it holds.
    pub(crate) fn open_with_lock(path: &Path, lock: bool) -> Result<RawDisk> {
        let (file, _) = crate::files::open(
            path,
            File::options().read(true),
            crate::files::Use::Read,
            "a raw disk",
            |e| Error::io_at(path, "open", "opening the file", e),
        )?;
        RawDisk::from_file(file, path, lock)
    }

    /// The raw disk in `file`, already opened (and checked) by the caller; locked shared
    /// when `lock` is set.
    pub(crate) fn from_file(file: File, path: &Path, lock: bool) -> Result<RawDisk> {
        let file = LockedFile::new(file, path, true, lock)?;
        let size = crate::files::size(&file)
            .map_err(|e| Error::io_at(path, "fstat", "reading the size", e))?;
        Ok(RawDisk {
            file,
            path: path.to_path_buf(),
            size,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RawDisk {
    /// [`VirtualDisk::read_at`], waiting for the device or not.
    fn read_waiting(&self, buf: &mut [u8], offset: u64, wait: Wait) -> Result<usize> {
        let length = readable_length(offset, buf.len(), self.size);
        let data = &mut buf[..length];
        read_exact_waiting(&*self.file, data, offset, "raw disk data", wait)
            .map_err(|e| e.in_file(&self.path))?;
        Ok(length)
    }
}

impl VirtualDisk for RawDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.read_waiting(buf, offset, Wait::Yes)
    }

    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        self.read_waiting(buf, offset, Wait::No).ok()
    }

    /// The holes of a sparse file (see [`crate::Storage::next_data`]).
    fn next_data(&self, offset: u64) -> Result<Option<std::ops::Range<u64>>> {
        file_next_data(&*self.file, offset, self.size, "raw disk data")
            .map_err(|e| e.in_file(&self.path))
    }

    fn write_at(&mut self, _buf: &[u8], _offset: u64) -> Result<()> {
        Err(Error::ReadOnly {
            path: Some(self.path.clone()),
            reason: "it is the raw base of a chain".into(),
        })
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
