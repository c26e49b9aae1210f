//! Helpers shared by the integration tests: oracle detection, the corpus folder, temporary
//! folders, a seeded PRNG, hashing with `sha256sum`, and a few on-disk layout helpers.
//!
//! Oracles (qemu-img, vhdiinfo, pyvhdi, sha256sum, gzip, bzip2) and the corpus are optional on
//! a developer's machine: a test that needs a missing one prints `SKIPPED: …` and returns.
//! When the environment variable `CI` is set, a missing oracle fails the test instead: CI must
//! never skip silently.
//!
//! Environment variables:
//! - `CI`: missing oracles or corpus make tests fail instead of skip.
//! - `VHD_CORPUS_DIR`: the corpus folder (default: `shared/corpus` beside the repository).
//! - `VHD_TEST_SEED`: replay a randomized test with this seed (decimal or `0x` hex).
//! - `VHD_TEST_PYTHON`: the Python interpreter that has `pyvhdi` (default: Debian's
//!   `/usr/bin/python3`, because another `python3` may come first on `PATH`).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use vhd_core::{check, CheckOptions, Image, OpenOptions, VirtualDisk};

// ---------------------------------------------------------------------------------------------
// Skipping

/// True when running in CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Reports that a test cannot run because `what` is missing: panics in CI, otherwise prints
/// a `SKIPPED` line.
pub fn skip(what: &str) {
    if in_ci() {
        panic!("{what}, and CI is set: CI must not skip this test");
    }
    // Written to the real stderr, not through `eprintln!`, which the test harness captures
    // and hides for passing tests: a skip must be visible in a plain `cargo test`.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// The full path of `name` if it is an executable file on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}

/// True when the command-line tool `name` is installed; otherwise reports the test as
/// skipped (or fails it in CI) and returns false. Use as `if !require_tool("x") { return; }`.
pub fn require_tool(name: &str) -> bool {
    if find_on_path(name).is_some() {
        return true;
    }
    skip(&format!("{name} is not installed"));
    false
}

/// Every tool of `names` is installed (reports the first missing one).
pub fn require_tools(names: &[&str]) -> bool {
    names.iter().all(|name| require_tool(name))
}

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

/// The corpus of images made by other software (`shared/corpus` beside the repository, or
/// `VHD_CORPUS_DIR`), or `None` after reporting the test as skipped.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("VHD_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        // CARGO_MANIFEST_DIR is `<repo>/core`; the corpus is `<repo>/../shared/corpus`.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        skip(&format!(
            "the VHD corpus is not installed (no README.md in {}; set VHD_CORPUS_DIR)",
            dir.display()
        ));
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Running tools

/// Runs `cmd`, panicking with its stderr unless it exits with status 0; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cmd` and returns (exit code, stdout + stderr as text).
pub fn run_status(cmd: &mut Command) -> (i32, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// SHA-256 (lower-case hex) of a file, by `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg("-b").arg(path));
    parse_sha256sum(&out)
}

/// SHA-256 of the bytes that `produce` writes, streamed to `sha256sum` (nothing is kept in
/// memory or on disk).
pub fn sha256_stream(produce: impl FnOnce(&mut dyn Write)) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start sha256sum");
    {
        let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
        produce(&mut stdin);
        stdin.flush().unwrap();
    }
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    assert!(child.wait().unwrap().success(), "sha256sum failed");
    parse_sha256sum(&out)
}

/// SHA-256 of a byte slice.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    sha256_stream(|w| w.write_all(bytes).unwrap())
}

fn parse_sha256sum(out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out);
    let hash = text.split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(hash.len(), 64, "unexpected sha256sum output {text:?}");
    hash
}

