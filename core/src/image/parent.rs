//! Finding and opening the parent of a differencing image.
//!
//! The child names its parent several ways: parent locators (`W2ru` relative and `W2ku`
//! absolute Windows paths in UTF-16LE, their deprecated ASCII forms `Wi2r`/`Wi2k`, and `MacX`
//! file URLs) and the header's parent unicode name. They are tried in that order, relative
//! first, as Windows does, so that a chain moved to another folder as a whole still opens.
//! Windows paths are accepted on every system: a relative one by its components, an absolute
//! one (`C:\dir\p.vhd`) as its file name in the child's folder. Each candidate must carry the
//! unique id the child records; the caller may also name the parents explicitly.

use super::{read_exact, Image, OpenOptions, VirtualDisk};
use crate::dynamic_header::DynamicHeader;
use crate::error::{Error, Result};
use crate::footer::{format_unique_id, vhd_timestamp};
use crate::parent_locator::{platform, ParentLocator};
use crate::storage::Storage;
use std::path::{Path, PathBuf};

/// Deepest parent chain that is opened; deeper ones are taken as damaged.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// Largest parent locator payload read (a path of 32 Ki UTF-16 units).
pub(crate) const MAX_LOCATOR_BYTES: u32 = 64 * 1024;

/// A parent named by the caller instead of by the child's locators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentPath {
    /// A VHD image; its unique id must still be the one the child records.
    Vhd(PathBuf),
    /// A raw disk file, the base of the chain (it has no unique id to check).
    Raw(PathBuf),
}

/// The image a differencing image reads its unwritten sectors from.
#[derive(Debug)]
pub enum Parent {
    /// A fixed, dynamic or differencing image (opened read-only).
    Image(Box<Image>),
    /// A raw disk file named by the caller.
    Raw(super::raw::RawDisk),
}

impl Parent {
    /// The parent's path.
    pub fn path(&self) -> &Path {
        match self {
            Parent::Image(image) => image.path(),
            Parent::Raw(raw) => raw.path(),
        }
    }

    /// The parent as a virtual disk.
    pub fn disk(&self) -> &dyn VirtualDisk {
        match self {
            Parent::Image(image) => image.as_ref(),
            Parent::Raw(raw) => raw,
        }
    }
}

/// An image already in the chain being opened: for loop detection.
#[derive(Debug, Clone)]
pub(crate) struct ChainMember {
    pub path: PathBuf,
    pub unique_id: [u8; 16],
}

