//! Partition tables inside images (issue 16), against the real tools: disks partitioned by
//! `sfdisk` (MBR with an extended partition and logical ones; GPT) and `sgdisk` (GPT with
//! names and attributes), converted to fixed, dynamic and differencing VHDs by qemu-img and
//! by `vhd convert` / `vhd snapshot`; `vhd partitions --json` must say what `sfdisk --json`,
//! `sgdisk --print` and `sgdisk -i N` say of the raw disk, for every kind. A damaged primary
//! GPT is read from its backup, as both tools do. File systems made by `mkfs.ext4 -d` and
//! `mkfs.vfat` + `mcopy` come back out with `vhd convert --partition N` (and `vhd cat
//! --partition N`) byte for byte, and `e2fsck -fn`, `debugfs` and `mtools` read them.
//! (Unix only: the tools are.)
#![cfg(unix)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vhd_testkit::{require_tools, run_ok, text, TempDir};

const VHD: &str = env!("CARGO_BIN_EXE_vhd");
const MIB: u64 = 1 << 20;

fn vhd(args: &[&str], cwd: &Path) -> Output {
    Command::new(VHD)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running vhd")
}

/// Runs `vhd` and returns what it printed; it must succeed.
#[track_caller]
fn vhd_ok(args: &[&str], cwd: &Path) -> String {
    text(&run_ok(Command::new(VHD).args(args).current_dir(cwd)))
}

fn tool(program: &str, args: &[&str], cwd: &Path) -> String {
    text(&run_ok(
        Command::new(program)
            .args(args)
            .current_dir(cwd)
            .env("MTOOLS_SKIP_CHECK", "1"),
    ))
}

/// A zero-filled raw disk of `size` bytes partitioned by `sfdisk` with `script`.
fn sfdisk_disk(dir: &TempDir, name: &str, size: u64, script: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running sfdisk");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sfdisk: {}", text(&out.stderr));
    path
}

/// MBR: a bootable primary, a primary NTFS, an extended partition holding three logical
/// partitions (Linux, swap, Linux), as `sfdisk` lays them out.
fn mbr_disk(dir: &TempDir) -> PathBuf {
    sfdisk_disk(
        dir,
        "mbr.raw",
        64 * MIB,
        "label: dos\n2048,8192,83,*\n,16384,7\n,,5\n,8192,83\n,4096,82\n,,83\n",
    )
}

/// GPT made by `sgdisk`: names, a legacy-BIOS-bootable attribute, the high attribute bits
/// of a partition type, and an unnamed partition.
fn gpt_disk(dir: &TempDir) -> PathBuf {
    let path = dir.join("gpt.raw");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 * MIB)
        .unwrap();
    run_ok(Command::new("sgdisk").arg(&path).args([
        "-n1:2048:+8M",
        "-t1:ef00",
        "-c1:EFI system",
        "-n2:0:+16M",
        "-t2:8300",
        "-c2:root fs",
        "-A2:set:2",
        "-A2:set:60",
        "-n3:0:+4M",
        "-t3:8200",
        "-c3:swap",
        "-n4:0:0",
        "-t4:0700",
    ]));
    path
}

