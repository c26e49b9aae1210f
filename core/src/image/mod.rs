//! The image kinds behind one small interface, and opening an image of any kind.

mod allocation;
mod candidate;
mod differencing;
mod dynamic;
mod fixed;
mod layout;
mod lock;
mod parent;
mod raw;
mod sparse;

#[doc(hidden)]
pub use allocation::{AllocatedRanges, RangeCursor, MAX_LISTED_RANGES};
pub use candidate::candidates_opened;
pub use differencing::DifferencingImage;
pub use dynamic::DynamicImage;
pub use fixed::FixedImage;
pub(crate) use layout::{
    bat_entry_offset, bat_extent, bat_sector, between_footers, block_extent, header_extent,
    locator_is_read, locator_space, BlockExtent, BlockGeometry, BlockList, FileLayout, Occupant,
    OutOfRange, Region, Stretch, Structure,
};
pub(crate) use lock::LockedFile;
pub(crate) use parent::{file_url, windows_relative_path};
pub use parent::{Parent, ParentPath, MAX_CHAIN_DEPTH, MAX_PARENT_CANDIDATES};
pub use raw::RawDisk;
pub(crate) use sparse::{SparseFile as SparseLayout, COPY_CHUNK};

use candidate::FileId;
use parent::{ChainMember, ChainSearch};
use sparse::SparseFile;

use crate::error::{Error, Result};
use crate::footer::{DiskType, Footer, FOOTER_SIZE};
use crate::storage::{read_exact_with, Storage, Wait};
use crate::DynamicHeader;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What every image kind offers: a virtual disk of [`size`](VirtualDisk::size) bytes that
/// can be read and written at any byte offset.
pub trait VirtualDisk {
    /// The virtual size in bytes (the footer's current size).
    fn size(&self) -> u64;

    /// Reads into `buf` from `offset`, like `pread`: returns the number of bytes read, which
    /// is short only when the read runs past the end of the disk (0 at or past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;

    /// Reads like [`read_at`](VirtualDisk::read_at), but only if no byte has to wait for a
    /// device: holes, and data in memory (the page cache; see
    /// [`Storage::read_exact_now`]). `None` when it would have to wait, or fails: it waited
    /// for nothing, `buf` holds anything, and `read_at` then does the read (and says what
    /// failed). A caller that must not block (a JavaScript thread) reads this way first. The
    /// default reads only what [`reads_without_io`](VirtualDisk::reads_without_io) says
    /// needs no I/O.
    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        if self.reads_without_io(offset, buf.len() as u64) {
            self.read_at(buf, offset).ok()
        } else {
            None
        }
    }

    /// Writes all of `buf` at `offset`. A write that would run past the end of the disk fails
    /// with [`Error::OutOfRange`] and writes nothing.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()>;

    /// Makes every write so far durable, metadata included.
    fn flush(&mut self) -> Result<()>;

    /// True when reading `length` bytes at `offset` touches no data in any file, so it only
    /// fills zeros: every block of the range is unallocated here and, for a differencing
    /// image, in every image below it. A caller that must not block on I/O (a JavaScript
    /// thread) may do such a read at once, and conversion skips such ranges without
    /// reading them. `false` means "not known": the default, and for any range of a fixed
    /// image or raw disk that is not empty.
    fn reads_without_io(&self, offset: u64, length: u64) -> bool {
        let _ = offset;
        length == 0
    }

    /// The next stretch of the disk at or after `offset` that may hold a non-zero byte:
    /// `Some(start..end)` with `offset <= start < end <= size`, where every byte from
    /// `offset` to `start` reads as zeros without touching a device; `None` when everything
    /// from `offset` to the end of the disk does (or `offset` is at or past the end).
    ///
    /// What lets a conversion jump over the holes of a sparse source at once, instead of
    /// asking [`reads_without_io`](VirtualDisk::reads_without_io) chunk by chunk. The
    /// default knows of no holes (`Some(offset..size)`); a raw disk and a fixed image ask
    /// their file system where their file's holes are (see [`Storage::next_data`]).
    fn next_data(&self, offset: u64) -> Result<Option<std::ops::Range<u64>>> {
        let size = self.size();
        Ok((offset < size).then_some(offset..size))
    }

    /// Tells the image that `length` bytes at `offset` are no longer needed, so that it can
    /// free their space. What they read afterwards depends on the kind:
    ///
    /// - fixed (and the default): zeros; the bytes are overwritten with zeros.
    /// - dynamic: zeros. Blocks wholly inside the range are unallocated (their space is
    ///   reused by later allocations, and the file shrinks when they were at its end); the
    ///   rest of the range is zeroed in blocks that are allocated.
    /// - differencing: the parent's data, for every whole 512-byte sector in the range (the
    ///   sectors are marked absent; a block left with no present sector is unallocated);
    ///   zeros for the bytes of a sector the range covers only in part (they are written,
    ///   as a write of zeros would be).
    ///
    /// Sparse images make the discard durable before returning (as [`flush`] does).
    /// Fails with [`Error::OutOfRange`] when the range runs past the end of the disk, and
    /// with [`Error::ReadOnly`] on an image that may not be written; a zero length only
    /// checks the range.
    ///
    /// [`flush`]: VirtualDisk::flush
    fn discard(&mut self, offset: u64, length: u64) -> Result<()> {
        check_range("discard", offset, length, self.size())?;
        write_zeros(offset, length, |zeros, at| self.write_at(zeros, at))
    }
}

