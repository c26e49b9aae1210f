//! A qemu-img user's first hour with `vhd` (issue 15): qemu-img's spellings do what ours
//! do, unknown options get the nearest one, shell completions, `map --picture` of a chain,
//! the progress display on a terminal and off it, and images whose parent chain is broken
//! (`info` still describes them; `check` says so with its own exit code).
//! Terminals are real ones where it matters: `script` (util-linux) runs `vhd` on a pty.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vhd_core::{create, CreateOptions, DiskType, VirtualDisk};
use vhd_testkit::{text, TempDir};

const VHD: &str = env!("CARGO_BIN_EXE_vhd");

fn vhd(args: &[&str], cwd: &Path) -> Output {
    Command::new(VHD)
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .output()
        .expect("running vhd")
}

#[track_caller]
fn vhd_ok(args: &[&str], cwd: &Path) -> String {
    let out = vhd(args, cwd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "vhd {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[track_caller]
fn usage_error(args: &[&str], cwd: &Path) -> String {
    let out = vhd(args, cwd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "vhd {args:?}: {stderr}");
    assert!(stderr.starts_with("vhd: ERR_VHD_USAGE: "), "{stderr}");
    stderr
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `vhd info --json FILE` as JSON.
fn info(file: &str, dir: &Path) -> serde_json::Value {
    json(&vhd_ok(&["info", "--json", file], dir))
}

/// Runs `command` (a shell command line) on a pseudo-terminal, through `script`, and
/// returns what the terminal showed; `None` (with a message, or a failure under CI) when
/// `script` is missing.
fn on_a_terminal(command: &str, cwd: &Path, env: &[(&str, &str)]) -> Option<String> {
    let mut script = Command::new("script");
    script
        .args(["-qefc", command, "/dev/null"])
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .env("COLUMNS", "100")
        .env("LINES", "40")
        .stdin(std::process::Stdio::null());
    for (key, value) in env {
        script.env(key, value);
    }
    match script.output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{command}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            Some(text(&out.stdout))
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "script (util-linux) is needed: {e}"
            );
            eprintln!("SKIPPED: script (util-linux) is not installed: {e}");
            None
        }
    }
}

