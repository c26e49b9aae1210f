//! Commands that change an existing image in place: compact, resize, commit, rebase,
//! snapshot. Each is one call into `vhd_core::ops`, which opens (and locks) the files.

use super::{size_argument, Target, COMMAND_HELP};
use crate::args::{BackingArgs, ChainArgs};
use crate::progress::{self, ProgressArgs};
use crate::size::{human_size, size_with_bytes};
use crate::terminal::safe;
use crate::{CliError, Io};
use std::path::{Path, PathBuf};
use vhd_core::ops::{self, ResizeOptions};
use vhd_core::VirtualDisk;

const COMPACT_DESCRIPTION: &str = "\
Rewrites the dynamic or differencing image FILE without the blocks it does not need
(all-zero blocks of a dynamic image, blocks with no sector present in a differencing
image), so that the file gets smaller. What the disk reads is unchanged.

The new file is written beside FILE (without a name where the file system allows, so that
a killed compact leaves nothing behind), with FILE's owner, group, permissions, extended
attributes (ACLs included) and modification time, made durable, and renamed over FILE.
Compacting another user's file without being root is refused before anything is written
(the owner could not be kept).";

/// `vhd compact`.
#[derive(clap::Args, Debug)]
#[command(
    about = "rewrite a dynamic or differencing image without its unneeded blocks",
    before_help = COMPACT_DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd compact [-p] [-q] [--parent-root DIR] FILE"
)]
pub struct CompactArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    progress: ProgressArgs,
}

const RESIZE_DESCRIPTION: &str = "\
Changes the virtual size of the image FILE to SIZE (64M, 10G), or by SIZE with a leading
+ or - (+1G), like 'qemu-img resize'. Shrinking an image that holds data past the new end
is refused unless --force (or qemu-img's --shrink) is given (that data is then lost).";

/// `vhd resize`.
#[derive(clap::Args, Debug)]
#[command(
    about = "change the virtual size of an image",
    before_help = RESIZE_DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd resize [--force | --shrink] [-p] [-q] [--parent-root DIR] FILE [+|-]SIZE"
)]
pub struct ResizeArgs {
    #[command(flatten)]
    target: Target,
    /// The new size, or +SIZE / -SIZE to grow or shrink by it
    #[arg(value_name = "SIZE", allow_hyphen_values = true)]
    size: String,
    /// Shrink even when data past the new end is lost (qemu-img's --shrink)
    #[arg(long, visible_alias = "shrink")]
    force: bool,
    #[command(flatten)]
    progress: ProgressArgs,
}

const COMMIT_DESCRIPTION: &str = "\
Writes the sectors the differencing image FILE holds into its parent image, then empties
FILE, like 'qemu-img commit'. FILE must be a differencing image.";

/// `vhd commit`.
#[derive(clap::Args, Debug)]
#[command(
    about = "merge a differencing image into its parent",
    before_help = COMMIT_DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd commit [-p] [-q] [--parent-root DIR] FILE"
)]
pub struct CommitArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    progress: ProgressArgs,
}

const REBASE_DESCRIPTION: &str = "\
Rewrites the parent name and parent locators of the differencing image FILE so that they
name NEW_PARENT: the same parent moved or copied elsewhere (its unique id must be the one
FILE records). A copied parent has a new time stamp: --ignore-parent-timestamp accepts
it. NEW_PARENT may also be given as qemu-img's -b NEW_PARENT.
NEW_PARENT is trusted; with --parent-root, the images below it (found through its
locators) must lie inside DIR.";

/// `vhd rebase`.
#[derive(clap::Args, Debug)]
#[command(
    about = "point a differencing image at its parent's new location",
    before_help = REBASE_DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd rebase [--ignore-parent-timestamp] [--parent-root DIR] FILE NEW_PARENT (or -b NEW_PARENT FILE)"
)]
pub struct RebaseArgs {
    #[command(flatten)]
    target: Target,
    /// The parent's new location (or -b NEW_PARENT)
    #[arg(
        value_name = "NEW_PARENT",
        required_unless_present = "backing",
        conflicts_with = "backing"
    )]
    new_parent: Option<PathBuf>,
    #[command(flatten)]
    backing: BackingArgs,
}

