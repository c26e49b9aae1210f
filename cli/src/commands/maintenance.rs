//! Commands that change an existing image in place: compact, resize, commit, rebase,
//! snapshot. Each is one call into `vhd_core::ops`, which opens (and locks) the files.

use super::{
    flag, open_options, open_read_only, size_argument, Command, ALLOW_REMOTE_PARENTS, PARENT_ROOT,
};
use crate::args::Parsed;
use crate::progress::{self, PROGRESS, QUIET};
use crate::size::{human_size, size_with_bytes};
use crate::terminal::safe;
use crate::{CliError, Io};
use std::path::Path;
use vhd_core::ops::{self, ResizeOptions};
use vhd_core::{OpenOptions, VirtualDisk};

pub const COMPACT: Command = Command {
    name: "compact",
    synopsis: "[--parent-root DIR] FILE",
    summary: "rewrite a dynamic or differencing image without its unneeded blocks",
    description: "\
Rewrites the dynamic or differencing image FILE without the blocks it does not need
(all-zero blocks of a dynamic image, blocks with no sector present in a differencing
image), so that the file gets smaller. What the disk reads is unchanged.

The new file is written beside FILE (without a name where the file system allows, so that
a killed compact leaves nothing behind), with FILE's owner, group, permissions, extended
attributes (ACLs included) and modification time, made durable, and renamed over FILE.
Compacting another user's file without being root is refused before anything is written
(the owner could not be kept).",
    options: &[PARENT_ROOT, ALLOW_REMOTE_PARENTS, PROGRESS, QUIET],
    run: compact,
};

pub const RESIZE: Command = Command {
    name: "resize",
    synopsis: "[--force] [--parent-root DIR] FILE SIZE",
    summary: "change the virtual size of an image",
    description: "\
Changes the virtual size of the image FILE to SIZE (64M, 10G), or by SIZE with a leading
+ or - (+1G), like 'qemu-img resize'. Shrinking an image that holds data past the new end
is refused unless --force is given (that data is then lost).",
    options: &[
        flag("force", "shrink even when data past the new end is lost"),
        PARENT_ROOT,
        ALLOW_REMOTE_PARENTS,
        PROGRESS,
        QUIET,
    ],
    run: resize,
};

pub const COMMIT: Command = Command {
    name: "commit",
    synopsis: "[--parent-root DIR] FILE",
    summary: "merge a differencing image into its parent",
    description: "\
Writes the sectors the differencing image FILE holds into its parent image, then empties
FILE, like 'qemu-img commit'. FILE must be a differencing image.",
    options: &[PARENT_ROOT, ALLOW_REMOTE_PARENTS, PROGRESS, QUIET],
    run: commit,
};

pub const REBASE: Command = Command {
    name: "rebase",
    synopsis: "[--ignore-timestamp] [--parent-root DIR] FILE NEW_PARENT",
    summary: "point a differencing image at its parent's new location",
    description: "\
Rewrites the parent name and parent locators of the differencing image FILE so that they
name NEW_PARENT: the same parent moved or copied elsewhere (its unique id must be the one
FILE records). A copied parent has a new time stamp: --ignore-timestamp accepts it.
NEW_PARENT is trusted; with --parent-root, the images below it (found through its
locators) must lie inside DIR.",
    options: &[
        flag(
            "ignore-timestamp",
            "accept a parent whose time stamp changed (a copy)",
        ),
        PARENT_ROOT,
        ALLOW_REMOTE_PARENTS,
    ],
    run: rebase,
};

pub const SNAPSHOT: Command = Command {
    name: "snapshot",
    synopsis: "[--parent-root DIR] FILE NEW_CHILD",
    summary: "create a differencing image over an image",
    description: "\
Creates NEW_CHILD, a new differencing image whose parent is the image FILE: writes go
to NEW_CHILD from then on, and FILE keeps the disk as it was. FILE is trusted; with
--parent-root, the images below it (found through its locators) must lie inside DIR.",
    options: &[PARENT_ROOT, ALLOW_REMOTE_PARENTS],
    run: snapshot,
};

fn compact(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let [file] = parsed.positionals("compact", &["FILE"], &[])? else {
        unreachable!("exactly one positional was checked")
    };
    let show = progress::wanted(parsed, io);
    let report = progress::run_with(io, show, |progress| {
        ops::compact(Path::new(file), &open_options(parsed), progress)
    })?;
    if !parsed.flag("quiet") {
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

fn resize(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let positionals = parsed.positionals("resize", &["FILE", "SIZE"], &[])?;
    let (file, size_text) = (&positionals[0], &positionals[1]);
    let new_size = new_size(parsed, file, size_text)?;
    let options = ResizeOptions {
        force: parsed.flag("force"),
        open: open_options(parsed),
    };
    let show = progress::wanted(parsed, io);
    let report = progress::run_with(io, show, |progress| {
        ops::resize(Path::new(file), new_size, &options, progress)
    })?;
    if !parsed.flag("quiet") {
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
fn new_size(parsed: &Parsed, file: &str, text: &str) -> Result<u64, CliError> {
    let relative = |sign: char, rest: &str| -> Result<u64, CliError> {
        let delta = size_argument("resize", rest)?;
        // Read-only, and closed again before the resize opens the file for writing.
        let current = open_read_only(parsed, file)?.size();
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

fn commit(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let [file] = parsed.positionals("commit", &["FILE"], &[])? else {
        unreachable!("exactly one positional was checked")
    };
    let show = progress::wanted(parsed, io);
    let report = progress::run_with(io, show, |progress| {
        ops::commit(Path::new(file), &open_options(parsed), progress)
    })?;
    if !parsed.flag("quiet") {
        writeln!(
            io.stdout,
            "Image committed: {} written into {}.",
            size_with_bytes(report.bytes_committed),
            safe(&report.parent.display().to_string())
        )?;
    }
    Ok(0)
}

fn rebase(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let positionals = parsed.positionals("rebase", &["FILE", "NEW_PARENT"], &[])?;
    let options = OpenOptions {
        ignore_parent_timestamp: parsed.flag("ignore-timestamp"),
        ..open_options(parsed)
    };
    ops::rebase(
        Path::new(&positionals[0]),
        Path::new(&positionals[1]),
        &options,
    )?;
    writeln!(
        io.stdout,
        "Image rebased: the parent of '{}' is now '{}'.",
        safe(&positionals[0]),
        safe(&positionals[1])
    )?;
    Ok(0)
}

fn snapshot(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let positionals = parsed.positionals("snapshot", &["FILE", "NEW_CHILD"], &[])?;
    let child = ops::snapshot(
        Path::new(&positionals[0]),
        Path::new(&positionals[1]),
        &open_options(parsed),
    )?;
    writeln!(
        io.stdout,
        "Created '{}', a differencing image over '{}' ({}).",
        safe(&positionals[1]),
        safe(&positionals[0]),
        size_with_bytes(child.size())
    )?;
    Ok(0)
}
