//! `vhd check`: structure checks (and repairs) with qemu-img check's output and exit codes.

use super::{Target, COMMAND_HELP};
use crate::args::OutputArgs;
use crate::json::{Json, JsonText};
use crate::terminal::safe;
use crate::{CliError, Io};
use std::io::Write;
use vhd_core::ops::{repair_with, RepairOptions, RepairReport};
use vhd_core::{check, CheckOptions, CheckReport, Finding, Severity};

const DESCRIPTION: &str = "\
Checks the structure of the VHD image FILE, like 'qemu-img check': footer and its copy,
dynamic header, block allocation table, overlapping or leaked blocks, parent locators and
the parent link. The file is only read, unless --repair is given: then what can be
repaired without losing data is repaired, and the image is checked again.

A repair plans before it writes. A structure whose checksum failed is not believed on
its own word: the footer copy, the sizes, the file's length and the consistency of the
block allocation table decide, and a field that lost one bit is restored. A plan that
would drop allocated blocks, cut space that holds what looks like block data, accept a
size other fields contradict, or change any sector that reads now is refused
(ERR_VHD_REPAIR_REFUSED, exit code 1): nothing is written, and the output says what
would be lost. Keep a copy of the file; --force then carries such a repair out.

At most 1000 findings of each kind are listed (and 1000 changes of each kind, and 1000
lost ranges, with --repair); the others are counted, and one last line of that kind says
how many were not listed ('… and N more overlap findings'). The totals ('N errors were
found', leaked blocks) count every finding. With --json (the object VHD.check()
resolves to in JavaScript, key for key), such a summary is a finding with 'omitted',
the number not listed; 'corruptions' and 'leaks' count every finding of those
severities, as qemu-img's keys do; a repair's 'repairs' end the same way, and
'lostOmitted' counts the lost ranges not listed.

A resize killed between writing the footer and its copy leaves a copy that still gives
the old size: 'footer-copy-stale', a leak (the image reads right; --repair rewrites the
copy), not damage. A commit killed while it wrote into the parent leaves the child
without its parent's time stamp: 'commit-interrupted', a leak (the chain reads right;
--repair records the time stamp, or run the commit again). Temporary files that a killed
create, compact or convert of FILE left beside it are listed as 'stale-temp-file'
(information: the next create, compact or convert of FILE removes them, or remove them).

A differencing image whose parent is missing, another image, modified since the child
was made, or unusable has a broken parent chain: a finding of its own (parent-not-found,
parent-mismatch, parent-modified, parent-unusable), 'parentLinkBroken' in the JSON, and
exit code 4 when nothing else is damaged. --parent PATH names the parent where it is now;
--ignore-parent-timestamp accepts a copied one.

Exit codes, as qemu-img's: 0 no problem, 2 the image is corrupt, 3 only leaked space
or another repairable state that harms no data, 4 the parent chain is broken (and the
image itself is not damaged), 1 the check could not run, or the repair
was refused (nothing was written; with --json, 'refused' is true and 'risks' says what
would be lost). With --repair, the code is the one of the check after repairing; with
--force, 'Forced:' lines (the JSON's 'forced') say what was lost or accepted.";

/// `vhd check`.
#[derive(clap::Args, Debug)]
#[command(
    about = "check an image for damage and leaked space (and repair it)",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd check [--repair[=leaks|all] | -r leaks|all] [--force] [--json | --output=json] [-U] [--parent-root DIR] FILE"
)]
pub struct CheckArgs {
    #[command(flatten)]
    target: Target,
    /// Repair what can be repaired without losing data (--repair=leaks: only if the image
    /// has nothing but leaks)
    #[arg(
        long = "repair",
        value_name = "leaks|all",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all",
        value_parser = ["leaks", "all"]
    )]
    repair: Option<String>,
    /// qemu-img's -r leaks|all: the same as --repair=leaks|all
    #[arg(short = 'r', value_name = "leaks|all", value_parser = ["leaks", "all"])]
    repair_mode: Option<String>,
    /// With --repair: carry out a repair that loses data (keep a copy first)
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: &CheckArgs, io: &mut Io) -> Result<i32, CliError> {
    let file = &args.target.file;
    let json = args.output.json();
    let options = CheckOptions::from(&args.target.chain.open_options());
    let force = args.force;
    let repair = args.repair.as_deref().or(args.repair_mode.as_deref());
    if force && repair.is_none() {
        return Err(CliError::usage("check", "--force only applies to --repair"));
    }
    if repair == Some("leaks") {
        // qemu-img's -r leaks repairs leaks only: an image with damage is left alone.
        let report = check(file, &options)?;
        if report.has_corruption() {
            return Err(CliError::usage(
                "check",
                format!(
                    "{} has {} errors besides leaks: -r leaks repairs leaks only (see 'vhd check {}'; -r all repairs the rest)",
                    file.display(),
                    report.count(Severity::Corrupt),
                    file.display()
                ),
            ));
        }
    }
    if repair.is_some() {
        let report = match repair_with(file, &options, &RepairOptions { force }) {
            Ok(report) => report,
            Err(error @ vhd_core::Error::RepairRefused { .. }) => {
                write_refusal(io, &error, json)?;
                return Err(error.into());
            }
            Err(error) => return Err(error.into()),
        };
        if json {
            writeln!(io.stdout, "{}", report.to_json().pretty())?;
        } else {
            write_repair_text(io, &report)?;
        }
        return Ok(report.after.exit_code());
    }
    let report = check(file, &options)?;
    if json {
        writeln!(io.stdout, "{}", report.to_json().pretty())?;
    } else {
        write_text(io, &report)?;
    }
    Ok(report.exit_code())
}

