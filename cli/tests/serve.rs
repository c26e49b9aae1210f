//! `vhd serve` (issue 17) as a process, with real clients: `nbdcopy` of a served chain is
//! `vhd convert --to raw` of it byte for byte; a server killed with SIGKILL while `qemu-io`
//! writes and flushes leaves an image that opens with every write flushed before the kill;
//! SIGTERM (and, through the npm `vhd` command, SIGINT) finishes, flushes and closes; a chain
//! mounted through nbdfuse and a loop device reads and takes writes. (Unix only: Unix
//! sockets and signals.)
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use vhd_core::{create, CreateOptions, DiskType, VirtualDisk};
use vhd_testkit::*;

const VHD: &str = env!("CARGO_BIN_EXE_vhd");
const MIB: u64 = 1 << 20;

/// A depth-3 chain of 32 MiB: a dynamic base and two differencing children with writes.
fn chain(dir: &TempDir) -> PathBuf {
    let mut rng = Rng::new("serve-chain");
    let base = dir.join("base.vhd");
    let mut image = create(&base, &CreateOptions::new(DiskType::Dynamic, 32 * MIB)).unwrap();
    image.write_at(&rng.bytes(6 * MIB as usize), MIB).unwrap();
    drop(image);
    let middle = dir.join("middle.vhd");
    let mut image = create(&middle, &CreateOptions::differencing(&base)).unwrap();
    image.write_at(&rng.bytes(100_000), 3 * MIB + 7).unwrap();
    image.write_at(&rng.bytes(MIB as usize), 20 * MIB).unwrap();
    drop(image);
    let top = dir.join("top.vhd");
    let mut image = create(&top, &CreateOptions::differencing(&middle)).unwrap();
    image.write_at(&rng.bytes(5000), 1000).unwrap();
    image.write_at(&rng.bytes(512), 21 * MIB).unwrap();
    drop(image);
    top
}

/// A running `vhd serve` (or `node bin/vhd.js serve`), its stderr lines arriving on a
/// channel.
struct Served {
    child: Child,
    lines: Receiver<String>,
    socket: PathBuf,
}

impl Served {
    fn start(mut command: Command, socket: PathBuf) -> Served {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting vhd serve");
        let lines = forward_lines(child.stderr.take().unwrap());
        let served = Served {
            child,
            lines,
            socket,
        };
        // The server says where it serves once it listens.
        let first = served.next_line();
        assert!(first.contains("serving"), "{first}");
        served
    }

    fn vhd(file: &Path, socket: &Path, extra: &[&str]) -> Served {
        let mut command = Command::new(VHD);
        command
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .arg(file);
        Served::start(command, socket.to_path_buf())
    }

    fn uri(&self) -> String {
        format!("nbd+unix:///?socket={}", self.socket.display())
    }

    fn next_line(&self) -> String {
        self.lines.recv().expect("vhd serve ended")
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let result = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(result, 0);
    }

    /// Waits for the exit; returns its code and the rest of stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        (status.code(), rest.join("\n"))
    }
}

fn forward_lines(stderr: ChildStderr) -> Receiver<String> {
    let (sender, receiver) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

#[test]
fn nbdcopy_of_a_served_chain_is_vhd_convert_to_raw() {
    if !require_tools(&["nbdcopy", "qemu-img"]) {
        return;
    }
    let dir = TempDir::new("serve-nbdcopy");
    let top = chain(&dir);
    let raw = dir.join("convert.raw");
    run_ok(
        Command::new(VHD)
            .args(["convert", "--to", "raw"])
            .arg(&top)
            .arg(&raw),
    );
    let served = Served::vhd(&top, &dir.join("s.sock"), &["--read-only"]);
    let copy = dir.join("copy.raw");
    run_ok(Command::new("nbdcopy").arg(served.uri()).arg(&copy));
    assert_eq!(sha256_file(&copy), sha256_file(&raw));
    let compare = run_ok(
        Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "raw"])
            .arg(&raw)
            .arg(served.uri()),
    );
    assert!(String::from_utf8_lossy(&compare).contains("identical"));
    // One log line per connection: nbdcopy's and qemu-img's.
    let line = served.next_line();
    assert!(
        line.contains("connection 1") && line.contains("bytes read"),
        "{line}"
    );
    served.signal(libc::SIGTERM);
    let (code, rest) = served.finish();
    assert_eq!(code, Some(0), "{rest}");
    assert!(rest.contains("stopped; the image is closed"), "{rest}");
    assert!(!dir.join("s.sock").exists());
}

