//! `vhd map`: which parts of the virtual disk hold data, and where, like `qemu-img map`.

use super::{open_read_only, Command, ALLOW_REMOTE_PARENTS, JSON, PARENT_ROOT};
use crate::args::Parsed;
use crate::json::Json;
use crate::{CliError, Io};
use vhd_core::ops::{allocated_ranges, AllocatedRange};
use vhd_core::VirtualDisk;

pub const COMMAND: Command = Command {
    name: "map",
    synopsis: "[--json] [--parent-root DIR] FILE",
    summary: "show which ranges of the disk hold data, and in which file",
    description: "\
Lists the ranges of the virtual disk of FILE that hold data, like 'qemu-img map': where
each range starts, its length, where its data lies in the file that holds it (when it
is contiguous there) and which file of the parent chain that is. Ranges not listed read
as zeros.

With --json, prints qemu-img's JSON form: an array of {start, length, depth, present,
zero, data, compressed, offset} that covers the whole disk, the ranges without data
included (data false, depth the last image of the chain).",
    options: &[JSON, PARENT_ROOT, ALLOW_REMOTE_PARENTS],
    run,
};

fn run(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let [file] = parsed.positionals("map", &["FILE"], &[])? else {
        unreachable!("exactly one positional was checked")
    };
    let image = open_read_only(parsed, file)?;
    let ranges = allocated_ranges(&image)?;
    let chain: Vec<String> = image
        .chain()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if parsed.flag("json") {
        write_json(io, &covering(&ranges, image.size()), chain.len())?;
    } else {
        write_text(io, &ranges, &chain)?;
    }
    Ok(0)
}

/// `qemu-img map`'s table: `%#-16x` columns, 0 printed as `0`.
fn write_text(io: &mut Io, ranges: &[AllocatedRange], chain: &[String]) -> std::io::Result<()> {
    writeln!(
        io.stdout,
        "{:<16}{:<16}{:<16}File",
        "Offset", "Length", "Mapped to"
    )?;
    for range in ranges {
        let mapped = range.file_offset.map_or_else(|| "-".to_string(), hex);
        let file = chain.get(range.depth).map_or("?", String::as_str);
        writeln!(
            io.stdout,
            "{:<16}{:<16}{:<16}{file}",
            hex(range.offset),
            hex(range.length),
            mapped
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

/// The allocated ranges with the gaps between them (and after them) filled in: `None`
/// for a range without data.
fn covering(ranges: &[AllocatedRange], size: u64) -> Vec<(u64, u64, Option<&AllocatedRange>)> {
    let mut all = Vec::new();
    let mut position = 0;
    for range in ranges {
        if range.offset > position {
            all.push((position, range.offset - position, None));
        }
        all.push((range.offset, range.length, Some(range)));
        position = range.offset + range.length;
    }
    if position < size {
        all.push((position, size - position, None));
    }
    all
}

/// One object per line in an array, as qemu-img prints it.
fn write_json(
    io: &mut Io,
    entries: &[(u64, u64, Option<&AllocatedRange>)],
    chain_length: usize,
) -> std::io::Result<()> {
    write!(io.stdout, "[")?;
    for (n, (start, length, range)) in entries.iter().enumerate() {
        let depth = range.map_or(chain_length - 1, |r| r.depth);
        let mut fields = vec![
            ("start", Json::UInt(*start)),
            ("length", Json::UInt(*length)),
            ("depth", Json::UInt(depth as u64)),
            ("present", Json::Bool(true)),
            ("zero", Json::Bool(range.is_none())),
            ("data", Json::Bool(range.is_some())),
            ("compressed", Json::Bool(false)),
        ];
        if let Some(offset) = range.and_then(|r| r.file_offset) {
            fields.push(("offset", Json::UInt(offset)));
        }
        let separator = if n + 1 < entries.len() { ",\n" } else { "" };
        write!(io.stdout, "{}{separator}", Json::object(fields).compact())?;
    }
    writeln!(io.stdout, "]")
}