/// Opens the parent of the differencing image at `child`, whose header is `header`.
/// `chain` holds the child and every image below which it was opened.
pub(crate) fn open_parent(
    child: &Path,
    header: &DynamicHeader,
    file: &dyn Storage,
    options: &OpenOptions,
    chain: &[ChainMember],
) -> Result<Parent> {
    if chain.len() > MAX_CHAIN_DEPTH {
        return Err(Error::ChainTooDeep {
            path: child.to_path_buf(),
            limit: MAX_CHAIN_DEPTH,
        });
    }
    // The parent's own parents: whatever the caller named beyond this level.
    let parent_options = OpenOptions {
        read_only: true,
        expected_type: None,
        parents: options.parents.iter().skip(1).cloned().collect(),
        ..options.clone()
    };
    let candidates = match options.parents.first() {
        Some(ParentPath::Raw(path)) => {
            if options.parents.len() > 1 {
                return Err(Error::InvalidArgument {
                    name: "parents",
                    reason: format!(
                        "{} is a raw base: it has no parent, yet {} more were named",
                        path.display(),
                        options.parents.len() - 1
                    ),
                });
            }
            return Ok(Parent::Raw(super::raw::RawDisk::open_with_lock(
                path,
                options.lock,
            )?));
        }
        // Named by the caller: trusted, wherever it is.
        Some(ParentPath::Vhd(path)) => vec![path.clone()],
        None => candidates(child, header, file),
    };
    // Candidates the child names must lie inside the parent root, when there is one.
    let root = match (&options.parent_root, options.parents.first()) {
        (Some(root), None) => Some(root.canonicalize().map_err(|e| Error::InvalidArgument {
            name: "parent root",
            reason: format!("{}: {e}", root.display()),
        })?),
        _ => None,
    };
    // Every candidate that exists is tried; the first that opens with the right unique id
    // and time stamp is the parent. Otherwise the most telling problem is reported.
    let mut problems = Vec::new();
    let mut outside_root = None;
    for candidate in &candidates {
        let candidate = match &root {
            None if candidate.is_file() => candidate.clone(),
            None => continue,
            // Resolved first, and opened by its resolved path, so that no symbolic link or
            // `..` leads out of the root.
            Some(root) => match candidate.canonicalize() {
                Ok(resolved) if resolved.is_file() && resolved.starts_with(root) => resolved,
                Ok(resolved) if resolved.is_file() => {
                    outside_root.get_or_insert(resolved);
                    continue;
                }
                _ => continue,
            },
        };
        check_no_loop(&candidate, chain)?;
        match try_parent(child, header, &candidate, &parent_options, options, chain) {
            Ok(image) => return Ok(Parent::Image(Box::new(image))),
            // A loop or an endless chain is the same whichever way it is reached.
            Err(e @ (Error::ParentLoop { .. } | Error::ChainTooDeep { .. })) => return Err(e),
            Err(e) => problems.push(e),
        }
    }
    // A candidate that failed for a reason of its own says most; then one outside the root
    // (the parent is probably there); then one that is another image.
    let telling = problems
        .iter()
        .position(|e| !matches!(e, Error::ParentMismatch { .. }));
    if let Some(index) = telling {
        return Err(problems.swap_remove(index));
    }
    if let (Some(parent), Some(root)) = (outside_root, root) {
        return Err(Error::ParentOutsideRoot {
            child: child.to_path_buf(),
            parent,
            root,
        });
    }
    match problems.is_empty() {
        false => Err(problems.swap_remove(0)),
        true => Err(Error::ParentNotFound {
            child: child.to_path_buf(),
            parent_name: header.parent_name(),
            tried: candidates,
        }),
    }
}

/// Opens `candidate` (with its own chain) and checks that it is the parent `header` names.
fn try_parent(
    child: &Path,
    header: &DynamicHeader,
    candidate: &Path,
    parent_options: &OpenOptions,
    options: &OpenOptions,
    chain: &[ChainMember],
) -> Result<Image> {
    let image = super::open_in_chain(candidate, parent_options, chain).map_err(|e| match e {
        e @ (Error::ParentLoop { .. } | Error::ChainTooDeep { .. }) => e,
        e => Error::Parent {
            child: child.to_path_buf(),
            parent: candidate.to_path_buf(),
            source: Box::new(e),
        },
    })?;
    let expected_id = header.parent_unique_id;
    let found_id = image.footer().unique_id;
    if found_id != expected_id {
        return Err(Error::ParentMismatch {
            child: child.to_path_buf(),
            parent: candidate.to_path_buf(),
            expected: format_unique_id(&expected_id),
            found: format_unique_id(&found_id),
        });
    }
    if !options.ignore_parent_timestamp {
        check_timestamp(child, header, candidate, &image)?;
    }
    Ok(image)
}

/// The recorded parent time stamp must be 0 (not recorded, as diskpart writes), the parent
/// file's modification time (what the specification, VirtualBox, blktap and DiscUtils
/// record), or the parent footer's time stamp (what some other writers record).
fn check_timestamp(
    child: &Path,
    header: &DynamicHeader,
    parent_path: &Path,
    parent: &Image,
) -> Result<()> {
    let expected = header.parent_timestamp;
    let modified = std::fs::metadata(parent_path)
        .and_then(|m| m.modified())
        .map(vhd_timestamp)
        .map_err(|e| {
            Error::io(
                format!("reading the time stamp of {}", parent_path.display()),
                e,
            )
        })?;
    if expected == 0 || expected == modified || expected == parent.footer().timestamp {
        return Ok(());
    }
    Err(Error::ParentModified {
        child: child.to_path_buf(),
        parent: parent_path.to_path_buf(),
        expected,
        found: modified,
    })
}

