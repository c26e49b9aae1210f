//! The oracles: qemu-img and qemu-io (version 10 or later), and libvhdi through its Python
//! binding (pyvhdi): finding them, and what they make of an image.

use crate::{require_tools, run_ok, run_status, skip, TempDir};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// qemu-img, at version 10 or later: older versions size images of unknown creators by
/// their CHS geometry, so their answers are not the ones these tests expect.
pub fn require_qemu() -> bool {
    if !require_tools(&["qemu-img", "qemu-io"]) {
        return false;
    }
    let out = run_ok(Command::new("qemu-img").arg("--version"));
    let text = String::from_utf8_lossy(&out);
    // "qemu-img version 10.0.2 (Debian …)"
    let major = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= 10 => true,
        Some(_) => {
            skip(&format!(
                "qemu-img 10.0 or later is not installed (found: {})",
                text.lines().next().unwrap_or("")
            ));
            false
        }
        None => panic!("cannot parse the version of qemu-img from {text:?}"),
    }
}

/// The Python interpreter that can `import pyvhdi`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("VHD_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

/// True when pyvhdi (libvhdi's Python binding) can be imported; otherwise skips.
pub fn require_pyvhdi() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import pyvhdi"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(&format!(
            "pyvhdi (python3-libvhdi) is not installed for {}",
            python().display()
        ));
    }
    ok
}

/// Creates a VHD of exactly `size` bytes with `qemu-img create` (`subformat` is `dynamic`
/// or `fixed`); `force_size=on` keeps qemu from rounding the size to a CHS geometry.
pub fn qemu_create(path: &Path, subformat: &str, size: u64) {
    run_ok(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "vpc", "-o"])
            .arg(format!("subformat={subformat},force_size=on"))
            .arg(path)
            .arg(size.to_string()),
    );
}

/// Panics unless `qemu-img compare` finds the image's disk equal to `expected` (exit code 0,
/// "identical").
#[track_caller]
pub fn assert_qemu_reads(vhd: &Path, expected: &[u8], dir: &TempDir) {
    let raw = dir.join("expected.raw");
    std::fs::write(&raw, expected).unwrap();
    let (code, text) = run_status(
        Command::new("qemu-img")
            .args(["compare", "-f", "vpc", "-F", "raw"])
            .arg(vhd)
            .arg(&raw),
    );
    assert_eq!(code, 0, "qemu-img compare {}: {text}", vhd.display());
    assert!(
        text.contains("identical"),
        "qemu-img compare {}: {text}",
        vhd.display()
    );
}

/// The image's virtual disk as `qemu-img convert -f vpc -O raw` gives it.
pub fn qemu_raw(image: &Path, dir: &TempDir) -> Vec<u8> {
    let raw = dir.join("qemu.raw");
    run_ok(
        Command::new("qemu-img")
            .args(["convert", "-f", "vpc", "-O", "raw"])
            .arg(image)
            .arg(&raw),
    );
    let bytes = std::fs::read(&raw).unwrap();
    // Removed at once: a test may hold several disks' worth of these.
    std::fs::remove_file(&raw).unwrap();
    bytes
}

/// libvhdi (pyvhdi) opens every file of the chain in argv[2:] (base first), links each to
/// the one below with `set_parent`, and writes the top image's disk to argv[1], read in
/// 64 KiB pieces (its reads are right at that size; see FORMAT-NOTES). The environment
/// variable `PYVHDI_LIMIT`, when set, stops the read after that many bytes;
/// `PYVHDI_PRINT_PARENT`, when set, prints the parent name the top image records first.
const PYVHDI_READ_CHAIN: &str = r#"
import os, sys, pyvhdi
files = []
for path in sys.argv[2:]:
    f = pyvhdi.file()
    f.open(path)
    if files:
        f.set_parent(files[-1])
    files.append(f)
top = files[-1]
if os.environ.get("PYVHDI_PRINT_PARENT"):
    print(top.get_parent_filename())
size = top.get_media_size()
if os.environ.get("PYVHDI_LIMIT"):
    size = min(size, int(os.environ["PYVHDI_LIMIT"]))
top.seek_offset(0, 0)
done = 0
with open(sys.argv[1], "wb") as out:
    while done < size:
        data = top.read_buffer(min(65536, size - done))
        if not data:
            sys.exit("short read at %d" % done)
        out.write(data)
        done += len(data)
"#;

/// Runs [`PYVHDI_READ_CHAIN`] over `chain` (base first) with the environment `env`,
/// writing the disk to `out`; returns what it printed.
fn run_read_chain<P: AsRef<OsStr>>(chain: &[P], out: &Path, env: &[(&str, String)]) -> Vec<u8> {
    let mut command = Command::new(python());
    command.envs(env.iter().map(|(name, value)| (name, value)));
    run_ok(command.args(["-c", PYVHDI_READ_CHAIN]).arg(out).args(chain))
}

/// [`run_read_chain`] into a file of `dir`, removed once read: (what it printed, the disk).
fn read_chain<P: AsRef<OsStr>>(
    chain: &[P],
    dir: &TempDir,
    env: &[(&str, String)],
) -> (Vec<u8>, Vec<u8>) {
    let out = dir.join("libvhdi.raw");
    let printed = run_read_chain(chain, &out, env);
    let bytes = std::fs::read(&out).unwrap();
    // Removed at once: a test may hold several disks' worth of these.
    std::fs::remove_file(&out).unwrap();
    (printed, bytes)
}

/// Writes the disk libvhdi reads from the top of `chain` (base first) into the file `out`.
pub fn libvhdi_flatten<P: AsRef<OsStr>>(chain: &[P], out: &Path) {
    run_read_chain(chain, out, &[]);
}

/// What libvhdi reads from the top of `chain` (base first), up to `limit` bytes (libvhdi
/// fails to read a child past the end of its parent).
pub fn libvhdi_read_chain_up_to<P: AsRef<OsStr>>(
    chain: &[P],
    limit: u64,
    dir: &TempDir,
) -> Vec<u8> {
    read_chain(chain, dir, &[("PYVHDI_LIMIT", limit.to_string())]).1
}

/// What libvhdi reads from the top of `chain` (base first).
pub fn libvhdi_read_chain<P: AsRef<OsStr>>(chain: &[P], dir: &TempDir) -> Vec<u8> {
    read_chain(chain, dir, &[]).1
}

/// The parent name libvhdi finds in the top of `chain` (base first), and what it reads
/// from it.
pub fn libvhdi_parent_name_and_chain<P: AsRef<OsStr>>(
    chain: &[P],
    dir: &TempDir,
) -> (String, Vec<u8>) {
    let (printed, bytes) = read_chain(chain, dir, &[("PYVHDI_PRINT_PARENT", "1".into())]);
    let name = String::from_utf8(printed).expect("the parent name is UTF-8");
    (name.trim().to_string(), bytes)
}