/// Decompresses a `.gz` or `.bz2` file into `dir` (named without the suffix) with the
/// `gzip`/`bzip2` command. Returns `None` (test skipped) when the tool is missing.
pub fn decompress(src: &Path, dir: &Path) -> Option<PathBuf> {
    let name = src.file_name().unwrap().to_string_lossy().into_owned();
    let (tool, stem) = if let Some(stem) = name.strip_suffix(".gz") {
        ("gzip", stem)
    } else if let Some(stem) = name.strip_suffix(".bz2") {
        ("bzip2", stem)
    } else {
        panic!("{name}: not a .gz or .bz2 file");
    };
    if !require_tool(tool) {
        return None;
    }
    let dest = dir.join(stem);
    let out = std::fs::File::create(&dest).unwrap();
    let status = Command::new(tool)
        .arg("-dc")
        .arg(src)
        .stdout(out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(status.success(), "{tool} -dc {} failed", src.display());
    Some(dest)
}

// ---------------------------------------------------------------------------------------------
// Temporary folders

/// A fresh folder under the system's temporary folder, removed (with its contents) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new, empty, uniquely named folder; `label` only helps a human find it.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "vhd-core-test-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/// SplitMix64: tiny, fast, and good enough to pick offsets and fill buffers.
///
/// The seed comes from `VHD_TEST_SEED` when set, else from the clock; it is printed when
/// the generator is made and again if the test panics, so a failure can be replayed.
pub struct Rng {
    state: u64,
    seed: u64,
    label: String,
}

impl Rng {
    pub fn new(label: &str) -> Rng {
        let seed = match std::env::var("VHD_TEST_SEED") {
            Ok(s) => parse_seed(&s).unwrap_or_else(|| panic!("bad VHD_TEST_SEED {s:?}")),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let mut mix = Rng::from_seed(nanos ^ u64::from(std::process::id()) << 32);
                // Different tests started in the same nanosecond still differ.
                label.bytes().for_each(|b| mix.state ^= u64::from(b));
                mix.next_u64()
            }
        };
        println!("{label}: seed {seed:#x} (replay with VHD_TEST_SEED={seed:#x})");
        Rng {
            state: seed,
            seed,
            label: label.to_string(),
        }
    }

    /// A generator with a fixed seed (no printing, no environment).
    pub fn from_seed(seed: u64) -> Rng {
        Rng {
            state: seed,
            seed,
            label: String::new(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&last[..n]);
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.label.is_empty() {
            eprintln!(
                "{}: FAILED with seed {:#x}; replay with VHD_TEST_SEED={:#x}",
                self.label, self.seed, self.seed
            );
        }
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing bytes

/// Panics with the first differing offset (not a multi-megabyte dump) unless `a == b`.
#[track_caller]
pub fn assert_same_bytes(a: &[u8], b: &[u8], what: &str) {
    if a == b {
        return;
    }
    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
        let end = (i + 16).min(a.len()).min(b.len());
        panic!(
            "{what}: first difference at byte {i} ({:#x}): {:02x?} vs {:02x?} (lengths {} and {})",
            i,
            &a[i..end],
            &b[i..end],
            a.len(),
            b.len()
        );
    }
    panic!("{what}: lengths differ: {} vs {}", a.len(), b.len());
}

/// Reads the whole virtual disk through our reader, in 1 MiB pieces.
pub fn read_all(disk: &dyn vhd_core::VirtualDisk) -> Vec<u8> {
    let size = disk.size() as usize;
    let mut all = vec![0u8; size];
    let mut offset = 0;
    while offset < size {
        let end = (offset + (1 << 20)).min(size);
        let n = disk
            .read_at(&mut all[offset..end], offset as u64)
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert_eq!(n, end - offset, "short read at {offset}");
        offset = end;
    }
    all
}

/// SHA-256 of the whole virtual disk, streamed through our reader into `sha256sum`.
pub fn sha256_disk(disk: &dyn vhd_core::VirtualDisk) -> String {
    sha256_stream(|w| {
        let mut buf = vec![0u8; 4 << 20];
        let mut offset = 0u64;
        loop {
            let n = disk
                .read_at(&mut buf, offset)
                .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).unwrap();
            offset += n as u64;
        }
        assert_eq!(offset, disk.size());
    })
}

// ---------------------------------------------------------------------------------------------
// Independent implementations of the format's arithmetic (so tests do not check the library
// against itself)

/// The VHD checksum: one's complement of the byte sum, with the checksum field left out.
pub fn vhd_checksum(bytes: &[u8], field: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

/// Stores the right checksum in a 512-byte footer (field at 64).
pub fn fix_footer_checksum(footer: &mut [u8]) {
    let c = vhd_checksum(&footer[..512], 64);
    footer[64..68].copy_from_slice(&c.to_be_bytes());
}

/// Stores the right checksum in a 1024-byte dynamic header (field at 36).
pub fn fix_header_checksum(header: &mut [u8]) {
    let c = vhd_checksum(&header[..1024], 36);
    header[36..40].copy_from_slice(&c.to_be_bytes());
}

/// CHS geometry (cylinders, heads, sectors per track) for `total_sectors`, transcribed from
/// the specification's appendix.
pub fn spec_geometry(total_sectors: u64) -> (u64, u64, u64) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        let mut s = 17;
        let mut c = total / s;
        let mut h = c.div_ceil(1024);
        if h < 4 {
            h = 4;
        }
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    (cth / heads, heads, spt)
}

/// The big-endian `u32` at `at` in `b`.
pub fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// The big-endian `u64` at `at` in `b`.
pub fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads `len` bytes of a file at `offset`.
pub fn file_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Overwrites bytes of a file at `offset`.
pub fn patch_file(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// The file's length in bytes.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The file offset of BAT entry `block`, found through the file's own footer and header
/// (not through the library, which is what the tests check).
pub fn bat_entry_offset(path: &Path, block: u32) -> u64 {
    let footer = file_bytes(path, file_len(path) - 512, 512);
    let header = file_bytes(path, be_u64(&footer, 16), 1024);
    be_u64(&header, 16) + 4 * u64::from(block)
}

/// BAT entry `block` as the file holds it (see `bat_entry_offset`).
pub fn bat_entry_in_file(path: &Path, block: u32) -> u32 {
    be_u32(&file_bytes(path, bat_entry_offset(path, block), 4), 0)
}

/// The text of UTF-16LE bytes (a `W2ku`/`W2ru` locator payload), decoded here rather than
/// by the library.
pub fn utf16le_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Opening, checking and modelling images

/// Opens an image for reading and writing, panicking with its path on failure.
pub fn open_rw(path: &Path) -> Image {
    Image::open(path, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Options that open an image read-only.
pub fn read_only() -> OpenOptions {
    OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    }
}

/// Opens an image read-only, panicking with its path on failure.
pub fn open_ro(path: &Path) -> Image {
    Image::open(path, &read_only()).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The exit code `check` gives the image (0 clean, 1 leaks only, 2 corrupt).
pub fn check_exit_code(path: &Path) -> i32 {
    check(path, &CheckOptions::default()).unwrap().exit_code()
}

/// Panics with the report unless `check` finds the image clean.
#[track_caller]
pub fn assert_clean(path: &Path) {
    let report = check(path, &CheckOptions::default()).unwrap();
    assert!(report.is_clean(), "{}: {report}", path.display());
}

/// Panics unless `message` contains every one of `parts`.
#[track_caller]
pub fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "the message {message:?} does not mention {part:?}"
        );
    }
}

/// Writes `data` at `offset` into both the image and the model of its contents.
pub fn write_both(image: &mut Image, model: &mut [u8], data: &[u8], offset: u64) {
    image.write_at(data, offset).unwrap();
    model[offset as usize..offset as usize + data.len()].copy_from_slice(data);
}

/// Discards `length` bytes at `offset` in the image, and zeroes them in the model.
pub fn discard_both(image: &mut Image, model: &mut [u8], offset: u64, length: u64) {
    image.discard(offset, length).unwrap();
    model[offset as usize..(offset + length) as usize].fill(0);
}

/// Copies a file to `to`, writable: corpus files are stored read-only, and `fs::copy`
/// copies their permissions too.
pub fn copy_writable(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let mut permissions = std::fs::metadata(to).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(to, permissions).unwrap();
}

/// A corpus image copied (decompressed) into `dir` as `name`, writable.
pub fn corpus_copy(corpus: &Path, file: &str, dir: &TempDir, name: &str) -> Option<PathBuf> {
    let source = corpus.join(file);
    let target = dir.join(name);
    if file.ends_with(".gz") || file.ends_with(".bz2") {
        // Decompressed into a new file, which is writable already.
        std::fs::rename(decompress(&source, dir.path())?, &target).unwrap();
    } else {
        copy_writable(&source, &target);
    }
    Some(target)
}

// ---------------------------------------------------------------------------------------------
// What the oracles (qemu-img, libvhdi) make of an image

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

/// Panics unless `qemu-img compare` finds the image's disk equal to `expected` (exit code 0).
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
/// variable `PYVHDI_LIMIT`, when set, stops the read after that many bytes.
pub const PYVHDI_READ_CHAIN: &str = r#"
import os, sys, pyvhdi
files = []
for path in sys.argv[2:]:
    f = pyvhdi.file()
    f.open(path)
    if files:
        f.set_parent(files[-1])
    files.append(f)
top = files[-1]
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

/// Writes the disk libvhdi reads from the top of `chain` (base first) into the file `out`.
pub fn libvhdi_flatten<P: AsRef<OsStr>>(chain: &[P], out: &Path) {
    run_ok(
        Command::new(python())
            .args(["-c", PYVHDI_READ_CHAIN])
            .arg(out)
            .args(chain),
    );
}

/// What libvhdi reads from the top of `chain` (base first), up to `limit` bytes (libvhdi
/// fails to read a child past the end of its parent).
pub fn libvhdi_read_chain_up_to<P: AsRef<OsStr>>(
    chain: &[P],
    limit: u64,
    dir: &TempDir,
) -> Vec<u8> {
    let out = dir.join("libvhdi.raw");
    run_ok(
        Command::new(python())
            .env("PYVHDI_LIMIT", limit.to_string())
            .args(["-c", PYVHDI_READ_CHAIN])
            .arg(&out)
            .args(chain),
    );
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    bytes
}

/// What libvhdi reads from the top of `chain` (base first).
pub fn libvhdi_read_chain<P: AsRef<OsStr>>(chain: &[P], dir: &TempDir) -> Vec<u8> {
    let out = dir.join("libvhdi.raw");
    libvhdi_flatten(chain, &out);
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    bytes
}
