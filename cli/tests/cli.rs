//! The `vhd` binary that cargo builds (the same code the npm package's `vhd` runs through
//! the addon): exit codes, streams, and images checked with qemu-img.
//! Without qemu-img the oracle test is skipped with a message, except under CI.

use std::path::Path;
use std::process::{Command, Output};
use vhd_testkit::{text, TempDir};

fn vhd(args: &[&str], cwd: &Path) -> Output {
    vhd_testkit::run_in(env!("CARGO_BIN_EXE_vhd"), args, cwd)
}

fn qemu_img_available() -> bool {
    let found = Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-img is not installed, and CI requires the oracle tests"
        );
        eprintln!("SKIPPED: qemu-img is not installed (apt-get install qemu-utils)");
    }
    found
}

#[test]
fn help_goes_to_stdout_and_errors_to_stderr_with_exit_code_1() {
    let dir = TempDir::new("help");
    let help = vhd(&["--help"], dir.path());
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).starts_with("vhd version "));
    assert!(help.stderr.is_empty());

    let unknown = vhd(&["frobnicate"], dir.path());
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stdout.is_empty());
    assert!(text(&unknown.stderr).starts_with("vhd: ERR_VHD_USAGE: unknown command 'frobnicate'"));

    let missing = vhd(&["info", "missing.vhd"], dir.path());
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).starts_with("vhd: ENOENT: missing.vhd: opening the image"));
}

#[test]
fn created_images_have_the_size_qemu_img_sees() {
    if !qemu_img_available() {
        return;
    }
    let dir = TempDir::new("create");
    for (kind, size, bytes) in [("fixed", "3M", 3 << 20), ("dynamic", "10G", 10u64 << 30)] {
        let file = format!("{kind}.vhd");
        let created = vhd(&["create", "--type", kind, &file, size], dir.path());
        assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
        let qemu = Command::new("qemu-img")
            .args(["info", "--output=json", "-f", "vpc", &file])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(qemu.status.success(), "{}", text(&qemu.stderr));
        assert!(
            text(&qemu.stdout).contains(&format!("\"virtual-size\": {bytes},")),
            "{}",
            text(&qemu.stdout)
        );
        let info = text(&vhd(&["info", "--json", &file], dir.path()).stdout);
        assert!(
            info.contains(&format!("\"virtualSize\": {bytes},")),
            "{info}"
        );
        assert!(info.contains(&format!("\"type\": \"{kind}\",")), "{info}");
    }
}

/// Runs `vhd args` with its stdout read line by line by `each_line`, and returns its exit
/// code and its peak resident memory (bytes), from wait4(2).
#[cfg(target_os = "linux")]
fn vhd_peak_memory(args: &[&str], cwd: &Path, mut each_line: impl FnMut(&str)) -> (i32, u64) {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    // Reaped by wait4 below, which alone reports the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_vhd"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running vhd");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        each_line(&line.unwrap());
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 writes only into the two locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let code = std::process::ExitStatus::from_raw(status)
        .code()
        .unwrap_or(-1);
    (code, usage.ru_maxrss as u64 * 1024)
}

