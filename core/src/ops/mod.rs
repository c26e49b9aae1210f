//! Maintenance operations on whole images: what `qemu-img` and `vhd-util` offer for VHD.
//!
//! Each operation takes paths, opens what it needs itself (with the usual locks), and
//! reports progress and honours cancellation through a [`Progress`]. Each one that opens a
//! parent chain takes the caller's [`OpenOptions`](crate::OpenOptions) for it (directly, or
//! in a field `open` of its own options), so that `parent_root`, `parents`, `lock`… apply
//! to every file it opens.

// Structure checks (`qemu-img check` for VHD); also at `vhd_core::check`.
pub mod check;
mod commit;
mod compact;
mod convert;
mod info;
mod map;
mod progress;
mod read_ahead;
mod rebase;
mod repair;
mod resize;
mod snapshot;
mod source;
mod vhd_stream;

pub use commit::{commit, commit_through, CommitReport};
pub use compact::{compact, CompactReport};
pub use convert::{convert, ConvertOptions, ConvertReport, OutputFormat, SourceFormat};
pub use info::{
    creator_version_text, host_os_name, info, info_at, iso_time, ChainEntry, ChainKind,
    ChecksumInfo, ImageInfo, LocatorInfo, ParentInfo, ParentProblem,
};
pub use map::{
    allocated_ranges, allocated_ranges_iter, AllocatedRange, AllocatedRanges, RangeCursor,
    MAX_LISTED_RANGES,
};
pub use progress::Progress;
pub use rebase::{rebase, rebase_through};
pub use repair::{repair, repair_through, repair_with, RepairAction, RepairOptions, RepairReport};
pub use resize::{resize, resize_through, ResizeOptions, ResizeReport};
pub use snapshot::snapshot;
pub use source::{detect_source_format, open_source, open_source_with_detection, SourceDetection};
pub use vhd_stream::{Source, VhdStream};
