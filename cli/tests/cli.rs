//! The `vhd` binary that cargo builds (the same code the npm package's `vhd` runs through
//! the addon): exit codes, streams, and images checked with qemu-img.
//! Without qemu-img the oracle test is skipped with a message, except under CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vhd(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vhd"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running vhd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vhd-cli-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    let help = vhd(&["--help"], &dir.0);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).starts_with("vhd version "));
    assert!(help.stderr.is_empty());

    let unknown = vhd(&["frobnicate"], &dir.0);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stdout.is_empty());
    assert!(text(&unknown.stderr).starts_with("vhd: ERR_VHD_USAGE: unknown command 'frobnicate'"));

    let missing = vhd(&["info", "missing.vhd"], &dir.0);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).starts_with("vhd: ERR_VHD_IO: opening missing.vhd"));
}

#[test]
fn created_images_have_the_size_qemu_img_sees() {
    if !qemu_img_available() {
        return;
    }
    let dir = TempDir::new("create");
    for (kind, size, bytes) in [("fixed", "3M", 3 << 20), ("dynamic", "10G", 10u64 << 30)] {
        let file = format!("{kind}.vhd");
        let created = vhd(&["create", "--type", kind, &file, size], &dir.0);
        assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
        let qemu = Command::new("qemu-img")
            .args(["info", "--output=json", "-f", "vpc", &file])
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert!(qemu.status.success(), "{}", text(&qemu.stderr));
        assert!(
            text(&qemu.stdout).contains(&format!("\"virtual-size\": {bytes},")),
            "{}",
            text(&qemu.stdout)
        );
        let info = text(&vhd(&["info", "--json", &file], &dir.0).stdout);
        assert!(
            info.contains(&format!("\"virtualSize\": {bytes},")),
            "{info}"
        );
        assert!(info.contains(&format!("\"type\": \"{kind}\",")), "{info}");
    }
}