#[test]
fn a_server_killed_during_writes_keeps_every_write_flushed_before() {
    if !require_tools(&["qemu-io"]) {
        return;
    }
    let dir = TempDir::new("serve-kill");
    let top = chain(&dir);
    let parents = [dir.join("middle.vhd"), dir.join("base.vhd")];
    let parent_hashes: Vec<String> = parents.iter().map(|p| sha256_file(p)).collect();
    let served = Served::vhd(&top, &dir.join("k.sock"), &[]);
    // Writes of 256 KiB, each followed by a flush; qemu-io prints a line per write done.
    let writes = 64;
    let mut command = Command::new("qemu-io");
    command.args(["-f", "raw"]);
    for i in 0..writes {
        command
            .arg("-c")
            .arg(format!(
                "write -P {} {} 262144",
                i + 1,
                i * 270_336 + 4096 * (i % 3)
            ))
            .arg("-c")
            .arg("flush");
    }
    let mut qemu_io = command
        .arg(served.uri())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(qemu_io.stdout.take().unwrap());
    // Once write N is reported, the flush after write N-1 has been answered.
    let mut seen = 0;
    let mut line = String::new();
    while seen < 10 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "qemu-io ended early");
        if line.starts_with("wrote") {
            seen += 1;
        }
    }
    let mut served = served;
    served.child.kill().unwrap(); // SIGKILL
    let _ = served.child.wait();
    let _ = qemu_io.wait();
    let image = open_ro(&top);
    for i in 0..seen - 1 {
        let mut data = vec![0u8; 262_144];
        image
            .read_at(&mut data, i * 270_336 + 4096 * (i % 3))
            .unwrap();
        assert!(
            data.iter().all(|&b| b == (i + 1) as u8),
            "write {i} was flushed before the kill and is gone"
        );
    }
    drop(image);
    assert_ne!(
        check_exit_code(&top),
        2,
        "the image is corrupt after the kill"
    );
    for (parent, hash) in parents.iter().zip(&parent_hashes) {
        assert_eq!(&sha256_file(parent), hash);
    }
}

/// Writes `data` at `offset` through a hand-made NBD client and waits for the reply.
fn nbd_write(socket: &Path, offset: u64, data: &[u8]) -> UnixStream {
    let mut stream = UnixStream::connect(socket).unwrap();
    let mut greeting = [0u8; 18];
    stream.read_exact(&mut greeting).unwrap();
    stream.write_all(&3u32.to_be_bytes()).unwrap();
    // NBD_OPT_EXPORT_NAME "" (the default export): size and flags follow, no zeroes.
    let mut option = Vec::new();
    option.extend_from_slice(b"IHAVEOPT");
    option.extend_from_slice(&1u32.to_be_bytes());
    option.extend_from_slice(&0u32.to_be_bytes());
    stream.write_all(&option).unwrap();
    let mut export = [0u8; 10];
    stream.read_exact(&mut export).unwrap();
    let mut request = Vec::new();
    request.extend_from_slice(&0x2560_9513u32.to_be_bytes());
    request.extend_from_slice(&0u16.to_be_bytes());
    request.extend_from_slice(&1u16.to_be_bytes()); // NBD_CMD_WRITE
    request.extend_from_slice(&9u64.to_be_bytes());
    request.extend_from_slice(&offset.to_be_bytes());
    request.extend_from_slice(&(data.len() as u32).to_be_bytes());
    request.extend_from_slice(data);
    stream.write_all(&request).unwrap();
    let mut reply = [0u8; 16];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[4..8], &[0, 0, 0, 0], "the write failed");
    stream
}

