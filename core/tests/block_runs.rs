//! Reads of dynamic images whose blocks follow one another in the file are done as one
//! vectored read per run of blocks (the bitmaps between them skipped). These tests make
//! layouts where runs start, stop and restart in every way, and compare every read with a
//! plain model of the disk.

use vhd_core::{create, CreateOptions, DiskType, Error, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

const BLOCK: u64 = 4096;
const BLOCKS: u64 = 200;

/// A dynamic image of 4 KiB blocks whose file holds, in this order: blocks 0–79 (one long
/// run, more than one vectored read holds), block 150, blocks 100–109, block 90, block 81
/// (so block 80 is a hole between two blocks that are not neighbours in the file), and
/// the last block. Returns its path and the model of its contents.
fn layered_image(dir: &TempDir, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let mut options = CreateOptions::new(DiskType::Dynamic, BLOCKS * BLOCK);
    options.block_size = BLOCK as u32;
    let mut disk = create(&path, &options).expect("create");
    let mut model = vec![0u8; (BLOCKS * BLOCK) as usize];
    let mut rng = Rng::new(name);
    let order: Vec<u64> = (0..80)
        .chain([150])
        .chain(100..110)
        .chain([90, 81, BLOCKS - 1])
        .collect();
    for block in order {
        let data = rng.bytes(BLOCK as usize);
        let at = block * BLOCK;
        disk.write_at(&data, at).expect("write");
        model[at as usize..(at + BLOCK) as usize].copy_from_slice(&data);
    }
    disk.flush().expect("flush");
    (path, model)
}

fn open_ro(path: &std::path::Path) -> Image {
    let options = OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    };
    Image::open(path, &options).expect("open")
}

/// The whole disk in one read, then 2000 reads that start and end anywhere (inside blocks
/// too), each equal to the model.
fn assert_reads_match(disk: &Image, model: &[u8], label: &str) {
    let mut whole = vec![0xAAu8; model.len()];
    assert_eq!(disk.read_at(&mut whole, 0).unwrap(), model.len());
    assert_same_bytes(&whole, model, "the whole disk");
    let mut rng = Rng::new(label);
    for _ in 0..2000 {
        let start = rng.below(model.len() as u64);
        let len = rng.range(1, 48 * BLOCK).min(model.len() as u64 - start);
        let mut buf = vec![0x55u8; len as usize];
        disk.read_at(&mut buf, start).unwrap();
        let want = &model[start as usize..(start + len) as usize];
        assert_same_bytes(&buf, want, &format!("{len} bytes at {start}"));
    }
}

#[test]
fn reads_across_runs_of_blocks_match_the_model() {
    let dir = TempDir::new("block-runs");
    let (path, model) = layered_image(&dir, "runs.vhd");
    // Runs of 80, 1, 10, 1, 1 and 1 blocks, holes between.
    assert_reads_match(&open_ro(&path), &model, "block-runs reads");
}

#[test]
fn a_run_cut_short_by_a_file_truncated_under_it_says_where() {
    let dir = TempDir::new("block-runs-truncated");
    let (path, model) = layered_image(&dir, "cut.vhd");
    // Opened whole (open checks every BAT entry against the file), then the file is cut
    // in the middle of block 40's data: the first run holds blocks 0–79.
    let disk = open_ro(&path);
    let block_40 = u64::from(bat_entry_in_file(&path, 40)) * 512;
    let cut = block_40 + 512 + BLOCK / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let mut buf = vec![0u8; (60 * BLOCK) as usize];
    match disk.read_at(&mut buf, 0) {
        Err(Error::Truncated {
            path: named,
            what,
            offset,
            end,
            file_size,
        }) => {
            // The error names the image it was met in.
            assert_eq!(named.as_deref(), Some(path.as_path()));
            assert_eq!(what, "block data");
            assert_eq!(file_size, cut);
            assert!(
                offset < cut && end > cut,
                "{offset}..{end} spans the cut at {cut}"
            );
        }
        other => panic!("expected a truncation error, got {other:?}"),
    }
    // What lies before the cut still reads.
    let mut first = vec![0u8; (10 * BLOCK) as usize];
    disk.read_at(&mut first, 0).unwrap();
    assert_same_bytes(&first, &model[..first.len()], "blocks before the cut");
}

#[test]
fn differencing_reads_join_present_runs_and_keep_absent_sectors_from_the_parent() {
    let dir = TempDir::new("block-runs-diff");
    let (parent, mut model) = layered_image(&dir, "parent.vhd");
    let child_path = dir.join("child.vhd");
    let mut child = create(&child_path, &CreateOptions::differencing(&parent)).expect("child");
    let mut rng = Rng::new("block-runs child");
    let mut write = |disk: &mut Image, model: &mut Vec<u8>, at: u64, len: u64| {
        let data = rng.bytes(len as usize);
        disk.write_at(&data, at).expect("write");
        model[at as usize..(at + len) as usize].copy_from_slice(&data);
    };
    // Blocks 0–49 whole, in order: one long run in the child's file.
    for block in 0..50 {
        write(&mut child, &mut model, block * BLOCK, BLOCK);
    }
    // Blocks 60–69: sectors 0–3 and 5–7 only. The absent sector 4 is exactly as long as a
    // bitmap here (512 bytes), so the child's data around it lies one "gap" apart in the
    // file: it must still come from the parent, not from the child's file.
    for block in 60..70 {
        write(&mut child, &mut model, block * BLOCK, 4 * 512);
        write(&mut child, &mut model, block * BLOCK + 5 * 512, 3 * 512);
    }
    // Blocks 70–79: the last sector only; 80 (a hole in the parent too) and 81 whole.
    for block in 70..80 {
        write(&mut child, &mut model, block * BLOCK + 7 * 512, 512);
    }
    write(&mut child, &mut model, 80 * BLOCK, 2 * BLOCK);
    child.flush().expect("flush");
    drop(child);

    assert_reads_match(&open_ro(&child_path), &model, "block-runs child reads");
}
