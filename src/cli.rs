//! The `vhd` command line inside the addon: `bin/vhd.js` (the npm package's `vhd` command)
//! calls [`run_cli`], so that `npx vhd` needs no separate binary.

use crate::errors::Failure;
use crate::ops::Operation;
use crate::task::Job;
use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct CliState {
    args: Vec<String>,
    cancel: Arc<AtomicBool>,
}

fn cli_work(state: &mut CliState) -> Result<i32, Failure> {
    Ok(vhd_cli::run_with_std_streams(
        &state.args,
        Some(&state.cancel),
    ))
}

/// Runs the `vhd` command line with `args` (the words after `vhd`) on the process's stdout
/// and stderr, on the libuv thread pool so that the JavaScript thread stays free to handle
/// Ctrl-C, and resolves to the exit code. `operation.cancel()` stops a long command (exit
/// code 130, `ERR_VHD_CANCELLED`, files as they were). Panics are reported as an error exit.
#[napi(js_name = "runCli", ts_return_type = "Promise<number>")]
pub fn run_cli(args: Vec<String>, operation: &Operation) -> AsyncTask<Job<CliState, i32>> {
    let state = CliState {
        args,
        cancel: operation.cancel_flag(),
    };
    AsyncTask::new(Job::new(state, cli_work))
}
