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

use crate::errors::{guard, Failure};
use crate::image::{read_at_once, read_into, write_from, Shared};
use crate::options::io_range;
use napi::bindgen_prelude::{External, Float64ArraySlice, Uint8ArraySlice};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Reads no larger than this are done on the JavaScript thread when they need no I/O:
/// filling 1 MiB with zeros takes about as long as a round trip through the pool.
const AT_ONCE_LIMIT: usize = 1 << 20;

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

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// The caller's bytes, as a pointer that can cross to a pool thread.
struct CallerBytes {
    start: *mut u8,
    len: usize,
}

// SAFETY: the pointer is only dereferenced by the one pool thread that runs the request;
// see `CallerBytes::of` for why the memory stays valid until then.
unsafe impl Send for CallerBytes {}

impl CallerBytes {
    /// `range` of `buffer`, for a request that lib/io.js keeps the buffer alive for: it
    /// holds the JavaScript object until the request's completion is drained, so the
    /// garbage collector cannot free the memory, and an environment being torn down waits
    /// for the request first (see [`IoPort::wait_for_requests`]). As with `fs.read`, the
    /// caller must leave the buffer alone until the promise settles.
    fn of(buffer: &mut Uint8ArraySlice, range: std::ops::Range<usize>) -> CallerBytes {
        // SAFETY: on the JavaScript thread, during the call; `range` was checked against
        // the buffer's length.
        let bytes = unsafe { buffer.as_mut() };
        let part = &mut bytes[range];
        CallerBytes {
            start: part.as_mut_ptr(),
            len: part.len(),
        }
    }

    /// The bytes, on the pool thread.
    ///
    /// # Safety
    /// Only the request that owns `self` may call this, once, while it runs.
    unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        std::slice::from_raw_parts_mut(self.start, self.len)
    }
}

/// One read or write on its way through the pool.
struct Request {
    port: Arc<IoPort>,
    id: u32,
    image: Shared,
    direction: Direction,
    bytes: CallerBytes,
    position: u64,
}

