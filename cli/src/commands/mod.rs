//! The commands, their help, and choosing one from the command line.

mod cat;
mod check;
mod convert;
mod create;
mod info;
mod maintenance;
mod map;

use crate::args::{self, OptionSpec, Parsed};
use crate::{CliError, Io, PROGRAM};
use std::io::Write;
use std::path::{Path, PathBuf};
use vhd_core::{Image, OpenOptions};

/// One command: its name, help and implementation.
pub struct Command {
    /// The word that selects it: `vhd info`.
    pub name: &'static str,
    /// What follows the name in the usage line, e.g. `[--json] FILE`.
    pub synopsis: &'static str,
    /// One line for `vhd --help`.
    pub summary: &'static str,
    /// Paragraphs for `vhd <command> --help`.
    pub description: &'static str,
    /// The options it accepts (besides `-h`/`--help`).
    pub options: &'static [OptionSpec],
    /// Runs the command; returns the exit code.
    pub run: fn(&Parsed, &mut Io) -> Result<i32, CliError>,
}

/// Every command, in the order `vhd --help` lists them.
const COMMANDS: &[&Command] = &[
    &info::COMMAND,
    &create::COMMAND,
    &convert::COMMAND,
    &map::COMMAND,
    &check::COMMAND,
    &maintenance::COMPACT,
    &maintenance::RESIZE,
    &maintenance::COMMIT,
    &maintenance::REBASE,
    &maintenance::SNAPSHOT,
    &cat::COMMAND,
];

/// Runs the command `args` names.
pub fn dispatch(args: &[String], io: &mut Io) -> Result<i32, CliError> {
    let Some((first, rest)) = args.split_first() else {
        return Err(CliError::usage("", "no command given"));
    };
    match first.as_str() {
        "-h" | "--help" => return print_program_help(io),
        "-V" | "--version" => {
            writeln!(io.stdout, "{PROGRAM} version {}", env!("CARGO_PKG_VERSION"))?;
            return Ok(0);
        }
        // `vhd help` and `vhd help <command>`, as git and npm have.
        "help" => {
            return match rest.first() {
                None => print_program_help(io),
                Some(name) => print_command_help(find(name)?, io),
            }
        }
        // As with qemu-img, a command's options (--parent-root…) follow the command.
        word if word.starts_with('-') => {
            return Err(CliError::usage(
                "",
                format!("unknown option '{word}' (a command's options go after it: {PROGRAM} COMMAND [options] FILE)"),
            ))
        }
        _ => {}
    }
    let command = find(first)?;
    let parsed = args::parse(command.name, command.options, rest)?;
    if parsed.flag("help") {
        return print_command_help(command, io);
    }
    (command.run)(&parsed, io)
}

fn find(name: &str) -> Result<&'static Command, CliError> {
    COMMANDS
        .iter()
        .copied()
        .find(|c| c.name == name)
        .ok_or_else(|| CliError::usage("", format!("unknown command '{name}'")))
}

fn print_program_help(io: &mut Io) -> Result<i32, CliError> {
    let out = &mut io.stdout;
    writeln!(
        out,
        "{PROGRAM} version {}: Microsoft VHD (Virtual Hard Disk) image utility",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        out,
        "usage: {PROGRAM} [--help | --version] COMMAND [command options]"
    )?;
    writeln!(out)?;
    writeln!(out, "Command syntax:")?;
    for command in COMMANDS {
        writeln!(out, "  {} {}", command.name, command.synopsis)?;
    }
    writeln!(out)?;
    writeln!(out, "Commands:")?;
    for command in COMMANDS {
        writeln!(out, "  {:<10}{}", command.name, command.summary)?;
    }
    writeln!(out)?;
    out.write_all(PARAMETERS.as_bytes())?;
    writeln!(out)?;
    writeln!(
        out,
        "Run '{PROGRAM} COMMAND --help' (or '{PROGRAM} help COMMAND') for the details of a command."
    )?;
    Ok(0)
}

