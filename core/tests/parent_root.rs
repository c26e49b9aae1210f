//! [`OpenOptions::parent_root`] reaches every operation of the core that opens a parent
//! chain: each entry of [`ENTRIES`] runs on a chain whose base lies outside the folder its
//! other images are in, once with that folder as the root (refused with
//! `ERR_VHD_PARENT_OUTSIDE_ROOT`, every file as it was, no output left) and once with a
//! root that holds the whole chain (it works). Operations that name the parent themselves
//! (create over a parent, snapshot, rebase) trust it, and apply the root below it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vhd_core::ops::{
    commit, compact, convert, open_source, rebase, repair, resize, snapshot, ConvertOptions,
    OutputFormat, Progress, ResizeOptions, SourceFormat,
};
use vhd_core::{
    check, create, CheckOptions, CreateOptions, DiskType, FindingKind, Image, OpenOptions,
    VirtualDisk,
};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;

/// `dir/outside/base.vhd` ← `dir/inside/mid.vhd` ← `dir/inside/child.vhd`, each holding
/// data of its own.
struct Chain {
    dir: TempDir,
    inside: PathBuf,
    base: PathBuf,
    mid: PathBuf,
    child: PathBuf,
}

impl Chain {
    fn new() -> Chain {
        let dir = TempDir::new("parent-root");
        let inside = dir.join("inside");
        std::fs::create_dir(&inside).unwrap();
        std::fs::create_dir(dir.join("outside")).unwrap();
        let base = dir.join("outside/base.vhd");
        let mid = inside.join("mid.vhd");
        let child = inside.join("child.vhd");
        let fill = |mut image: Image, offset: u64, byte: u8| {
            image.write_at(&[byte; 4096], offset).unwrap();
        };
        fill(
            create(&base, &CreateOptions::new(DiskType::Dynamic, 4 * MIB)).unwrap(),
            0,
            1,
        );
        fill(
            create(&mid, &CreateOptions::differencing(&base)).unwrap(),
            MIB,
            2,
        );
        fill(
            create(&child, &CreateOptions::differencing(&mid)).unwrap(),
            2 * MIB,
            3,
        );
        Chain {
            dir,
            inside,
            base,
            mid,
            child,
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.inside.join(name)
    }

    /// Every file under the folder, with its contents' hash.
    fn files(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, files: &mut BTreeMap<PathBuf, String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, files);
                } else {
                    files.insert(path.clone(), sha256_file(&path));
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(self.dir.path(), &mut files);
        files
    }
}

/// `open` with its parent root set to `root`.
fn rooted(root: &Path) -> OpenOptions {
    OpenOptions {
        parent_root: Some(root.to_path_buf()),
        ..OpenOptions::default()
    }
}

/// What an entry reports: `Ok` when it worked, else the error's code (or, for `check`,
/// which reports rather than fails, the code of the finding about the parent).
type Outcome = Result<(), String>;

fn code<T>(result: vhd_core::Result<T>) -> Outcome {
    result.map(drop).map_err(|e| e.code().to_string())
}

/// A check report: `Ok` when clean, the code of its parent finding otherwise.
fn parent_finding(report: &vhd_core::CheckReport) -> Outcome {
    match report.findings_of(FindingKind::ParentUnusable).next() {
        Some(finding) => Err(finding.kind.code().to_string()),
        None if report.is_clean() => Ok(()),
        None => panic!("unexpected findings: {:?}", report.findings()),
    }
}

struct Entry {
    name: &'static str,
    run: fn(&Chain, OpenOptions) -> Outcome,
    /// What the refused run reports.
    refused_with: &'static str,
}

const OUTSIDE: &str = "ERR_VHD_PARENT_OUTSIDE_ROOT";