/// The raw disk as VHDs of every kind, each named for how it was made: qemu-img's fixed and
/// dynamic (sizes kept exact), ours, and a differencing child of each dynamic one.
fn images_of(raw: &Path, dir: &TempDir) -> Vec<PathBuf> {
    let cwd = dir.path();
    let stem = raw.file_stem().unwrap().to_str().unwrap();
    let mut images = Vec::new();
    for subformat in ["fixed", "dynamic"] {
        let out = dir.join(&format!("{stem}-qemu-{subformat}.vhd"));
        run_ok(
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vpc", "-o"])
                .arg(format!("subformat={subformat},force_size=on"))
                .arg(raw)
                .arg(&out),
        );
        images.push(out);
        let ours = dir.join(&format!("{stem}-ours-{subformat}.vhd"));
        vhd_ok(
            &[
                "convert",
                "-q",
                "--to",
                subformat,
                raw.to_str().unwrap(),
                ours.to_str().unwrap(),
            ],
            cwd,
        );
        images.push(ours);
    }
    // qemu misreads differencing VHDs: the children are ours.
    for base in ["qemu-dynamic", "ours-dynamic"] {
        let parent = dir.join(&format!("{stem}-{base}.vhd"));
        let child = dir.join(&format!("{stem}-{base}-child.vhd"));
        vhd_ok(
            &[
                "snapshot",
                parent.to_str().unwrap(),
                child.to_str().unwrap(),
            ],
            cwd,
        );
        images.push(child);
    }
    images
}

/// `vhd partitions --json` of `image`.
fn our_table(image: &Path, cwd: &Path) -> Value {
    serde_json::from_str(&vhd_ok(
        &["partitions", "--json", image.to_str().unwrap()],
        cwd,
    ))
    .unwrap()
}

/// `sfdisk --json` of `raw`: the label, and per partition (number, start, sectors, type as
/// sfdisk writes it, bootable, uuid, name, attrs), with stderr (its warnings).
fn sfdisk_table(raw: &Path) -> (Value, String) {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(raw)
        .output()
        .unwrap();
    assert!(out.status.success(), "sfdisk --json: {}", text(&out.stderr));
    (
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitiontable"].clone(),
        text(&out.stderr),
    )
}

/// A partition in sfdisk's terms: number, start, sectors, type as sfdisk writes it, MBR
/// boot flag, unique GUID, name.
type SfdiskRow = (u64, u64, u64, String, bool, Option<String>, Option<String>);

/// Our table in sfdisk's terms, to compare with [`sfdisk_table`]'s partitions.
fn as_sfdisk(ours: &Value) -> Vec<SfdiskRow> {
    ours["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let kind = match &p["type"] {
                Value::Number(byte) => format!("{:x}", byte.as_u64().unwrap()),
                Value::String(guid) => guid.clone(),
                other => panic!("type {other}"),
            };
            let gpt = p["type"].is_string();
            (
                p["index"].as_u64().unwrap(),
                p["firstLBA"].as_u64().unwrap(),
                p["sectors"].as_u64().unwrap(),
                kind,
                // sfdisk's "bootable" is the MBR boot flag; GPT's shows in attrs.
                !gpt && p["bootable"].as_bool().unwrap(),
                p["guid"].as_str().map(str::to_string),
                p["name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .map(String::from),
            )
        })
        .collect()
}

fn sfdisk_partitions(table: &Value) -> Vec<SfdiskRow> {
    // sfdisk leaves "partitions" out of a table that has none.
    let none = Vec::new();
    table["partitions"]
        .as_array()
        .unwrap_or(&none)
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let digits = node.len() - node.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            (
                node[node.len() - digits..].parse().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
                p["bootable"].as_bool().unwrap_or(false),
                p["uuid"].as_str().map(String::from),
                p["name"].as_str().map(String::from),
            )
        })
        .collect()
}

#[track_caller]
fn assert_same_as_sfdisk(raw: &Path, images: &[PathBuf], cwd: &Path) -> Value {
    let (expected, _) = sfdisk_table(raw);
    let label = match expected["label"].as_str().unwrap() {
        "dos" => "mbr",
        other => other,
    };
    let mut last = Value::Null;
    for image in images {
        let ours = our_table(image, cwd);
        assert_eq!(ours["type"], label, "{}", image.display());
        assert_eq!(
            as_sfdisk(&ours),
            sfdisk_partitions(&expected),
            "{}: ours {ours:#}\nsfdisk {expected:#}",
            image.display()
        );
        if label == "gpt" {
            assert_eq!(
                ours["diskGuid"].as_str().unwrap(),
                expected["id"].as_str().unwrap(),
                "{}",
                image.display()
            );
        }
        last = ours;
    }
    last
}