/// What SIGTERM (or the npm command's SIGINT) must do: acknowledged writes flushed, the
/// connection closed, the socket removed, exit 0.
fn stops_cleanly(served: Served, signal: i32, top: &Path) {
    let socket = served.socket.clone();
    let mut stream = nbd_write(&socket, 9 * MIB + 3, &[0x6b; 70_000]);
    // A second write sent just before the signal: in flight, or not read yet.
    let mut request = Vec::new();
    request.extend_from_slice(&0x2560_9513u32.to_be_bytes());
    request.extend_from_slice(&0u16.to_be_bytes());
    request.extend_from_slice(&1u16.to_be_bytes()); // NBD_CMD_WRITE
    request.extend_from_slice(&10u64.to_be_bytes());
    request.extend_from_slice(&(12 * MIB).to_be_bytes());
    request.extend_from_slice(&(4 * MIB as u32).to_be_bytes());
    request.extend_from_slice(&vec![0x3c; 4 * MIB as usize]);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(&request);
        })
    };
    served.signal(signal);
    let mut rest = Vec::new();
    // The server closes the connection, after the reply to the second write if it took it.
    stream.read_to_end(&mut rest).unwrap();
    let _ = writer.join();
    let second_acknowledged = match rest.len() {
        0 => false,
        16 => {
            assert_eq!(
                &rest[4..],
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
                "{rest:?}"
            );
            true
        }
        n => panic!("{n} bytes after the signal: {rest:?}"),
    };
    let (code, text) = served.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("flushed and closed"), "{text}");
    assert!(!socket.exists());
    let image = open_ro(top);
    let mut data = vec![0u8; 70_000];
    image.read_at(&mut data, 9 * MIB + 3).unwrap();
    assert!(data.iter().all(|&b| b == 0x6b));
    if second_acknowledged {
        let mut data = vec![0u8; 4 * MIB as usize];
        image.read_at(&mut data, 12 * MIB).unwrap();
        assert!(
            data.iter().all(|&b| b == 0x3c),
            "an acknowledged write is missing"
        );
    }
    drop(image);
    assert_clean(top);
}

/// Unmounts what a test mounted, also when it fails halfway (lazily: a mount still busy
/// goes once released), innermost first.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for point in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(point).status();
        }
    }
}

/// Waits (up to 10 s) for `path` to exist.
fn wait_for(path: &Path) -> bool {
    for _ in 0..200 {
        if path.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// docs/nbd.md's way to mount a differencing chain without the nbd kernel module: the
/// served chain as a file through nbdfuse, its ext4 file system mounted from that file with
/// a loop device. A file made by mkfs.ext4 -d reads back, a file written through the mount
/// lands in the child (debugfs reads it from `vhd convert --to raw` of the child, e2fsck
/// finds the file system clean), the parent is byte-identical. Needs root, /dev/fuse and
/// loop devices: where the machine has none (a container without them), it says so and
/// stops there.
#[test]
fn a_chain_mounted_through_nbdfuse_and_a_loop_device_reads_and_takes_writes() {
    if !require_tools(&[
        "nbdfuse",
        "mkfs.ext4",
        "e2fsck",
        "debugfs",
        "mount",
        "umount",
    ]) {
        return;
    }
    // SAFETY: a plain query of this process's effective user id.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/dev/fuse").exists() {
        eprintln!("skipped: mounting needs root and /dev/fuse");
        return;
    }
    let dir = TempDir::new("serve-mount");
    let files = dir.join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("hello.txt"), "a file inside a chain\n").unwrap();
    let raw = dir.join("fs.raw");
    std::fs::File::create(&raw)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-d"])
            .arg(&files)
            .arg(&raw),
    );
    let base = dir.join("base.vhd");
    let child = dir.join("child.vhd");
    run_ok(
        Command::new(VHD)
            .args(["convert", "-q", "--to", "dynamic"])
            .arg(&raw)
            .arg(&base),
    );
    run_ok(Command::new(VHD).arg("snapshot").arg(&base).arg(&child));
    let base_sum = sha256_file(&base);

    let served = Served::vhd(&child, &dir.join("m.sock"), &[]);
    let fuse_dir = dir.join("fuse");
    let fs_dir = dir.join("fs");
    std::fs::create_dir(&fuse_dir).unwrap();
    std::fs::create_dir(&fs_dir).unwrap();
    let mut mounts = Mounts(vec![fuse_dir.clone()]);
    let mut fuse = Command::new("nbdfuse")
        .arg(&fuse_dir)
        .arg(served.uri())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting nbdfuse");
    let disk_file = fuse_dir.join("nbd");
    if !wait_for(&disk_file) {
        let _ = fuse.kill();
        let output = fuse.wait_with_output().unwrap();
        let why = text_of(&output.stderr);
        // A machine where FUSE mounts are refused: not our failure.
        let capability = [
            "/dev/fuse",
            "fusermount",
            "permission denied",
            "not permitted",
        ]
        .iter()
        .any(|c| why.to_lowercase().contains(c));
        assert!(capability, "nbdfuse did not mount: {why}");
        eprintln!("skipped: nbdfuse could not mount here: {why}");
        return;
    }
    let mounted = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&disk_file)
        .arg(&fs_dir)
        .output()
        .unwrap();
    if !mounted.status.success() {
        let why = text_of(&mounted.stderr);
        // A machine without loop devices, or one that refuses mounts: not our failure.
        let capability = ["loop device", "permission denied", "not permitted"]
            .iter()
            .any(|c| why.to_lowercase().contains(c));
        assert!(capability, "mount -o loop failed: {why}");
        eprintln!("skipped: mount -o loop failed here: {why}");
        drop(mounts);
        let _ = fuse.wait();
        return;
    }
    mounts.0.push(fs_dir.clone());
    assert_eq!(
        std::fs::read_to_string(fs_dir.join("hello.txt")).unwrap(),
        "a file inside a chain\n"
    );
    std::fs::write(fs_dir.join("new.txt"), "written through the mount\n").unwrap();
    run_ok(Command::new("umount").arg(&fs_dir));
    run_ok(Command::new("umount").arg(&fuse_dir));
    mounts.0.clear();
    assert!(fuse.wait().unwrap().success());
    served.signal(libc::SIGTERM);
    let (code, text) = served.finish();
    assert_eq!(code, Some(0), "{text}");

    assert_eq!(sha256_file(&base), base_sum, "the parent changed");
    assert_clean(&child);
    let out = dir.join("child.raw");
    run_ok(
        Command::new(VHD)
            .args(["convert", "-q", "--to", "raw"])
            .arg(&child)
            .arg(&out),
    );
    run_ok(Command::new("e2fsck").arg("-fn").arg(&out));
    let cat = run_ok(
        Command::new("debugfs")
            .args(["-R", "cat /new.txt"])
            .arg(&out),
    );
    assert_eq!(text_of(&cat), "written through the mount\n");
}

