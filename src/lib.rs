//! Node.js binding of `vhd-core`: a thin native layer that `index.js` wraps.
//!
//! - [`image`]: the `NativeImage` class and the `open`/`create` functions;
//! - [`io`]: asynchronous reads and writes (an I/O thread pool and a completion port);
//! - [`task`]: the libuv thread-pool task behind every other asynchronous method;
//! - [`options`]: argument objects and number checks;
//! - [`info`]: the image's metadata as JavaScript objects;
//! - [`ops`]: the maintenance operations (convert, check, compact…) with progress and cancel,
//!   one module per family;
//! - [`serve`]: `VHD.serve`, an NBD server (crate `vhd-nbd`) for an open image;
//! - [`errors`]: Rust errors and panics → JavaScript errors with a stable `code`;
//! - [`types`]: every object passed to or returned from JavaScript (`#[napi(object)]`).
//!
//! No format logic lives here: everything about VHD is in `vhd-core`.
//!
//! 64-bit values, one rule for every object returned: the fields of the on-disk structures
//! that are 64 bits wide (a footer's data offset, original and current size; a header's
//! data and table offsets; a locator's data offset) are BigInts (`u64`), as vhd@0.5.0 gave
//! them: a crafted image may hold any value there. Every other size, offset or count
//! (`f64`) is a Number, exact because the images we open are far below 2^53 bytes; `info`
//! is the command line's JSON, whose integers are Numbers too (see `ops::info`).

#![deny(clippy::all)]
// napi-rs registers exports only outside `cfg(test)`, so unit-test builds see them as unused.
#![cfg_attr(test, allow(dead_code))]

mod buffers;
mod cli;
mod errors;
mod image;
mod info;
mod io;
mod ops;
mod options;
mod serve;
mod structures;
mod task;
mod types;

use napi_derive::napi;
use vhd_core::names::Named;

/// Version of the native addon (the crate version).
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The names the options take, from vhd-core's tables: the JavaScript layer checks its
/// arguments against these lists instead of keeping its own.
#[napi]
pub fn names() -> types::Names {
    fn list<T: Named>() -> Vec<String> {
        T::names().into_iter().map(String::from).collect()
    }
    types::Names {
        disk_types: list::<vhd_core::DiskType>(),
        output_formats: list::<vhd_core::ops::OutputFormat>(),
        source_formats: list::<vhd_core::ops::SourceFormat>(),
    }
}
