//! The server with real NBD clients: libnbd's `nbdinfo` and `nbdcopy`, qemu's `qemu-img`
//! and `qemu-io`. Each serves images (fixed, dynamic, a depth-3 differencing chain) made
//! by the library, and compares what the client sees with what the library reads.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, RwLock};
use vhd_core::{create, CreateOptions, DiskType, Image, OpenOptions, VirtualDisk};
use vhd_nbd::{Address, ServeOptions, Server};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;

/// A fixed, a dynamic and a depth-3 chain (dynamic base, two differencing children, each
/// writing patterns some whole blocks, some single sectors, some unaligned bytes), all of
/// 24 MiB. Returns (name, path) of each image to serve.
fn images(dir: &TempDir) -> Vec<(&'static str, PathBuf)> {
    let size = 24 * MIB;
    let mut rng = Rng::new("nbd-images");
    let mut fill = |image: &mut Image, spots: &[(u64, usize)], byte: u8| {
        for &(offset, length) in spots {
            let data: Vec<u8> = (0..length)
                .map(|i| byte ^ (i as u8) ^ (rng.below(2) as u8))
                .collect();
            image.write_at(&data, offset).unwrap();
        }
        image.flush().unwrap();
    };
    let fixed = dir.join("fixed.vhd");
    let mut image = create(&fixed, &CreateOptions::new(DiskType::Fixed, size)).unwrap();
    fill(&mut image, &[(0, 4096), (5 * MIB + 17, 70_000)], 0x11);
    drop(image);

    let dynamic = dir.join("dynamic.vhd");
    let mut image = create(&dynamic, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    fill(
        &mut image,
        &[(MIB, 3 * MIB as usize), (20 * MIB + 512, 512)],
        0x22,
    );
    drop(image);

    let base = dir.join("base.vhd");
    let mut image = create(&base, &CreateOptions::new(DiskType::Dynamic, size)).unwrap();
    fill(
        &mut image,
        &[(0, 6 * MIB as usize), (16 * MIB, 2 * MIB as usize)],
        0x33,
    );
    drop(image);
    let middle = dir.join("middle.vhd");
    let mut image = create(&middle, &CreateOptions::differencing(&base)).unwrap();
    fill(
        &mut image,
        &[(512, 1024), (2 * MIB + 3, 10_000), (10 * MIB, MIB as usize)],
        0x44,
    );
    drop(image);
    let top = dir.join("top.vhd");
    let mut image = create(&top, &CreateOptions::differencing(&middle)).unwrap();
    fill(
        &mut image,
        &[(4096, 512), (2 * MIB + 5000, 3000), (22 * MIB, 4096)],
        0x55,
    );
    drop(image);
    vec![("fixed", fixed), ("dynamic", dynamic), ("chain", top)]
}

/// Serves `path` on a Unix socket in `dir`; returns the server and its URI.
fn serve(path: &Path, dir: &TempDir, read_only: bool) -> (Server, String) {
    let image = Image::open(
        path,
        &OpenOptions {
            read_only,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let server = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Unix(dir.join(&format!("{name}.sock"))),
        ServeOptions {
            read_only,
            ..ServeOptions::default()
        },
    )
    .unwrap();
    let uri = server.address().to_string();
    (server, uri)
}

/// The disk's extents as `base:allocation` describes them, from the library's allocation
/// map: (offset, length, 0 for data or 3 for hole+zero), adjacent extents of one kind merged.
fn expected_extents(path: &Path) -> Vec<(u64, u64, u32)> {
    let image = open_ro(path);
    let mut extents = Vec::new();
    let mut position = 0;
    let push = |extents: &mut Vec<(u64, u64, u32)>, offset: u64, length: u64, kind: u32| {
        if length == 0 {
            return;
        }
        match extents.last_mut() {
            Some((_, l, k)) if *k == kind => *l += length,
            _ => extents.push((offset, length, kind)),
        }
    };
    for range in image.allocated_ranges().unwrap() {
        push(&mut extents, position, range.offset - position, 3);
        push(&mut extents, range.offset, range.length, 0);
        position = range.offset + range.length;
    }
    push(&mut extents, position, image.size() - position, 3);
    extents
}

/// `nbdinfo --map` of `uri`: (offset, length, type), adjacent extents of one type merged.
fn nbdinfo_map(uri: &str) -> Vec<(u64, u64, u32)> {
    let out = run_ok(Command::new("nbdinfo").arg("--map").arg(uri));
    let mut extents: Vec<(u64, u64, u32)> = Vec::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (offset, length, kind) = (
            fields[0].parse().unwrap(),
            fields[1].parse::<u64>().unwrap(),
            fields[2].parse().unwrap(),
        );
        match extents.last_mut() {
            Some((_, l, k)) if *k == kind => *l += length,
            _ => extents.push((offset, length, kind)),
        }
    }
    extents
}

#[test]
fn nbdinfo_sees_size_flags_and_the_allocation_map() {
    if !require_tools(&["nbdinfo"]) {
        return;
    }
    let dir = TempDir::new("nbd-nbdinfo");
    for (name, path) in images(&dir) {
        let size = open_ro(&path).size();
        let expected = expected_extents(&path);
        let (server, uri) = serve(&path, &dir, false);
        let json = run_ok(Command::new("nbdinfo").arg("--json").arg(&uri));
        let info: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let export = &info["exports"][0];
        assert_eq!(export["export-size"].as_u64(), Some(size), "{name}");
        assert_eq!(export["is_read_only"].as_bool(), Some(false), "{name}");
        for flag in [
            "can_flush",
            "can_fua",
            "can_trim",
            "can_zero",
            "can_multi_conn",
        ] {
            assert_eq!(export[flag].as_bool(), Some(true), "{name}: {flag}");
        }
        assert!(
            export["contexts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c.as_str() == Some("base:allocation")),
            "{name}: {json:?}"
        );
        assert_eq!(nbdinfo_map(&uri), expected, "{name}");
        server.shutdown().unwrap();
    }
}

#[test]
fn nbdcopy_and_qemu_img_read_what_the_library_reads() {
    if !require_tools(&["nbdcopy", "qemu-img"]) {
        return;
    }
    let dir = TempDir::new("nbd-nbdcopy");
    for (name, path) in images(&dir) {
        let expected = read_all(&open_ro(&path));
        let raw = dir.join(&format!("{name}.raw"));
        std::fs::write(&raw, &expected).unwrap();
        let (server, uri) = serve(&path, &dir, true);
        let copy = dir.join(&format!("{name}.copy"));
        run_ok(Command::new("nbdcopy").arg(&uri).arg(&copy));
        assert_same_bytes(&std::fs::read(&copy).unwrap(), &expected, name);
        let compare = run_ok(
            Command::new("qemu-img")
                .args(["compare", "-f", "raw", "-F", "raw"])
                .arg(&raw)
                .arg(&uri),
        );
        assert!(
            String::from_utf8_lossy(&compare).contains("identical"),
            "{name}"
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn two_nbdcopy_at_once_read_the_same_disk() {
    if !require_tools(&["nbdcopy"]) {
        return;
    }
    let dir = TempDir::new("nbd-two-copies");
    let (_, path) = images(&dir).pop().unwrap();
    let expected = read_all(&open_ro(&path));
    let (server, uri) = serve(&path, &dir, true);
    let children: Vec<_> = (0..2)
        .map(|i| {
            let out = dir.join(&format!("copy{i}.raw"));
            let child = Command::new("nbdcopy")
                .arg("--connections=2")
                .arg(&uri)
                .arg(&out)
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    for (mut child, out) in children {
        assert!(child.wait().unwrap().success());
        assert_same_bytes(&std::fs::read(&out).unwrap(), &expected, "a copy");
    }
    server.shutdown().unwrap();
}

/// `qemu-io` commands against `uri` (as a raw NBD disk); returns its output.
fn qemu_io(uri: &str, commands: &[&str]) -> String {
    let mut command = Command::new("qemu-io");
    command.args(["-f", "raw"]);
    for c in commands {
        command.arg("-c").arg(c);
    }
    let out = run_ok(command.arg(uri));
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(!text.contains("failed"), "qemu-io: {text}");
    text
}

#[test]
fn qemu_io_writes_land_in_the_image_and_nowhere_else() {
    if !require_tools(&["qemu-io"]) {
        return;
    }
    let dir = TempDir::new("nbd-qemu-io");
    for (name, path) in images(&dir) {
        let parents: Vec<PathBuf> = open_ro(&path)
            .chain()
            .iter()
            .skip(1)
            .map(|p| p.to_path_buf())
            .collect();
        let parent_hashes: Vec<String> = parents.iter().map(|p| sha256_file(p)).collect();
        let mut model = read_all(&open_ro(&path));
        let (server, uri) = serve(&path, &dir, false);
        qemu_io(
            &uri,
            &[
                "write -P 0x5a 1000 5000",
                "write -P 0xa5 4194000 1048999",
                "write -z 300001 70000",
                "write -z -u 8388608 4194304",
                "flush",
            ],
        );
        model[1000..6000].fill(0x5a);
        model[4_194_000..4_194_000 + 1_048_999].fill(0xa5);
        model[300_001..370_001].fill(0);
        model[8 * MIB as usize..12 * MIB as usize].fill(0);
        if name != "chain" {
            // A discard reads as zeros in fixed and dynamic images (in a differencing one it
            // reveals the parent).
            qemu_io(&uri, &["discard 14680064 2097152", "discard 2001 3000"]);
            model[14 * MIB as usize..16 * MIB as usize].fill(0);
            model[2001..5001].fill(0);
        }
        server.shutdown().unwrap();
        drop(server);
        let image = open_ro(&path);
        assert_same_bytes(&read_all(&image), &model, name);
        drop(image);
        assert_clean(&path);
        for (parent, hash) in parents.iter().zip(&parent_hashes) {
            assert_eq!(
                &sha256_file(parent),
                hash,
                "{name}: {} changed",
                parent.display()
            );
        }
    }
}

#[test]
fn write_zeroes_allocates_nothing_and_no_hole_keeps_blocks() {
    if !require_tools(&["qemu-io"]) {
        return;
    }
    let dir = TempDir::new("nbd-zeroes");
    let path = dir.join("zeroes.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, 16 * MIB)).unwrap();
    image.write_at(&vec![0x99; 8 * MIB as usize], 0).unwrap();
    image.flush().unwrap();
    drop(image);
    let length_before = file_len(&path);
    let (server, uri) = serve(&path, &dir, false);
    qemu_io(
        &uri,
        &[
            // Where the disk reads as zeros already: nothing is allocated.
            "write -z -u 8M 8M",
            // NO_HOLE (qemu-io's plain -z): zeros written, the block stays allocated.
            "write -z 0 2M",
            // No NO_HOLE (-u, qemu may unmap): the whole block is unallocated.
            "write -z -u 2M 2M",
            // Part of a block: zeros written in it.
            "write -z -u 4194304 1000",
            "flush",
        ],
    );
    server.shutdown().unwrap();
    drop(server);
    assert!(file_len(&path) <= length_before, "nothing was allocated");
    let image = open_ro(&path);
    // Which bytes are allocated (ranges merged whatever their place in the file).
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for r in image.allocated_ranges().unwrap() {
        match ranges.last_mut() {
            Some((offset, length)) if *offset + *length == r.offset => *length += r.length,
            _ => ranges.push((r.offset, r.length)),
        }
    }
    assert_eq!(ranges, vec![(0, 2 * MIB), (4 * MIB, 4 * MIB)]);
    let mut model = vec![0u8; 16 * MIB as usize];
    model[4 * MIB as usize + 1000..8 * MIB as usize].fill(0x99);
    assert_same_bytes(&read_all(&image), &model, "zeroed disk");
}

#[test]
fn a_read_only_export_refuses_writes() {
    if !require_tools(&["nbdcopy", "nbdinfo"]) {
        return;
    }
    let dir = TempDir::new("nbd-read-only");
    let (_, path) = images(&dir).remove(1);
    let hash = sha256_file(&path);
    let (server, uri) = serve(&path, &dir, true);
    let json = run_ok(Command::new("nbdinfo").arg("--json").arg(&uri));
    let info: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(info["exports"][0]["is_read_only"].as_bool(), Some(true));
    let source = dir.join("source.raw");
    std::fs::write(&source, vec![0x77u8; 24 * MIB as usize]).unwrap();
    let (code, text) = run_status(Command::new("nbdcopy").arg(&source).arg(&uri));
    assert_ne!(code, 0, "nbdcopy into a read-only export succeeded: {text}");
    server.shutdown().unwrap();
    drop(server);
    assert_eq!(sha256_file(&path), hash);
}