/// `sgdisk --print`'s rows: (number, first sector, last sector, code, name).
fn sgdisk_rows(raw: &Path) -> (Vec<(u64, u64, u64, String)>, String) {
    let out = tool(
        "sgdisk",
        &["--print", raw.to_str().unwrap()],
        Path::new("/"),
    );
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.starts_with("Number") {
            in_table = true;
            continue;
        }
        if in_table && !line.trim().is_empty() {
            let words: Vec<&str> = line.split_whitespace().collect();
            // Number, start, end, size (2 words), code, name (the rest).
            let name = words[6..].join(" ");
            rows.push((
                words[0].parse().unwrap(),
                words[1].parse().unwrap(),
                words[2].parse().unwrap(),
                name,
            ));
        }
    }
    (rows, out)
}

/// `sgdisk -i N`'s type GUID, unique GUID, attribute flags and name.
fn sgdisk_info(raw: &Path, index: u64) -> (String, String, u64, String) {
    let out = tool(
        "sgdisk",
        &[&format!("-i{index}"), raw.to_str().unwrap()],
        Path::new("/"),
    );
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in sgdisk -i{index}: {out}"))
            .trim()
            .to_string()
    };
    let type_guid = field("Partition GUID code:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let name = field("Partition name:");
    (
        type_guid,
        field("Partition unique GUID:"),
        u64::from_str_radix(&field("Attribute flags:"), 16).unwrap(),
        name.trim_matches('\'').to_string(),
    )
}

