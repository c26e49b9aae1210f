//! Finding and opening the parent of a differencing image.
//!
//! The child names its parent several ways: parent locators (`W2ru` relative and `W2ku`
//! absolute Windows paths in UTF-16LE, their deprecated ASCII forms `Wi2r`/`Wi2k`, and `MacX`
//! file URLs) and the header's parent unicode name. They are tried in that order, relative
//! first, as Windows does, so that a chain moved to another folder as a whole still opens.
//! Windows paths are accepted on every system: a relative one by its components, an absolute
//! one (`C:\dir\p.vhd`) as its file name in the child's folder (and on Windows as it is,
//! a network path only when the caller allows it). Each candidate must carry the unique id
//! the child records; the caller may also name the parents explicitly.
//!
//! The child is untrusted, and so is every file it names until that file is verified as the
//! parent. Hence the order of the work for each candidate:
//!
//! 1. open it safely ([`candidate::open_candidate`]: a regular file, inside the parent root
//!    when there is one, checked on the descriptor);
//! 2. verify its identity from its footer alone: a valid footer, the unique id the child
//!    records, an acceptable time stamp. Until then nothing of it (bytes, size, id, time
//!    stamps) is kept: a rejection is said in words ([`ParentRejection`]);
//! 3. only then lock it and open it whole, with its own parents; from here on it is part of
//!    the image the caller opened, and its errors carry their details.
//!
//! The search is linear in the number of candidates. Files are told apart by identity
//! (device and inode), not by spelling, and a candidate that failed is remembered for the
//! whole open, across levels, so that no file is explored twice for the same child; and the
//! whole chain may look at no more than [`MAX_PARENT_CANDIDATES`] candidates.

use super::candidate::{self, FileId, OpenedCandidate};
use super::{locate_footer, read_exact, Image, OpenOptions, VirtualDisk};
use crate::dynamic_header::DynamicHeader;
use crate::error::{Error, ParentRejection, Result, TriedParent};
use crate::footer::vhd_timestamp;
use crate::parent_locator::{platform, ParentLocator};
use crate::storage::Storage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Deepest parent chain that is opened; deeper ones are taken as damaged.
pub const MAX_CHAIN_DEPTH: usize = 64;

/// Most candidate files looked at (resolved or opened) to open one image with its whole
/// parent chain. A chain of [`MAX_CHAIN_DEPTH`] images whose locators all point elsewhere
/// looks at about 18 per level; a crafted chain that names each parent in many spellings,
/// through many copies, stops here with [`Error::ParentSearchLimit`].
pub const MAX_PARENT_CANDIDATES: usize = 1024;

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
    /// Its path, with symbolic links resolved when possible.
    pub path: PathBuf,
    /// Its file, when it was opened from one (or its path names one).
    pub file: Option<FileId>,
    pub unique_id: [u8; 16],
}

/// What one open of an image (with its whole chain) has done so far: the images opened
/// above the level being searched, and what the parent search spent and learnt, shared by
/// every level.
#[derive(Debug, Default)]
pub(crate) struct ChainSearch {
    /// The images of the chain opened so far, the top first.
    pub members: Vec<ChainMember>,
    /// Candidates looked at so far (resolved or opened), against [`MAX_PARENT_CANDIDATES`].
    looked_at: usize,
    /// Candidates found not to be a child's parent, or to be it but unusable.
    failed: HashMap<FailedKey, ParentRejection>,
    /// The parent root, resolved once (`Some(None)`: there is none).
    root: Option<Option<PathBuf>>,
}

/// A failure that does not depend on which child asks, nor on where in the chain: the file,
/// what the child records of its parent (unique id, time stamp), and how many parents the
/// caller still names below it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FailedKey {
    file: FileId,
    unique_id: [u8; 16],
    timestamp: u32,
    named_below: usize,
}

