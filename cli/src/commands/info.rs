//! `vhd info`: every footer and header field, the parent chain, the allocated size.

use super::{Target, COMMAND_HELP};
use crate::args::OutputArgs;
use crate::json::JsonText;
use crate::size::{human_size, size_with_bytes};
use crate::terminal::safe;
use crate::{CliError, Io, PROGRAM};
use std::fmt::Write as _;
use std::path::Path;
use vhd_core::dynamic_header::PARENT_TIMESTAMP_NOT_RECORDED;
use vhd_core::footer::{
    format_unique_id, Footer, FEATURE_RESERVED, FEATURE_TEMPORARY, NO_DATA_OFFSET,
};
use vhd_core::ops::{creator_version_text, host_os_name, iso_time, ChecksumInfo, ImageInfo};
use vhd_core::{DiskType, DynamicHeader, FooterSource};

const DESCRIPTION: &str = "\
Shows what the VHD image FILE is, like 'qemu-img info': its type (subformat), virtual
size, the space it uses, then every field of the hard disk footer and (dynamic and
differencing images) of the dynamic disk header, the parent locators, and the chain of
images below a differencing image. The image is opened read-only.

A differencing image whose parent cannot be used (missing, another image, modified since
the child was made) is still shown: its own fields, a 'parent
chain: BROKEN' line saying what is wrong with the parent (in JSON, 'parentProblem':
{code, message}; null otherwise) and a warning on stderr; the exit code is 0, as
qemu-img info's for an image whose backing file is missing. --parent PATH names the
parent; --ignore-parent-timestamp accepts a copied one.

With --json (--output=json), prints one JSON object with, among others: type,
virtualSize (bytes), geometry, blockSize (null for fixed images), allocatedBytes,
fileSize, creator, uniqueId, timestamp, features, checksums, footerSource, footer,
header, parent (null, or {name, uniqueId, timestamp, timestampRecorded, path, locators})
and chain: the object VHD.info() resolves to in JavaScript, key for key. A differencing
image that records no parent time stamp (0, as Windows diskpart writes) says so: its
parent is then bound by its unique id alone.";

/// `vhd info`.
#[derive(clap::Args, Debug)]
#[command(
    about = "show every footer and header field, the parent chain and the space used",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd info [--json | --output=json] [-U] [--parent PATH]... [--parent-root DIR] FILE"
)]
pub struct InfoArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    output: OutputArgs,
    /// qemu-img's --backing-chain: the chain is always shown
    #[arg(short = 'b', long = "backing-chain")]
    backing_chain: bool,
}

pub fn run(args: &InfoArgs, io: &mut Io) -> Result<i32, CliError> {
    let info = vhd_core::ops::info_at(&args.target.file, &args.target.chain.read_only())?;
    if let Some(problem) = &info.parent_problem {
        // Shown, and the exit code is 0 (as qemu-img info of an image whose backing file
        // is missing): the image itself was read. On stderr too, for scripts.
        writeln!(
            io.stderr,
            "{PROGRAM}: warning: {}: {}",
            problem.code,
            safe(&problem.message)
        )?;
    }
    if args.output.json() {
        writeln!(io.stdout, "{}", info.to_json().pretty())?;
    } else {
        io.stdout.write_all(to_text(&info).as_bytes())?;
    }
    Ok(0)
}

// ---- text ----

