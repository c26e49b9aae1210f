//! `vhd create`: new fixed, dynamic and differencing images.

use super::{
    flag, open_options, size_argument, valued, Command, ALLOW_REMOTE_PARENTS, PARENT_ROOT,
};
use crate::args::Parsed;
use crate::{CliError, Io};
use std::path::PathBuf;
use vhd_core::{create, CreateOptions, DiskType, VirtualDisk};

pub const COMMAND: Command = Command {
    name: "create",
    synopsis: "[--type fixed|dynamic|differencing] [--block-size SIZE] [--parent FILE] [--parent-root DIR] FILE [SIZE]",
    summary: "create a new image",
    description: "\
Creates the image FILE with a virtual size of SIZE bytes (with a unit: 64M, 10G). The size
is used exactly (never rounded to a CHS geometry); it must be a multiple of 512.

The type is dynamic unless --type says otherwise, or --parent is given: then it is a
differencing image over the image FILE of --parent, of the parent's size unless SIZE is
given. The parent named by --parent is trusted; with --parent-root, the images below it
(found through its locators) must lie inside DIR. An existing FILE is refused unless
--overwrite is given; with it, the new image is written beside FILE, made durable, and
renamed over it (a crash leaves the old file or the new image, whole), keeping FILE's owner,
group, permissions and extended attributes. FILE is a regular file: a directory, FIFO,
socket or device is refused (write onto a block device with convert).",
    options: &[
        valued(
            "type",
            "TYPE",
            "fixed, dynamic or differencing (default: dynamic)",
        ),
        valued(
            "block-size",
            "SIZE",
            "block size of a dynamic image (default 2M)",
        ),
        valued("parent", "FILE", "the parent of a differencing image"),
        PARENT_ROOT,
        ALLOW_REMOTE_PARENTS,
        flag("overwrite", "replace FILE if it exists"),
    ],
    run,
};

fn run(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let positionals = parsed.positionals("create", &["FILE"], &["SIZE"])?;
    let file = &positionals[0];
    let size = match positionals.get(1) {
        Some(text) => Some(size_argument("create", text)?),
        None => None,
    };
    let parent = parsed.value("parent").map(PathBuf::from);
    let requested = parsed
        .value("type")
        .map(str::parse::<DiskType>)
        .transpose()
        .map_err(|e| {
            CliError::usage(
                "create",
                format!("unknown type '{}': {}", e.received, e.expectation()),
            )
        })?;
    let disk_type = match (requested, &parent) {
        (None, None) => DiskType::Dynamic,
        (None, Some(_)) | (Some(DiskType::Differencing), Some(_)) => DiskType::Differencing,
        (Some(DiskType::Differencing), None) => {
            return Err(CliError::usage(
                "create",
                "a differencing image needs --parent FILE",
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
    if let Some(text) = parsed.value("block-size") {
        if disk_type == DiskType::Fixed {
            return Err(CliError::usage(
                "create",
                "--block-size is not for fixed images",
            ));
        }
        let block_size = size_argument("create", text)?;
        options.block_size = u32::try_from(block_size)
            .map_err(|_| CliError::usage("create", format!("block size {text} is too large")))?;
    }
    options.overwrite = parsed.flag("overwrite");
    options.parent_open = open_options(parsed);
    let image = create(file, &options)?;
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