impl ChainSearch {
    /// Counts one more candidate looked at for `child`'s parent; fails past the limit.
    fn spend(&mut self, child: &Path) -> Result<()> {
        self.looked_at += 1;
        if self.looked_at > MAX_PARENT_CANDIDATES {
            return Err(Error::ParentSearchLimit {
                child: child.to_path_buf(),
                limit: MAX_PARENT_CANDIDATES,
            });
        }
        Ok(())
    }

    /// The canonical parent root of `options`, resolved on first use.
    fn root(&mut self, options: &OpenOptions) -> Result<Option<PathBuf>> {
        if let Some(root) = &self.root {
            return Ok(root.clone());
        }
        let root = match &options.parent_root {
            None => None,
            Some(root) => Some(root.canonicalize().map_err(|e| Error::InvalidArgument {
                name: "parent root",
                reason: format!("{}: {e}", root.display()),
            })?),
        };
        self.root = Some(root.clone());
        Ok(root)
    }

    /// The chain so far, then `closing`: the paths of a loop.
    pub(crate) fn loop_error(&self, closing: PathBuf) -> Error {
        let mut chain: Vec<PathBuf> = self.members.iter().map(|m| m.path.clone()).collect();
        chain.push(closing);
        Error::ParentLoop { chain }
    }

    /// Whether the verified parent `opened` is an image already in the chain; if so, its
    /// canonical path.
    fn is_member(&self, opened: &OpenedCandidate) -> Option<PathBuf> {
        let canonical = || {
            opened
                .path
                .canonicalize()
                .unwrap_or_else(|_| opened.path.clone())
        };
        let member = self.members.iter().any(|m| match &m.file {
            Some(file) => *file == opened.id,
            None => m.path == canonical(),
        });
        member.then(canonical)
    }
}

/// A place to look for the parent, and why it is not even looked at (when it is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CandidatePath {
    pub path: PathBuf,
    pub refused: Option<ParentRejection>,
}

impl CandidatePath {
    fn new(path: PathBuf) -> CandidatePath {
        CandidatePath {
            path,
            refused: None,
        }
    }
}

/// How trying one candidate ended, short of it being the parent.
enum Failure {
    /// Not the parent (or not usable as one), for this reason in words.
    Rejected(ParentRejection),
    /// The parent, verified (or named by the caller), but it or its chain cannot be used:
    /// this error says why.
    Unusable(Error),
    /// The whole open stops: a loop, a chain too deep, the search too long.
    Abort(Error),
}

