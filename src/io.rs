//! Asynchronous reads and writes of open images: a pool of I/O threads and, per JavaScript
//! environment, a completion port.
//!
//! Every other asynchronous call of the addon is one libuv task (see [`crate::task`]). Reads
//! and writes are not: a task costs the JavaScript thread an async resource, a native
//! promise and a callback scope, and with many small reads in flight that thread, not the
//! disk, was the limit (4 KiB reads, 64 in flight, ran at 0.77× `fs.read`). Here JavaScript
//! submits a request under an id of its choosing ([`io_read`], [`io_write`]); a pool thread
//! does it and queues the completion on the environment's [`IoPort`], which wakes the
//! JavaScript thread only when its queue was empty. One wake-up then drains every completion
//! queued so far ([`io_drain`]) and `lib/io.js` settles their promises, so the per-request
//! cost on the JavaScript thread is one native call and one promise.
//!
//! No pointer into JavaScript memory ever crosses to a pool thread: a request works on a
//! buffer of its own ([`crate::buffers`]). A write copies the caller's bytes when it is
//! made; a read's bytes are copied into the caller's buffer by [`io_drain`], on the
//! JavaScript thread, after checking that the buffer was not detached or shrunk meanwhile.
//! So a caller that transfers, resizes or reuses a buffer with a request in flight gets an
//! error (`ERR_VHD_BUFFER_DETACHED`) or its data, never a write into freed memory.

use crate::buffers;
use crate::errors::{guard, ErrorClass, Failure};
use crate::image::{read_at_once, with_image, write_from, Shared};
use crate::options::io_range;
use napi::bindgen_prelude::{External, Float64ArraySlice, Object, Uint8ArraySlice};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsValue, Status};
use napi_derive::napi;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use vhd_core::{Image, VirtualDisk};

/// Reads no larger than this are done on the JavaScript thread when nothing has to wait for
/// a device (holes, or data in the page cache): copying 1 MiB takes about as long as a
/// round trip through the pool, so the event loop is held no longer than that.
const AT_ONCE_LIMIT: usize = 1 << 20;

/// Reads are read and delivered in pieces of at most this size (see [`read_in_pieces`]):
/// large enough that a piece costs one wake-up of the JavaScript thread per 4 MiB, small
/// enough that a huge read never needs a buffer of its whole size.
const PIECE: usize = 4 << 20;

/// Threads in the pool when `UV_THREADPOOL_SIZE` does not say (libuv's default).
const DEFAULT_THREADS: usize = 4;

/// The JavaScript function that drains the port, called with no arguments. Weak: a port
/// with nothing in flight does not keep the process alive (see [`IoPort::hold_loop`]).
type WakeFn = ThreadsafeFunction<(), (), (), Status, false, true>;

/// Locks `mutex`, ignoring poisoning: every critical section below leaves its data whole
/// (pushes, pops and counters), so a panic elsewhere never makes it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

// ---------------------------------------------------------------------------------------
// The pool

/// The threads that do the requests of every port in the process, like libuv's pool (and
/// as many: `UV_THREADPOOL_SIZE`, default 4). Started on the first request; the threads
/// live as long as the process and hold no state between requests.
struct Pool {
    state: Mutex<PoolState>,
    work_ready: Condvar,
}

struct PoolState {
    queue: VecDeque<Request>,
    /// Threads waiting for work: a request wakes one only when some thread is idle.
    idle: usize,
}

impl Pool {
    fn get() -> Result<&'static Arc<Pool>, Failure> {
        static POOL: OnceLock<Option<Arc<Pool>>> = OnceLock::new();
        POOL.get_or_init(Pool::start)
            .as_ref()
            .ok_or_else(|| Failure::internal("could not start any I/O thread"))
    }

    /// The pool with its threads running, or `None` when not one thread could start.
    fn start() -> Option<Arc<Pool>> {
        let pool = Arc::new(Pool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                idle: 0,
            }),
            work_ready: Condvar::new(),
        });
        let started = (0..thread_count())
            .filter(|n| {
                let pool = pool.clone();
                std::thread::Builder::new()
                    .name(format!("vhd-io-{n}"))
                    .spawn(move || pool.serve())
                    .is_ok()
            })
            .count();
        (started > 0).then_some(pool)
    }

    fn submit(&self, request: Request) {
        let mut state = lock(&self.state);
        state.queue.push_back(request);
        let wake = state.idle > 0;
        drop(state);
        if wake {
            self.work_ready.notify_one();
        }
    }

    /// A pool thread: runs requests, in the order they came, for ever.
    fn serve(&self) {
        loop {
            let request = {
                let mut state = lock(&self.state);
                loop {
                    if let Some(request) = state.queue.pop_front() {
                        break request;
                    }
                    state.idle += 1;
                    state = self
                        .work_ready
                        .wait(state)
                        .unwrap_or_else(|poison| poison.into_inner());
                    state.idle -= 1;
                }
            };
            request.run();
        }
    }
}

