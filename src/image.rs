//! The `NativeImage` class: an open `vhd_core::Image` shared between the JavaScript thread
//! and the thread pools, the synchronous reads and writes of its handle, and the
//! `open`/`create` functions that make one. (Asynchronous reads and writes: src/io.rs.)
//!
//! Reads take the read lock, so that parallel reads run in parallel; writes, flush and close
//! take the write lock. After `close` the image is gone (`None`) and every call fails with
//! `ERR_VHD_CLOSED`.

use crate::errors::{guard, Failure};
use crate::info::Snapshot;
use crate::options::{integer, io_range, non_negative_i32};
use crate::task::Job;
use crate::types::AllocatedRangeInfo;
use crate::types::ImageInfo;
use crate::types::{CreateArgs, OpenArgs};
use crate::types::{PartitionInfo, PartitionTableInfo};
use napi::bindgen_prelude::{AsyncTask, Buffer, External, Uint8ArraySlice};
use napi::Env;
use napi_derive::napi;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use vhd_core::ops::RangeCursor;
use vhd_core::{Image, VirtualDisk};

pub(crate) type Shared = Arc<RwLock<Option<Image>>>;

/// An open VHD image. Made by `open` or `create`; not constructible from JavaScript.
#[napi]
pub struct NativeImage {
    image: Shared,
    snapshot: Snapshot,
    /// `openPath`'s descriptor for the caller (vhd@0.5.0's `image.fd`), until `takeFd`
    /// hands it over; closed with this object if it never is.
    caller_fd: Mutex<Option<std::fs::File>>,
}

impl NativeImage {
    fn new(image: Image) -> NativeImage {
        NativeImage {
            snapshot: Snapshot::of(&image),
            image: Arc::new(RwLock::new(Some(image))),
            caller_fd: Mutex::new(None),
        }
    }
}

/// A writer panicked while holding the lock: the image may be half-updated.
fn poisoned() -> Failure {
    Failure::internal("the image is unusable after an earlier internal error; close it")
}

fn read_lock(shared: &Shared) -> Result<RwLockReadGuard<'_, Option<Image>>, Failure> {
    shared.read().map_err(|_| poisoned())
}

fn write_lock(shared: &Shared) -> Result<RwLockWriteGuard<'_, Option<Image>>, Failure> {
    shared.write().map_err(|_| poisoned())
}

/// Runs `read` on the open image under the read lock, so that everything it reads (the
/// pieces of one request, see src/io.rs) comes from one state of the image: no write lands
/// in between.
pub(crate) fn with_image<T>(
    shared: &Shared,
    read: impl FnOnce(&Image) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let guard = read_lock(shared)?;
    read(guard.as_ref().ok_or_else(Failure::closed)?)
}

pub(crate) fn read_into(shared: &Shared, buf: &mut [u8], position: u64) -> Result<i64, Failure> {
    with_image(shared, |image| Ok(image.read_at(buf, position)? as i64))
}

pub(crate) fn write_from(shared: &Shared, buf: &[u8], position: u64) -> Result<i64, Failure> {
    let mut guard = write_lock(shared)?;
    let image = guard.as_mut().ok_or_else(Failure::closed)?;
    image.write_at(buf, position)?;
    Ok(buf.len() as i64)
}

/// Reads into `buf` at `position` now, on the JavaScript thread, if nothing has to wait for
/// a device: the range is holes all the way down the chain, or its data is in the page
/// cache (`VirtualDisk::read_at_now`: `preadv2` with `RWF_NOWAIT`, which fails rather than
/// wait). `None` when something would wait, when a write holds the image (the JavaScript
/// thread never waits for a lock), or when the image is closed (the request then reports
/// it, as a rejection like every other failure). A read done here lands in the caller's
/// buffer directly, during the call: no copy, no thread hop.
pub(crate) fn read_at_once(shared: &Shared, buf: &mut [u8], position: u64) -> Option<i64> {
    let guard = shared.try_read().ok()?;
    let image = guard.as_ref()?;
    image.read_at_now(buf, position).map(|read| read as i64)
}

pub struct OpenState {
    path: String,
    options: vhd_core::OpenOptions,
}

