//! Fixed images: the virtual disk's bytes, then the footer.

use super::{
    check_write_range, read_exact, readable_length, sync, write_all, Access, FooterSource,
    LocatedFooter, VirtualDisk,
};
use crate::error::{Error, Result};
use crate::footer::Footer;
use crate::storage::Storage;
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
}

impl VirtualDisk for FixedImage {
    fn size(&self) -> u64 {
        self.footer.current_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let length = readable_length(offset, buf.len(), self.size());
        // At or past the end: nothing to read, whatever a storage says about the offset.
        if length > 0 {
            read_exact(self.file.as_ref(), &mut buf[..length], offset, "disk data")?;
        }
        Ok(length)
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
