//! Conversion between raw, fixed, dynamic and (flattened) differencing images.
//!
//! The output is written to a new file in the destination's folder (without a name where
//! the file system allows: a killed conversion leaves nothing; see `new_file`), fsynced,
//! and only then renamed into place (and the folder fsynced): a failed or cancelled
//! conversion leaves no partial output and never touches an existing destination. The one exception is a
//! destination that is a block device, which is written in place (see [`Output`]).

use super::read_ahead::{read_ahead, Buffer, Pipe, Target, BUFFER};
use super::source::{open_source_chain, restrict_to_partition, SourceDetection};
use super::vhd_stream::{
    output_size, read_disk, reads_as_zeros, scan_blocks, DataCursor, DynamicLayout, Layout, CHUNK,
};
use super::Progress;
use crate::dynamic_header::DEFAULT_BLOCK_SIZE;
use crate::error::{Error, Result};
use crate::files::{self, FileKind, Use};
use crate::footer::FOOTER_SIZE;
use crate::image::LockedFile;
use crate::new_file::{NewFile, Replace};
use crate::storage::Storage;
use crate::zeros::is_all_zero;
use crate::{OpenOptions, VirtualDisk};
use std::cell::Cell;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name under which `convert` reports progress and cancellation.
const OPERATION: &str = "convert";

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

/// The names of the output formats.
const OUTPUT_FORMAT_NAMES: [(&str, OutputFormat); 3] = [
    ("raw", OutputFormat::Raw),
    ("fixed", OutputFormat::Fixed),
    ("dynamic", OutputFormat::Dynamic),
];

crate::names::named!(OutputFormat, OUTPUT_FORMAT_NAMES);

/// How `convert` reads its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceFormat {
    /// A VHD if the file ends with a valid footer, raw otherwise (see
    /// [`detect_source_format`](super::detect_source_format)); another image format, an
    /// ISO 9660 image or a compressed file is refused ([`Error::ForeignFormat`]).
    #[default]
    Auto,
    /// A raw disk: the file's bytes are the disk's.
    Raw,
    /// A VHD of any kind (a differencing image is read through its chain); one whose end
    /// footer is damaged is read through its footer copy at offset 0.
    Vhd,
}

/// The names of the source formats; "vpc" (qemu's name for VHD) is an alias of "vhd".
const SOURCE_FORMAT_NAMES: [(&str, SourceFormat); 4] = [
    ("auto", SourceFormat::Auto),
    ("raw", SourceFormat::Raw),
    ("vhd", SourceFormat::Vhd),
    ("vpc", SourceFormat::Vhd),
];

crate::names::named!(SourceFormat, SOURCE_FORMAT_NAMES);

/// How to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The output format.
    pub to: OutputFormat,
    /// How to read the source.
    pub source_format: SourceFormat,
    /// Make what Azure accepts: a fixed image (`to` must be [`OutputFormat::Fixed`]) whose
    /// virtual size is the source's rounded up to a whole MiB, from 20 MiB to 32 TiB.
    pub azure: bool,
    /// Block size of dynamic output (default 2 MiB): a power of two from 4 KiB to 256 MiB,
    /// as `create` accepts.
    pub block_size: u32,
    /// Replace an existing destination instead of failing with [`Error::AlreadyExists`].
    pub overwrite: bool,
    /// Unique id of the output; random when `None`.
    pub unique_id: Option<[u8; 16]>,
    /// Time stamp of the output (seconds since 2000-01-01); now when `None`.
    pub timestamp: Option<u32>,
    /// How to open a VHD source (its parents, checksums, locking); it is always opened
    /// read-only.
    pub open: OpenOptions,
    /// Convert only this partition of the source (its number in the source's partition
    /// table, as [`crate::partition`] reads it): the usual way to get a file-system image
    /// out of a disk image. `None`: the whole disk.
    pub partition: Option<u32>,
}