#[test]
fn sigterm_finishes_flushes_and_closes() {
    let dir = TempDir::new("serve-sigterm");
    let top = chain(&dir);
    let served = Served::vhd(&top, &dir.join("t.sock"), &[]);
    stops_cleanly(served, libc::SIGTERM, &top);
}

#[test]
fn the_npm_vhd_command_serves_and_stops_on_sigint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let addon = root.join("vhd.linux-x64-gnu.node");
    if !addon.exists() || find_on_path("node").is_none() {
        skip("node or the addon (npm install) is missing");
        return;
    }
    let dir = TempDir::new("serve-node");
    let top = chain(&dir);
    let socket = dir.join("n.sock");
    let mut command = Command::new("node");
    command
        .arg(root.join("bin/vhd.js"))
        .arg("serve")
        .arg("--socket")
        .arg(&socket)
        .arg(&top);
    let served = Served::start(command, socket);
    stops_cleanly(served, libc::SIGINT, &top);
}

#[test]
fn serve_refuses_what_it_must() {
    let dir = TempDir::new("serve-usage");
    let top = chain(&dir);
    let (code, text) = run_status(
        Command::new(VHD)
            .args(["serve", "--port", "0", "--bind", "0.0.0.0"])
            .arg(&top),
    );
    assert_eq!(code, 1);
    assert_mentions(
        &text,
        &[
            "ERR_VHD_INVALID_ARGUMENT",
            "0.0.0.0 is not a loopback address",
            "--allow-remote",
            "cleartext",
        ],
    );
    let (code, text) = run_status(Command::new(VHD).arg("serve").arg(&top));
    assert_eq!(code, 1);
    assert_mentions(&text, &["--socket PATH or --port N"]);
    let taken = dir.join("taken");
    std::fs::write(&taken, b"x").unwrap();
    let (code, text) = run_status(
        Command::new(VHD)
            .arg("serve")
            .arg("--socket")
            .arg(&taken)
            .arg(&top),
    );
    assert_eq!(code, 1);
    assert_mentions(&text, &["taken", "not a socket"]);
    assert_eq!(std::fs::read(&taken).unwrap(), b"x");
    let help = text_of(&run_ok(Command::new(VHD).args(["serve", "--help"])));
    assert_mentions(
        &help,
        &[
            "nbd-client",
            "mount",
            "nbdcopy",
            "qemu-img",
            "nbdfuse",
            "cleartext",
        ],
    );
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
