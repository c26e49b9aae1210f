//! Fixed images: the virtual disk's bytes, then the footer.

use super::{
    check_write_range, read_exact_waiting, readable_length, sync, write_all, Access, FooterSource,
    LocatedFooter, VirtualDisk,
};
use crate::error::{Error, Result};
use crate::footer::{Footer, FOOTER_SIZE};
use crate::storage::{Storage, Wait};
use std::path::{Path, PathBuf};

/// An open fixed image.
#[derive(Debug)]
pub struct FixedImage {
    file: Box<dyn Storage>,
    path: PathBuf,
    footer: Footer,
    footer_source: FooterSource,
    access: Access,
}

/// Bytes per write when zeroing what a grown fixed image uncovers.
const ZERO_CHUNK: u64 = 1 << 20;

impl FixedImage {
    pub(super) fn open(
        file: Box<dyn Storage>,
        path: &Path,
        located: LocatedFooter,
        access: Access,
    ) -> Result<FixedImage> {
        // The data must fit in front of the footer; a shorter file was truncated.
        let size = located.footer.current_size;
        if size > located.offset {
            return Err(Error::Truncated {
                what: format!("the {size}-byte virtual disk of a fixed image"),
                offset: 0,
                // Saturating: a damaged footer may claim a size near u64::MAX.
                end: size.saturating_add(512),
                file_size: located.file_size,
            });
        }
        Ok(FixedImage {
            file,
            path: path.to_path_buf(),
            footer: located.footer,
            footer_source: located.source,
            access,
        })
    }

    /// The hard disk footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Where the footer was found.
    pub fn footer_source(&self) -> FooterSource {
        self.footer_source
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn access(&self) -> &Access {
        &self.access
    }

    /// Changes the virtual size to `new_size` (validated by the caller): the footer, with
    /// the new current size and geometry, is written at `new_size` and made durable first,
    /// so that the file ends with a valid footer at every instant. Growing leaves a hole
    /// (zeros) and then overwrites with zeros whatever of the old file the disk now covers
    /// (the old footer, and any padding before it); a crash between the two steps leaves
    /// a valid image of the new size in which those 512 bytes still hold the old footer.
    /// Shrinking then cuts the file after the new footer; a crash before the cut leaves
    /// the image at its old size, with the new footer's bytes in the part being cut off.
    pub(crate) fn set_size(&mut self, new_size: u64) -> Result<()> {
        self.access.check_writable()?;
        let old_size = self.size();
        let old_file_size = self
            .file
            .file_size()
            .map_err(|e| Error::io("reading the file size", e))?;
        let mut footer = self.footer.clone();
        // The original size too: libvhdi takes the disk's size from it, not from the
        // current size (the specification calls it informational).
        footer.original_size = new_size;
        footer.current_size = new_size;
        footer.geometry = crate::Geometry::for_size(new_size);
        footer.update_checksum();
        write_all(
            self.file.as_ref(),
            &footer.to_bytes(),
            new_size,
            "the footer",
        )?;
        sync(self.file.as_ref())?;
        self.footer = footer;
        if new_size > old_size {
            self.zero(old_size..new_size.min(old_file_size))?;
        }
        let new_file_size = new_size + FOOTER_SIZE as u64;
        if old_file_size > new_file_size {
            self.file
                .set_len(new_file_size)
                .map_err(|e| Error::io("cutting the file after its footer", e))?;
        }
        sync(self.file.as_ref())
    }

    /// Writes zeros over the file bytes `range`.
    fn zero(&self, range: std::ops::Range<u64>) -> Result<()> {
        let zeros = vec![0u8; ZERO_CHUNK.min(range.end.saturating_sub(range.start)) as usize];
        let mut at = range.start;
        while at < range.end {
            let n = ZERO_CHUNK.min(range.end - at) as usize;
            write_all(self.file.as_ref(), &zeros[..n], at, "disk data")?;
            at += n as u64;
        }
        Ok(())
    }
}

impl FixedImage {
    /// [`VirtualDisk::read_at`], waiting for the device or not.
    fn read_waiting(&self, buf: &mut [u8], offset: u64, wait: Wait) -> Result<usize> {
        let length = readable_length(offset, buf.len(), self.size());
        // At or past the end: nothing to read, whatever a storage says about the offset.
        if length > 0 {
            let data = &mut buf[..length];
            read_exact_waiting(self.file.as_ref(), data, offset, "disk data", wait)?;
        }
        Ok(length)
    }
}

impl VirtualDisk for FixedImage {
    fn size(&self) -> u64 {
        self.footer.current_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.read_waiting(buf, offset, Wait::Yes)
    }

    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        self.read_waiting(buf, offset, Wait::No).ok()
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.access.check_writable()?;
        check_write_range(offset, buf.len(), self.size())?;
        write_all(self.file.as_ref(), buf, offset, "disk data")
    }

    fn flush(&mut self) -> Result<()> {
        if self.access.read_only_reason().is_some() {
            return Ok(());
        }
        sync(self.file.as_ref())
    }
}