impl ConvertOptions {
    /// Options for converting to `to`, with every default.
    pub fn new(to: OutputFormat) -> ConvertOptions {
        ConvertOptions {
            to,
            source_format: SourceFormat::Auto,
            azure: false,
            block_size: DEFAULT_BLOCK_SIZE,
            overwrite: false,
            unique_id: None,
            timestamp: None,
            open: OpenOptions::default(),
            partition: None,
        }
    }

    /// Checks what can be checked without the source.
    pub(super) fn validate(&self) -> Result<()> {
        if self.azure && self.to != OutputFormat::Fixed {
            return Err(Error::InvalidArgument {
                name: "azure",
                reason: format!(
                    "Azure accepts only fixed VHDs; asked for {:?} output",
                    self.to
                ),
            });
        }
        Ok(())
    }
}

/// What `convert` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertReport {
    /// Size of the source disk in bytes.
    pub source_size: u64,
    /// Virtual size of the output in bytes: the source's rounded up to whole sectors (and
    /// with `azure` to a whole MiB).
    pub virtual_size: u64,
    /// Size of the output file in bytes (on a block device: the length of the output
    /// written from its start; the device keeps the rest).
    pub file_size: u64,
    /// Blocks allocated in dynamic output (0 for other formats).
    pub allocated_blocks: u64,
    /// How the source was read (raw or VHD) and why, with a warning for the caller when
    /// auto-detection read as raw a file that looked like a VHD in part.
    pub detection: SourceDetection,
}

/// Converts `source` into a new image at `destination`.
///
/// The source is opened read-only as [`open_source`](super::open_source) does. A source
/// whose size is not a multiple of 512 (a raw file) is rounded up to whole sectors with
/// zeros, as qemu does; so is raw output. Unallocated parts of VHD sources read as zeros
/// without I/O, and so do the holes of a sparse raw file or fixed image, which are jumped
/// over as the file system reports them (`SEEK_DATA`/`SEEK_HOLE`, see
/// [`VirtualDisk::next_data`]); chunks of 2 MiB that are all zeros become holes in raw and
/// fixed output, and blocks that are all zeros stay unallocated in dynamic output. A raw
/// source found shorter than when it was opened fails with [`Error::Truncated`].
/// The output is handed to the device as it is written (`sync_file_range` on Linux) and
/// made durable before it is moved into place. Fixed and dynamic
/// output are the exact bytes of a [`VhdStream`](super::VhdStream) with the same options.
///
/// The source is chosen as [`SourceFormat`] says; with [`SourceFormat::Auto`] a file that
/// does not end with a valid VHD footer is read as raw, even when its first sector is a
/// footer copy (the report's [`detection`](ConvertReport::detection) then carries a
/// warning): see [`detect_source_format`](super::detect_source_format).
///
/// The destination is a new regular file, or with `overwrite` an existing one, replaced
/// atomically; or with `overwrite` a block device, written in place from its start (no
/// temporary file, no rename, never truncated: the rest of the device is left as it was;
/// all-zero chunks are written as zeros, since a device has no holes). A directory, FIFO,
/// socket or character device (such as `/dev/null`), or a link to one, is refused with
/// [`Error::FileType`], checked on the opened descriptor and without ever waiting on a
/// FIFO.
///
/// Refused before any file is written: `azure` with an output other than fixed, or a size
/// Azure refuses; sizes and block sizes that `create` refuses; a destination that is the
/// source or one of its parents (whatever the path it is named by, hard links and other
/// nodes of the same device included); an existing destination without `overwrite`
/// ([`Error::AlreadyExists`]), or one that another open image has locked
/// ([`Error::Locked`]); a block device smaller than the output
/// ([`Error::InvalidArgument`]; for dynamic output, whose length is known only at the end,
/// a device smaller than the metadata, and later one smaller than the blocks written so
/// far). Progress is reported after every chunk as (bytes of the virtual disk done,
/// virtual size); cancellation ([`Error::Cancelled`]), like any error, removes the
/// temporary file and leaves the destination as it was (a block device keeps what was
/// written before the error).
pub fn convert(
    source: &Path,
    destination: &Path,
    options: &ConvertOptions,
    progress: Progress,
) -> Result<ConvertReport> {
    options.validate()?;
    let (disk, detection, chain) = open_source_chain(source, options.source_format, &options.open)?;
    let disk = restrict_to_partition(disk, options.partition, source)?;
    refuse_chain_member(destination, &chain)?;
    let source_size = disk.size();
    let virtual_size = output_size(source_size, options)?;
    let layout = match options.to {
        OutputFormat::Raw => None,
        _ => Some(Layout::new(virtual_size, options)?),
    };
    let output = Output::open(destination, options.overwrite)?;
    // The whole output for raw and fixed; the metadata of a dynamic one (its blocks are
    // counted as they are written).
    output.reserve(layout.as_ref().map_or(virtual_size, Layout::len))?;
    let holes = output.holes_read_as_zeros();
    let source: &(dyn VirtualDisk + Sync) = disk.as_ref();
    // The source is read on a thread of its own while the output is written here (see
    // read_ahead); a failure or a cancellation drops the output (its temporary file goes).
    let allocated_blocks = read_ahead(&output, |pipe| match layout {
        None => {
            write_raw(source, virtual_size, pipe, holes, progress)?;
            Ok(0)
        }
        Some(Layout::Dynamic(mut layout)) => {
            write_dynamic(source, &mut layout, pipe, holes, progress)?;
            Ok(layout.allocated_blocks())
        }
        Some(Layout::Fixed { size, footer }) => {
            // The disk's bytes, then the footer: what the stream of this layout gives.
            write_raw(source, size, pipe, holes, progress)?;
            pipe.write_copy(&footer, size)?;
            Ok(0)
        }
    })?;
    let file_size = output.finish()?;
    output.persist(options.overwrite)?;
    Ok(ConvertReport {
        source_size,
        virtual_size,
        file_size,
        allocated_blocks,
        detection,
    })
}