/// A boxed disk is a disk (a conversion's [`Source`](crate::ops::Source), say): every call
/// goes to the disk in the box, so what it knows of its holes is kept.
impl<T: VirtualDisk + ?Sized> VirtualDisk for Box<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        (**self).read_at(buf, offset)
    }
    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        (**self).read_at_now(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn reads_without_io(&self, offset: u64, length: u64) -> bool {
        (**self).reads_without_io(offset, length)
    }
    fn next_data(&self, offset: u64) -> Result<Option<std::ops::Range<u64>>> {
        (**self).next_data(offset)
    }
    fn discard(&mut self, offset: u64, length: u64) -> Result<()> {
        (**self).discard(offset, length)
    }
}

/// How to open an image.
///
/// `OpenOptions::default()` opens read-write, verifies checksums, finds parents through the
/// child's locators anywhere, and locks the file (see [`lock`](OpenOptions::lock)).
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Open the file read-only; the image is then never written.
    pub read_only: bool,
    /// Accept structures whose checksum is wrong (forensic reading). An image opened this
    /// way with a bad checksum is read-only.
    pub ignore_checksums: bool,
    /// Fail with [`Error::WrongDiskType`] unless the image is of this type.
    pub expected_type: Option<DiskType>,
    /// Parents named by the caller, nearest first: entry 0 is used as the parent of the
    /// image opened, entry 1 as the parent of that parent, and so on. Levels beyond the list
    /// are found through the parent locators.
    pub parents: Vec<ParentPath>,
    /// Accept a parent whose time stamp is not the one the child recorded (a copied parent
    /// gets a new modification time). The unique id is still checked.
    pub ignore_parent_timestamp: bool,
    /// Lock the file while the image is open (default `true`): a read-write open takes an
    /// exclusive lock, a read-only open a shared one, and so does every parent of a
    /// differencing image (parents are only read). Any number of read-only opens may share
    /// a file; a read-write open excludes every other open. A conflicting open fails at
    /// once with [`Error::Locked`] (it never waits). The locks are released when the image
    /// is dropped (and by an open that fails).
    ///
    /// Other processes are kept out by the operating system's whole-file locks (`flock` on
    /// Unix, `LockFileEx` on Windows); on Unix they are advisory: they keep out other opens
    /// that lock (this library, and tools that lock), not a program that ignores locks.
    /// Within this process, a table of the files open here, by device and inode, keeps
    /// opens apart whatever route reaches the file: a path, a hard or symbolic link, a
    /// descriptor ([`Image::open_file`]) or a duplicate of one (which share one `flock`,
    /// so the OS lock alone cannot tell them apart; nor, on NFS, can it tell apart opens
    /// of one process at all). Across machines on NFS, locks are seen where the server's
    /// lock manager is used (not with `nolock` or `local_lock=all`). A file system that
    /// has no locks is used without the OS lock. `false`: no lock is taken or checked,
    /// for this image nor its parents (nor is the table).
    pub lock: bool,
    /// For images from untrusted sources: a parent found through the child's parent
    /// locators or parent name (at any level of the chain) is used only if it lies inside
    /// this folder once symbolic links and `..` are resolved; a candidate outside it is
    /// never opened. When no candidate inside the folder is usable but one outside exists,
    /// the open fails with [`Error::ParentOutsideRoot`]. Parents the caller names in
    /// [`parents`](OpenOptions::parents) are trusted and not checked (their own parents,
    /// when found through locators, are). `None` (default): parents may be anywhere.
    ///
    /// Every entry point that opens a chain takes it: the operations of [`crate::ops`]
    /// through the `OpenOptions` they take (or hold, as `ConvertOptions::open` and
    /// `ResizeOptions::open`), [`crate::create`] through `CreateOptions::parent_open`, and
    /// [`crate::check()`] through `CheckOptions::parent_root` (see
    /// `CheckOptions::from(&OpenOptions)`). Those that name a parent themselves (a
    /// differencing image's parent at creation, the image a snapshot is taken of, the new
    /// parent of a rebase) trust it, and apply the root to the images below it.
    ///
    /// Whatever this option, a candidate is opened only as a regular file (never a FIFO,
    /// device or socket), and nothing of a file that does not verify as the parent (its
    /// bytes, size, unique id or time stamps) reaches an error: each candidate tried is
    /// listed with its rejection in words. Without a root, though, a crafted child can
    /// still learn whether a path exists and whether it holds a VHD, and, knowing the
    /// unique id of a VHD on this host some other way, read it as its parent.
    pub parent_root: Option<PathBuf>,
    /// Windows only: a parent locator that names a network path (`\\server\share\…`,
    /// `\\?\UNC\…`) is followed only when this is set (default `false`); otherwise only
    /// its file name in the child's folder is tried. Opening such a path would contact the
    /// server the image names (and offer it the user's credentials). Device paths
    /// (`\\.\…`) are never followed. On other systems Windows drive and network paths are
    /// never opened, with or without this option (their file name in the child's folder
    /// is tried).
    pub allow_remote_parents: bool,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            read_only: false,
            ignore_checksums: false,
            expected_type: None,
            parents: Vec::new(),
            ignore_parent_timestamp: false,
            lock: true,
            parent_root: None,
            allow_remote_parents: false,
        }
    }
}