#[track_caller]
fn assert_same_as_sgdisk(raw: &Path, ours: &Value) {
    let (rows, _) = sgdisk_rows(raw);
    let partitions = ours["partitions"].as_array().unwrap();
    let mine: Vec<(u64, u64, u64, String)> = partitions
        .iter()
        .map(|p| {
            (
                p["index"].as_u64().unwrap(),
                p["firstLBA"].as_u64().unwrap(),
                p["lastLBA"].as_u64().unwrap(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(mine, rows, "sgdisk --print");
    for p in partitions {
        let (type_guid, unique, attributes, name) = sgdisk_info(raw, p["index"].as_u64().unwrap());
        assert_eq!(p["type"].as_str().unwrap(), type_guid);
        assert_eq!(p["guid"].as_str().unwrap(), unique);
        assert_eq!(p["attributes"].as_u64().unwrap(), attributes);
        assert_eq!(p["name"].as_str().unwrap(), name);
        assert_eq!(p["bootable"].as_bool().unwrap(), attributes & 4 != 0);
    }
}

fn oracles() -> bool {
    require_tools(&["sfdisk", "sgdisk", "qemu-img"])
}

#[test]
fn mbr_with_logical_partitions_matches_sfdisk_in_every_kind_of_image() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("partitions-mbr");
    let raw = mbr_disk(&dir);
    let images = images_of(&raw, &dir);
    let ours = assert_same_as_sfdisk(&raw, &images, dir.path());
    let indexes: Vec<u64> = ours["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2, 3, 5, 6, 7]);
    assert_eq!(ours["findings"], serde_json::json!([]));
    // The text listing has sfdisk --list's rows.
    let listing = vhd_ok(&["partitions", images[1].to_str().unwrap()], dir.path());
    assert!(listing.contains("Disklabel type: dos"), "{listing}");
    for row in [
        "1      *     2048  10239    8192 4 MiB  83 Linux",
        "6           38912  43007    4096 2 MiB  82 Linux swap / Solaris",
    ] {
        assert!(listing.contains(row), "{row:?} not in {listing}");
    }
}

/// The other extended types (W95 LBA 0x0F, Linux 0x85), the extended partition in the
/// first slot, and logical partitions with gaps between them: as sfdisk reads them.
#[test]
fn other_extended_partition_types_match_sfdisk() {
    if !oracles() {
        return;
    }
    for (n, extended) in ["f", "85"].into_iter().enumerate() {
        let dir = TempDir::new("partitions-extended");
        let script =
            format!("label: dos\n2048,,{extended}\n,2048,b\n10240,4096,83\n30000,2048,c\n,,e\n");
        let raw = sfdisk_disk(&dir, &format!("ext{n}.raw"), 32 * MIB, &script);
        let images = images_of(&raw, &dir);
        let ours = assert_same_as_sfdisk(&raw, &images, dir.path());
        assert_eq!(ours["partitions"].as_array().unwrap().len(), 5, "{ours:#}");
        assert_eq!(ours["findings"], serde_json::json!([]));
    }
}

#[test]
fn gpt_matches_sfdisk_and_sgdisk_in_every_kind_of_image() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("partitions-gpt");
    let raw = gpt_disk(&dir);
    let images = images_of(&raw, &dir);
    let ours = assert_same_as_sfdisk(&raw, &images, dir.path());
    for image in &images {
        assert_same_as_sgdisk(&raw, &our_table(image, dir.path()));
    }
    assert_eq!(ours["findings"], serde_json::json!([]));
    assert_eq!(ours["partitions"][1]["typeName"], "Linux filesystem");
    assert_eq!(ours["partitions"][1]["attributes"], (1u64 << 60) | 4);
    assert_eq!(ours["partitions"][0]["typeName"], "EFI System");
}

/// Flips a byte of the primary GPT header of `raw` (its disk GUID: the header CRC32 no
/// longer matches).
fn damage_primary_header(raw: &Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(raw)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 512 + 60).unwrap();
    file.write_all_at(&[!byte[0]], 512 + 60).unwrap();
}

#[test]
fn a_damaged_primary_gpt_is_read_from_the_backup_and_reported_as_sgdisk_and_sfdisk_do() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("partitions-gpt-damaged");
    let raw = gpt_disk(&dir);
    let (before, _) = sfdisk_table(&raw);
    damage_primary_header(&raw);
    let (after, warnings) = sfdisk_table(&raw);
    assert_eq!(before["partitions"], after["partitions"]);
    assert!(
        warnings.contains("primary GPT table is corrupt"),
        "sfdisk: {warnings}"
    );
    let (_, sgdisk) = vhd_testkit::run_status(Command::new("sgdisk").arg("--verify").arg(&raw));
    assert!(
        sgdisk.contains("Main header: ERROR") && sgdisk.contains("Backup header: OK"),
        "sgdisk: {sgdisk}"
    );
    let images = images_of(&raw, &dir);
    let ours = assert_same_as_sfdisk(&raw, &images, dir.path());
    assert_same_as_sgdisk(&raw, &ours);
    for image in &images {
        let codes: Vec<Value> = our_table(image, dir.path())["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].clone())
            .collect();
        assert_eq!(codes, ["gpt-primary-damaged"], "{}", image.display());
    }
    let listing = vhd_ok(&["partitions", images[0].to_str().unwrap()], dir.path());
    assert!(listing.contains("gpt-primary-damaged: the primary GPT is damaged (primary header at byte 512: header CRC32 mismatch"), "{listing}");
}

/// A file system image made by `make` in `dir` (a file of `size` bytes), written into
/// `raw` at `offset`.
fn place(raw: &Path, offset: u64, fs: &Path) {
    use std::os::unix::fs::FileExt;
    let bytes = std::fs::read(fs).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(raw).unwrap();
    file.write_all_at(&bytes, offset).unwrap();
}

#[test]
fn file_systems_come_out_of_every_kind_of_image_with_convert_partition() {
    if !oracles()
        || !require_tools(&[
            "mkfs.ext4",
            "e2fsck",
            "debugfs",
            "mkfs.vfat",
            "mcopy",
            "mdir",
        ])
    {
        return;
    }
    let dir = TempDir::new("partitions-fs");
    let cwd = dir.path();
    // A FAT primary and an ext4 logical partition.
    let raw = sfdisk_disk(
        &dir,
        "fs.raw",
        48 * MIB,
        "label: dos\n2048,32768,e\n,,5\n,40960,83\n",
    );
    let (table, _) = sfdisk_table(&raw);
    let start = |n: usize| table["partitions"][n]["start"].as_u64().unwrap() * 512;
    let size = |n: usize| table["partitions"][n]["size"].as_u64().unwrap() * 512;

    let content = dir.join("content");
    std::fs::create_dir_all(content.join("etc")).unwrap();
    let hello: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(content.join("etc/hello.bin"), &hello).unwrap();
    let ext4 = dir.join("part.ext4");
    tool(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            content.to_str().unwrap(),
            ext4.to_str().unwrap(),
            &format!("{}k", size(2) / 1024),
        ],
        cwd,
    );
    place(&raw, start(2), &ext4);

    let fat = dir.join("part.fat");
    tool(
        "mkfs.vfat",
        &["-C", fat.to_str().unwrap(), &(size(0) / 1024).to_string()],
        cwd,
    );
    let note = dir.join("note.txt");
    std::fs::write(&note, b"a file in the FAT partition\n").unwrap();
    tool(
        "mcopy",
        &[
            "-i",
            fat.to_str().unwrap(),
            note.to_str().unwrap(),
            "::/NOTE.TXT",
        ],
        cwd,
    );
    place(&raw, start(0), &fat);

    let (ext4_bytes, fat_bytes) = (std::fs::read(&ext4).unwrap(), std::fs::read(&fat).unwrap());
    // From the raw disk itself (a raw source of convert), to a fixed VHD.
    let fixed = dir.join("raw-source-ext4.vhd");
    vhd_ok(
        &[
            "convert",
            "-q",
            "--partition",
            "5",
            "--to",
            "fixed",
            raw.to_str().unwrap(),
            fixed.to_str().unwrap(),
        ],
        cwd,
    );
    let bytes = std::fs::read(&fixed).unwrap();
    assert!(
        bytes[..bytes.len() - 512] == ext4_bytes[..],
        "fixed VHD of partition 5 of the raw disk"
    );
    for (n, image) in images_of(&raw, &dir).iter().enumerate() {
        let image = image.to_str().unwrap();
        // ext4 in logical partition 5, to a raw file: byte for byte, and the tools read it.
        let out = dir.join(&format!("out{n}.ext4"));
        vhd_ok(
            &[
                "convert",
                "-q",
                "--partition",
                "5",
                "--to",
                "raw",
                image,
                out.to_str().unwrap(),
            ],
            cwd,
        );
        assert!(
            std::fs::read(&out).unwrap() == ext4_bytes,
            "{image}: partition 5 differs"
        );
        tool("e2fsck", &["-fn", out.to_str().unwrap()], cwd);
        let cat = run_ok(
            Command::new("debugfs")
                .args(["-R", "cat /etc/hello.bin"])
                .arg(&out)
                .stderr(std::process::Stdio::null()),
        );
        assert!(
            cat == hello,
            "{image}: debugfs cat gave {} bytes",
            cat.len()
        );
        // ... and to a dynamic VHD, which qemu reads back as the same bytes.
        let vhd_out = dir.join(&format!("out{n}-ext4.vhd"));
        vhd_ok(
            &[
                "convert",
                "-q",
                "--partition",
                "5",
                image,
                vhd_out.to_str().unwrap(),
            ],
            cwd,
        );
        let back = dir.join(&format!("out{n}-back.raw"));
        run_ok(
            Command::new("qemu-img")
                .args(["convert", "-f", "vpc", "-O", "raw"])
                .arg(&vhd_out)
                .arg(&back),
        );
        assert!(
            std::fs::read(&back).unwrap() == ext4_bytes,
            "{image}: dynamic partition 5 differs"
        );

        // FAT in primary partition 1, through cat --partition.
        let out = vhd(&["cat", "--partition", "1", image], cwd);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            out.stdout == fat_bytes,
            "{image}: cat --partition 1 differs"
        );
        let fat_out = dir.join(&format!("out{n}.fat"));
        std::fs::write(&fat_out, &out.stdout).unwrap();
        let listing = tool("mdir", &["-i", fat_out.to_str().unwrap(), "::/"], cwd);
        assert!(listing.contains("NOTE"), "{listing}");
        let copy = tool(
            "mcopy",
            &["-i", fat_out.to_str().unwrap(), "::/NOTE.TXT", "-"],
            cwd,
        );
        assert_eq!(copy, "a file in the FAT partition\n");

        // map --partition: offsets from the partition's start, covering it exactly.
        let map: Value =
            serde_json::from_str(&vhd_ok(&["map", "--json", "--partition", "5", image], cwd))
                .unwrap();
        let entries = map.as_array().unwrap();
        assert_eq!(entries[0]["start"], 0);
        let covered: u64 = entries.iter().map(|e| e["length"].as_u64().unwrap()).sum();
        assert_eq!(covered, size(2), "{image}");
    }
}