/// libuv's rule for the size of its pool, so that one setting sizes both.
fn thread_count() -> usize {
    std::env::var("UV_THREADPOOL_SIZE")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(DEFAULT_THREADS, |n| n.min(1024))
}

// ---------------------------------------------------------------------------------------
// Requests

/// What a request does. Its memory is its own (see [`crate::buffers`]): no pointer into
/// JavaScript memory ever reaches an I/O thread.
enum Work {
    /// Reads `len` bytes, delivered to `target_offset` of the caller's buffer on the
    /// JavaScript thread, in pieces of at most [`PIECE`] bytes.
    Read { len: usize, target_offset: usize },
    /// Writes `bytes[..len]`, copied from the caller's buffer when the request was made.
    Write { bytes: Vec<u8>, len: usize },
}

/// One read or write on its way through the pool.
struct Request {
    port: Arc<IoPort>,
    id: u32,
    image: Shared,
    work: Work,
    position: u64,
}

impl Request {
    fn run(self) {
        let Request {
            port,
            id,
            image,
            work,
            position,
        } = self;
        // A read's last piece travels with the end of the request (one entry in the port
        // for a read of one piece, as most are); the pieces before it go ahead.
        let mut last: Option<Piece> = None;
        let result = match work {
            Work::Read { len, target_offset } => guard(|| {
                with_image(&image, |image| {
                    read_in_pieces(image, position, len, |bytes, read, at| {
                        let piece = Piece {
                            bytes,
                            len: read,
                            target_offset: target_offset + at,
                        };
                        if let Some(before) = last.replace(piece) {
                            port.queue(Finished::Piece { id, piece: before });
                        }
                    })
                })
            }),
            Work::Write { bytes, len } => {
                let result = guard(|| write_from(&image, &bytes[..len], position));
                buffers::give(bytes);
                result
            }
        };
        port.queue(Finished::Request { id, result, last });
    }
}

/// Reads `len` bytes at `position` of `image` into buffers of our own, [`PIECE`] bytes at a
/// time, and hands each to `deliver` (with the bytes read and their offset in the request)
/// as soon as it is read, so that the JavaScript thread copies one piece into the caller's
/// buffer while this thread reads the next. Smaller pieces, to overlap more of the copy,
/// were measured and lost: 1 MiB reads in 256 KiB pieces ran at 0.92 of their speed in one
/// piece, 8 MiB reads at 0.81 (each piece wakes the JavaScript thread, which then competes
/// with the I/O threads for the cores). Returns the byte count, short at the end of the disk.
fn read_in_pieces(
    image: &Image,
    position: u64,
    len: usize,
    mut deliver: impl FnMut(Vec<u8>, usize, usize),
) -> Result<i64, Failure> {
    let mut done = 0;
    while done < len {
        let piece = PIECE.min(len - done);
        let mut bytes = buffers::take(piece);
        let read = image.read_at(&mut bytes[..piece], position + done as u64)?;
        deliver(bytes, read, done);
        done += read;
        if read < piece {
            break;
        }
    }
    Ok(done as i64)
}

/// Bytes read for a request: `bytes[..len]`, for `target_offset` of the caller's buffer.
struct Piece {
    bytes: Vec<u8>,
    len: usize,
    target_offset: usize,
}

/// What an I/O thread hands to the JavaScript thread, in order: the pieces of a read but
/// its last, then the end of the request.
enum Finished {
    /// A piece of a read that has more.
    Piece { id: u32, piece: Piece },
    /// A request is done: its byte count, or why it failed, and a read's last piece.
    Request {
        id: u32,
        result: Result<i64, Failure>,
        last: Option<Piece>,
    },
}

// ---------------------------------------------------------------------------------------
// The port

