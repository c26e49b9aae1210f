//! Parent locators written by an attacker: what a crafted child can make the library open,
//! read, reveal or spend while it looks for the parent.
//!
//! - Nothing of a file that did not verify as the parent (its bytes, size, unique id, time
//!   stamp) reaches an error, in any formatting; the errors say in words why each candidate
//!   was rejected.
//! - FIFOs and devices are never opened as parents (and a FIFO swapped in behind a symbolic
//!   link while the search runs does not make it hang).
//! - The search is linear: spellings of one file are tried once, failures are remembered for
//!   the whole open, and the number of candidates opened per open is bounded.
//! - A seeded campaign: folders of crafted images naming each other (random spellings,
//!   loops, missing files, wrong ids, FIFOs, links, files outside the root).
//!
//! The images here are written byte by byte by this file (not by the library), so that the
//! library is not checked against itself.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vhd_core::{Error, Image, OpenOptions, ParentPath};
use vhd_testkit::*;

// ---------------------------------------------------------------------------------------------
// Writing images by hand

const SECTOR: usize = 512;
/// The virtual size of every image made here.
const DISK_SIZE: u64 = 64 * 1024;
const BLOCK_SIZE: u32 = 4096;
/// Seconds from 1970 to 2000, the VHD epoch.
const VHD_EPOCH: u64 = 946_684_800;

/// A parent locator entry to write: its platform code and payload.
#[derive(Clone, Debug)]
struct Locator {
    code: [u8; 4],
    payload: Vec<u8>,
}

impl Locator {
    /// A Windows path (`W2ru`, `W2ku`: UTF-16LE; `Wi2r`, `Wi2k`: ASCII) or a `MacX` URL.
    fn new(code: &[u8; 4], text: &str) -> Locator {
        let payload = match code {
            b"W2ru" | b"W2ku" => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            _ => text.as_bytes().to_vec(),
        };
        Locator {
            code: *code,
            payload,
        }
    }
}

/// The 512-byte footer of an image of `DISK_SIZE` bytes.
fn footer(disk_type: u32, data_offset: u64, unique_id: &[u8; 16], timestamp: u32) -> Vec<u8> {
    let mut f = vec![0u8; SECTOR];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes());
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&data_offset.to_be_bytes());
    f[24..28].copy_from_slice(&timestamp.to_be_bytes());
    f[28..32].copy_from_slice(b"test");
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&DISK_SIZE.to_be_bytes());
    f[48..56].copy_from_slice(&DISK_SIZE.to_be_bytes());
    let (c, h, s) = spec_geometry(DISK_SIZE / 512);
    f[56..58].copy_from_slice(&(c as u16).to_be_bytes());
    f[58] = h as u8;
    f[59] = s as u8;
    f[60..64].copy_from_slice(&disk_type.to_be_bytes());
    f[68..84].copy_from_slice(unique_id);
    fix_footer_checksum(&mut f);
    f
}

/// A fixed image holding `data` (`DISK_SIZE` bytes).
fn write_fixed(path: &Path, unique_id: &[u8; 16], data: &[u8]) {
    assert_eq!(data.len() as u64, DISK_SIZE);
    let mut bytes = data.to_vec();
    bytes.extend(footer(2, u64::MAX, unique_id, 0x0BAD_F00D));
    std::fs::write(path, bytes).unwrap();
}

/// What a crafted differencing child records about its parent.
#[derive(Clone, Debug)]
struct ChildSpec {
    unique_id: [u8; 16],
    parent_id: [u8; 16],
    parent_timestamp: u32,
    parent_name: String,
    locators: Vec<Locator>,
}

