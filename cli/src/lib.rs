//! The `vhd` command line: `qemu-img`-style commands for VHD images (info, create, convert,
//! map, check, compact, resize, commit, rebase, snapshot, cat) on top of `vhd-core`.
//!
//! [`run`] is the whole program, with its streams passed in, so that the `vhd` binary, the
//! Node.js addon (`runCli`, behind the npm package's `vhd` command) and the tests run the
//! same code. [`run_with_std_streams`] is what a process calls: the real stdout and stderr,
//! and panics turned into an error exit.
//!
//! Conventions, as in qemu-img: results go to stdout, errors to stderr as
//! `vhd: ERR_CODE: message` with exit code 1 (`check` also exits 2 for a corrupt image,
//! 3 for leaked space only and 4 for a broken parent chain); `--help` after any command describes it.

#![warn(missing_docs)]

mod args;
mod commands;
mod json;
mod picture;
mod progress;
mod size;
mod terminal;

use std::io::Write;
use std::sync::atomic::AtomicBool;

pub use size::{human_size, parse_size};

/// The program's name in messages.
const PROGRAM: &str = "vhd";

/// Where a command writes, and what it knows about the terminal.
pub struct Io<'a> {
    /// Results (text, JSON, or the disk's bytes for `cat`).
    pub stdout: &'a mut dyn Write,
    /// Errors and the progress bar.
    pub stderr: &'a mut (dyn Write + Send),
    /// Whether stderr is a terminal: the progress bar is shown by default only then.
    pub stderr_is_terminal: bool,
    /// Whether stdout is a terminal: `map --picture` is then in colour (unless `NO_COLOR`)
    /// and as wide as the terminal.
    pub stdout_is_terminal: bool,
    /// Set by the caller (on Ctrl-C) to stop a long command (convert, compact, commit,
    /// resize, cat) at its next unit of work: it then fails with `ERR_VHD_CANCELLED`, exit code
    /// 130, leaving every file as it was before it started (but for a block device that
    /// `convert` was writing in place: it keeps what was written).
    pub cancel: Option<&'a AtomicBool>,
}

/// The exit code of a command stopped through [`Io::cancel`]: 128 + SIGINT, what a shell
/// shows for a program ended by Ctrl-C.
pub const CANCELLED_EXIT_CODE: i32 = 130;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// The command line is wrong (unknown command or option, missing argument, bad size).
    Usage {
        /// The command whose help to point at; `None` for the program's.
        command: Option<&'static str>,
        /// What is wrong.
        message: String,
    },
    /// The operation failed.
    Vhd(vhd_core::Error),
    /// Writing the output failed.
    Output(std::io::Error),
}

impl CliError {
    /// A usage error of `command` (empty for the program itself).
    pub fn usage(command: &'static str, message: impl Into<String>) -> CliError {
        CliError::Usage {
            command: (!command.is_empty()).then_some(command),
            message: message.into(),
        }
    }

    /// The stable code printed with the message: for an I/O error the OS error's name
    /// (`ENOENT`, `ENOSPC`, `EROFS`…, as `vhd_core::Error::os_code` gives it, else
    /// `ERR_VHD_IO`); otherwise `vhd_core::Error::code()`, or `ERR_VHD_USAGE` for a wrong
    /// command line.
    pub fn code(&self) -> &'static str {
        match self {
            CliError::Usage { .. } => "ERR_VHD_USAGE",
            CliError::Vhd(e) => e.os_code().unwrap_or(e.code()),
            CliError::Output(e) => {
                // The same error again (an `io::Error` is not `Clone`), to ask its name.
                let same = match e.raw_os_error() {
                    Some(n) => std::io::Error::from_raw_os_error(n),
                    None => std::io::Error::from(e.kind()),
                };
                vhd_core::Error::io("writing the output", same)
                    .os_code()
                    .unwrap_or("ERR_VHD_IO")
            }
        }
    }
}

