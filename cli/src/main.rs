//! The `vhd` program: see the `vhd_cli` library.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(vhd_cli::run_with_std_streams(&args));
}
