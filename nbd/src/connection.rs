//! One client's connection: the handshake (option haggling), then the transmission phase,
//! where a reader thread takes requests off the socket and a few workers carry them out and
//! write their replies, one at a time, as they complete.

use crate::proto::{self, cmd, cmd_flag, errno, flags, info, opt, rep, reply, state};
use crate::socket::{Listener, Stream};
use crate::{ServeOptions, SharedImage};
use std::io::{self, BufReader, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use vhd_core::ops::{AllocatedRange, RangeCursor};
use vhd_core::{DiskType, Error, Image, Result, VirtualDisk};

/// The largest payload of a request or reply (`NBD_CMD_WRITE`, `NBD_CMD_READ`): the maximum
/// block size advertised, 32 MiB (what clients assume when none is advertised). Longer
/// reads and writes fail with `EOVERFLOW`; trims, write zeroes and block status, which carry
/// no payload, may be longer.
pub const MAX_PAYLOAD: u32 = 32 << 20;
/// The preferred block size advertised.
const PREFERRED_BLOCK: u32 = 4096;
/// The most bytes of request payloads (write data, read buffers) one connection holds at a
/// time: a client that pipelines large requests waits for earlier ones to complete, so that
/// no client can make the server hold more than this per connection.
const BYTES_IN_FLIGHT: u64 = 2 * MAX_PAYLOAD as u64;
/// Requests read and not yet taken by a worker, per connection.
const QUEUE: usize = 64;
/// Default workers per connection.
const WORKERS: usize = 4;
/// The most connections open at once; more are closed at once (and logged).
const MAX_CONNECTIONS: usize = 256;
/// How long the handshake may take by default (qemu-nbd's `--handshake-limit` is 10 s too).
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest option data accepted in the handshake (names and queries are at most 4 KiB
/// each); longer options are read, dropped and answered `NBD_REP_ERR_TOO_BIG`.
const MAX_OPTION: u32 = 64 << 10;
/// The most extents one `NBD_CMD_BLOCK_STATUS` reply describes (the client asks again for
/// the rest).
const MAX_EXTENTS: usize = 8192;
/// Buffers kept for reuse per connection: how many, the largest one kept, and the most
/// bytes kept in all.
const POOL_BUFFERS: usize = 16;
const POOL_LARGEST: usize = 8 << 20;
const POOL_BYTES: usize = 32 << 20;

/// What is served: the image and what clients are told of it.
pub(crate) struct Export {
    pub(crate) image: Arc<dyn SharedImage>,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) writable: bool,
    disk_type: DiskType,
    /// The block size of a dynamic or differencing image (write zeroes works per block).
    block_size: Option<u64>,
}

impl Export {
    pub(crate) fn new(image: Arc<dyn SharedImage>, options: &ServeOptions) -> Result<Export> {
        let mut facts = None;
        image.with_read(&mut |image| {
            facts = Some((
                image.size(),
                image.read_only_reason().is_none(),
                image.disk_type(),
                image.header().map(|h| u64::from(h.block_size)),
            ));
            Ok(())
        })?;
        let (size, can_write, disk_type, block_size) =
            facts.expect("with_read runs the closure or fails");
        if options.export_name.len() > proto::MAX_STRING {
            return Err(Error::InvalidArgument {
                name: "export name",
                reason: format!(
                    "longer than {} bytes (UTF-8), the longest string NBD carries",
                    proto::MAX_STRING
                ),
            });
        }
        Ok(Export {
            image,
            name: options.export_name.clone(),
            size,
            writable: can_write && !options.read_only,
            disk_type,
            block_size,
        })
    }

    /// Whether a client asking for `name` gets this export: its own name, or the default
    /// export (the empty name).
    fn is_named(&self, name: &[u8]) -> bool {
        name.is_empty() || name == self.name.as_bytes()
    }

    /// The transmission flags.
    fn flags(&self, structured: bool) -> u16 {
        let mut f = flags::HAS_FLAGS | flags::SEND_FLUSH | flags::CAN_MULTI_CONN;
        if self.writable {
            f |= flags::SEND_FUA
                | flags::SEND_TRIM
                | flags::SEND_WRITE_ZEROES
                | flags::SEND_FAST_ZERO;
        } else {
            f |= flags::READ_ONLY;
        }
        if structured {
            f |= flags::SEND_DF;
        }
        f
    }
}

/// What the server and its connections share.
pub(crate) struct Shared {
    pub(crate) export: Export,
    options: ServeOptions,
    pub(crate) connections: AtomicUsize,
    pub(crate) stopping: AtomicBool,
    /// A handle on each open connection's socket, to stop it at shutdown.
    open: Mutex<Vec<(u64, Stream)>>,
    closed: Condvar,
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(export: Export, options: ServeOptions) -> Shared {
        Shared {
            export,
            options,
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            closed: Condvar::new(),
            next_id: AtomicU64::new(1),
        }
    }

    fn log(&self, line: &str) {
        if let Some(log) = &self.options.log {
            log(line);
        }
    }

    /// Ends every connection: each stops reading requests, finishes those it has and
    /// closes; connections still open after `grace` (a client that does not read its
    /// replies) are cut. Returns once every connection thread is done.
    pub(crate) fn close_all(&self, grace: Duration) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for (_, stream) in open.iter() {
            stream.shutdown(Shutdown::Read);
        }
        let deadline = Instant::now() + grace;
        while !open.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            open = self
                .closed
                .wait_timeout(open, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        for (_, stream) in open.iter() {
            stream.shutdown(Shutdown::Both);
        }
        while !open.is_empty() {
            open = self.closed.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Accepts connections until the server stops, each on a thread of its own.
pub(crate) fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, a connection reset before it was accepted: the
                // listener itself is fine; try again shortly.
                shared.log(&format!("accepting a connection failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let handle = match stream.try_clone() {
            Ok(handle) => handle,
            Err(e) => {
                shared.log(&format!("connection {id} from {peer}: refused: {e}"));
                continue;
            }
        };
        {
            let mut open = shared.open.lock().unwrap_or_else(|p| p.into_inner());
            if open.len() >= MAX_CONNECTIONS {
                shared.log(&format!(
                    "connection {id} from {peer}: refused: {MAX_CONNECTIONS} connections are open"
                ));
                continue;
            }
            open.push((id, handle));
            shared.connections.fetch_add(1, Ordering::SeqCst);
        }
        let thread_shared = Arc::clone(&shared);
        let thread_peer = peer.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("nbd-conn-{id}"))
            .spawn(move || {
                let summary = serve(stream, &thread_shared);
                thread_shared.log(&format!("connection {id} from {thread_peer}: {summary}"));
                let mut open = thread_shared.open.lock().unwrap_or_else(|p| p.into_inner());
                open.retain(|(other, _)| *other != id);
                thread_shared.connections.fetch_sub(1, Ordering::SeqCst);
                thread_shared.closed.notify_all();
            });
        if let Err(e) = spawned {
            shared.log(&format!("connection {id} from {peer}: refused: {e}"));
            let mut open = shared.open.lock().unwrap_or_else(|p| p.into_inner());
            open.retain(|(other, _)| *other != id);
            shared.connections.fetch_sub(1, Ordering::SeqCst);
            shared.closed.notify_all();
        }
    }
}

/// What the handshake agreed on.
#[derive(Debug, Default, Clone, Copy)]
struct Session {
    structured: bool,
    base_allocation: bool,
}

/// What a connection did, for its log line.
#[derive(Debug, Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

/// Serves one connection to its end; returns the log line's text.
fn serve(mut stream: Stream, shared: &Shared) -> String {
    // A client that connects and then says nothing would hold one of the
    // MAX_CONNECTIONS places (and a thread) for ever: the handshake has a time limit.
    let limit = match shared.options.handshake_limit {
        std::time::Duration::ZERO => HANDSHAKE_LIMIT,
        limit => limit,
    };
    let session = match stream
        .set_read_timeout(Some(limit))
        .and_then(|()| handshake(&mut stream, shared))
    {
        Ok(Some(session)) => session,
        Ok(None) => return "closed during the handshake".into(),
        Err(e) if is_timeout(&e) => {
            return format!("handshake failed: the client took more than {:?}", limit)
        }
        Err(e) => return format!("handshake failed: {e}"),
    };
    if let Err(e) = stream.set_read_timeout(None) {
        return format!("handshake failed: {e}");
    }
    let tally = Tally::default();
    let outcome = transmission(stream, shared, session, &tally);
    let counts = format!(
        "{} requests ({} failed), {} bytes read, {} bytes written",
        tally.requests.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        tally.bytes_read.load(Ordering::Relaxed),
        tally.bytes_written.load(Ordering::Relaxed),
    );
    match outcome {
        Ok(how) => format!("{counts}; {how}"),
        Err(e) => format!("{counts}; closed: {e}"),
    }
}

// ---- handshake ----

/// A read that ran out of time (`WouldBlock` on Unix, `TimedOut` on Windows).
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

/// Reads and drops `length` bytes.
fn skip(r: &mut impl Read, length: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.by_ref().take(length), &mut io::sink())?;
    if copied < length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Sends an option reply.
fn option_reply(w: &mut impl Write, option: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut message = Vec::with_capacity(20 + data.len());
    message.extend_from_slice(&proto::OPTION_REPLY_MAGIC.to_be_bytes());
    message.extend_from_slice(&option.to_be_bytes());
    message.extend_from_slice(&kind.to_be_bytes());
    message.extend_from_slice(&(data.len() as u32).to_be_bytes());
    message.extend_from_slice(data);
    w.write_all(&message)
}

/// An option's data, read as its fields (big-endian integers, strings): `None` when it
/// ends early.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u16(&mut self) -> Option<u16> {
        let (head, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*head))
    }
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    /// A string: a 32-bit length, then that many bytes (at most 4 KiB).
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        if n > proto::MAX_STRING {
            return None;
        }
        self.bytes(n)
    }
}