/// `vhd map` of an image with a quarter of a million ranges writes them as it finds them:
/// its peak memory stays that of a small map (all the ranges in memory would add tens of
/// MiB; the real hostile image, millions of ranges, exhausted memory), and the JSON is one
/// valid document, entry by entry.
#[cfg(target_os = "linux")]
#[test]
fn map_streams_millions_of_ranges_in_bounded_memory() {
    let dir = TempDir::new("map-stream");
    let blocks = 128;
    let ranges = u64::from(blocks) * 2048;
    let path = vhd_testkit::alternating_bitmaps(dir.path(), blocks);
    let small_dir = TempDir::new("map-stream-small");
    let small = vhd_testkit::alternating_bitmaps(small_dir.path(), 1);
    let small = small.to_str().unwrap();
    let (code, baseline) = vhd_peak_memory(&["map", "--json", small], dir.path(), |_| {});
    assert_eq!(code, 0);
    let bound = baseline + (8 << 20);

    let mut entries = 0u64;
    let mut last = String::new();
    let (code, peak) = vhd_peak_memory(
        &["map", "--json", path.to_str().unwrap()],
        dir.path(),
        |line| {
            // Data at even sectors, a zero gap at odd ones.
            let start = entries * 512;
            let expected = if entries.is_multiple_of(2) {
                format!("{{\"start\": {start}, \"length\": 512, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true, \"compressed\": false, \"offset\": ")
            } else {
                format!("{{\"start\": {start}, \"length\": 512, \"depth\": 1, \"present\": true, \"zero\": true, \"data\": false, \"compressed\": false}}")
            };
            let line = line.strip_prefix('[').unwrap_or(line);
            assert!(line.starts_with(&expected), "entry {entries}: {line}");
            entries += 1;
            last = line.to_string();
        },
    );
    assert_eq!(code, 0);
    assert_eq!(entries, 2 * ranges);
    assert!(last.ends_with("}]"), "the array is closed: {last}");
    assert!(
        peak < bound,
        "map --json peaked at {peak} bytes (a small map: {baseline})"
    );

    let mut lines = 0u64;
    let (code, peak) =
        vhd_peak_memory(&["map", path.to_str().unwrap()], dir.path(), |_| lines += 1);
    assert_eq!(code, 0);
    assert_eq!(lines, 1 + ranges, "a heading, then one line per range");
    assert!(
        peak < bound,
        "map peaked at {peak} bytes (a small map: {baseline})"
    );
}

/// Whether `text` could do anything to a terminal but show characters: a control character
/// other than the line ends the command writes itself, or a bidirectional override.
fn assert_harmless(text: &str, what: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert!(bad.is_empty(), "{what} printed {bad:?} raw:\n{text}");
}