/// `openFd`: a duplicate of the caller's descriptor, and the name used for messages and to
/// find a differencing image's parent.
pub struct OpenFdState {
    file: Option<std::fs::File>,
    name: String,
    options: vhd_core::OpenOptions,
}

/// `openPath`: the file to open with the caller's `fs` flags, then read as an image.
pub struct OpenPathState {
    path: String,
    flags: i32,
    mode: u32,
    options: vhd_core::OpenOptions,
}

pub struct CreateState {
    path: String,
    options: vhd_core::CreateOptions,
}

fn open_work(state: &mut OpenState) -> Result<NativeImage, Failure> {
    Ok(NativeImage::new(Image::open(&state.path, &state.options)?))
}

fn open_fd_work(state: &mut OpenFdState) -> Result<NativeImage, Failure> {
    let file = state.file.take().ok_or_else(Failure::closed)?;
    let path = std::path::Path::new(&state.name);
    // Locked as `Image::open` locks a file it opens (its parents are locked by the core).
    Ok(NativeImage::new(Image::open_file(
        file,
        path,
        &state.options,
    )?))
}

/// Opens `path` with the caller's `fs` flags and mode (what `fs.open` would do, in the same
/// task as the image: one trip to the thread pool instead of two), keeps that descriptor for
/// the caller and reads the image through a duplicate of it, as `openFd` does.
#[cfg(unix)]
fn open_path_work(state: &mut OpenPathState) -> Result<NativeImage, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    const ACCESS_MODES: i32 = 0o3; // O_ACCMODE: std sets the access mode from read/write.
    const O_RDONLY: i32 = 0;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(state.flags & ACCESS_MODES != O_RDONLY)
        .custom_flags(state.flags & !ACCESS_MODES)
        .mode(state.mode)
        .open(&state.path)
        .map_err(|source| {
            vhd_core::Error::io_at(
                std::path::Path::new(&state.path),
                "open",
                "opening the image",
                source,
            )
        })?;
    let path = std::path::Path::new(&state.path);
    let duplicate = file.try_clone().map_err(|source| {
        vhd_core::Error::io_at(path, "dup", "duplicating the descriptor", source)
    })?;
    let image = NativeImage::new(Image::open_file(duplicate, path, &state.options)?);
    *image.caller_fd.lock().map_err(|_| poisoned())? = Some(file);
    Ok(image)
}

#[cfg(not(unix))]
fn open_path_work(_state: &mut OpenPathState) -> Result<NativeImage, Failure> {
    Err(Failure::from(vhd_core::Error::Unsupported(
        "opening an image with fs flags (only on Unix)".into(),
    )))
}

/// A new descriptor for the same open file as `fd` (the caller keeps `fd`, and may close it
/// at once: the duplicate stays valid).
#[cfg(unix)]
fn duplicate_fd(fd: i32) -> Result<std::fs::File, Failure> {
    use std::os::fd::BorrowedFd;
    // SAFETY: the descriptor is only borrowed for the `fcntl(F_DUPFD_CLOEXEC)` below, on the
    // JavaScript thread, while the caller holds it; a descriptor that is not open makes the
    // duplication fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed.try_clone_to_owned().map_err(|e| {
        Failure::from(vhd_core::Error::io(
            format!("duplicating file descriptor {fd}"),
            e,
        ))
    })?;
    Ok(std::fs::File::from(owned))
}

#[cfg(not(unix))]
fn duplicate_fd(_fd: i32) -> Result<std::fs::File, Failure> {
    Err(Failure::from(vhd_core::Error::Unsupported(
        "opening an image from a file descriptor (only on Unix)".into(),
    )))
}

fn create_work(state: &mut CreateState) -> Result<NativeImage, Failure> {
    Ok(NativeImage::new(vhd_core::create(
        &state.path,
        &state.options,
    )?))
}

fn flush_work(image: &mut Shared) -> Result<(), Failure> {
    let mut guard = write_lock(image)?;
    let image = guard.as_mut().ok_or_else(Failure::closed)?;
    Ok(image.flush()?)
}