/// Where the footer that describes the image was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FooterSource {
    /// The last 512 bytes of the file, as usual.
    End,
    /// The last 511 bytes of the file (some old Windows and Virtual PC images).
    End511,
    /// The copy at offset 0, because the one at the end is damaged. The image is read-only.
    Copy,
}

/// An open image of any kind.
// Each variant holds its parsed structures inline; an image is opened once and kept, so the
// size difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Image {
    Fixed(FixedImage),
    Dynamic(DynamicImage),
    Differencing(DifferencingImage),
}

impl Image {
    /// Opens the image at `path`, detecting its kind from its footer. A differencing image
    /// is opened with its whole parent chain. The file (and every parent) is locked unless
    /// [`OpenOptions::lock`] is off.
    ///
    /// No field is trusted: each is checked against the file's size, the specification and
    /// the other fields before it is used, so that a damaged or hostile image gives an
    /// error, never a panic or an allocation sized by the field. In particular: the dynamic
    /// header and the BAT must lie in the file, between the footer copy and the end footer,
    /// apart from each other (so the BAT, the largest thing read at open, is never larger
    /// than the file); blocks are powers of two from 512 bytes to 256 MiB (the largest that
    /// [`crate::create`] makes; real images use 512 KiB to a few MiB); the BAT must cover
    /// the virtual size; every allocated block of the disk (its sector bitmap, and its data
    /// up to the end of the disk in whole sectors, the last partial one included: the bytes
    /// a write may touch) must lie in front of the end footer ([`Error::BatEntryOutOfRange`])
    /// and overlap neither another block nor the footer copy, the header, the BAT or, in a
    /// differencing image, a parent locator's data ([`Error::BatEntryOverlap`]); a
    /// differencing image whose parent locator data lies past the footer, where new blocks
    /// go, opens read-only; a parent locator's data is read only up to 64 KiB and only from
    /// inside the file; chains are at most [`MAX_CHAIN_DEPTH`] deep and must not loop, and
    /// finding them looks at no more than [`MAX_PARENT_CANDIDATES`] candidate files. A file a
    /// locator names is opened only as a regular file, never locked, parsed or searched for
    /// its own parents before its footer proves it the parent (the unique id the child
    /// records, an acceptable time stamp), and nothing of a file that does not is told in an
    /// error (see [`ParentRejection`](crate::ParentRejection)). For images from untrusted
    /// sources, see also [`OpenOptions::parent_root`].
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Image> {
        let path = path.as_ref();
        let (usage, what) = image_use(options.read_only);
        let (file, _) = crate::files::open(
            path,
            std::fs::OpenOptions::new()
                .read(true)
                .write(!options.read_only),
            usage,
            what,
            |e| Error::io_at(path, "open", "opening the image", e),
        )?;
        open_checked_file(file, path, options)
    }

    /// Opens the image in a file the caller already has open (for example a duplicated
    /// descriptor), locking it as [`OpenOptions::lock`] says; `path` is used in messages and
    /// to find the parents of a differencing image. The file must have been opened for
    /// writing unless `options.read_only` is set. A second open of the same file in this
    /// process, from this descriptor, a duplicate of it or any other route, conflicts as
    /// two processes would ([`Error::Locked`]).
    pub fn open_file(file: File, path: &Path, options: &OpenOptions) -> Result<Image> {
        // A descriptor the caller opened may be a FIFO or a device.
        let (usage, what) = image_use(options.read_only);
        crate::files::check(&file, path, usage, what)?;
        open_checked_file(file, path, options)
    }

    /// Opens an image held by any [`Storage`]; `path` is used in messages (and, for
    /// differencing images, to find the parent). The storage is neither locked nor entered
    /// in this process's table of open files (it need not be a file): that is up to whoever
    /// made it. The parents, opened from files, are locked as usual.
    pub fn open_storage(
        file: Box<dyn Storage>,
        path: &Path,
        options: &OpenOptions,
    ) -> Result<Image> {
        let id = FileId::of_path(path);
        Image::open_storage_in_chain(file, path, id, options, &mut ChainSearch::default())
    }