/// The fixed newstyle handshake: `Some` when the client entered the transmission phase,
/// `None` when it ended the handshake (`NBD_OPT_ABORT`, or it went away between options).
fn handshake(stream: &mut Stream, shared: &Shared) -> io::Result<Option<Session>> {
    let export = &shared.export;
    let mut greeting = [0u8; 18];
    greeting[..8].copy_from_slice(&proto::NBDMAGIC.to_be_bytes());
    greeting[8..16].copy_from_slice(&proto::IHAVEOPT.to_be_bytes());
    greeting[16..]
        .copy_from_slice(&(proto::FLAG_FIXED_NEWSTYLE | proto::FLAG_NO_ZEROES).to_be_bytes());
    stream.write_all(&greeting)?;
    let client_flags = read_u32(stream)?;
    if client_flags & !(proto::FLAG_C_FIXED_NEWSTYLE | proto::FLAG_C_NO_ZEROES) != 0 {
        return Err(invalid(format!("unknown client flags {client_flags:#x}")));
    }
    let fixed = client_flags & proto::FLAG_C_FIXED_NEWSTYLE != 0;
    let no_zeroes = client_flags & proto::FLAG_C_NO_ZEROES != 0;
    let mut session = Session::default();
    loop {
        let magic = match read_u64(stream) {
            Ok(magic) => magic,
            // A client may go away between options (after NBD_OPT_LIST, say).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        };
        if magic != proto::IHAVEOPT {
            return Err(invalid(format!("bad option magic {magic:#x}")));
        }
        let option = read_u32(stream)?;
        let length = read_u32(stream)?;
        if length > MAX_OPTION {
            if !fixed {
                return Err(invalid("option too long"));
            }
            skip(stream, u64::from(length))?;
            option_reply(stream, option, rep::ERR_TOO_BIG, b"option data too long")?;
            continue;
        }
        let mut data = vec![0; length as usize];
        stream.read_exact(&mut data)?;
        if option == opt::EXPORT_NAME {
            // No error can be told here: an unknown export ends the connection.
            if !export.is_named(&data) || shared.stopping.load(Ordering::SeqCst) {
                return Err(invalid("NBD_OPT_EXPORT_NAME of an unknown export"));
            }
            let mut reply = Vec::with_capacity(10 + 124);
            reply.extend_from_slice(&export.size.to_be_bytes());
            reply.extend_from_slice(&export.flags(session.structured).to_be_bytes());
            if !no_zeroes {
                reply.resize(10 + 124, 0);
            }
            stream.write_all(&reply)?;
            return Ok(Some(session));
        }
        if !fixed {
            // Without fixed newstyle, an unknown option can only be answered by closing.
            return Err(invalid(format!("option {option} without fixed newstyle")));
        }
        if shared.stopping.load(Ordering::SeqCst) && option != opt::ABORT {
            option_reply(
                stream,
                option,
                rep::ERR_SHUTDOWN,
                b"the server is shutting down",
            )?;
            continue;
        }
        match option {
            opt::ABORT => {
                // The client may close without waiting for this.
                let _ = option_reply(stream, option, rep::ACK, &[]);
                return Ok(None);
            }
            opt::LIST => {
                if !data.is_empty() {
                    option_reply(
                        stream,
                        option,
                        rep::ERR_INVALID,
                        b"NBD_OPT_LIST takes no data",
                    )?;
                    continue;
                }
                let name = export.name.as_bytes();
                let mut server = Vec::with_capacity(4 + name.len());
                server.extend_from_slice(&(name.len() as u32).to_be_bytes());
                server.extend_from_slice(name);
                option_reply(stream, option, rep::SERVER, &server)?;
                option_reply(stream, option, rep::ACK, &[])?;
            }
            opt::STRUCTURED_REPLY => {
                if !data.is_empty() {
                    option_reply(
                        stream,
                        option,
                        rep::ERR_INVALID,
                        b"NBD_OPT_STRUCTURED_REPLY takes no data",
                    )?;
                    continue;
                }
                session.structured = true;
                option_reply(stream, option, rep::ACK, &[])?;
            }
            opt::INFO | opt::GO => {
                if go_or_info(stream, option, &data, export, session)? && option == opt::GO {
                    return Ok(Some(session));
                }
            }
            opt::LIST_META_CONTEXT | opt::SET_META_CONTEXT => {
                meta_context(stream, option, &data, export, &mut session)?;
            }
            _ => {
                let message = match option {
                    opt::STARTTLS => "TLS is not supported (NBD is cleartext here)",
                    opt::EXTENDED_HEADERS => "extended headers are not supported",
                    _ => "unknown option",
                };
                option_reply(stream, option, rep::ERR_UNSUP, message.as_bytes())?;
            }
        }
    }
}

/// The data of `NBD_OPT_INFO`/`NBD_OPT_GO` and of the meta-context options: an export name,
/// a count (read by `count`) and that many items (each read by `item`). A malformed one is
/// answered `NBD_REP_ERR_INVALID` with the message `malformed`, one naming another export `NBD_REP_ERR_UNKNOWN`, and
/// gives `None`; otherwise the items. The count cannot make it loop past the data: each
/// item read consumes some of it, and a missing one ends the parse.
fn export_query<'a, T>(
    stream: &mut Stream,
    option: u32,
    malformed: &[u8],
    data: &'a [u8],
    export: &Export,
    count: impl Fn(&mut Fields<'a>) -> Option<u32>,
    item: impl Fn(&mut Fields<'a>) -> Option<T>,
) -> io::Result<Option<Vec<T>>> {
    let mut fields = Fields(data);
    let parsed = (|| {
        let name = fields.string()?;
        let count = count(&mut fields)?;
        let mut items = Vec::new();
        for _ in 0..count {
            items.push(item(&mut fields)?);
        }
        fields.0.is_empty().then_some((name, items))
    })();
    let Some((name, items)) = parsed else {
        option_reply(stream, option, rep::ERR_INVALID, malformed)?;
        return Ok(None);
    };
    if !export.is_named(name) {
        option_reply(stream, option, rep::ERR_UNKNOWN, b"no export of that name")?;
        return Ok(None);
    }
    Ok(Some(items))
}

/// `NBD_OPT_INFO` and `NBD_OPT_GO`: describes the export; `true` when it was found (and,
/// for GO, the transmission phase begins).
fn go_or_info(
    stream: &mut Stream,
    option: u32,
    data: &[u8],
    export: &Export,
    session: Session,
) -> io::Result<bool> {
    let count = |fields: &mut Fields| fields.u16().map(u32::from);
    let malformed = b"malformed NBD_OPT_INFO/NBD_OPT_GO";
    let Some(requests) = export_query(stream, option, malformed, data, export, count, Fields::u16)?
    else {
        return Ok(false);
    };
    let mut item = Vec::with_capacity(64);
    item.extend_from_slice(&info::EXPORT.to_be_bytes());
    item.extend_from_slice(&export.size.to_be_bytes());
    item.extend_from_slice(&export.flags(session.structured).to_be_bytes());
    option_reply(stream, option, rep::INFO, &item)?;
    if requests.contains(&info::NAME) {
        item.clear();
        item.extend_from_slice(&info::NAME.to_be_bytes());
        item.extend_from_slice(export.name.as_bytes());
        option_reply(stream, option, rep::INFO, &item)?;
    }
    if requests.contains(&info::DESCRIPTION) {
        item.clear();
        item.extend_from_slice(&info::DESCRIPTION.to_be_bytes());
        item.extend_from_slice(format!("{} VHD image", export.disk_type.name()).as_bytes());
        option_reply(stream, option, rep::INFO, &item)?;
    }
    // Sent whether asked for or not (the values are the defaults a client assumes anyway).
    item.clear();
    item.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
    item.extend_from_slice(&1u32.to_be_bytes());
    item.extend_from_slice(&PREFERRED_BLOCK.to_be_bytes());
    item.extend_from_slice(&MAX_PAYLOAD.to_be_bytes());
    option_reply(stream, option, rep::INFO, &item)?;
    option_reply(stream, option, rep::ACK, &[])?;
    Ok(true)
}

/// `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`: `base:allocation` is the one
/// context (a query for `base:` lists it too); other namespaces select nothing.
fn meta_context(
    stream: &mut Stream,
    option: u32,
    data: &[u8],
    export: &Export,
    session: &mut Session,
) -> io::Result<()> {
    if !session.structured {
        option_reply(
            stream,
            option,
            rep::ERR_INVALID,
            b"negotiate structured replies first",
        )?;
        return Ok(());
    }
    let malformed = b"malformed meta context option";
    let Some(queries) = export_query(
        stream,
        option,
        malformed,
        data,
        export,
        Fields::u32,
        Fields::string,
    )?
    else {
        return Ok(());
    };
    let base = proto::BASE_ALLOCATION.as_bytes();
    let selected = if option == opt::LIST_META_CONTEXT {
        queries.is_empty() || queries.iter().any(|q| *q == base || *q == b"base:")
    } else {
        queries.contains(&base)
    };
    if selected {
        let id = if option == opt::SET_META_CONTEXT {
            proto::BASE_ALLOCATION_ID
        } else {
            0
        };
        let mut context = Vec::with_capacity(4 + base.len());
        context.extend_from_slice(&id.to_be_bytes());
        context.extend_from_slice(base);
        option_reply(stream, option, rep::META_CONTEXT, &context)?;
    }
    if option == opt::SET_META_CONTEXT {
        session.base_allocation = selected;
    }
    option_reply(stream, option, rep::ACK, &[])
}

// ---- transmission ----

/// A request taken off the socket, with its write data.
struct Request {
    command: u16,
    flags: u16,
    cookie: u64,
    offset: u64,
    length: u32,
    /// Write data (`WRITE`), or a buffer from the pool for the read data (`READ`).
    buffer: Vec<u8>,
    /// An error decided when the request was read (an oversize write, whose data was
    /// dropped).
    refused: Option<u32>,
    /// Bytes of the connection's budget this request holds.
    budget: u64,
}

/// What the reader and the workers of one connection share.
struct Connection<'a> {
    shared: &'a Shared,
    session: Session,
    tally: &'a Tally,
    writer: Mutex<Stream>,
    /// Buffers for reuse, and the bytes they hold.
    pool: Mutex<(Vec<Vec<u8>>, usize)>,
    /// Bytes of payload held now, and the condition the reader waits on when it is over
    /// [`BYTES_IN_FLIGHT`].
    budget: Mutex<u64>,
    budget_freed: Condvar,
    /// Set once a reply could not be written: the socket is gone.
    broken: AtomicBool,
}

impl Connection<'_> {
    fn take_buffer(&self, length: usize) -> Vec<u8> {
        let mut buffer = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let buffer = pool.0.pop().unwrap_or_default();
            pool.1 -= buffer.capacity();
            buffer
        };
        // Buffers keep their length, so that a reused one is not filled with zeros again.
        if buffer.len() < length {
            buffer.resize(length, 0);
        }
        buffer
    }

    fn give_buffer(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > POOL_LARGEST {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.0.len() < POOL_BUFFERS && pool.1 + buffer.capacity() <= POOL_BYTES {
            pool.1 += buffer.capacity();
            pool.0.push(buffer);
        }
    }

    fn acquire(&self, bytes: u64) {
        let mut held = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        while *held > 0 && *held + bytes > BYTES_IN_FLIGHT {
            held = self
                .budget_freed
                .wait(held)
                .unwrap_or_else(|p| p.into_inner());
        }
        *held += bytes;
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut held = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        *held -= bytes;
        self.budget_freed.notify_one();
    }

    /// Writes every slice, in order, as one message on the socket.
    fn send(&self, parts: &mut [IoSlice<'_>]) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut parts = parts;
        // Skip empty slices first: a write of nothing would look like a closed socket.
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            match writer.write_vectored(parts) {
                Ok(0) => {
                    self.broken.store(true, Ordering::Relaxed);
                    return;
                }
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The client is gone (or was cut at shutdown): stop reading from it too.
                    self.broken.store(true, Ordering::Relaxed);
                    writer.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }

    /// A simple reply (error 0 for success), with `data` after it (a read's).
    fn simple_reply(&self, cookie: u64, error: u32, data: &[u8]) {
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&proto::SIMPLE_REPLY_MAGIC.to_be_bytes());
        header[4..8].copy_from_slice(&error.to_be_bytes());
        header[8..].copy_from_slice(&cookie.to_be_bytes());
        self.send(&mut [IoSlice::new(&header), IoSlice::new(data)]);
    }

    /// One structured reply chunk: `head` and `data` are its payload.
    fn chunk(&self, cookie: u64, flags: u16, kind: u16, head: &[u8], data: &[u8]) {
        let mut header = [0u8; 20];
        header[..4].copy_from_slice(&proto::STRUCTURED_REPLY_MAGIC.to_be_bytes());
        header[4..6].copy_from_slice(&flags.to_be_bytes());
        header[6..8].copy_from_slice(&kind.to_be_bytes());
        header[8..16].copy_from_slice(&cookie.to_be_bytes());
        header[16..].copy_from_slice(&((head.len() + data.len()) as u32).to_be_bytes());
        self.send(&mut [
            IoSlice::new(&header),
            IoSlice::new(head),
            IoSlice::new(data),
        ]);
    }

    /// The reply to a request that failed with `error`.
    fn error_reply(&self, request: &Request, error: u32, message: &str) {
        self.tally.errors.fetch_add(1, Ordering::Relaxed);
        if self.session.structured {
            let message = &message.as_bytes()[..message.len().min(4096)];
            let mut head = [0u8; 6];
            head[..4].copy_from_slice(&error.to_be_bytes());
            head[4..].copy_from_slice(&(message.len() as u16).to_be_bytes());
            self.chunk(
                request.cookie,
                reply::FLAG_DONE,
                reply::TYPE_ERROR,
                &head,
                message,
            );
        } else {
            // A simple reply to a failed read carries no data.
            self.simple_reply(request.cookie, error, &[]);
        }
    }

    /// The reply to a request that succeeded with no data.
    fn done_reply(&self, cookie: u64) {
        if self.session.structured {
            self.chunk(cookie, reply::FLAG_DONE, reply::TYPE_NONE, &[], &[]);
        } else {
            self.simple_reply(cookie, 0, &[]);
        }
    }
}

/// The transmission phase: reads requests until the client disconnects (or the server
/// stops), while the workers carry them out; returns how it ended.
fn transmission(
    stream: Stream,
    shared: &Shared,
    session: Session,
    tally: &Tally,
) -> io::Result<String> {
    let writer = stream.try_clone()?;
    let connection = Connection {
        shared,
        session,
        tally,
        writer: Mutex::new(writer),
        pool: Mutex::new((Vec::new(), 0)),
        budget: Mutex::new(0),
        budget_freed: Condvar::new(),
        broken: AtomicBool::new(false),
    };
    let workers = match shared.options.workers {
        0 => WORKERS,
        n => n,
    };
    let (sender, receiver) = sync_channel::<Request>(QUEUE);
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| worker(&connection, &receiver));
        }
        let outcome = read_requests(stream, &connection, sender);
        // Dropping the sender (done in read_requests) lets the workers finish the queue
        // and end; the scope waits for them.
        outcome
    })
}

