//! `vhd partitions`: the partition table of the virtual disk, like `sfdisk --list`.

use super::{Target, COMMAND_HELP};
use crate::args::OutputArgs;
use crate::json::{Json, JsonText};
use crate::size::human_size;
use crate::terminal::safe;
use crate::{CliError, Io};
use std::path::Path;
use vhd_core::partition::{read_partition_table, Partition, PartitionTable, PartitionType};
use vhd_core::VirtualDisk;

const DESCRIPTION: &str = "\
Lists the partition table of the virtual disk of FILE (read through its parent chain),
like 'sfdisk --list': for each partition its number (MBR: 1-4 primary, 5 and up logical;
GPT: the entry's slot), first and last sector (512 bytes each), sectors, size, type and,
for GPT, name. MBR (with the logical partitions of an extended partition) and GPT are
read; a damaged primary GPT is read from its backup at the end of the disk.

What is damaged or doubtful about the table is listed after it, one finding a line, with
a stable code: gpt-primary-damaged (the backup was used), gpt-backup-damaged,
gpt-backup-not-at-end (the disk grew, as when qemu-img rounds a VHD's size), gpt-unreadable (neither GPT header usable: read as the protective MBR, as fdisk does),
partition-past-end, partition-outside-usable, partitions-overlap, invalid-entry,
extra-extended, ebr-invalid, ebr-loop, ebr-limit, logical-outside-extended. A disk
without a table prints 'Disklabel type: none'. The exit code is 0 in every such case.

With --json, prints {type, diskSize, diskGuid, partitions: [{index, offset, size,
firstLBA, lastLBA, sectors, type, typeName, guid, name, bootable, attributes}],
findings: [{code, message}]}: offsets and sizes in bytes, type the MBR type byte as a
number or the GPT type GUID as an upper-case string (as sfdisk and sgdisk print it), as
disk.getPartitions() gives them in JavaScript.

Use a partition's number with --partition N of 'vhd cat', 'vhd map' and 'vhd convert'.";

/// `vhd partitions`.
#[derive(clap::Args, Debug)]
#[command(
    about = "list the partition table (MBR or GPT) of the virtual disk",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd partitions [--json | --output=json] [-U] [--parent PATH]... [--parent-root DIR] FILE"
)]
pub struct PartitionsArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: &PartitionsArgs, io: &mut Io) -> Result<i32, CliError> {
    let image = args.target.chain.open_read_only(&args.target.file)?;
    let table = read_partition_table(&image)?;
    if args.output.json() {
        writeln!(io.stdout, "{}", to_json(&table, image.size()).pretty())?;
    } else {
        io.stdout
            .write_all(to_text(&table, image.size(), &args.target.file).as_bytes())?;
    }
    Ok(0)
}

/// The type as JavaScript gives it: the MBR byte as a number, the GPT GUID as a string.
fn type_json(kind: &PartitionType) -> Json {
    match kind {
        PartitionType::Mbr(byte) => Json::UInt(u64::from(*byte)),
        PartitionType::Gpt(guid) => Json::str(guid.to_string()),
    }
}

fn partition_json(p: &Partition) -> Json {
    Json::object([
        ("index", Json::UInt(u64::from(p.index))),
        ("offset", Json::UInt(p.offset)),
        ("size", Json::UInt(p.size)),
        ("firstLBA", Json::UInt(p.first_lba)),
        ("lastLBA", Json::UInt(p.last_lba)),
        ("sectors", Json::UInt(p.sectors())),
        ("type", type_json(&p.kind)),
        ("typeName", Json::opt(p.type_name, Json::str)),
        ("guid", Json::opt(p.guid, |g| Json::str(g.to_string()))),
        ("name", Json::opt(p.name.as_deref(), Json::str)),
        ("bootable", Json::Bool(p.bootable)),
        ("attributes", Json::UInt(p.attributes)),
    ])
}

/// The table as `--json` prints it.
pub fn to_json(table: &PartitionTable, disk_size: u64) -> Json {
    Json::object([
        ("type", Json::str(table.kind.name())),
        ("diskSize", Json::UInt(disk_size)),
        (
            "diskGuid",
            Json::opt(table.disk_guid, |g| Json::str(g.to_string())),
        ),
        (
            "partitions",
            Json::Array(table.partitions.iter().map(partition_json).collect()),
        ),
        (
            "findings",
            Json::Array(
                table
                    .findings
                    .iter()
                    .map(|f| {
                        Json::object([
                            ("code", Json::str(f.code())),
                            ("message", Json::str(f.message.clone())),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// `sfdisk --list`'s layout: the disk line, the label, then one row per partition in
/// right-aligned columns, then the findings.
fn to_text(table: &PartitionTable, disk_size: u64, file: &Path) -> String {
    let mut out = format!(
        "Disk {}: {}, {disk_size} bytes, {} sectors\nUnits: sectors of 1 * 512 = 512 bytes\nDisklabel type: {}\n",
        safe(&file.display().to_string()),
        human_size(disk_size),
        disk_size / 512,
        match table.kind.name() {
            "mbr" => "dos",
            other => other,
        }
    );
    if let Some(guid) = table.disk_guid {
        out.push_str(&format!("Disk identifier: {guid}\n"));
    }
    if !table.partitions.is_empty() {
        let gpt = table.disk_guid.is_some();
        let mut rows: Vec<Vec<String>> = vec![[
            "Device", "Boot", "Start", "End", "Sectors", "Size", "Type",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()];
        if gpt {
            rows[0].push("Name".into());
        }
        for p in &table.partitions {
            let kind = match (&p.kind, p.type_name) {
                (PartitionType::Mbr(byte), Some(name)) => format!("{byte:x} {name}"),
                (PartitionType::Mbr(byte), None) => format!("{byte:x}"),
                (_, Some(name)) => name.to_string(),
                (kind, None) => kind.to_string(),
            };
            let mut row = vec![
                p.index.to_string(),
                if p.bootable {
                    "*".into()
                } else {
                    String::new()
                },
                p.first_lba.to_string(),
                p.last_lba.to_string(),
                p.sectors().to_string(),
                human_size(p.size),
                kind,
            ];
            if gpt {
                row.push(safe(p.name.as_deref().unwrap_or("")).into_owned());
            }
            rows.push(row);
        }
        out.push('\n');
        out.push_str(&columns(&rows));
    }
    if !table.findings.is_empty() {
        out.push_str("\nFindings:\n");
        for f in &table.findings {
            out.push_str(&format!("  {}: {}\n", f.code(), safe(&f.message)));
        }
    }
    out
}

/// Rows in columns: numbers right-aligned (Start, End, Sectors), the rest left-aligned;
/// the last column unpadded.
fn columns(rows: &[Vec<String>]) -> String {
    let count = rows[0].len();
    let widths: Vec<usize> = (0..count)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| match c {
                _ if c + 1 == count => cell.clone(),
                2..=4 => format!("{cell:>width$}", width = widths[c]),
                _ => format!("{cell:<width$}", width = widths[c]),
            })
            .collect();
        out.push_str(cells.join(" ").trim_end());
        out.push('\n');
    }
    out
}
