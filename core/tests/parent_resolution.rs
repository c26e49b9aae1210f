//! Finding the parent of a differencing image: from each kind of parent locator alone, from
//! the header's parent name alone, after a chain was moved, from Windows paths, from parents
//! named by the caller (VHD or raw), and every way it can fail (missing, another image,
//! modified, loops, too deep, corrupt), each with its error, code and a message that names
//! the files.
//!
//! The headers are edited here byte by byte (with the checksum fixed by the test's own
//! arithmetic), so the library is not checked against itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use vhd_core::footer::format_unique_id;
use vhd_core::{
    create, CreateOptions, DiskType, Error, Image, OpenOptions, Parent, ParentPath,
    ParentRejection, TriedParent, VirtualDisk, MAX_CHAIN_DEPTH,
};
use vhd_testkit::*;

const MIB: u64 = 1024 * 1024;
const LOCATORS_AT: usize = 576;

/// A fixed time stamp for the images made here (2010-01-01), so that an image's footer time
/// stamp is never its file's modification time: the parent time stamp check accepts both.
const OLD_TIMESTAMP: u32 = 315_532_800;

// ---------------------------------------------------------------------------------------------
// Making chains

/// A dynamic image of `size` bytes (512 KiB blocks) at `path`, filled with a pattern that
/// depends on `seed`; returns its contents.
fn make_base(path: &Path, size: u64, seed: u64) -> Vec<u8> {
    let options = CreateOptions {
        block_size: 512 << 10,
        timestamp: Some(OLD_TIMESTAMP),
        ..CreateOptions::new(DiskType::Dynamic, size)
    };
    let mut image = create(path, &options).unwrap();
    let mut rng = Rng::from_seed(seed);
    let data = rng.bytes(size as usize);
    image.write_at(&data, 0).unwrap();
    data
}

/// A differencing image over `parent` at `path`, with a few writes of its own (applied to
/// `model`, the parent's contents on entry, the child's on return).
fn make_child(path: &Path, parent: &Path, model: &mut [u8]) {
    let options = CreateOptions {
        timestamp: Some(OLD_TIMESTAMP),
        ..CreateOptions::differencing(parent)
    };
    let mut image = create(path, &options).unwrap();
    for (offset, len) in [
        (0u64, 4096usize),
        (700_000, 100),
        (model.len() as u64 - 513, 513),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ 0x5A).collect();
        image.write_at(&data, offset).unwrap();
        model[offset as usize..offset as usize + len].copy_from_slice(&data);
    }
}

fn open(path: &Path) -> vhd_core::Result<Image> {
    Image::open(path, &OpenOptions::default())
}

fn open_with(path: &Path, parents: Vec<ParentPath>) -> vhd_core::Result<Image> {
    let options = OpenOptions {
        parents,
        ..OpenOptions::default()
    };
    Image::open(path, &options)
}

/// Opens `path` and checks that its parent is the file `parent` and that it reads `model`.
#[track_caller]
fn assert_opens_with_parent(path: &Path, parent: &Path, model: &[u8]) {
    let what = path.display().to_string();
    let image = open(path).unwrap_or_else(|e| panic!("{what}: {e}"));
    let found = image.parent().expect("a parent").path();
    assert_eq!(
        found.canonicalize().unwrap(),
        parent.canonicalize().unwrap(),
        "{what}: parent (found at {})",
        found.display()
    );
    assert_same_bytes(&read_all(&image), model, &what);
}

#[track_caller]
fn assert_message_names(e: &Error, parts: &[&str]) {
    let message = e.to_string();
    for part in parts {
        assert!(message.contains(part), "{message:?} does not name {part:?}");
    }
}

fn show(path: &Path) -> String {
    path.display().to_string()
}

/// `paths`, each tried and found `rejection`.
fn tried_all<P: AsRef<Path>>(paths: &[P], rejection: ParentRejection) -> Vec<TriedParent> {
    paths
        .iter()
        .map(|path| TriedParent {
            path: path.as_ref().to_path_buf(),
            rejection,
        })
        .collect()
}

/// Panics unless `e` is `ParentNotFound` for `child`, with the parent name `parent_name`
/// (where given) and exactly the places `tried`, and its code.
#[track_caller]
fn assert_parent_not_found(
    e: &Error,
    child: &Path,
    parent_name: Option<&str>,
    tried: &[TriedParent],
) {
    match e {
        Error::ParentNotFound {
            child: c,
            parent_name: name,
            tried: t,
        } => {
            assert_eq!(c, child);
            if let Some(parent_name) = parent_name {
                assert_eq!(name, parent_name);
            }
            assert_eq!(t, tried);
        }
        other => panic!("expected ParentNotFound, got {other:?}"),
    }
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND");
}

/// Panics unless `e` is the error of a parent found and rejected (`ParentMismatch` or
/// `ParentModified`, as `code` says) for `child`, naming `parent`, with exactly the places
/// `tried`.
#[track_caller]
fn assert_parent_rejected(
    e: &Error,
    code: &str,
    child: &Path,
    parent: &Path,
    tried: &[TriedParent],
) {
    match e {
        Error::ParentMismatch {
            child: c,
            parent: p,
            tried: t,
        }
        | Error::ParentModified {
            child: c,
            parent: p,
            tried: t,
        } => {
            assert_eq!((c.as_path(), p.as_path()), (child, parent));
            assert_eq!(t, tried);
        }
        other => panic!("expected a rejected parent ({code}), got {other:?}"),
    }
    assert_eq!(e.code(), code);
}

/// Panics if the message shows an id (a VHD's, or the one the child expects) in the form
/// `format_unique_id` writes, or a time stamp.
#[track_caller]
fn assert_message_hides(e: &Error, ids: &[[u8; 16]], timestamps: &[u32]) {
    let message = format!("{e} {e:?}");
    for id in ids {
        let text = format_unique_id(id);
        assert!(!message.contains(&text), "{message:?} shows {text}");
    }
    for t in timestamps {
        assert!(!message.contains(&t.to_string()), "{message:?} shows {t}");
    }
}

// ---------------------------------------------------------------------------------------------
// Editing headers

struct Header {
    path: PathBuf,
    offset: u64,
    bytes: Vec<u8>,
}

impl Header {
    fn read(path: &Path) -> Header {
        let len = file_len(path);
        let footer = file_bytes(path, len - 512, 512);
        let offset = be_u64(&footer, 16);
        Header {
            path: path.to_path_buf(),
            offset,
            bytes: file_bytes(path, offset, 1024),
        }
    }

