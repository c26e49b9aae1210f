//! Errors of the `vhd` command a person can act on: the OS error's name instead of
//! `ERR_VHD_IO`, the path as the user typed it, "is not a VHD image", a conversion that
//! refuses another image format, hints spelled as options of the command line, and a
//! snapshot over its own image.

use std::path::Path;
use std::process::{Command, Output};
use vhd_testkit::{require_qemu, sha256_file, text, TempDir};

fn vhd(args: &[&str], cwd: &Path) -> Output {
    vhd_testkit::run_in(env!("CARGO_BIN_EXE_vhd"), args, cwd)
}

/// Runs `vhd args`, expecting a failure with exit code 1; returns its stderr.
fn fails(args: &[&str], cwd: &Path) -> String {
    let out = vhd(args, cwd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "vhd {args:?}: {}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "vhd {args:?}");
    text(&out.stderr)
}

#[test]
fn os_errors_show_their_name_and_the_users_path() {
    let dir = TempDir::new("cli-errors-os");
    let stderr = fails(&["info", "missing.vhd"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ENOENT: missing.vhd: opening the image: No such file or directory (os error 2)\n"
    );
    std::fs::create_dir(dir.join("folder")).unwrap();
    let stderr = fails(
        &["create", "--type", "fixed", "folder/sub/new.vhd", "1M"],
        dir.path(),
    );
    assert!(
        stderr.starts_with("vhd: ENOENT: folder/sub/new.vhd: "),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_vhd_says_so() {
    let dir = TempDir::new("cli-errors-not-vhd");
    std::fs::write(dir.join("small.bin"), [7u8; 100]).unwrap();
    let stderr = fails(&["info", "small.bin"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ERR_VHD_NOT_VHD: small.bin is not a VHD image (it is 100 bytes long; a VHD has \
         at least a 512-byte footer)\n"
    );
}

#[test]
fn convert_refuses_another_image_format_unless_told_raw() {
    if !require_qemu() {
        return;
    }
    let dir = TempDir::new("cli-errors-qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "img.qcow2", "8M"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    let stderr = fails(&["info", "img.qcow2"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ERR_VHD_NOT_VHD: img.qcow2 is not a VHD image (it looks like a qcow2 image)\n"
    );
    // `check` tells it in its finding (exit code 2: not a good VHD).
    let check = vhd(&["check", "img.qcow2"], dir.path());
    assert_eq!(check.status.code(), Some(2));
    assert!(
        text(&check.stdout).contains("this is not a VHD image: it looks like a qcow2 image"),
        "{}",
        text(&check.stdout)
    );
    let stderr = fails(&["convert", "img.qcow2", "out.vhd"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ERR_VHD_FOREIGN_FORMAT: img.qcow2 is a qcow2 image, not a raw disk or a VHD: \
         convert it with qemu-img convert -O vpc; to wrap its bytes as they are, pass \
         --from raw\n"
    );
    assert!(!dir.join("out.vhd").exists());
    let out = vhd(
        &["convert", "--from", "raw", "img.qcow2", "out.vhd"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn hints_name_command_line_options() {
    let dir = TempDir::new("cli-errors-hints");
    let out = vhd(&["create", "--type", "dynamic", "a.vhd", "4M"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = fails(&["create", "--type", "dynamic", "a.vhd", "4M"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ERR_VHD_EXISTS: a.vhd: file already exists (pass --overwrite to replace it)\n"
    );
    std::fs::write(dir.join("b.vhd"), b"taken").unwrap();
    let stderr = fails(&["convert", "a.vhd", "b.vhd"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ERR_VHD_EXISTS: b.vhd: file already exists (pass --overwrite to replace it)\n"
    );
}

#[test]
fn a_snapshot_over_its_own_image_says_the_output_is_the_input() {
    let dir = TempDir::new("cli-errors-snapshot");
    let out = vhd(&["create", "--type", "dynamic", "a.vhd", "4M"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = sha256_file(&dir.join("a.vhd"));
    let stderr = fails(&["snapshot", "a.vhd", "a.vhd"], dir.path());
    assert_eq!(
        stderr,
        "vhd: ERR_VHD_OUTPUT_IS_INPUT: a.vhd is both the input and the output: a new \
         differencing image cannot be its own parent\n"
    );
    let stderr = fails(&["snapshot", "a.vhd", "./a.vhd"], dir.path());
    assert!(
        stderr.starts_with(
            "vhd: ERR_VHD_OUTPUT_IS_INPUT: the output ./a.vhd is the input a.vhd under another name"
        ),
        "{stderr}"
    );
    assert_eq!(sha256_file(&dir.join("a.vhd")), before);
}
