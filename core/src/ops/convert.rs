//! Conversion between raw, fixed, dynamic and (flattened) differencing images.
//!
//! The output is written to a temporary file in the destination's folder, fsynced, and only
//! then renamed into place (and the folder fsynced): a failed or cancelled conversion leaves
//! no partial output and never touches an existing destination.

use super::vhd_stream::{
    is_zero, open_source_chain, output_size, read_disk, reads_as_zeros, scan_blocks, DynamicLayout,
    Layout, CHUNK,
};
use super::Progress;
use crate::dynamic_header::DEFAULT_BLOCK_SIZE;
use crate::error::{Error, Result};
use crate::footer::FOOTER_SIZE;
use crate::image::LockedFile;
use crate::storage::Storage;
use crate::{OpenOptions, VirtualDisk};
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

/// How `convert` reads its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceFormat {
    /// A VHD if the file ends with a valid footer, raw otherwise (see
    /// [`open_source`](super::open_source)).
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
    /// Size of the output file in bytes.
    pub file_size: u64,
    /// Blocks allocated in dynamic output (0 for other formats).
    pub allocated_blocks: u64,
}

/// Converts `source` into a new image at `destination`.
///
/// The source is opened read-only as [`open_source`](super::open_source) does. A source
/// whose size is not a multiple of 512 (a raw file) is rounded up to whole sectors with
/// zeros, as qemu does; so is raw output. Unallocated parts of VHD sources read as zeros
/// without I/O; chunks of 2 MiB that are all zeros become holes in raw and fixed output,
/// and blocks that are all zeros stay unallocated in dynamic output. Fixed and dynamic
/// output are the exact bytes of a [`VhdStream`] with the same options.
///
/// Refused before any file is written: `azure` with an output other than fixed, or a size
/// Azure refuses; sizes and block sizes that `create` refuses; a destination that is the
/// source or one of its parents (whatever the path it is named by, hard links included);
/// an existing destination without `overwrite` ([`Error::AlreadyExists`]), or one that
/// another open image has locked ([`Error::Locked`]). Progress is reported after every
/// chunk as (bytes of the virtual disk done, virtual size); cancellation
/// ([`Error::Cancelled`]), like any error, removes the temporary file and leaves the
/// destination as it was.
pub fn convert(
    source: &Path,
    destination: &Path,
    options: &ConvertOptions,
    progress: Progress,
) -> Result<ConvertReport> {
    options.validate()?;
    let (disk, chain) = open_source_chain(source, options.source_format, &options.open)?;
    refuse_chain_member(destination, &chain)?;
    let source_size = disk.size();
    let virtual_size = output_size(source_size, options)?;
    let layout = match options.to {
        OutputFormat::Raw => None,
        _ => Some(Layout::new(virtual_size, options)?),
    };
    // Held until the new file is in place: no open image may have the old one.
    let existing = lock_existing(destination, options.overwrite)?;
    let temp = TempFile::create(destination)?;
    let allocated_blocks = match layout {
        None => {
            write_raw(disk.as_ref(), virtual_size, &temp, progress)?;
            0
        }
        Some(Layout::Dynamic(mut layout)) => {
            write_dynamic(disk.as_ref(), &mut layout, &temp, progress)?;
            layout.allocated_blocks()
        }
        Some(Layout::Fixed { size, footer }) => {
            // The disk's bytes, then the footer: what the stream of this layout gives.
            write_raw(disk.as_ref(), size, &temp, progress)?;
            temp.write_at(&footer, size)?;
            0
        }
    };
    let file_size = temp.finish()?;
    // Windows cannot replace a file that is open (without delete sharing, as std opens
    // files): let go of the old one just before. Unix keeps the lock to the end.
    #[cfg(not(unix))]
    drop(existing);
    temp.persist(destination, options.overwrite)?;
    #[cfg(unix)]
    drop(existing);
    Ok(ConvertReport {
        source_size,
        virtual_size,
        file_size,
        allocated_blocks,
    })
}