impl Request {
    fn run(mut self) {
        let (image, direction, position) = (&self.image, self.direction, self.position);
        // SAFETY: this request owns the bytes and runs once (see `CallerBytes::of`).
        let bytes = unsafe { self.bytes.as_mut_slice() };
        let result = guard(|| match direction {
            Direction::Read => read_into(image, bytes, position),
            Direction::Write => write_from(image, bytes, position),
        });
        self.port.complete(self.id, result);
    }
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
    /// Finished requests not yet drained: id and byte count, or failure.
    done: Vec<(u32, Result<i64, Failure>)>,
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
            // SAFETY: on the JavaScript thread of the environment that made the function.
            unsafe { napi::sys::napi_ref_threadsafe_function(env.raw(), self.wake.raw()) };
        }
    }

    fn release_loop(&self, env: &Env, drained: usize) {
        if drained > 0 && self.undrained.fetch_sub(drained, Ordering::Relaxed) == drained {
            // SAFETY: as in `hold_loop`.
            unsafe { napi::sys::napi_unref_threadsafe_function(env.raw(), self.wake.raw()) };
        }
    }

    /// On a pool thread: queues the completion, and wakes the JavaScript thread if nothing
    /// was queued before (otherwise a wake-up is already on its way, or a drain running).
    fn complete(&self, id: u32, result: Result<i64, Failure>) {
        let mut completions = lock(&self.completions);
        let first = completions.done.is_empty();
        completions.done.push((id, result));
        completions.running -= 1;
        if completions.tearing_down && completions.running == 0 {
            self.all_done.notify_all();
        }
        drop(completions);
        if first {
            // Fails only once the environment is going away: nobody is left to wake.
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// When the environment is torn down (a worker thread ending, the process exiting):
    /// waits for the requests still running, which write into buffers of that environment.
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
#[napi(js_name = "ioPort", ts_args_type = "wake: () => void")]
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

/// The checked part of `buffer` and disk position of a read or write.
fn request_bytes(
    buffer: &mut Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> Result<(CallerBytes, u64), Failure> {
    let (range, position) = io_range(buffer.len(), buffer_offset, length, position)?;
    Ok((CallerBytes::of(buffer, range), position))
}

/// Hands a checked read or write to the pool.
fn submit(
    env: &Env,
    port: &Arc<IoPort>,
    handle: &Shared,
    id: u32,
    direction: Direction,
    (bytes, position): (CallerBytes, u64),
) -> Result<(), Failure> {
    let request = Request {
        port: port.clone(),
        id,
        image: handle.clone(),
        direction,
        bytes,
        position,
    };
    port.submit(env, request)
}

// `ioRead` and `ioWrite` take `fs.read`'s arguments after the port, the image and the id.
#[allow(clippy::too_many_arguments)]
/// Reads `length` bytes at virtual offset `position` into `buffer[bufferOffset..]`, under
/// request id `id`. Returns the byte count when the read was done at once (at most 1 MiB
/// that touches no data in any file of the chain: zeros), or -1 when it went to the pool
/// (its completion comes through the port). Bad arguments throw.
#[napi(js_name = "ioRead", catch_unwind)]
pub fn io_read(
    env: Env,
    port: &External<Arc<IoPort>>,
    handle: &External<Shared>,
    id: u32,
    mut buffer: Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> napi::Result<f64> {
    let result = guard(|| {
        let (mut bytes, position) = request_bytes(&mut buffer, buffer_offset, length, position)?;
        if bytes.len <= AT_ONCE_LIMIT {
            // SAFETY: on the JavaScript thread, during the call: nothing else uses the bytes.
            if let Some(done) = read_at_once(handle, unsafe { bytes.as_mut_slice() }, position)? {
                return Ok(done as f64);
            }
        }
        submit(&env, port, handle, id, Direction::Read, (bytes, position))?;
        Ok(-1.0)
    });
    result.map_err(|failure| failure.into_napi(&env))
}

#[allow(clippy::too_many_arguments)]
/// Writes `buffer[bufferOffset..bufferOffset + length]` at virtual offset `position`, under
/// request id `id`; its completion (the byte count) comes through the port. Bad arguments
/// throw.
#[napi(js_name = "ioWrite", catch_unwind)]
pub fn io_write(
    env: Env,
    port: &External<Arc<IoPort>>,
    handle: &External<Shared>,
    id: u32,
    mut buffer: Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> napi::Result<()> {
    let result = guard(|| {
        let checked = request_bytes(&mut buffer, buffer_offset, length, position)?;
        submit(&env, port, handle, id, Direction::Write, checked)
    });
    result.map_err(|failure| failure.into_napi(&env))
}

/// Moves finished requests into `results` as pairs (id, byte count), a byte count of -1
/// meaning failure (take it with `ioTakeFailure`), and returns how many pairs it wrote: at
/// most half of `results`' length, so a full answer means more may wait.
#[napi(js_name = "ioDrain")]
pub fn io_drain(env: Env, port: &External<Arc<IoPort>>, mut results: Float64ArraySlice) -> u32 {
    // SAFETY: on the JavaScript thread, during the call.
    let results = unsafe { results.as_mut() };
    let room = results.len() / 2;
    let mut completions = lock(&port.completions);
    let Completions { done, failures, .. } = &mut *completions;
    let count = done.len().min(room);
    for (pair, (id, result)) in results.chunks_exact_mut(2).zip(done.drain(..count)) {
        pair[0] = f64::from(id);
        pair[1] = match result {
            Ok(done) => done as f64,
            Err(failure) => {
                failures.push((id, failure));
                -1.0
            }
        };
    }
    drop(completions);
    port.release_loop(&env, count);
    count as u32
}

/// Throws the failure of request `id`, drained by `ioDrain` with a byte count of -1.
#[napi(js_name = "ioTakeFailure")]
pub fn io_take_failure(env: Env, port: &External<Arc<IoPort>>, id: u32) -> napi::Result<()> {
    let mut completions = lock(&port.completions);
    let failure = match completions.failures.iter().position(|(at, _)| *at == id) {
        Some(index) => completions.failures.swap_remove(index).1,
        None => Failure::internal(format!("no failure recorded for I/O request {id}")),
    };
    drop(completions);
    Err(failure.into_napi(&env))
}
