//! The maintenance operations of `vhd_core::ops` (convert, compact, resize, commit, rebase,
//! snapshot, check and repair, the VHD stream) as native functions for `lib/ops.js`.
//!
//! Each long operation runs on the libuv thread pool (a [`Job`], so a panic never reaches
//! Node) with an [`Operation`]: the JavaScript side makes one per call, and uses it to cancel
//! (`cancel()` sets the flag the core checks between units of work) and, once the promise has
//! settled, to learn the last progress the core reported. Progress reaches JavaScript
//! through a threadsafe function called without blocking, throttled so that the JavaScript
//! thread sees at most one report per 1 % or per 100 ms, plus every report of completion.

use crate::errors::{guard, Failure};
use crate::image::NativeImage;
use crate::options::{integer, OpenArgs};
use crate::task::Job;
use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use vhd_core::footer::{
    format_unique_id, FEATURE_RESERVED, FEATURE_TEMPORARY, HOST_OS_MACINTOSH, HOST_OS_WINDOWS,
    NO_DATA_OFFSET,
};
use vhd_core::names::UnknownName;
use vhd_core::ops::{self, OutputFormat, Progress, SourceFormat, VhdStream};
use vhd_core::{CheckOptions, CheckReport, DynamicHeader, Finding, Footer, FooterSource};

/// Shortest time between two progress reports that are not a completion.
const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Largest read of the VHD stream in one call (the JavaScript side asks for 1 MiB).
const MAX_STREAM_READ: usize = 16 << 20;

/// How far an operation got.
#[napi(object)]
#[derive(Debug, Clone, Copy)]
pub struct ProgressReport {
    pub bytes_done: f64,
    pub bytes_total: f64,
}

/// The JavaScript function that receives progress reports (no error-first argument).
type ProgressFn = ThreadsafeFunction<ProgressReport, (), ProgressReport, Status, false>;

/// One running operation, as the JavaScript side sees it: the cancel flag and the last
/// progress report of the core.
#[napi]
pub struct Operation {
    cancel: Arc<AtomicBool>,
    last: Arc<Mutex<Option<(u64, u64)>>>,
}

#[napi]
impl Operation {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Operation {
        Operation {
            cancel: Arc::new(AtomicBool::new(false)),
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Asks the operation to stop at its next unit of work; it then fails with
    /// `ERR_VHD_CANCELLED`, leaving every file as consistent as before it started.
    #[napi]
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The flag `cancel` sets, for work that checks it itself (the command line).
    pub(crate) fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The last `(bytesDone, bytesTotal)` the core reported (`null` before the first one),
    /// throttled or not: what the JavaScript side completes the reports with.
    #[napi(getter)]
    pub fn last_progress(&self) -> Option<ProgressReport> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.map(|(done, total)| ProgressReport {
            bytes_done: done as f64,
            bytes_total: total as f64,
        })
    }
}

/// When the last report went to JavaScript.
struct Throttle {
    at: Option<Instant>,
    percent: u64,
}

/// Receives the core's progress on a pool thread and passes some of it on to JavaScript.
struct Reporter {
    on_progress: Option<ProgressFn>,
    last: Arc<Mutex<Option<(u64, u64)>>>,
    throttle: Mutex<Throttle>,
}

impl Reporter {
    fn new(on_progress: Option<ProgressFn>, operation: &Operation) -> Reporter {
        Reporter {
            on_progress,
            last: operation.last.clone(),
            throttle: Mutex::new(Throttle {
                at: None,
                percent: 0,
            }),
        }
    }

