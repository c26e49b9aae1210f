//! Opening the source of a conversion (`convert`, [`VhdStream`](super::VhdStream)): a raw
//! disk or a VHD, and the one rule that tells them apart when the caller did not say.
//!
//! A raw disk's bytes are whatever its guest wrote, so nothing the guest can write may make
//! us take it for a VHD, or it could make a conversion read another disk than its own. The
//! guest controls every sector, the first one included: a footer copy at offset 0 (which
//! dynamic and differencing images have) therefore proves nothing on its own. A file is
//! taken for a VHD only when it *ends* with a valid footer (or its 511-byte form). The
//! copy at offset 0 still rescues a VHD whose end footer is damaged, but only when the
//! caller said the source is a VHD ([`SourceFormat::Vhd`]); auto-detection then reads the
//! file as raw and says so in a warning.

use super::vhd_stream::Source;
use super::SourceFormat;
use crate::error::{Error, Result};
use crate::files::{self, Use};
use crate::footer::{DiskType, Footer, FOOTER_SIZE};
use crate::image::{end_footer, footer_copy, FooterSource, RawDisk};
use crate::storage::Storage;
use crate::{Image, OpenOptions};
use std::fs::File;
use std::path::{Path, PathBuf};

/// How a conversion source is read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDetection {
    /// [`SourceFormat::Raw`] or [`SourceFormat::Vhd`] (never `Auto`).
    pub format: SourceFormat,
    /// Why, in words: "as asked", "it ends with a valid VHD footer", …
    pub reason: String,
    /// Something the caller should be told (the command line prints it on stderr): set when
    /// auto-detection read as raw a file whose first sector is a VHD footer copy.
    pub warning: Option<String>,
}

impl SourceDetection {
    fn new(format: SourceFormat, reason: impl Into<String>) -> SourceDetection {
        SourceDetection {
            format,
            reason: reason.into(),
            warning: None,
        }
    }
}

/// Decides how to read the source in `file` (named `path` in messages) when `format` is
/// [`SourceFormat::Auto`]; a format the caller gave is kept as it is.
///
/// The rule (see the documentation of `ops::source`): a VHD when the file ends with a footer
/// — the last 512 bytes, or the 511-byte footer of old Virtual PC images — with the
/// `conectix` cookie and a correct checksum (the cookie alone with `ignore_checksums`);
/// raw otherwise. A valid footer copy of a dynamic or differencing image at offset 0 with
/// no footer at the end is read as raw too, with a [`warning`](SourceDetection::warning).
/// A file that [looks like](crate::sniff) another image format, a compressed file or an
/// archive is refused with [`Error::ForeignFormat`] (a raw disk with a partition table is
/// read as raw).
pub fn detect_source_format(
    file: &dyn Storage,
    path: &Path,
    format: SourceFormat,
    ignore_checksums: bool,
) -> Result<SourceDetection> {
    match format {
        SourceFormat::Raw => return Ok(SourceDetection::new(format, "read as raw, as asked")),
        SourceFormat::Vhd => return Ok(SourceDetection::new(format, "read as a VHD, as asked")),
        SourceFormat::Auto => {}
    }
    let file_size = file
        .file_size()
        .map_err(|e| Error::io_at(path, "fstat", "reading the size", e))?;
    let valid =
        |footer: &Footer, offset: u64| ignore_checksums || footer.verify_checksum(offset).is_ok();
    if file_size >= FOOTER_SIZE as u64 - 1 {
        if let Ok((footer, source, offset)) = end_footer(file, file_size) {
            if valid(&footer, offset) {
                let reason = match source {
                    FooterSource::End511 => {
                        "it ends with the 511-byte VHD footer of old Virtual PC images"
                    }
                    _ => "it ends with a valid VHD footer",
                };
                return Ok(SourceDetection::new(SourceFormat::Vhd, reason));
            }
        }
    }
    // Another image format, a compressed file or an archive is no raw disk: wrapping its
    // bytes would make a VHD of the container, not of the disk in it.
    if let Some(format) = crate::sniff::sniff(file).filter(|f| f.is_container()) {
        return Err(Error::ForeignFormat {
            path: path.to_path_buf(),
            format,
        });
    }
    let copy = footer_copy(file, file_size).filter(|copy| valid(copy, 0));
    let Some(copy) = copy else {
        return Ok(SourceDetection::new(
            SourceFormat::Raw,
            "it does not end with a valid VHD footer",
        ));
    };
    let kind = copy.disk_type().map_or("VHD", DiskType::name);
    Ok(SourceDetection {
        format: SourceFormat::Raw,
        reason: format!(
            "it does not end with a valid VHD footer; its first 512 bytes are a {kind} footer \
             copy, which does not make a VHD on its own"
        ),
        warning: Some(format!(
            "{}: read as a raw disk, although its first 512 bytes are the footer copy of a \
             {kind} VHD: without a valid footer at its end a file is not taken for a VHD, \
             because the guest of a raw disk writes its first sector. If it is a VHD whose \
             end footer is damaged, read it as a VHD explicitly (source format 'vhd')",
            path.display()
        )),
    })
}