/// The reader: takes requests off the socket and queues them for the workers.
fn read_requests(
    stream: Stream,
    connection: &Connection,
    sender: SyncSender<Request>,
) -> io::Result<String> {
    let export = &connection.shared.export;
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let mut header = [0u8; 28];
    loop {
        if connection.broken.load(Ordering::Relaxed) {
            return Ok("the client stopped taking replies".into());
        }
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(if connection.shared.stopping.load(Ordering::SeqCst) {
                    "closed by the server's shutdown".into()
                } else {
                    "the client went away without NBD_CMD_DISC".into()
                });
            }
            Err(e) => return Err(e),
        }
        let magic = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
        if magic != proto::REQUEST_MAGIC {
            // Nothing after a bad header can be trusted to be a request: hang up.
            return Err(invalid(format!("bad request magic {magic:#x}")));
        }
        let flags = u16::from_be_bytes([header[4], header[5]]);
        let command = u16::from_be_bytes([header[6], header[7]]);
        let cookie = u64::from_be_bytes(header[8..16].try_into().expect("8 bytes"));
        let offset = u64::from_be_bytes(header[16..24].try_into().expect("8 bytes"));
        let length = u32::from_be_bytes(header[24..28].try_into().expect("4 bytes"));
        if command == cmd::DISC {
            return Ok("disconnected (NBD_CMD_DISC)".into());
        }
        connection.tally.requests.fetch_add(1, Ordering::Relaxed);
        let mut request = Request {
            command,
            flags,
            cookie,
            offset,
            length,
            buffer: Vec::new(),
            refused: None,
            budget: 0,
        };
        let carries_data = matches!(command, cmd::READ | cmd::WRITE) && length <= MAX_PAYLOAD;
        if carries_data {
            request.budget = u64::from(length);
            connection.acquire(request.budget);
            request.buffer = connection.take_buffer(length as usize);
        }
        if command == cmd::WRITE {
            if length > MAX_PAYLOAD {
                // The data must still be taken off the socket to find the next request.
                skip(&mut reader, u64::from(length))?;
                request.refused = Some(errno::EOVERFLOW);
            } else if let Err(e) = reader.read_exact(&mut request.buffer[..length as usize]) {
                // A write cut short is never carried out.
                connection.release(request.budget);
                return Err(e);
            } else if !export.writable {
                request.refused = Some(errno::EPERM);
            }
        }
        if command == cmd::READ
            && request.buffer.len() >= length as usize
            && read_now(connection, &mut request)
        {
            connection.release(request.budget);
            connection.give_buffer(std::mem::take(&mut request.buffer));
            continue;
        }
        if sender.send(request).is_err() {
            return Err(io::Error::other("the workers stopped"));
        }
    }
}