fn check_no_loop(candidate: &Path, chain: &[ChainMember]) -> Result<()> {
    let canonical = candidate
        .canonicalize()
        .unwrap_or_else(|_| candidate.to_path_buf());
    if chain.iter().any(|member| member.path == canonical) {
        let mut paths: Vec<PathBuf> = chain.iter().map(|m| m.path.clone()).collect();
        paths.push(canonical);
        return Err(Error::ParentLoop { chain: paths });
    }
    Ok(())
}

/// Every place the child's locators and header name point at, in the order to try them,
/// without repetitions.
pub(crate) fn candidates(child: &Path, header: &DynamicHeader, file: &dyn Storage) -> Vec<PathBuf> {
    let folder = child.parent().unwrap_or(Path::new("."));
    let mut texts: Vec<(u32, String)> = header
        .parent_locators
        .iter()
        .filter_map(|l| locator_text(l, file).map(|text| (l.platform_code, text)))
        .collect();
    texts.sort_by_key(|(code, _)| preference(*code));
    let mut found: Vec<PathBuf> = Vec::new();
    let mut add = |path: PathBuf| {
        if !found.contains(&path) {
            found.push(path);
        }
    };
    for (code, text) in texts {
        for path in paths_from_locator(code, &text, folder) {
            add(path);
        }
    }
    let name = header.parent_name();
    if !name.is_empty() {
        for path in paths_from_name(&name, folder) {
            add(path);
        }
    }
    found
}

/// Relative locators first, as Windows tries them, then absolute ones, then URLs.
fn preference(code: u32) -> u8 {
    match code {
        platform::W2RU => 0,
        platform::WI2R => 1,
        platform::W2KU => 2,
        platform::WI2K => 3,
        platform::MACX => 4,
        _ => 5,
    }
}

