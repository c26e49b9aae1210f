//! Progress reports and cancellation for long operations.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a long operation reports how far it got, and how its caller stops it.
///
/// `Progress::default()` reports nowhere and cannot be cancelled.
#[derive(Default, Clone, Copy)]
pub struct Progress<'a> {
    on_progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Progress<'a> {
    /// Calls `on_progress(bytes_done, bytes_total)` as the operation advances.
    pub fn with_callback(mut self, on_progress: &'a (dyn Fn(u64, u64) + Sync)) -> Self {
        self.on_progress = Some(on_progress);
        self
    }

    /// Stops the operation with [`Error::Cancelled`] once `cancel` becomes `true`.
    pub fn with_cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Reports `done` of `total` bytes, then fails with [`Error::Cancelled`] if the caller
    /// asked to stop. Operations call it between units of work, where stopping leaves
    /// every file consistent.
    pub fn report(&self, operation: &'static str, done: u64, total: u64) -> Result<()> {
        if let Some(on_progress) = self.on_progress {
            on_progress(done, total);
        }
        self.check_cancelled(operation)
    }

    /// Fails with [`Error::Cancelled`] if the caller asked to stop.
    pub fn check_cancelled(&self, operation: &'static str) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled { operation }),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("on_progress", &self.on_progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reports_then_stops_when_cancelled() {
        let seen = Mutex::new(Vec::new());
        let record = |done, total| seen.lock().unwrap().push((done, total));
        let cancel = AtomicBool::new(false);
        let progress = Progress::default()
            .with_callback(&record)
            .with_cancel(&cancel);
        progress.report("convert", 1, 4).unwrap();
        cancel.store(true, Ordering::Relaxed);
        let err = progress.report("convert", 2, 4).unwrap_err();
        assert_eq!(err.code(), "ERR_VHD_CANCELLED");
        assert_eq!(*seen.lock().unwrap(), vec![(1, 4), (2, 4)]);
    }

    #[test]
    fn default_never_cancels() {
        Progress::default().report("convert", 0, 0).unwrap();
    }
}