/// A differencing image with no block of its own (it reads as its parent): the footer copy,
/// the dynamic header at 512, the BAT at 1536, each locator's data in a 512-byte sector of
/// its own from 2048, the footer.
fn write_child(path: &Path, spec: &ChildSpec) {
    assert!(spec.locators.len() <= 8);
    let entries = (DISK_SIZE / u64::from(BLOCK_SIZE)) as u32;
    let locators_at = 2048u64;
    let footer_at = locators_at + 512 * spec.locators.len() as u64;
    let foot = footer(4, 512, &spec.unique_id, 0x0BAD_F00D);
    let mut header = vec![0u8; 1024];
    header[0..8].copy_from_slice(b"cxsparse");
    header[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    header[16..24].copy_from_slice(&1536u64.to_be_bytes());
    header[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    header[28..32].copy_from_slice(&entries.to_be_bytes());
    header[32..36].copy_from_slice(&BLOCK_SIZE.to_be_bytes());
    header[40..56].copy_from_slice(&spec.parent_id);
    header[56..60].copy_from_slice(&spec.parent_timestamp.to_be_bytes());
    for (i, unit) in spec.parent_name.encode_utf16().take(256).enumerate() {
        header[64 + 2 * i..66 + 2 * i].copy_from_slice(&unit.to_be_bytes());
    }
    let mut data = Vec::new();
    for (i, locator) in spec.locators.iter().enumerate() {
        let payload = &locator.payload[..locator.payload.len().min(512)];
        let entry = &mut header[576 + 24 * i..600 + 24 * i];
        entry[0..4].copy_from_slice(&locator.code);
        entry[4..8].copy_from_slice(&512u32.to_be_bytes());
        entry[8..12].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        entry[16..24].copy_from_slice(&(locators_at + 512 * i as u64).to_be_bytes());
        let mut sector = payload.to_vec();
        sector.resize(512, 0);
        data.extend(sector);
    }
    fix_header_checksum(&mut header);
    let mut bat = vec![0xFFu8; 512];
    bat[4 * entries as usize..].fill(0);
    let mut bytes = foot.clone();
    bytes.extend(&header);
    bytes.extend(&bat);
    bytes.extend(&data);
    assert_eq!(bytes.len() as u64, footer_at);
    bytes.extend(&foot);
    std::fs::write(path, bytes).unwrap();
}

/// A child of the parent with `parent_id`, naming it through `locators` only, recording no
/// parent time stamp (0, as diskpart writes).
fn child_naming(path: &Path, unique_id: [u8; 16], parent_id: [u8; 16], locators: Vec<Locator>) {
    write_child(
        path,
        &ChildSpec {
            unique_id,
            parent_id,
            parent_timestamp: 0,
            parent_name: String::new(),
            locators,
        },
    );
}

/// The VHD time stamp of a file's modification time.
fn mtime_timestamp(path: &Path) -> u32 {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let unix = modified
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (unix - VHD_EPOCH) as u32
}

fn id(n: u8) -> [u8; 16] {
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8 * 7) ^ 0xA5;
    }
    id
}

