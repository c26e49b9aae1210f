//! An NBD (Network Block Device) server for VHD images and chains: every NBD client (the
//! kernel's `nbd-client`, libnbd's `nbdcopy`, `nbdinfo` and `nbdfuse`, qemu, fio's nbd
//! engine) can then read and write a fixed, dynamic or differencing image, the chain below it
//! included.
//!
//! ```no_run
//! use std::sync::{Arc, RwLock};
//! use vhd_core::{Image, OpenOptions};
//! use vhd_nbd::{Address, ServeOptions, Server};
//!
//! let image = Image::open("child.vhd", &OpenOptions::default())?;
//! let address = Address::Unix("/tmp/child.sock".into());
//! let server = Server::start(Arc::new(RwLock::new(image)), &address, ServeOptions::default())?;
//! println!("serving on {}", server.address()); // nbd+unix:///?socket=/tmp/child.sock
//! server.wait();
//! # Ok::<(), vhd_core::Error>(())
//! ```
//!
//! # The protocol
//!
//! The protocol as `doc/proto.md` of the NetworkBlockDevice/nbd project documents it: the
//! fixed newstyle handshake; the options `NBD_OPT_EXPORT_NAME`, `NBD_OPT_ABORT`,
//! `NBD_OPT_LIST`, `NBD_OPT_INFO`, `NBD_OPT_GO`, `NBD_OPT_STRUCTURED_REPLY`,
//! `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT` (with the one meta context
//! `base:allocation`); the commands `NBD_CMD_READ`, `NBD_CMD_WRITE` (with `NBD_CMD_FLAG_FUA`),
//! `NBD_CMD_DISC`, `NBD_CMD_FLUSH`, `NBD_CMD_TRIM`, `NBD_CMD_WRITE_ZEROES` (with
//! `NBD_CMD_FLAG_NO_HOLE` and `NBD_CMD_FLAG_FAST_ZERO`) and `NBD_CMD_BLOCK_STATUS`. Other
//! options get `NBD_REP_ERR_UNSUP` (`NBD_OPT_STARTTLS` and `NBD_OPT_EXTENDED_HEADERS`
//! included: clients carry on without them), other commands `EINVAL`.
//!
//! The wire format is written here (the [`proto`] module), not taken from a crate: the
//! protocol is small (a few fixed big-endian headers), and the crates on crates.io that speak
//! it (`nbd`, `nbdkit` — a plugin API for the C server, not a server) are either unmaintained,
//! synchronous one-request-at-a-time servers over a `Read + Write + Seek` object, or bindings
//! to C; none does structured replies, meta contexts and pipelined requests over an image
//! shared between connections, which is the whole of the work.
//!
//! # What the commands do to an image
//!
//! - `READ` and `WRITE` go straight to the image's positioned reads and writes
//!   ([`vhd_core::VirtualDisk::read_at`], [`write_at`](vhd_core::VirtualDisk::write_at)).
//! - `FLUSH` is the image's [`flush`](vhd_core::VirtualDisk::flush): durable on reply. A
//!   write with `FUA` is flushed before its reply.
//! - `TRIM` is the image's [`discard`](vhd_core::VirtualDisk::discard) (zeros for fixed and
//!   dynamic images; the parent's data for a differencing image).
//! - `WRITE_ZEROES` allocates nothing where the range already reads as zeros without I/O
//!   ([`reads_without_io`](vhd_core::VirtualDisk::reads_without_io)); with `NO_HOLE` it
//!   writes zeros (blocks holding data keep their allocation; a dynamic image never
//!   allocates a block only to hold zeros); otherwise a dynamic image discards (whole blocks
//!   are unallocated, which read as zeros) and other images write zeros, skipping the blocks
//!   that read as zeros already (discarding in a differencing image would reveal the
//!   parent). With `FAST_ZERO`, a write zeroes that would have to write zeros fails with
//!   `ENOTSUP` and does nothing.
//! - `BLOCK_STATUS` (`base:allocation`) is the chain's allocation map (what `vhd map` and
//!   `qemu-img map` show): ranges no image of the chain holds are `NBD_STATE_HOLE |
//!   NBD_STATE_ZERO`, the others 0 (data).
//!
//! # Connections
//!
//! Each connection has a reader thread and a few workers: requests are answered as they
//! complete, in any order (replies carry the client's handle), one reply at a time on the
//! socket. A read whose bytes are at hand (page cache, holes) is answered by the reader
//! itself; the others go to the workers, several at a time. The buffers requests use are kept and reused: no allocation per request once the
//! connection has warmed up. Any number of connections may share the image: reads and block
//! status run concurrently, writes, trims and flushes one at a time
//! ([`SharedImage`]). Writable exports advertise `NBD_FLAG_CAN_MULTI_CONN` (clients may spread
//! their requests over several connections), because every connection writes into the one
//! shared image and a `FLUSH` on any connection is that image's flush: it makes every write
//! completed on any connection durable.

