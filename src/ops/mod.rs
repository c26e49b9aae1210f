//! The maintenance operations of `vhd_core::ops` (convert, compact, resize, commit, rebase,
//! snapshot, check and repair, the VHD stream, info) as native functions for `lib/ops.js`,
//! one module per family: [`convert`] (and the VHD stream), [`maintenance`] (compact,
//! resize, commit, rebase, snapshot), [`check`] (and repair), [`info`]. This module holds
//! what they share: the [`Operation`] JavaScript cancels, the progress [`Reporter`], and the
//! task that runs them.
//!
//! Each long operation runs on the libuv thread pool (a [`Job`], so a panic never reaches
//! Node) with an [`Operation`]: the JavaScript side makes one per call, and uses it to cancel
//! (`cancel()` sets the flag the core checks between units of work) and, once the promise has
//! settled, to learn the last progress the core reported. Progress reaches JavaScript
//! through a threadsafe function called without blocking, throttled so that the JavaScript
//! thread sees at most one report per 1 % or per 100 ms, plus every report of completion.

mod check;
mod convert;
mod info;
mod maintenance;

use crate::errors::Failure;
use crate::task::Job;
use crate::types::OpenArgs;
use crate::types::ProgressReport;
use napi::bindgen_prelude::AsyncTask;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vhd_core::ops::Progress;

/// Shortest time between two progress reports that are not a completion.
const REPORT_INTERVAL: Duration = Duration::from_millis(100);

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
}