/// Copies `size` bytes of the disk (zeros past its end), leaving all-zero chunks as holes
/// in a file (`holes`: holes read as zeros; written as zeros on a device); unallocated
/// ranges of a sparse source, and the holes of a sparse raw file or fixed image, are not
/// even read. Each chunk is read into a buffer of the pipe's pool and handed over, to be
/// written while the next ones are read.
fn write_raw(
    disk: &dyn VirtualDisk,
    size: u64,
    output: &mut Pipe,
    holes: bool,
    progress: Progress,
) -> Result<()> {
    output.set_len(size)?;
    // A buffer read into but found all zeros is used again for the next chunk.
    let mut spare: Option<Buffer> = None;
    let mut data = DataCursor::new(disk);
    let mut offset = 0;
    while offset < size {
        let n = CHUNK.min(size - offset) as usize;
        let next = data.next_chunk(offset, n as u64, size)?;
        let hole = next > offset;
        if hole && holes {
            // Holes of the source stay holes of the file, all at once. A device gets
            // zeros, a chunk at a time (so that progress and cancellation follow).
            offset = next;
            progress.report(OPERATION, offset, size)?;
            continue;
        }
        let data = if hole || reads_as_zeros(disk, offset, n as u64) {
            None
        } else {
            let mut buffer = match spare.take() {
                Some(buffer) => buffer,
                None => output.buffer()?,
            };
            // Zero-filled only when new or after a shorter last chunk: buffers come back
            // as long as they went.
            buffer.resize(n, 0);
            read_disk(disk, &mut buffer, offset)?;
            if is_all_zero(&buffer) {
                spare = Some(buffer);
                None
            } else {
                Some(buffer)
            }
        };
        match data {
            Some(buffer) => output.write(buffer, offset)?,
            None if !holes => output.write_zeros(offset, n as u64)?,
            None => {}
        }
        offset += n as u64;
        progress.report(OPERATION, offset, size)?;
    }
    Ok(())
}

