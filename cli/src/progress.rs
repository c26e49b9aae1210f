//! Progress of long commands on stderr: on a terminal, indicatif's bar (bar, bytes done,
//! rate, time left, redrawn at most [`REDRAWS_PER_SECOND`] times a second); elsewhere, only
//! when `-p` asks, qemu-img's plain `    (42.00/100%)` lines.

use crate::Io;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::io::Write;
use std::sync::{Arc, Mutex};
use vhd_core::ops::Progress;

/// How often at most the terminal bar is redrawn: a terminal is slower than the disk.
pub const REDRAWS_PER_SECOND: u8 = 10;

/// The width the terminal bar assumes when the terminal does not say.
const DEFAULT_WIDTH: u16 = 80;

/// `-p`/`--progress` and `-q`/`--quiet`, taken by every long command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProgressArgs {
    /// Show progress even when stderr is not a terminal, as qemu-img's (NN.NN/100%) lines
    #[arg(short = 'p', long)]
    pub progress: bool,
    /// Show no progress, and print nothing on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Display {
    Nothing,
    /// indicatif's bar: stderr is a terminal.
    Bar,
    /// qemu-img's `(NN.NN/100%)` lines: `-p` without a terminal.
    Lines,
}

/// `--quiet` wins; a terminal gets the bar; otherwise the lines only with `--progress`.
fn display(args: &ProgressArgs, io: &Io) -> Display {
    if args.quiet {
        Display::Nothing
    } else if io.stderr_is_terminal {
        Display::Bar
    } else if args.progress {
        Display::Lines
    } else {
        Display::Nothing
    }
}

/// Runs `operation` with a [`Progress`] that shows its progress on stderr as `args` and the
/// terminal say, and stops it when the caller sets [`Io::cancel`].
pub fn run_with<T>(
    io: &mut Io,
    args: &ProgressArgs,
    operation: impl FnOnce(Progress) -> vhd_core::Result<T>,
) -> vhd_core::Result<T> {
    let mut progress = Progress::default();
    if let Some(cancel) = io.cancel {
        progress = progress.with_cancel(cancel);
    }
    match display(args, io) {
        Display::Nothing => operation(progress),
        Display::Lines => {
            let lines = Mutex::new(Lines {
                out: &mut *io.stderr,
                shown: None,
            });
            let draw = |done: u64, total: u64| {
                if let Ok(mut lines) = lines.lock() {
                    lines.draw(done, total);
                }
            };
            let result = operation(progress.with_callback(&draw));
            let mut lines = lines
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if result.is_ok() {
                lines.draw(1, 1);
            }
            lines.finish();
            result
        }
        Display::Bar => {
            let bar = TerminalBar::new(&mut *io.stderr);
            let result = operation(progress.with_callback(&|done, total| bar.draw(done, total)));
            bar.finish(result.is_ok());
            result
        }
    }
}

/// qemu-img's progress lines: `    (NN.NN/100%)\r`, redrawn when the percentage changes by
/// 0.1 % or more, the line ended at the end.
struct Lines<'a> {
    out: &'a mut (dyn Write + Send),
    /// Hundredths of a percent last drawn.
    shown: Option<u64>,
}

impl Lines<'_> {
    fn draw(&mut self, done: u64, total: u64) {
        let hundredths = match total {
            0 => 10_000,
            _ => (u128::from(done.min(total)) * 10_000 / u128::from(total)) as u64,
        };
        if self.shown.map(|shown| shown / 10) == Some(hundredths / 10) {
            return;
        }
        self.shown = Some(hundredths);
        // A progress line that cannot be drawn is no reason to stop the work.
        let _ = write!(
            self.out,
            "    ({}.{:02}/100%)\r",
            hundredths / 100,
            hundredths % 100
        );
        let _ = self.out.flush();
    }

    /// Ends the line, so that what follows starts on a new one.
    fn finish(&mut self) {
        if self.shown.is_some() {
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }
}

/// indicatif's bar, drawn into a buffer ([`Captured`]) that is copied to the command's
/// stderr after each update: the command's stderr is a borrowed writer (the process's, or a
/// test's), which indicatif cannot own.
struct TerminalBar<'a> {
    bar: ProgressBar,
    drawn: Captured,
    out: Mutex<&'a mut (dyn Write + Send)>,
}

