//! The one shape of a check's (and a repair's) result: what `vhd check --json` prints and
//! what `VHD.check()` resolves to in JavaScript, key for key, built here once (as
//! [`ImageInfo::to_json`](crate::ops::ImageInfo::to_json) is for `info`).
//!
//! The keys follow `qemu-img check --output=json` where they mean the same, in this
//! project's camelCase (`corruptions`, `leaks`, `format`; qemu-img's `image-end-offset`
//! is `fileSize`, `total-clusters` `tableEntries`, `allocated-clusters`
//! `allocatedBlocks`, `leaks-fixed`/`corruptions-fixed` the `repairs`), and the
//! project's own names elsewhere (`path`, as `info` has it).

use super::{CheckReport, Finding, Severity};
use crate::json::Json;
use crate::ops::{RepairAction, RepairReport};

impl CheckReport {
    /// The report as JSON:
    /// `{path, format, type, virtualSize, blockSize, fileSize, tableEntries,
    /// allocatedBlocks, leakedBlocks, clean, corrupt, corruptions, leaks, parentLinkBroken,
    /// parent, exitCode, findings}`. `corruptions` and `leaks` count the findings of those
    /// severities (listed or not), as qemu-img's keys do; `findings` are
    /// `{severity, code, message, offset?, omitted?}` (`offset` and `omitted` only when
    /// they apply).
    pub fn to_json(&self) -> Json {
        Json::Object(summary(self, self))
    }
}

impl RepairReport {
    /// The repair as JSON: the check's shape ([`CheckReport::to_json`]) with the findings
    /// found before repairing and every other member of the check after it (the image as
    /// it is now), then `before` (`{exitCode, corruptions, leaks, leakedBlocks}` of the check
    /// before repairing), `repairs` (`{code, offset, description, omitted?}`), `notRepaired`
    /// (findings still there), `lost` (`{offset, length}` ranges of the disk that read
    /// differently now), `lostOmitted` and `forced` (what a forced repair lost or accepted).
    pub fn to_json(&self) -> Json {
        let mut members = summary(&self.before, &self.after);
        let lost = self.lost.iter().map(|range| {
            Json::object([
                ("offset", Json::UInt(range.start)),
                ("length", Json::UInt(range.end - range.start)),
            ])
        });
        let before = &self.before;
        members.extend([
            (
                "before".to_string(),
                Json::object([
                    ("exitCode", Json::Int(before.exit_code().into())),
                    ("corruptions", Json::UInt(before.count(Severity::Corrupt))),
                    ("leaks", Json::UInt(before.count(Severity::Leak))),
                    ("leakedBlocks", Json::UInt(before.leaked_blocks())),
                ]),
            ),
            (
                "repairs".to_string(),
                Json::Array(self.actions.iter().map(action).collect()),
            ),
            (
                "notRepaired".to_string(),
                Json::Array(self.not_repaired.iter().map(finding).collect()),
            ),
            ("lost".to_string(), Json::Array(lost.collect())),
            ("lostOmitted".to_string(), Json::UInt(self.lost_omitted)),
            (
                "forced".to_string(),
                Json::Array(self.forced.iter().map(Json::str).collect()),
            ),
        ]);
        Json::Object(members)
    }
}

/// The members of a check: the findings of `found`, every other member from `now`.
fn summary(found: &CheckReport, now: &CheckReport) -> Vec<(String, Json)> {
    let members = [
        ("path", Json::str(now.path().display().to_string())),
        ("format", Json::str("vpc")),
        ("type", Json::opt(now.disk_type(), |t| Json::str(t.name()))),
        ("virtualSize", Json::opt(now.virtual_size(), Json::UInt)),
        (
            "blockSize",
            Json::opt(now.block_size(), |b| Json::UInt(b.into())),
        ),
        ("fileSize", Json::UInt(now.file_size())),
        ("tableEntries", Json::UInt(now.table_entries())),
        ("allocatedBlocks", Json::UInt(now.allocated_blocks())),
        ("leakedBlocks", Json::UInt(now.leaked_blocks())),
        ("clean", Json::Bool(now.is_clean())),
        ("corrupt", Json::Bool(now.has_corruption())),
        ("corruptions", Json::UInt(now.count(Severity::Corrupt))),
        ("leaks", Json::UInt(now.count(Severity::Leak))),
        ("parentLinkBroken", Json::Bool(now.parent_link_broken())),
        (
            "parent",
            Json::opt(now.parent(), |p| Json::str(p.display().to_string())),
        ),
        ("exitCode", Json::Int(now.exit_code().into())),
        (
            "findings",
            Json::Array(found.findings().iter().map(finding).collect()),
        ),
    ];
    members
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

fn finding(finding: &Finding) -> Json {
    let mut members = vec![
        ("severity", Json::str(finding.severity.name())),
        ("code", Json::str(finding.kind.code())),
        ("message", Json::str(&finding.message)),
    ];
    if let Some(offset) = finding.offset {
        members.push(("offset", Json::UInt(offset)));
    }
    if let Some(omitted) = finding.omitted {
        members.push(("omitted", Json::UInt(omitted)));
    }
    Json::object(members)
}

fn action(action: &RepairAction) -> Json {
    let mut members = vec![
        ("code", Json::str(action.fixes.code())),
        ("offset", Json::UInt(action.offset)),
        ("description", Json::str(&action.description)),
    ];
    if let Some(omitted) = action.omitted {
        members.push(("omitted", Json::UInt(omitted)));
    }
    Json::object(members)
}
