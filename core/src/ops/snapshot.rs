//! A new differencing child of an image, in one call.

use crate::error::Result;
use crate::{create, CreateOptions, Image, OpenOptions};
use std::path::Path;

/// Creates `child`, a new (empty) differencing image over the image at `path`, and
/// returns it open read-write (and locked, as [`crate::create`] leaves it).
///
/// `options` say how to open the image at `path` and its chain, as [`Image::open`] takes
/// them (see [`CreateOptions::parent_open`]): the image at `path` is named by the caller,
/// so it is trusted, while the images below it, found through its locators, must lie in
/// [`OpenOptions::parent_root`] when one is set. It is opened read-only whatever
/// `options.read_only` says.
///
/// The child takes the parent's size and block size, records its unique id and
/// modification time, and locates it as [`crate::create`] does (`W2ku` absolute path,
/// `W2ru` path relative to the child's folder, `MacX` file URL). From then on the image at
/// `path` must not be written: the child would no longer open (its parent changed).
/// Fails with [`crate::Error::AlreadyExists`] when `child` exists, and with the usual open
/// errors when the image at `path` (or its chain) cannot be opened.
pub fn snapshot(path: &Path, child: &Path, options: &OpenOptions) -> Result<Image> {
    create(
        child,
        &CreateOptions {
            parent_open: options.clone(),
            ..CreateOptions::differencing(path)
        },
    )
}