#[test]
fn partition_numbers_that_cannot_be_read_are_refused_and_nothing_is_written() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("partitions-refused");
    let cwd = dir.path();
    let raw = mbr_disk(&dir);
    let image = dir.join("mbr.vhd");
    vhd_ok(
        &[
            "convert",
            "-q",
            raw.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
        cwd,
    );
    let image = image.to_str().unwrap();
    let out_path = dir.join("out.raw");
    for (n, why) in [
        (
            "4",
            "there is no partition 4: the disk's partitions are 1, 2, 3, 5, 6, 7",
        ),
        ("3", "partition 3 is an extended partition"),
    ] {
        for args in [
            vec![
                "convert",
                "--partition",
                n,
                "--to",
                "raw",
                image,
                out_path.to_str().unwrap(),
            ],
            vec!["cat", "--partition", n, image],
            vec!["map", "--partition", n, image],
        ] {
            let out = vhd(&args, cwd);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("ERR_VHD_INVALID_ARGUMENT")
                    && stderr.contains(why)
                    && stderr.contains("mbr.vhd"),
                "{args:?}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{args:?}");
        }
        assert!(!out_path.exists());
    }
    let out = vhd(&["cat", "--partition", "0", image], cwd);
    assert_eq!(out.status.code(), Some(1));
    // A disk without a table: type none, no partitions.
    let blank = dir.join("blank.vhd");
    vhd_ok(&["create", blank.to_str().unwrap(), "8M"], cwd);
    let table = our_table(&blank, cwd);
    assert_eq!(table["type"], "none");
    assert_eq!(table["partitions"], serde_json::json!([]));
    let out = vhd(&["cat", "--partition", "1", blank.to_str().unwrap()], cwd);
    assert!(
        text(&out.stderr).contains("the disk has no partitions (partition table: none)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_both_gpt_headers_damaged_the_protective_mbr_is_read_as_sfdisk_reads_it() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("partitions-gpt-both-damaged");
    let raw = gpt_disk(&dir);
    damage_primary_header(&raw);
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&raw).unwrap();
        file.write_all_at(b"XFI PART", 64 * MIB - 512).unwrap();
    }
    let (expected, _) = sfdisk_table(&raw);
    assert_eq!(expected["label"], "dos", "{expected:#}");
    let images = images_of(&raw, &dir);
    let ours = assert_same_as_sfdisk(&raw, &images, dir.path());
    assert_eq!(ours["partitions"][0]["type"], 0xEE);
    let codes: Vec<&Value> = ours["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["code"])
        .collect();
    assert_eq!(codes, ["gpt-unreadable"]);
    let message = ours["findings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("header CRC32 mismatch") && message.contains("no signature"),
        "{message}"
    );
}

