//! `check`, and with `repair` the repair: the core's reports as JavaScript objects.

use super::{open_options, to_napi};
use crate::errors::{guard, Failure};
use crate::task::Job;
use crate::types::{CheckArgs, CheckResult, FindingResult, RangeResult, RepairResult};
use napi::bindgen_prelude::AsyncTask;
use napi::Env;
use napi_derive::napi;
use std::path::PathBuf;
use vhd_core::ops;
use vhd_core::{CheckOptions, CheckReport, Finding};

impl CheckArgs {
    fn to_core(&self) -> Result<CheckOptions, Failure> {
        Ok(CheckOptions {
            skip_parent: self.skip_parent.unwrap_or(false),
            ..CheckOptions::from(&open_options(&self.open)?)
        })
    }
}

fn finding_result(finding: &Finding) -> FindingResult {
    FindingResult {
        severity: finding.severity.name().to_string(),
        code: finding.kind.code().to_string(),
        message: finding.message.clone(),
        offset: finding.offset.map(|offset| offset as f64),
        omitted: finding.omitted.map(|omitted| omitted as f64),
    }
}

/// The report of one check: `found` lists the findings, the verdict is `now`'s (the image
/// as it is after a repair).
fn check_result(found: &CheckReport, now: &CheckReport) -> CheckResult {
    CheckResult {
        path: found.path().to_string_lossy().into_owned(),
        clean: now.is_clean(),
        exit_code: now.exit_code(),
        corrupt: now.has_corruption(),
        leaks: now.has_leaks(),
        leaked_blocks: now.leaked_blocks() as f64,
        allocated_blocks: now.allocated_blocks() as f64,
        file_size: now.file_size() as f64,
        findings: found.findings().iter().map(finding_result).collect(),
        repairs: None,
        not_repaired: None,
        lost: None,
        lost_omitted: None,
        forced: None,
    }
}

pub struct CheckJob {
    path: PathBuf,
    repair: bool,
    force: bool,
    options: CheckOptions,
}

fn check_work(job: &mut CheckJob) -> Result<CheckResult, Failure> {
    if !job.repair {
        let report = vhd_core::check(&job.path, &job.options)?;
        return Ok(check_result(&report, &report));
    }
    let repaired = ops::repair_with(
        &job.path,
        &job.options,
        &ops::RepairOptions { force: job.force },
    )?;
    let mut result = check_result(&repaired.before, &repaired.after);
    result.repairs = Some(
        repaired
            .actions
            .iter()
            .map(|action| RepairResult {
                code: action.fixes.code().to_string(),
                offset: action.offset as f64,
                description: action.description.clone(),
                omitted: action.omitted.map(|omitted| omitted as f64),
            })
            .collect(),
    );
    result.not_repaired = Some(repaired.not_repaired.iter().map(finding_result).collect());
    result.lost = Some(
        repaired
            .lost
            .iter()
            .map(|range| RangeResult {
                offset: range.start as f64,
                length: (range.end - range.start) as f64,
            })
            .collect(),
    );
    result.lost_omitted = Some(repaired.lost_omitted as f64);
    result.forced = Some(repaired.forced.clone());
    Ok(result)
}

/// Checks the image at `path` (and repairs it with `repair`).
#[napi(catch_unwind, ts_return_type = "Promise<CheckResult>")]
pub fn check(
    env: Env,
    path: String,
    options: Option<CheckArgs>,
) -> napi::Result<AsyncTask<Job<CheckJob, CheckResult>>> {
    let options = options.unwrap_or_default();
    let core = to_napi(&env, guard(|| options.to_core()))?;
    Ok(AsyncTask::new(Job::new(
        CheckJob {
            path: path.into(),
            repair: options.repair.unwrap_or(false),
            force: options.force.unwrap_or(false),
            options: core,
        },
        check_work,
    )))
}