    /// Opens the image in `file` (the file `id`, when known), below the images `search`
    /// holds (a parent chain being opened).
    fn open_storage_in_chain(
        file: Box<dyn Storage>,
        path: &Path,
        id: Option<FileId>,
        options: &OpenOptions,
        search: &mut ChainSearch,
    ) -> Result<Image> {
        Image::open_storage_in_chain_unnamed(file, path, id, options, search)
            .map_err(|e| e.in_file(path))
    }

    /// [`Image::open_storage_in_chain`], whose I/O errors may not name the file yet.
    fn open_storage_in_chain_unnamed(
        file: Box<dyn Storage>,
        path: &Path,
        id: Option<FileId>,
        options: &OpenOptions,
        search: &mut ChainSearch,
    ) -> Result<Image> {
        let located =
            locate_footer(file.as_ref(), options).map_err(|e| not_a_vhd(file.as_ref(), path, e))?;
        let disk_type = located
            .footer
            .disk_type()
            .ok_or_else(|| Error::InvalidField {
                path: None,
                structure: "footer",
                field: "disk type",
                offset: located.offset + 60,
                found: u64::from(located.footer.disk_type_code),
                reason: "expected 2 (fixed), 3 (dynamic) or 4 (differencing)".into(),
            })?;
        if let Some(expected) = options.expected_type {
            if expected != disk_type {
                return Err(Error::WrongDiskType {
                    path: path.to_path_buf(),
                    expected: expected.name(),
                    found: disk_type.name(),
                });
            }
        }
        let access = Access::new(options.read_only, located.read_only_reason.clone());
        match disk_type {
            DiskType::Fixed => Ok(Image::Fixed(FixedImage::open(file, path, located, access)?)),
            DiskType::Dynamic => {
                let sparse = SparseFile::open(file, path, located, access, options)?;
                Ok(Image::Dynamic(DynamicImage::new(sparse)))
            }
            DiskType::Differencing => {
                let sparse = SparseFile::open(file, path, located, access, options)?;
                let member = ChainMember {
                    path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
                    file: id,
                    unique_id: sparse.footer().unique_id,
                };
                // A copy of an image already in the chain (same unique id) closes a loop too.
                if search
                    .members
                    .iter()
                    .any(|m| m.unique_id == member.unique_id)
                {
                    return Err(search.loop_error(member.path));
                }
                search.members.push(member);
                let parent =
                    parent::open_parent(path, sparse.header(), sparse.file(), options, search);
                search.members.pop();
                Ok(Image::Differencing(DifferencingImage::new(sparse, parent?)))
            }
        }
    }

    /// The image a differencing image reads its unwritten sectors from.
    pub fn parent(&self) -> Option<&Parent> {
        match self {
            Image::Differencing(i) => Some(i.parent()),
            _ => None,
        }
    }

    /// The paths of this image and of every parent below it, nearest first.
    pub fn chain(&self) -> Vec<&Path> {
        let mut paths = vec![self.path()];
        let mut parent = self.parent();
        while let Some(p) = parent {
            paths.push(p.path());
            parent = match p {
                Parent::Image(image) => image.parent(),
                Parent::Raw(_) => None,
            };
        }
        paths
    }

    /// The hard disk footer that describes the image.
    pub fn footer(&self) -> &Footer {
        match self {
            Image::Fixed(i) => i.footer(),
            Image::Dynamic(i) => i.footer(),
            Image::Differencing(i) => i.footer(),
        }
    }

    /// The dynamic disk header, for dynamic and differencing images.
    pub fn header(&self) -> Option<&DynamicHeader> {
        match self {
            Image::Fixed(_) => None,
            Image::Dynamic(i) => Some(i.header()),
            Image::Differencing(i) => Some(i.header()),
        }
    }

    /// For dynamic and differencing images, the text each parent locator entry holds: the
    /// path for the kinds that hold one (`W2ru`, `W2ku` in UTF-16LE; `Wi2r`, `Wi2k` in
    /// ASCII; `MacX` as a file URL), `None` for empty entries, other kinds, and data that is
    /// not in the file.
    pub fn parent_locator_texts(&self) -> Option<[Option<String>; 8]> {
        match self {
            Image::Fixed(_) => None,
            Image::Dynamic(i) => Some(i.parent_locator_texts()),
            Image::Differencing(i) => Some(i.parent_locator_texts()),
        }
    }

    /// Fixed, dynamic or differencing.
    pub fn disk_type(&self) -> DiskType {
        match self {
            Image::Fixed(_) => DiskType::Fixed,
            Image::Dynamic(_) => DiskType::Dynamic,
            Image::Differencing(_) => DiskType::Differencing,
        }
    }

