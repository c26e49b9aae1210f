//! Fixed images: the virtual disk's bytes, then the footer.

use super::{
    check_write_range, file_next_data, read_exact_waiting, readable_length, sync, write_all,
    Access, FooterSource, LocatedFooter, VirtualDisk,
};
use crate::error::{Error, Result};
use crate::footer::{Footer, FOOTER_SIZE};
use crate::storage::{Storage, Wait};
use crate::zeros::is_all_zero;
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
                path: None,
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

    /// Changes the virtual size to `new_size` (validated by the caller), so that the file
    /// ends with a valid footer at every instant and a crash (or a power cut: every step is
    /// made durable before the next) leaves the image at its old size with its old
    /// contents, or at its new size with them cut or extended with zeros. See
    /// [`grow`](Self::grow) and [`shrink`](Self::shrink).
    pub(crate) fn set_size(&mut self, new_size: u64) -> Result<()> {
        self.access.check_writable()?;
        let file_size = self
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
        if new_size > self.size() {
            self.grow(footer, file_size)
        } else {
            self.shrink(footer, file_size)
        }
    }

    /// Growing, in four durable steps, none of which changes what the image reads until
    /// the last: (1) the footer as it is, copied to `new_size` (the image keeps its old
    /// size; the space between its data and the footer is unused, as a fixed image may
    /// have); (2) zeros over whatever of the old file the new disk covers (the old footer,
    /// any padding); (3) the file cut after the copy, if it was longer; (4) the footer with
    /// the new size, written over the copy in one sector. Writing the new footer first
    /// would leave, until the old one was zeroed, a disk of the new size with the old
    /// footer's bytes inside it. A grow run again after a crash finds the footer already
    /// at `new_size` and zeros what is not zeros yet.
    fn grow(&mut self, footer: Footer, file_size: u64) -> Result<()> {
        let new_size = footer.current_size;
        let file = self.file.as_ref();
        write_all(file, &self.footer.to_bytes(), new_size, "the footer")?;
        sync(file)?;
        self.zero(self.size()..new_size.min(file_size))?;
        sync(file)?;
        self.cut_after_footer(new_size, file_size)?;
        write_all(file, &footer.to_bytes(), new_size, "the footer")?;
        sync(file)?;
        self.footer = footer;
        Ok(())
    }

    /// Shrinking: the footer with the new size is written at `new_size` and made durable,
    /// then the file is cut after it. A crash before the cut leaves the image at its old
    /// size, with the new footer's bytes in the part being cut off (which the caller gave
    /// up: shrinking over data needs `force`).
    fn shrink(&mut self, footer: Footer, file_size: u64) -> Result<()> {
        let new_size = footer.current_size;
        write_all(
            self.file.as_ref(),
            &footer.to_bytes(),
            new_size,
            "the footer",
        )?;
        sync(self.file.as_ref())?;
        self.footer = footer;
        self.cut_after_footer(new_size, file_size)
    }

    /// Cuts a file of `file_size` bytes after a footer at `footer_offset` (if it is longer),
    /// durably.
    fn cut_after_footer(&self, footer_offset: u64, file_size: u64) -> Result<()> {
        let end = footer_offset + FOOTER_SIZE as u64;
        if file_size > end {
            self.file
                .set_len(end)
                .map_err(|e| Error::io("cutting the file after its footer", e))?;
            sync(self.file.as_ref())?;
        }
        Ok(())
    }

    /// Makes the file bytes `range` zeros, writing only the chunks that are not zeros
    /// already (a grow run again after a crash finds most of them zeros, and the file
    /// stays sparse).
    fn zero(&self, range: std::ops::Range<u64>) -> Result<()> {
        let chunk = ZERO_CHUNK.min(range.end.saturating_sub(range.start)) as usize;
        let zeros = vec![0u8; chunk];
        let mut read = vec![0u8; chunk];
        let mut at = range.start;
        while at < range.end {
            let n = ZERO_CHUNK.min(range.end - at) as usize;
            read_exact_waiting(
                self.file.as_ref(),
                &mut read[..n],
                at,
                "disk data",
                Wait::Yes,
            )?;
            if !is_all_zero(&read[..n]) {
                write_all(self.file.as_ref(), &zeros[..n], at, "disk data")?;
            }
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

    /// The holes of a sparse file (see [`crate::Storage::next_data`]): a fixed image made
    /// by `create` or `convert` leaves its unwritten data as holes.
    fn next_data(&self, offset: u64) -> Result<Option<std::ops::Range<u64>>> {
        file_next_data(self.file.as_ref(), offset, self.size(), "disk data")
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
