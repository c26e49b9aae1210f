//! Differential testing: a long seeded random sequence of reads and writes (plus flushes,
//! closes and reopens) applied both to one of our images and to a plain `Vec<u8>`, compared
//! as it goes. Needs no external tool.

use std::path::PathBuf;
use vhd_core::{create, CreateOptions, DiskType, Error, Image, OpenOptions, VirtualDisk};
use vhd_testkit::*;

struct Harness {
    rng: Rng,
    path: PathBuf,
    disk: Option<Image>,
    model: Vec<u8>,
    size: u64,
    block: u64,
    read_only: bool,
    /// Operation counter, for messages.
    op: usize,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    reads: usize,
    short_reads: usize,
    writes: usize,
    zero_writes: usize,
    refused_writes: usize,
    read_only_refusals: usize,
    flushes: usize,
    reopens: usize,
}

impl Harness {
    fn new(label: &str, dir: &TempDir, disk_type: DiskType, size: u64, block: u32) -> Harness {
        let rng = Rng::new(&format!("differential {label}"));
        let path = dir.join(&format!("{label}.vhd"));
        let mut options = CreateOptions::new(disk_type, size);
        options.block_size = block;
        let disk = create(&path, &options).expect("create");
        Harness {
            rng,
            path,
            disk: Some(disk),
            model: vec![0; size as usize],
            size,
            block: u64::from(block),
            read_only: false,
            op: 0,
            stats: Stats::default(),
        }
    }

    fn disk(&mut self) -> &mut Image {
        self.disk.as_mut().unwrap()
    }

    /// An offset inside the disk, biased towards the interesting places.
    fn offset_inside(&mut self) -> u64 {
        let (size, block) = (self.size, self.block);
        match self.rng.below(6) {
            0 | 1 => self.rng.below(size),
            // Around a block boundary.
            2 => {
                let boundary = self.rng.below(size / block + 1) * block;
                (boundary + self.rng.below(1200))
                    .saturating_sub(600)
                    .min(size - 1)
            }
            // Near the end.
            3 => size - self.rng.range(1, 3000.min(size)),
            // Sector-aligned.
            4 => self.rng.below(size / 512) * 512,
            // Block-aligned.
            _ => self.rng.below(size.div_ceil(block)) * block,
        }
    }

    fn length(&mut self) -> u64 {
        let block = self.block;
        match self.rng.below(20) {
            0..=2 => 1,
            3..=5 => self.rng.range(1, 64),
            6..=9 => self.rng.range(1, 1024),
            10..=11 => self.rng.range(1, 16) * 512,
            12..=14 => self.rng.range(1, 20_000),
            15..=16 => self.rng.range(1, 2 * block.min(256 * 1024)),
            17 => block,
            18 => self.rng.range(block, 2 * block + 1),
            _ => 0,
        }
    }