/// Answers a valid read from the reader thread itself when every byte of it is at hand (in
/// the page cache, or a hole: [`VirtualDisk::read_at_now`], which never waits for a
/// device); `false` (nothing done) otherwise, and for reads a worker must judge. Handing a
/// read to a worker costs two thread switches, more than the read of cached data itself:
/// this is what makes random 4 KiB reads as fast as a single-threaded server's, while reads
/// that wait for the disk still run several at a time on the workers.
fn read_now(connection: &Connection, request: &mut Request) -> bool {
    let export = &connection.shared.export;
    let structured = connection.session.structured;
    let length = u64::from(request.length);
    let offset = request.offset;
    let valid = request.flags & !allowed_flags(cmd::READ, structured) == 0
        && length > 0
        && offset
            .checked_add(length)
            .is_some_and(|end| end <= export.size);
    if !valid {
        return false;
    }
    let data = &mut request.buffer[..length as usize];
    let mut done = false;
    let _ = export.image.with_read(&mut |image| {
        done = image.read_at_now(data, offset) == Some(data.len());
        Ok(())
    });
    if !done {
        return false;
    }
    send_read_reply(
        connection,
        request.cookie,
        offset,
        &request.buffer[..length as usize],
    );
    true
}

/// The reply to a successful read (counted in the connection's tally): the data after a
/// simple reply, or in one `NBD_REPLY_TYPE_OFFSET_DATA` chunk.
fn send_read_reply(connection: &Connection, cookie: u64, offset: u64, data: &[u8]) {
    connection
        .tally
        .bytes_read
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    if !connection.session.structured {
        connection.simple_reply(cookie, 0, data);
    } else if data.is_empty() {
        connection.done_reply(cookie);
    } else {
        connection.chunk(
            cookie,
            reply::FLAG_DONE,
            reply::TYPE_OFFSET_DATA,
            &offset.to_be_bytes(),
            data,
        );
    }
}

