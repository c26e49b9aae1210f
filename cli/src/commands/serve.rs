//! `vhd serve`: the image (and its chain) as an NBD export, in the foreground.

use super::{Target, COMMAND_HELP};
use crate::terminal::safe;
use crate::{CliError, Io, RetryWrites, PROGRAM};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use vhd_core::{Image, OpenOptions};
use vhd_nbd::{Address, ServeOptions, Server};

const DESCRIPTION: &str = "\
Serves the virtual disk of FILE (a fixed, dynamic or differencing image, with its whole
parent chain) over NBD, the Network Block Device protocol, until interrupted: every NBD
client can then read it and, unless --read-only, write it (writes go into FILE; the
parents of a differencing image are only read). Runs in the foreground and logs one line
per connection on stderr. Ctrl-C (SIGINT) or SIGTERM stops it: no new connection is
accepted, requests in flight are finished, the image is flushed and closed.

Listens on a Unix socket (--socket PATH: created, and removed at the end; an existing
file that is not a stale socket is never replaced) or on a TCP port (--port N, on
127.0.0.1 unless --bind ADDR; port 0 picks a free one). NBD is cleartext and has no
authentication: whoever can connect can read and write the disk. Binding a TCP address
other than a loopback one therefore needs --allow-remote as well.

The export is the default one (any client that names no export gets it), also reachable
as NAME with --export-name. Writes acknowledged are in the image's file (flushed on the
client's flush, or at once with FUA); a FLUSH on any connection makes the writes of
every connection durable, so several connections may be used at once (multi-conn).

Examples (the address is printed when the server starts):
  vhd serve --socket /tmp/disk.sock child.vhd &
  nbdinfo --map 'nbd+unix:///?socket=/tmp/disk.sock'          # allocation map
  nbdcopy 'nbd+unix:///?socket=/tmp/disk.sock' disk.raw        # a copy of the chain
  qemu-img convert -O qcow2 'nbd+unix:///?socket=/tmp/disk.sock' disk.qcow2
  # mount a partition of the chain with the kernel's NBD client (as root):
  modprobe nbd && nbd-client -unix /tmp/disk.sock /dev/nbd0
  mount /dev/nbd0p1 /mnt          # ... umount /mnt; nbd-client -d /dev/nbd0
  # or without root, through FUSE: the disk appears as the file dir/nbd
  mkdir dir && nbdfuse dir 'nbd+unix:///?socket=/tmp/disk.sock' &
  # over TCP (localhost): vhd serve --port 10809 FILE; nbdinfo nbd://127.0.0.1:10809/";

/// `vhd serve`.
#[derive(clap::Args, Debug)]
#[command(
    about = "serve the disk (and its chain) over NBD until interrupted",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd serve (--socket PATH | --port N [--bind ADDR [--allow-remote]]) [--read-only] [--export-name NAME] [-U] [--parent-root DIR] FILE"
)]
pub struct ServeArgs {
    /// Listen on a Unix socket at PATH
    #[arg(long, value_name = "PATH", conflicts_with_all = ["port", "bind"])]
    socket: Option<PathBuf>,
    /// Listen on TCP port N (0: any free port)
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The address to listen on with --port (default 127.0.0.1)
    #[arg(long, value_name = "ADDR", requires = "port")]
    bind: Option<IpAddr>,
    /// Allow --bind to name an address other than a loopback one (NBD is cleartext and
    /// unauthenticated: anyone reaching the port reads and writes the disk)
    #[arg(long)]
    allow_remote: bool,
    /// Serve read-only: clients' writes fail (EPERM) and the image is opened read-only
    #[arg(long, short = 'r')]
    read_only: bool,
    /// The export's name (clients naming no export get it too)
    #[arg(long, value_name = "NAME")]
    export_name: Option<String>,
    // Last, so that the options above are listed under "Options" and the chain's under
    // their own heading.
    #[command(flatten)]
    target: Target,
}

pub fn run(args: &ServeArgs, io: &mut Io) -> Result<i32, CliError> {
    let address = match (&args.socket, args.port) {
        (Some(path), _) => Address::Unix(path.clone()),
        (None, Some(port)) => Address::Tcp(SocketAddr::new(
            args.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port,
        )),
        (None, None) => {
            return Err(CliError::usage(
                "serve",
                "missing --socket PATH or --port N",
            ))
        }
    };
    // Before the image is opened (Server::start checks it again).
    vhd_nbd::check_address(&address, args.allow_remote)?;
    let open = OpenOptions {
        read_only: args.read_only,
        ..args.target.chain.open_options()
    };
    let image = Image::open(&args.target.file, &open)?;
    if let (false, Some(reason)) = (args.read_only, image.read_only_reason()) {
        writeln!(
            io.stderr,
            "{PROGRAM}: warning: serving read-only: {}",
            safe(reason)
        )?;
    }
    let options = ServeOptions {
        export_name: args.export_name.clone().unwrap_or_default(),
        read_only: args.read_only,
        allow_remote: args.allow_remote,
        log: Some(Arc::new(|line: &str| log_line(line))),
        ..ServeOptions::default()
    };
    let server = Server::start(Arc::new(RwLock::new(image)), &address, options)?;
    // Whether clients may write is the server's rule (the option, or an image that may
    // not be written).
    let read_only = !server.writable();
    writeln!(
        io.stderr,
        "{PROGRAM}: serving {} ({}) on {}; Ctrl-C to stop",
        safe(&args.target.file.display().to_string()),
        if read_only { "read-only" } else { "read-write" },
        server.address()
    )?;
    io.stderr.flush()?;
    let signalled = signal_flag(io)?;
    let stop_asked =
        || signalled.load(Ordering::SeqCst) || io.cancel.is_some_and(|c| c.load(Ordering::SeqCst));
    while !server.wait_timeout(Duration::from_millis(100)) {
        if stop_asked() {
            break;
        }
    }
    let (stopping, stopped) = if read_only {
        ("finishing requests", "the image is closed")
    } else {
        (
            "finishing requests, flushing the image",
            "the image is flushed and closed",
        )
    };
    writeln!(io.stderr, "{PROGRAM}: stopping: {stopping}")?;
    server.shutdown()?;
    writeln!(io.stderr, "{PROGRAM}: stopped; {stopped}")?;
    Ok(0)
}

/// A flag SIGINT and SIGTERM set (signal-hook), when the caller has no stop flag of its own
/// ([`Io::cancel`]: the npm `vhd` command sets that one on SIGINT and SIGTERM, and Node
/// handles the signals itself).
fn signal_flag(io: &Io) -> Result<Arc<AtomicBool>, CliError> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    if io.cancel.is_none() {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&flag))
                .map_err(|e| vhd_core::Error::io("installing the SIGINT/SIGTERM handler", e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = io;
    Ok(flag)
}

/// Writes a connection's log line on stderr, as `vhd: LINE` (waiting when stderr is a
/// non-blocking pipe that is full, as inside Node.js).
fn log_line(line: &str) {
    let text = format!("{PROGRAM}: {}\n", safe(line));
    // A line that cannot be written is dropped: the server goes on.
    let _ = RetryWrites(std::io::stderr().lock()).write_all(text.as_bytes());
}