#![warn(missing_docs)]

mod connection;
pub mod proto;
mod socket;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use vhd_core::{Error, Image, Result};

pub use connection::MAX_PAYLOAD;

/// What a server serves: an image shared with whoever else uses it. All NBD semantics
/// (write zeroes, block status, FUA) are built in this crate on these two accessors.
pub trait SharedImage: Send + Sync + 'static {
    /// Runs `f` with the image under a read lock (reads, block status run concurrently).
    fn with_read(&self, f: &mut dyn FnMut(&Image) -> Result<()>) -> Result<()>;
    /// Runs `f` with the image under a write lock (writes, trim, flush).
    fn with_write(&self, f: &mut dyn FnMut(&mut Image) -> Result<()>) -> Result<()>;
}

impl SharedImage for RwLock<Image> {
    fn with_read(&self, f: &mut dyn FnMut(&Image) -> Result<()>) -> Result<()> {
        // A panic while holding the lock (a bug) leaves the image as the failed call left
        // it: keep serving it, as any other error would.
        let image = self.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&image)
    }
    fn with_write(&self, f: &mut dyn FnMut(&mut Image) -> Result<()>) -> Result<()> {
        let mut image = self
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut image)
    }
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix domain socket at this path (created by [`Server::start`], removed by
    /// [`Server::shutdown`]).
    Unix(PathBuf),
    /// A TCP address; port 0 picks a free port ([`Server::address`] tells which).
    Tcp(SocketAddr),
}

/// The address as an NBD URI (the form `nbdinfo`, `nbdcopy`, `nbdfuse` and `qemu-img` take):
/// `nbd+unix:///?socket=PATH`, `nbd://127.0.0.1:10809/`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => {
                write!(
                    f,
                    "nbd+unix:///?socket={}",
                    uri_query_text(&path.to_string_lossy())
                )
            }
            Address::Tcp(address) => write!(f, "nbd://{address}/"),
        }
    }
}

/// `text` with the characters a URI's query may not hold percent-encoded (RFC 3986: `/`,
/// `:`, `@` and the unreserved characters are kept).
fn uri_query_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/:@!$'()*+,;".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A function called with one line of text per connection (opened, closed, refused).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How a server serves its image.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// The export's name. Clients asking for it or for the default export (the empty name)
    /// get the image; `NBD_OPT_LIST` lists it. Default: empty.
    pub export_name: String,
    /// Serve the image read-only (`NBD_FLAG_READ_ONLY`): writes, trims and write zeroes fail
    /// with `EPERM`. Also the case, whatever this says, for an image that may not be
    /// written ([`Image::read_only_reason`]).
    pub read_only: bool,
    /// Accept a TCP address other than a loopback one. NBD is cleartext and has no
    /// authentication: anyone who can reach the port can read and write the image.
    pub allow_remote: bool,
    /// Called with one line per connection (opened, with the client's address; closed,
    /// with what it did or why it failed).
    pub log: Option<Log>,
    /// Workers per connection: requests of one connection run this many at a time
    /// (0: the default, 4).
    pub workers: usize,
    /// How long a client may take over the handshake before it is disconnected, so that
    /// clients that connect and say nothing cannot hold every connection place (zero: the
    /// default, 10 s, as qemu-nbd's `--handshake-limit`).
    pub handshake_limit: std::time::Duration,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeOptions")
            .field("export_name", &self.export_name)
            .field("read_only", &self.read_only)
            .field("allow_remote", &self.allow_remote)
            .field("log", &self.log.as_ref().map(|_| "Fn(&str)"))
            .field("workers", &self.workers)
            .field("handshake_limit", &self.handshake_limit)
            .finish()
    }
}