fn read_only_within(root: Option<&Path>) -> OpenOptions {
    OpenOptions {
        read_only: true,
        parent_root: root.map(Path::to_path_buf),
        ..OpenOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// What must not appear in an error

/// Every way a unique id may be written: hex in both cases, with and without dashes (the
/// GUID form too, whose first three fields are little-endian), in braces, and as a list of
/// bytes (`Debug` of an array).
fn id_spellings(id: &[u8; 16]) -> Vec<String> {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let dashed = vhd_core::footer::format_unique_id(id);
    let mut guid_bytes = *id;
    guid_bytes[0..4].reverse();
    guid_bytes[4..6].reverse();
    guid_bytes[6..8].reverse();
    let guid_hex: String = guid_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let guid = format!(
        "{}-{}-{}-{}-{}",
        &guid_hex[0..8],
        &guid_hex[8..12],
        &guid_hex[12..16],
        &guid_hex[16..20],
        &guid_hex[20..32]
    );
    let mut all = Vec::new();
    for text in [hex, dashed, guid_hex, guid] {
        all.push(format!("{{{text}}}"));
        all.push(text.to_uppercase());
        // Any 8 consecutive hex digits of it is already too much.
        let plain: String = text.chars().filter(|c| *c != '-').collect();
        for start in (0..=plain.len() - 8).step_by(4) {
            all.push(plain[start..start + 8].to_string());
            all.push(plain[start..start + 8].to_uppercase());
        }
        all.push(text);
    }
    all.push(format!("{:?}", id));
    all.push(format!("{:?}", &id[..8]));
    all.push(format!("{:02x?}", id));
    all.push(format!("{:02X?}", &id[..8]));
    all
}

/// The numbers in `text` (maximal runs of decimal digits).
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty() && t.len() < 20)
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Panics unless no id of `ids`, no number of `numbers_not`, and no text of `texts_not`
/// appears in `text`.
#[track_caller]
fn assert_reveals_nothing(text: &str, ids: &[[u8; 16]], numbers_not: &[u64], texts_not: &[&str]) {
    for id in ids {
        for spelling in id_spellings(id) {
            assert!(
                !text.contains(&spelling),
                "{text:?} reveals the unique id {spelling:?}"
            );
        }
    }
    for n in numbers(text) {
        assert!(!numbers_not.contains(&n), "{text:?} reveals the number {n}");
    }
    for t in texts_not {
        assert!(!text.contains(t), "{text:?} reveals {t:?}");
    }
}

/// The error's message and its `Debug` form (what a caller may log or return).
fn shown(e: &Error) -> String {
    format!("{e}\n{e:?}")
}

/// Runs `f` on a thread of its own and waits at most `limit` for it: a hang is a failure
/// (the stuck thread is abandoned; the process ends with the test binary).
#[track_caller]
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Probing the host through errors

/// A file that is not a VHD, outside the child's folder, made of a repeated 4-byte pattern
/// (so that any 4 bytes of it read back show in a message), of an unusual size.
fn secret_file(path: &Path, size: usize) {
    let bytes: Vec<u8> = b"Zq7#".iter().copied().cycle().take(size).collect();
    std::fs::write(path, bytes).unwrap();
}

const SECRET_ROTATIONS: [&str; 4] = ["Zq7#", "q7#Z", "7#Zq", "#Zq7"];

/// `/etc/passwd`-style probe: the child's locators name a file that is not a VHD. The error
/// says the file is not a VHD, and shows none of its bytes and not its size, whatever its
/// size (long enough for a footer or not) and however the candidate is reached.
#[test]
fn a_locator_naming_a_host_file_reveals_nothing_of_it() {
    let dir = TempDir::new("probe");
    let vm = dir.join("vm");
    std::fs::create_dir(&vm).unwrap();
    let child = vm.join("child.vhd");
    for (size, name) in [
        (123_457usize, "secret-a"),
        (100_003, "secret-b"),
        (3_001, "secret-c"),
        (509, "secret-d"),
        (337, "secret-e"),
        (0, "secret-f"),
    ] {
        let secret = dir.join(name);
        secret_file(&secret, size);
        let secret_text = secret.to_str().unwrap().to_string();
        for locators in [
            vec![Locator::new(b"W2ku", &secret_text)],
            vec![Locator::new(b"MacX", &format!("file://{secret_text}"))],
            vec![Locator::new(b"W2ru", &format!("..\\{name}"))],
        ] {
            child_naming(&child, id(1), id(2), locators);
            for ignore_checksums in [false, true] {
                let options = OpenOptions {
                    ignore_checksums,
                    ..read_only_within(None)
                };
                let e = Image::open(&child, &options).unwrap_err();
                let text = shown(&e);
                let mut hidden = vec![size as u64];
                // Where a footer would be read from, and its length.
                hidden.extend([
                    (size as u64).saturating_sub(512),
                    (size as u64).saturating_sub(511),
                ]);
                hidden.retain(|&n| n > 512);
                assert_reveals_nothing(&text, &[id(2)], &hidden, &SECRET_ROTATIONS);
                assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{text}");
                assert!(text.contains("not a VHD"), "{text}");
                assert!(text.contains(name), "{text}");
                // `check` reports the same, and its report shows nothing either (the
                // report holds the child's own header, hence the id it expects, but its
                // findings do not repeat it).
                let report = vhd_core::check(&child, &vhd_core::CheckOptions::default()).unwrap();
                assert_reveals_nothing(&format!("{report:?}"), &[], &hidden, &SECRET_ROTATIONS);
                let findings: Vec<String> =
                    report.findings().iter().map(|f| f.to_string()).collect();
                assert_reveals_nothing(&findings.join("\n"), &[id(2)], &hidden, &SECRET_ROTATIONS);
            }
        }
    }
}

/// The child names another VHD on the host (the victim): the error says it is a different
/// disk, and gives neither its unique id, nor its time stamps, nor its size, nor the unique
/// id the child expects (the secret that binds a child to its parent).
#[test]
fn a_locator_naming_another_vhd_reveals_nothing_of_it() {
    let dir = TempDir::new("probe-vhd");
    let vm = dir.join("vm");
    std::fs::create_dir(&vm).unwrap();
    let victim = dir.join("victim.vhd");
    write_fixed(&victim, &id(7), &vec![0x42; DISK_SIZE as usize]);
    let victim_mtime = mtime_timestamp(&victim);
    let child = vm.join("child.vhd");
    let victim_text = victim.to_str().unwrap().to_string();
    for parent_timestamp in [0, 12_345_678] {
        write_child(
            &child,
            &ChildSpec {
                unique_id: id(1),
                parent_id: id(2),
                parent_timestamp,
                parent_name: "victim.vhd".into(),
                locators: vec![Locator::new(b"W2ku", &victim_text)],
            },
        );
        for ignore_parent_timestamp in [false, true] {
            let options = OpenOptions {
                ignore_parent_timestamp,
                ..read_only_within(None)
            };
            let e = Image::open(&child, &options).unwrap_err();
            let text = shown(&e);
            let hidden = [
                u64::from(victim_mtime),
                u64::from(victim_mtime) + VHD_EPOCH,
                0x0BAD_F00D,
                12_345_678,
                DISK_SIZE,
                DISK_SIZE + 512,
            ];
            assert_reveals_nothing(&text, &[id(7), id(2)], &hidden, &[]);
            assert_eq!(e.code(), "ERR_VHD_PARENT_MISMATCH", "{text}");
            assert!(text.contains("a different disk"), "{text}");
            assert!(text.contains("victim.vhd"), "{text}");
        }
    }
    // Named by the caller (trusted), it is still only "a different disk".
    let options = OpenOptions {
        parents: vec![ParentPath::Vhd(victim.clone())],
        ..read_only_within(None)
    };
    let e = Image::open(&child, &options).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_MISMATCH", "{e}");
    assert_reveals_nothing(&shown(&e), &[id(7), id(2)], &[u64::from(victim_mtime)], &[]);
}

/// The attack end to end: a first crafted child names another VHD on the host to learn its
/// unique id; a second one would record that id and a parent time stamp of 0 (accepted, as
/// diskpart writes it) to read the victim's contents as its own. The first step yields
/// nothing: no error, report or returned object of opening or checking the first child
/// holds the victim's id in any form, so the second child cannot be written.
#[test]
fn the_unique_id_of_a_vhd_cannot_be_learned_to_read_it() {
    let dir = TempDir::new("steal");
    let uploads = dir.join("uploads");
    std::fs::create_dir(&uploads).unwrap();
    let victim = dir.join("victim.vhd");
    let victim_id = id(9);
    write_fixed(&victim, &victim_id, &vec![0x77; DISK_SIZE as usize]);
    let victim_text = victim.to_str().unwrap().to_string();
    let first = uploads.join("first.vhd");
    child_naming(
        &first,
        id(1),
        id(3),
        vec![
            Locator::new(b"W2ku", &victim_text),
            Locator::new(b"Wi2k", &victim_text),
            Locator::new(b"MacX", &format!("file://{victim_text}")),
        ],
    );
    let mut seen = String::new();
    for options in [
        read_only_within(None),
        OpenOptions {
            ignore_parent_timestamp: true,
            ignore_checksums: true,
            ..read_only_within(None)
        },
    ] {
        let e = Image::open(&first, &options).unwrap_err();
        seen.push_str(&shown(&e));
    }
    let report = vhd_core::check(&first, &vhd_core::CheckOptions::default()).unwrap();
    seen.push_str(&format!("{report:?}"));
    for finding in report.findings() {
        seen.push_str(&finding.to_string());
    }
    assert_reveals_nothing(&seen, &[victim_id], &[], &[]);

    // Why it matters: with the id (here taken from the file by the test), the second child
    // would open the victim as its parent and read it.
    let second = uploads.join("second.vhd");
    child_naming(
        &second,
        id(4),
        victim_id,
        vec![Locator::new(b"W2ku", &victim_text)],
    );
    let image = Image::open(&second, &read_only_within(None)).unwrap();
    assert_eq!(read_all(&image), vec![0x77; DISK_SIZE as usize]);
    // A parent root keeps it out even then.
    let e = Image::open(&second, &read_only_within(Some(&uploads))).unwrap_err();
    assert_eq!(e.code(), "ERR_VHD_PARENT_OUTSIDE_ROOT", "{e}");
    assert_reveals_nothing(&shown(&e), &[victim_id], &[], &[]);
}

// ---------------------------------------------------------------------------------------------
// FIFOs and devices

#[cfg(unix)]
fn mkfifo(path: &Path) -> bool {
    if !require_tool("mkfifo") {
        return false;
    }
    run_ok(std::process::Command::new("mkfifo").arg(path));
    true
}

/// A FIFO, a symbolic link to it, `/dev/null`, `/dev/zero` and a folder as candidates (and a
/// FIFO named by the caller): each is refused at once as "not a regular file", never opened
/// for reading (a FIFO with no writer would block the open forever).
#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_at_once() {
    let dir = TempDir::new("fifo");
    let fifo = dir.join("fifo.vhd");
    if !mkfifo(&fifo) {
        return;
    }
    std::os::unix::fs::symlink(&fifo, dir.join("link.vhd")).unwrap();
    std::fs::create_dir(dir.join("folder.vhd")).unwrap();
    let child = dir.join("child.vhd");
    child_naming(
        &child,
        id(1),
        id(2),
        vec![
            Locator::new(b"W2ru", ".\\fifo.vhd"),
            Locator::new(b"Wi2r", "link.vhd"),
            Locator::new(b"W2ku", "/dev/null"),
            Locator::new(b"Wi2k", "/dev/zero"),
            Locator::new(b"MacX", "file://./folder.vhd"),
        ],
    );
    let started = Instant::now();
    let e = within(Duration::from_secs(20), "opening over a FIFO", {
        let child = child.clone();
        move || Image::open(&child, &read_only_within(None)).unwrap_err()
    });
    let text = e.to_string();
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{text}");
    for candidate in [
        "fifo.vhd",
        "link.vhd",
        "/dev/null",
        "/dev/zero",
        "folder.vhd",
    ] {
        let at = text
            .find(candidate)
            .unwrap_or_else(|| panic!("{text:?} does not name {candidate}"));
        assert!(
            text[at..].starts_with(&format!("{candidate} (not a regular file)"))
                || text[at..].contains(&format!("{candidate} (not a regular file)")),
            "{text:?}: {candidate} is not said to be no regular file"
        );
    }
    // Named by the caller: refused all the same.
    let e = within(Duration::from_secs(20), "a FIFO named as the parent", {
        let (child, fifo) = (child.clone(), fifo.clone());
        move || {
            let options = OpenOptions {
                parents: vec![ParentPath::Vhd(fifo)],
                ..read_only_within(None)
            };
            Image::open(&child, &options).unwrap_err()
        }
    });
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The check-then-open race: a symbolic link beside the child flips between a real parent
/// and a FIFO while the child is opened again and again. Every open ends (with the parent,
/// or with the FIFO refused): a FIFO is never opened in blocking mode, whatever the moment
/// of the swap.
#[cfg(unix)]
#[test]
fn a_fifo_swapped_in_during_the_search_does_not_hang_the_open() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = TempDir::new("fifo-race");
    let fifo = dir.join("fifo");
    if !mkfifo(&fifo) {
        return;
    }
    let base = dir.join("base.vhd");
    write_fixed(&base, &id(5), &vec![0x11; DISK_SIZE as usize]);
    let child = dir.join("child.vhd");
    child_naming(
        &child,
        id(1),
        id(5),
        vec![Locator::new(b"W2ru", "link.vhd")],
    );
    let link = dir.join("link.vhd");
    std::os::unix::fs::symlink(&base, &link).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, dir) = (stop.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = if n.is_multiple_of(2) {
                    "fifo"
                } else {
                    "base.vhd"
                };
                let tmp = dir.join(format!("link.tmp{n}"));
                std::os::unix::fs::symlink(dir.join(target), &tmp).unwrap();
                std::fs::rename(&tmp, dir.join("link.vhd")).unwrap();
                n += 1;
            }
        })
    };
    let outcome = within(
        Duration::from_secs(60),
        "opens while a FIFO is swapped in",
        {
            let child = child.clone();
            move || {
                let (mut opened, mut refused) = (0, 0);
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(2) || opened == 0 || refused == 0 {
                    match Image::open(&child, &read_only_within(None)) {
                        Ok(image) => {
                            assert_eq!(read_all(&image), vec![0x11; DISK_SIZE as usize]);
                            opened += 1;
                        }
                        Err(e) => {
                            assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{e}");
                            refused += 1;
                        }
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                }
                (opened, refused)
            }
        },
    );
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    println!(
        "opened {} times, FIFO refused {} times",
        outcome.0, outcome.1
    );
    assert!(outcome.0 > 0, "the parent never opened");
}

