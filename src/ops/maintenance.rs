//! The operations on one image in place: `compact`, `resize`, `commit`, `rebase`,
//! `snapshot`.

use super::{open_options, progress_task, to_napi, OpState, Operation, ProgressFn};
use crate::errors::{guard, Failure};
use crate::image::NativeImage;
use crate::options::integer;
use crate::task::Job;
use crate::types::OpenArgs;
use crate::types::{CommitResult, CompactResult, InPlaceArgs, ResizeResult};
use napi::bindgen_prelude::AsyncTask;
use napi::Env;
use napi_derive::napi;
use std::path::PathBuf;
use vhd_core::ops;

pub struct PathJob {
    pub(super) path: PathBuf,
    pub(super) open: vhd_core::OpenOptions,
}

/// The task of an operation that needs only the image's path and how to open it
/// (`compact`, `commit`); bad open options fail the call before the task starts.
fn in_place_task<T>(
    env: &Env,
    path: String,
    options: Option<InPlaceArgs>,
    operation: &Operation,
    on_progress: Option<ProgressFn>,
    work: fn(&mut OpState<PathJob>) -> Result<T, Failure>,
) -> napi::Result<AsyncTask<Job<OpState<PathJob>, T>>>
where
    Job<OpState<PathJob>, T>: napi::Task,
{
    let open = to_napi(
        env,
        guard(|| open_options(&options.unwrap_or_default().open)),
    )?;
    let job = PathJob {
        path: path.into(),
        open,
    };
    Ok(progress_task(job, operation, on_progress, work))
}

fn compact_work(state: &mut OpState<PathJob>) -> Result<CompactResult, Failure> {
    let report =
        state.with_progress(|job, progress| ops::compact(&job.path, &job.open, progress))?;
    Ok(CompactResult {
        file_size_before: report.file_size_before as f64,
        file_size_after: report.file_size_after as f64,
        blocks_before: report.blocks_before as f64,
        blocks_after: report.blocks_after as f64,
    })
}

/// Rewrites a dynamic or differencing image without the blocks it does not need.
#[napi(catch_unwind, ts_return_type = "Promise<CompactResult>")]
pub fn compact(
    env: Env,
    path: String,
    options: Option<InPlaceArgs>,
    operation: &Operation,
    #[napi(ts_arg_type = "((report: ProgressReport) => void) | undefined | null")]
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<PathJob>, CompactResult>>> {
    in_place_task(&env, path, options, operation, on_progress, compact_work)
}

fn commit_work(state: &mut OpState<PathJob>) -> Result<CommitResult, Failure> {
    let report =
        state.with_progress(|job, progress| ops::commit(&job.path, &job.open, progress))?;
    Ok(CommitResult {
        parent: report.parent.to_string_lossy().into_owned(),
        bytes_committed: report.bytes_committed as f64,
        child_file_size: report.child_file_size as f64,
    })
}

/// Writes the sectors of a differencing image into its parent, then empties the child.
#[napi(catch_unwind, ts_return_type = "Promise<CommitResult>")]
pub fn commit(
    env: Env,
    path: String,
    options: Option<InPlaceArgs>,
    operation: &Operation,
    #[napi(ts_arg_type = "((report: ProgressReport) => void) | undefined | null")]
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<PathJob>, CommitResult>>> {
    in_place_task(&env, path, options, operation, on_progress, commit_work)
}

pub struct ResizeJob {
    path: PathBuf,
    size: u64,
    options: ops::ResizeOptions,
}

fn resize_work(state: &mut OpState<ResizeJob>) -> Result<ResizeResult, Failure> {
    let report = state
        .with_progress(|job, progress| ops::resize(&job.path, job.size, &job.options, progress))?;
    Ok(ResizeResult {
        old_size: report.old_size as f64,
        new_size: report.new_size as f64,
        file_size: report.file_size as f64,
    })
}

/// Changes the virtual size of an image to `size` bytes.
#[napi(catch_unwind, ts_return_type = "Promise<ResizeResult>")]
pub fn resize(
    env: Env,
    path: String,
    size: f64,
    options: Option<InPlaceArgs>,
    operation: &Operation,
    #[napi(ts_arg_type = "((report: ProgressReport) => void) | undefined | null")]
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<ResizeJob>, ResizeResult>>> {
    let options = options.unwrap_or_default();
    let (size, open) = to_napi(
        &env,
        guard(|| Ok((integer("size", size)?, open_options(&options.open)?))),
    )?;
    let options = ops::ResizeOptions {
        force: options.force.unwrap_or(false),
        open,
    };
    let job = ResizeJob {
        path: path.into(),
        size,
        options,
    };
    Ok(progress_task(job, operation, on_progress, resize_work))
}

pub struct RebaseJob {
    path: PathBuf,
    parent: PathBuf,
    open: vhd_core::OpenOptions,
}

fn rebase_work(job: &mut RebaseJob) -> Result<(), Failure> {
    Ok(ops::rebase(&job.path, &job.parent, &job.open)?)
}

/// Points a differencing image at `parent` (after checking its unique id).
#[napi(catch_unwind, ts_return_type = "Promise<void>")]
pub fn rebase(
    env: Env,
    path: String,
    parent: String,
    options: Option<InPlaceArgs>,
) -> napi::Result<AsyncTask<Job<RebaseJob, ()>>> {
    let open = to_napi(
        &env,
        guard(|| open_options(&options.unwrap_or_default().open)),
    )?;
    Ok(AsyncTask::new(Job::new(
        RebaseJob {
            path: path.into(),
            parent: parent.into(),
            open,
        },
        rebase_work,
    )))
}

pub struct SnapshotJob {
    path: PathBuf,
    child: PathBuf,
    open: vhd_core::OpenOptions,
}

fn snapshot_work(job: &mut SnapshotJob) -> Result<NativeImage, Failure> {
    Ok(NativeImage::from_image(ops::snapshot(
        &job.path, &job.child, &job.open,
    )?))
}

/// Creates `child`, a differencing image over `path` (opened as `open` says), and
/// resolves to it, open read-write.
#[napi(catch_unwind, ts_return_type = "Promise<NativeImage>")]
pub fn snapshot(
    env: Env,
    path: String,
    child: String,
    open: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<SnapshotJob, NativeImage>>> {
    let open = to_napi(&env, guard(|| open_options(&open)))?;
    Ok(AsyncTask::new(Job::new(
        SnapshotJob {
            path: path.into(),
            child: child.into(),
            open,
        },
        snapshot_work,
    )))
}