/// Flushes and drops the image. The image is closed even when the flush fails (the error is
/// reported), or when the lock was poisoned.
fn close_work(image: &mut Shared) -> Result<(), Failure> {
    let (taken, was_poisoned) = match image.write() {
        Ok(mut guard) => (guard.take(), false),
        Err(poison) => (poison.into_inner().take(), true),
    };
    let mut image = taken.ok_or_else(Failure::closed)?;
    if was_poisoned {
        drop(image);
        return Err(poisoned());
    }
    image.flush()?;
    Ok(())
}

fn to_napi<T>(env: &Env, result: Result<T, Failure>) -> napi::Result<T> {
    result.map_err(|failure| failure.into_napi(env))
}

#[napi]
impl NativeImage {
    /// Type, sizes, footer source, read-only state and every footer and header field, as
    /// they were when the image was opened.
    #[napi(getter)]
    pub fn info(&self) -> ImageInfo {
        self.snapshot.to_js()
    }

    /// The image as a handle: what reads and writes go through (`ioRead`, `ioWrite` in
    /// src/io.rs, and the `handle*Sync` functions below).
    #[napi(getter, ts_return_type = "ExternalObject<'image'>")]
    pub fn handle(&self) -> External<Shared> {
        External::new(self.image.clone())
    }

    /// Makes every write so far durable (data and metadata, fsync included).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush(&self) -> AsyncTask<Job<Shared, ()>> {
        AsyncTask::new(Job::new(self.image.clone(), flush_work))
    }

    /// Flushes, then closes the file. Later calls fail with `ERR_VHD_CLOSED`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<Shared, ()>> {
        AsyncTask::new(Job::new(self.image.clone(), close_work))
    }

    /// Number of allocated blocks (dynamic and differencing images), `null` for fixed images.
    /// Waits for a write in progress.
    #[napi(catch_unwind)]
    pub fn allocated_blocks(&self, env: Env) -> napi::Result<Option<u32>> {
        let result = guard(|| {
            let guard = read_lock(&self.image)?;
            Ok(match guard.as_ref().ok_or_else(Failure::closed)? {
                Image::Dynamic(dynamic) => Some(dynamic.bat().allocated().count() as u32),
                Image::Differencing(diff) => Some(diff.bat().allocated().count() as u32),
                Image::Fixed(_) => None,
            })
        });
        to_napi(&env, result)
    }

    /// The descriptor `openPath` opened with the caller's flags, handed over once (the
    /// caller closes it, after `close`); `null` for images opened otherwise, or when it was
    /// already taken.
    #[napi(catch_unwind)]
    pub fn take_fd(&self, env: Env) -> napi::Result<Option<i32>> {
        let taken = guard(|| Ok(self.caller_fd.lock().map_err(|_| poisoned())?.take()));
        #[cfg(unix)]
        let fd = to_napi(&env, taken)?.map(std::os::fd::IntoRawFd::into_raw_fd);
        #[cfg(not(unix))]
        let fd = to_napi(&env, taken)?.map(|_| unreachable!("openPath is Unix only"));
        Ok(fd)
    }

    /// The footer's 512 bytes as they were when the image was opened.
    #[napi]
    pub fn footer_bytes(&self) -> Buffer {
        Buffer::from(self.snapshot.footer().to_bytes().to_vec())
    }

    /// The dynamic disk header's 1024 bytes as they were when the image was opened (`null`
    /// for fixed images).
    #[napi]
    pub fn header_bytes(&self) -> Option<Buffer> {
        self.snapshot
            .header()
            .map(|h| Buffer::from(h.to_bytes().to_vec()))
    }

    /// The block allocation table as it is now (allocations not yet flushed included), as
    /// big-endian entries; `null` for fixed images. Waits for a write in progress.
    #[napi(catch_unwind)]
    pub fn bat_bytes(&self, env: Env) -> napi::Result<Option<Buffer>> {
        let result = guard(|| {
            let guard = read_lock(&self.image)?;
            Ok(match guard.as_ref().ok_or_else(Failure::closed)? {
                Image::Dynamic(dynamic) => Some(dynamic.bat().to_bytes()),
                Image::Differencing(diff) => Some(diff.bat().to_bytes()),
                Image::Fixed(_) => None,
            })
        });
        to_napi(&env, result).map(|bytes| bytes.map(Buffer::from))
    }

    /// False once `close` has run.
    #[napi(getter)]
    pub fn is_open(&self) -> bool {
        self.image.read().map(|g| g.is_some()).unwrap_or(false)
    }
}