    fn report(&self, done: u64, total: u64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((done, total));
        let Some(on_progress) = &self.on_progress else {
            return;
        };
        if self.is_due(done, total) {
            // Non-blocking: a full queue drops this report rather than slow the work down;
            // the JavaScript side completes the reports from `lastProgress` at the end.
            on_progress.call(
                ProgressReport {
                    bytes_done: done as f64,
                    bytes_total: total as f64,
                },
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }
    }

    /// The first report, completion, each further 1 %, and otherwise every 100 ms.
    fn is_due(&self, done: u64, total: u64) -> bool {
        let mut throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let percent = if total == 0 {
            100
        } else {
            (u128::from(done.min(total)) * 100 / u128::from(total)) as u64
        };
        let due = match throttle.at {
            None => true,
            Some(at) => {
                done >= total
                    || percent > throttle.percent
                    || now.duration_since(at) >= REPORT_INTERVAL
            }
        };
        if due {
            throttle.at = Some(now);
            throttle.percent = percent;
        }
        due
    }
}

/// The arguments of one operation, with what it reports to and how it is stopped.
pub struct OpState<A> {
    args: A,
    reporter: Reporter,
    cancel: Arc<AtomicBool>,
}

impl<A> OpState<A> {
    fn new(args: A, on_progress: Option<ProgressFn>, operation: &Operation) -> OpState<A> {
        OpState {
            args,
            reporter: Reporter::new(on_progress, operation),
            cancel: operation.cancel.clone(),
        }
    }

    /// Runs `op` with a `Progress` that feeds the reporter and honours the cancel flag.
    fn with_progress<T>(
        &self,
        op: impl FnOnce(&A, Progress) -> vhd_core::Result<T>,
    ) -> Result<T, Failure> {
        let reporter = &self.reporter;
        let callback = move |done, total| reporter.report(done, total);
        let progress = Progress::default()
            .with_callback(&callback)
            .with_cancel(&self.cancel);
        Ok(op(&self.args, progress)?)
    }
}

fn to_napi<T>(env: &Env, result: Result<T, Failure>) -> napi::Result<T> {
    result.map_err(|failure| failure.into_napi(env))
}

fn open_options(open: &Option<OpenArgs>) -> Result<vhd_core::OpenOptions, Failure> {
    open.clone().unwrap_or_default().to_core()
}

/// The task that runs `work` on `args` off the JS thread, reporting progress to
/// `on_progress` and stopping when `operation` is cancelled.
fn progress_task<A, T>(
    args: A,
    operation: &Operation,
    on_progress: Option<ProgressFn>,
    work: fn(&mut OpState<A>) -> Result<T, Failure>,
) -> AsyncTask<Job<OpState<A>, T>>
where
    OpState<A>: Send,
    Job<OpState<A>, T>: napi::Task,
{
    AsyncTask::new(Job::new(OpState::new(args, on_progress, operation), work))
}

// ---------------------------------------------------------------------------------------
// convert and the VHD stream

/// How to convert (the checked form of `VHD.convert`'s options).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ConvertArgs {
    /// `'raw'`, `'fixed'` or `'dynamic'`.
    pub to: String,
    /// `'auto'` (default), `'raw'` or `'vhd'`.
    pub source_format: Option<String>,
    /// A fixed image of a whole number of MiB, as Azure requires.
    pub azure: Option<bool>,
    /// Block size of dynamic output (default 2 MiB).
    pub block_size: Option<f64>,
    /// Replace an existing destination.
    pub overwrite: Option<bool>,
    /// The output's 16-byte unique id as 32 hexadecimal digits (default: random).
    pub unique_id: Option<String>,
    /// The output's time stamp in seconds since 2000-01-01 (default: now).
    pub timestamp: Option<f64>,
    /// How to open a VHD source (parents, checksums); it is always read-only.
    pub open: Option<OpenArgs>,
}

impl ConvertArgs {
    fn to_core(&self) -> Result<ops::ConvertOptions, Failure> {
        let to: OutputFormat = self
            .to
            .parse()
            .map_err(|e: UnknownName| Failure::invalid_value("to", e.to_string()))?;
        let block_size = match self.block_size {
            None => vhd_core::dynamic_header::DEFAULT_BLOCK_SIZE,
            Some(value) => {
                let value = integer("blockSize", value)?;
                u32::try_from(value).map_err(|_| {
                    Failure::out_of_range("blockSize", "a power of two of at most 256 MiB", value)
                })?
            }
        };
        let unique_id = self.unique_id.as_deref().map(unique_id).transpose()?;
        let timestamp = match self.timestamp {
            None => None,
            Some(value) => {
                let value = integer("timestamp", value)?;
                Some(u32::try_from(value).map_err(|_| {
                    Failure::out_of_range("timestamp", "at most 2^32 - 1 seconds after 2000", value)
                })?)
            }
        };
        Ok(ops::ConvertOptions {
            to,
            source_format: source_format(self.source_format.as_deref())?,
            azure: self.azure.unwrap_or(false),
            block_size,
            overwrite: self.overwrite.unwrap_or(false),
            unique_id,
            timestamp,
            open: open_options(&self.open)?,
        })
    }
}

/// 32 hexadecimal digits → 16 bytes.
fn unique_id(hex: &str) -> Result<[u8; 16], Failure> {
    let invalid = || {
        Failure::invalid_value(
            "uniqueId",
            format!("expected 32 hexadecimal digits, received {hex:?}"),
        )
    };
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
    }
    Ok(id)
}

