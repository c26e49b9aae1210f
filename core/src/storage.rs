//! Positioned I/O on the file behind an image.
//!
//! Images never seek: every access names its offset (`pread`/`pwrite`), so reads can run in
//! parallel on one file handle and no position is shared between callers. The trait exists so
//! that tests can put a fault-injecting layer between an image and its file ([`FaultStorage`]).

mod fault;

pub use fault::{Fate, FaultStorage};

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
    /// As [`read_exact_at`](Storage::read_exact_at), but only if no byte has to wait for a
    /// device: they are all in memory (for a file, in the page cache). Otherwise fails with
    /// `ErrorKind::WouldBlock`, having waited for nothing, and `buf` holds anything; or with
    /// `ErrorKind::Unsupported` when the storage can never tell (the caller may stop
    /// asking). A caller that must not block (a JavaScript thread) reads this way first,
    /// and hands the read to a thread that may wait when it fails. The default cannot tell;
    /// a `File` asks the kernel (`preadv2` with `RWF_NOWAIT`, Linux; a file system without
    /// it, such as tmpfs, answers `EOPNOTSUPP`).
    fn read_exact_now(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_gapped_now(&mut [buf], 0, offset)
    }
    /// [`read_exact_gapped_at`](Storage::read_exact_gapped_at), only if no byte has to wait
    /// for a device (see [`read_exact_now`](Storage::read_exact_now)).
    fn read_exact_gapped_now(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        let _ = (parts, gap, offset);
        Err(io::ErrorKind::Unsupported.into())
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
    /// The next stretch of the file at or after `offset` that may hold data: `Some(start..end)`
    /// with `start >= offset`, where every byte from `offset` to `start` is a hole (reads as
    /// zeros without touching a device); `None` when nothing from `offset` to the end of the
    /// file is data. `end` may lie past the end of the file (`u64::MAX`: "not known").
    ///
    /// What lets a conversion skip the holes of a sparse file instead of reading them. The
    /// default knows of no holes: everything is data (`Some(offset..u64::MAX)`), which is
    /// always a correct answer. A `File` asks the file system (`lseek` with `SEEK_DATA` and
    /// `SEEK_HOLE` on Linux and FreeBSD), and answers as the default where it cannot tell
    /// (a file system or file type without them, another system).
    fn next_data(&self, offset: u64) -> io::Result<Option<std::ops::Range<u64>>> {
        Ok(Some(offset..u64::MAX))
    }
}

/// How many parts one gapped read gathers at most: a `File` reads them with one `preadv`
/// (with the gaps between them, 63 entries: far below `IOV_MAX`), and an image gathers no
/// more than that into one read of adjacent blocks.
pub(crate) const PARTS_PER_READ: usize = 32;

/// Whether a read may wait for the device, or must fail with `ErrorKind::WouldBlock` rather
/// than wait (see [`Storage::read_exact_now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Yes,
    No,
}

/// [`Storage::read_exact_at`] or [`Storage::read_exact_now`], as `wait` says.
pub(crate) fn read_exact_with(
    storage: &(impl Storage + ?Sized),
    buf: &mut [u8],
    offset: u64,
    wait: Wait,
) -> io::Result<()> {
    match wait {
        Wait::Yes => storage.read_exact_at(buf, offset),
        Wait::No => storage.read_exact_now(buf, offset),
    }
}