/// Writes a dynamic image in one pass over the source: each non-zero block goes where the
/// stream's layout puts it as soon as it is found; the head (footer copy, dynamic header,
/// BAT) and the end footer, complete only then, go last.
fn write_dynamic(
    disk: &dyn VirtualDisk,
    layout: &mut DynamicLayout,
    output: &mut Pipe,
    holes: bool,
    progress: Progress,
) -> Result<()> {
    // Blocks follow the head, one after the other, in the order they are found.
    let mut pending = PendingWrite::new(output, holes, layout.head().len() as u64);
    let mut sink = |offset: u64, bytes: &[u8]| pending.write_at(bytes, offset);
    scan_blocks(disk, layout, progress, OPERATION, Some(&mut sink))?;
    let footer_offset = layout.len() - FOOTER_SIZE as u64;
    pending.fill_to(footer_offset)?;
    output.set_len(footer_offset)?;
    output.write_copy(layout.head(), 0)?;
    output.write_copy(layout.footer(), footer_offset)
}

/// Joins writes that follow each other in the file into writes of up to a buffer of the
/// pipe's pool (two chunks), so that small blocks (a 512-byte bitmap, then a few KiB of
/// data) do not cost a system call each. The writes come in ascending order; the gaps
/// between them (all-zero pieces of a block) stay holes in a file (`holes`) and are
/// written as zeros on a device.
struct PendingWrite<'w> {
    output: &'w mut Pipe,
    holes: bool,
    /// Where the pending bytes go; everything before it has been handed over (or left as
    /// a hole).
    offset: u64,
    /// The pending bytes, once there are some.
    buffer: Option<Buffer>,
}