fn source_format(value: Option<&str>) -> Result<SourceFormat, Failure> {
    value
        .map_or(Ok(SourceFormat::Auto), str::parse)
        .map_err(|e: UnknownName| Failure::invalid_value("sourceFormat", e.to_string()))
}

/// How a conversion source was read (`'raw'` or `'vhd'`) and why.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct DetectedSource {
    pub format: String,
    pub reason: String,
}

/// The binding's form of a source detection: what was decided, and the warnings for the
/// caller (none, or one when auto-detection read as raw a file that looked like a VHD).
fn detected(detection: &ops::SourceDetection) -> (DetectedSource, Vec<String>) {
    let format = match detection.format {
        SourceFormat::Vhd => "vhd",
        _ => "raw",
    };
    let source = DetectedSource {
        format: format.to_string(),
        reason: detection.reason.clone(),
    };
    (source, detection.warning.iter().cloned().collect())
}

/// What `convert` did.
#[napi(object)]
pub struct ConvertResult {
    pub source_size: f64,
    pub virtual_size: f64,
    pub file_size: f64,
    pub allocated_blocks: f64,
    /// How the source was read, and why.
    pub detected: DetectedSource,
    /// What the caller should know (e.g. a file read as raw although it starts like a VHD).
    pub warnings: Vec<String>,
}

pub struct ConvertJob {
    source: PathBuf,
    destination: PathBuf,
    options: ops::ConvertOptions,
}

fn convert_work(state: &mut OpState<ConvertJob>) -> Result<ConvertResult, Failure> {
    let report = state.with_progress(|job, progress| {
        ops::convert(&job.source, &job.destination, &job.options, progress)
    })?;
    let (detected, warnings) = detected(&report.detection);
    Ok(ConvertResult {
        source_size: report.source_size as f64,
        virtual_size: report.virtual_size as f64,
        file_size: report.file_size as f64,
        allocated_blocks: report.allocated_blocks as f64,
        detected,
        warnings,
    })
}