/// Opens the parent of the differencing image at `child`, whose header is `header`.
/// `search` holds the child and every image above it, and what the search has done.
pub(crate) fn open_parent(
    child: &Path,
    header: &DynamicHeader,
    file: &dyn Storage,
    options: &OpenOptions,
    search: &mut ChainSearch,
) -> Result<Parent> {
    if search.members.len() > MAX_CHAIN_DEPTH {
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
    let (candidates, named, root) = match options.parents.first() {
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
        Some(ParentPath::Vhd(path)) => (vec![CandidatePath::new(path.clone())], true, None),
        // Named by the child: inside the parent root, when there is one.
        None => (
            candidates(child, header, file, options.allow_remote_parents),
            false,
            search.root(options)?,
        ),
    };
    // The first candidate that verifies and opens with its chain is the parent. Otherwise
    // the most telling problem is reported.
    let mut tried = Vec::new();
    let mut unusable = None;
    for candidate in candidates {
        let path = candidate.path;
        if let Some(rejection) = candidate.refused {
            tried.push(TriedParent { path, rejection });
            continue;
        }
        search.spend(child)?;
        let opened = match candidate::open_candidate(&path, root.as_deref()) {
            Ok(opened) => opened,
            Err(rejection) => {
                tried.push(TriedParent { path, rejection });
                continue;
            }
        };
        // Another spelling of a file already tried for this link (at this level or any
        // other) gets the same answer without another look.
        let key = FailedKey {
            file: opened.id.clone(),
            unique_id: header.parent_unique_id,
            timestamp: header.parent_timestamp,
            named_below: parent_options.parents.len(),
        };
        if let Some(&rejection) = search.failed.get(&key) {
            tried.push(TriedParent { path, rejection });
            continue;
        }
        match try_candidate(child, header, opened, named, &parent_options, search) {
            Ok(image) => return Ok(Parent::Image(Box::new(image))),
            Err(Failure::Abort(e)) => return Err(e),
            Err(Failure::Rejected(rejection)) => {
                search.failed.insert(key, rejection);
                tried.push(TriedParent { path, rejection });
            }
            Err(Failure::Unusable(e)) => {
                let rejection = ParentRejection::Unusable;
                search.failed.insert(key, rejection);
                tried.push(TriedParent { path, rejection });
                unusable.get_or_insert(e);
            }
        }
    }
    Err(most_telling(child, header, tried, unusable, root))
}

/// Verifies that the opened candidate is the parent `header` names, then opens it whole
/// (locked, with its own parents). `named`: the caller named it (trusted: its structural
/// errors are reported in full).
fn try_candidate(
    child: &Path,
    header: &DynamicHeader,
    opened: OpenedCandidate,
    named: bool,
    parent_options: &OpenOptions,
    search: &mut ChainSearch,
) -> std::result::Result<Image, Failure> {
    verify_identity(child, header, &opened, named, parent_options)?;
    // The parent, verified: from here on it belongs to the image being opened.
    if let Some(path) = search.is_member(&opened) {
        return Err(Failure::Abort(search.loop_error(path)));
    }
    let OpenedCandidate { file, id, path, .. } = opened;
    let image =
        super::open_file_in_chain(file, &path, Some(id), parent_options, search).map_err(|e| {
            match e {
                e @ (Error::ParentLoop { .. }
                | Error::ChainTooDeep { .. }
                | Error::ParentSearchLimit { .. }) => Failure::Abort(e),
                e => Failure::Unusable(Error::Parent {
                    child: child.to_path_buf(),
                    parent: path.clone(),
                    source: Box::new(e),
                }),
            }
        })?;
    // Replaced between the verification and the lock: another file now.
    if image.footer().unique_id != header.parent_unique_id {
        return Err(Failure::Rejected(ParentRejection::DifferentDisk));
    }
    Ok(image)
}

/// Checks, from its footer alone, that `opened` is the parent `header` records: a VHD with
/// the unique id the child records and (unless the options say not to) an acceptable time
/// stamp. Nothing else of the file is read; nothing read is kept in a rejection.
fn verify_identity(
    child: &Path,
    header: &DynamicHeader,
    opened: &OpenedCandidate,
    named: bool,
    options: &OpenOptions,
) -> std::result::Result<(), Failure> {
    let located = match locate_footer(&opened.file, options) {
        Ok(located) if located.footer.disk_type().is_some() => located,
        // A file the caller named may be described in full: it is the caller's own.
        Err(e) if named => {
            return Err(Failure::Unusable(Error::Parent {
                child: child.to_path_buf(),
                parent: opened.path.clone(),
                source: Box::new(e),
            }))
        }
        _ => return Err(Failure::Rejected(ParentRejection::NotVhd)),
    };
    if located.footer.unique_id != header.parent_unique_id {
        return Err(Failure::Rejected(ParentRejection::DifferentDisk));
    }
    if !options.ignore_parent_timestamp {
        let modified = opened
            .metadata
            .modified()
            .map(vhd_timestamp)
            .map_err(|e| Failure::Rejected(ParentRejection::Unreadable(e.kind())))?;
        if !timestamp_accepted(header.parent_timestamp, modified, located.footer.timestamp) {
            return Err(Failure::Rejected(ParentRejection::Modified));
        }
    }
    Ok(())
}

/// Whether a parent whose file was last modified at `modified`, and whose footer says
/// `footer`, is the one a child that records `recorded` was made over: `recorded` is 0
/// (not recorded, as diskpart writes), the parent file's modification time (what the
/// specification, VirtualBox, blktap and DiscUtils record), or the parent footer's time
/// stamp (what some other writers record).
pub(crate) fn timestamp_accepted(recorded: u32, modified: u32, footer: u32) -> bool {
    recorded == 0 || recorded == modified || recorded == footer
}

/// The error for a search that found no usable parent: the parent's own error when one
/// verified but could not be used (it is part of the image); then, in words only, a
/// candidate with the right id but another time stamp, one outside the root (the parent is
/// probably there), another disk; and otherwise "not found", listing every place tried.
fn most_telling(
    child: &Path,
    header: &DynamicHeader,
    tried: Vec<TriedParent>,
    unusable: Option<Error>,
    root: Option<PathBuf>,
) -> Error {
    if let Some(e) = unusable {
        return e;
    }
    let first = |rejection| {
        tried
            .iter()
            .find(|t| t.rejection == rejection)
            .map(|t| t.path.clone())
    };
    let child = child.to_path_buf();
    if let Some(parent) = first(ParentRejection::Modified) {
        return Error::ParentModified {
            child,
            parent,
            tried,
        };
    }
    if let (Some(parent), Some(root)) = (first(ParentRejection::OutsideRoot), root) {
        return Error::ParentOutsideRoot {
            child,
            parent,
            root,
            tried,
        };
    }
    if let Some(parent) = first(ParentRejection::DifferentDisk) {
        return Error::ParentMismatch {
            child,
            parent,
            tried,
        };
    }
    Error::ParentNotFound {
        child,
        parent_name: header.parent_name(),
        tried,
    }
}

/// Every place the child's locators and header name point at, in the order to try them,
/// without repetitions of a spelling (one file under several spellings is caught once
/// opened). `allow_remote`: see [`OpenOptions::allow_remote_parents`].
pub(crate) fn candidates(
    child: &Path,
    header: &DynamicHeader,
    file: &dyn Storage,
    allow_remote: bool,
) -> Vec<CandidatePath> {
    let folder = child.parent().unwrap_or(Path::new("."));
    let mut texts: Vec<(u32, String)> = header
        .parent_locators
        .iter()
        .filter_map(|l| locator_text(l, file).map(|text| (l.platform_code, text)))
        .collect();
    texts.sort_by_key(|(code, _)| preference(*code));
    let mut found: Vec<CandidatePath> = Vec::new();
    let mut add = |candidate: CandidatePath| {
        if !found.iter().any(|c| c.path == candidate.path) {
            found.push(candidate);
        }
    };
    for (code, text) in texts {
        for candidate in paths_from_locator(code, &text, folder, allow_remote) {
            add(candidate);
        }
    }
    let name = header.parent_name();
    if !name.is_empty() {
        for candidate in paths_from_name(&name, folder, allow_remote) {
            add(candidate);
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
    if locator.is_empty() || length == 0 || !super::locator_is_read(locator) {
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

fn paths_from_locator(
    code: u32,
    text: &str,
    folder: &Path,
    allow_remote: bool,
) -> Vec<CandidatePath> {
    match code {
        platform::MACX => file_url_path(text)
            .map(|p| paths_from_name(&p, folder, allow_remote))
            .unwrap_or_default(),
        _ => paths_from_name(text, folder, allow_remote),
    }
}

/// Where a path written by any system may be found from here: a relative path (with `\` or
/// `/`) below the child's folder; an absolute one as it is, and by its file name in the
/// child's folder (the chain may have moved together). A Windows absolute path is taken
/// as it is only on Windows, and there only when [`candidate::windows_path_access`] allows
/// (a network path with `allow_remote`, never a device).
pub(crate) fn paths_from_name(text: &str, folder: &Path, allow_remote: bool) -> Vec<CandidatePath> {
    // On other systems a leading `/` is a path of theirs, even doubled.
    let windows_kind =
        candidate::windows_path_kind(text).filter(|_| cfg!(windows) || !text.starts_with('/'));
    let posix_absolute = windows_kind.is_none() && text.starts_with('/');
    let components: Vec<&str> = text
        .split(['\\', '/'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut paths = Vec::new();
    if let Some(kind) = windows_kind {
        if cfg!(windows) {
            paths.push(CandidatePath {
                path: PathBuf::from(text),
                refused: candidate::windows_path_access(kind, allow_remote).err(),
            });
        }
    } else if posix_absolute {
        paths.push(CandidatePath::new(PathBuf::from(text)));
    } else if !components.is_empty() {
        paths.push(CandidatePath::new(
            components
                .iter()
                .fold(folder.to_path_buf(), |p, c| p.join(c)),
        ));
    }
    if windows_kind.is_some() || posix_absolute {
        if let Some(name) = components.last() {
            paths.push(CandidatePath::new(folder.join(name)));
        }
    }
    paths
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

    /// The paths of what `paths_from_name` returns, checking that none is refused.
    fn paths(text: &str, folder: &Path) -> Vec<PathBuf> {
        paths_from_name(text, folder, false)
            .into_iter()
            .map(|c| {
                assert_eq!(c.refused, None, "{text}");
                c.path
            })
            .collect()
    }

    #[test]
    fn windows_paths_are_found_by_their_relative_part() {
        let folder = Path::new("/images/vm");
        assert_eq!(
            paths(".\\parent.vhd", folder),
            vec![PathBuf::from("/images/vm/parent.vhd")]
        );
        assert_eq!(
            paths("..\\base\\p.vhd", folder),
            vec![PathBuf::from("/images/vm/../base/p.vhd")]
        );
        let absolute = paths("C:\\Projects\\dfvfs\\fat-parent.vhd", folder);
        assert_eq!(
            absolute.last(),
            Some(&PathBuf::from("/images/vm/fat-parent.vhd"))
        );
        assert_eq!(
            paths("/srv/base.vhd", folder),
            vec![
                PathBuf::from("/srv/base.vhd"),
                PathBuf::from("/images/vm/base.vhd")
            ]
        );
        assert_eq!(
            paths("image.vhd", folder),
            vec![PathBuf::from("/images/vm/image.vhd")]
        );
    }

    /// Drive, network and device paths are never opened on other systems than Windows (only
    /// their file name in the child's folder is tried); on Windows a network path is listed
    /// as refused unless remote parents are allowed, a device path always.
    #[test]
    fn windows_absolute_paths_by_system() {
        let folder = Path::new("/images/vm");
        for allow_remote in [false, true] {
            for (text, refused) in [
                ("C:\\dir\\p.vhd", None),
                (
                    "\\\\server\\share\\p.vhd",
                    (!allow_remote).then_some(ParentRejection::Remote),
                ),
                (
                    "\\\\?\\UNC\\server\\share\\p.vhd",
                    (!allow_remote).then_some(ParentRejection::Remote),
                ),
                ("\\\\.\\pipe\\p.vhd", Some(ParentRejection::DevicePath)),
            ] {
                let found = paths_from_name(text, folder, allow_remote);
                let beside = CandidatePath::new(PathBuf::from("/images/vm/p.vhd"));
                if cfg!(windows) {
                    let as_is = CandidatePath {
                        path: PathBuf::from(text),
                        refused,
                    };
                    assert_eq!(found, vec![as_is, beside], "{text}");
                } else {
                    assert_eq!(found, vec![beside], "{text}");
                }
            }
        }
        // A doubled slash is a path of this system where `/` starts one.
        if !cfg!(windows) {
            assert_eq!(
                paths("//srv/p.vhd", folder),
                vec![
                    PathBuf::from("//srv/p.vhd"),
                    PathBuf::from("/images/vm/p.vhd")
                ]
            );
        }
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