/// The `qemu-img info` lines first, then every field, indented as qemu-img's
/// "Format specific information".
fn to_text(info: &ImageInfo) -> String {
    let mut out = String::new();
    let footer = &info.footer;
    // Values from the image (paths, names, locator fields) are escaped as they are printed.
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label}: {}", safe(&value));
    };
    line("image", display(&info.path));
    line("file format", "vpc".into());
    line("subformat", info.disk_type.name().into());
    line("virtual size", size_with_bytes(info.virtual_size));
    if let Some(usage) = info.disk_usage {
        line("disk size", human_size(usage));
    }
    line("file length", size_with_bytes(info.file_size));
    let allocated = match info.allocated_blocks {
        Some(blocks) => format!(
            "{} in {blocks} blocks",
            size_with_bytes(info.allocated_bytes)
        ),
        None => size_with_bytes(info.allocated_bytes),
    };
    line("allocated", allocated);
    if let Some(header) = &info.header {
        line("cluster_size", header.block_size.to_string());
    }
    if let Some(parent) = &info.parent {
        line("backing file", display(&parent.path));
        line("backing file format", "vpc".into());
    }
    if let Some(problem) = &info.parent_problem {
        line(
            "parent chain",
            format!(
                "BROKEN ({}): {}; the image's own fields follow",
                problem.code, problem.message
            ),
        );
    }
    out.push_str("Format specific information:\n");
    footer_text(&mut out, footer, info);
    if let Some(header) = &info.header {
        header_text(&mut out, header, info);
    }
    out.push_str("    chain:\n");
    for (depth, entry) in info.chain.iter().enumerate() {
        let _ = writeln!(
            out,
            "        {depth}: {} ({}, {})",
            safe(&display(&entry.path)),
            entry.kind.name(),
            size_with_bytes(entry.virtual_size)
        );
    }
    out
}

fn footer_text(out: &mut String, footer: &Footer, info: &ImageInfo) {
    let geometry = footer.geometry;
    let fields = [
        ("cookie", "conectix".to_string()),
        ("features", features_text(footer.features)),
        (
            "format version",
            format!(
                "{}.{}",
                footer.format_version >> 16,
                footer.format_version & 0xFFFF
            ),
        ),
        ("data offset", data_offset_text(footer.data_offset)),
        ("time stamp", timestamp_text(footer.timestamp)),
        (
            "creator application",
            format!("{:?}", String::from_utf8_lossy(&footer.creator_application)),
        ),
        ("creator version", creator_version_text(footer)),
        (
            "creator host OS",
            format!(
                "{} ({:#010x})",
                host_os_name(footer.creator_host_os),
                footer.creator_host_os
            ),
        ),
        ("original size", size_with_bytes(footer.original_size)),
        ("current size", size_with_bytes(footer.current_size)),
        (
            "disk geometry",
            format!(
                "{}/{}/{} (C/H/S), {}",
                geometry.cylinders,
                geometry.heads,
                geometry.sectors_per_track,
                size_with_bytes(info.geometry_size)
            ),
        ),
        (
            "disk type",
            format!("{} ({})", footer.disk_type_code, info.disk_type.name()),
        ),
        ("checksum", checksum_text(info.footer_checksum)),
        ("unique id", format_unique_id(&footer.unique_id)),
        ("saved state", footer.saved_state.to_string()),
        (
            "found at",
            footer_source_text(info.footer_source).to_string(),
        ),
    ];
    section(out, "footer", &fields);
}

fn header_text(out: &mut String, header: &DynamicHeader, info: &ImageInfo) {
    let mut fields = vec![
        ("cookie", "cxsparse".to_string()),
        ("data offset", data_offset_text(header.data_offset)),
        ("table offset", header.table_offset.to_string()),
        (
            "header version",
            format!(
                "{}.{}",
                header.header_version >> 16,
                header.header_version & 0xFFFF
            ),
        ),
        ("max table entries", header.max_table_entries.to_string()),
        ("block size", size_with_bytes(header.block_size.into())),
    ];
    if let Some(checksum) = info.header_checksum {
        fields.push(("checksum", checksum_text(checksum)));
    }
    fields.extend([
        (
            "parent unique id",
            format_unique_id(&header.parent_unique_id),
        ),
        ("parent time stamp", parent_timestamp_text(info, header)),
        ("parent name", format!("{:?}", header.parent_name())),
    ]);
    section(out, "dynamic header", &fields);
    if info.parent_locators.is_empty() {
        return;
    }
    out.push_str("        parent locators:\n");
    for locator in &info.parent_locators {
        let entry = &locator.entry;
        let _ = writeln!(
            out,
            "            [{}] {}: data space {}, data length {}, data offset {}{}",
            locator.index,
            safe(&entry.platform_name()),
            entry.platform_data_space,
            entry.platform_data_length,
            entry.platform_data_offset,
            locator
                .path
                .as_ref()
                .map(|p| format!(", path {:?}", safe(p)))
                .unwrap_or_default()
        );
    }
}