/// Converts `source` into a new image (or raw file) at `destination`.
#[napi(catch_unwind, ts_return_type = "Promise<ConvertResult>")]
pub fn convert(
    env: Env,
    source: String,
    destination: String,
    options: ConvertArgs,
    operation: &Operation,
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<ConvertJob>, ConvertResult>>> {
    let options = to_napi(&env, guard(|| options.to_core()))?;
    let job = ConvertJob {
        source: source.into(),
        destination: destination.into(),
        options,
    };
    Ok(progress_task(job, operation, on_progress, convert_work))
}

type SharedStream = Arc<RwLock<Option<VhdStream>>>;

/// The bytes of the VHD file `convert` would write, computed while they are read.
#[napi]
pub struct NativeVhdStream {
    stream: SharedStream,
    length: u64,
    detection: ops::SourceDetection,
}

pub struct StreamJob {
    source: PathBuf,
    options: ops::ConvertOptions,
}

fn open_stream_work(state: &mut OpState<StreamJob>) -> Result<NativeVhdStream, Failure> {
    let (stream, detection) = state.with_progress(|job, progress| {
        let (source, detection) = ops::open_source_with_detection(
            &job.source,
            job.options.source_format,
            &job.options.open,
        )?;
        Ok((VhdStream::new(source, &job.options, progress)?, detection))
    })?;
    Ok(NativeVhdStream {
        length: stream.len(),
        stream: Arc::new(RwLock::new(Some(stream))),
        detection,
    })
}

/// Opens `source` and plans the VHD file (`options.to`: `'fixed'` or `'dynamic'`); dynamic
/// output reads the whole source first (reported as progress) to leave out all-zero blocks.
#[napi(catch_unwind, ts_return_type = "Promise<NativeVhdStream>")]
pub fn open_vhd_stream(
    env: Env,
    source: String,
    options: ConvertArgs,
    operation: &Operation,
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<StreamJob>, NativeVhdStream>>> {
    let options = to_napi(
        &env,
        guard(|| {
            let options = options.to_core()?;
            if options.to == OutputFormat::Raw {
                return Err(Failure::invalid_value(
                    "type",
                    "a VHD stream is 'fixed' or 'dynamic'",
                ));
            }
            Ok(options)
        }),
    )?;
    let job = StreamJob {
        source: source.into(),
        options,
    };
    Ok(progress_task(job, operation, on_progress, open_stream_work))
}

pub struct StreamRead {
    stream: SharedStream,
    length: usize,
    position: u64,
}

/// Reads into memory of its own, handed to JavaScript as the resolved Buffer: no pointer to
/// JavaScript memory crosses to the thread pool (see src/buffers.rs for why that matters).
fn stream_read_work(state: &mut StreamRead) -> Result<Buffer, Failure> {
    let guard = state
        .stream
        .read()
        .map_err(|_| Failure::internal("poisoned VHD stream"))?;
    let stream = guard.as_ref().ok_or_else(Failure::closed)?;
    let mut bytes = vec![0; state.length];
    let read = stream.read_at(&mut bytes, state.position)?;
    bytes.truncate(read);
    Ok(Buffer::from(bytes))
}

fn stream_close_work(stream: &mut SharedStream) -> Result<(), Failure> {
    // Waits for a read in progress; dropping the stream closes the source.
    let mut guard = stream.write().unwrap_or_else(|p| p.into_inner());
    guard.take();
    Ok(())
}

#[napi]
impl NativeVhdStream {
    /// Total length of the VHD file in bytes.
    #[napi(getter)]
    pub fn length(&self) -> f64 {
        self.length as f64
    }

    /// How the source is read, and why.
    #[napi(getter)]
    pub fn detected(&self) -> DetectedSource {
        detected(&self.detection).0
    }

    /// What the caller should know about the source (see `ConvertResult.warnings`).
    #[napi(getter)]
    pub fn warnings(&self) -> Vec<String> {
        detected(&self.detection).1
    }

    /// Reads `length` bytes (at most 16 MiB) at `position`; resolves to a new Buffer of the
    /// bytes read, short only at the end.
    #[napi(catch_unwind, ts_return_type = "Promise<Buffer>")]
    pub fn read(
        &self,
        env: Env,
        length: f64,
        position: f64,
    ) -> napi::Result<AsyncTask<Job<StreamRead, Buffer>>> {
        let checked = guard(|| {
            let length = integer("length", length)?;
            if length > MAX_STREAM_READ as u64 {
                return Err(Failure::out_of_range("length", "at most 16 MiB", length));
            }
            Ok((length as usize, integer("position", position)?))
        });
        let (length, position) = to_napi(&env, checked)?;
        Ok(AsyncTask::new(Job::new(
            StreamRead {
                stream: self.stream.clone(),
                length,
                position,
            },
            stream_read_work,
        )))
    }

    /// Closes the source (after a read in progress). Later reads fail with `ERR_VHD_CLOSED`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<SharedStream, ()>> {
        AsyncTask::new(Job::new(self.stream.clone(), stream_close_work))
    }
}

// ---------------------------------------------------------------------------------------
// compact, resize, commit, rebase, snapshot

/// Options of the operations on one image in place.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct InPlaceArgs {
    /// How to open the image (parents of a differencing image, `parentRoot`…); `rebase`:
    /// how to open the child over its new parent (`ignoreParentTimestamp` accepts a copy).
    pub open: Option<OpenArgs>,
    /// `resize`: shrink even when the part cut off holds data.
    pub force: Option<bool>,
}

