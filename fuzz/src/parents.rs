//! The `parent_search` target: the input describes a folder of small images that name each
//! other as parents (which ids they carry and expect, which time stamps they record, which
//! locators in which spellings); the folder is written, then every image is opened with
//! and without a parent root. Errors are fine; a panic, a hang, more candidate files opened
//! than `MAX_PARENT_CANDIDATES`, or an error that shows a unique id or a byte of a file that
//! is not a VHD is a bug.
//!
//! Every path an input can name is one of [`spelling`]'s: inside the folder, `/dev/null`,
//! `/dev/zero`, or the secret file beside the folder. Nothing else on the host is touched.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use vhd_core::dynamic_header::DynamicHeader;
use vhd_core::footer::{format_unique_id, Footer, FOOTER_SIZE, VHD_EPOCH_UNIX_SECONDS};
use vhd_core::parent_locator::platform;
use vhd_core::{create, CreateOptions, DiskType, Image, OpenOptions, ParentLocator};

/// The unique ids an input may give its images (or expect of their parents).
const IDS: [[u8; 16]; 8] = [
    *b"fuzz-parent-id-0",
    *b"fuzz-parent-id-1",
    *b"fuzz-parent-id-2",
    *b"fuzz-parent-id-3",
    *b"fuzz-parent-id-4",
    *b"fuzz-parent-id-5",
    *b"fuzz-parent-id-6",
    *b"fuzz-parent-id-7",
];

/// The bytes of the secret file beside the folder: none may appear in an error.
const SECRET: &[u8; 8] = b"S3cr3t!#";

const DISK_SIZE: u64 = 64 * 1024;

/// The input, read byte by byte (zeros once it is used up).
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }
}

/// The folder (`…/root`) the images are written to for each input, and the secret file
/// beside it; one per process, emptied for each input.
fn folder() -> PathBuf {
    let top = std::env::temp_dir().join(format!("vhd-core-fuzz-parents-{}", std::process::id()));
    let root = top.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for dir in [&root, &root.join("sub")] {
        std::fs::create_dir_all(dir).expect("cannot create the fuzzing folder");
    }
    let secret: Vec<u8> = SECRET.iter().copied().cycle().take(4099).collect();
    std::fs::write(top.join("secret"), secret).expect("cannot write the secret file");
    root.canonicalize()
        .expect("cannot resolve the fuzzing folder")
}

/// A locator text for image `target` of the folder `root`, in the spelling `how` picks,
/// or one of the other things a child may name.
fn spelling(how: usize, target: usize, root: &Path) -> String {
    let name = format!("img-{target}.vhd");
    match how % 16 {
        0 => name,
        1 => format!(".\\{name}"),
        2 => format!("sub\\..\\{name}"),
        3 => root.join(&name).to_string_lossy().into_owned(),
        4 => format!("..\\root\\{name}"),
        5 => format!("link-{target}.vhd"),
        6 => format!("C:\\vm\\{name}"),
        7 => format!("\\\\server\\share\\{name}"),
        8 => "fifo.vhd".into(),
        9 => "/dev/zero".into(),
        10 => "/dev/null".into(),
        11 => "sub".into(),
        12 => "loop.vhd".into(),
        13 => "..\\secret".into(),
        14 => root.with_file_name("secret").to_string_lossy().into_owned(),
        _ => format!("missing-{target}.vhd"),
    }
}

/// Writes the folder the input describes; returns the images' paths.
fn write_folder(script: &mut Script, root: &Path) -> Vec<PathBuf> {
    let fifo = std::ffi::CString::new(root.join("fifo.vhd").to_string_lossy().as_bytes())
        .expect("no NUL in the folder's path");
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
    let _ = std::os::unix::fs::symlink(root.join("loop.vhd"), root.join("loop.vhd"));
    let count = 2 + script.below(6);
    let paths: Vec<PathBuf> = (0..count)
        .map(|i| root.join(format!("img-{i}.vhd")))
        .collect();
    let times: Vec<u32> = (0..count)
        .map(|_| 400_000_000 + u32::from(script.byte()) * 977)
        .collect();
    // Image 0 is a fixed base; the others fixed or differencing, as the input says.
    for (i, path) in paths.iter().enumerate() {
        let unique_id = IDS[script.below(IDS.len())];
        if i == 0 || script.below(4) == 0 {
            let options = CreateOptions {
                unique_id: Some(unique_id),
                ..CreateOptions::new(DiskType::Fixed, DISK_SIZE)
            };
            let mut image = create(path, &options).expect("cannot create a base");
            vhd_core::VirtualDisk::write_at(&mut image, &[script.byte(); 512], 0)
                .expect("cannot write a base");
        } else {
            write_child(script, path, unique_id, root, &paths[0], &times);
        }
        if script.below(4) == 0 {
            let _ = std::os::unix::fs::symlink(path, root.join(format!("link-{i}.vhd")));
        }
    }
    for (path, time) in paths.iter().zip(&times) {
        let when = UNIX_EPOCH + Duration::from_secs(VHD_EPOCH_UNIX_SECONDS + u64::from(*time));
        let file = File::options()
            .write(true)
            .open(path)
            .expect("cannot open an image");
        file.set_modified(when).expect("cannot date an image");
    }
    paths
}