/// A worker: carries out queued requests and replies, until the queue closes.
fn worker(connection: &Connection, receiver: &Mutex<Receiver<Request>>) {
    let mut extents: Vec<(u32, u32)> = Vec::new();
    let mut ranges: Vec<AllocatedRange> = Vec::new();
    loop {
        let next = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(mut request) = next else { break };
        handle(connection, &mut request, &mut extents, &mut ranges);
        connection.release(request.budget);
        connection.give_buffer(std::mem::take(&mut request.buffer));
    }
}

/// The flags each command accepts (`FUA` on any: the protocol says servers must accept it
/// wherever they advertise it).
fn allowed_flags(command: u16, structured: bool) -> u16 {
    cmd_flag::FUA
        | match command {
            cmd::READ if structured => cmd_flag::DF,
            cmd::WRITE => cmd_flag::NO_HOLE,
            cmd::WRITE_ZEROES => cmd_flag::NO_HOLE | cmd_flag::FAST_ZERO,
            cmd::BLOCK_STATUS => cmd_flag::REQ_ONE,
            _ => 0,
        }
}

/// The NBD error for a failure of the image.
fn errno_of(error: &Error) -> u32 {
    match error {
        Error::ReadOnly { .. } => errno::EPERM,
        Error::OutOfRange { .. } | Error::InvalidArgument { .. } => errno::EINVAL,
        _ => match error.os_code() {
            Some("ENOSPC" | "EDQUOT" | "EFBIG") => errno::ENOSPC,
            Some("ENOMEM") => errno::ENOMEM,
            _ => errno::EIO,
        },
    }
}

