//! `vhd convert`: raw or any VHD (chains flattened) into raw, fixed or dynamic.

use super::{
    flag, open_options, size_argument, valued, Command, ALLOW_REMOTE_PARENTS, PARENT_ROOT,
};
use crate::args::Parsed;
use crate::progress::{self, PROGRESS, QUIET};
use crate::size::size_with_bytes;
use crate::terminal::safe;
use crate::{CliError, Io, PROGRAM};
use std::path::Path;
use vhd_core::dynamic_header::DEFAULT_BLOCK_SIZE;
use vhd_core::names::UnknownName;
use vhd_core::ops::{convert, ConvertOptions, OutputFormat, SourceFormat};

pub const COMMAND: Command = Command {
    name: "convert",
    synopsis: "[--to raw|fixed|dynamic] [--azure] [--parent-root DIR] SRC DST",
    summary: "convert a raw disk or a VHD (a chain is flattened) into a new image",
    description: "\
Writes the virtual disk SRC into the new file DST. SRC is a VHD of any type (a
differencing image is read through its whole chain) or a raw disk image: a file that
ends with a valid VHD footer is taken as a VHD, any other as raw, unless --from says.
A file whose first sector is a VHD footer copy but whose end holds no valid footer is
read as raw, with a warning on stderr (a raw disk's guest writes its first sector):
--from vhd reads it as a VHD whose end footer is damaged, through that copy. Another
image format (qcow2, VMDK, VHDX, VDI…), an ISO 9660 image or a compressed file is
refused, nothing written: convert it with qemu-img convert -O vpc, or pass --from raw
to wrap its bytes as they are.

DST is a dynamic VHD (all-zero blocks left unallocated) unless --to says raw or fixed.
--azure makes what Azure accepts: a fixed VHD whose size is rounded up to a whole MiB.
An existing DST is refused unless --overwrite is given. A file DST is written beside it
and renamed into place at the end; a block device DST (/dev/sdX) is written in place
from its start, as qemu-img does, and must hold the whole output. A directory, FIFO,
socket or character device (such as /dev/null) is refused.",
    options: &[
        valued("to", "FORMAT", "raw, fixed or dynamic (default: dynamic)"),
        valued(
            "from",
            "FORMAT",
            "how to read SRC: auto, raw or vhd (default: auto)",
        ),
        flag(
            "azure",
            "a fixed VHD of a whole number of MiB, as Azure requires",
        ),
        valued(
            "block-size",
            "SIZE",
            "block size of a dynamic DST (default 2M)",
        ),
        flag("overwrite", "replace DST if it exists"),
        PARENT_ROOT,
        ALLOW_REMOTE_PARENTS,
        PROGRESS,
        QUIET,
    ],
    run,
};

fn run(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let positionals = parsed.positionals("convert", &["SRC", "DST"], &[])?;
    let (source, destination) = (&positionals[0], &positionals[1]);
    let azure = parsed.flag("azure");
    let unknown = |what: &str, e: UnknownName| {
        CliError::usage(
            "convert",
            format!("unknown {what} '{}': {}", e.received, e.expectation()),
        )
    };
    let requested = parsed
        .value("to")
        .map(str::parse::<OutputFormat>)
        .transpose()
        .map_err(|e| unknown("output format", e))?;
    let to = match (requested, azure) {
        (None, false) => OutputFormat::Dynamic,
        (None, true) | (Some(OutputFormat::Fixed), _) => OutputFormat::Fixed,
        (Some(format), false) => format,
        (Some(OutputFormat::Raw | OutputFormat::Dynamic), true) => {
            return Err(CliError::usage(
                "convert",
                "--azure makes a fixed VHD: drop --to or use --to fixed",
            ))
        }
    };
    let source_format = parsed
        .value("from")
        .map_or(Ok(SourceFormat::Auto), str::parse)
        .map_err(|e| unknown("source format", e))?;
    let block_size = match parsed.value("block-size") {
        None => DEFAULT_BLOCK_SIZE,
        Some(_) if to != OutputFormat::Dynamic => {
            return Err(CliError::usage(
                "convert",
                "--block-size is only for dynamic output",
            ))
        }
        Some(text) => u32::try_from(size_argument("convert", text)?)
            .map_err(|_| CliError::usage("convert", format!("block size {text} is too large")))?,
    };
    let options = ConvertOptions {
        source_format,
        azure,
        block_size,
        overwrite: parsed.flag("overwrite"),
        open: open_options(parsed),
        ..ConvertOptions::new(to)
    };
    let show = progress::wanted(parsed, io);
    let report = progress::run_with(io, show, |progress| {
        convert(
            Path::new(source),
            Path::new(destination),
            &options,
            progress,
        )
    })?;
    // Shown even with --quiet, like errors: the source was not read as it looked.
    if let Some(warning) = &report.detection.warning {
        writeln!(io.stderr, "{PROGRAM}: warning: {}", safe(warning))?;
    }
    if !parsed.flag("quiet") {
        writeln!(
            io.stdout,
            "Converted '{}' to '{}': virtual size {}, file size {}",
            safe(source),
            safe(destination),
            size_with_bytes(report.virtual_size),
            size_with_bytes(report.file_size)
        )?;
    }
    Ok(0)
}