    /// (index, code, data space, data length, data offset) of every used locator.
    fn locators(&self) -> Vec<(usize, [u8; 4], u32, u32, u64)> {
        (0..8)
            .map(|i| {
                let e = &self.bytes[LOCATORS_AT + 24 * i..][..24];
                (
                    i,
                    e[0..4].try_into().unwrap(),
                    be_u32(e, 4),
                    be_u32(e, 8),
                    be_u64(e, 16),
                )
            })
            .filter(|l| l.1 != [0; 4])
            .collect()
    }

    fn locator(&self, code: &[u8; 4]) -> (usize, [u8; 4], u32, u32, u64) {
        *self
            .locators()
            .iter()
            .find(|l| &l.1 == code)
            .unwrap_or_else(|| panic!("no {:?} locator", String::from_utf8_lossy(code)))
    }

    fn set_locator(&mut self, index: usize, code: &[u8; 4], space: u32, len: u32, offset: u64) {
        let e = &mut self.bytes[LOCATORS_AT + 24 * index..][..24];
        e[0..4].copy_from_slice(code);
        e[4..8].copy_from_slice(&space.to_be_bytes());
        e[8..12].copy_from_slice(&len.to_be_bytes());
        e[12..16].fill(0);
        e[16..24].copy_from_slice(&offset.to_be_bytes());
    }

    fn clear_locator(&mut self, index: usize) {
        self.bytes[LOCATORS_AT + 24 * index..][..24].fill(0);
    }

    /// Keeps only the locator with `code`.
    fn keep_only(&mut self, code: &[u8; 4]) {
        for (index, c, ..) in self.locators() {
            if &c != code {
                self.clear_locator(index);
            }
        }
    }

    fn clear_all_locators(&mut self) {
        (0..8).for_each(|i| self.clear_locator(i));
    }

    /// The parent name, UTF-16 big-endian, NUL-padded.
    fn set_parent_name(&mut self, name: &str) {
        let field = &mut self.bytes[64..576];
        field.fill(0);
        for (i, unit) in name.encode_utf16().enumerate() {
            field[2 * i..2 * i + 2].copy_from_slice(&unit.to_be_bytes());
        }
    }

    fn parent_id(&self) -> [u8; 16] {
        self.bytes[40..56].try_into().unwrap()
    }

    fn set_parent_id(&mut self, id: &[u8; 16]) {
        self.bytes[40..56].copy_from_slice(id);
    }

    fn parent_timestamp(&self) -> u32 {
        be_u32(&self.bytes, 56)
    }

    fn set_parent_timestamp(&mut self, timestamp: u32) {
        self.bytes[56..60].copy_from_slice(&timestamp.to_be_bytes());
    }

    /// Writes the header back with a correct checksum.
    fn write(mut self) {
        fix_header_checksum(&mut self.bytes);
        patch_file(&self.path, self.offset, &self.bytes);
    }
}