/// Carries out one request and sends its reply.
fn handle(
    connection: &Connection,
    request: &mut Request,
    extents: &mut Vec<(u32, u32)>,
    ranges: &mut Vec<AllocatedRange>,
) {
    let export = &connection.shared.export;
    let structured = connection.session.structured;
    if let Some(error) = request.refused {
        let message = match error {
            errno::EOVERFLOW => "the write is larger than the maximum payload (32 MiB)",
            _ => "the export is read-only",
        };
        return connection.error_reply(request, error, message);
    }
    let known = matches!(
        request.command,
        cmd::READ | cmd::WRITE | cmd::FLUSH | cmd::TRIM | cmd::WRITE_ZEROES | cmd::BLOCK_STATUS
    );
    if !known {
        return connection.error_reply(request, errno::EINVAL, "unknown command");
    }
    if request.flags & !allowed_flags(request.command, structured) != 0 {
        return connection.error_reply(request, errno::EINVAL, "a flag this command does not take");
    }
    let writes = matches!(request.command, cmd::WRITE | cmd::TRIM | cmd::WRITE_ZEROES);
    if writes && !export.writable {
        return connection.error_reply(request, errno::EPERM, "the export is read-only");
    }
    if request.command == cmd::READ && request.length > MAX_PAYLOAD {
        return connection.error_reply(
            request,
            errno::EOVERFLOW,
            "the read is larger than the maximum payload (32 MiB)",
        );
    }
    let offset = request.offset;
    let length = u64::from(request.length);
    let in_range = offset
        .checked_add(length)
        .is_some_and(|end| end <= export.size);
    if request.command != cmd::FLUSH && !in_range {
        let error = if writes { errno::ENOSPC } else { errno::EINVAL };
        return connection.error_reply(request, error, "the range runs past the end of the export");
    }
    let fua = request.flags & cmd_flag::FUA != 0 && export.writable;
    let image = &export.image;
    let result = match request.command {
        cmd::READ => {
            let data = &mut request.buffer[..length as usize];
            let result = image.with_read(&mut |image| read_fully(image, data, offset));
            if let Err(e) = result {
                return connection.error_reply(request, errno_of(&e), &e.to_string());
            }
            send_read_reply(
                connection,
                request.cookie,
                offset,
                &request.buffer[..length as usize],
            );
            return;
        }
        cmd::WRITE => {
            let data = &request.buffer[..length as usize];
            let result = image.with_write(&mut |image| {
                image.write_at(data, offset)?;
                if fua {
                    image.flush()?;
                }
                Ok(())
            });
            if result.is_ok() {
                connection
                    .tally
                    .bytes_written
                    .fetch_add(length, Ordering::Relaxed);
            }
            result
        }
        cmd::FLUSH => {
            if export.writable {
                image.with_write(&mut |image| image.flush())
            } else {
                Ok(())
            }
        }
        cmd::TRIM => image.with_write(&mut |image| {
            image.discard(offset, length)?;
            if fua {
                image.flush()?;
            }
            Ok(())
        }),
        cmd::WRITE_ZEROES => {
            let mut not_fast = false;
            let result = image.with_write(&mut |image| {
                match write_zeroes(image, export, offset, length, request.flags)? {
                    Zeroed::Done => {}
                    Zeroed::NotFast => {
                        not_fast = true;
                        return Ok(());
                    }
                }
                if fua {
                    image.flush()?;
                }
                Ok(())
            });
            if not_fast && result.is_ok() {
                return connection.error_reply(
                    request,
                    errno::ENOTSUP,
                    "zeroing this range means writing zeros (NBD_CMD_FLAG_FAST_ZERO)",
                );
            }
            result
        }
        cmd::BLOCK_STATUS => {
            if !structured || !connection.session.base_allocation {
                return connection.error_reply(
                    request,
                    errno::EINVAL,
                    "no meta context was selected (NBD_OPT_SET_META_CONTEXT base:allocation)",
                );
            }
            if length == 0 {
                return connection.error_reply(request, errno::EINVAL, "block status of 0 bytes");
            }
            let one = request.flags & cmd_flag::REQ_ONE != 0;
            extents.clear();
            let result = image
                .with_read(&mut |image| block_status(image, offset, length, one, extents, ranges));
            if let Err(e) = result {
                return connection.error_reply(request, errno_of(&e), &e.to_string());
            }
            // The payload: the context id, then (length, flags) per extent, in the buffer
            // the request came with (kept by the pool).
            let buffer = &mut request.buffer;
            buffer.clear();
            buffer.extend_from_slice(&proto::BASE_ALLOCATION_ID.to_be_bytes());
            for (length, flags) in extents.iter() {
                buffer.extend_from_slice(&length.to_be_bytes());
                buffer.extend_from_slice(&flags.to_be_bytes());
            }
            connection.chunk(
                request.cookie,
                reply::FLAG_DONE,
                reply::TYPE_BLOCK_STATUS,
                &[],
                buffer,
            );
            return;
        }
        _ => unreachable!("checked above"),
    };
    match result {
        Ok(()) => connection.done_reply(request.cookie),
        Err(e) => connection.error_reply(request, errno_of(&e), &e.to_string()),
    }
}