/// Where finished requests wait for the JavaScript thread: one per JavaScript environment
/// (lib/io.js makes it), shared by every image opened there.
pub struct IoPort {
    completions: Mutex<Completions>,
    /// Signalled when the last request of a port being torn down completes.
    all_done: Condvar,
    wake: WakeFn,
    /// Requests submitted and not yet drained; only the JavaScript thread uses it.
    undrained: AtomicUsize,
}

#[derive(Default)]
struct Completions {
    /// What the I/O threads finished and the JavaScript thread has not drained yet.
    done: VecDeque<Finished>,
    /// Reads a piece of which could not be delivered (their buffer went away); they fail
    /// when they finish.
    undelivered: Vec<u32>,
    /// Failures drained but not yet taken by [`io_take_failure`].
    failures: Vec<(u32, Failure)>,
    /// Requests submitted and not yet finished.
    running: usize,
    /// The environment is being torn down: signal `all_done` when `running` reaches 0.
    tearing_down: bool,
}

impl IoPort {
    /// Hands `request` to the pool.
    fn submit(self: &Arc<IoPort>, env: &Env, request: Request) -> Result<(), Failure> {
        let pool = Pool::get()?;
        lock(&self.completions).running += 1;
        self.hold_loop(env);
        pool.submit(request);
        Ok(())
    }

    /// Keeps the event loop alive while a request is undrained: the first one refs the
    /// wake-up function, and the drain that takes the last one unrefs it again.
    fn hold_loop(&self, env: &Env) {
        if self.undrained.fetch_add(1, Ordering::Relaxed) == 0 {
            // SAFETY: on the JavaScript thread of the environment that made the function: a
            // port is an External of one environment and cannot reach another (Externals
            // are not cloneable), and the port keeps the function alive.
            unsafe { sys::napi_ref_threadsafe_function(env.raw(), self.wake.raw()) };
        }
    }

    fn release_loop(&self, env: &Env, drained: usize) {
        if drained > 0 && self.undrained.fetch_sub(drained, Ordering::Relaxed) == drained {
            // SAFETY: as in `hold_loop`.
            unsafe { sys::napi_unref_threadsafe_function(env.raw(), self.wake.raw()) };
        }
    }

    /// On a pool thread: queues a piece or the end of a request, and wakes the JavaScript
    /// thread if nothing was queued before (otherwise a wake-up is already on its way, or a
    /// drain running).
    fn queue(&self, finished: Finished) {
        let mut completions = lock(&self.completions);
        let first = completions.done.is_empty();
        if matches!(finished, Finished::Request { .. }) {
            completions.running -= 1;
            if completions.tearing_down && completions.running == 0 {
                self.all_done.notify_all();
            }
        }
        completions.done.push_back(finished);
        drop(completions);
        if first {
            // Fails only once the environment is going away: nobody is left to wake.
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// When the environment is torn down (a worker thread ending, the process exiting):
    /// waits for the requests still running. They no longer touch the environment's memory
    /// (their buffers are their own), but a write in flight then reaches the file before
    /// the environment's images are released, and their locks with them.
    fn wait_for_requests(&self) {
        let mut completions = lock(&self.completions);
        completions.tearing_down = true;
        while completions.running > 0 {
            completions = self
                .all_done
                .wait(completions)
                .unwrap_or_else(|poison| poison.into_inner());
        }
    }
}

/// A new completion port that calls `wake` (with no arguments) when completions are ready.
#[napi(
    js_name = "ioPort",
    ts_args_type = "wake: () => void",
    ts_return_type = "ExternalObject<'io port'>"
)]
pub fn io_port(env: Env, wake: WakeFn) -> napi::Result<External<Arc<IoPort>>> {
    let port = Arc::new(IoPort {
        completions: Mutex::new(Completions::default()),
        all_done: Condvar::new(),
        wake,
        undrained: AtomicUsize::new(0),
    });
    let waiting = port.clone();
    env.add_env_cleanup_hook(waiting, |port| port.wait_for_requests())?;
    Ok(External::new(port))
}

/// Hands a checked read or write to the pool.
fn submit(
    env: &Env,
    port: &Arc<IoPort>,
    handle: &Shared,
    id: u32,
    work: Work,
    position: u64,
) -> Result<(), Failure> {
    let request = Request {
        port: port.clone(),
        id,
        image: handle.clone(),
        work,
        position,
    };
    port.submit(env, request)
}