impl<'a> TerminalBar<'a> {
    fn new(out: &'a mut (dyn Write + Send)) -> TerminalBar<'a> {
        let drawn = Captured::default();
        let target =
            ProgressDrawTarget::term_like_with_hz(Box::new(drawn.clone()), REDRAWS_PER_SECOND);
        let style = ProgressStyle::with_template(
            "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("█▉▊▋▌▍▎▏ ");
        let bar = ProgressBar::with_draw_target(None, target).with_style(style);
        TerminalBar {
            bar,
            drawn,
            out: Mutex::new(out),
        }
    }

    /// Moves the bar to `done` of `total` bytes; indicatif redraws it when it is time to.
    fn draw(&self, done: u64, total: u64) {
        if self.bar.length() != Some(total) {
            self.bar.set_length(total);
        }
        self.bar.set_position(done.min(total));
        self.flush();
    }

    /// Draws the bar full (`done`) or where it stopped, and leaves it on its line.
    fn finish(&self, done: bool) {
        if done {
            if let Some(total) = self.bar.length() {
                self.bar.set_position(total);
            }
            self.bar.finish();
        } else {
            self.bar.abandon();
        }
        self.flush();
        // What follows (the command's result, an error) starts on a line of its own.
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out);
        }
    }

    /// Copies what indicatif drew to stderr.
    fn flush(&self) {
        let bytes = self.drawn.take();
        if bytes.is_empty() {
            return;
        }
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(&bytes);
            let _ = out.flush();
        }
    }
}

/// A terminal for indicatif that records what it writes (the bar and the VT100 cursor
/// moves) for [`TerminalBar`] to copy out.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn push(&self, text: &str) -> std::io::Result<()> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(text.as_bytes());
        }
        Ok(())
    }

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut buffer| std::mem::take(&mut *buffer))
            .unwrap_or_default()
    }

    fn cursor(&self, n: usize, code: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.push(&format!("\x1b[{n}{code}"))
    }
}

impl TermLike for Captured {
    fn width(&self) -> u16 {
        console::Term::stderr()
            .size_checked()
            .map_or(DEFAULT_WIDTH, |(_, columns)| columns)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.cursor(n, 'D')
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.push(s)?;
        self.push("\n")
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.push(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.push("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_draw_percentages_and_end_the_line() {
        let mut out = Vec::new();
        {
            let mut lines = Lines {
                out: &mut out,
                shown: None,
            };
            lines.draw(0, 4);
            lines.draw(1, 4);
            lines.draw(1, 4);
            lines.draw(4, 4);
            lines.finish();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "    (0.00/100%)\r    (25.00/100%)\r    (100.00/100%)\r\n"
        );
    }

    /// Updates every millisecond for over a second draw the bar about ten times a second,
    /// not a thousand: indicatif keeps to [`REDRAWS_PER_SECOND`] (after a first burst of at
    /// most 20 draws, its leaky bucket's capacity). The end is drawn full, with bytes, rate
    /// and time left, and the line is ended.
    #[test]
    fn the_bar_is_redrawn_at_most_ten_times_a_second() {
        const BURST: usize = 20;
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        let mut updates = 0u64;
        {
            let bar = TerminalBar::new(&mut out);
            while started.elapsed() < std::time::Duration::from_millis(1500) {
                bar.draw(updates << 20, 1000 << 20);
                updates = (updates + 1).min(999);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            bar.finish(true);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let text = String::from_utf8(out).unwrap();
        let draws = text.matches("/1000.00 MiB ").count();
        let allowed = BURST + (elapsed * f64::from(REDRAWS_PER_SECOND)).ceil() as usize + 2;
        assert!(
            draws >= 10 && draws <= allowed,
            "{draws} draws in {elapsed} s (at most {allowed}): {text:?}"
        );
        assert!(text.ends_with('\n'), "{text:?}");
        assert!(text.contains("1000.00 MiB/1000.00 MiB"), "{text:?}");
        assert!(text.contains("ETA"), "{text:?}");
        assert!(text.contains('█'), "{text:?}");
    }
}