    /// Where the footer was found; [`FooterSource::Copy`] means the end one is damaged.
    pub fn footer_source(&self) -> FooterSource {
        match self {
            Image::Fixed(i) => i.footer_source(),
            Image::Dynamic(i) => i.footer_source(),
            Image::Differencing(i) => i.footer_source(),
        }
    }

    /// Why the image cannot be written, or `None` when it can.
    pub fn read_only_reason(&self) -> Option<&str> {
        match self {
            Image::Fixed(i) => i.access().read_only_reason(),
            Image::Dynamic(i) => i.access().read_only_reason(),
            Image::Differencing(i) => i.access().read_only_reason(),
        }
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        match self {
            Image::Fixed(i) => i.path(),
            Image::Dynamic(i) => i.path(),
            Image::Differencing(i) => i.path(),
        }
    }

    fn as_disk(&self) -> &dyn VirtualDisk {
        match self {
            Image::Fixed(i) => i,
            Image::Dynamic(i) => i,
            Image::Differencing(i) => i,
        }
    }

    fn as_disk_mut(&mut self) -> &mut dyn VirtualDisk {
        match self {
            Image::Fixed(i) => i,
            Image::Dynamic(i) => i,
            Image::Differencing(i) => i,
        }
    }
}

impl VirtualDisk for Image {
    fn size(&self) -> u64 {
        self.as_disk().size()
    }
    // I/O errors name the image's file (a parent's, when they happened in the parent).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.as_disk()
            .read_at(buf, offset)
            .map_err(|e| e.in_file(self.path()))
    }
    fn read_at_now(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        self.as_disk().read_at_now(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        let result = self.as_disk_mut().write_at(buf, offset);
        result.map_err(|e| e.in_file(self.path()))
    }
    fn flush(&mut self) -> Result<()> {
        let result = self.as_disk_mut().flush();
        result.map_err(|e| e.in_file(self.path()))
    }
    fn discard(&mut self, offset: u64, length: u64) -> Result<()> {
        let result = self.as_disk_mut().discard(offset, length);
        result.map_err(|e| e.in_file(self.path()))
    }
    fn next_data(&self, offset: u64) -> Result<Option<std::ops::Range<u64>>> {
        self.as_disk()
            .next_data(offset)
            .map_err(|e| e.in_file(self.path()))
    }
    fn reads_without_io(&self, offset: u64, length: u64) -> bool {
        match self {
            Image::Fixed(_) => length == 0,
            Image::Dynamic(i) => no_block_allocated(i.bat(), i.block_size(), offset, length),
            Image::Differencing(i) => {
                no_block_allocated(i.bat(), i.block_size(), offset, length)
                    && match i.parent() {
                        Parent::Image(parent) => parent.reads_without_io(offset, length),
                        Parent::Raw(_) => length == 0,
                    }
            }
        }
    }
}

/// Which kinds of file an image may be in (see [`crate::files`]): one opened read-only is
/// only read, so it may be a block device; one opened for writing grows and shrinks, so it
/// must be a regular file.
fn image_use(read_only: bool) -> (crate::files::Use, &'static str) {
    if read_only {
        (crate::files::Use::Read, "an image")
    } else {
        (crate::files::Use::WriteFile, "an image opened for writing")
    }
}

/// Opens the image, and its chain, in `file`, known to be of a kind an image may be in.
fn open_checked_file(file: File, path: &Path, options: &OpenOptions) -> Result<Image> {
    let id = FileId::of_file(&file, path).ok();
    open_file_in_chain(file, path, id, options, &mut ChainSearch::default())
}

/// Locks `file` (the file `id`, when known) as `options` ask (see [`OpenOptions::lock`])
/// and opens the image in it, below the images `search` holds. The file is of a kind an
/// image may be in: checked by the caller ([`crate::files`], or a parent candidate, which
/// is a regular file).
fn open_file_in_chain(
    file: File,
    path: &Path,
    id: Option<FileId>,
    options: &OpenOptions,
    search: &mut ChainSearch,
) -> Result<Image> {
    let storage = locked_storage(file, path, options.read_only, options.lock)?;
    Image::open_storage_in_chain(storage, path, id, options, search)
}

/// A differencing image's own file, opened read-only by itself, its parent not looked
/// for: the metadata [`crate::ops::info_at`] shows when the chain below it is broken (a
/// parent missing, replaced or modified). It is not a disk: it has no parent to read from,
/// so it offers only its structures.
pub(crate) struct LoneChild(Box<SparseFile>);

