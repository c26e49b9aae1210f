//! Pointing a differencing image at a parent that moved or was renamed.
//!
//! Only the child's dynamic header (parent name, locator entries, perhaps the parent time
//! stamp) and new locator data change; no data moves. The new locator data goes into new
//! space at the end of the file, never over the old data, so that the old header stays
//! valid until the new one replaces it:
//!
//! 1. the footer is moved past the space the new locator data needs, fsync (the file ends
//!    with a valid footer at every instant, even after a power cut), then the data is
//!    written where the footer was, fsync;
//! 2. the dynamic header is rewritten in one write, fsync.
//!
//! A crash before step 2 leaves the old header, pointing at the old parent, and the new
//! data as unused space (`check` reports it as unused, not as damage). The old locator
//! data is left in place, unused. New blocks are later allocated past the new locator
//! data (an image's used space includes its locators' data space).

use super::commit::{open_locked, sync, write_header};
use crate::dynamic_header::PARENT_LOCATOR_COUNT;
use crate::error::{Error, Result};
use crate::footer::{DiskType, FOOTER_SIZE};
use crate::parent_locator::ParentLocator;
use crate::storage::Storage;
use crate::{FooterSource, Image, OpenOptions, ParentPath};
use std::path::{Path, PathBuf};

/// Rewrites the parent locators and parent name of the differencing image at `path` so
/// that they name `new_parent`, after checking that it is the child's parent.
///
/// The child is opened read-write and locked, over `new_parent` (the old parent need not
/// exist any more), with `options` as [`Image::open`] takes them: `new_parent` is named by
/// the caller, so it is trusted, while the images below it, found through its locators,
/// must lie in [`OpenOptions::parent_root`] when one is set; `lock` and `ignore_checksums`
/// apply as at open. `new_parent` must be a VHD carrying the unique id the child records
/// ([`Error::ParentMismatch`] otherwise), and, unless
/// [`OpenOptions::ignore_parent_timestamp`], its time stamp must be acceptable as at open
/// ([`Error::ParentModified`]); with it, a new parent whose time stamp differs (a copy) is
/// accepted and the child records the new parent's modification time, so that it opens
/// with default options afterwards. Its own chain must open. Then the header's parent
/// unicode name becomes `new_parent`'s file name, and the locators, exactly as
/// [`crate::create`] writes them: `W2ku` absolute path, `W2ru` path relative to the
/// child's folder (when they share a root), `MacX` file URL. Every old locator entry is
/// replaced. See the module documentation for the write order (crash safe).
///
/// Refused with [`Error::InvalidArgument`]: `options.read_only` (the child is written),
/// and `options.parents` (the new parent is `new_parent`; the levels below it are found
/// through its locators). Refused: a child that is not a differencing image
/// ([`Error::WrongDiskType`]), one that cannot be written ([`Error::ReadOnly`]) or is open
/// elsewhere ([`Error::Locked`]), a parent name longer than the header's 256 UTF-16 units
/// ([`Error::InvalidArgument`]). `options.expected_type` is ignored.
pub fn rebase(path: &Path, new_parent: &Path, options: &OpenOptions) -> Result<()> {
    rebase_unnamed(path, new_parent, options).map_err(|e| e.in_file(path))
}

/// [`rebase`], whose I/O errors may not name the file yet.
fn rebase_unnamed(path: &Path, new_parent: &Path, options: &OpenOptions) -> Result<()> {
    if options.read_only {
        return Err(Error::InvalidArgument {
            name: "options.read_only",
            reason: "rebase writes the child: open it read-write".into(),
        });
    }
    // The child as its own new parent, however spelled: say so, rather than that it is
    // "not its parent".
    if let Some(child) = crate::files::FileId::of_path(path) {
        if crate::files::FileId::of_path(new_parent).as_ref() == Some(&child) {
            return Err(Error::OutputIsInput {
                output: path.to_path_buf(),
                input: new_parent.to_path_buf(),
                what: "an image cannot be its own parent",
            });
        }
    }
    // `rebase_through` opens the child locked, with the usual options; this second handle
    // takes no lock (locks keep other opens out, they do not stop writes through a handle).
    let file = open_locked(path, false)?;
    rebase_through(&file, path, new_parent, options)
}