// ---------------------------------------------------------------------------------------------
// The search is linear

/// Every way a locator may spell the file `name` in `dir` (the child's folder, which holds
/// `sub/`, `other/`, a link `linked-dir` to itself, `ln-<name>` a symbolic link and
/// `hard-<name>` a hard link to it): 8 spellings that differ as paths but reach one file.
#[cfg(unix)]
fn spellings(dir: &Path, name: &str) -> Vec<Locator> {
    let abs = dir.join(name);
    vec![
        Locator::new(b"W2ru", &format!(".\\{name}")),
        Locator::new(b"Wi2r", &format!("sub\\..\\{name}")),
        Locator::new(b"W2ru", &format!("other/../{name}")),
        Locator::new(b"W2ku", abs.to_str().unwrap()),
        Locator::new(b"Wi2k", &format!("linked-dir/{name}")),
        Locator::new(b"MacX", &format!("file://./ln-{name}")),
        Locator::new(b"W2ru", &format!("hard-{name}")),
        Locator::new(
            b"Wi2r",
            &format!("sub/../other/../linked-dir/sub/../{name}"),
        ),
    ]
}

/// A chain of `depth` crafted children over a base that is not there: level `k` names
/// level `k - 1` in 8 spellings. The old search tried every spelling of every level under
/// every spelling of the level above: 8^depth opens.
#[cfg(unix)]
fn pathological_chain(dir: &Path, depth: u8) -> PathBuf {
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::create_dir(dir.join("other")).unwrap();
    std::os::unix::fs::symlink(dir, dir.join("linked-dir")).unwrap();
    let name = |k: u8| format!("level-{k}.vhd");
    for k in 1..=depth {
        let path = dir.join(name(k));
        child_naming(&path, id(k), id(k - 1), spellings(dir, &name(k - 1)));
        std::os::unix::fs::symlink(&path, dir.join(format!("ln-{}", name(k)))).unwrap();
        std::fs::hard_link(&path, dir.join(format!("hard-{}", name(k)))).unwrap();
    }
    dir.join(name(depth))
}

