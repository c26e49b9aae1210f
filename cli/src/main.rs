//! The `vhd` program: see the `vhd_cli` library. (Ctrl-C ends it at once: the standard
//! library cannot catch signals. The npm package's `vhd` command cancels cleanly instead;
//! the core's operations are crash-safe either way.)

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(vhd_cli::run_with_std_streams(&args, None));
}