fn dynamic(path: &Path, size: u64, writes: &[(u64, u8)]) {
    let mut image = create(path, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    for &(offset, byte) in writes {
        image.write_at(&[byte; 4096], offset).unwrap();
    }
}

fn child_of(path: &Path, parent: &Path, writes: &[(u64, u8)]) {
    let mut image = create(path, &CreateOptions::differencing(parent)).unwrap();
    for &(offset, byte) in writes {
        image.write_at(&[byte; 4096], offset).unwrap();
    }
}

const MIB: u64 = 1 << 20;

#[test]
fn qemu_img_create_spellings_make_what_ours_make() {
    let dir = TempDir::new("spell-create");
    let d = dir.path();
    vhd_ok(&["create", "--type", "fixed", "ours.vhd", "3M"], d);
    vhd_ok(
        &[
            "create",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            "qemu.vhd",
            "3M",
        ],
        d,
    );
    vhd_ok(
        &[
            "create",
            "-o",
            "subformat=fixed,force_size=on,size=3M",
            "opts.vhd",
        ],
        d,
    );
    for file in ["ours.vhd", "qemu.vhd", "opts.vhd"] {
        let info = info(file, d);
        assert_eq!(info["type"], "fixed", "{file}");
        assert_eq!(info["virtualSize"], 3 * MIB, "{file}");
    }
    vhd_ok(&["create", "-o", "subformat=dynamic", "dyn.vhd", "8M"], d);
    assert_eq!(info("dyn.vhd", d)["type"], "dynamic");

    // A differencing image: --parent, qemu-img's -b (and -F vpc).
    vhd_ok(&["create", "--parent", "dyn.vhd", "child-ours.vhd"], d);
    vhd_ok(
        &["create", "-b", "dyn.vhd", "-F", "vpc", "child-qemu.vhd"],
        d,
    );
    for file in ["child-ours.vhd", "child-qemu.vhd"] {
        let info = info(file, d);
        assert_eq!(info["type"], "differencing", "{file}");
        assert_eq!(info["parent"]["name"], "dyn.vhd", "{file}");
        assert_eq!(info["virtualSize"], 8 * MIB, "{file}");
    }
    // What does not mean the same is refused, with a reason.
    assert!(
        usage_error(&["create", "-o", "force_size=off", "x.vhd", "1M"], d).contains("never rounds")
    );
    assert!(usage_error(&["create", "-f", "qcow2", "x.vhd", "1M"], d).contains("'qcow2'"));
    assert!(usage_error(&["create", "-F", "raw", "-b", "dyn.vhd", "x.vhd"], d).contains("'raw'"));
    assert!(usage_error(
        &[
            "create",
            "--type",
            "dynamic",
            "-o",
            "subformat=fixed",
            "x.vhd",
            "1M"
        ],
        d
    )
    .contains("disagree"));
    assert!(!d.join("x.vhd").exists());
}

#[test]
fn qemu_img_convert_info_and_map_spellings_do_what_ours_do() {
    let dir = TempDir::new("spell-convert");
    let d = dir.path();
    let mut raw = vec![0u8; 4 * MIB as usize];
    raw[MIB as usize..MIB as usize + 4096].fill(7);
    std::fs::write(d.join("disk.raw"), &raw).unwrap();
    vhd_ok(
        &[
            "convert", "--from", "raw", "--to", "fixed", "disk.raw", "ours.vhd",
        ],
        d,
    );
    vhd_ok(
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed",
            "disk.raw",
            "qemu.vhd",
        ],
        d,
    );
    vhd_ok(&["convert", "-O", "vpc", "disk.raw", "qemu-dyn.vhd"], d);
    assert_eq!(info("ours.vhd", d)["type"], "fixed");
    assert_eq!(info("qemu.vhd", d)["type"], "fixed");
    assert_eq!(info("qemu-dyn.vhd", d)["type"], "dynamic");
    vhd_ok(&["convert", "--to", "raw", "qemu-dyn.vhd", "ours.raw"], d);
    vhd_ok(
        &[
            "convert",
            "-f",
            "vpc",
            "-O",
            "raw",
            "qemu-dyn.vhd",
            "qemu.raw",
        ],
        d,
    );
    assert_eq!(std::fs::read(d.join("ours.raw")).unwrap(), raw);
    assert_eq!(std::fs::read(d.join("qemu.raw")).unwrap(), raw);
    assert!(usage_error(
        &["convert", "--to", "fixed", "-O", "raw", "disk.raw", "x.vhd"],
        d
    )
    .contains("different"));
    assert!(usage_error(
        &[
            "convert",
            "-O",
            "raw",
            "-o",
            "subformat=fixed",
            "disk.raw",
            "x"
        ],
        d
    )
    .contains("-O vpc"));

    // --output=json, --output json and --json print the same.
    for command in ["info", "map", "check"] {
        let ours = vhd_ok(&[command, "--json", "qemu-dyn.vhd"], d);
        assert_eq!(
            vhd_ok(&[command, "--output=json", "qemu-dyn.vhd"], d),
            ours,
            "{command}"
        );
        assert_eq!(
            vhd_ok(&[command, "--output", "json", "qemu-dyn.vhd"], d),
            ours,
            "{command}"
        );
        assert_eq!(
            vhd_ok(&[command, "-f", "vpc", "--json", "qemu-dyn.vhd"], d),
            ours,
            "{command}"
        );
        let human = vhd_ok(&[command, "qemu-dyn.vhd"], d);
        assert_eq!(
            vhd_ok(&[command, "--output=human", "qemu-dyn.vhd"], d),
            human,
            "{command}"
        );
    }
    assert!(usage_error(&["info", "-f", "raw", "qemu-dyn.vhd"], d).contains("'raw'"));
}

#[test]
fn unknown_words_are_answered_with_the_nearest_one() {
    let dir = TempDir::new("suggest");
    let d = dir.path();
    let stderr = usage_error(&["convert", "--too", "raw", "a", "b"], d);
    assert!(
        stderr.contains("unknown option '--too' (did you mean '--to'?)"),
        "{stderr}"
    );
    assert!(stderr.contains("Try 'vhd convert --help'"), "{stderr}");
    let stderr = usage_error(&["infp", "x.vhd"], d);
    assert!(
        stderr.contains("unknown command 'infp' (did you mean 'info'?)"),
        "{stderr}"
    );
    let stderr = usage_error(&["info", "--parent-rot", "d", "x.vhd"], d);
    assert!(stderr.contains("did you mean '--parent-root'?"), "{stderr}");
}

