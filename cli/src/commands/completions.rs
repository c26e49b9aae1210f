//! `vhd completions SHELL`: a completion script for the shell, from clap's description of
//! the command line (so it always knows every command and option).

use super::COMMAND_HELP;
use crate::{CliError, Io};
use clap_complete::Shell;

const DESCRIPTION: &str = "\
Prints a script that completes vhd's commands, options and their values in SHELL
(bash, zsh, fish, elvish or powershell). For example, in bash:
    source <(vhd completions bash)
or install it where the shell looks, such as
    vhd completions bash > ~/.local/share/bash-completion/completions/vhd
    vhd completions zsh > \"${fpath[1]}/_vhd\"
    vhd completions fish > ~/.config/fish/completions/vhd.fish";

/// `vhd completions`.
#[derive(clap::Args, Debug)]
#[command(
    about = "print a shell completion script (bash, zsh, fish…)",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd completions bash|zsh|fish|elvish|powershell"
)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

pub fn run(args: &CompletionsArgs, io: &mut Io) -> Result<i32, CliError> {
    let mut command = super::command();
    clap_complete::generate(args.shell, &mut command, crate::PROGRAM, &mut *io.stdout);
    Ok(0)
}