/// The findings, then qemu-img's summary sentences.
fn write_text(io: &mut Io, report: &CheckReport) -> std::io::Result<()> {
    let out = &mut io.stdout;
    for finding in report.findings() {
        writeln!(out, "{}", finding_text(finding))?;
    }
    if !report.findings().is_empty() {
        writeln!(out)?;
    }
    let corrupt = report.damage();
    if corrupt > 0 {
        writeln!(out, "{corrupt} errors were found on the image.")?;
        writeln!(
            out,
            "Data may be corrupted, or further writes to the image may corrupt it."
        )?;
    }
    if report.parent_link_broken() {
        if corrupt > 0 {
            writeln!(out)?;
        }
        writeln!(
            out,
            "The parent chain is broken: the disk cannot be read until its parent is found (--parent PATH names it; see the findings above)."
        )?;
    }
    if report.has_leaks() {
        if corrupt > 0 || report.parent_link_broken() {
            writeln!(out)?;
        }
        writeln!(
            out,
            "{} leaked blocks were found on the image.",
            report.leaked_blocks()
        )?;
        writeln!(out, "This means waste of disk space, but no harm to data.")?;
    }
    if report.is_clean() {
        writeln!(out, "No errors were found on the image.")?;
    }
    if report.table_entries() > 0 {
        writeln!(
            out,
            "{}/{} blocks allocated.",
            report.allocated_blocks(),
            report.table_entries()
        )?;
    }
    writeln!(out, "Image end offset: {}", report.file_size())
}

/// `ERROR`, `Leaked` or `Info`, as qemu-img starts its lines, then the kind and message.
fn finding_text(finding: &Finding) -> String {
    let label = match finding.severity {
        Severity::Corrupt => "ERROR",
        Severity::Leak => "Leaked",
        Severity::Info => "Info",
    };
    let at = finding
        .offset
        .map(|o| format!(" at offset {o}"))
        .unwrap_or_default();
    // Messages may quote the image (locator paths, names): escaped.
    format!(
        "{label} [{}]{at}: {}",
        finding.kind.code(),
        safe(&finding.message)
    )
}

/// qemu-img check -r's account: each change, the counts repaired, then the check after.
fn write_repair_text(io: &mut Io, report: &RepairReport) -> std::io::Result<()> {
    let out = &mut io.stdout;
    for action in &report.actions {
        writeln!(
            out,
            "Repairing [{}]: {}",
            action.fixes.code(),
            safe(&action.description)
        )?;
    }
    if report.changed() {
        let leaks = report
            .before
            .leaked_blocks()
            .saturating_sub(report.after.leaked_blocks());
        let corruptions = report
            .before
            .count(Severity::Corrupt)
            .saturating_sub(report.after.count(Severity::Corrupt));
        writeln!(
            out,
            "The following inconsistencies were found and repaired:"
        )?;
        writeln!(out)?;
        writeln!(out, "    {leaks} leaked blocks")?;
        writeln!(out, "    {corruptions} corruptions")?;
        writeln!(out)?;
    }
    for range in &report.lost {
        writeln!(
            out,
            "Lost: bytes {}..{} of the disk now read as zeros (or from the parent): their block was not in the file",
            range.start, range.end
        )?;
    }
    if report.lost_omitted > 0 {
        writeln!(
            out,
            "Lost: … and {} more ranges of the disk, not listed",
            report.lost_omitted
        )?;
    }
    for risk in &report.forced {
        writeln!(out, "Forced: {risk}")?;
    }
    writeln!(out, "Double checking the fixed image now...")?;
    write_text(io, &report.after)
}

/// A refused repair on stdout: the check, then what the repair would lose, and the advice
/// (the error itself goes to stderr, and the exit code is 1).
fn write_refusal(io: &mut Io, error: &vhd_core::Error, json: bool) -> std::io::Result<()> {
    let vhd_core::Error::RepairRefused {
        path,
        risks,
        before,
    } = error
    else {
        return Ok(());
    };
    if json {
        // The check's shape, and why nothing was repaired.
        let Json::Object(mut members) = before.to_json() else {
            unreachable!("a check report is a JSON object")
        };
        members.extend([
            ("refused".to_string(), Json::Bool(true)),
            (
                "risks".to_string(),
                Json::Array(risks.iter().map(Json::str).collect()),
            ),
            ("code".to_string(), Json::str(error.code())),
            ("message".to_string(), Json::str(error.to_string())),
            ("repairs".to_string(), Json::Array(Vec::new())),
        ]);
        for (key, value) in &mut members {
            if key == "exitCode" {
                *value = Json::Int(1);
            }
        }
        let object = Json::Object(members);
        return writeln!(io.stdout, "{}", object.pretty());
    }
    write_text(io, before)?;
    let out = &mut io.stdout;
    writeln!(out)?;
    writeln!(out, "Repair refused, nothing was written. It would:")?;
    for risk in risks {
        writeln!(out, "    {risk}")?;
    }
    writeln!(
        out,
        "Keep a copy of {}, then run 'vhd check --repair --force' on it to repair anyway.",
        path.display()
    )
}