#[test]
fn check_repair_spellings_and_lock_sharing() {
    let dir = TempDir::new("spell-check");
    let d = dir.path();
    // A leak: a block whose BAT entry was cleared.
    let path = d.join("leaky.vhd");
    dynamic(&path, 8 * MIB, &[(0, 1), (2 * MIB, 2)]);
    let leaky = std::fs::read(&path).unwrap();
    let header = vhd_testkit::file_bytes(&path, 512, 1024);
    let table = vhd_testkit::be_u64(&header, 16);
    vhd_testkit::patch_file(&path, table + 4, &[0xFF; 4]);
    let leaky_now = std::fs::read(&path).unwrap();
    assert_ne!(leaky, leaky_now);
    for repair in [
        &["-r", "leaks"][..],
        &["-r", "all"],
        &["--repair=leaks"],
        &["--repair"],
    ] {
        std::fs::write(&path, &leaky_now).unwrap();
        assert_eq!(vhd(&["check", "leaky.vhd"], d).status.code(), Some(3));
        let args: Vec<&str> = ["check", "--force"]
            .iter()
            .chain(repair)
            .chain(&["leaky.vhd"])
            .copied()
            .collect();
        vhd_ok(&args, d);
        assert_eq!(
            vhd(&["check", "leaky.vhd"], d).status.code(),
            Some(0),
            "{repair:?}"
        );
    }
    // -r leaks leaves damage alone.
    let mut damaged = leaky_now.clone();
    let end = damaged.len() - 512;
    damaged[end + 64] ^= 0xFF;
    std::fs::write(&path, &damaged).unwrap();
    assert!(usage_error(&["check", "-r", "leaks", "leaky.vhd"], d).contains("repairs leaks only"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        damaged,
        "nothing was written"
    );

    // -U / --force-share / --no-lock: read an image that another program holds open for
    // writing (here, this test), which is refused otherwise.
    dynamic(&d.join("busy.vhd"), 4 * MIB, &[(0, 9)]);
    let writer = vhd_testkit::open_rw(&d.join("busy.vhd"));
    let locked = vhd(&["info", "busy.vhd"], d);
    assert_eq!(locked.status.code(), Some(1));
    assert!(
        text(&locked.stderr).starts_with("vhd: ERR_VHD_LOCKED: "),
        "{}",
        text(&locked.stderr)
    );
    let expected = vhd_ok(&["info", "-U", "--json", "busy.vhd"], d);
    for flag in ["--force-share", "--no-lock"] {
        assert_eq!(vhd_ok(&["info", flag, "--json", "busy.vhd"], d), expected);
    }
    vhd_ok(&["map", "-U", "busy.vhd"], d);
    vhd_ok(&["cat", "-U", "busy.vhd"], d);
    assert!(matches!(
        vhd(&["check", "-U", "busy.vhd"], d).status.code(),
        Some(0)
    ));
    drop(writer);
}

#[test]
fn shell_completions_know_every_command_and_option() {
    let dir = TempDir::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let script = vhd_ok(&["completions", shell], dir.path());
        for word in ["convert", "snapshot", "parent-root", "no-lock", "picture"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let stderr = usage_error(&["completions", "tcsh"], dir.path());
    assert!(stderr.contains("'tcsh'"), "{stderr}");
}

/// base (blocks 0-3) ← mid (blocks 4-7) ← top (blocks 0, 8, 9), 16 blocks of 2 MiB.
fn depth_three_chain(d: &Path) -> PathBuf {
    let block = 2 * MIB;
    let base = d.join("base.vhd");
    let mid = d.join("mid.vhd");
    let top = d.join("top.vhd");
    dynamic(
        &base,
        16 * block,
        &(0..4).map(|b| (b * block, 1)).collect::<Vec<_>>(),
    );
    child_of(
        &mid,
        &base,
        &(4..8).map(|b| (b * block, 2)).collect::<Vec<_>>(),
    );
    child_of(&top, &mid, &[(0, 3), (8 * block, 3), (9 * block + 4096, 3)]);
    top
}

#[test]
fn map_picture_shades_each_block_by_the_level_holding_it() {
    let dir = TempDir::new("picture");
    let d = dir.path();
    depth_three_chain(d);
    let out = Command::new(VHD)
        .args(["map", "--picture", "top.vhd"])
        .current_dir(d)
        .env("COLUMNS", "16")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let picture = text(&out.stdout);
    let mut lines = picture.lines();
    // One cell a block, one row of 16: plain characters (stdout is not a terminal).
    assert_eq!(lines.next(), Some("#+++%%%%##......"), "{picture}");
    assert_eq!(lines.next(), Some(""), "{picture}");
    for expected in [
        "Each cell is 2 MiB (1 block of 2 MiB); the disk is 32 MiB in 16 cells.",
        "  # level 0: top.vhd (the image), 3 cells",
        "(its parent), 4 cells",
        "  + level 2: ",
        "base.vhd (its grandparent), 3 cells",
        "  . no data at any level (reads as zeros), 6 cells",
    ] {
        assert!(picture.contains(expected), "{expected:?} in:\n{picture}");
    }
    assert!(!picture.contains('\u{1b}'), "no colour off a terminal");

    // Wider than the disk's blocks: still a cell a block. Narrower: groups of blocks.
    let narrow = Command::new(VHD)
        .args(["map", "--picture", "top.vhd"])
        .current_dir(d)
        .env("COLUMNS", "4")
        .output()
        .unwrap();
    let narrow = text(&narrow.stdout);
    assert!(
        narrow.starts_with("#+++%%%%##......\n"),
        "16 columns at least:\n{narrow}"
    );
    assert!(
        usage_error(&["map", "--picture", "--json", "top.vhd"], d).contains("cannot be used with")
    );

    // On a terminal: colours (and none with NO_COLOR).
    let Some(shown) = on_a_terminal(&format!("{VHD} map --picture top.vhd"), d, &[]) else {
        return;
    };
    assert!(shown.contains("\u{1b}[32m█"), "level 0 in green:\n{shown}");
    assert!(shown.contains("\u{1b}[34m█"), "level 2 in blue:\n{shown}");
    let plain = on_a_terminal(
        &format!("{VHD} map --picture top.vhd"),
        d,
        &[("NO_COLOR", "1")],
    )
    .unwrap();
    assert!(!plain.contains('\u{1b}'), "NO_COLOR:\n{plain}");
    assert!(plain.contains("#+++%%%%##"), "{plain}");
}

#[test]
fn progress_is_a_bar_on_a_terminal_and_qemu_img_lines_with_p_elsewhere() {
    let dir = TempDir::new("progress");
    let d = dir.path();
    std::fs::write(d.join("disk.raw"), vec![5u8; 24 * MIB as usize]).unwrap();
    // Not a terminal: nothing without -p, qemu-img's lines with it.
    let quiet = vhd(&["convert", "disk.raw", "a.vhd"], d);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet.stderr));
    let lines = vhd(&["convert", "-p", "disk.raw", "b.vhd"], d);
    let stderr = text(&lines.stderr);
    assert!(stderr.ends_with("    (100.00/100%)\r\n"), "{stderr:?}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    // A terminal: indicatif's bar, with bytes, rate and time left; never the lines; none
    // with -q.
    let Some(shown) = on_a_terminal(&format!("{VHD} convert disk.raw c.vhd"), d, &[]) else {
        return;
    };
    assert!(shown.contains("24.00 MiB/24.00 MiB"), "{shown:?}");
    assert!(shown.contains("ETA"), "{shown:?}");
    assert!(shown.contains("/s"), "{shown:?}");
    assert!(shown.contains('█'), "{shown:?}");
    assert!(!shown.contains("/100%)"), "{shown:?}");
    assert!(
        shown.contains("\nConverted 'disk.raw' to 'c.vhd'"),
        "the bar's line is ended:\n{shown:?}"
    );
    let quiet = on_a_terminal(&format!("{VHD} convert -q disk.raw d.vhd"), d, &[]).unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");
}

#[test]
fn a_broken_chain_is_described_and_checked_as_such() {
    let dir = TempDir::new("broken");
    let d = dir.path();
    dynamic(&d.join("base.vhd"), 8 * MIB, &[(0, 1)]);
    child_of(&d.join("child.vhd"), &d.join("base.vhd"), &[(MIB, 2)]);
    std::fs::rename(d.join("base.vhd"), d.join("moved.vhd")).unwrap();

    // info: the child's own metadata, what is wrong with the parent, exit code 0.
    let out = vhd(&["info", "child.vhd"], d);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for expected in [
        "subformat: differencing",
        "virtual size: 8 MiB (8388608 bytes)",
        "parent chain: BROKEN (ERR_VHD_PARENT_NOT_FOUND): ",
        "parent name: \"base.vhd\"",
        "0: child.vhd (differencing",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
    assert!(
        stderr.starts_with("vhd: warning: ERR_VHD_PARENT_NOT_FOUND: "),
        "{stderr}"
    );
    let described = json(&vhd_ok(&["info", "--json", "child.vhd"], d));
    assert_eq!(
        described["parentProblem"]["code"],
        "ERR_VHD_PARENT_NOT_FOUND"
    );
    assert_eq!(described["parent"], serde_json::Value::Null);
    assert_eq!(described["type"], "differencing");
    assert_eq!(described["header"]["parentName"], "base.vhd", "{described}");

    // check: the parent link is a finding of its own, and exit code 4, not 2.
    let out = vhd(&["check", "child.vhd"], d);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("ERROR [parent-not-found]"), "{stdout}");
    assert!(stdout.contains("The parent chain is broken"), "{stdout}");
    assert!(!stdout.contains("errors were found"), "{stdout}");
    let report = json(&text(&vhd(&["check", "--json", "child.vhd"], d).stdout));
    assert_eq!(report["parentLinkBroken"], true);
    assert_eq!(report["exitCode"], 4);

    // --parent names it: whole again, for every command.
    let named = json(&vhd_ok(
        &["info", "--json", "--parent", "moved.vhd", "child.vhd"],
        d,
    ));
    assert_eq!(named["parentProblem"], serde_json::Value::Null);
    assert_eq!(named["chain"].as_array().unwrap().len(), 2);
    assert_eq!(
        vhd(&["check", "--parent", "moved.vhd", "child.vhd"], d)
            .status
            .code(),
        Some(0)
    );
    vhd_ok(&["map", "--parent", "moved.vhd", "child.vhd"], d);
    let bytes = Command::new(VHD)
        .args(["cat", "--parent", "moved.vhd", "child.vhd"])
        .current_dir(d)
        .output()
        .unwrap();
    assert_eq!(bytes.stdout.len(), 8 * MIB as usize);
    assert_eq!(bytes.stdout[0], 1, "the parent's data");
    assert_eq!(bytes.stdout[MIB as usize], 2, "the child's data");
    // Without it, commands that read the disk fail, naming every place tried.
    let cat = vhd(&["cat", "child.vhd"], d);
    assert_eq!(cat.status.code(), Some(1));
    assert!(text(&cat.stderr).starts_with("vhd: ERR_VHD_PARENT_NOT_FOUND: "));

    // A parent modified since (another footer time stamp, another file time):
    // --ignore-parent-timestamp accepts it.
    std::fs::rename(d.join("moved.vhd"), d.join("base.vhd")).unwrap();
    let base = d.join("base.vhd");
    let len = vhd_testkit::file_len(&base);
    let mut footer = vhd_testkit::file_bytes(&base, len - 512, 512);
    footer[24..28].copy_from_slice(&12345u32.to_be_bytes());
    vhd_testkit::fix_footer_checksum(&mut footer);
    vhd_testkit::patch_file(&base, 0, &footer);
    vhd_testkit::patch_file(&base, len - 512, &footer);
    let file = std::fs::File::options().write(true).open(&base).unwrap();
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000),
    )
    .unwrap();
    drop(file);
    let modified = vhd_ok(&["info", "child.vhd"], d);
    assert!(
        modified.contains("parent chain: BROKEN (ERR_VHD_PARENT_MODIFIED)"),
        "{modified}"
    );
    assert_eq!(vhd(&["check", "child.vhd"], d).status.code(), Some(4));
    let accepted = vhd_ok(&["info", "--ignore-parent-timestamp", "child.vhd"], d);
    assert!(!accepted.contains("BROKEN"), "{accepted}");
    assert_eq!(
        vhd(&["check", "--ignore-parent-timestamp", "child.vhd"], d)
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn rebase_takes_qemu_img_s_backing_option() {
    let dir = TempDir::new("spell-rebase");
    let d = dir.path();
    dynamic(&d.join("base.vhd"), 4 * MIB, &[(0, 1)]);
    child_of(&d.join("child.vhd"), &d.join("base.vhd"), &[]);
    std::fs::rename(d.join("base.vhd"), d.join("moved.vhd")).unwrap();
    vhd_ok(&["rebase", "-b", "moved.vhd", "-F", "vpc", "child.vhd"], d);
    let info = info("child.vhd", d);
    assert_eq!(info["parentProblem"], serde_json::Value::Null);
    assert_eq!(info["parent"]["name"], "moved.vhd");
    let stderr = usage_error(&["rebase", "-b", "moved.vhd", "child.vhd", "moved.vhd"], d);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