pub struct PathJob {
    path: PathBuf,
    open: vhd_core::OpenOptions,
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

/// What `compact` did.
#[napi(object)]
pub struct CompactResult {
    pub file_size_before: f64,
    pub file_size_after: f64,
    pub blocks_before: f64,
    pub blocks_after: f64,
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
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<PathJob>, CompactResult>>> {
    in_place_task(&env, path, options, operation, on_progress, compact_work)
}

/// What `commit` did.
#[napi(object)]
pub struct CommitResult {
    pub parent: String,
    pub bytes_committed: f64,
    pub child_file_size: f64,
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
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<PathJob>, CommitResult>>> {
    in_place_task(&env, path, options, operation, on_progress, commit_work)
}

pub struct ResizeJob {
    path: PathBuf,
    size: u64,
    options: ops::ResizeOptions,
}

/// What `resize` did.
#[napi(object)]
pub struct ResizeResult {
    pub old_size: f64,
    pub new_size: f64,
    pub file_size: f64,
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

// ---------------------------------------------------------------------------------------
// check and repair

/// How to check.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct CheckArgs {
    /// Repair what can be repaired without losing data.
    pub repair: Option<bool>,
    /// With `repair`: carry out a repair that loses data (see `vhd_core::ops::RepairOptions`).
    pub force: Option<bool>,
    /// Parents named by the caller, nearest first, and the other open options that apply.
    pub open: Option<OpenArgs>,
    /// Do not look for the parent of a differencing image.
    pub skip_parent: Option<bool>,
}

impl CheckArgs {
    fn to_core(&self) -> Result<CheckOptions, Failure> {
        Ok(CheckOptions {
            skip_parent: self.skip_parent.unwrap_or(false),
            ..CheckOptions::from(&open_options(&self.open)?)
        })
    }
}

/// One problem `check` found, or the summary of those of its kind that were not listed.
#[napi(object)]
pub struct FindingResult {
    /// `'info'`, `'leak'` or `'corrupt'` (for a summary: the worst of those it stands for).
    pub severity: String,
    /// The stable code of its kind.
    pub code: String,
    pub message: String,
    /// Where in the file, when it is about one place.
    pub offset: Option<f64>,
    /// Only on a summary: how many findings of its kind were not listed.
    pub omitted: Option<f64>,
}

/// What `check` (and `repair`) found.
#[napi(object)]
pub struct CheckResult {
    pub path: String,
    pub clean: bool,
    pub exit_code: i32,
    pub corrupt: bool,
    pub leaks: bool,
    pub leaked_blocks: f64,
    pub allocated_blocks: f64,
    pub file_size: f64,
    pub findings: Vec<FindingResult>,
    /// With `repair`: the changes made, in order.
    pub repairs: Option<Vec<RepairResult>>,
    /// With `repair`: what the check after repairing still finds (damage or leaks).
    pub not_repaired: Option<Vec<FindingResult>>,
    /// With `repair`: ranges of the virtual disk that read differently now (as zeros, or
    /// from the parent) because the blocks their BAT entries pointed at were not there.
    pub lost: Option<Vec<RangeResult>>,
    /// With `repair`: how many more such ranges were not listed.
    pub lost_omitted: Option<f64>,
    /// With `repair` and `force`: what the repair lost or accepted that it refuses without
    /// force, one sentence each.
    pub forced: Option<Vec<String>>,
}

/// One change `repair` made.
#[napi(object)]
pub struct RepairResult {
    /// The code of the finding it repairs.
    pub code: String,
    /// Where in the file the change was made (for a cut: the new file size).
    pub offset: f64,
    pub description: String,
    /// Only on a summary: how many changes of its kind were not listed.
    pub omitted: Option<f64>,
}

/// A range of the virtual disk.
#[napi(object)]
pub struct RangeResult {
    pub offset: f64,
    pub length: f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reporter() -> Reporter {
        Reporter::new(None, &Operation::new())
    }

