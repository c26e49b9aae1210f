//! The commands, their help, and choosing one from the command line (clap).

mod cat;
mod check;
mod completions;
mod convert;
mod create;
mod info;
mod maintenance;
mod map;
mod partitions;
mod serve;

use crate::args::{usage_error, ChainArgs, FormatArgs};
use crate::{CliError, Io};
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The help of the program: qemu-img's layout (version line, usage, commands).
const PROGRAM_HELP: &str = "\
{name} {version}: Microsoft VHD (Virtual Hard Disk) image utility
usage: {usage}

Commands:
{subcommands}{after-help}
";

/// The help of a command: usage, what it does, its options.
pub const COMMAND_HELP: &str = "\
usage: {usage}

{before-help}{all-args}{after-help}
";

/// What the placeholders of the usage lines mean, and the exit codes.
const PARAMETERS: &str = "\
Command parameters:
  FILE, SRC, DST  image files; SRC may also be a raw disk image
  SIZE            a size in bytes, optionally with a suffix K, M, G or T (powers of 1024,
                  any case, an optional trailing B or iB: 64M, 10G, 512)
  N               --partition N, taken by cat, map and convert: a partition's number as
                  'vhd partitions FILE' lists it (MBR: 1-4 primary, 5 and up logical; GPT:
                  the entry's slot); the command then reads that partition only
  DIR             --parent-root DIR, taken by every command that opens an image: a parent
                  that an image's locators (or parent name) point to, at any level of the
                  chain, is used only if it lies inside the folder DIR (links and .. resolved);
                  otherwise the command fails with ERR_VHD_PARENT_OUTSIDE_ROOT. Set it for
                  images from untrusted sources. Parents named on the command line (--parent,
                  the NEW_PARENT of rebase, the FILE of snapshot) are trusted.
  qemu-img's spellings are accepted where they mean the same: -f vpc, -O raw|vpc,
  -o subformat=fixed|dynamic, --output=json, create -b PARENT, check -r leaks|all,
  -U/--force-share (= --no-lock).
  Exit codes: 0 success, 1 failure (the message is on stderr); check: 2 corrupt, 3 leaks,
  4 the parent chain is broken (missing, replaced or modified parent).
  Text taken from an image (paths, locator fields, names, messages quoting them) is printed
  with control and invisible formatting characters escaped (\\u{1b}, \\n); JSON output
  escapes the same characters as \\u001b, which parses back to the exact bytes.

Run 'vhd COMMAND --help' (or 'vhd help COMMAND') for the details of a command.";

/// The `vhd` command line.
#[derive(Parser, Debug)]
#[command(
    name = "vhd",
    version = concat!("version ", env!("CARGO_PKG_VERSION")),
    override_usage = "vhd [--help | --version] COMMAND [command options]",
    help_template = PROGRAM_HELP,
    after_help = PARAMETERS,
    max_term_width = 100,
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every command, in the order `vhd --help` lists them.
#[derive(Subcommand, Debug)]
enum Command {
    Info(info::InfoArgs),
    Create(create::CreateArgs),
    Convert(convert::ConvertArgs),
    Map(map::MapArgs),
    Partitions(partitions::PartitionsArgs),
    Check(check::CheckArgs),
    Compact(maintenance::CompactArgs),
    Resize(maintenance::ResizeArgs),
    Commit(maintenance::CommitArgs),
    Rebase(maintenance::RebaseArgs),
    Snapshot(maintenance::SnapshotArgs),
    Cat(cat::CatArgs),
    Serve(serve::ServeArgs),
    Completions(completions::CompletionsArgs),
}

/// The image a command reads or changes, and the options every such command takes:
/// qemu-img's `-f`, and how to find and lock the chain.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// The image
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub chain: ChainArgs,
}

/// Parses `args` and runs the command they name; help and version go to stdout.
pub fn dispatch(args: &[String], io: &mut Io) -> Result<i32, CliError> {
    if args.is_empty() {
        return Err(CliError::usage("", "no command given"));
    }
    let words = std::iter::once("vhd").chain(args.iter().map(String::as_str));
    let cli = match Cli::try_parse_from(words) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            write!(io.stdout, "{e}")?;
            return Ok(0);
        }
        Err(e) => return Err(usage_error(&e, args)),
    };
    match cli.command {
        Command::Info(args) => info::run(&args, io),
        Command::Create(args) => create::run(&args, io),
        Command::Convert(args) => convert::run(&args, io),
        Command::Map(args) => map::run(&args, io),
        Command::Partitions(args) => partitions::run(&args, io),
        Command::Check(args) => check::run(&args, io),
        Command::Compact(args) => maintenance::compact(&args, io),
        Command::Resize(args) => maintenance::resize(&args, io),
        Command::Commit(args) => maintenance::commit(&args, io),
        Command::Rebase(args) => maintenance::rebase(&args, io),
        Command::Snapshot(args) => maintenance::snapshot(&args, io),
        Command::Cat(args) => cat::run(&args, io),
        Command::Serve(args) => serve::run(&args, io),
        Command::Completions(args) => completions::run(&args, io),
    }
}

/// The clap description of the whole command line (for completions and tests).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Parses the size argument `text` of `command`.
pub fn size_argument(command: &'static str, text: &str) -> Result<u64, CliError> {
    crate::size::parse_size(text).map_err(|message| CliError::usage(command, message))
}

/// A block size option (`--block-size 2M`) of `command`.
pub fn block_size_argument(command: &'static str, text: &str) -> Result<u32, CliError> {
    u32::try_from(size_argument(command, text)?)
        .map_err(|_| CliError::usage(command, format!("block size {text} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        command().debug_assert();
    }

    /// The names the usage errors know are clap's subcommands, in order.
    #[test]
    fn command_names_are_clap_s() {
        let names: Vec<String> = command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert_eq!(names, crate::args::COMMAND_NAMES);
    }

    /// `-h` and `--help` print the same text for every command (no long-only help).
    #[test]
    fn short_and_long_help_are_the_same() {
        for name in crate::args::COMMAND_NAMES {
            let help = |flag: &str| {
                let error = Cli::try_parse_from(["vhd", name, flag]).unwrap_err();
                assert_eq!(error.kind(), ErrorKind::DisplayHelp);
                error.to_string()
            };
            assert_eq!(help("-h"), help("--help"), "{name}");
        }
    }
}