// Reads and writes take the image's `handle` (an External) rather than being methods of
// `NativeImage`: as methods, napi-rs keeps a borrow lease on the JavaScript object for each
// call, which cost a third more CPU per small read (measured).

/// Reads `length` bytes at virtual offset `position` into `buffer[bufferOffset..]`, on the
/// JavaScript thread; returns the number of bytes read (short at the end of the disk, 0
/// past it).
#[napi(js_name = "handleReadSync", catch_unwind)]
pub fn handle_read_sync(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'image'>")] handle: &External<Shared>,
    mut buffer: Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> napi::Result<i64> {
    let result = guard(|| {
        let (range, position) = io_range(buffer.len(), buffer_offset, length, position)?;
        // SAFETY: a synchronous call: JavaScript cannot run while we write.
        let buf = unsafe { buffer.as_mut() };
        read_into(handle, &mut buf[range], position)
    });
    to_napi(&env, result)
}

/// Writes `buffer[bufferOffset..bufferOffset + length]` at virtual offset `position`, on the
/// JavaScript thread; returns the number of bytes written (all of them). A write past the
/// end of the disk fails with `ERR_VHD_OUT_OF_RANGE` and writes nothing.
#[napi(js_name = "handleWriteSync", catch_unwind)]
pub fn handle_write_sync(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'image'>")] handle: &External<Shared>,
    buffer: Uint8ArraySlice,
    buffer_offset: f64,
    length: f64,
    position: f64,
) -> napi::Result<i64> {
    let result = guard(|| {
        let (range, position) = io_range(buffer.len(), buffer_offset, length, position)?;
        write_from(handle, &buffer[range], position)
    });
    to_napi(&env, result)
}

/// Opens the image at `path`, detecting its type (or checking `options.expectedType`); a
/// differencing image is opened with its whole parent chain (the parents read-only).
#[napi(
    js_name = "open",
    catch_unwind,
    ts_return_type = "Promise<NativeImage>"
)]
pub fn open_image(
    env: Env,
    path: String,
    options: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<OpenState, NativeImage>>> {
    let options = to_napi(&env, guard(|| options.unwrap_or_default().to_core()))?;
    Ok(AsyncTask::new(Job::new(
        OpenState { path, options },
        open_work,
    )))
}

/// Opens the image in the file open as `fd` (Unix): the descriptor is duplicated at once, so
/// the caller keeps (and closes) its own. `path`, when given, names the file in messages and
/// is where a differencing image's relative parent locators start from; without it they
/// start from the current directory.
#[napi(
    js_name = "openFd",
    catch_unwind,
    ts_return_type = "Promise<NativeImage>"
)]
pub fn open_fd(
    env: Env,
    fd: f64,
    path: Option<String>,
    options: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<OpenFdState, NativeImage>>> {
    let prepared = guard(|| {
        let fd = non_negative_i32("fd", fd)?;
        let options = options.unwrap_or_default().to_core()?;
        Ok((fd, duplicate_fd(fd)?, options))
    });
    let (fd, file, options) = to_napi(&env, prepared)?;
    Ok(AsyncTask::new(Job::new(
        OpenFdState {
            file: Some(file),
            name: path.unwrap_or_else(|| format!("fd:{fd}")),
            options,
        },
        open_fd_work,
    )))
}

/// Opens `path` with `fs` open flags and mode (vhd@0.5.0's `VHD.Image`: `flags` decide
/// read-only or read-write; the caller never passes flags that create or truncate) and
/// resolves to the image; `takeFd()` then hands over the descriptor opened with those
/// flags, which the caller closes after the image (Unix).
#[napi(
    js_name = "openPath",
    catch_unwind,
    ts_return_type = "Promise<NativeImage>"
)]
pub fn open_path(
    env: Env,
    path: String,
    flags: f64,
    mode: f64,
    options: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<OpenPathState, NativeImage>>> {
    let prepared = guard(|| {
        let flags = non_negative_i32("flags", flags)?;
        let mode = u32::try_from(integer("mode", mode)?)
            .map_err(|_| Failure::out_of_range("mode", ">= 0 && <= 4294967295", mode))?;
        Ok((flags, mode, options.unwrap_or_default().to_core()?))
    });
    let (flags, mode, options) = to_napi(&env, prepared)?;
    Ok(AsyncTask::new(Job::new(
        OpenPathState {
            path,
            flags,
            mode,
            options,
        },
        open_path_work,
    )))
}

/// Creates a fixed, dynamic or differencing image at `path` and resolves to it, open
/// read-write.
#[napi(
    js_name = "create",
    catch_unwind,
    ts_return_type = "Promise<NativeImage>"
)]
pub fn create_image(
    env: Env,
    path: String,
    options: CreateArgs,
) -> napi::Result<AsyncTask<Job<CreateState, NativeImage>>> {
    let options = to_napi(&env, guard(|| options.to_core()))?;
    Ok(AsyncTask::new(Job::new(
        CreateState { path, options },
        create_work,
    )))
}