impl LoneChild {
    /// Opens the differencing image at `path` alone, locked (shared) as `options.lock`
    /// says, its structures verified as [`Image::open`] verifies them.
    pub(crate) fn open(path: &Path, options: &OpenOptions) -> Result<LoneChild> {
        let (usage, what) = image_use(true);
        let (file, _) = crate::files::open(
            path,
            std::fs::OpenOptions::new().read(true),
            usage,
            what,
            |e| Error::io_at(path, "open", "opening the image", e),
        )?;
        let storage = locked_storage(file, path, true, options.lock)?;
        let located = locate_footer(storage.as_ref(), options)?;
        if located.footer.disk_type() != Some(DiskType::Differencing) {
            return Err(Error::WrongDiskType {
                path: path.to_path_buf(),
                expected: DiskType::Differencing.name(),
                found: located.footer.disk_type().map_or("unknown", DiskType::name),
            });
        }
        let access = Access::new(true, located.read_only_reason.clone());
        Ok(LoneChild(SparseFile::open(
            storage, path, located, access, options,
        )?))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    pub(crate) fn footer(&self) -> &Footer {
        self.0.footer()
    }

    pub(crate) fn header(&self) -> &DynamicHeader {
        self.0.header()
    }

    pub(crate) fn bat(&self) -> &crate::BlockAllocationTable {
        self.0.bat()
    }

    pub(crate) fn size(&self) -> u64 {
        self.0.size()
    }

    pub(crate) fn locator_texts(&self) -> [Option<String>; 8] {
        self.0.locator_texts()
    }

    pub(crate) fn footer_source(&self) -> FooterSource {
        self.0.footer_source()
    }

    pub(crate) fn read_only_reason(&self) -> Option<&str> {
        self.0.access().read_only_reason()
    }
}

/// `file` as storage, locked for a read-only or a read-write open when `lock` is set (see
/// [`LockedFile`]).
pub(crate) fn locked_storage(
    file: File,
    path: &Path,
    read_only: bool,
    lock: bool,
) -> Result<Box<dyn Storage>> {
    Ok(Box::new(LockedFile::new(file, path, read_only, lock)?))
}

/// Opens the image in `file`, which the caller has already locked exclusively (as
/// [`crate::create`] does, so that the new file is never unlocked).
pub(crate) fn open_locked_file(
    file: LockedFile,
    path: &Path,
    options: &OpenOptions,
) -> Result<Image> {
    let id = FileId::of_file(&file, path).ok();
    Image::open_storage_in_chain(
        Box::new(file),
        path,
        id,
        options,
        &mut ChainSearch::default(),
    )
}

/// True when no block of `bat` holds any of the `length` bytes at `offset`.
fn no_block_allocated(
    bat: &crate::BlockAllocationTable,
    block_size: u32,
    offset: u64,
    length: u64,
) -> bool {
    if length == 0 {
        return true;
    }
    let block_size = u64::from(block_size);
    let first = offset / block_size;
    let last = offset.saturating_add(length - 1) / block_size;
    // Blocks past the table are past the end of the disk: they hold nothing.
    let last = last.min(bat.len() as u64);
    (first..=last).all(|block| u32::try_from(block).map_or(true, |b| bat.get(b).is_none()))
}

/// Whether an image may be written, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    read_only_reason: Option<String>,
}

impl Access {
    fn new(opened_read_only: bool, forced_reason: Option<String>) -> Access {
        let read_only_reason = forced_reason
            .or_else(|| opened_read_only.then(|| "it was opened read-only".to_string()));
        Access { read_only_reason }
    }

    pub(crate) fn read_only_reason(&self) -> Option<&str> {
        self.read_only_reason.as_deref()
    }

    pub(crate) fn force_read_only(&mut self, reason: String) {
        self.read_only_reason.get_or_insert(reason);
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        match &self.read_only_reason {
            None => Ok(()),
            Some(reason) => Err(Error::ReadOnly {
                path: None,
                reason: reason.clone(),
            }),
        }
    }
}

/// The footer an image was opened with, and where it was found.
#[derive(Debug, Clone)]
pub(crate) struct LocatedFooter {
    pub footer: Footer,
    pub source: FooterSource,
    /// File offset of the footer that was used.
    pub offset: u64,
    /// File offset of the footer at the end of the file (where new blocks go).
    pub end_offset: u64,
    pub file_size: u64,
    /// Set when the footer can only be trusted for reading.
    pub read_only_reason: Option<String>,
}

/// The error of an image whose footer was not found (`error`, a bad cookie or a file too
/// short for a footer): [`Error::NotVhd`] when nothing says the file is a VHD — no footer
/// copy's cookie at 0, no dynamic header's at 512, no footer cookie out of place in its
/// last 1024 bytes; otherwise `error`, which says what is damaged in what is a VHD.
fn not_a_vhd(file: &dyn Storage, path: &Path, error: Error) -> Error {
    let Ok(file_size) = file.file_size() else {
        return error;
    };
    let too_short =
        matches!(error, Error::Truncated { offset: 0, .. }) && file_size < FOOTER_SIZE as u64;
    if !too_short && !matches!(error, Error::BadCookie { .. }) {
        return error;
    }
    let mut start = [0u8; 2 * FOOTER_SIZE];
    let length = file_size.min(start.len() as u64) as usize;
    if file.read_exact_at(&mut start[..length], 0).is_err() {
        return error;
    }
    let vhd_cookie_at_start = start.starts_with(crate::footer::FOOTER_COOKIE)
        || start[FOOTER_SIZE..].starts_with(crate::dynamic_header::DYNAMIC_HEADER_COOKIE);
    if vhd_cookie_at_start || footer_cookie_near_end(file, file_size) {
        return error;
    }
    Error::NotVhd {
        path: path.to_path_buf(),
        file_size,
        looks_like: crate::sniff::sniff(file),
    }
}