    #[test]
    fn throttle_passes_the_first_report_each_percent_and_completion() {
        let reporter = reporter();
        assert!(reporter.is_due(0, 1000));
        assert!(!reporter.is_due(1, 1000), "less than 1 % later, at once");
        assert!(reporter.is_due(10, 1000), "1 % further");
        assert!(!reporter.is_due(11, 1000));
        assert!(reporter.is_due(1000, 1000), "completion always");
    }

    #[test]
    fn throttle_passes_a_report_after_the_interval() {
        let reporter = reporter();
        assert!(reporter.is_due(0, u64::MAX));
        std::thread::sleep(REPORT_INTERVAL);
        assert!(reporter.is_due(1, u64::MAX));
    }

    #[test]
    fn the_last_report_is_kept_even_when_throttled() {
        let operation = Operation::new();
        let reporter = Reporter::new(None, &operation);
        reporter.report(5, 10);
        reporter.report(6, 10);
        let last = operation.last_progress().unwrap();
        assert_eq!((last.bytes_done, last.bytes_total), (6.0, 10.0));
    }

    #[test]
    fn convert_args_are_checked() {
        let args = ConvertArgs {
            to: "dynamic".into(),
            source_format: None,
            azure: None,
            block_size: None,
            overwrite: None,
            unique_id: None,
            timestamp: Some(5.0),
            open: None,
        };
        let with_id = ConvertArgs {
            unique_id: Some("00112233445566778899aabbccddeeff".into()),
            ..args.clone()
        };
        assert_eq!(with_id.to_core().unwrap().unique_id.unwrap()[15], 0xff);
        for bad in ["0011", "zz112233445566778899aabbccddeeff"] {
            let bad = ConvertArgs {
                unique_id: Some(bad.into()),
                ..args.clone()
            };
            assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        }
        let options = args.to_core().unwrap();
        assert_eq!(options.to, OutputFormat::Dynamic);
        assert_eq!(options.block_size, 2 << 20);
        assert_eq!(options.timestamp, Some(5));
        let bad = ConvertArgs {
            to: "vhdx".into(),
            ..args.clone()
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        let bad = ConvertArgs {
            source_format: Some("qcow2".into()),
            ..args.clone()
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        let bad = ConvertArgs {
            block_size: Some(-1.0),
            ..args
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_OUT_OF_RANGE");
    }
}

// ---------------------------------------------------------------------------------------
// info: the fields of the CLI's `info --json`; `lib/ops.js` puts them in its order, with
// `null` for what is absent and time stamps as ISO 8601.

/// The CHS geometry of the footer, and the size it describes.
#[napi(object)]
pub struct GeometryResult {
    pub cylinders: u32,
    pub heads: u32,
    pub sectors_per_track: u32,
    pub size: f64,
}

/// Who made the image.
#[napi(object)]
pub struct CreatorResult {
    /// The creator application, e.g. `'win '`, `'qemu'`.
    pub application: String,
    /// `'major.minor'`.
    pub version: String,
    /// `'Windows'`, `'Macintosh'`, or the code's 4 characters quoted.
    pub host_os: String,
}

/// The footer's features field.
#[napi(object)]
pub struct FeaturesResult {
    pub value: u32,
    pub temporary: bool,
    pub reserved: bool,
}

/// A stored checksum and the one the fields call for.
#[napi(object)]
pub struct ChecksumResult {
    pub stored: u32,
    pub computed: u32,
    pub valid: bool,
}

/// Every footer field, as stored.
#[napi(object)]
pub struct FooterFields {
    pub features: u32,
    pub format_version: u32,
    /// `None` for a fixed image (all ones).
    pub data_offset: Option<f64>,
    pub timestamp: u32,
    pub creator_application: String,
    pub creator_version: u32,
    pub creator_host_os: u32,
    pub original_size: f64,
    pub current_size: f64,
    pub disk_type: u32,
    pub checksum: u32,
    pub unique_id: String,
    pub saved_state: u32,
}

/// Every dynamic header field but the locator table.
#[napi(object)]
pub struct HeaderFields {
    pub data_offset: Option<f64>,
    pub table_offset: f64,
    pub header_version: u32,
    pub max_table_entries: u32,
    pub block_size: u32,
    pub checksum: u32,
    pub parent_unique_id: String,
    pub parent_timestamp: u32,
    pub parent_name: String,
}

/// A used parent locator entry.
#[napi(object)]
pub struct LocatorResult {
    pub index: u32,
    pub platform_code: String,
    pub data_space: u32,
    pub data_length: u32,
    pub data_offset: f64,
    pub path: Option<String>,
}

/// The parent a differencing image records and the file used as the parent.
#[napi(object)]
pub struct ParentResult {
    pub name: String,
    pub unique_id: String,
    /// Seconds since 2000-01-01.
    pub timestamp: u32,
    /// False when the child records a parent time stamp of 0 (as Windows diskpart writes):
    /// only the parent's unique id binds it.
    pub timestamp_recorded: bool,
    pub path: String,
    pub locators: Vec<LocatorResult>,
}

/// One image of the chain.
#[napi(object)]
pub struct ChainResult {
    pub path: String,
    /// `'fixed'`, `'dynamic'`, `'differencing'` or `'raw'`.
    #[napi(js_name = "type")]
    pub kind: String,
    pub virtual_size: f64,
}

/// What `VHD.info` reports.
#[napi(object)]
pub struct InfoResult {
    pub path: String,
    #[napi(js_name = "type")]
    pub disk_type: String,
    pub virtual_size: f64,
    pub geometry: GeometryResult,
    pub block_size: Option<u32>,
    pub allocated_bytes: f64,
    pub allocated_blocks: Option<f64>,
    pub file_size: f64,
    pub disk_usage: Option<f64>,
    pub creator: CreatorResult,
    pub unique_id: String,
    /// Seconds since 2000-01-01.
    pub timestamp: u32,
    pub features: FeaturesResult,
    pub footer_checksum: ChecksumResult,
    pub header_checksum: Option<ChecksumResult>,
    pub footer_source: String,
    pub footer: FooterFields,
    pub header: Option<HeaderFields>,
    pub parent: Option<ParentResult>,
    pub chain: Vec<ChainResult>,
}

fn checksum_result(checksum: ops::ChecksumInfo) -> ChecksumResult {
    ChecksumResult {
        stored: checksum.stored,
        computed: checksum.computed,
        valid: checksum.is_valid(),
    }
}

/// A data offset; a fixed image's (all ones) is `None`.
fn data_offset(offset: u64) -> Option<f64> {
    (offset != NO_DATA_OFFSET).then_some(offset as f64)
}

fn host_os(code: u32) -> String {
    match code {
        HOST_OS_WINDOWS => "Windows".into(),
        HOST_OS_MACINTOSH => "Macintosh".into(),
        other => format!("{:?}", String::from_utf8_lossy(&other.to_be_bytes())),
    }
}

fn footer_fields(footer: &Footer) -> FooterFields {
    FooterFields {
        features: footer.features,
        format_version: footer.format_version,
        data_offset: data_offset(footer.data_offset),
        timestamp: footer.timestamp,
        creator_application: footer.creator_application_str(),
        creator_version: footer.creator_version,
        creator_host_os: footer.creator_host_os,
        original_size: footer.original_size as f64,
        current_size: footer.current_size as f64,
        disk_type: footer.disk_type_code,
        checksum: footer.checksum,
        unique_id: format_unique_id(&footer.unique_id),
        saved_state: u32::from(footer.saved_state),
    }
}

fn header_fields(header: &DynamicHeader) -> HeaderFields {
    HeaderFields {
        data_offset: data_offset(header.data_offset),
        table_offset: header.table_offset as f64,
        header_version: header.header_version,
        max_table_entries: header.max_table_entries,
        block_size: header.block_size,
        checksum: header.checksum,
        parent_unique_id: format_unique_id(&header.parent_unique_id),
        parent_timestamp: header.parent_timestamp,
        parent_name: header.parent_name(),
    }
}

fn locator_result(locator: &ops::LocatorInfo) -> LocatorResult {
    LocatorResult {
        index: locator.index as u32,
        platform_code: locator.entry.platform_name(),
        data_space: locator.entry.platform_data_space,
        data_length: locator.entry.platform_data_length,
        data_offset: locator.entry.platform_data_offset as f64,
        path: locator.path.clone(),
    }
}

fn info_result(info: ops::ImageInfo) -> InfoResult {
    let footer = &info.footer;
    let (major, minor) = footer.creator_version_parts();
    InfoResult {
        path: info.path.display().to_string(),
        disk_type: info.disk_type.name().to_string(),
        virtual_size: info.virtual_size as f64,
        geometry: GeometryResult {
            cylinders: u32::from(footer.geometry.cylinders),
            heads: u32::from(footer.geometry.heads),
            sectors_per_track: u32::from(footer.geometry.sectors_per_track),
            size: info.geometry_size as f64,
        },
        block_size: info.header.as_ref().map(|h| h.block_size),
        allocated_bytes: info.allocated_bytes as f64,
        allocated_blocks: info.allocated_blocks.map(|n| n as f64),
        file_size: info.file_size as f64,
        disk_usage: info.disk_usage.map(|n| n as f64),
        creator: CreatorResult {
            application: footer.creator_application_str(),
            version: format!("{major}.{minor}"),
            host_os: host_os(footer.creator_host_os),
        },
        unique_id: format_unique_id(&footer.unique_id),
        timestamp: footer.timestamp,
        features: FeaturesResult {
            value: footer.features,
            temporary: footer.features & FEATURE_TEMPORARY != 0,
            reserved: footer.features & FEATURE_RESERVED != 0,
        },
        footer_checksum: checksum_result(info.footer_checksum),
        header_checksum: info.header_checksum.map(checksum_result),
        footer_source: match info.footer_source {
            FooterSource::End => "end",
            FooterSource::End511 => "end511",
            FooterSource::Copy => "copy",
        }
        .to_string(),
        footer: footer_fields(footer),
        header: info.header.as_ref().map(header_fields),
        parent: info.parent.as_ref().map(|parent| ParentResult {
            name: parent.name.clone(),
            unique_id: format_unique_id(&parent.unique_id),
            timestamp: parent.timestamp,
            timestamp_recorded: parent.timestamp_recorded,
            path: parent.path.display().to_string(),
            locators: info.parent_locators.iter().map(locator_result).collect(),
        }),
        chain: info
            .chain
            .iter()
            .map(|entry| ChainResult {
                path: entry.path.display().to_string(),
                kind: entry.kind.name().to_string(),
                virtual_size: entry.virtual_size as f64,
            })
            .collect(),
    }
}

fn info_work(job: &mut PathJob) -> Result<InfoResult, Failure> {
    let image = vhd_core::Image::open(&job.path, &job.open)?;
    Ok(info_result(ops::info(&image)?))
}

/// Opens the image read-only and describes it.
#[napi(catch_unwind, ts_return_type = "Promise<InfoResult>")]
pub fn info(
    env: Env,
    path: String,
    open: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<PathJob, InfoResult>>> {
    let mut open = to_napi(&env, guard(|| open_options(&open)))?;
    open.read_only = true;
    Ok(AsyncTask::new(Job::new(
        PathJob {
            path: path.into(),
            open,
        },
        info_work,
    )))
}