    fn check_read(&mut self, offset: u64, len: usize) {
        let mut buf = vec![0xEEu8; len];
        let n = self
            .disk
            .as_ref()
            .unwrap()
            .read_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("op {}: read {len} at {offset}: {e}", self.op));
        let expected = (self.size.saturating_sub(offset) as usize).min(len);
        assert_eq!(
            n, expected,
            "op {}: length of read {len} at {offset}",
            self.op
        );
        if n < len {
            self.stats.short_reads += 1;
            assert!(
                buf[n..].iter().all(|&b| b == 0xEE),
                "op {}: a short read wrote past what it returned",
                self.op
            );
        }
        if n > 0 {
            let start = offset as usize;
            assert_same_bytes(
                &buf[..n],
                &self.model[start..start + n],
                &format!("op {}: read {len} at {offset}", self.op),
            );
        }
        self.stats.reads += 1;
    }

    fn read(&mut self) {
        let offset = match self.rng.below(10) {
            // At or past the end: 0 bytes.
            0 => self.size + self.rng.below(5000),
            1 => u64::MAX - self.rng.below(10),
            _ => self.offset_inside(),
        };
        let len = self.length() as usize;
        self.check_read(offset, len);
    }

    fn write(&mut self) {
        let offset = self.offset_inside();
        let len = self.length().min(self.size - offset) as usize;
        let data = match self.rng.below(10) {
            0 => {
                self.stats.zero_writes += 1;
                vec![0u8; len]
            }
            // Half zeros: zero sectors inside a block that does get allocated.
            1 => {
                let mut d = self.rng.bytes(len);
                let cut = self.rng.below(len as u64 + 1) as usize;
                d[..cut].fill(0);
                d
            }
            _ => self.rng.bytes(len),
        };
        let op = self.op;
        let result = self.disk().write_at(&data, offset);
        if self.read_only {
            let e = result.expect_err("a write to a read-only image succeeded");
            assert!(matches!(e, Error::ReadOnly { .. }), "op {op}: {e}");
            self.stats.read_only_refusals += 1;
            return;
        }
        result.unwrap_or_else(|e| panic!("op {op}: write {len} at {offset}: {e}"));
        self.model[offset as usize..offset as usize + len].copy_from_slice(&data);
        self.stats.writes += 1;
        // Read back part of it at once now and then.
        if self.rng.chance(30) && len > 0 {
            let at = offset + self.rng.below(len as u64);
            let n = self.rng.range(1, len as u64 + 100) as usize;
            self.check_read(at, n);
        }
    }

    /// A write that runs past the end must fail with OutOfRange and change nothing.
    fn write_past_end(&mut self) {
        let size = self.size;
        let (offset, len) = match self.rng.below(4) {
            // Starts inside, ends outside.
            0 => {
                let offset = size - self.rng.range(1, 4000.min(size));
                (offset, (size - offset) + self.rng.range(1, 5000))
            }
            1 => (size, self.rng.range(1, 5000)),
            2 => (size + self.rng.range(1, 1 << 30), self.rng.range(1, 5000)),
            // offset + length overflows u64.
            _ => (u64::MAX - self.rng.below(100), self.rng.range(101, 5000)),
        };
        let data = self.rng.bytes(len as usize);
        let file_size = file_len(&self.path);
        let op = self.op;
        let read_only = self.read_only;
        let e = self
            .disk()
            .write_at(&data, offset)
            .expect_err("a write past the end succeeded");
        if read_only {
            assert!(matches!(e, Error::ReadOnly { .. }), "op {op}: {e}");
        } else {
            match &e {
                Error::OutOfRange {
                    path: _,
                    operation,
                    offset: o,
                    length,
                    size: s,
                } => {
                    assert_eq!((*operation, *o, *length, *s), ("write", offset, len, size));
                }
                other => {
                    panic!("op {op}: write {len} at {offset}: expected OutOfRange, got {other:?}")
                }
            }
            assert_eq!(e.code(), "ERR_VHD_OUT_OF_RANGE");
            let msg = e.to_string();
            assert!(
                msg.contains(&offset.to_string()) && msg.contains(&size.to_string()),
                "{msg}"
            );
        }
        assert_eq!(file_len(&self.path), file_size, "op {op}: the file changed");
        self.stats.refused_writes += 1;
        // The part inside the disk is unchanged.
        if offset < size {
            self.check_read(offset, (size - offset) as usize);
        }
    }

    fn flush(&mut self) {
        let op = self.op;
        self.disk()
            .flush()
            .unwrap_or_else(|e| panic!("op {op}: flush: {e}"));
        self.stats.flushes += 1;
    }

    /// Flushes, closes and reopens (now and then read-only), then compares everything.
    fn reopen(&mut self) {
        if !self.read_only {
            self.flush();
        }
        self.disk = None;
        self.read_only = self.rng.chance(20);
        let options = OpenOptions {
            read_only: self.read_only,
            ..OpenOptions::default()
        };
        let disk = Image::open(&self.path, &options)
            .unwrap_or_else(|e| panic!("op {}: reopen: {e}", self.op));
        assert_eq!(disk.size(), self.size);
        assert_eq!(disk.read_only_reason().is_some(), self.read_only);
        self.disk = Some(disk);
        self.stats.reopens += 1;
        self.compare_all();
    }

    fn compare_all(&mut self) {
        let all = read_all(self.disk.as_ref().unwrap());
        assert_same_bytes(&all, &self.model, &format!("op {}: whole disk", self.op));
    }

    fn run(&mut self, ops: usize) {
        for op in 0..ops {
            self.op = op;
            match self.rng.below(100) {
                0..=41 => self.read(),
                42..=85 => self.write(),
                86..=90 => self.write_past_end(),
                91..=96 => self.flush(),
                _ => self.reopen(),
            }
            if op % 250 == 249 {
                self.compare_all();
            }
        }
        self.reopen();
        println!("{:?}", self.stats);
        assert!(self.stats.writes > ops / 4 && self.stats.reads > ops / 4);
    }
}

#[test]
fn dynamic_4k_blocks() {
    let dir = TempDir::new("diff");
    // 300.375 blocks: many blocks, each smaller than its bitmap's sector.
    Harness::new("dyn-4k", &dir, DiskType::Dynamic, 300 * 4096 + 1536, 4096).run(4000);
}

#[test]
fn dynamic_64k_blocks() {
    let dir = TempDir::new("diff");
    Harness::new("dyn-64k", &dir, DiskType::Dynamic, 3_149_312, 64 * 1024).run(4000);
}

#[test]
fn dynamic_2m_blocks() {
    let dir = TempDir::new("diff");
    // 3 blocks and 1024 bytes of a fourth.
    Harness::new("dyn-2m", &dir, DiskType::Dynamic, 6_292_480, 2 << 20).run(2500);
}

#[test]
fn fixed() {
    let dir = TempDir::new("diff");
    Harness::new("fixed", &dir, DiskType::Fixed, 3_146_240, 2 << 20).run(2500);
}

/// Dropping an image without `flush()` still keeps what was written: the drop flushes the
/// BAT entries and bitmap bits that were only in memory.
#[test]
fn dropping_a_dynamic_image_flushes_it() {
    let dir = TempDir::new("differential-drop");
    let path = dir.join("dropped.vhd");
    let mut disk = create(&path, &CreateOptions::new(DiskType::Dynamic, 8 << 20)).unwrap();
    disk.write_at(b"kept without flush", 3 << 20).unwrap();
    drop(disk);
    let disk = open_rw(&path);
    let mut buf = [0u8; 18];
    assert_eq!(disk.read_at(&mut buf, 3 << 20).unwrap(), 18);
    assert_eq!(&buf, b"kept without flush");
}