/// Whether a footer cookie lies in the last 1024 bytes of the file, out of place: a VHD
/// cut (or grown) by less than a sector, whose damage is told as it is (a fixed image has
/// no other copy of its footer).
fn footer_cookie_near_end(file: &dyn Storage, file_size: u64) -> bool {
    let length = file_size.min(2 * FOOTER_SIZE as u64);
    let mut end = vec![0u8; length as usize];
    file.read_exact_at(&mut end, file_size - length).is_ok()
        && end
            .windows(crate::footer::FOOTER_COOKIE.len())
            .any(|w| w == crate::footer::FOOTER_COOKIE)
}

/// Finds the footer: the last 512 bytes, else a 511-byte footer, else (dynamic and
/// differencing images) the copy at offset 0.
fn locate_footer(file: &dyn Storage, options: &OpenOptions) -> Result<LocatedFooter> {
    let file_size = file
        .file_size()
        .map_err(|e| Error::io("reading the file size", e))?;
    if file_size < FOOTER_SIZE as u64 - 1 {
        return Err(Error::Truncated {
            path: None,
            what: "the footer".into(),
            offset: 0,
            end: FOOTER_SIZE as u64,
            file_size,
        });
    }
    let end = end_footer(file, file_size);
    // With no footer at the end, the file may simply have been cut short before (or inside)
    // it: blocks may then run up to the end of the file, not up to 512 bytes before it.
    let end_offset = end.as_ref().map(|(_, _, o)| *o).unwrap_or(file_size);
    let located = |footer, source, offset, read_only_reason| LocatedFooter {
        footer,
        source,
        offset,
        end_offset,
        file_size,
        read_only_reason,
    };

    // The usual case: a good footer at the end.
    let end_problem = match end {
        Ok((footer, source, offset)) => match footer.verify_checksum(offset) {
            Ok(()) => return Ok(located(footer, source, offset, None)),
            Err(e) => Some((e, footer, source, offset)),
        },
        Err(e) => {
            let copy = footer_copy(file, file_size);
            if let Some(copy) = copy.filter(|c| c.verify_checksum(0).is_ok()) {
                return Ok(located(copy, FooterSource::Copy, 0, Some(copy_reason(&e))));
            }
            return Err(e);
        }
    };
    // The end footer has a bad checksum: prefer a good copy, then (if allowed) the damaged one.
    let (error, footer, source, offset) = end_problem.unwrap();
    if let Some(copy) = footer_copy(file, file_size).filter(|c| c.verify_checksum(0).is_ok()) {
        return Ok(located(
            copy,
            FooterSource::Copy,
            0,
            Some(copy_reason(&error)),
        ));
    }
    if options.ignore_checksums {
        let reason = format!("checksums were ignored to open it ({error})");
        return Ok(located(footer, source, offset, Some(reason)));
    }
    Err(error)
}

/// The footer at the end of a file of `file_size` bytes (at least 511), with where it was
/// found and its offset: the last 512 bytes, or when they hold no cookie, the 511-byte
/// footer of some old Virtual PC images. The checksum is not verified.
pub(crate) fn end_footer(
    file: &dyn Storage,
    file_size: u64,
) -> Result<(Footer, FooterSource, u64)> {
    let at_end = |offset: u64, length: usize| -> Result<Footer> {
        let mut bytes = [0u8; FOOTER_SIZE];
        read_exact(file, &mut bytes[..length], offset, "the footer")?;
        Footer::parse(&bytes, offset)
    };
    let end_offset = file_size.saturating_sub(FOOTER_SIZE as u64);
    let end = at_end(end_offset, FOOTER_SIZE).map(|f| (f, FooterSource::End, end_offset));
    match end {
        Err(Error::BadCookie { .. }) => at_end(file_size - 511, 511)
            .map(|f| (f, FooterSource::End511, file_size - 511))
            .or(end),
        other => other,
    }
}

/// The footer copy at offset 0, if there is one (dynamic and differencing images only).
/// The checksum is not verified.
pub(crate) fn footer_copy(file: &dyn Storage, file_size: u64) -> Option<Footer> {
    if file_size < 2 * FOOTER_SIZE as u64 {
        return None;
    }
    let mut bytes = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut bytes, 0).ok()?;
    let copy = Footer::parse(&bytes, 0).ok()?;
    matches!(
        copy.disk_type(),
        Some(DiskType::Dynamic | DiskType::Differencing)
    )
    .then_some(copy)
}