/// For the tests of panic handling only: panics in this call (`inTask` false) or on the
/// thread pool (`inTask` true); either must come back as an `ERR_VHD_INTERNAL` error.
#[napi(
    js_name = "_panicForTests",
    catch_unwind,
    ts_return_type = "Promise<void>"
)]
pub fn panic_for_tests(env: Env, in_task: bool) -> napi::Result<AsyncTask<Job<(), ()>>> {
    fn boom(_: &mut ()) -> Result<(), Failure> {
        // Unwinds like a panic, without the panic hook's message on stderr.
        std::panic::resume_unwind(Box::new("deliberate panic for the tests"))
    }
    if in_task {
        return Ok(AsyncTask::new(Job::new((), boom)));
    }
    to_napi(&env, guard(|| boom(&mut ())))?;
    unreachable!("boom always panics")
}

// ---------------------------------------------------------------------------------------
// Operations on an open image (issue 7): discard and the map of allocated ranges.

impl NativeImage {
    /// Wraps an image an operation opened (`snapshot`), for `lib/ops.js`.
    pub fn from_image(image: Image) -> NativeImage {
        NativeImage::new(image)
    }
}

pub struct DiscardState {
    image: Shared,
    offset: u64,
    length: u64,
}

fn discard_work(state: &mut DiscardState) -> Result<(), Failure> {
    let mut guard = write_lock(&state.image)?;
    let image = guard.as_mut().ok_or_else(Failure::closed)?;
    Ok(image.discard(state.offset, state.length)?)
}

impl From<vhd_core::ops::AllocatedRange> for AllocatedRangeInfo {
    fn from(range: vhd_core::ops::AllocatedRange) -> AllocatedRangeInfo {
        AllocatedRangeInfo {
            offset: range.offset as f64,
            length: range.length as f64,
            depth: range.depth as u32,
            file_offset: range.file_offset.map(|offset| offset as f64),
        }
    }
}

fn allocated_ranges_work(image: &mut Shared) -> Result<Vec<AllocatedRangeInfo>, Failure> {
    let ranges = with_image(image, |image| Ok(vhd_core::ops::allocated_ranges(image)?))?;
    Ok(ranges.into_iter().map(AllocatedRangeInfo::from).collect())
}

fn partitions_work(image: &mut Shared) -> Result<PartitionTableInfo, Failure> {
    let table = with_image(image, |image| {
        Ok(vhd_core::partition::read_partition_table(image)?)
    })?;
    Ok(table.into())
}

/// The partition numbered `index`, as `--partition N` of the CLI finds it (one rule:
/// [`vhd_core::partition::find_partition`]): it exists, is no extended partition, and lies
/// inside the disk.
fn partition_work(state: &mut PartitionState) -> Result<PartitionInfo, Failure> {
    let partition = with_image(&state.image, |image| {
        Ok(vhd_core::partition::find_partition(
            image,
            state.index,
            image.path(),
        )?)
    })?;
    Ok(partition.into())
}

pub struct PartitionState {
    image: Shared,
    index: u32,
}

/// Ranges a batch of [`RangeWalk::next`] holds at least (unless the disk ends first); at
/// most this plus one window's ([`vhd_core::ops::RangeCursor::MAX_HELD`]).
const RANGE_BATCH: usize = 4096;

