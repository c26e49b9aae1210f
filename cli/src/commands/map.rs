//! `vhd map`: which parts of the virtual disk hold data, and where, like `qemu-img map`.

use super::{Target, COMMAND_HELP};
use crate::args::{OutputArgs, PartitionArgs};
use crate::json::{Json, JsonText};
use crate::terminal::safe;
use crate::{CliError, Io};
use std::io::{BufWriter, Write};
use vhd_core::ops::{allocated_ranges_iter, AllocatedRange};
use vhd_core::VirtualDisk;

const DESCRIPTION: &str = "\
Lists the ranges of the virtual disk of FILE that hold data, like 'qemu-img map': where
each range starts, its length, where its data lies in the file that holds it (when it
is contiguous there) and which file of the parent chain that is. Ranges not listed read
as zeros.

With --json, prints qemu-img's JSON form: an array of {start, length, depth, present,
zero, data, compressed, offset} that covers the whole disk, the ranges without data
included (data false, depth the last image of the chain).

The ranges are printed as they are found, a part of the disk at a time: memory stays
small however many there are (a crafted image can hold millions). If reading the image
fails midway, what was printed is incomplete (with --json, not a valid document) and
the exit code is not 0.

With --picture, draws the disk instead: one cell per block (or per group of blocks, so
that the picture fits the terminal's width and at most 16 rows), shaded by the level of
the chain that holds its data (the image itself, its parent, its grandparent...) or
blank where the disk reads as zeros; a legend says how many bytes a cell stands for and
what each shade means. In colour when stdout is a terminal (and NO_COLOR is not set),
in plain characters otherwise.

--partition N maps only partition N of the disk's partition table (as 'vhd partitions'
numbers them), with offsets from the partition's start: the map of the file that
'vhd convert --partition N' would write (file offsets still say where the data lies in
the image's files).";

/// `vhd map`.
#[derive(clap::Args, Debug)]
#[command(
    about = "show which ranges of the disk hold data, and in which file",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd map [--json | --output=json | --picture] [--partition N] [-U] [--parent-root DIR] FILE"
)]
pub struct MapArgs {
    #[command(flatten)]
    target: Target,
    /// Draw the disk as a block map, shaded by the level of the chain holding each block
    #[arg(long, conflicts_with_all = ["json", "output", "partition"])]
    picture: bool,
    #[command(flatten)]
    partition: PartitionArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: &MapArgs, io: &mut Io) -> Result<i32, CliError> {
    let image = args.target.chain.open_read_only(&args.target.file)?;
    if args.picture {
        return crate::picture::draw(&image, io).map(|()| 0);
    }
    let chain: Vec<String> = image
        .chain()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    // The part of the disk mapped: the whole of it, or one partition.
    let (start, size) = match args.partition.partition {
        None => (0, image.size()),
        Some(index) => {
            let p = vhd_core::partition::find_partition(&image, index, &args.target.file)?;
            (p.offset, p.size)
        }
    };
    // Written as the ranges are found, a window of the disk at a time: a crafted image can
    // hold millions of them, which are never all in memory (nor all of the output).
    let ranges = within(allocated_ranges_iter(&image), start, size);
    let mut out = BufWriter::new(&mut *io.stdout);
    if args.output.json() {
        write_json(&mut out, covering(ranges, size), chain.len())?;
    } else {
        write_text(&mut out, ranges, &chain)?;
    }
    out.flush()?;
    Ok(0)
}

/// The parts of `ranges` inside the `size` bytes at `start`, with offsets from `start`
/// (file offsets moved along); the walk stops at the end of that part.
fn within(
    ranges: impl Iterator<Item = vhd_core::Result<AllocatedRange>>,
    start: u64,
    size: u64,
) -> impl Iterator<Item = vhd_core::Result<AllocatedRange>> {
    let end = start + size;
    ranges
        .take_while(move |range| range.as_ref().map_or(true, |r| r.offset < end))
        .filter_map(move |range| {
            let range = match range {
                Ok(range) => range,
                Err(error) => return Some(Err(error)),
            };
            let from = range.offset.max(start);
            let to = (range.offset + range.length).min(end);
            (from < to).then(|| {
                Ok(AllocatedRange {
                    offset: from - start,
                    length: to - from,
                    depth: range.depth,
                    file_offset: range.file_offset.map(|f| f + (from - range.offset)),
                })
            })
        })
}

/// `qemu-img map`'s table: `%#-16x` columns, 0 printed as `0`.
fn write_text(
    out: &mut dyn Write,
    ranges: impl Iterator<Item = vhd_core::Result<AllocatedRange>>,
    chain: &[String],
) -> Result<(), CliError> {
    writeln!(
        out,
        "{:<16}{:<16}{:<16}File",
        "Offset", "Length", "Mapped to"
    )?;
    for range in ranges {
        let range = range?;
        let mapped = range.file_offset.map_or_else(|| "-".to_string(), hex);
        let file = chain.get(range.depth).map_or("?", String::as_str);
        writeln!(
            out,
            "{:<16}{:<16}{:<16}{}",
            hex(range.offset),
            hex(range.length),
            mapped,
            safe(file)
        )?;
    }
    Ok(())
}

fn hex(value: u64) -> String {
    if value == 0 {
        "0".into()
    } else {
        format!("{value:#x}")
    }
}

/// One entry of the covering list: `(start, length, the range)`, `None` for a gap without
/// data.
type Entry = (u64, u64, Option<AllocatedRange>);

/// The allocated ranges with the gaps between them (and after them) filled in, as they
/// come.
fn covering(
    ranges: impl Iterator<Item = vhd_core::Result<AllocatedRange>>,
    size: u64,
) -> impl Iterator<Item = vhd_core::Result<Entry>> {
    let mut position = 0;
    let mut ranges = ranges.fuse();
    let mut next: Option<AllocatedRange> = None;
    std::iter::from_fn(move || {
        if next.is_none() {
            match ranges.next() {
                Some(Ok(range)) => next = Some(range),
                Some(Err(error)) => return Some(Err(error)),
                None => {}
            }
        }
        let entry = match next {
            Some(range) if range.offset > position => (position, range.offset - position, None),
            Some(range) => {
                next = None;
                (range.offset, range.length, Some(range))
            }
            None if position < size => (position, size - position, None),
            None => return None,
        };
        position = entry.0 + entry.1;
        Some(Ok(entry))
    })
}

/// One object per line in an array, as qemu-img prints it; each line written as its entry
/// is found, the array closed at the end.
fn write_json(
    out: &mut dyn Write,
    entries: impl Iterator<Item = vhd_core::Result<Entry>>,
    chain_length: usize,
) -> Result<(), CliError> {
    write!(out, "[")?;
    for (n, entry) in entries.enumerate() {
        let (start, length, range) = entry?;
        let depth = range.map_or(chain_length - 1, |r| r.depth);
        let mut fields = vec![
            ("start", Json::UInt(start)),
            ("length", Json::UInt(length)),
            ("depth", Json::UInt(depth as u64)),
            ("present", Json::Bool(true)),
            ("zero", Json::Bool(range.is_none())),
            ("data", Json::Bool(range.is_some())),
            ("compressed", Json::Bool(false)),
        ];
        if let Some(offset) = range.and_then(|r| r.file_offset) {
            fields.push(("offset", Json::UInt(offset)));
        }
        let separator = if n > 0 { ",\n" } else { "" };
        write!(out, "{separator}{}", Json::object(fields).compact())?;
    }
    writeln!(out, "]")?;
    Ok(())
}