fn copy_reason(error: &Error) -> String {
    format!("the footer at the end of the file is damaged ({error}); it was opened from the footer copy at offset 0")
}

/// Zeros to write from: static, so that writing zeros allocates nothing.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Writes `length` zeros at `offset` through `write` (called with a slice of zeros and where
/// it goes), 1 MiB at a time, allocating nothing: where zeros must really be written (a
/// fixed image's discard, a block device that has no holes, an NBD write zeroes that must
/// allocate).
pub fn write_zeros(
    offset: u64,
    length: u64,
    mut write: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    let mut done = 0;
    while done < length {
        let n = (ZEROS.len() as u64).min(length - done);
        write(&ZEROS[..n as usize], offset + done)?;
        done += n;
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes at `offset`, naming `what` in errors.
pub(crate) fn read_exact(
    file: &dyn Storage,
    buf: &mut [u8],
    offset: u64,
    what: &str,
) -> Result<()> {
    read_exact_waiting(file, buf, offset, what, Wait::Yes)
}

/// [`read_exact`], or with [`Wait::No`] only if nothing has to wait for a device.
pub(crate) fn read_exact_waiting(
    file: &dyn Storage,
    buf: &mut [u8],
    offset: u64,
    what: &str,
    wait: Wait,
) -> Result<()> {
    read_exact_with(file, buf, offset, wait)
        .map_err(|e| read_failure(file, e, offset, buf.len() as u64, what))
}

/// The error of a read of `length` bytes at `offset` that failed with `error`: a read past
/// the end of the file says how far the file goes.
pub(crate) fn read_failure(
    file: &dyn Storage,
    error: std::io::Error,
    offset: u64,
    length: u64,
    what: &str,
) -> Error {
    // Saturating: a damaged field may put `offset` anywhere up to u64::MAX.
    let end = offset.saturating_add(length);
    match (error.kind(), file.file_size()) {
        (std::io::ErrorKind::UnexpectedEof, Ok(file_size)) => Error::Truncated {
            path: None,
            what: what.to_string(),
            offset,
            end,
            file_size,
        },
        _ => Error::io_op("read", format!("reading {what} at offset {offset}"), error),
    }
}

/// [`VirtualDisk::next_data`] of a disk whose bytes are those of `file` from offset 0 to
/// `size` (a raw disk; a fixed image's data): the holes the file system knows, cut at the
/// end of the disk. A file found shorter than the disk (cut while it is read) fails as a
/// read of the missing bytes would (naming `what`), rather than reading as zeros.
pub(crate) fn file_next_data(
    file: &dyn Storage,
    offset: u64,
    size: u64,
    what: &str,
) -> Result<Option<std::ops::Range<u64>>> {
    if offset >= size {
        return Ok(None);
    }
    let next = file.next_data(offset).map_err(|e| {
        let context = format!("looking for the data of {what} from offset {offset}");
        Error::io_op("lseek", context, e)
    })?;
    match next {
        Some(data) if data.start < size => Ok(Some(data.start..data.end.min(size))),
        // Nothing but holes to the end of the disk, if the file still reaches it.
        _ => match file.file_size() {
            Ok(file_size) if file_size >= size => Ok(None),
            Ok(_) => {
                let eof = std::io::ErrorKind::UnexpectedEof.into();
                Err(read_failure(file, eof, offset, size - offset, what))
            }
            Err(e) => Err(Error::io_op(
                "fstat",
                format!("reading the size of {what}"),
                e,
            )),
        },
    }
}

/// Writes all of `buf` at `offset`, naming `what` in errors.
pub(crate) fn write_all(file: &dyn Storage, buf: &[u8], offset: u64, what: &str) -> Result<()> {
    file.write_all_at(buf, offset)
        .map_err(|e| Error::io_op("write", format!("writing {what} at offset {offset}"), e))
}

pub(crate) fn sync(file: &dyn Storage) -> Result<()> {
    file.sync()
        .map_err(|e| Error::io_op("fsync", "flushing to disk (fsync)", e))
}

/// The part of a read of `length` bytes at `offset` that lies inside a disk of `size` bytes.
pub(crate) fn readable_length(offset: u64, length: usize, size: u64) -> usize {
    size.saturating_sub(offset).min(length as u64) as usize
}

/// Fails unless a write of `length` bytes at `offset` fits in a disk of `size` bytes.
pub(crate) fn check_write_range(offset: u64, length: usize, size: u64) -> Result<()> {
    check_range("write", offset, length as u64, size)
}

/// Fails unless `operation` on `length` bytes at `offset` fits in a disk of `size` bytes.
pub(crate) fn check_range(
    operation: &'static str,
    offset: u64,
    length: u64,
    size: u64,
) -> Result<()> {
    match offset.checked_add(length) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfRange {
            path: None,
            operation,
            offset,
            length,
            size,
        }),
    }
}