/// Runs `open` on a thread of its own (at most `limit`), and returns its result with the
/// number of candidate files it opened.
fn counted<T: Send + 'static>(
    limit: Duration,
    what: &str,
    open: impl FnOnce() -> T + Send + 'static,
) -> (T, u64) {
    within(limit, what, move || {
        let before = vhd_core::candidates_opened();
        let result = open();
        (result, vhd_core::candidates_opened() - before)
    })
}

#[cfg(unix)]
#[test]
fn a_chain_naming_each_parent_in_many_spellings_fails_at_once() {
    let dir = TempDir::new("exponential");
    let depth = 8;
    let top = pathological_chain(dir.path(), depth);
    let started = Instant::now();
    let (e, opens) = counted(
        Duration::from_secs(20),
        "the pathological chain",
        move || Image::open(&top, &read_only_within(None)).unwrap_err(),
    );
    println!("failed in {:?} after {opens} opens: {e}", started.elapsed());
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{e}");
    // Each level opens each of its 8 spellings once (and its parent name's); the file
    // they all reach is explored once.
    assert!(opens <= 9 * u64::from(depth), "{opens} candidate opens");
    // Every level is named in the error, down to the missing base.
    let text = e.to_string();
    for k in 0..depth {
        assert!(text.contains(&format!("level-{k}.vhd")), "{text}");
    }
    assert!(text.contains("level-0.vhd (missing)"), "{text}");
}