impl<'w> PendingWrite<'w> {
    fn new(output: &'w mut Pipe, holes: bool, start: u64) -> Self {
        PendingWrite {
            output,
            holes,
            offset: start,
            buffer: None,
        }
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<()> {
        let pending = self.buffer.as_ref().map_or(0, Vec::len);
        let follows = offset == self.offset + pending as u64;
        if !follows || pending + bytes.len() > BUFFER {
            self.fill_to(offset)?;
        }
        let buffer = match &mut self.buffer {
            Some(buffer) => buffer,
            None => {
                let mut fresh = self.output.buffer()?;
                fresh.clear();
                self.buffer.insert(fresh)
            }
        };
        buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Hands over what is pending, then zeros (on a device) up to `end`, where the next
    /// bytes go.
    fn fill_to(&mut self, end: u64) -> Result<()> {
        if let Some(buffer) = self.buffer.take() {
            let len = buffer.len() as u64;
            self.output.write(buffer, self.offset)?;
            self.offset += len;
        }
        if end > self.offset && !self.holes {
            self.output.write_zeros(self.offset, end - self.offset)?;
        }
        self.offset = end;
        Ok(())
    }
}

/// Fails when `destination` is one of the files the source reads (the source itself or a
/// parent), by whatever path it is named.
fn refuse_chain_member(destination: &Path, chain: &[PathBuf]) -> Result<()> {
    for member in chain {
        if files::same_file(destination, member) {
            return Err(Error::InvalidArgument {
                name: "destination",
                reason: format!(
                    "{} is {}: writing the output there would destroy what it is made from",
                    destination.display(),
                    if member == &chain[0] {
                        format!("the source ({})", member.display())
                    } else {
                        format!("{}, a parent of the source", member.display())
                    }
                ),
            });
        }
    }
    Ok(())
}

/// Where the output goes, by what the destination is (see [`Output::open`]).
enum Output {
    /// A new file beside the destination, moved into place at the end.
    File {
        temp: NewFile,
        /// The regular file it replaces, locked exclusively until then.
        existing: Option<LockedFile>,
        /// The output's length, and how much longer the file is for now.
        length: GrowAhead,
    },
    /// A block device, written in place and locked exclusively.
    Device {
        file: LockedFile,
        path: PathBuf,
        /// The device's size in bytes.
        size: u64,
        /// The length of the output so far (what it reserved or wrote).
        end: Cell<u64>,
    },
}

impl Output {
    /// Decides where the output goes, by what `destination` is (on the opened descriptor:
    /// see [`crate::files`]): nothing yet, or with `overwrite` a regular file, means a
    /// temporary file renamed into place at the end; with `overwrite` a block device is
    /// written in place. An existing destination without `overwrite` is refused with
    /// [`Error::AlreadyExists`]; one that an open image holds with [`Error::Locked`]; a
    /// directory, FIFO, socket or character device with [`Error::FileType`].
    fn open(destination: &Path, overwrite: bool) -> Result<Output> {
        const WHAT: &str = "the destination";
        let Ok(metadata) = std::fs::metadata(destination) else {
            // Nothing there (or a dangling link): a new file.
            return Ok(Output::File {
                temp: NewFile::create(destination, OPERATION)?,
                existing: None,
                length: GrowAhead::default(),
            });
        };
        let kind = files::accept(FileKind::of(&metadata), destination, Use::WriteDevice, WHAT)?;
        if !overwrite {
            return Err(Error::AlreadyExists(destination.to_path_buf()));
        }
        // A file to be replaced is only locked (read access is enough, and it may not be
        // writable); a device is written.
        let device = kind == FileKind::BlockDevice;
        let (file, kind) = files::open(
            destination,
            File::options().read(true).write(device),
            Use::WriteDevice,
            WHAT,
            |e| Error::io_at(destination, "open", "opening the destination", e),
        )?;
        // No open image may have it while it is replaced or overwritten.
        let file = LockedFile::new(file, destination, false, true)?;
        match kind {
            FileKind::BlockDevice if device => Ok(Output::Device {
                size: files::size(&file).map_err(|e| {
                    Error::io_at(
                        destination,
                        "fstat",
                        "reading the size of the destination",
                        e,
                    )
                })?,
                file,
                path: destination.to_path_buf(),
                end: Cell::new(0),
            }),
            FileKind::Regular if !device => Ok(Output::File {
                temp: NewFile::create(destination, OPERATION)?,
                existing: Some(file),
                length: GrowAhead::default(),
            }),
            _ => Err(Error::InvalidArgument {
                name: "destination",
                reason: format!(
                    "{} changed while it was being opened; try again",
                    destination.display()
                ),
            }),
        }
    }

    /// Whether bytes never written read as zeros: in a new file (holes), not on a device.
    fn holes_read_as_zeros(&self) -> bool {
        matches!(self, Output::File { .. })
    }

    /// Fails unless the output may be `length` bytes long: a device must hold them.
    fn reserve(&self, length: u64) -> Result<()> {
        match self {
            Output::File { .. } => Ok(()),
            Output::Device { path, size, .. } if length > *size => Err(Error::InvalidArgument {
                name: "destination",
                reason: format!(
                    "{} is a block device of {size} bytes, too small for the output, which \
                     needs {length} bytes or more: use a larger device",
                    path.display()
                ),
            }),
            Output::Device { end, .. } => {
                end.set(end.get().max(length));
                Ok(())
            }
        }
    }

    /// Makes a file `len` bytes long; a device is never truncated, only checked.
    fn set_len(&self, len: u64) -> Result<()> {
        match self {
            Output::File { temp, length, .. } => {
                temp.file()
                    .set_len(len)
                    .map_err(|e| temp.io_error("ftruncate", "setting the size of the output", e))?;
                length.set(len);
                Ok(())
            }
            Output::Device { .. } => self.reserve(len),
        }
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        match self {
            Output::File { temp, length, .. } => {
                length.before_write(temp.file(), offset + bytes.len() as u64);
                Storage::write_all_at(temp.file(), bytes, offset).map_err(|e| {
                    temp.io_error("write", &format!("writing at offset {offset}"), e)
                })?;
                start_writeback(temp.file(), offset, bytes.len());
                Ok(())
            }
            Output::Device { file, path, .. } => {
                self.reserve(offset + bytes.len() as u64)?;
                file.write_all_at(bytes, offset).map_err(|e| {
                    Error::io_at(path, "write", format!("writing at offset {offset}"), e)
                })
            }
        }
    }

    /// Writes `length` zeros at `offset`, in chunks.
    fn write_zeros(&self, offset: u64, length: u64) -> Result<()> {
        crate::image::write_zeros(offset, length, |zeros, at| self.write_at(zeros, at))
    }

    /// Makes the output durable; returns its length in bytes.
    fn finish(&self) -> Result<u64> {
        match self {
            // Made durable when it is moved into place.
            Output::File { temp, length, .. } => {
                length
                    .trim(temp.file())
                    .map_err(|e| temp.io_error("ftruncate", "setting the size of the output", e))?;
                temp.file()
                    .file_size()
                    .map_err(|e| temp.io_error("fstat", "reading the size of the output", e))
            }
            Output::Device {
                file, path, end, ..
            } => {
                file.sync_all()
                    .map_err(|e| Error::io_at(path, "fsync", "flushing to disk", e))?;
                Ok(end.get())
            }
        }
    }

    /// Puts a file in place at the destination (a device already is).
    fn persist(self, overwrite: bool) -> Result<()> {
        match self {
            Output::File { temp, existing, .. } => {
                // Windows cannot replace a file that is open (without delete sharing, as
                // std opens files): let go of the old one just before. Unix keeps the lock
                // to the end.
                #[cfg(not(unix))]
                drop(existing);
                let replace = if overwrite { Replace::Yes } else { Replace::No };
                drop(temp.persist(replace)?);
                #[cfg(unix)]
                drop(existing);
                Ok(())
            }
            Output::Device { .. } => Ok(()),
        }
    }
}

/// What the writes handed over by the reading side go to (see read_ahead).
impl Target for Output {
    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        Output::write_at(self, bytes, offset)
    }
    fn write_zeros(&self, offset: u64, length: u64) -> Result<()> {
        Output::write_zeros(self, offset, length)
    }
    fn set_len(&self, len: u64) -> Result<()> {
        Output::set_len(self, len)
    }
}

/// Keeps a file that grows with the writes [`GrowAhead::STEP`] longer than them (a hole,
/// nothing allocated), so that the writes land inside the file. A write that lengthens a
/// file changes its size on disk, which on ext4 takes a journal handle and may wait for a
/// commit in progress. A dynamic output's length is known only at the end, and it grew
/// with every block: converting a 1 GiB raw disk holding 512 MiB to dynamic took 0.30 s
/// before and 0.24 s after (medians of interleaved runs here; a fixed output, whose length
/// is set at the start, takes about the same). [`trim`](GrowAhead::trim) gives the file
/// its exact length at the end.
#[derive(Default)]
struct GrowAhead {
    /// The output's length: the last `set_len`, or the end of a write past it.
    output: Cell<u64>,
    /// The file's length, `output` or more; `u64::MAX` once the file system refused to
    /// lengthen it (a size limit: the writes then lengthen it as before).
    file: Cell<u64>,
}

impl GrowAhead {
    const STEP: u64 = 256 << 20;