/// An image that checks clean cannot drive the terminal: a parent file name with an escape
/// sequence (clear screen, cursor home) and a right-to-left override, which the locator
/// paths and the chain then hold, a locator platform code and a creator application field
/// that are escape sequences, and a parent name with an OSC title sequence. Every command
/// that prints them (info, check, map, commit, the parent-not-found error's "tried:" list)
/// prints them escaped; JSON output escapes them as \uXXXX, the same strings once parsed.
#[test]
fn text_from_the_image_is_escaped_on_the_terminal() {
    use std::os::unix::fs::FileExt;
    use vhd_core::dynamic_header::DYNAMIC_HEADER_SIZE;
    use vhd_core::footer::FOOTER_SIZE;
    use vhd_core::{create, CreateOptions, DiskType, DynamicHeader, Footer};
    let dir = TempDir::new("escapes");
    let hostile = "base-\u{1b}[2J\u{1b}[H\u{202e}dhv.vhd";
    let base = dir.path().join(hostile);
    let child = dir.path().join("child.vhd");
    let mut image = create(&base, &CreateOptions::new(DiskType::Dynamic, 4 << 20)).unwrap();
    vhd_core::VirtualDisk::write_at(&mut image, &[7; 4096], 0).unwrap();
    drop(image);
    let mut image = create(&child, &CreateOptions::differencing(&base)).unwrap();
    vhd_core::VirtualDisk::write_at(&mut image, &[9; 4096], 1 << 20).unwrap();
    drop(image);

    // Footer (both copies): the creator application is ESC [ 2 J.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&child)
        .unwrap();
    let end = file.metadata().unwrap().len() - FOOTER_SIZE as u64;
    let mut bytes = [0u8; FOOTER_SIZE];
    file.read_exact_at(&mut bytes, end).unwrap();
    let mut footer = Footer::parse(&bytes, end).unwrap();
    footer.creator_application = *b"\x1b[2J";
    footer.update_checksum();
    file.write_all_at(&footer.to_bytes(), 0).unwrap();
    file.write_all_at(&footer.to_bytes(), end).unwrap();
    // Dynamic header: the MacX locator's platform code is ESC [ 2 J, the parent name an
    // OSC sequence that sets the window title.
    let mut bytes = [0u8; DYNAMIC_HEADER_SIZE];
    file.read_exact_at(&mut bytes, footer.data_offset).unwrap();
    let mut header = DynamicHeader::parse(&bytes, footer.data_offset).unwrap();
    let mac = header
        .parent_locators
        .iter_mut()
        .find(|l| l.platform_code == u32::from_be_bytes(*b"MacX"))
        .expect("a MacX locator");
    mac.platform_code = u32::from_be_bytes(*b"\x1b[2J");
    header
        .set_parent_name("\u{1b}]0;owned\u{7}base.vhd")
        .unwrap();
    header.update_checksum();
    file.write_all_at(&header.to_bytes(), footer.data_offset)
        .unwrap();
    drop(file);

    for args in [
        &["info", "child.vhd"][..],
        &["info", "--json", "child.vhd"],
        &["check", "child.vhd"],
        &["check", "--json", "child.vhd"],
        &["map", "child.vhd"],
    ] {
        let out = vhd(args, dir.path());
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{args:?}: {stdout}{stderr}"
        );
        assert_harmless(&stdout, &format!("{args:?}"));
        assert_harmless(&stderr, &format!("{args:?}"));
        let escaped = if args.contains(&"--json") {
            "\\u001b[2J"
        } else {
            "\\u{1b}[2J"
        };
        if args[0] != "check" {
            assert!(
                stdout.contains(escaped),
                "{args:?} shows {escaped}:\n{stdout}"
            );
        }
    }
    let info = text(&vhd(&["info", "child.vhd"], dir.path()).stdout);
    for shown in [
        "[2] \\u{1b}[2J:",
        "base-\\u{1b}[2J\\u{1b}[H\\u{202e}dhv.vhd",
        "\\u{1b}]0;owned\\u{7}base.vhd",
        "creator application: \"\\u{1b}[2J\"",
    ] {
        assert!(info.contains(shown), "info shows {shown}:\n{info}");
    }
    let json = text(&vhd(&["info", "--json", "child.vhd"], dir.path()).stdout);
    assert!(
        json.contains("base-\\u001b[2J\\u001b[H\\u202edhv.vhd"),
        "{json}"
    );

    let committed = vhd(&["commit", "child.vhd"], dir.path());
    assert_eq!(
        committed.status.code(),
        Some(0),
        "{}",
        text(&committed.stderr)
    );
    assert_harmless(&text(&committed.stdout), "commit");
    assert!(text(&committed.stdout).contains("\\u{1b}[2J"));

    // The parent gone: `info` still describes the child and says what is wrong with the
    // parent (issue 15); `cat` fails. Both list every place tried, the hostile paths escaped.
    std::fs::rename(&base, dir.path().join("moved.vhd")).unwrap();
    let described = vhd(&["info", "child.vhd"], dir.path());
    let stderr = text(&described.stderr);
    assert_eq!(described.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.starts_with("vhd: warning: ERR_VHD_PARENT_NOT_FOUND: "),
        "{stderr}"
    );
    assert_harmless(&stderr, "info's parent warning");
    assert_harmless(&text(&described.stdout), "info of the broken chain");
    assert!(text(&described.stdout).contains("\\u{1b}[2J\\u{1b}[H\\u{202e}dhv.vhd"));
    let missing = vhd(&["cat", "child.vhd"], dir.path());
    let stderr = text(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("vhd: ERR_VHD_PARENT_NOT_FOUND: "),
        "{stderr}"
    );
    assert!(stderr.contains("tried"), "{stderr}");
    assert!(
        stderr.contains("\\u{1b}[2J\\u{1b}[H\\u{202e}dhv.vhd"),
        "{stderr}"
    );
    assert_harmless(&stderr, "the parent-not-found error");
}
