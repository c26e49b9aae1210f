//! Memory that the native side owns for a read or write in flight.
//!
//! An asynchronous request never lets another thread touch JavaScript memory. A caller's
//! `ArrayBuffer` can be freed or unmapped while a request waits in the queue, whatever
//! reference we keep to the JavaScript object: transferring it (`postMessage`,
//! `structuredClone(…, { transfer })`) hands its memory to another owner who may free it, and
//! shrinking a resizable one decommits its pages. Node-API offers no way to pin the memory
//! itself. So a write copies the caller's bytes into a buffer from here before it is queued,
//! and a read fills a buffer from here that the JavaScript thread copies into the caller's
//! buffer when it settles the request, once it has checked that the buffer is still there
//! (src/io.rs). Measured against reading into the caller's memory directly, the extra copy
//! costs a few percent of a 4 KiB request and about a fifth of a 1 MiB one from the page
//! cache (see docs/performance.md).
//!
//! Buffers are recycled: a fresh allocation of a large buffer costs a page fault per 4 KiB
//! on first use, more than the copy itself. The cache is process-wide because the requests
//! of every JavaScript environment share the I/O threads; it holds at most
//! [`CACHED_BYTES`], in power-of-two size classes.

use std::sync::{Mutex, MutexGuard};

/// The smallest size class: 4 KiB, a page (smaller requests use a buffer of this size).
const MIN_CLASS: u32 = 12;

/// The largest size class kept for reuse: 16 MiB. Larger requests allocate and free their
/// own buffer (they are rare, and their own I/O dwarfs an allocation).
const MAX_CLASS: u32 = 24;

/// Bytes of idle buffers kept for reuse, all classes together.
const CACHED_BYTES: usize = 64 << 20;

const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;

struct Cache {
    /// Idle buffers per size class; each `Vec`'s length is its class's size.
    idle: [Vec<Vec<u8>>; CLASSES],
    /// Total length of the idle buffers.
    bytes: usize,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    idle: [const { Vec::new() }; CLASSES],
    bytes: 0,
});

/// Locks the cache, ignoring poisoning: its sections only push and pop whole buffers.
fn cache() -> MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The size class of a buffer of at least `len` bytes, or `None` above the largest.
fn class_of(len: usize) -> Option<usize> {
    let bits = len
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .max(MIN_CLASS);
    (bits <= MAX_CLASS).then(|| (bits - MIN_CLASS) as usize)
}

/// A buffer of at least `len` bytes (its contents are whatever it last held). Give it back
/// with [`give`] when the request is done.
pub(crate) fn take(len: usize) -> Vec<u8> {
    let Some(class) = class_of(len) else {
        return vec![0; len];
    };
    let reused = {
        let mut cache = cache();
        let buffer = cache.idle[class].pop();
        if let Some(buffer) = &buffer {
            cache.bytes -= buffer.len();
        }
        buffer
    };
    reused.unwrap_or_else(|| vec![0; 1 << (class as u32 + MIN_CLASS)])
}

/// Returns a buffer made by [`take`] for reuse (or frees it when the cache is full).
pub(crate) fn give(buffer: Vec<u8>) {
    let Some(class) =
        class_of(buffer.len()).filter(|&c| buffer.len() == 1 << (c as u32 + MIN_CLASS))
    else {
        return;
    };
    let mut cache = cache();
    if cache.bytes + buffer.len() <= CACHED_BYTES {
        cache.bytes += buffer.len();
        cache.idle[class].push(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_a_class() {
        assert_eq!(take(1).len(), 4096);
        assert_eq!(take(4096).len(), 4096);
        assert_eq!(take(4097).len(), 8192);
        assert_eq!(take(1 << 20).len(), 1 << 20);
        assert_eq!(take((16 << 20) + 1).len(), (16 << 20) + 1);
    }

    #[test]
    fn buffers_are_reused_and_the_cache_is_bounded() {
        let buffer = take(3 << 20);
        let address = buffer.as_ptr();
        give(buffer);
        let again = take(3 << 20);
        assert_eq!(again.as_ptr(), address);
        // Buffers of no class (or not made here) are simply dropped.
        give(vec![0; 100]);
        give(vec![0; 32 << 20]);
        for _ in 0..8 {
            give(vec![0; 16 << 20]);
        }
        assert!(cache().bytes <= CACHED_BYTES);
    }
}