// `ioRead` and `ioWrite` take `fs.read`'s arguments after the port, the image and the id.
#[allow(clippy::too_many_arguments)]
/// Reads `length` bytes at virtual offset `position` into `buffer[bufferOffset..]`, under
/// request id `id`. Returns the byte count when the read was done at once (at most 1 MiB
/// that touches no data in any file of the chain: zeros), or -1 when it went to the pool
/// (its completion comes through the port, and `ioDrain` copies the bytes into `buffer`,
/// which lib/io.js keeps for it). Bad arguments throw.
#[napi(js_name = "ioRead", catch_unwind)]
pub fn io_read(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'io port'>")] port: &External<Arc<IoPort>>,
    #[napi(ts_arg_type = "ExternalObject<'image'>")] handle: &External<Shared>,
    id: u32,
    mut buffer: Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> napi::Result<f64> {
    let result = guard(|| {
        let (range, position) = io_range(buffer.len(), buffer_offset, length, position)?;
        if range.len() <= AT_ONCE_LIMIT {
            // SAFETY: on the JavaScript thread, during the call: JavaScript cannot run, so
            // the view's memory stays where it is and nothing else writes it.
            let bytes = unsafe { buffer.as_mut() };
            if let Some(done) = read_at_once(handle, &mut bytes[range.clone()], position) {
                return Ok(done as f64);
            }
        }
        let work = Work::Read {
            len: range.len(),
            target_offset: range.start,
        };
        submit(&env, port, handle, id, work, position)?;
        Ok(-1.0)
    });
    result.map_err(|failure| failure.into_napi(&env))
}

#[allow(clippy::too_many_arguments)]
/// Writes `buffer[bufferOffset..bufferOffset + length]` at virtual offset `position`, under
/// request id `id`; its completion (the byte count) comes through the port. The bytes are
/// copied before this returns: the caller may reuse, transfer or resize `buffer` at once.
/// Bad arguments throw.
#[napi(js_name = "ioWrite", catch_unwind)]
pub fn io_write(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'io port'>")] port: &External<Arc<IoPort>>,
    #[napi(ts_arg_type = "ExternalObject<'image'>")] handle: &External<Shared>,
    id: u32,
    buffer: Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> napi::Result<()> {
    let result = guard(|| {
        let (range, position) = io_range(buffer.len(), buffer_offset, length, position)?;
        let len = range.len();
        let mut bytes = buffers::take(len);
        bytes[..len].copy_from_slice(&buffer[range]);
        submit(&env, port, handle, id, Work::Write { bytes, len }, position)
    });
    result.map_err(|failure| failure.into_napi(&env))
}

/// Moves finished requests into `results` as pairs (id, byte count), a byte count of -1
/// meaning failure (take it with `ioTakeFailure`), and returns how many pairs it wrote: at
/// most half of `results`' length, so a full answer means more may wait. The pieces of
/// reads are copied into their caller's buffers, `targets[id]`, on the way.
#[napi(js_name = "ioDrain", catch_unwind)]
pub fn io_drain(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'io port'>")] port: &External<Arc<IoPort>>,
    mut results: Float64ArraySlice,
    targets: Object,
) -> napi::Result<u32> {
    // SAFETY: on the JavaScript thread, during the call (lib/io.js's own Float64Array).
    let results = unsafe { results.as_mut() };
    let room = results.len() / 2;
    // Everything up to the `room`th finished request, taken under the lock and handled
    // outside it, so that the I/O threads can queue more meanwhile.
    let (taken, mut undelivered) = {
        let mut completions = lock(&port.completions);
        let mut requests = 0;
        let end = completions
            .done
            .iter()
            .position(|finished| {
                requests += usize::from(matches!(finished, Finished::Request { .. }));
                requests == room
            })
            .map_or(completions.done.len(), |last| last + 1);
        let taken: Vec<Finished> = completions.done.drain(..end).collect();
        (taken, std::mem::take(&mut completions.undelivered))
    };
    let mut count = 0;
    let mut failed = Vec::new();
    // Copies a piece into request `id`'s buffer, unless an earlier piece found it gone.
    let hand_over = |id: u32, piece: Piece, undelivered: &mut Vec<u32>| {
        let Piece {
            bytes,
            len,
            target_offset,
        } = piece;
        if !undelivered.contains(&id)
            && deliver(&env, &targets, id, target_offset, &bytes[..len]).is_err()
        {
            undelivered.push(id);
        }
        buffers::give(bytes);
    };
    for finished in taken {
        match finished {
            Finished::Piece { id, piece } => hand_over(id, piece, &mut undelivered),
            Finished::Request { id, result, last } => {
                if let Some(piece) = last {
                    hand_over(id, piece, &mut undelivered);
                }
                let lost = undelivered.iter().position(|&at| at == id);
                let result = match (result, lost) {
                    (Ok(_), Some(_)) => Err(buffer_detached()),
                    (result, _) => result,
                };
                if let Some(index) = lost {
                    undelivered.swap_remove(index);
                }
                results[2 * count] = f64::from(id);
                results[2 * count + 1] = match result {
                    Ok(done) => done as f64,
                    Err(failure) => {
                        failed.push((id, failure));
                        -1.0
                    }
                };
                count += 1;
            }
        }
    }
    {
        let mut completions = lock(&port.completions);
        completions.failures.append(&mut failed);
        completions.undelivered = undelivered;
    }
    port.release_loop(&env, count);
    Ok(count as u32)
}

/// Copies `bytes`, read for request `id`, to `target_offset` of the caller's buffer
/// `targets[id]`, if the buffer still has room for them there. It may not: the caller may
/// have transferred its `ArrayBuffer` (detaching it) or shrunk a resizable one while the
/// read was in flight, and the request then fails with `ERR_VHD_BUFFER_DETACHED`.
fn deliver(
    env: &Env,
    targets: &Object,
    id: u32,
    target_offset: usize,
    bytes: &[u8],
) -> Result<(), Failure> {
    let lost = || Failure::internal(format!("I/O request {id} lost its buffer"));
    let mut view = std::ptr::null_mut();
    // SAFETY: on the JavaScript thread, during the call, with values of this call.
    let status = unsafe { sys::napi_get_element(env.raw(), targets.raw(), id, &mut view) };
    if status != sys::Status::napi_ok {
        return Err(lost());
    }
    let mut kind = 0;
    let mut length = 0usize;
    let mut data = std::ptr::null_mut();
    // SAFETY: as above; the out-pointers are locals. A view whose `ArrayBuffer` is detached
    // or out of bounds reports a length of 0 (and no data).
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env.raw(),
            view,
            &mut kind,
            &mut length,
            &mut data,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if status != sys::Status::napi_ok || kind != sys::TypedarrayType::uint8_array {
        return Err(lost());
    }
    let fits = target_offset
        .checked_add(bytes.len())
        .is_some_and(|end| end <= length);
    if bytes.is_empty() {
        return Ok(());
    }
    if data.is_null() || !fits {
        return Err(buffer_detached());
    }
    // SAFETY: `data` is the start of the view's `length` bytes as they are now, on the
    // JavaScript thread, which cannot run anything else during this call (no I/O thread
    // ever holds a pointer into JavaScript memory); the range fits inside the view, and
    // `bytes` is our own buffer, so the two do not overlap. (A view of a SharedArrayBuffer
    // may be read by other threads meanwhile, as with `fs.read`: they may see a partial
    // copy, which the JavaScript memory model allows for unsynchronised access.)
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            data.cast::<u8>().add(target_offset),
            bytes.len(),
        );
    }
    Ok(())
}

/// The caller's buffer went away (or shrank) while a read into it was in flight.
fn buffer_detached() -> Failure {
    Failure::new(
        ErrorClass::Error,
        "ERR_VHD_BUFFER_DETACHED",
        "the buffer was transferred, detached or shrunk while the read was in flight, so the \
         bytes read were not delivered; keep a buffer's ArrayBuffer (no transfer, no resize) \
         until the read that fills it settles",
    )
}

/// Throws the failure of request `id`, drained by `ioDrain` with a byte count of -1.
#[napi(js_name = "ioTakeFailure")]
pub fn io_take_failure(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'io port'>")] port: &External<Arc<IoPort>>,
    id: u32,
) -> napi::Result<()> {
    let mut completions = lock(&port.completions);
    let failure = match completions.failures.iter().position(|(at, _)| *at == id) {
        Some(index) => completions.failures.swap_remove(index).1,
        None => Failure::internal(format!("no failure recorded for I/O request {id}")),
    };
    drop(completions);
    Err(failure.into_napi(&env))
}