/// Twelve levels of sixteen distinct files (all copies of one another at each level: same
/// unique id), each naming eight files of the level below, over a base that is missing:
/// every file is explored once, yet that is more candidates than one open may look at. The
/// open stops with a clear error, quickly, having opened no more than the limit.
#[test]
fn a_search_too_long_is_cut_short() {
    let dir = TempDir::new("search-limit");
    let (levels, width) = (12u8, 16u8);
    let name = |level: u8, j: u8| format!("l{level}-{j}.vhd");
    for level in 1..=levels {
        for j in 0..width {
            let locators = (0..8u8)
                .map(|k| Locator::new(b"W2ru", &name(level - 1, (3 * j + 5 * k) % width)))
                .collect();
            child_naming(
                &dir.join(&name(level, j)),
                id(level),
                id(level - 1),
                locators,
            );
        }
    }
    let top = dir.join(&name(levels, 0));
    let (e, opens) = counted(Duration::from_secs(20), "the wide chain", move || {
        Image::open(&top, &read_only_within(None)).unwrap_err()
    });
    println!("{opens} opens: {e}");
    assert_eq!(e.code(), "ERR_VHD_PARENT_SEARCH_LIMIT", "{e}");
    assert!(
        matches!(&e, Error::ParentSearchLimit { limit, .. } if *limit == vhd_core::MAX_PARENT_CANDIDATES),
        "{e:?}"
    );
    assert!(opens <= vhd_core::MAX_PARENT_CANDIDATES as u64, "{opens}");
    // Below the limit the same shape fails as usual: five levels.
    let top = dir.join(&name(5, 0));
    let (e, opens) = counted(Duration::from_secs(20), "the narrower chain", move || {
        Image::open(&top, &read_only_within(None)).unwrap_err()
    });
    assert_eq!(e.code(), "ERR_VHD_PARENT_NOT_FOUND", "{e}");
    assert!(opens <= 8 * 5 * u64::from(width), "{opens}");
}

// ---------------------------------------------------------------------------------------------
// A parent time stamp of 0