/// The text of a locator's payload, when it is a kind we read and lies inside the file.
pub(crate) fn locator_text(locator: &ParentLocator, file: &dyn Storage) -> Option<String> {
    let length = locator.platform_data_length;
    if locator.is_empty() || length == 0 || length > MAX_LOCATOR_BYTES {
        return None;
    }
    // Nothing is allocated for data that cannot be in the file.
    let end = locator
        .platform_data_offset
        .checked_add(u64::from(length))?;
    if end > file.file_size().ok()? {
        return None;
    }
    let mut bytes = vec![0u8; length as usize];
    read_exact(
        file,
        &mut bytes,
        locator.platform_data_offset,
        "a parent locator",
    )
    .ok()?;
    let text = match locator.platform_code {
        platform::W2RU | platform::W2KU => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        platform::WI2R | platform::WI2K | platform::MACX => {
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => return None,
    };
    let text = text.trim_end_matches('\0').to_string();
    (!text.is_empty()).then_some(text)
}

fn paths_from_locator(code: u32, text: &str, folder: &Path) -> Vec<PathBuf> {
    match code {
        platform::MACX => file_url_path(text)
            .map(|p| paths_from_name(&p, folder))
            .unwrap_or_default(),
        _ => paths_from_name(text, folder),
    }
}

/// Where a path written by any system may be found from here: a relative path (with `\` or
/// `/`) below the child's folder; an absolute one as it is, and by its file name in the
/// child's folder (the chain may have moved together).
pub(crate) fn paths_from_name(text: &str, folder: &Path) -> Vec<PathBuf> {
    let windows_absolute = is_windows_absolute(text);
    let posix_absolute = text.starts_with('/');
    let components: Vec<&str> = text
        .split(['\\', '/'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut paths = Vec::new();
    if windows_absolute {
        if cfg!(windows) {
            paths.push(PathBuf::from(text));
        }
    } else if posix_absolute {
        paths.push(PathBuf::from(text));
    } else if !components.is_empty() {
        paths.push(
            components
                .iter()
                .fold(folder.to_path_buf(), |p, c| p.join(c)),
        );
    }
    if windows_absolute || posix_absolute {
        if let Some(name) = components.last() {
            paths.push(folder.join(name));
        }
    }
    paths
}

/// `C:\…`, `C:/…` or a UNC path `\\server\share\…`.
fn is_windows_absolute(text: &str) -> bool {
    let b = text.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/'))
        || text.starts_with("\\\\")
}

/// The path of a `file://` URL (percent-decoded), absolute or relative (`file://./p.vhd`).
fn file_url_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    let mut bytes = Vec::with_capacity(rest.len());
    let mut input = rest.bytes();
    while let Some(b) = input.next() {
        if b == b'%' {
            let hex = [input.next()?, input.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// A `file://` URL for an absolute path, percent-encoding what RFC 2396 does not allow.
pub(crate) fn file_url(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let mut url = String::from("file://");
    if !text.starts_with('/') {
        url.push('/');
    }
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~:".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// The path of `target` relative to `folder`, in Windows form (`.\p.vhd`, `..\base\p.vhd`),
/// or `None` when they share no root. Both must be absolute and canonical.
pub(crate) fn windows_relative_path(folder: &Path, target: &Path) -> Option<String> {
    let from: Vec<_> = folder.components().collect();
    let to: Vec<_> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return None;
    }
    let mut parts: Vec<String> = vec![".".into()];
    parts.extend(std::iter::repeat_n("..".to_string(), from.len() - common));
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.len() > 2 && parts[1] == ".." {
        parts.remove(0);
    }
    Some(parts.join("\\"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_are_found_by_their_relative_part() {
        let folder = Path::new("/images/vm");
        assert_eq!(
            paths_from_name(".\\parent.vhd", folder),
            vec![PathBuf::from("/images/vm/parent.vhd")]
        );
        assert_eq!(
            paths_from_name("..\\base\\p.vhd", folder),
            vec![PathBuf::from("/images/vm/../base/p.vhd")]
        );
        let absolute = paths_from_name("C:\\Projects\\dfvfs\\fat-parent.vhd", folder);
        assert_eq!(
            absolute.last(),
            Some(&PathBuf::from("/images/vm/fat-parent.vhd"))
        );
        assert_eq!(
            paths_from_name("/srv/base.vhd", folder),
            vec![
                PathBuf::from("/srv/base.vhd"),
                PathBuf::from("/images/vm/base.vhd")
            ]
        );
        assert_eq!(
            paths_from_name("image.vhd", folder),
            vec![PathBuf::from("/images/vm/image.vhd")]
        );
    }

    #[test]
    fn file_urls_round_trip() {
        let path = Path::new("/srv/my disks/p%1.vhd");
        let url = file_url(path);
        assert_eq!(url, "file:///srv/my%20disks/p%251.vhd");
        assert_eq!(
            file_url_path(&url).as_deref(),
            Some("/srv/my disks/p%1.vhd")
        );
        assert_eq!(file_url_path("file://./p.vhd").as_deref(), Some("./p.vhd"));
        assert_eq!(file_url_path("http://x"), None);
    }

    #[test]
    fn relative_paths_in_windows_form() {
        let rel = |a: &str, b: &str| windows_relative_path(Path::new(a), Path::new(b));
        assert_eq!(rel("/a/b", "/a/b/p.vhd").as_deref(), Some(".\\p.vhd"));
        assert_eq!(rel("/a/b", "/a/c/p.vhd").as_deref(), Some("..\\c\\p.vhd"));
        assert_eq!(rel("/a/b", "/a/b/d/p.vhd").as_deref(), Some(".\\d\\p.vhd"));
    }

    #[test]
    fn relative_locators_are_tried_first() {
        let mut order = [
            platform::MACX,
            platform::W2KU,
            platform::W2RU,
            platform::WI2K,
        ];
        order.sort_by_key(|c| preference(*c));
        assert_eq!(
            order,
            [
                platform::W2RU,
                platform::W2KU,
                platform::WI2K,
                platform::MACX
            ]
        );
    }
}