/// Fills `data` from `offset`, a range inside the disk (checked before): `read_at` is short
/// only past the end, so one call fills it, and a short one means the disk shrank.
fn read_fully(image: &Image, data: &mut [u8], offset: u64) -> Result<()> {
    if image.read_at(data, offset)? < data.len() {
        return Err(Error::OutOfRange {
            path: None,
            operation: "read",
            offset,
            length: data.len() as u64,
            size: image.size(),
        });
    }
    Ok(())
}

/// What a write zeroes did.
enum Zeroed {
    Done,
    /// `NBD_CMD_FLAG_FAST_ZERO` was set and zeroing would mean writing zeros: nothing done.
    NotFast,
}

/// `NBD_CMD_WRITE_ZEROES`: nothing where the range already reads as zeros without I/O
/// (unless `NO_HOLE`); a discard on a dynamic image (blocks wholly inside the range are
/// unallocated, the rest zeroed); zeros written otherwise, block by block, skipping the
/// blocks that read as zeros already (unless `NO_HOLE`, which asks for allocated zeros).
fn write_zeroes(
    image: &mut Image,
    export: &Export,
    offset: u64,
    length: u64,
    flags: u16,
) -> Result<Zeroed> {
    let no_hole = flags & cmd_flag::NO_HOLE != 0;
    let fast = flags & cmd_flag::FAST_ZERO != 0;
    if length == 0 || (!no_hole && image.reads_without_io(offset, length)) {
        return Ok(Zeroed::Done);
    }
    if !no_hole && export.disk_type == DiskType::Dynamic {
        image.discard(offset, length)?;
        return Ok(Zeroed::Done);
    }
    if fast {
        return Ok(Zeroed::NotFast);
    }
    let end = offset + length;
    let step = export.block_size.unwrap_or(1 << 20);
    let mut at = offset;
    while at < end {
        let piece_end = end.min((at / step + 1) * step);
        if no_hole || !image.reads_without_io(at, piece_end - at) {
            vhd_core::write_zeros(at, piece_end - at, |zeros, position| {
                image.write_at(zeros, position)
            })?;
        }
        at = piece_end;
    }
    Ok(Zeroed::Done)
}

