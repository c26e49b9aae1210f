//! The progress bar of long commands, drawn on stderr like qemu-img's: `    (42.00/100%)`.

use crate::args::{OptionSpec, Parsed};
use crate::Io;
use std::io::Write;
use std::sync::Mutex;
use vhd_core::ops::Progress;

/// `-p`/`--progress`: show the bar even when stderr is not a terminal.
pub const PROGRESS: OptionSpec = OptionSpec {
    long: "progress",
    short: Some('p'),
    value: None,
    help: "show a progress bar even when stderr is not a terminal",
};

/// `-q`/`--quiet`: never show the bar.
pub const QUIET: OptionSpec = OptionSpec {
    long: "quiet",
    short: Some('q'),
    value: None,
    help: "show no progress bar",
};

/// Whether to show the bar: `--quiet` wins, then `--progress`, else only on a terminal.
pub fn wanted(parsed: &Parsed, io: &Io) -> bool {
    !parsed.flag("quiet") && (parsed.flag("progress") || io.stderr_is_terminal)
}

/// Runs `operation` with a [`Progress`] that draws the bar on stderr when `show` is set,
/// and stops it when the caller sets [`Io::cancel`].
pub fn run_with<T>(
    io: &mut Io,
    show: bool,
    operation: impl FnOnce(Progress) -> vhd_core::Result<T>,
) -> vhd_core::Result<T> {
    let mut progress = Progress::default();
    if let Some(cancel) = io.cancel {
        progress = progress.with_cancel(cancel);
    }
    if !show {
        return operation(progress);
    }
    let bar = Mutex::new(Bar {
        out: &mut *io.stderr,
        shown: None,
    });
    let draw = |done: u64, total: u64| {
        if let Ok(mut bar) = bar.lock() {
            bar.draw(done, total);
        }
    };
    let result = operation(progress.with_callback(&draw));
    let mut bar = bar
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if result.is_ok() {
        bar.draw(1, 1);
    }
    bar.finish();
    result
}

struct Bar<'a> {
    out: &'a mut (dyn Write + Send),
    /// Hundredths of a percent last drawn.
    shown: Option<u64>,
}

impl Bar<'_> {
    fn draw(&mut self, done: u64, total: u64) {
        let hundredths = match total {
            0 => 10_000,
            _ => (u128::from(done.min(total)) * 10_000 / u128::from(total)) as u64,
        };
        // Redraw at most every 0.1 %: a terminal is slower than the disk.
        if self.shown.map(|shown| shown / 10) == Some(hundredths / 10) {
            return;
        }
        self.shown = Some(hundredths);
        // A progress bar that cannot be drawn is no reason to stop the work.
        let _ = write!(
            self.out,
            "    ({}.{:02}/100%)\r",
            hundredths / 100,
            hundredths % 100
        );
        let _ = self.out.flush();
    }

    /// Ends the bar's line, so that what follows starts on a new one.
    fn finish(&mut self) {
        if self.shown.is_some() {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_percentages_and_ends_the_line() {
        let mut out = Vec::new();
        {
            let mut bar = Bar {
                out: &mut out,
                shown: None,
            };
            bar.draw(0, 4);
            bar.draw(1, 4);
            bar.draw(1, 4);
            bar.draw(4, 4);
            bar.finish();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "    (0.00/100%)\r    (25.00/100%)\r    (100.00/100%)\r\n"
        );
    }
}
