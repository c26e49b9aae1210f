//! Positioned I/O on the file behind an image.
//!
//! Images never seek: every access names its offset (`pread`/`pwrite`), so reads can run in
//! parallel on one file handle and no position is shared between callers. The trait exists so
//! that tests can put a fault-injecting layer between an image and its file.

use std::fs::File;
use std::io;

/// The operations an image needs from the file that holds it.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Fills `buf` from `offset`; a read past the end of the file is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Fills each buffer of `parts` in turn, from `offset`, skipping `gap` bytes of the file
    /// after each one: the data of blocks that follow one another in a sparse image, without
    /// the sector bitmaps between them. A read past the end of the file is an
    /// `UnexpectedEof` error. The default reads the parts one by one; a `File` reads them
    /// with one `preadv` on Linux.
    fn read_exact_gapped_at(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        read_parts_one_by_one(self, parts, gap, offset)
    }
    /// Writes all of `buf` at `offset`, extending the file when needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes everything written so far durable (`fsync`).
    fn sync(&self) -> io::Result<()>;
    /// The file's current length in bytes.
    fn file_size(&self) -> io::Result<u64>;
    /// Cuts (or extends) the file to `size` bytes. Storages that cannot return
    /// `ErrorKind::Unsupported` (the default); images then leave freed space in the file.
    fn set_len(&self, size: u64) -> io::Result<()> {
        let _ = size;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// [`Storage::read_exact_gapped_at`] as one read per part.
pub fn read_parts_one_by_one<S: Storage + ?Sized>(
    storage: &S,
    parts: &mut [&mut [u8]],
    gap: u64,
    mut offset: u64,
) -> io::Result<()> {
    for part in parts {
        storage.read_exact_at(part, offset)?;
        offset = next_part(offset, part.len(), gap)?;
    }
    Ok(())
}

/// Where the part after one of `len` bytes at `offset` starts.
fn next_part(offset: u64, len: usize, gap: u64) -> io::Result<u64> {
    offset
        .checked_add(len as u64)
        .and_then(|end| end.checked_add(gap))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file offset overflows"))
}

impl Storage for File {
    #[cfg(unix)]
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn read_exact_gapped_at(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        vectored::read_exact_gapped_at(self, parts, gap, offset)
    }

    #[cfg(unix)]
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_read(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[cfg(windows)]
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_write(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_all()
    }

    /// The file's length; a block device's size (its `stat` length is 0).
    fn file_size(&self) -> io::Result<u64> {
        crate::files::size(self)
    }

    fn set_len(&self, size: u64) -> io::Result<()> {
        File::set_len(self, size)
    }
}

/// One `preadv` for several parts: the standard library has no stable positioned vectored
/// read, so the C library's is declared here (Linux, 64-bit `off_t`).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod vectored {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `struct iovec` of `<sys/uio.h>`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct IoVec {
        base: *mut u8,
        len: usize,
    }

    extern "C" {
        fn preadv(fd: i32, iov: *const IoVec, iovcnt: i32, offset: i64) -> isize;
    }

    /// Parts per call (with the gaps between them, 63 entries: far below `IOV_MAX`).
    const PARTS_PER_CALL: usize = 32;

    /// Gaps up to this size are read into a scratch buffer on the stack (a sector bitmap is
    /// 512 bytes for the usual 2 MiB blocks); larger ones are read around, part by part.
    const MAX_GAP: usize = 4096;

    pub(super) fn read_exact_gapped_at(
        file: &File,
        parts: &mut [&mut [u8]],
        gap: u64,
        mut offset: u64,
    ) -> io::Result<()> {
        if gap > MAX_GAP as u64 {
            return super::read_parts_one_by_one(file, parts, gap, offset);
        }
        // Every gap lands here; nothing ever reads it (so it need not be initialised), and
        // only raw pointers to it exist.
        let mut scratch = std::mem::MaybeUninit::<[u8; MAX_GAP]>::uninit();
        let skip = IoVec {
            base: scratch.as_mut_ptr().cast::<u8>(),
            len: gap as usize,
        };
        for chunk in parts.chunks_mut(PARTS_PER_CALL) {
            let mut iov = [skip; 2 * PARTS_PER_CALL - 1];
            let mut count = 0;
            let mut next = offset;
            for (i, part) in chunk.iter_mut().enumerate() {
                if i > 0 {
                    count += 1; // the gap, already in place
                }
                iov[count] = IoVec {
                    base: part.as_mut_ptr(),
                    len: part.len(),
                };
                count += 1;
                next = super::next_part(next, part.len(), gap)?;
            }
            read_all(file, &mut iov[..count], offset)?;
            offset = next;
        }
        Ok(())
    }

    /// `preadv` until every entry of `iov` is filled (it may read less than asked).
    fn read_all(file: &File, iov: &mut [IoVec], mut offset: u64) -> io::Result<()> {
        let mut first = 0; // the first entry not yet filled
        loop {
            while first < iov.len() && iov[first].len == 0 {
                first += 1;
            }
            if first == iov.len() {
                return Ok(());
            }
            let at = i64::try_from(offset).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "file offset too large")
            })?;
            let pending = &iov[first..];
            // SAFETY: each entry points at memory that is ours to write for its whole length
            // (a part borrowed mutably by the caller, or the scratch buffer); the count is
            // the slice's length, at most 63.
            let read =
                unsafe { preadv(file.as_raw_fd(), pending.as_ptr(), pending.len() as i32, at) };
            if read < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            offset += read as u64;
            let mut left = read as usize;
            while first < iov.len() && left >= iov[first].len {
                left -= iov[first].len;
                first += 1;
            }
            if left > 0 {
                // SAFETY: a short read stopped inside this entry: `left < len`.
                iov[first].base = unsafe { iov[first].base.add(left) };
                iov[first].len -= left;
            }
        }
    }
}