    /// Notes that the file is now `len` bytes long.
    fn set(&self, len: u64) {
        self.output.set(len);
        self.file.set(len);
    }

    /// Before a write that ends at `end`: lengthens the file ahead of it if needed. Only a
    /// hint: a refusal is not an error.
    fn before_write(&self, file: &File, end: u64) {
        self.output.set(self.output.get().max(end));
        if end > self.file.get() {
            let ahead = end.saturating_add(Self::STEP);
            self.file.set(if file.set_len(ahead).is_ok() {
                ahead
            } else {
                u64::MAX
            });
        }
    }

    /// Gives the file the output's length (cuts the hole ahead of the writes).
    fn trim(&self, file: &File) -> std::io::Result<()> {
        if self.file.get() != self.output.get() {
            file.set_len(self.output.get())?;
            self.set(self.output.get());
        }
        Ok(())
    }
}

/// Asks the kernel to start writing `length` bytes at `offset` to the device now, without
/// waiting: the output is made durable (fsync) at the end anyway, and writing it back
/// while the conversion goes on, rather than all at that fsync, overlaps the device's work
/// with the reading and copying. Only a hint: failures are ignored (Linux only).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, length: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
        return;
    };
    // SAFETY: a plain call on a descriptor we own, with integer arguments.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            length,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: usize) {}
