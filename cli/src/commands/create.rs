//! `vhd create`: new fixed, dynamic and differencing images.

use super::{block_size_argument, size_argument, COMMAND_HELP};
use crate::args::{vpc_options, BackingArgs, ChainArgs, FormatArgs};
use crate::{CliError, Io};
use std::path::PathBuf;
use vhd_core::{create, CreateOptions, DiskType, VirtualDisk};

const DESCRIPTION: &str = "\
Creates the image FILE with a virtual size of SIZE bytes (with a unit: 64M, 10G). The size
is used exactly (never rounded to a CHS geometry); it must be a multiple of 512.

The type is dynamic unless --type (or qemu-img's -o subformat=fixed) says otherwise, or
--parent (qemu-img's -b) is given: then it is a differencing image over that image, of the
parent's size unless SIZE is given. The parent named by --parent is trusted (a second
--parent names its parent, and so on); with --parent-root, the images below it (found
through its locators) must lie inside DIR. An existing FILE is refused unless
--overwrite is given; with it, the new image is written beside FILE, made durable, and
renamed over it (a crash leaves the old file or the new image, whole), keeping FILE's owner,
group, permissions and extended attributes. FILE is a regular file: a directory, FIFO,
socket or device is refused (write onto a block device with convert).";

/// `vhd create`.
#[derive(clap::Args, Debug)]
#[command(
    about = "create a new image",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd create [--type fixed|dynamic|differencing | -o subformat=fixed|dynamic] [--block-size SIZE] [--parent FILE | -b FILE] [--parent-root DIR] [--overwrite] FILE [SIZE]"
)]
pub struct CreateArgs {
    /// The new image
    #[arg(value_name = "FILE")]
    file: String,
    /// Its virtual size (the parent's for a differencing image, if not given)
    #[arg(value_name = "SIZE", allow_hyphen_values = true)]
    size: Option<String>,
    /// fixed, dynamic or differencing (default: dynamic; differencing with --parent)
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    disk_type: Option<String>,
    /// qemu-img's vpc options: subformat=fixed|dynamic, force_size=on, size=SIZE
    #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
    options: Vec<String>,
    /// Block size of a dynamic image (default 2M)
    #[arg(long, value_name = "SIZE")]
    block_size: Option<String>,
    #[command(flatten)]
    backing: BackingArgs,
    /// Replace FILE if it exists
    #[arg(long)]
    overwrite: bool,
    /// Print nothing on success
    #[arg(short = 'q', long)]
    quiet: bool,
    #[command(flatten)]
    format: FormatArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

pub fn run(args: &CreateArgs, io: &mut Io) -> Result<i32, CliError> {
    let file = &args.file;
    let vpc = vpc_options("create", &args.options, true)?;
    let size_text = match (&args.size, &vpc.size) {
        (Some(_), Some(_)) => {
            return Err(CliError::usage(
                "create",
                "the size is given twice (SIZE and -o size=)",
            ))
        }
        (given, from_options) => given.as_ref().or(from_options.as_ref()),
    };
    let size = size_text
        .map(|text| size_argument("create", text))
        .transpose()?;
    // The first parent named (-b or --parent) is the new image's; the others its chain's.
    let parents: Vec<PathBuf> = args
        .backing
        .backing
        .iter()
        .chain(&args.chain.parents)
        .cloned()
        .collect();
    let parent = parents.first().cloned();
    let requested = args
        .disk_type
        .as_deref()
        .map(str::parse::<DiskType>)
        .transpose()
        .map_err(|e| {
            CliError::usage(
                "create",
                format!("unknown type '{}': {}", e.received, e.expectation()),
            )
        })?;
    let requested = match (requested, vpc.subformat) {
        (Some(a), Some(b)) if a != b => {
            return Err(CliError::usage(
                "create",
                format!("--type {} and -o subformat={} disagree", a.name(), b.name()),
            ))
        }
        (a, b) => a.or(b),
    };
    let disk_type = match (requested, &parent) {
        (None, None) => DiskType::Dynamic,
        (None, Some(_)) | (Some(DiskType::Differencing), Some(_)) => DiskType::Differencing,
        (Some(DiskType::Differencing), None) => {
            return Err(CliError::usage(
                "create",
                "a differencing image needs --parent FILE (or -b FILE)",
            ))
        }
        (Some(DiskType::Fixed | DiskType::Dynamic), Some(_)) => {
            return Err(CliError::usage(
                "create",
                "--parent is only for differencing images",
            ))
        }
        (Some(disk_type), None) => disk_type,
    };
    let mut options = match (disk_type, size) {
        (DiskType::Differencing, size) => CreateOptions {
            size: size.unwrap_or(0),
            ..CreateOptions::differencing(parent.expect("differencing images have a parent"))
        },
        (_, Some(size)) => CreateOptions::new(disk_type, size),
        (_, None) => {
            return Err(CliError::usage(
                "create",
                format!(
                    "missing argument SIZE (a {} image needs a size)",
                    disk_type.name()
                ),
            ))
        }
    };
    if let Some(text) = &args.block_size {
        if disk_type == DiskType::Fixed {
            return Err(CliError::usage(
                "create",
                "--block-size is not for fixed images",
            ));
        }
        options.block_size = block_size_argument("create", text)?;
    }
    options.overwrite = args.overwrite;
    options.parent_open = args
        .chain
        .open_options_with(parents.get(1..).unwrap_or(&[]));
    let image = create(file, &options)?;
    if args.quiet {
        return Ok(0);
    }
    let mut line = format!(
        "Formatting '{file}', fmt=vpc subformat={} size={}",
        disk_type.name(),
        image.size()
    );
    if let Some(header) = image.header() {
        line += &format!(" block_size={}", header.block_size);
    }
    if let Some(parent) = image.parent() {
        line += &format!(" backing_file={}", parent.path().display());
    }
    writeln!(io.stdout, "{}", crate::terminal::safe(&line))?;
    Ok(0)
}
