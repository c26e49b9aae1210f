//! Running command-line tools: status and output, SHA-256 by `sha256sum`, decompression by
//! `gzip`/`bzip2`.

use crate::require_tool;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Runs `program` with `args` in the folder `cwd` and returns its output, whatever its exit
/// status (the CLI's tests run `env!("CARGO_BIN_EXE_vhd")`, which only they can name).
pub fn run_in(program: &str, args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
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

/// Output of a command as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