/// Replaces the payload of locator `code` by `payload` (it must fit in its space), keeping
/// the entry's code, or giving it `new_code`.
fn rewrite_locator(header: &mut Header, code: &[u8; 4], new_code: &[u8; 4], payload: &[u8]) {
    let (index, _, space, _, offset) = header.locator(code);
    assert!(
        payload.len() as u32 <= space,
        "payload larger than the space"
    );
    let mut padded = payload.to_vec();
    padded.resize(space as usize, 0);
    patch_file(&header.path, offset, &padded);
    header.set_locator(index, new_code, space, payload.len() as u32, offset);
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn locator_payload(path: &Path, locator: (usize, [u8; 4], u32, u32, u64)) -> Vec<u8> {
    file_bytes(path, locator.4, locator.3 as usize)
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Each locator alone

/// What `create` writes in the locators of a child whose parent lives in a sibling folder
/// (see [`Setup::Sibling`]); a copy of the child without them, in its own folder, finds
/// nothing and says where it looked.
#[test]
fn the_locators_create_writes() {
    let chain = Chain::new(Setup::Sibling);
    let (parent, child, model) = (&chain.parent, &chain.child, &chain.model);
    let vm = chain.dir.join("vm");
    let parent_abs = parent.canonicalize().unwrap();

    // What create wrote: W2ku absolute, W2ru relative, MacX URL; the header names the file.
    let header = Header::read(child);
    let codes: Vec<[u8; 4]> = header.locators().iter().map(|l| l.1).collect();
    assert_eq!(codes, vec![*b"W2ku", *b"W2ru", *b"MacX"]);
    let text = |code: &[u8; 4]| locator_payload(child, header.locator(code));
    assert_eq!(utf16le_text(&text(b"W2ku")), parent_abs.to_str().unwrap());
    assert_eq!(utf16le_text(&text(b"W2ru")), "..\\base dir\\parent.vhd");
    let url = String::from_utf8(text(b"MacX")).unwrap();
    assert_eq!(
        url,
        format!(
            "file://{}",
            parent_abs.to_str().unwrap().replace(' ', "%20")
        )
    );
    for (_, _, space, len, offset) in header.locators() {
        assert_eq!(offset % 512, 0);
        assert!(space >= len && space % 512 == 0, "data space in bytes");
    }
    assert_opens_with_parent(child, parent, model);
    // Each locator alone, and the header's name alone: see `one_way_left_finds_the_parent`.

    // The control: the same in the child's folder finds nothing, and says where it looked.
    let nowhere = vm.join("no-locator.vhd");
    copy(child, &nowhere);
    let mut header = Header::read(&nowhere);
    header.clear_all_locators();
    header.write();
    let e = open(&nowhere).unwrap_err();
    let tried = tried_all(&[vm.join("parent.vhd")], ParentRejection::Missing);
    assert_parent_not_found(&e, &nowhere, Some("parent.vhd"), &tried);
    assert_message_names(
        &e,
        &[&show(&nowhere), "parent.vhd", &show(&vm.join("parent.vhd"))],
    );
}

/// Folder and file names that need encoding: UTF-16 in the Windows locators, percent-encoded
/// UTF-8 in the file URL.
#[test]
fn locators_of_names_that_need_encoding() {
    let chain = Chain::new(Setup::Encoded);
    let child = &chain.child;
    let header = Header::read(child);
    assert_eq!(
        utf16le_text(&locator_payload(child, header.locator(b"W2ru"))),
        "..\\bäse 100% dír\\pärent ✓.vhd"
    );
    let url = String::from_utf8(locator_payload(child, header.locator(b"MacX"))).unwrap();
    assert!(url.is_ascii() && url.starts_with("file:///"), "{url}");
    assert!(
        url.ends_with("/b%C3%A4se%20100%25%20d%C3%ADr/p%C3%A4rent%20%E2%9C%93.vhd"),
        "{url}"
    );
    // Each locator alone: see `one_way_left_finds_the_parent`.
}

// ---------------------------------------------------------------------------------------------
// One way left to the parent

/// Where a chain of [`Chain::new`] lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// The parent in a sibling folder of the child's (`base dir/parent.vhd`,
    /// `vm/child.vhd`), so that its file name alone (the header's parent name, or an
    /// absolute path's last component in the child's folder) does not find it: only a
    /// locator can.
    Sibling,
    /// The same with folder and file names that need encoding: UTF-16 in the Windows
    /// locators, percent-encoded UTF-8 in the file URL.
    Encoded,
    /// The parent beside the child (`base.vhd`, `child.vhd`).
    SameFolder,
}

/// A parent and its child, made as [`Setup`] says.
struct Chain {
    dir: TempDir,
    parent: PathBuf,
    child: PathBuf,
    /// What the child reads.
    model: Vec<u8>,
}

impl Chain {
    fn new(setup: Setup) -> Chain {
        let (label, parent_dir, parent_name, child_dir, size, seed) = match setup {
            Setup::Sibling => ("locators", "base dir", "parent.vhd", "vm", 2 * MIB, 1),
            Setup::Encoded => (
                "locators-names",
                "bäse 100% dír",
                "pärent ✓.vhd",
                "vm #1",
                MIB,
                2,
            ),
            Setup::SameFolder => ("windows-paths", ".", "base.vhd", ".", MIB, 5),
        };
        let dir = TempDir::new(label);
        std::fs::create_dir_all(dir.join(parent_dir)).unwrap();
        std::fs::create_dir_all(dir.join(child_dir)).unwrap();
        let parent = dir.join(parent_dir).join(parent_name);
        let mut model = make_base(&parent, size, seed);
        let child = dir.join(child_dir).join("child.vhd");
        make_child(&child, &parent, &mut model);
        Chain {
            dir,
            parent,
            child,
            model,
        }
    }
}

/// The one way to its parent left in a copy of a child.
#[derive(Clone, Copy)]
enum OneWay {
    /// The locator of this code, as `create` wrote it.
    Locator(&'static [u8; 4]),
    /// A deprecated ASCII locator (which `create` does not make) in place of `W2ku`: `Wi2r`
    /// with the relative path, `Wi2k` with the absolute one.
    Ascii(&'static [u8; 4]),
    /// No locator: the header's parent name alone (a file name, or this Windows absolute
    /// path), found in the child's folder: the copy lives beside the parent.
    NameOnly(Option<&'static str>),
    /// `W2ku` text written on Windows (`C:\dir\base.vhd`, `C:/…`, UNC), and a header name
    /// that must not be what finds it: found as its file name in the child's folder.
    WindowsW2ku(&'static str),
}

/// Each copy of a child, with every other way to its parent removed, still opens over it
/// and reads what it wrote.
#[test]
fn one_way_left_finds_the_parent() {
    use OneWay::{Ascii, Locator, NameOnly, WindowsW2ku};
    use Setup::{Encoded, SameFolder, Sibling};
    let rows = [
        (
            "the relative W2ru locator alone",
            (Sibling, Locator(b"W2ru")),
        ),
        (
            "the absolute W2ku locator alone",
            (Sibling, Locator(b"W2ku")),
        ),
        ("the MacX file URL alone", (Sibling, Locator(b"MacX"))),
        ("a relative Wi2r locator alone", (Sibling, Ascii(b"Wi2r"))),
        ("an absolute Wi2k locator alone", (Sibling, Ascii(b"Wi2k"))),
        ("the header's parent name alone", (Sibling, NameOnly(None))),
        (
            "a Windows absolute parent name alone",
            (Sibling, NameOnly(Some("D:\\VMs\\old place\\parent.vhd"))),
        ),
        ("an encoded W2ru locator alone", (Encoded, Locator(b"W2ru"))),
        ("an encoded W2ku locator alone", (Encoded, Locator(b"W2ku"))),
        (
            "an encoded MacX file URL alone",
            (Encoded, Locator(b"MacX")),
        ),
        (
            "a W2ku drive path from Windows",
            (SameFolder, WindowsW2ku("C:\\dir\\base.vhd")),
        ),
        (
            "a W2ku drive path with slashes from Windows",
            (SameFolder, WindowsW2ku("c:/Some Folder/base.vhd")),
        ),
        (
            "a W2ku network path from Windows",
            (SameFolder, WindowsW2ku("\\\\server\\share\\vms\\base.vhd")),
        ),
    ];
    let chains: Vec<(Setup, Chain)> = [Sibling, Encoded, SameFolder]
        .into_iter()
        .map(|setup| (setup, Chain::new(setup)))
        .collect();
    check_rows(rows, |name, (setup, way)| {
        let chain = &chains.iter().find(|(s, _)| *s == setup).unwrap().1;
        let folder = match way {
            NameOnly(_) => chain.parent.parent().unwrap(),
            _ => chain.child.parent().unwrap(),
        };
        let copy_path = folder.join(format!("{}.vhd", name.replace(' ', "-")));
        copy(&chain.child, &copy_path);
        let mut header = Header::read(&copy_path);
        match way {
            Locator(code) => header.keep_only(code),
            Ascii(code) => {
                let text = if code == b"Wi2r" {
                    "..\\base dir\\parent.vhd".to_string()
                } else {
                    chain
                        .parent
                        .canonicalize()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string()
                };
                rewrite_locator(&mut header, b"W2ku", code, text.as_bytes());
                header.keep_only(code);
            }
            NameOnly(name) => {
                header.clear_all_locators();
                if let Some(name) = name {
                    header.set_parent_name(name);
                }
            }
            WindowsW2ku(text) => {
                rewrite_locator(&mut header, b"W2ku", b"W2ku", &utf16le(text));
                header.keep_only(b"W2ku");
                header.set_parent_name("not-the-parent.vhd");
            }
        }
        header.write();
        assert_opens_with_parent(&copy_path, &chain.parent, &chain.model);
    });
}

// ---------------------------------------------------------------------------------------------
// Moved chains

#[test]
fn a_moved_chain_opens_by_its_relative_locator() {
    let dir = TempDir::new("moved");
    let old = dir.join("old");
    let new = dir.join("new");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    let mut model = make_base(&old.join("base.vhd"), 2 * MIB, 3);
    make_child(&old.join("child.vhd"), &old.join("base.vhd"), &mut model);
    // Renaming keeps the modification times, so the parent time stamp still matches.
    for name in ["base.vhd", "child.vhd"] {
        std::fs::rename(old.join(name), new.join(name)).unwrap();
    }
    let child = new.join("child.vhd");
    let header = Header::read(&child);
    let w2ku = utf16le_text(&locator_payload(&child, header.locator(b"W2ku")));
    assert_eq!(
        Path::new(&w2ku),
        old.canonicalize().unwrap().join("base.vhd")
    );
    assert!(!Path::new(&w2ku).exists(), "the absolute locator is stale");
    assert_opens_with_parent(&child, &new.join("base.vhd"), &model);

    // Another image (another unique id) now sits where the absolute locator points.
    make_base(&old.join("base.vhd"), 2 * MIB, 4);
    assert_opens_with_parent(&child, &new.join("base.vhd"), &model);

    // Even an impostor with the right unique id and time stamp there loses to the relative
    // locator, which Windows tries first...
    std::fs::remove_file(old.join("base.vhd")).unwrap();
    let id = open(&new.join("base.vhd")).unwrap().footer().unique_id;
    let options = CreateOptions {
        unique_id: Some(id),
        block_size: 512 << 10,
        timestamp: Some(OLD_TIMESTAMP),
        ..CreateOptions::new(DiskType::Dynamic, 2 * MIB)
    };
    let mut impostor = create(old.join("base.vhd"), &options).unwrap();
    impostor.write_at(&[0xEE; 4096], 8192).unwrap();
    drop(impostor);
    let modified = std::fs::metadata(new.join("base.vhd"))
        .unwrap()
        .modified()
        .unwrap();
    set_modified(&old.join("base.vhd"), modified);
    assert_opens_with_parent(&child, &new.join("base.vhd"), &model);
    // ...while without the relative locator, the absolute one finds the impostor (so the
    // order above is what made the difference).
    let no_relative = new.join("no-relative.vhd");
    copy(&child, &no_relative);
    let mut header = Header::read(&no_relative);
    header.clear_locator(header.locator(b"W2ru").0);
    header.write();
    let image = open(&no_relative).unwrap();
    assert_eq!(
        image.parent().unwrap().path(),
        old.canonicalize().unwrap().join("base.vhd")
    );
}

fn set_modified(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Parents named by the caller

#[test]
fn explicit_vhd_parents() {
    let dir = TempDir::new("explicit-vhd");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, 2 * MIB, 6);
    let mid = dir.join("mid.vhd");
    make_child(&mid, &base, &mut model);
    let top = dir.join("top.vhd");
    make_child(&top, &mid, &mut model);
    // Both parents move where no locator points, under other names.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (base2, mid2) = (elsewhere.join("b.vhd"), elsewhere.join("m.vhd"));
    std::fs::rename(&base, &base2).unwrap();
    std::fs::rename(&mid, &mid2).unwrap();
    let e = open(&top).unwrap_err();
    assert!(matches!(e, Error::ParentNotFound { .. }), "{e:?}");

    // The caller names the nearest parent; the next level is still not found...
    let e = open_with(&top, vec![ParentPath::Vhd(mid2.clone())]).unwrap_err();
    // The error says which parent could not be used, and why: its own parent is missing.
    match &e {
        Error::Parent { child, parent, .. } => assert_eq!((child, parent), (&top, &mid2)),
        other => panic!("expected Parent, got {other:?}"),
    }
    match e.root() {
        Error::ParentNotFound { child, .. } => assert_eq!(child, &mid2),
        other => panic!("expected ParentNotFound, got {other:?}"),
    }
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND");
    // ...until it names both.
    let image = open_with(
        &top,
        vec![
            ParentPath::Vhd(mid2.clone()),
            ParentPath::Vhd(base2.clone()),
        ],
    )
    .unwrap();
    assert_eq!(image.chain(), vec![top.as_path(), &mid2, &base2]);
    assert_same_bytes(&read_all(&image), &model, "explicit parents");
    drop(image);

    // A named parent must still carry the unique id the child records.
    let e = open_with(&top, vec![ParentPath::Vhd(base2.clone())]).unwrap_err();
    let top_header = Header::read(&top);
    let base_id = open(&base2).unwrap().footer().unique_id;
    let tried = tried_all(&[&base2], ParentRejection::DifferentDisk);
    assert_parent_rejected(&e, "ERR_VHD_PARENT_MISMATCH", &top, &base2, &tried);
    assert_message_names(&e, &[&show(&top), &show(&base2), "a different disk"]);
    // Named by the caller or not, neither id is shown.
    assert_message_hides(&e, &[top_header.parent_id(), base_id], &[]);

    // A named parent that is not there is the only place tried.
    let gone = dir.join("gone.vhd");
    let e = open_with(&top, vec![ParentPath::Vhd(gone.clone())]).unwrap_err();
    let tried = tried_all(&[&gone], ParentRejection::Missing);
    assert_parent_not_found(&e, &top, None, &tried);
    assert_message_names(&e, &[&show(&top), &show(&gone)]);
}

/// `expected_type` is about the image opened, not its parents.
#[test]
fn the_expected_type_is_the_childs() {
    let dir = TempDir::new("expected-type");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, MIB, 18);
    let child = dir.join("child.vhd");
    make_child(&child, &base, &mut model);
    let with_type = |disk_type| OpenOptions {
        expected_type: Some(disk_type),
        ..OpenOptions::default()
    };
    let image = Image::open(&child, &with_type(DiskType::Differencing)).unwrap();
    assert_same_bytes(&read_all(&image), &model, "expected differencing");
    drop(image);
    let e = Image::open(&child, &with_type(DiskType::Dynamic)).unwrap_err();
    assert!(
        matches!(&e, Error::WrongDiskType { path, expected: "dynamic", .. } if path == &child),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_WRONG_TYPE");
    assert_message_names(&e, &[&show(&child)]);
}

/// A stand-in parent with the right unique id but another block size (and another kind:
/// fixed) serves as well: reads go through its virtual disk, not its layout.
#[test]
fn a_parent_with_other_blocks_serves_as_well() {
    let dir = TempDir::new("other-blocks");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, 2 * MIB, 7);
    let base_data = model.clone();
    let child = dir.join("child.vhd");
    make_child(&child, &base, &mut model);
    let id = open(&base).unwrap().footer().unique_id;
    for (name, disk_type, block_size) in [
        ("dyn-2m.vhd", DiskType::Dynamic, 2 << 20),
        ("dyn-4k.vhd", DiskType::Dynamic, 4096),
        ("fixed.vhd", DiskType::Fixed, 0),
    ] {
        let stand_in = dir.join(name);
        let options = CreateOptions {
            unique_id: Some(id),
            block_size,
            ..CreateOptions::new(disk_type, 2 * MIB)
        };
        let mut image = create(&stand_in, &options).unwrap();
        image.write_at(&base_data, 0).unwrap();
        drop(image);
        let options = OpenOptions {
            parents: vec![ParentPath::Vhd(stand_in.clone())],
            // It was made after the child.
            ignore_parent_timestamp: true,
            ..OpenOptions::default()
        };
        let image = Image::open(&child, &options).unwrap();
        assert_eq!(image.parent().unwrap().path(), stand_in);
        assert_same_bytes(&read_all(&image), &model, name);
    }
}

/// A raw base: the child was made over a fixed image, and is opened over a raw file with
/// the same contents (no unique id to check), alone or below a named VHD.
#[test]
fn explicit_raw_parents() {
    let dir = TempDir::new("explicit-raw");
    let size = 2 * MIB + 1536;
    let fixed = dir.join("base.vhd");
    let options = CreateOptions {
        block_size: 512 << 10,
        ..CreateOptions::new(DiskType::Fixed, size)
    };
    let mut image = create(&fixed, &options).unwrap();
    let mut model = Rng::from_seed(8).bytes(size as usize);
    image.write_at(&model, 0).unwrap();
    drop(image);
    let child = dir.join("child.vhd");
    make_child(&child, &fixed, &mut model);
    let child_model = model.clone();
    let top = dir.join("top.vhd");
    make_child(&top, &child, &mut model);

    // The raw file: the fixed image without its footer. The fixed image goes away.
    let raw = dir.join("base.raw");
    let raw_bytes = file_bytes(&fixed, 0, size as usize);
    std::fs::write(&raw, &raw_bytes).unwrap();
    std::fs::remove_file(&fixed).unwrap();

    let image = open_with(&child, vec![ParentPath::Raw(raw.clone())]).unwrap();
    assert!(matches!(image.parent(), Some(Parent::Raw(_))));
    assert_eq!(image.chain(), vec![child.as_path(), &raw]);
    assert_same_bytes(&read_all(&image), &child_model, "child over raw");
    drop(image);

    let image = open_with(
        &top,
        vec![ParentPath::Vhd(child.clone()), ParentPath::Raw(raw.clone())],
    )
    .unwrap();
    assert_eq!(image.chain(), vec![top.as_path(), &child, &raw]);
    assert_same_bytes(&read_all(&image), &model, "top over child over raw");
    drop(image);

    // Writes into the top, over the raw base, and back after reopening.
    let mut image = open_with(
        &top,
        vec![ParentPath::Vhd(child.clone()), ParentPath::Raw(raw.clone())],
    )
    .unwrap();
    image.write_at(b"over the raw base", 1_000_000).unwrap();
    model[1_000_000..1_000_017].copy_from_slice(b"over the raw base");
    drop(image);
    let image = open_with(
        &top,
        vec![ParentPath::Vhd(child.clone()), ParentPath::Raw(raw.clone())],
    )
    .unwrap();
    assert_same_bytes(&read_all(&image), &model, "after a write");
    assert_eq!(
        std::fs::read(&raw).unwrap(),
        raw_bytes,
        "the raw base changed"
    );
    // (The top's chain holds a shared lock on the child, which is opened read-write next.)
    drop(image);

    // A missing raw file is an I/O error that names it.
    let gone = dir.join("gone.raw");
    let e = open_with(&child, vec![ParentPath::Raw(gone.clone())]).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_message_names(&e, &[&show(&gone)]);
}

// ---------------------------------------------------------------------------------------------
// A child larger than its parent

#[test]
fn a_child_larger_than_its_parent() {
    let dir = TempDir::new("larger");
    let base = dir.join("base.vhd");
    let parent_size = MIB + 512;
    let size = 3 * MIB + 1024;
    let base_data = make_base(&base, parent_size, 9);
    let child = dir.join("child.vhd");
    let options = CreateOptions {
        size,
        ..CreateOptions::differencing(&base)
    };
    let mut image = create(&child, &options).unwrap();
    assert_eq!(image.size(), size);
    let mut model = base_data.clone();
    model.resize(size as usize, 0);
    assert_same_bytes(&read_all(&image), &model, "past the parent's end: zeros");
    // Writes across the parent's end, wholly past it, unaligned, and at the very end.
    let mut rng = Rng::new("parent_resolution a_child_larger_than_its_parent");
    let writes = [
        (parent_size - 700, 1500usize),
        (parent_size + 3, 10),
        (2 * MIB - 100, 300),
        (size - 1, 1),
        (parent_size - 512, 512),
    ];
    for (offset, len) in writes {
        let data = rng.bytes(len);
        image.write_at(&data, offset).unwrap();
        model[offset as usize..offset as usize + len].copy_from_slice(&data);
    }
    assert_same_bytes(&read_all(&image), &model, "written");
    drop(image);
    let image = open(&child).unwrap();
    assert_same_bytes(&read_all(&image), &model, "reopened");
    drop(image);

    // The same over a raw parent that is shorter still: what the child holds (the sectors
    // its writes touched) is the child's, the rest is the short parent's, then zeros.
    let raw = dir.join("short.raw");
    std::fs::write(&raw, &base_data[..4096]).unwrap();
    let mut expected = vec![0u8; size as usize];
    expected[..4096].copy_from_slice(&base_data[..4096]);
    for (offset, len) in writes {
        let start = offset / 512 * 512;
        let end = (offset + len as u64).div_ceil(512) * 512;
        expected[start as usize..end as usize]
            .copy_from_slice(&model[start as usize..end as usize]);
    }
    let image = open_with(&child, vec![ParentPath::Raw(raw)]).unwrap();
    assert_same_bytes(&read_all(&image), &expected, "over a short raw parent");
}

// ---------------------------------------------------------------------------------------------
// Failures

#[test]
fn a_missing_parent_lists_the_places_tried() {
    let dir = TempDir::new("missing");
    let (p, c) = (dir.join("p"), dir.join("c"));
    std::fs::create_dir_all(&p).unwrap();
    std::fs::create_dir_all(&c).unwrap();
    let mut model = make_base(&p.join("base.vhd"), MIB, 10);
    let child = c.join("child.vhd");
    make_child(&child, &p.join("base.vhd"), &mut model);
    let p_abs = p.canonicalize().unwrap();
    std::fs::remove_file(p.join("base.vhd")).unwrap();

    let e = open(&child).unwrap_err();
    let expected_tried = vec![
        // W2ru `..\p\base.vhd`, from the child's folder.
        c.join("..").join("p").join("base.vhd"),
        // W2ku (and MacX), as written...
        p_abs.join("base.vhd"),
        // ...and their file name in the child's folder (also the header's name).
        c.join("base.vhd"),
    ];
    let tried = tried_all(&expected_tried, ParentRejection::Missing);
    assert_parent_not_found(&e, &child, Some("base.vhd"), &tried);
    let mut parts = vec![show(&child), "base.vhd".to_string()];
    parts.extend(expected_tried.iter().map(|p| show(p)));
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    assert_message_names(&e, &parts);
}

#[test]
fn another_image_where_the_parent_was() {
    let dir = TempDir::new("mismatch");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, MIB, 11);
    let child = dir.join("child.vhd");
    make_child(&child, &base, &mut model);
    let expected = format_unique_id(&Header::read(&child).parent_id());
    std::fs::remove_file(&base).unwrap();
    make_base(&base, MIB, 12);
    let found = format_unique_id(&open(&base).unwrap().footer().unique_id);
    assert_ne!(expected, found);

    let e = open(&child).unwrap_err();
    let tried = tried_all(&[&base], ParentRejection::DifferentDisk);
    assert_parent_rejected(&e, "ERR_VHD_PARENT_MISMATCH", &child, &base, &tried);
    assert_message_names(&e, &[&show(&child), &show(&base), "a different disk"]);
    // Neither the id the child expects nor the one found is shown.
    for id in [&expected, &found] {
        assert!(!e.to_string().contains(id.as_str()), "{e}");
    }
    // Ignoring the time stamp does not ignore the unique id.
    let options = OpenOptions {
        ignore_parent_timestamp: true,
        ..OpenOptions::default()
    };
    let e = Image::open(&child, &options).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_MISMATCH");
}

#[test]
fn a_parent_modified_after_the_child_was_made() {
    let dir = TempDir::new("modified");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, MIB, 13);
    let child = dir.join("child.vhd");
    make_child(&child, &base, &mut model);
    let header = Header::read(&child);
    let recorded = header.parent_timestamp();
    let modified = std::fs::metadata(&base).unwrap().modified().unwrap();
    assert_eq!(recorded, vhd_core::footer::vhd_timestamp(modified));
    assert_ne!(
        recorded, OLD_TIMESTAMP,
        "the parent's footer time stamp is not its mtime"
    );

    // An hour later, as far as the file system can tell.
    let later = modified + Duration::from_secs(3600);
    set_modified(&base, later);
    let e = open(&child).unwrap_err();
    let tried = tried_all(&[&base], ParentRejection::Modified);
    assert_parent_rejected(&e, "ERR_VHD_PARENT_MODIFIED", &child, &base, &tried);
    assert_message_names(
        &e,
        &[
            &show(&child),
            &show(&base),
            "modified since the child was made",
        ],
    );
    // Neither time stamp is shown.
    assert_message_hides(&e, &[], &[recorded, vhd_core::footer::vhd_timestamp(later)]);

    // The option to ignore it.
    let options = OpenOptions {
        ignore_parent_timestamp: true,
        ..OpenOptions::default()
    };
    let image = Image::open(&child, &options).unwrap();
    assert_same_bytes(&read_all(&image), &model, "time stamp ignored");
    drop(image);

    // A recorded 0 (diskpart) and the parent's footer time stamp are accepted as well.
    for accepted in [0, OLD_TIMESTAMP] {
        let mut header = Header::read(&child);
        header.set_parent_timestamp(accepted);
        header.write();
        assert_opens_with_parent(&child, &base, &model);
    }
    // Anything else is not.
    let mut header = Header::read(&child);
    header.set_parent_timestamp(recorded);
    header.write();
    assert_eq!(open(&child).unwrap_err().code(), "ERR_VHD_PARENT_MODIFIED");
}

#[test]
fn parent_loops() {
    let dir = TempDir::new("loops");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, MIB, 14);
    let a = dir.join("a.vhd");
    make_child(&a, &base, &mut model);
    let b = dir.join("b.vhd");
    make_child(&b, &a, &mut model);
    let (a_abs, b_abs) = (a.canonicalize().unwrap(), b.canonicalize().unwrap());

    let check_loop = |e: Error, members: &[&Path]| {
        assert_eq!(e.code(), "ERR_VHD_PARENT_LOOP", "{e}");
        match &e {
            Error::ParentLoop { chain } => {
                for m in members {
                    assert!(chain.iter().any(|c| c == m), "{chain:?} lacks {m:?}");
                }
            }
            other => panic!("expected ParentLoop, got {other:?}"),
        }
        let names: Vec<String> = members.iter().map(|m| show(m)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_message_names(&e, &names);
    };

    // Named by the caller, an image that is not the parent is just that, even when it is
    // in the chain already: A over B, A over itself.
    for parents in [vec![b.clone(), a.clone()], vec![a.clone()]] {
        let parents = parents.into_iter().map(ParentPath::Vhd).collect();
        let e = open_with(&a, parents).unwrap_err();
        assert_eq!(e.code(), "ERR_VHD_PARENT_MISMATCH", "{e}");
    }

    // In the files: A's header now names B (unique id, name; no locators, no time stamp).
    let b_id = open(&b).unwrap().footer().unique_id;
    let mut header = Header::read(&a);
    header.clear_all_locators();
    header.set_parent_name("b.vhd");
    header.set_parent_id(&b_id);
    header.set_parent_timestamp(0);
    header.write();
    // B's time stamp records A's mtime, which the header edit just changed.
    let options = OpenOptions {
        ignore_parent_timestamp: true,
        ..OpenOptions::default()
    };
    let e = Image::open(&b, &options).unwrap_err();
    check_loop(e, &[&b_abs, &a_abs]);
    let e = Image::open(&a, &options).unwrap_err();
    check_loop(e, &[&a_abs, &b_abs]);
    // The same loop through parents named by the caller: B over A over B.
    let options_named = OpenOptions {
        parents: vec![ParentPath::Vhd(a.clone()), ParentPath::Vhd(b.clone())],
        ..options.clone()
    };
    let e = Image::open(&b, &options_named).unwrap_err();
    check_loop(e, &[&b_abs, &a_abs]);

    // By unique id: A names a copy of B, whose parent is A.
    let b_copy = dir.join("b-copy.vhd");
    copy(&b, &b_copy);
    let mut header = Header::read(&a);
    header.set_parent_name("b-copy.vhd");
    header.write();
    let e = Image::open(&b, &options).unwrap_err();
    check_loop(e, &[&b_abs, &a_abs, &b_copy.canonicalize().unwrap()]);

    // An image that records its own unique id as its parent's, and names itself.
    let selfish = dir.join("selfish.vhd");
    copy(&b, &selfish);
    let selfish_id: [u8; 16] = {
        let len = file_len(&selfish);
        file_bytes(&selfish, len - 512 + 68, 16).try_into().unwrap()
    };
    let mut header = Header::read(&selfish);
    header.clear_all_locators();
    header.set_parent_name("selfish.vhd");
    header.set_parent_id(&selfish_id);
    header.write();
    let e = Image::open(&selfish, &options).unwrap_err();
    check_loop(e, &[&selfish.canonicalize().unwrap()]);
}

/// 64 differencing images over a base open (on a test thread's ordinary 2 MiB stack, in a
/// debug build); a 65th is refused by `create` (leaving no file) and, made by hand, fails to
/// open with ChainTooDeep.
#[test]
fn a_chain_deeper_than_the_limit() {
    let dir = TempDir::new("deep");
    let base = dir.join("level-0.vhd");
    let mut model = make_base(&base, 64 * 1024, 15);
    let level_path = |level: usize| dir.join(&format!("level-{level}.vhd"));
    // Level n is the n-th differencing image over the base.
    for level in 1..=MAX_CHAIN_DEPTH {
        let options = CreateOptions {
            timestamp: Some(OLD_TIMESTAMP),
            ..CreateOptions::differencing(level_path(level - 1))
        };
        let mut image =
            create(level_path(level), &options).unwrap_or_else(|e| panic!("level {level}: {e}"));
        let at = (level * 512) as u64;
        image.write_at(&[level as u8; 512], at).unwrap();
        model[at as usize..at as usize + 512].fill(level as u8);
    }
    let deepest = level_path(MAX_CHAIN_DEPTH);
    let image = open(&deepest).unwrap();
    assert_eq!(image.chain().len(), MAX_CHAIN_DEPTH + 1);
    assert_eq!(image.chain()[MAX_CHAIN_DEPTH], base.as_path());
    assert_same_bytes(&read_all(&image), &model, "64 levels");
    drop(image);

    let top = level_path(MAX_CHAIN_DEPTH + 1);
    let e = create(&top, &CreateOptions::differencing(&deepest)).unwrap_err();
    match &e {
        Error::ChainTooDeep { path, limit } => assert_eq!((path, *limit), (&top, MAX_CHAIN_DEPTH)),
        other => panic!("expected ChainTooDeep, got {other:?}"),
    }
    assert!(!top.exists(), "a refused create left a file behind");

    // Made by hand: a child of level 63 whose header is edited to name level 64.
    drop(
        create(
            &top,
            &CreateOptions::differencing(level_path(MAX_CHAIN_DEPTH - 1)),
        )
        .unwrap(),
    );
    let deepest_id = open(&deepest).unwrap().footer().unique_id;
    let mut header = Header::read(&top);
    header.clear_all_locators();
    header.set_parent_name(deepest.file_name().unwrap().to_str().unwrap());
    header.set_parent_id(&deepest_id);
    header.set_parent_timestamp(0);
    header.write();
    let e = open(&top).unwrap_err();
    match &e {
        Error::ChainTooDeep { path, limit } => {
            assert_eq!(*limit, MAX_CHAIN_DEPTH);
            assert!(path.starts_with(dir.path()), "{path:?}");
        }
        other => panic!("expected ChainTooDeep, got {other:?}"),
    }
    assert_eq!(e.code(), "ERR_VHD_CHAIN_TOO_DEEP");
    assert_message_names(&e, &[&show(dir.path()), &MAX_CHAIN_DEPTH.to_string()]);
}

/// With `overwrite`, a child may not replace an image of its own parent chain: the parent
/// would be destroyed and the child would be its own ancestor.
#[test]
fn a_child_may_not_overwrite_its_own_chain() {
    if !require_tool("sha256sum") {
        return;
    }
    let dir = TempDir::new("overwrite-chain");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, MIB, 17);
    let mid = dir.join("mid.vhd");
    make_child(&mid, &base, &mut model);
    let hashes = [sha256_file(&base), sha256_file(&mid)];
    for (target, parent) in [(&mid, &mid), (&base, &base), (&base, &mid)] {
        let options = CreateOptions {
            overwrite: true,
            ..CreateOptions::differencing(parent)
        };
        let e = create(target, &options).unwrap_err();
        // Over its own parent it is the output being the input; over an image below the
        // parent, a loop of the chain.
        let code = if target == parent {
            "ERR_VHD_OUTPUT_IS_INPUT"
        } else {
            "ERR_VHD_PARENT_LOOP"
        };
        assert_eq!(e.code(), code, "{e}");
        assert_message_names(&e, &[&show(&target.canonicalize().unwrap())]);
        assert_eq!(sha256_file(&base), hashes[0], "the base was touched");
        assert_eq!(sha256_file(&mid), hashes[1], "the parent was touched");
    }
    // A hard link is the same file under another name: its canonical path differs.
    let link = dir.join("link-to-base.vhd");
    std::fs::hard_link(&base, &link).unwrap();
    for parent in [&base, &mid] {
        let options = CreateOptions {
            overwrite: true,
            ..CreateOptions::differencing(parent)
        };
        let e = create(&link, &options).unwrap_err();
        let code = if parent == &base {
            "ERR_VHD_OUTPUT_IS_INPUT"
        } else {
            "ERR_VHD_PARENT_LOOP"
        };
        assert_eq!(e.code(), code, "{e}");
        assert_message_names(&e, &[&show(&link)]);
        assert_eq!(sha256_file(&base), hashes[0], "the base was touched");
        assert_eq!(sha256_file(&link), hashes[0], "the link was touched");
    }
    std::fs::remove_file(&link).unwrap();
    assert_opens_with_parent(&mid, &base, &model);
    // Overwriting an image outside the chain is still allowed.
    let other = dir.join("other.vhd");
    std::fs::write(&other, b"old contents").unwrap();
    let options = CreateOptions {
        overwrite: true,
        ..CreateOptions::differencing(&mid)
    };
    drop(create(&other, &options).unwrap());
    assert_opens_with_parent(&other, &mid, &model);
}

#[test]
fn a_corrupt_parent_reports_its_own_error() {
    let dir = TempDir::new("corrupt");
    let base = dir.join("base.vhd");
    let mut model = make_base(&base, MIB, 16);
    let child = dir.join("child.vhd");
    make_child(&child, &base, &mut model);
    let modified = std::fs::metadata(&base).unwrap().modified().unwrap();

    // A byte of the parent's dynamic header (its reserved area) flipped.
    let header = Header::read(&base);
    let at = header.offset + 900;
    let original = file_bytes(&base, at, 1);
    patch_file(&base, at, &[original[0] ^ 0x40]);
    set_modified(&base, modified);
    let e = open(&child).unwrap_err();
    // The error names the parent that failed, and keeps the parent's own error.
    match &e {
        Error::Parent { parent, .. } => assert_eq!(parent, &base),
        other => panic!("expected a Parent error, got {other:?}"),
    }
    match e.root() {
        Error::Checksum { structure, .. } => assert_eq!(*structure, "dynamic header"),
        other => panic!("expected the parent's checksum error, got {other:?}"),
    }
    let message = e.to_string();
    for part in ["base.vhd", "child.vhd", "checksum"] {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
    assert_eq!(e.code(), "ERR_VHD_CHECKSUM");
    // The option to ignore checksums reaches the parent too.
    let options = OpenOptions {
        ignore_checksums: true,
        ..OpenOptions::default()
    };
    let image = Image::open(&child, &options).unwrap();
    assert_same_bytes(&read_all(&image), &model, "checksums ignored");
    assert!(
        image.read_only_reason().is_none(),
        "the child itself is sound"
    );
    drop(image);
    patch_file(&base, at, &original);

    // A BAT entry of the parent pointing past its end.
    let bat = be_u64(&header.bytes, 16);
    let entry = file_bytes(&base, bat, 4);
    patch_file(&base, bat, &0x00FF_FFFFu32.to_be_bytes());
    set_modified(&base, modified);
    let e = open(&child).unwrap_err();
    assert!(
        matches!(e.root(), Error::BatEntryOutOfRange { .. }),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_BAT_OUT_OF_RANGE");
    patch_file(&base, bat, &entry);

    // Not a VHD at all: it never verified as the parent, so nothing of it is told but that
    // (not the bytes where its footer should be).
    let len = file_len(&base);
    std::fs::write(&base, vec![0x42u8; len as usize]).unwrap();
    set_modified(&base, modified);
    let e = open(&child).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{e}");
    assert_message_names(&e, &[&format!("{} (not a VHD)", show(&base))]);
    assert!(!e.to_string().contains("BBBB"), "{e}");
    // Named by the caller, it is described in full: it is the caller's own file.
    let e = open_with(&child, vec![ParentPath::Vhd(base.clone())]).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_BAD_COOKIE", "{e}");
    assert!(
        matches!(&e, Error::Parent { parent, .. } if parent == &base),
        "{e:?}"
    );
}

/// A file that is not a VHD where the relative locator points does not stop the search: the
/// absolute locator still finds the parent. When nothing better is found, the error lists
/// the stray file as not a VHD (and nothing more of it).
#[test]
fn a_stray_file_at_one_locator_does_not_hide_the_parent() {
    let dir = TempDir::new("stray");
    let home = dir.join("home");
    let away = dir.join("away");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&away).unwrap();
    let mut model = make_base(&home.join("base.vhd"), MIB, 21);
    make_child(&home.join("child.vhd"), &home.join("base.vhd"), &mut model);
    // The child moves alone; a non-VHD file of the parent's name waits beside it.
    std::fs::rename(home.join("child.vhd"), away.join("child.vhd")).unwrap();
    std::fs::write(away.join("base.vhd"), vec![0x42u8; 4096]).unwrap();
    assert_opens_with_parent(&away.join("child.vhd"), &home.join("base.vhd"), &model);

    std::fs::remove_file(home.join("base.vhd")).unwrap();
    let e = open(&away.join("child.vhd")).unwrap_err();
    match &e {
        Error::ParentNotFound { tried, .. } => {
            assert_eq!(tried[0].path, away.join("base.vhd"));
            assert_eq!(tried[0].rejection, ParentRejection::NotVhd);
            assert!(tried[1..]
                .iter()
                .all(|t| t.rejection == ParentRejection::Missing));
        }
        other => panic!("expected ParentNotFound, got {other:?}"),
    }
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND");
    assert_message_names(&e, &["child.vhd", "base.vhd (not a VHD)", "(missing)"]);
}

/// A raw base has no parent: naming more parents after it is a mistake, not silently ignored.
#[test]
fn nothing_may_follow_a_raw_base() {
    let dir = TempDir::new("raw-then");
    let mut model = make_base(&dir.join("base.vhd"), MIB, 22);
    make_child(&dir.join("child.vhd"), &dir.join("base.vhd"), &mut model);
    let raw = dir.join("base.raw");
    std::fs::write(&raw, vec![0u8; MIB as usize]).unwrap();
    let e = open_with(
        &dir.join("child.vhd"),
        vec![ParentPath::Raw(raw.clone()), ParentPath::Raw(raw)],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                name: "parents",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), "ERR_VHD_INVALID_ARGUMENT");
}
