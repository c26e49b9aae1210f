//! The `vhd` command line inside the addon: `bin/vhd.js` (the npm package's `vhd` command)
//! calls [`run_cli`], so that `npx vhd` needs no separate binary.

use napi_derive::napi;

/// Runs the `vhd` command line with `args` (the words after `vhd`) on the process's stdout
/// and stderr, synchronously on the JavaScript thread (a CLI process has nothing else to
/// do), and returns the exit code. Panics are caught and reported as an error exit.
#[napi(js_name = "runCli")]
pub fn run_cli(args: Vec<String>) -> i32 {
    vhd_cli::run_with_std_streams(&args)
}