/// A differencing image at `path` (made over `base`, then given the parent id, time stamp,
/// name and locators the input says; the locators' data goes where the footer was).
fn write_child(
    script: &mut Script,
    path: &Path,
    unique_id: [u8; 16],
    root: &Path,
    base: &Path,
    times: &[u32],
) {
    let options = CreateOptions {
        unique_id: Some(unique_id),
        ..CreateOptions::differencing(base)
    };
    drop(create(path, &options).expect("cannot create a child"));
    let file = File::options()
        .read(true)
        .write(true)
        .open(path)
        .expect("cannot open a child");
    let size = file.metadata().expect("cannot stat a child").len();
    let mut footer_bytes = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut footer_bytes, size - FOOTER_SIZE as u64)
        .expect("cannot read a footer");
    let footer = Footer::parse(&footer_bytes, size - FOOTER_SIZE as u64).expect("a footer");
    let mut header_bytes = [0u8; 1024];
    file.read_exact_at(&mut header_bytes, footer.data_offset)
        .expect("cannot read a header");
    let mut header = DynamicHeader::parse(&header_bytes, footer.data_offset).expect("a header");
    header.parent_unique_id = IDS[script.below(IDS.len())];
    header.parent_timestamp = match script.below(3) {
        0 => 0,
        1 => times[script.below(times.len())],
        _ => u32::from(script.byte()),
    };
    let count = script.below(8) + 1;
    let name = spelling(script.below(16), script.below(count), root);
    let _ = header.set_parent_name(&name);
    let codes = [
        platform::W2RU,
        platform::W2KU,
        platform::WI2R,
        platform::WI2K,
        platform::MACX,
    ];
    let mut data = Vec::new();
    let data_at = size - FOOTER_SIZE as u64;
    header.parent_locators = [ParentLocator::default(); 8];
    for entry in header.parent_locators.iter_mut().take(script.below(9)) {
        let code = codes[script.below(codes.len())];
        let text = spelling(script.below(16), script.below(times.len()), root);
        let payload: Vec<u8> = match code {
            platform::W2RU | platform::W2KU => {
                text.encode_utf16().flat_map(u16::to_le_bytes).collect()
            }
            platform::MACX => format!("file://{}", text.replace('\\', "/")).into_bytes(),
            _ => text.into_bytes(),
        };
        let payload = &payload[..payload.len().min(512)];
        let start = data.len();
        *entry = ParentLocator {
            platform_code: code,
            platform_data_space: 512,
            platform_data_length: payload.len() as u32,
            reserved: 0,
            platform_data_offset: data_at + start as u64,
        };
        data.extend_from_slice(payload);
        data.resize(start + 512, 0);
    }
    header.update_checksum();
    // The footer moves past the locators' data; the header names them.
    file.write_all_at(&footer_bytes, data_at + data.len() as u64)
        .expect("cannot move the footer");
    file.write_all_at(&data, data_at)
        .expect("cannot write locator data");
    file.write_all_at(&header.to_bytes(), footer.data_offset)
        .expect("cannot write a header");
}

/// Runs one input (see the module documentation).
pub fn search_parents(data: &[u8]) {
    let mut script = Script(data);
    let root = folder();
    let paths = write_folder(&mut script, &root);
    let hidden: Vec<String> = IDS
        .iter()
        .flat_map(|id| {
            [
                format_unique_id(id),
                String::from_utf8_lossy(id).into_owned(),
            ]
        })
        .chain((0..SECRET.len()).map(|i| {
            String::from_utf8_lossy(&[&SECRET[i..], &SECRET[..i]].concat()[..4]).into_owned()
        }))
        .collect();
    for path in &paths {
        for confined in [true, false] {
            let options = OpenOptions {
                read_only: true,
                parent_root: confined.then(|| root.clone()),
                ignore_parent_timestamp: script.below(4) == 0,
                ..OpenOptions::default()
            };
            let before = vhd_core::candidates_opened();
            let result = Image::open(path, &options);
            let opened = vhd_core::candidates_opened() - before;
            assert!(
                opened <= vhd_core::MAX_PARENT_CANDIDATES as u64,
                "{opened} candidate files opened"
            );
            match result {
                Ok(image) => {
                    // Every link carries the unique id its child records.
                    let mut level = &image;
                    while let Some(vhd_core::Parent::Image(parent)) = level.parent() {
                        let recorded = level.header().expect("a header").parent_unique_id;
                        assert_eq!(recorded, parent.footer().unique_id, "a wrong link");
                        if confined {
                            let resolved = parent.path().canonicalize().expect("a parent");
                            assert!(resolved.starts_with(&root), "{resolved:?} outside");
                        }
                        level = parent;
                    }
                }
                Err(e) => {
                    let text = format!("{e} {e:?}");
                    for h in &hidden {
                        assert!(!text.contains(h.as_str()), "{text} shows {h:?}");
                    }
                }
            }
        }
    }
}