/// The `base:allocation` extents of `offset..offset + length` (inside the disk): the
/// chain's allocated ranges are data (0), the rest `HOLE | ZERO`; adjacent extents of the
/// same kind merged; at most one with `one`, at most [`MAX_EXTENTS`] otherwise.
fn block_status(
    image: &Image,
    offset: u64,
    length: u64,
    one: bool,
    extents: &mut Vec<(u32, u32)>,
    ranges: &mut Vec<AllocatedRange>,
) -> Result<()> {
    let end = offset + length;
    let limit = if one { 1 } else { MAX_EXTENTS };
    let mut position = offset;
    // Appends (or extends) an extent from `position` to `to`; false when the reply is full.
    let mut push = |extents: &mut Vec<(u32, u32)>, to: u64, flags: u32| -> bool {
        if to <= position {
            return true;
        }
        // Extents are within one request, whose length is 32 bits.
        let n = (to - position) as u32;
        let full = extents.len() == limit;
        match extents.last_mut() {
            Some(last) if last.1 == flags => last.0 += n,
            _ if full => return false,
            _ => extents.push((n, flags)),
        }
        position = to;
        true
    };
    let mut cursor = RangeCursor::range(offset, end);
    while !cursor.is_finished() {
        ranges.clear();
        cursor.next_ranges(image, ranges)?;
        for range in ranges.iter() {
            let start = range.offset.clamp(offset, end);
            let stop = (range.offset + range.length).clamp(offset, end);
            if !push(extents, start, state::HOLE | state::ZERO) || !push(extents, stop, 0) {
                // Full: the client asks again from where the reply ends.
                return Ok(());
            }
        }
    }
    push(extents, end, state::HOLE | state::ZERO);
    Ok(())
}