/// [`rebase`], writing the child through `file`, which must hold what the file at `path`
/// holds (the child is opened, and locked, through `path`): the injection point of the
/// crash tests, which hand in a storage that dies or loses power after any write. Not a
/// stable interface.
#[doc(hidden)]
pub fn rebase_through(
    file: &dyn Storage,
    path: &Path,
    new_parent: &Path,
    options: &OpenOptions,
) -> Result<()> {
    if !options.parents.is_empty() {
        return Err(Error::InvalidArgument {
            name: "options.parents",
            reason: format!(
                "rebase names the parent itself ({}); the images below it are found through its locators",
                new_parent.display()
            ),
        });
    }
    // Opening the child over the new parent checks the unique id and time stamp exactly as
    // every open does, and keeps the child locked (and the new parent's chain shared
    // locked) until the end.
    let child = Image::open(
        path,
        &OpenOptions {
            expected_type: Some(DiskType::Differencing),
            parents: vec![ParentPath::Vhd(new_parent.to_path_buf())],
            ..options.clone()
        },
    )?;
    if let Some(reason) = child.read_only_reason() {
        return Err(Error::ReadOnly {
            path: Some(path.to_path_buf()),
            reason: reason.to_string(),
        });
    }
    if child.footer_source() != FooterSource::End {
        return Err(Error::Unsupported(format!(
            "{}: the footer is not in the last 512 bytes of the file; repair the image first",
            path.display()
        )));
    }
    let parent_abs = canonical(new_parent, "new parent")?;
    let child_folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => canonical(folder, "folder of")?,
        _ => canonical(Path::new("."), "current folder")?,
    };
    let mut header = child
        .header()
        .expect("differencing images have one")
        .clone();
    let name = parent_abs.file_name().unwrap_or_default().to_string_lossy();
    header.set_parent_name(&name)?;
    if options.ignore_parent_timestamp {
        header.parent_timestamp = crate::files::modification_timestamp(&parent_abs)?;
    }
    let payloads = crate::create::parent_locator_payloads(&child_folder, &parent_abs);

    // `child` holds the exclusive lock until the end.
    let footer_offset = file
        .file_size()
        .map_err(|e| Error::io_at(path, "fstat", "reading the size", e))?
        - FOOTER_SIZE as u64;
    let footer = child.footer().to_bytes();
    let entries = append_locator_data(file, path, footer_offset, &footer, &payloads)?;
    header.parent_locators = entries;
    write_header(file, path, child.footer().data_offset, &mut header)?;
    drop(child);
    Ok(())
}

/// Writes each payload, padded to whole sectors, where the footer at `footer_offset` is,
/// after moving the footer past them; fsyncs. Returns the header's new locator entries.
fn append_locator_data(
    file: &dyn Storage,
    path: &Path,
    footer_offset: u64,
    footer: &[u8; FOOTER_SIZE],
    payloads: &[(u32, Vec<u8>)],
) -> Result<[ParentLocator; PARENT_LOCATOR_COUNT]> {
    let start = footer_offset.next_multiple_of(512);
    let mut entries = [ParentLocator::default(); PARENT_LOCATOR_COUNT];
    let mut data = Vec::new();
    for (entry, (code, payload)) in entries.iter_mut().zip(payloads) {
        let space = payload.len().next_multiple_of(512);
        *entry = ParentLocator {
            platform_code: *code,
            // In bytes, as Windows and `create` write it.
            platform_data_space: space as u32,
            platform_data_length: payload.len() as u32,
            reserved: 0,
            platform_data_offset: start + data.len() as u64,
        };
        data.extend_from_slice(payload);
        data.resize(data.len() + space - payload.len(), 0);
    }
    let io = |what: &str, e| Error::io(format!("writing {what} of {}", path.display()), e);
    // The footer first, made durable before the data overwrites the old one: the file
    // never ends without a valid footer, even after a power cut (which may keep a later
    // write and lose an earlier one of the same unsynced batch).
    file.write_all_at(footer, start + data.len() as u64)
        .map_err(|e| io("the moved footer", e))?;
    sync(file, path)?;
    file.write_all_at(&data, start)
        .map_err(|e| io("parent locator data", e))?;
    sync(file, path)?;
    Ok(entries)
}

fn canonical(path: &Path, what: &str) -> Result<PathBuf> {
    path.canonicalize()
        .map_err(|e| Error::io(format!("resolving the {what} {}", path.display()), e))
}