fn section(out: &mut String, title: &str, fields: &[(&str, String)]) {
    let _ = writeln!(out, "    {title}:");
    for (label, value) in fields {
        let _ = writeln!(out, "        {label}: {}", safe(value));
    }
}

fn features_text(features: u32) -> String {
    let mut names = Vec::new();
    if features & FEATURE_TEMPORARY != 0 {
        names.push("temporary");
    }
    if features & FEATURE_RESERVED != 0 {
        names.push("reserved");
    }
    format!(
        "{features:#010x} ({})",
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    )
}

fn data_offset_text(offset: u64) -> String {
    if offset == NO_DATA_OFFSET {
        "none (0xffffffffffffffff)".into()
    } else {
        offset.to_string()
    }
}

fn checksum_text(checksum: ChecksumInfo) -> String {
    if checksum.is_valid() {
        format!("{:#010x} (valid)", checksum.stored)
    } else {
        format!(
            "{:#010x} (INVALID: the fields call for {:#010x})",
            checksum.stored, checksum.computed
        )
    }
}

/// The parent time stamp a differencing image records, or what 0 means.
fn parent_timestamp_text(info: &ImageInfo, header: &DynamicHeader) -> String {
    if info.disk_type == DiskType::Differencing && !header.records_parent_timestamp() {
        return PARENT_TIMESTAMP_NOT_RECORDED.to_string();
    }
    timestamp_text(header.parent_timestamp)
}

fn timestamp_text(timestamp: u32) -> String {
    format!("{} ({timestamp} s after 2000-01-01)", iso_time(timestamp))
}

fn footer_source_text(source: FooterSource) -> &'static str {
    match source {
        FooterSource::End => "the end of the file",
        FooterSource::End511 => "the end of the file (a 511-byte footer)",
        FooterSource::Copy => "offset 0 (the copy: the footer at the end is damaged)",
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that records no parent time stamp (0) says so, in text and in JSON; one
    /// that records it shows it.
    #[test]
    fn a_parent_time_stamp_of_zero_is_reported() {
        use vhd_core::{create, CreateOptions, Image, OpenOptions};
        let dir = std::env::temp_dir().join(format!("vhd-cli-info-ts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (base, child) = (dir.join("base.vhd"), dir.join("child.vhd"));
        drop(create(&base, &CreateOptions::new(DiskType::Dynamic, 1 << 20)).unwrap());
        drop(create(&child, &CreateOptions::differencing(&base)).unwrap());
        let options = OpenOptions {
            read_only: true,
            ..OpenOptions::default()
        };
        let shown = |path: &Path| {
            let info = vhd_core::ops::info(&Image::open(path, &options).unwrap()).unwrap();
            (to_text(&info), info.to_json().pretty())
        };
        let (text, json) = shown(&child);
        assert!(!text.contains("not recorded"), "{text}");
        assert!(json.contains("\"timestampRecorded\": true"), "{json}");

        let mut bytes = std::fs::read(&child).unwrap();
        let at = 512;
        let mut header =
            DynamicHeader::parse(&bytes[at..at + 1024].try_into().unwrap(), at as u64).unwrap();
        header.parent_timestamp = 0;
        header.update_checksum();
        bytes[at..at + 1024].copy_from_slice(&header.to_bytes());
        std::fs::write(&child, &bytes).unwrap();
        let (text, json) = shown(&child);
        assert!(
            text.contains(&format!(
                "parent time stamp: {PARENT_TIMESTAMP_NOT_RECORDED}"
            )),
            "{text}"
        );
        assert!(json.contains("\"timestampRecorded\": false"), "{json}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