/// How the command line spells the option a `vhd_core::Hint` suggests: errors of the core
/// say what to do in the caller's terms (`--overwrite`, not `CreateOptions::overwrite`).
fn cli_option(hint: vhd_core::Hint) -> &'static str {
    use vhd_core::Hint;
    match hint {
        Hint::Overwrite => "--overwrite",
        Hint::Force => "--force",
        Hint::IgnoreParentTimestamp => "--ignore-parent-timestamp",
        Hint::NoLock => "--no-lock",
        Hint::SourceRaw => "--from raw",
        Hint::Parent => "--parent PATH",
        Hint::Check => "'vhd check' on it",
        Hint::AllowRemote => "--allow-remote",
        _ => hint.rust_option(),
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage { message, .. } => f.write_str(message),
            CliError::Vhd(e) => f.write_str(&e.message_with(&cli_option)),
            CliError::Output(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl From<vhd_core::Error> for CliError {
    fn from(e: vhd_core::Error) -> CliError {
        CliError::Vhd(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::Output(e)
    }
}

/// Runs the command line `args` (the words after the program name) and returns the exit
/// code: 0 success, 1 failure (the message is on `stderr`), 2 and 3 from `check`.
pub fn run(
    args: &[String],
    stdout: &mut dyn Write,
    stderr: &mut (dyn Write + Send),
    stderr_is_terminal: bool,
) -> i32 {
    let io = Io {
        stdout,
        stderr,
        stderr_is_terminal,
        stdout_is_terminal: false,
        cancel: None,
    };
    run_with_io(args, io)
}

/// [`run`] with every part of [`Io`] given, the stop flag included; a command stopped
/// through it exits with [`CANCELLED_EXIT_CODE`].
pub fn run_with_io(args: &[String], mut io: Io) -> i32 {
    let result = commands::dispatch(args, &mut io).and_then(|code| {
        io.stdout.flush()?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // A reader that went away (`vhd cat disk.vhd | head -c 10`) is not an error.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(error @ CliError::Vhd(vhd_core::Error::Cancelled { .. })) => {
            report(&error, io.stderr);
            CANCELLED_EXIT_CODE
        }
        Err(error) => {
            report(&error, io.stderr);
            1
        }
    }
}

/// Prints `vhd: CODE: message` (and, for usage errors, where to find help).
fn report(error: &CliError, stderr: &mut dyn Write) {
    // Nothing sensible is left to do when stderr itself cannot be written.
    // Messages quote paths and fields of the image: escaped, as all text from files.
    let message = error.to_string();
    let _ = writeln!(
        stderr,
        "{PROGRAM}: {}: {}",
        error.code(),
        terminal::safe(&message)
    );
    if let CliError::Usage { command, .. } = error {
        let help = match command {
            Some(command) => format!("{PROGRAM} {command} --help"),
            None => format!("{PROGRAM} --help"),
        };
        let _ = writeln!(stderr, "Try '{help}' for more information.");
    }
    let _ = stderr.flush();
}

/// [`run`] on the process's stdout and stderr, for the `vhd` binary and the Node.js addon,
/// stopped through `cancel` when given (see [`Io::cancel`]). A panic (a bug) is reported as
/// `vhd: ERR_VHD_INTERNAL: ...` with exit code 1 instead of unwinding into the caller
/// (which, in Node.js, would abort the process).
pub fn run_with_std_streams(args: &[String], cancel: Option<&AtomicBool>) -> i32 {
    use std::io::IsTerminal;
    let outcome = std::panic::catch_unwind(|| {
        let stdout = std::io::stdout();
        let mut stdout = RetryWrites(stdout.lock());
        let stderr_is_terminal = std::io::stderr().is_terminal();
        let stdout_is_terminal = std::io::stdout().is_terminal();
        let mut stderr = RetryWrites(std::io::stderr());
        let io = Io {
            stdout: &mut stdout,
            stderr: &mut stderr,
            stderr_is_terminal,
            stdout_is_terminal,
            cancel,
        };
        run_with_io(args, io)
    });
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let _ = writeln!(
            std::io::stderr(),
            "{PROGRAM}: ERR_VHD_INTERNAL: internal error (a bug in vhd): {}",
            terminal::safe(&message)
        );
        1
    })
}

/// A writer that waits and retries when the file descriptor is non-blocking and full.
///
/// Inside Node.js, stdout and stderr may be pipes that libuv switched to non-blocking
/// mode; a write then fails with `WouldBlock` instead of waiting for the reader.
pub(crate) struct RetryWrites<W>(pub(crate) W);

impl<W: Write> Write for RetryWrites<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        loop {
            match self.0.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }
}