/// Copies `size` bytes of the disk (zeros past its end), leaving all-zero chunks as holes;
/// unallocated ranges of a sparse source are not even read.
fn write_raw(disk: &dyn VirtualDisk, size: u64, temp: &TempFile, progress: Progress) -> Result<()> {
    temp.set_len(size)?;
    let mut buf = vec![0u8; CHUNK.min(size) as usize];
    let mut offset = 0;
    while offset < size {
        let n = CHUNK.min(size - offset) as usize;
        if !reads_as_zeros(disk, offset, n as u64) {
            read_disk(disk, &mut buf[..n], offset)?;
            if !is_zero(&buf[..n]) {
                temp.write_at(&buf[..n], offset)?;
            }
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
    temp: &TempFile,
    progress: Progress,
) -> Result<()> {
    let mut pending = PendingWrite::new(temp);
    let mut sink = |offset: u64, bytes: &[u8]| pending.write_at(bytes, offset);
    scan_blocks(disk, layout, progress, OPERATION, Some(&mut sink))?;
    pending.flush()?;
    let footer_offset = layout.len() - FOOTER_SIZE as u64;
    temp.set_len(footer_offset)?;
    temp.write_at(layout.head(), 0)?;
    temp.write_at(layout.footer(), footer_offset)
}

/// Joins writes that follow each other in the file into writes of up to two chunks, so
/// that small blocks (a 512-byte bitmap, then a few KiB of data) do not cost a system call
/// each.
struct PendingWrite<'t> {
    temp: &'t TempFile,
    offset: u64,
    bytes: Vec<u8>,
}

impl<'t> PendingWrite<'t> {
    fn new(temp: &'t TempFile) -> Self {
        PendingWrite {
            temp,
            offset: 0,
            bytes: Vec::with_capacity(2 * CHUNK as usize),
        }
    }

    fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<()> {
        let follows = offset == self.offset + self.bytes.len() as u64;
        if !follows || self.bytes.len() + bytes.len() > self.bytes.capacity() {
            self.flush()?;
        }
        if self.bytes.is_empty() {
            self.offset = offset;
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.bytes.is_empty() {
            self.temp.write_at(&self.bytes, self.offset)?;
            self.bytes.clear();
        }
        Ok(())
    }
}

/// Fails when `destination` is one of the files the source reads (the source itself or a
/// parent), by whatever path it is named.
fn refuse_chain_member(destination: &Path, chain: &[PathBuf]) -> Result<()> {
    let Ok(target) = std::fs::metadata(destination) else {
        // It does not exist (yet), so it is none of them.
        return Ok(());
    };
    for member in chain {
        if same_file(destination, &target, member) {
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

#[cfg(unix)]
fn same_file(_path: &Path, target: &std::fs::Metadata, other: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(other).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
}

#[cfg(not(unix))]
fn same_file(path: &Path, _target: &std::fs::Metadata, other: &Path) -> bool {
    match (path.canonicalize(), other.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Fails with [`Error::AlreadyExists`] if `destination` exists and may not be replaced;
/// otherwise locks an existing one exclusively (failing with [`Error::Locked`] if an open
/// image holds it) and returns it, to hold the lock until it is replaced.
fn lock_existing(destination: &Path, overwrite: bool) -> Result<Option<LockedFile>> {
    let Ok(metadata) = std::fs::metadata(destination) else {
        return Ok(None);
    };
    if !overwrite {
        return Err(Error::AlreadyExists(destination.to_path_buf()));
    }
    if metadata.is_dir() {
        return Err(Error::InvalidArgument {
            name: "destination",
            reason: format!("{} is a folder", destination.display()),
        });
    }
    let file = File::open(destination)
        .map_err(|e| Error::io(format!("opening {}", destination.display()), e))?;
    Ok(Some(LockedFile::new(file, destination, false, true)?))
}

/// The output while it is written: a new file beside the destination, removed on drop
/// unless it was moved into place.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// A new, uniquely named hidden file in `destination`'s folder (so that the final
    /// rename stays on one file system).
    fn create(destination: &Path) -> Result<TempFile> {
        let name = destination
            .file_name()
            .ok_or_else(|| Error::InvalidArgument {
                name: "destination",
                reason: format!("{} does not name a file", destination.display()),
            })?
            .to_string_lossy();
        let folder = destination.parent().unwrap_or(Path::new(""));
        let mut attempt = 0u32;
        loop {
            let path = folder.join(format!(
                ".{name}.{}-{attempt}.convert-tmp",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::io(format!("creating {}", path.display()), e));
                }
            }
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(format!("writing {}", self.path.display()), e)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| self.io(e))
    }

    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| self.io(e))
    }

    /// Makes the contents durable; returns the file's size.
    fn finish(&self) -> Result<u64> {
        self.file.sync_all().map_err(|e| self.io(e))?;
        Ok(self.file.metadata().map_err(|e| self.io(e))?.len())
    }

    /// Moves the file to `destination`. Without `overwrite` a hard link makes it appear
    /// only if nothing took the name meanwhile (where links are not supported, a check
    /// then a rename). The folder is fsynced so that the new name survives a crash.
    fn persist(mut self, destination: &Path, overwrite: bool) -> Result<()> {
        let io = |e| Error::io(format!("moving the output to {}", destination.display()), e);
        if overwrite {
            std::fs::rename(&self.path, destination).map_err(io)?;
        } else {
            match std::fs::hard_link(&self.path, destination) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::AlreadyExists(destination.to_path_buf()))
                }
                Err(_) if destination.exists() => {
                    return Err(Error::AlreadyExists(destination.to_path_buf()))
                }
                Err(_) => std::fs::rename(&self.path, destination).map_err(io)?,
            }
        }
        // The destination holds the output now; a hard link left the temporary name too.
        self.persisted = true;
        let _ = std::fs::remove_file(&self.path);
        sync_folder(destination)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Makes a new name in `path`'s folder durable (a no-op where folders cannot be opened).
fn sync_folder(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let folder = match path.parent() {
            Some(f) if !f.as_os_str().is_empty() => f,
            _ => Path::new("."),
        };
        let dir = File::open(folder)
            .map_err(|e| Error::io(format!("opening the folder {}", folder.display()), e))?;
        dir.sync_all()
            .map_err(|e| Error::io(format!("flushing the folder {}", folder.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