/// [`Storage::read_exact_gapped_at`] or [`Storage::read_exact_gapped_now`], as `wait` says.
pub(crate) fn read_exact_gapped_with(
    storage: &(impl Storage + ?Sized),
    parts: &mut [&mut [u8]],
    gap: u64,
    offset: u64,
    wait: Wait,
) -> io::Result<()> {
    match wait {
        Wait::Yes => storage.read_exact_gapped_at(parts, gap, offset),
        Wait::No => storage.read_exact_gapped_now(parts, gap, offset),
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

/// A file in memory: a [`Storage`] for images that never touch a disk (tests, fuzzing, an
/// image examined from bytes already read). Clones share the same bytes. It grows when
/// written past its end, as a file does; [`MemoryStorage::read_only`] makes one that
/// refuses every write (`PermissionDenied`) and counts the attempts, so that a caller can
/// prove nothing tried to write.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    bytes: std::sync::Arc<std::sync::RwLock<Vec<u8>>>,
    read_only: bool,
    refused_writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryStorage {
    /// A writable file holding `bytes`.
    pub fn new(bytes: Vec<u8>) -> MemoryStorage {
        MemoryStorage {
            bytes: std::sync::Arc::new(std::sync::RwLock::new(bytes)),
            ..MemoryStorage::default()
        }
    }

    /// A file holding `bytes` that refuses every write and counts the attempts.
    pub fn read_only(bytes: Vec<u8>) -> MemoryStorage {
        MemoryStorage {
            read_only: true,
            ..MemoryStorage::new(bytes)
        }
    }

    /// A copy of the bytes now held.
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many writes (or changes of length) a read-only storage refused.
    pub fn refused_writes(&self) -> usize {
        self.refused_writes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.read_only {
            self.refused_writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        Ok(())
    }
}

impl Storage for MemoryStorage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let bytes = self.bytes.read().unwrap_or_else(|e| e.into_inner());
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .filter(|&end| end <= bytes.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(&bytes[start..end]);
        Ok(())
    }
    fn read_exact_gapped_now(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        // Memory never waits for a device.
        self.read_exact_gapped_at(parts, gap, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check_writable()?;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::InvalidInput)?;
        let mut bytes = self.bytes.write().unwrap_or_else(|e| e.into_inner());
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn file_size(&self) -> io::Result<u64> {
        Ok(self.bytes.read().unwrap_or_else(|e| e.into_inner()).len() as u64)
    }
    fn set_len(&self, size: u64) -> io::Result<()> {
        self.check_writable()?;
        let size = usize::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.bytes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .resize(size, 0);
        Ok(())
    }
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
        vectored::read_exact_gapped_at(self, parts, gap, offset, Wait::Yes)
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    fn read_exact_gapped_now(
        &self,
        parts: &mut [&mut [u8]],
        gap: u64,
        offset: u64,
    ) -> io::Result<()> {
        vectored::read_exact_gapped_at(self, parts, gap, offset, Wait::No)
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

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    fn next_data(&self, offset: u64) -> io::Result<Option<std::ops::Range<u64>>> {
        holes::next_data(self, offset)
    }
}

/// The holes of a sparse file, from the file system: `lseek` with `SEEK_DATA` and
/// `SEEK_HOLE`, which the standard library does not offer.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod holes {
    use std::fs::File;
    use std::io;
    use std::ops::Range;
    use std::os::fd::AsRawFd;

    /// See [`Storage::next_data`](super::Storage::next_data).
    ///
    /// `lseek` moves the descriptor's file position, which nothing else uses: every read
    /// and write names its offset. `ENXIO` means no data from `offset` to the end of the
    /// file (or `offset` is past it). A file system that does not know the two (`EINVAL`
    /// from old ones), a file type that cannot seek (`ESPIPE`) or any other refusal makes
    /// the whole rest of the file data: reading it is slower, never wrong. (A block device
    /// is all data: Linux answers as for a file without holes.)
    pub(super) fn next_data(file: &File, offset: u64) -> io::Result<Option<Range<u64>>> {
        let unknown = Ok(Some(offset..u64::MAX));
        let Ok(at) = libc::off_t::try_from(offset) else {
            return unknown;
        };
        let start = match seek(file, at, libc::SEEK_DATA) {
            Ok(start) => start,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
            Err(_) => return unknown,
        };
        // The end of this stretch of data: the next hole (there is always one at the end of
        // the file). Should the file change between the two calls, say "not known".
        let end = match seek(file, start, libc::SEEK_HOLE) {
            Ok(end) if end > start => end as u64,
            _ => u64::MAX,
        };
        // SEEK_DATA never answers before `offset`; `max` guards against a file system that would.
        Ok(Some((start as u64).max(offset)..end))
    }

    /// `lseek`: the new offset (never negative), or the error.
    fn seek(file: &File, offset: libc::off_t, whence: libc::c_int) -> io::Result<libc::off_t> {
        // SAFETY: lseek on a descriptor we own, with plain integer arguments.
        let at = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
        if at < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(at)
    }
}

/// One `preadv2` for several parts: the standard library has no positioned vectored read,
/// nor one that must not wait (`RWF_NOWAIT`). Linux, 64-bit `off_t`.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod vectored {
    use super::Wait;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// Gaps up to this size are read into a scratch buffer on the stack (a sector bitmap is
    /// 512 bytes for the usual 2 MiB blocks); larger ones are read around, part by part.
    const MAX_GAP: usize = 4096;

    pub(super) fn read_exact_gapped_at(
        file: &File,
        parts: &mut [&mut [u8]],
        gap: u64,
        mut offset: u64,
        wait: Wait,
    ) -> io::Result<()> {
        if gap > MAX_GAP as u64 {
            return match wait {
                Wait::Yes => super::read_parts_one_by_one(file, parts, gap, offset),
                // Rare (blocks over 16 MiB): not worth a second path.
                Wait::No => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        // Every gap lands here; nothing ever reads it (so it need not be initialised), and
        // only raw pointers to it exist.
        let mut scratch = std::mem::MaybeUninit::<[u8; MAX_GAP]>::uninit();
        let skip = libc::iovec {
            iov_base: scratch.as_mut_ptr().cast(),
            iov_len: gap as usize,
        };
        for chunk in parts.chunks_mut(super::PARTS_PER_READ) {
            let mut iov = [skip; 2 * super::PARTS_PER_READ - 1];
            let mut count = 0;
            let mut next = offset;
            for (i, part) in chunk.iter_mut().enumerate() {
                if i > 0 {
                    count += 1; // the gap, already in place
                }
                iov[count] = libc::iovec {
                    iov_base: part.as_mut_ptr().cast(),
                    iov_len: part.len(),
                };
                count += 1;
                next = super::next_part(next, part.len(), gap)?;
            }
            read_all(file, &mut iov[..count], offset, wait)?;
            offset = next;
        }
        Ok(())
    }

    /// `preadv2` until every entry of `iov` is filled (it may read less than asked). Without
    /// waiting, a short read means the rest is not in memory: `WouldBlock`.
    fn read_all(
        file: &File,
        iov: &mut [libc::iovec],
        mut offset: u64,
        wait: Wait,
    ) -> io::Result<()> {
        let flags = match wait {
            Wait::Yes => 0,
            Wait::No => libc::RWF_NOWAIT,
        };
        let mut first = 0; // the first entry not yet filled
        loop {
            while first < iov.len() && iov[first].iov_len == 0 {
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
            // (a part borrowed mutably by the caller, or the scratch buffer), on this thread
            // (callers never hand us memory another thread may free); the count is the
            // slice's length, at most 63.
            let read = unsafe {
                libc::preadv2(
                    file.as_raw_fd(),
                    pending.as_ptr(),
                    pending.len() as i32,
                    at,
                    flags,
                )
            };
            if read < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Without waiting, a refusal means: read it on a thread that may wait; and
                // always so, when the file system or kernel does not know RWF_NOWAIT.
                return Err(match (wait, error.raw_os_error()) {
                    (Wait::Yes, _) => error,
                    (Wait::No, Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
                        io::ErrorKind::Unsupported.into()
                    }
                    (Wait::No, _) => io::ErrorKind::WouldBlock.into(),
                });
            }
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            offset += read as u64;
            let mut left = read as usize;
            while first < iov.len() && left >= iov[first].iov_len {
                left -= iov[first].iov_len;
                first += 1;
            }
            if first < iov.len() && wait == Wait::No {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if left > 0 {
                // SAFETY: a short read stopped inside this entry: `left < iov_len`.
                iov[first].iov_base = unsafe { iov[first].iov_base.cast::<u8>().add(left) }.cast();
                iov[first].iov_len -= left;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_storage_behaves_as_a_file_and_a_read_only_one_refuses_writes() {
        let file = MemoryStorage::new(vec![1, 2, 3]);
        file.write_all_at(&[9, 9], 5).unwrap();
        assert_eq!(file.to_vec(), [1, 2, 3, 0, 0, 9, 9], "grows with zeros");
        let mut buf = [0u8; 2];
        file.read_exact_at(&mut buf, 5).unwrap();
        assert_eq!(buf, [9, 9]);
        let past = file.read_exact_at(&mut buf, 6).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
        file.set_len(2).unwrap();
        assert_eq!(file.file_size().unwrap(), 2);
        assert_eq!(file.clone().to_vec(), [1, 2], "clones share the bytes");

        let read_only = MemoryStorage::read_only(vec![7; 4]);
        let refused = read_only.write_all_at(&[0], 0).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(read_only.set_len(0).is_err());
        assert_eq!(read_only.refused_writes(), 2);
        assert_eq!(read_only.to_vec(), [7; 4]);
    }

    #[test]
    fn storages_that_cannot_tell_take_everything_for_data() {
        let memory = MemoryStorage::new(vec![0; 4096]);
        assert_eq!(memory.next_data(100).unwrap(), Some(100..u64::MAX));
    }

    /// A descriptor that cannot seek (a pipe: `ESPIPE`) is all data, not an error; the same
    /// path serves file systems that do not know `SEEK_DATA` (`EINVAL`).
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[test]
    fn a_file_that_cannot_seek_is_all_data() {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe fills the two descriptors, which the Files below then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read_end, _write_end) =
            unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        assert_eq!(read_end.next_data(512).unwrap(), Some(512..u64::MAX));
    }
}
