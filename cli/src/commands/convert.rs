//! `vhd convert`: raw or any VHD (chains flattened) into raw, fixed or dynamic.

use super::{block_size_argument, COMMAND_HELP};
use crate::args::{vpc_options, ChainArgs, PartitionArgs};
use crate::progress::{self, ProgressArgs};
use crate::size::size_with_bytes;
use crate::terminal::safe;
use crate::{CliError, Io, PROGRAM};
use std::path::PathBuf;
use vhd_core::dynamic_header::DEFAULT_BLOCK_SIZE;
use vhd_core::names::UnknownName;
use vhd_core::ops::{convert, ConvertOptions, OutputFormat, SourceFormat};
use vhd_core::DiskType;

const DESCRIPTION: &str = "\
Writes the virtual disk SRC into the new file DST. SRC is a VHD of any type (a
differencing image is read through its whole chain) or a raw disk image: a file that
ends with a valid VHD footer is taken as a VHD, any other as raw, unless --from (qemu-img's -f) says.
A file whose first sector is a VHD footer copy but whose end holds no valid footer is
read as raw, with a warning on stderr (a raw disk's guest writes its first sector):
--from vhd reads it as a VHD whose end footer is damaged, through that copy. Another
image format (qcow2, VMDK, VHDX, VDI…), an ISO 9660 image or a compressed file is
refused, nothing written: convert it with qemu-img convert -O vpc, or pass --from raw
to wrap its bytes as they are.

DST is a dynamic VHD (all-zero blocks left unallocated) unless --to says raw or fixed
(qemu-img's spellings: -O raw, -O vpc -o subformat=fixed|dynamic).
--azure makes what Azure accepts: a fixed VHD whose size is rounded up to a whole MiB.
An existing DST is refused unless --overwrite is given. A file DST is written beside it
and renamed into place at the end; a block device DST (/dev/sdX) is written in place
from its start, as qemu-img does, and must hold the whole output. A directory, FIFO,
socket or character device (such as /dev/null) is refused.

--partition N converts only partition N of SRC's partition table (MBR or GPT, as 'vhd
partitions' numbers them): the usual way to get a file-system image out of a disk image
('vhd convert --partition 2 --to raw disk.vhd root.ext4'). An extended partition, a
partition that runs past the end of the disk, or a number the table does not have is
refused, nothing written.";

/// `vhd convert`.
#[derive(clap::Args, Debug)]
#[command(
    about = "convert a raw disk or a VHD (a chain is flattened) into a new image",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd convert [--to raw|fixed|dynamic | -O raw|vpc [-o subformat=fixed|dynamic]] [--from auto|raw|vhd | -f FMT] [--azure] [--partition N] [-p] [-q] [--parent-root DIR] SRC DST"
)]
pub struct ConvertArgs {
    /// The disk to read: a VHD (of any type) or a raw disk image
    #[arg(value_name = "SRC")]
    source: PathBuf,
    /// The new file
    #[arg(value_name = "DST")]
    destination: PathBuf,
    /// raw, fixed or dynamic (default: dynamic)
    #[arg(long, value_name = "FORMAT")]
    to: Option<String>,
    /// qemu-img's target format: raw, or vpc (a dynamic VHD, or as -o subformat= says)
    #[arg(short = 'O', long = "target-format", value_name = "FMT", value_parser = ["raw", "vpc", "vhd"])]
    target_format: Option<String>,
    /// qemu-img's vpc options of DST: subformat=fixed|dynamic, force_size=on
    #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
    options: Vec<String>,
    /// How to read SRC: auto, raw or vhd (qemu-img's vpc; default: auto)
    #[arg(
        short = 'f',
        long = "from",
        visible_alias = "source-format",
        value_name = "FORMAT"
    )]
    from: Option<String>,
    /// A fixed VHD of a whole number of MiB, as Azure requires
    #[arg(long)]
    azure: bool,
    /// Block size of a dynamic DST (default 2M)
    #[arg(long, value_name = "SIZE")]
    block_size: Option<String>,
    /// Replace DST if it exists
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    partition: PartitionArgs,
    #[command(flatten)]
    progress: ProgressArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

/// The output format `--to`, or qemu-img's `-O` and `-o subformat=`, say (`None`: not said).
fn requested_format(args: &ConvertArgs) -> Result<Option<OutputFormat>, CliError> {
    let to = args
        .to
        .as_deref()
        .map(str::parse::<OutputFormat>)
        .transpose()
        .map_err(|e| unknown("output format", e))?;
    let subformat = vpc_options("convert", &args.options, false)?.subformat;
    let qemu = match (args.target_format.as_deref(), subformat) {
        (None, None) => None,
        (Some("raw"), Some(_)) => {
            return Err(CliError::usage(
                "convert",
                "-o subformat= is for -O vpc, not -O raw",
            ))
        }
        (Some("raw"), None) => Some(OutputFormat::Raw),
        (_, Some(DiskType::Fixed)) => Some(OutputFormat::Fixed),
        (_, _) => Some(OutputFormat::Dynamic),
    };
    match (to, qemu) {
        (Some(a), Some(b)) if a != b => Err(CliError::usage(
            "convert",
            "--to and -O/-o subformat= name different output formats",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn unknown(what: &str, e: UnknownName) -> CliError {
    CliError::usage(
        "convert",
        format!("unknown {what} '{}': {}", e.received, e.expectation()),
    )
}

pub fn run(args: &ConvertArgs, io: &mut Io) -> Result<i32, CliError> {
    let (source, destination) = (&args.source, &args.destination);
    let azure = args.azure;
    let to = match (requested_format(args)?, azure) {
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
    let source_format = args
        .from
        .as_deref()
        .map_or(Ok(SourceFormat::Auto), str::parse)
        .map_err(|e| unknown("source format", e))?;
    let block_size = match &args.block_size {
        None => DEFAULT_BLOCK_SIZE,
        Some(_) if to != OutputFormat::Dynamic => {
            return Err(CliError::usage(
                "convert",
                "--block-size is only for dynamic output",
            ))
        }
        Some(text) => block_size_argument("convert", text)?,
    };
    let options = ConvertOptions {
        source_format,
        azure,
        block_size,
        overwrite: args.overwrite,
        open: args.chain.open_options(),
        partition: args.partition.partition,
        ..ConvertOptions::new(to)
    };
    let (source, destination) = (source.as_path(), destination.as_path());
    let report = progress::run_with(io, &args.progress, |progress| {
        convert(source, destination, &options, progress)
    })?;
    // Shown even with --quiet, like errors: the source was not read as it looked.
    if let Some(warning) = &report.detection.warning {
        writeln!(io.stderr, "{PROGRAM}: warning: {}", safe(warning))?;
    }
    if !args.progress.quiet {
        writeln!(
            io.stdout,
            "Converted '{}' to '{}': virtual size {}, file size {}",
            safe(&source.display().to_string()),
            safe(&destination.display().to_string()),
            size_with_bytes(report.virtual_size),
            size_with_bytes(report.file_size)
        )?;
    }
    Ok(0)
}