/// A child that records no parent time stamp (0, as diskpart writes) opens (0 is accepted),
/// and `check` and `info` say that its parent is bound by its unique id alone.
#[test]
fn a_child_without_a_parent_time_stamp_is_reported() {
    use vhd_core::{check, CheckOptions, FindingKind, Severity};
    let dir = TempDir::new("timestamp-zero");
    let base = dir.join("base.vhd");
    write_fixed(&base, &id(5), &vec![0x33; DISK_SIZE as usize]);
    let child = dir.join("child.vhd");
    let spec = ChildSpec {
        unique_id: id(1),
        parent_id: id(5),
        parent_timestamp: 0,
        parent_name: "base.vhd".into(),
        locators: vec![Locator::new(b"W2ru", ".\\base.vhd")],
    };
    for recorded in [0, mtime_timestamp(&base)] {
        write_child(
            &child,
            &ChildSpec {
                parent_timestamp: recorded,
                ..spec.clone()
            },
        );
        let image = Image::open(&child, &read_only_within(None)).unwrap();
        assert_eq!(read_all(&image), vec![0x33; DISK_SIZE as usize]);
        let info = vhd_core::ops::info(&image).unwrap();
        assert_eq!(info.parent.unwrap().timestamp_recorded, recorded != 0);
        drop(image);
        let report = check(&child, &CheckOptions::default()).unwrap();
        let found: Vec<_> = report
            .findings_of(FindingKind::ParentTimestampNotRecorded)
            .collect();
        if recorded == 0 {
            assert_eq!(found.len(), 1, "{report:?}");
            assert_eq!(found[0].severity, Severity::Info);
            assert_eq!(found[0].offset, Some(512 + 56));
            assert!(found[0].message.contains("unique id"), "{}", found[0]);
            assert_eq!(found[0].kind.code(), "parent-timestamp-not-recorded");
        } else {
            assert!(found.is_empty(), "{report:?}");
        }
        assert!(report.is_clean(), "{report:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A seeded campaign: folders of crafted images naming each other

/// One file of a crafted folder, as the campaign knows it.
#[cfg(unix)]
#[derive(Clone, Debug)]
struct Made {
    name: String,
    unique_id: [u8; 16],
    /// What a chain ending here reads as (fixed images only).
    content: Option<u8>,
    /// The VHD time stamp its modification time is set to.
    mtime: u32,
}

/// A locator text naming `target` (a file name in `root`) in one of many spellings.
#[cfg(unix)]
fn spelling(rng: &mut Rng, root: &Path, target: &str) -> String {
    match rng.below(9) {
        0 => target.to_string(),
        1 => format!(".\\{target}"),
        2 => format!("sub\\..\\{target}"),
        3 => format!("./sub/../other/../{target}"),
        4 => root.join(target).to_str().unwrap().to_string(),
        5 => format!("..\\root\\{target}"),
        6 => format!("C:\\Users\\x\\{target}"),
        7 => format!("\\\\server\\share\\{target}"),
        _ => format!("linked-dir/{target}"),
    }
}

/// Builds a crafted folder under `dir` from `rng`: `root/` with fixed bases and
/// differencing children whose locators name each other, links, a FIFO, a folder, missing
/// names, files outside; `outside/` with a secret file and a victim VHD. Returns the images
/// made (their names in `root`) and every unique id in play.
#[cfg(unix)]
fn crafted_folder(rng: &mut Rng, dir: &Path) -> (Vec<Made>, Vec<[u8; 16]>) {
    let root = dir.join("root");
    let outside = dir.join("outside");
    for folder in [&root, &root.join("sub"), &root.join("other"), &outside] {
        std::fs::create_dir_all(folder).unwrap();
    }
    std::os::unix::fs::symlink(&root, root.join("linked-dir")).unwrap();
    secret_file(&outside.join("secret"), 123_457);
    let victim_id: [u8; 16] = rng.bytes(16).try_into().unwrap();
    write_fixed(
        &outside.join("victim.vhd"),
        &victim_id,
        &vec![0xEE; DISK_SIZE as usize],
    );
    let fifo = std::ffi::CString::new(root.join("fifo.vhd").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(root.join("dir.vhd")).unwrap();
    std::os::unix::fs::symlink(root.join("loop-b.vhd"), root.join("loop-a.vhd")).unwrap();
    std::os::unix::fs::symlink(root.join("loop-a.vhd"), root.join("loop-b.vhd")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim.vhd"), root.join("outside-link.vhd")).unwrap();

    let mut made = Vec::new();
    let mtime = |rng: &mut Rng| 300_000_000 + rng.below(100_000_000) as u32;
    for i in 0..rng.range(1, 3) {
        let m = Made {
            name: format!("base-{i}.vhd"),
            unique_id: rng.bytes(16).try_into().unwrap(),
            content: Some(rng.below(200) as u8 + 1),
            mtime: mtime(rng),
        };
        write_fixed(
            &root.join(&m.name),
            &m.unique_id,
            &vec![m.content.unwrap(); DISK_SIZE as usize],
        );
        made.push(m);
    }
    let children = rng.range(3, 8);
    for i in 0..children {
        // Sometimes a copy's id (a loop by unique id waits there).
        let unique_id = if i > 0 && rng.chance(15) {
            made[made.len() - 1].unique_id
        } else {
            rng.bytes(16).try_into().unwrap()
        };
        made.push(Made {
            name: format!("child-{i}.vhd"),
            unique_id,
            content: None,
            mtime: mtime(rng),
        });
    }
    let mut ids: Vec<[u8; 16]> = made.iter().map(|m| m.unique_id).collect();
    ids.push(victim_id);
    // The children's headers, now that every name and id is known.
    let names: Vec<String> = made.iter().map(|m| m.name.clone()).collect();
    for m in made.iter().filter(|m| m.content.is_none()) {
        let target = rng.below(made.len() as u64) as usize;
        let parent_id = match rng.below(10) {
            0 => victim_id,
            1 => {
                let id: [u8; 16] = rng.bytes(16).try_into().unwrap();
                ids.push(id);
                id
            }
            _ => made[target].unique_id,
        };
        let parent_timestamp = match rng.below(4) {
            0 | 1 => 0,
            2 => made[target].mtime,
            _ => mtime(rng),
        };
        let mut locators = Vec::new();
        for _ in 0..rng.below(9) {
            let code =
                *[b"W2ru", b"W2ku", b"Wi2r", b"Wi2k", b"MacX", b"Junk"][rng.below(6) as usize];
            let pick = if rng.chance(60) {
                names[target].clone()
            } else {
                names[rng.below(names.len() as u64) as usize].clone()
            };
            let text = match rng.below(14) {
                0 => "fifo.vhd".to_string(),
                1 => "/dev/zero".to_string(),
                2 => "/dev/null".to_string(),
                3 => "dir.vhd".to_string(),
                4 => "loop-a.vhd".to_string(),
                5 => format!("missing-{}.vhd", rng.below(5)),
                6 => outside.join("secret").to_str().unwrap().to_string(),
                7 => outside.join("victim.vhd").to_str().unwrap().to_string(),
                8 => "..\\outside\\victim.vhd".to_string(),
                9 => "outside-link.vhd".to_string(),
                10 => {
                    let length = rng.below(40) as usize;
                    String::from_utf8_lossy(&rng.bytes(length)).into_owned()
                }
                _ => spelling(rng, &root, &pick),
            };
            let text = if &code == b"MacX" && rng.chance(80) {
                format!("file://{}", text.replace('\\', "/"))
            } else {
                text
            };
            locators.push(Locator::new(&code, &text));
        }
        let parent_name = if rng.chance(50) {
            spelling(rng, &root, &names[target])
        } else {
            String::new()
        };
        write_child(
            &root.join(&m.name),
            &ChildSpec {
                unique_id: m.unique_id,
                parent_id,
                parent_timestamp,
                parent_name,
                locators,
            },
        );
    }
    // Links to images, then every image's modification time.
    for (i, m) in made.iter().enumerate() {
        if rng.chance(30) {
            std::os::unix::fs::symlink(root.join(&m.name), root.join(format!("link-{i}.vhd")))
                .unwrap();
        }
        if rng.chance(20) {
            std::fs::hard_link(root.join(&m.name), root.join(format!("hard-{i}.vhd"))).unwrap();
        }
    }
    for m in &made {
        let time = std::time::UNIX_EPOCH + Duration::from_secs(VHD_EPOCH + u64::from(m.mtime));
        let file = std::fs::File::options()
            .write(true)
            .open(root.join(&m.name))
            .unwrap();
        file.set_modified(time).unwrap();
    }
    (made, ids)
}

/// What one open of a crafted image gave: the chain (canonical paths, each link's recorded
/// parent id and the parent's id) and the bytes, or the error's code and text.
#[cfg(unix)]
type Outcome = Result<(Vec<PathBuf>, Vec<([u8; 16], [u8; 16])>, Vec<u8>), (String, String)>;

#[cfg(unix)]
fn open_and_describe(path: &Path, options: &OpenOptions) -> Outcome {
    match Image::open(path, options) {
        Ok(image) => {
            let mut links = Vec::new();
            let mut level = &image;
            while let Some(parent) = level.parent() {
                let vhd_core::Parent::Image(parent) = parent else {
                    break;
                };
                links.push((
                    level.header().unwrap().parent_unique_id,
                    parent.footer().unique_id,
                ));
                level = parent;
            }
            let chain = image
                .chain()
                .iter()
                .map(|p| p.canonicalize().unwrap())
                .collect();
            Ok((chain, links, read_all(&image)))
        }
        Err(e) => Err((e.code().to_string(), shown(&e))),
    }
}

/// Seeded folders of crafted images that name each other (random locator kinds and
/// spellings, loops through links and through copies' unique ids, missing files, wrong ids
/// and time stamps, a FIFO, devices, a folder, a secret file and a victim VHD outside the
/// root, Windows drive and network paths, garbage text), each image opened with and without
/// a parent root and with random options. Every open ends in time without a panic, opens
/// no more candidates than the limit, and gives either a chain whose every link is right
/// (the unique id the child records, a regular file inside the root when there is one)
/// and that reads as its base, or an error that shows no unique id, time stamp, size or
/// byte of any file.
#[cfg(unix)]
#[test]
fn crafted_folders_of_images_naming_each_other() {
    let mut master = Rng::new("hostile_parents crafted_folders_of_images_naming_each_other");
    let (mut opened, mut refused, mut opens_total) = (0u64, 0u64, 0u64);
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    for case in 0..40 {
        let seed = master.next_u64();
        let mut rng = Rng::from_seed(seed);
        let dir = TempDir::new("campaign");
        let (made, ids) = crafted_folder(&mut rng, dir.path());
        let root = dir.join("root").canonicalize().unwrap();
        let hidden_numbers: Vec<u64> = made
            .iter()
            .flat_map(|m| [u64::from(m.mtime), u64::from(m.mtime) + VHD_EPOCH])
            .chain([123_457, 123_457 - 512, 123_457 - 511])
            .collect();
        let content: std::collections::HashMap<PathBuf, u8> = made
            .iter()
            .filter_map(|m| Some((root.join(&m.name), m.content?)))
            .chain([(
                dir.join("outside")
                    .join("victim.vhd")
                    .canonicalize()
                    .unwrap(),
                0xEE,
            )])
            .collect();
        for m in &made {
            for confined in [true, false] {
                let options = OpenOptions {
                    read_only: true,
                    parent_root: confined.then(|| root.clone()),
                    ignore_parent_timestamp: rng.chance(25),
                    ignore_checksums: rng.chance(10),
                    ..OpenOptions::default()
                };
                let path = root.join(&m.name);
                let what = format!("case {case} (seed {seed:#x}): {} {options:?}", m.name);
                let (outcome, opens) = counted(Duration::from_secs(60), &what, {
                    let (path, options) = (path.clone(), options.clone());
                    move || open_and_describe(&path, &options)
                });
                opens_total += opens;
                assert!(
                    opens <= vhd_core::MAX_PARENT_CANDIDATES as u64,
                    "{what}: {opens} opens"
                );
                match outcome {
                    Ok((chain, links, bytes)) => {
                        opened += 1;
                        for (recorded, found) in &links {
                            assert_eq!(recorded, found, "{what}: a link with the wrong id");
                        }
                        for parent in &chain[1..] {
                            assert!(
                                std::fs::metadata(parent).unwrap().is_file(),
                                "{what}: {parent:?}"
                            );
                            if confined {
                                assert!(parent.starts_with(&root), "{what}: {parent:?}");
                            }
                        }
                        let base = chain.last().unwrap();
                        let fill = content.get(base).copied().unwrap_or_else(|| {
                            panic!("{what}: the chain ends at {base:?}, not a base")
                        });
                        assert!(bytes.iter().all(|&b| b == fill), "{what}: wrong data");
                    }
                    Err((code, text)) => {
                        refused += 1;
                        assert!(code.starts_with("ERR_VHD_"), "{what}: {code}");
                        assert_reveals_nothing(&text, &ids, &hidden_numbers, &SECRET_ROTATIONS);
                        *codes.entry(code).or_default() += 1;
                    }
                }
            }
        }
    }
    println!("{opened} opened, {refused} refused ({codes:?}), {opens_total} candidate opens");
    assert!(opened > 0 && refused > 0);
}