/// What the placeholders of the usage lines mean.
const PARAMETERS: &str = "\
Command parameters:
  FILE, SRC, DST  image files; SRC may also be a raw disk image
  SIZE            a size in bytes, optionally with a suffix K, M, G or T (powers of 1024,
                  any case, an optional trailing B or iB: 64M, 10G, 512)
  DIR             --parent-root DIR, taken by every command that opens an image: a parent
                  that an image's locators (or parent name) point to, at any level of the
                  chain, is used only if it lies inside the folder DIR (links and .. resolved);
                  otherwise the command fails with ERR_VHD_PARENT_OUTSIDE_ROOT. Set it for
                  images from untrusted sources. Parents named on the command line (the
                  NEW_PARENT of rebase, the FILE of snapshot, --parent of create) are trusted.
  Exit codes: 0 success, 1 failure (the message is on stderr); check: 2 corrupt, 3 leaks
  Text taken from an image (paths, locator fields, names, messages quoting them) is printed
  with control and invisible formatting characters escaped (\\u{1b}, \\n); JSON output
  escapes the same characters as \\u001b, which parses back to the exact bytes.
";

fn print_command_help(command: &Command, io: &mut Io) -> Result<i32, CliError> {
    let out = &mut io.stdout;
    writeln!(
        out,
        "usage: {PROGRAM} {} {}",
        command.name, command.synopsis
    )?;
    writeln!(out)?;
    writeln!(out, "{}", command.description.trim_end())?;
    writeln!(out)?;
    writeln!(out, "Options:")?;
    for spec in command.options.iter().chain(std::iter::once(&args::HELP)) {
        let mut names = match spec.short {
            Some(short) => format!("-{short}, --{}", spec.long),
            None => format!("    --{}", spec.long),
        };
        if let Some(value) = spec.value {
            names = format!("{names} {value}");
        }
        writeln!(out, "  {names:<28}{}", spec.help)?;
    }
    Ok(0)
}

/// `--parent-root DIR`, which every command that opens an image takes (one spelling, one
/// help line, one meaning: [`OpenOptions::parent_root`]).
pub const PARENT_ROOT: OptionSpec = valued(
    "parent-root",
    "DIR",
    "use only parents inside DIR (for untrusted images)",
);

/// `--allow-remote-parents`, which every command that opens an image takes too.
pub const ALLOW_REMOTE_PARENTS: OptionSpec = flag(
    "allow-remote-parents",
    "Windows: follow parent locators naming network paths (\\\\server\\share)",
);

/// How the command line says to open images and their chains: the defaults (read-write,
/// checksums verified, locked), `--parent-root` and `--allow-remote-parents`. The one
/// place a command gets them.
pub fn open_options(parsed: &Parsed) -> OpenOptions {
    OpenOptions {
        parent_root: parsed.value(PARENT_ROOT.long).map(PathBuf::from),
        allow_remote_parents: parsed.flag(ALLOW_REMOTE_PARENTS.long),
        ..OpenOptions::default()
    }
}

/// [`open_options`] for opening an image only to read it: shared lock.
pub fn read_only(parsed: &Parsed) -> OpenOptions {
    OpenOptions {
        read_only: true,
        ..open_options(parsed)
    }
}

/// Opens the image at `path` read-only, as the command line says.
pub fn open_read_only(parsed: &Parsed, path: &str) -> Result<Image, CliError> {
    Ok(Image::open(Path::new(path), &read_only(parsed))?)
}

/// Parses the size argument `text` of `command`.
pub fn size_argument(command: &'static str, text: &str) -> Result<u64, CliError> {
    crate::size::parse_size(text).map_err(|message| CliError::usage(command, message))
}

/// An option that takes no value.
pub const fn flag(long: &'static str, help: &'static str) -> OptionSpec {
    OptionSpec {
        long,
        short: None,
        value: None,
        help,
    }
}

/// An option that takes a value.
pub const fn valued(long: &'static str, value: &'static str, help: &'static str) -> OptionSpec {
    OptionSpec {
        long,
        short: None,
        value: Some(value),
        help,
    }
}

/// `--json`.
pub const JSON: OptionSpec = flag("json", "print JSON instead of text");

#[cfg(test)]
mod tests {
    use super::COMMANDS;

    /// Shared options (`--parent-root`, `--allow-remote-parents`…) are added to many lists by
    /// hand: none may appear twice in one command's help.
    #[test]
    fn no_command_lists_an_option_twice() {
        for command in COMMANDS {
            let mut names: Vec<&str> = command.options.iter().map(|o| o.long).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(
                names.len(),
                before,
                "{} lists an option twice",
                command.name
            );
        }
    }
}
