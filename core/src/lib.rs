//! Microsoft Virtual Hard Disk (VHD) images: read, write and create fixed and dynamic
//! images, byte for byte as Hyper-V, Virtual PC, qemu and libvhdi lay them out.
//!
//! The on-disk structures ([`Footer`], [`DynamicHeader`], [`ParentLocator`],
//! [`BlockAllocationTable`], [`SectorBitmap`], [`Geometry`]) parse from and write to their
//! exact bytes. [`Image`] opens an image of any kind behind the [`VirtualDisk`] interface:
//! read and write at any byte offset, flush, size. [`create`] makes new images.
//!
//! ```no_run
//! use vhd_core::{create, CreateOptions, DiskType, VirtualDisk};
//!
//! let mut disk = create("disk.vhd", &CreateOptions::new(DiskType::Dynamic, 64 << 20))?;
//! disk.write_at(b"hello", 1 << 20)?;
//! disk.flush()?;
//! let mut buf = [0u8; 5];
//! disk.read_at(&mut buf, 1 << 20)?;
//! assert_eq!(&buf, b"hello");
//! # Ok::<(), vhd_core::Error>(())
//! ```

pub mod bat;
/// Structure checks (`qemu-img check` for VHD), at their old path: the module lives beside
/// repair, in [`ops::check`].
pub use ops::check;
pub mod checksum;
mod create;
pub mod dynamic_header;
mod error;
mod files;
pub mod footer;
pub mod geometry;
mod image;
pub mod json;
pub mod names;
mod new_file;
pub mod ops;
pub mod parent_locator;
pub mod partition;
pub mod sector_bitmap;
pub mod sniff;
pub mod storage;
mod zeros;

pub use bat::BlockAllocationTable;
pub use check::{check, check_storage, CheckOptions, CheckReport, Finding, FindingKind, Severity};
pub use create::{
    create, CreateOptions, BLOCK_SIZE_RANGE, DEFAULT_CREATOR_APPLICATION,
    MAX_CREATED_TABLE_ENTRIES, MAX_DYNAMIC_SIZE, MAX_FIXED_SIZE,
};
pub use dynamic_header::DynamicHeader;
pub use error::{Error, Hint, ParentRejection, Result, TriedParent};
pub use footer::{DiskType, Footer};
pub use geometry::Geometry;
#[doc(hidden)]
pub use image::candidates_opened;
pub use image::write_zeros;
pub use image::{
    DifferencingImage, DynamicImage, FixedImage, FooterSource, Image, OpenOptions, Parent,
    ParentPath, RawDisk, VirtualDisk, MAX_CHAIN_DEPTH, MAX_PARENT_CANDIDATES,
};
pub use parent_locator::ParentLocator;
pub use sector_bitmap::SectorBitmap;
pub use storage::{FaultStorage, MemoryStorage, Storage};