const ENTRIES: &[Entry] = &[
    Entry {
        name: "Image::open",
        run: |c, open| code(Image::open(&c.child, &open)),
        refused_with: OUTSIDE,
    },
    Entry {
        name: "Image::open_file",
        run: |c, open| {
            let file = std::fs::File::options()
                .read(true)
                .write(true)
                .open(&c.child)
                .unwrap();
            code(Image::open_file(file, &c.child, &open))
        },
        refused_with: OUTSIDE,
    },
    Entry {
        name: "create (differencing, over a named parent)",
        run: |c, open| {
            let options = CreateOptions {
                parent_open: open,
                ..CreateOptions::differencing(&c.mid)
            };
            code(create(c.out("new.vhd"), &options))
        },
        refused_with: OUTSIDE,
    },
    Entry {
        name: "snapshot",
        run: |c, open| code(snapshot(&c.mid, &c.out("snap.vhd"), &open)),
        refused_with: OUTSIDE,
    },
    Entry {
        name: "rebase",
        run: |c, open| code(rebase(&c.child, &c.mid, &open)),
        refused_with: OUTSIDE,
    },
    Entry {
        name: "commit",
        run: |c, open| code(commit(&c.child, &open, Progress::default())),
        refused_with: OUTSIDE,
    },
    Entry {
        name: "compact",
        run: |c, open| code(compact(&c.child, &open, Progress::default())),
        refused_with: OUTSIDE,
    },
    Entry {
        name: "resize",
        run: |c, open| {
            let options = ResizeOptions { force: false, open };
            code(resize(&c.child, 8 * MIB, &options, Progress::default()))
        },
        refused_with: OUTSIDE,
    },
    Entry {
        name: "convert",
        run: |c, open| {
            let options = ConvertOptions {
                open,
                ..ConvertOptions::new(OutputFormat::Raw)
            };
            code(convert(
                &c.child,
                &c.out("flat.raw"),
                &options,
                Progress::default(),
            ))
        },
        refused_with: OUTSIDE,
    },
    Entry {
        name: "open_source (the VHD stream's source)",
        run: |c, open| code(open_source(&c.child, SourceFormat::Vhd, &open)),
        refused_with: OUTSIDE,
    },
    Entry {
        name: "check",
        run: |c, open| parent_finding(&check(&c.child, &CheckOptions::from(&open)).unwrap()),
        refused_with: "parent-unusable",
    },
    Entry {
        name: "repair",
        run: |c, open| parent_finding(&repair(&c.child, &CheckOptions::from(&open)).unwrap().after),
        refused_with: "parent-unusable",
    },
];

#[test]
fn every_operation_that_opens_a_chain_keeps_to_the_parent_root() {
    for entry in ENTRIES {
        let chain = Chain::new();
        let before = chain.files();
        let refused = (entry.run)(&chain, rooted(&chain.inside));
        assert_eq!(
            refused.as_ref().map_err(String::as_str),
            Err(entry.refused_with),
            "{}",
            entry.name
        );
        assert_eq!(chain.files(), before, "{}: files changed", entry.name);
        let worked = (entry.run)(&chain, rooted(chain.dir.path()));
        assert_eq!(worked, Ok(()), "{}", entry.name);
    }
}

#[test]
fn a_parent_the_caller_names_is_trusted_and_the_new_child_opens_over_it() {
    let chain = Chain::new();
    let open = rooted(&chain.inside);
    // The base is outside the root, but named: create, snapshot and rebase accept it.
    let created = create(
        chain.out("over-base.vhd"),
        &CreateOptions {
            parent_open: open.clone(),
            ..CreateOptions::differencing(&chain.base)
        },
    )
    .unwrap();
    assert_eq!(
        created.chain(),
        [chain.out("over-base.vhd"), chain.base.clone()]
    );
    drop(created);
    drop(snapshot(&chain.base, &chain.out("snap.vhd"), &open).unwrap());
    // Found through its locators instead, the same parent is refused.
    let err = Image::open(chain.out("snap.vhd"), &open).unwrap_err();
    assert_eq!(err.code(), OUTSIDE, "{err}");
    rebase(&chain.mid, &chain.base, &open).unwrap();
}

#[test]
fn rebase_refuses_a_read_only_open_and_named_parents() {
    let chain = Chain::new();
    let before = chain.files();
    let read_only = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    let named = OpenOptions {
        parents: vec![vhd_core::ParentPath::Vhd(chain.base.clone())],
        ..OpenOptions::default()
    };
    for options in [read_only, named] {
        let err = rebase(&chain.child, &chain.mid, &options).unwrap_err();
        assert_eq!(err.code(), "ERR_VHD_INVALID_ARGUMENT", "{err}");
    }
    assert_eq!(chain.files(), before);
}