/// A walk over the allocated ranges of an open image, a batch at a time, for
/// `disk.allocatedRanges()`: the cursor stays here between batches, each batch is found on
/// the thread pool under the image's read lock.
#[napi]
pub struct RangeWalk {
    image: Shared,
    cursor: Arc<Mutex<RangeCursor>>,
}

pub struct RangeWalkState {
    image: Shared,
    cursor: Arc<Mutex<RangeCursor>>,
}

fn range_batch_work(state: &mut RangeWalkState) -> Result<Vec<AllocatedRangeInfo>, Failure> {
    // One walk at a time (the JavaScript side asks for the next batch once the last came).
    let mut cursor = state
        .cursor
        .lock()
        .map_err(|_| Failure::internal("an earlier batch of ranges failed inside"))?;
    let mut batch = Vec::new();
    with_image(&state.image, |image| {
        while batch.len() < RANGE_BATCH && !cursor.is_finished() {
            cursor.next_ranges(image, &mut batch)?;
        }
        Ok(())
    })?;
    Ok(batch.into_iter().map(AllocatedRangeInfo::from).collect())
}

#[napi]
impl RangeWalk {
    /// The next ranges, in disk order; an empty array once the walk is over.
    #[napi(ts_return_type = "Promise<AllocatedRangeInfo[]>")]
    pub fn next(&self) -> AsyncTask<Job<RangeWalkState, Vec<AllocatedRangeInfo>>> {
        AsyncTask::new(Job::new(
            RangeWalkState {
                image: self.image.clone(),
                cursor: self.cursor.clone(),
            },
            range_batch_work,
        ))
    }
}

#[napi]
impl NativeImage {
    /// Says that `length` bytes at virtual offset `offset` are no longer needed: dynamic
    /// images unallocate whole blocks (they read as zeros), differencing images mark whole
    /// sectors absent (the parent shows through again); the rest is zeroed.
    #[napi(catch_unwind, ts_return_type = "Promise<void>")]
    pub fn discard(
        &self,
        env: Env,
        offset: f64,
        length: f64,
    ) -> napi::Result<AsyncTask<Job<DiscardState, ()>>> {
        let checked = guard(|| Ok((integer("offset", offset)?, integer("length", length)?)));
        let (offset, length) = to_napi(&env, checked)?;
        Ok(AsyncTask::new(Job::new(
            DiscardState {
                image: self.image.clone(),
                offset,
                length,
            },
            discard_work,
        )))
    }

    /// The allocated ranges of the virtual disk, in disk order, adjacent runs merged.
    #[napi(ts_return_type = "Promise<AllocatedRangeInfo[]>")]
    pub fn allocated_ranges(&self) -> AsyncTask<Job<Shared, Vec<AllocatedRangeInfo>>> {
        AsyncTask::new(Job::new(self.image.clone(), allocated_ranges_work))
    }

    /// The partition table of the virtual disk (MBR with its logical partitions, or GPT),
    /// read on the thread pool under the read lock: what can be believed of a damaged
    /// table, with findings for the rest.
    #[napi(ts_return_type = "Promise<PartitionTableInfo>")]
    pub fn partitions(&self) -> AsyncTask<Job<Shared, PartitionTableInfo>> {
        AsyncTask::new(Job::new(self.image.clone(), partitions_work))
    }

    /// The partition numbered `index` that a `VHD.Partition` may view: it exists, is no
    /// extended partition, and lies inside the disk (a RangeError,
    /// `ERR_VHD_INVALID_ARGUMENT`, that lists the partitions there are, otherwise).
    #[napi(ts_return_type = "Promise<PartitionInfo>")]
    pub fn partition(&self, index: u32) -> AsyncTask<Job<PartitionState, PartitionInfo>> {
        AsyncTask::new(Job::new(
            PartitionState {
                image: self.image.clone(),
                index,
            },
            partition_work,
        ))
    }

    /// A walk over the same ranges, fetched in batches (`RangeWalk::next`), with memory
    /// bounded whatever their count.
    #[napi]
    pub fn walk_allocated_ranges(&self) -> RangeWalk {
        RangeWalk {
            image: self.image.clone(),
            cursor: Arc::new(Mutex::new(RangeCursor::new())),
        }
    }
}