/// A file system over the whole disk (no partition table): its boot sector has the boot
/// signature and empty entries, which sfdisk reads as a DOS label without partitions; so
/// do we.
#[test]
fn a_whole_disk_fat_file_system_reads_as_sfdisk_reads_it() {
    if !oracles() || !require_tools(&["mkfs.vfat"]) {
        return;
    }
    let dir = TempDir::new("partitions-superfloppy");
    let raw = dir.join("fat.raw");
    tool(
        "mkfs.vfat",
        &["-C", raw.to_str().unwrap(), "16384"],
        dir.path(),
    );
    let images = images_of(&raw, &dir);
    let ours = assert_same_as_sfdisk(&raw, &images, dir.path());
    assert_eq!(ours["partitions"], serde_json::json!([]));
}

/// qemu-img without force_size rounds a VHD's size up to a CHS geometry: the GPT's backup
/// is then no longer in the last sector. sfdisk and sgdisk say so and read the same table;
/// so do we (gpt-backup-not-at-end). With the primary damaged too, sfdisk and sgdisk look
/// for the backup in the last sector only, find none, and see no GPT (sfdisk shows the
/// protective MBR); we also look where the damaged primary's alternate LBA says, and find
/// the backup there (checked on its own: signature, CRCs, its own LBA): the table sfdisk
/// read before the damage, with both findings.
#[test]
fn a_gpt_disk_grown_by_qemu_img_s_size_rounding_reads_with_its_backup_where_it_was() {
    if !oracles() {
        return;
    }
    let dir = TempDir::new("partitions-grown");
    let cwd = dir.path();
    let raw = gpt_disk(&dir);
    let grow = |name: &str| {
        let vhd_path = dir.join(&format!("{name}.vhd"));
        run_ok(
            Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vpc"])
                .arg(&raw)
                .arg(&vhd_path),
        );
        let grown = dir.join(&format!("{name}.raw"));
        run_ok(
            Command::new("qemu-img")
                .args(["convert", "-f", "vpc", "-O", "raw"])
                .arg(&vhd_path)
                .arg(&grown),
        );
        assert!(
            std::fs::metadata(&grown).unwrap().len() > 64 * MIB,
            "qemu-img no longer rounds up"
        );
        (vhd_path, grown)
    };
    let codes = |table: &Value| -> Vec<String> {
        table["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };

    let (vhd_path, grown) = grow("rounded");
    let (_, warnings) = vhd_testkit::run_status(Command::new("sfdisk").arg("--list").arg(&grown));
    assert!(
        warnings.contains("The backup GPT table is not on the end of the device"),
        "{warnings}"
    );
    let (_, verify) = vhd_testkit::run_status(Command::new("sgdisk").arg("--verify").arg(&grown));
    assert!(
        verify.contains("doesn't reside\nat the end of the disk"),
        "{verify}"
    );
    let ours = assert_same_as_sfdisk(&grown, &[vhd_path], cwd);
    assert_eq!(codes(&ours), ["gpt-backup-not-at-end"]);
    let (before, _) = sfdisk_table(&grown);

    damage_primary_header(&raw);
    let (vhd_path, grown) = grow("rounded-damaged");
    let (after, _) = sfdisk_table(&grown);
    assert_eq!(after["label"], "dos", "{after:#}");
    let (rows, _) = sgdisk_rows(&grown);
    assert!(rows.is_empty(), "sgdisk found {rows:?}");
    let ours = our_table(&vhd_path, cwd);
    assert_eq!(ours["type"], "gpt");
    assert_eq!(as_sfdisk(&ours), sfdisk_partitions(&before));
    assert_eq!(
        codes(&ours),
        ["gpt-primary-damaged", "gpt-backup-not-at-end"]
    );
}