/// Fails with [`Error::RemoteAddressRefused`] for a TCP address that is not a loopback one
/// (127.0.0.0/8, `::1`, or a loopback IPv4 address mapped into IPv6) unless `allow_remote`:
/// NBD is cleartext and unauthenticated. The one rule of [`Server::start`], the CLI and
/// JavaScript, which check it before opening the image.
pub fn check_address(address: &Address, allow_remote: bool) -> Result<()> {
    match address {
        Address::Tcp(socket) if !allow_remote && !socket.ip().to_canonical().is_loopback() => {
            Err(Error::RemoteAddressRefused {
                address: socket.ip().to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// A running NBD server: an accept thread, and the threads of each connection.
pub struct Server {
    address: Address,
    shared: Arc<connection::Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
    /// The Unix socket file this server created (removed at shutdown).
    socket_file: Option<PathBuf>,
    state: Mutex<State>,
    stopped: Condvar,
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    ShuttingDown,
    Stopped,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("connections", &self.connections())
            .finish()
    }
}

impl Server {
    /// Binds (Unix socket: refuses to replace an existing file that is not a socket; TCP
    /// port 0 picks one), starts the accept thread, returns at once.
    ///
    /// A TCP address that is not a loopback one is refused unless
    /// [`ServeOptions::allow_remote`]. An existing socket file at a Unix address is replaced
    /// only when no server answers on it (a server that was killed left it behind).
    pub fn start(
        image: Arc<dyn SharedImage>,
        address: &Address,
        options: ServeOptions,
    ) -> Result<Server> {
        check_address(address, options.allow_remote)?;
        // Everything that may fail before binding, so that a failure leaves no socket file.
        let export = connection::Export::new(image, &options)?;
        let (listener, bound) = socket::Listener::bind(address)?;
        let socket_file = match &bound {
            Address::Unix(path) => Some(path.clone()),
            Address::Tcp(_) => None,
        };
        let shared = Arc::new(connection::Shared::new(export, options));
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("nbd-accept".into())
                .spawn(move || connection::accept_loop(listener, shared))
        };
        let accept = match accept {
            Ok(accept) => accept,
            Err(e) => {
                if let Some(path) = &socket_file {
                    let _ = std::fs::remove_file(path);
                }
                return Err(Error::io("starting the NBD accept thread", e));
            }
        };
        Ok(Server {
            address: bound,
            shared,
            accept: Mutex::new(Some(accept)),
            socket_file,
            state: Mutex::new(State::Running),
            stopped: Condvar::new(),
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Whether clients may write: the image may be written and
    /// [`ServeOptions::read_only`] was not set.
    pub fn writable(&self) -> bool {
        self.shared.export.writable
    }

    /// How many connections are open now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting, finishes requests in flight, flushes the image (if writable),
    /// closes connections; idempotent; removes the Unix socket it created.
    ///
    /// Requests already read are carried out and answered; connections then close. A
    /// client that does not read its replies is given a few seconds, then its connection
    /// is cut (its requests still run; their replies are lost). The image is flushed once
    /// every connection is done, so that every write acknowledged is durable when this
    /// returns. A second call (or one from another thread) waits for the first.
    pub fn shutdown(&self) -> Result<()> {
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match *state {
                    State::Running => {
                        *state = State::ShuttingDown;
                        break;
                    }
                    State::ShuttingDown => {
                        state = self.stopped.wait(state).unwrap_or_else(|p| p.into_inner());
                    }
                    State::Stopped => return Ok(()),
                }
            }
        }
        let result = self.stop();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = State::Stopped;
        self.stopped.notify_all();
        result
    }

    fn stop(&self) -> Result<()> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread (blocked in accept) with a connection of our own.
        socket::wake(&self.address);
        if let Some(accept) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = accept.join();
        }
        self.shared.close_all(SHUTDOWN_GRACE);
        let flushed = if self.shared.export.writable {
            self.shared
                .export
                .image
                .with_write(&mut |image| vhd_core::VirtualDisk::flush(image))
        } else {
            Ok(())
        };
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
        flushed
    }

    /// Blocks until shutdown (for the CLI's foreground run).
    pub fn wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while *state != State::Stopped {
            state = self.stopped.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until shutdown or until `timeout` has passed; `true` when the server has
    /// stopped. (What a caller that must also watch something else, a signal flag, polls.)
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (state, _) = self
            .stopped
            .wait_timeout_while(state, timeout, |s| *s != State::Stopped)
            .unwrap_or_else(|p| p.into_inner());
        *state == State::Stopped
    }
}

/// Shuts the server down (flushing the image) if [`Server::shutdown`] was not called.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// How long [`Server::shutdown`] waits for clients to take their last replies before it
/// cuts their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
