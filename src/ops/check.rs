//! `check`, and with `repair` the repair: the core's one JSON shape of their reports
//! ([`vhd_core::CheckReport::to_json`], [`vhd_core::ops::RepairReport::to_json`]), made a
//! JavaScript object unchanged: the same keys and values as `vhd check --json` prints.

use super::info::JsonValue;
use super::{open_options, to_napi};
use crate::errors::{guard, Failure};
use crate::task::Job;
use crate::types::CheckArgs;
use napi::bindgen_prelude::AsyncTask;
use napi::Env;
use napi_derive::napi;
use std::path::PathBuf;
use vhd_core::ops;
use vhd_core::CheckOptions;

impl CheckArgs {
    fn to_core(&self) -> Result<CheckOptions, Failure> {
        Ok(CheckOptions {
            skip_parent: self.skip_parent.unwrap_or(false),
            ..CheckOptions::from(&open_options(&self.open)?)
        })
    }
}

pub struct CheckJob {
    path: PathBuf,
    repair: bool,
    force: bool,
    options: CheckOptions,
}

fn check_work(job: &mut CheckJob) -> Result<JsonValue, Failure> {
    if !job.repair {
        return Ok(JsonValue(
            vhd_core::check(&job.path, &job.options)?.to_json(),
        ));
    }
    let repaired = ops::repair_with(
        &job.path,
        &job.options,
        &ops::RepairOptions { force: job.force },
    )?;
    Ok(JsonValue(repaired.to_json()))
}

/// Checks the image at `path` (and repairs it with `repair`).
#[napi(
    catch_unwind,
    ts_return_type = "Promise<import('./index').CheckReport>"
)]
pub fn check(
    env: Env,
    path: String,
    options: Option<CheckArgs>,
) -> napi::Result<AsyncTask<Job<CheckJob, JsonValue>>> {
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