const SNAPSHOT_DESCRIPTION: &str = "\
Creates NEW_CHILD, a new differencing image whose parent is the image FILE: writes go
to NEW_CHILD from then on, and FILE keeps the disk as it was. FILE is trusted; with
--parent-root, the images below it (found through its locators) must lie inside DIR.";

/// `vhd snapshot`.
#[derive(clap::Args, Debug)]
#[command(
    about = "create a differencing image over an image",
    before_help = SNAPSHOT_DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd snapshot [--parent-root DIR] FILE NEW_CHILD"
)]
pub struct SnapshotArgs {
    #[command(flatten)]
    target: Target,
    /// The new differencing image
    #[arg(value_name = "NEW_CHILD")]
    child: PathBuf,
}

pub fn compact(args: &CompactArgs, io: &mut Io) -> Result<i32, CliError> {
    let Target { file, chain, .. } = &args.target;
    let report = progress::run_with(io, &args.progress, |progress| {
        ops::compact(file, &chain.open_options(), progress)
    })?;
    if !args.progress.quiet {
        writeln!(
            io.stdout,
            "Image compacted: {} blocks to {}, file size {} to {}.",
            report.blocks_before,
            report.blocks_after,
            human_size(report.file_size_before),
            size_with_bytes(report.file_size_after)
        )?;
    }
    Ok(0)
}

pub fn resize(args: &ResizeArgs, io: &mut Io) -> Result<i32, CliError> {
    let Target { file, chain, .. } = &args.target;
    let new_size = new_size(chain, file, &args.size)?;
    let options = ResizeOptions {
        force: args.force,
        open: chain.open_options(),
    };
    let report = progress::run_with(io, &args.progress, |progress| {
        ops::resize(file, new_size, &options, progress)
    })?;
    if !args.progress.quiet {
        writeln!(
            io.stdout,
            "Image resized from {} to {}.",
            size_with_bytes(report.old_size),
            size_with_bytes(report.new_size)
        )?;
    }
    Ok(0)
}

/// SIZE, or the current size changed by `+SIZE` / `-SIZE`.
fn new_size(chain: &ChainArgs, file: &Path, text: &str) -> Result<u64, CliError> {
    let relative = |sign: char, rest: &str| -> Result<u64, CliError> {
        let delta = size_argument("resize", rest)?;
        // Read-only, and closed again before the resize opens the file for writing.
        let current = chain.open_read_only(file)?.size();
        let new = match sign {
            '+' => current.checked_add(delta),
            _ => current.checked_sub(delta),
        };
        new.ok_or_else(|| {
            CliError::usage(
                "resize",
                format!("{text} from the current size {current} is out of range"),
            )
        })
    };
    match text.chars().next() {
        Some(sign @ ('+' | '-')) => relative(sign, &text[1..]),
        _ => size_argument("resize", text),
    }
}

pub fn commit(args: &CommitArgs, io: &mut Io) -> Result<i32, CliError> {
    let Target { file, chain, .. } = &args.target;
    let report = progress::run_with(io, &args.progress, |progress| {
        ops::commit(file, &chain.open_options(), progress)
    })?;
    if !args.progress.quiet {
        writeln!(
            io.stdout,
            "Image committed: {} written into {}.",
            size_with_bytes(report.bytes_committed),
            safe(&report.parent.display().to_string())
        )?;
    }
    Ok(0)
}

pub fn rebase(args: &RebaseArgs, io: &mut Io) -> Result<i32, CliError> {
    let Target { file, chain, .. } = &args.target;
    let new_parent = args
        .new_parent
        .as_ref()
        .or(args.backing.backing.as_ref())
        .expect("clap requires NEW_PARENT or -b");
    ops::rebase(file, new_parent, &chain.open_options())?;
    writeln!(
        io.stdout,
        "Image rebased: the parent of '{}' is now '{}'.",
        safe(&file.display().to_string()),
        safe(&new_parent.display().to_string())
    )?;
    Ok(0)
}

pub fn snapshot(args: &SnapshotArgs, io: &mut Io) -> Result<i32, CliError> {
    let Target { file, chain, .. } = &args.target;
    let child = ops::snapshot(file, &args.child, &chain.open_options())?;
    writeln!(
        io.stdout,
        "Created '{}', a differencing image over '{}' ({}).",
        safe(&args.child.display().to_string()),
        safe(&file.display().to_string()),
        size_with_bytes(child.size())
    )?;
    Ok(0)
}