/// Opens `path` read-only as a conversion source.
///
/// [`SourceFormat::Auto`] decides as [`detect_source_format`] says. A VHD is always opened
/// read-only (whatever `open.read_only` says), a differencing image with its whole chain,
/// and every file is locked shared unless `open.lock` is off. The source may be a regular
/// file or a block device (read as the disk or VHD it holds); a FIFO, socket, directory or
/// character device is refused with [`Error::FileType`], without waiting on a FIFO.
pub fn open_source(path: &Path, format: SourceFormat, open: &OpenOptions) -> Result<Source> {
    open_source_with_detection(path, format, open).map(|(source, _)| source)
}

/// Like [`open_source`], also saying how (and why) the source is read.
pub fn open_source_with_detection(
    path: &Path,
    format: SourceFormat,
    open: &OpenOptions,
) -> Result<(Source, SourceDetection)> {
    open_source_chain(path, format, open).map(|(source, detection, _)| (source, detection))
}

/// Like [`open_source_with_detection`], also returning the path of every file the source
/// reads: the file itself, then each parent of a chain.
pub(super) fn open_source_chain(
    path: &Path,
    format: SourceFormat,
    open: &OpenOptions,
) -> Result<(Source, SourceDetection, Vec<PathBuf>)> {
    // Opened once: the format is decided on the very file that is then read.
    let (file, _) = files::open(
        path,
        File::options().read(true),
        Use::Read,
        "the source",
        |e| Error::io_at(path, "open", "opening the file", e),
    )?;
    let detection = detect_source_format(&file, path, format, open.ignore_checksums)?;
    if detection.format == SourceFormat::Raw {
        let raw = RawDisk::from_file(file, path, open.lock)?;
        return Ok((Box::new(raw), detection, vec![path.to_path_buf()]));
    }
    let options = OpenOptions {
        read_only: true,
        ..open.clone()
    };
    let image = Image::open_file(file, path, &options)?;
    let chain = image.chain().into_iter().map(Path::to_path_buf).collect();
    Ok((Box::new(image), detection, chain))
}

/// The source restricted to its partition numbered `partition` (Linux's numbering, as
/// [`crate::partition`] reads the table), or the whole source for `None`: what
/// `convert --partition N` reads. The restriction keeps what the source knows of its holes
/// (see [`PartitionView`](crate::partition::PartitionView)). `path` names the source in
/// messages.
pub(super) fn restrict_to_partition(
    source: Source,
    partition: Option<u32>,
    path: &Path,
) -> Result<Source> {
    match partition {
        None => Ok(source),
        Some(index) => Ok(Box::new(crate::partition::partition_view(
            source, index, path,
        )?)),
    }
}
