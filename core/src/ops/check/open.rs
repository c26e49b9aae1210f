//! Opening the image as a reader would: the parent link, and whatever else stops it.

use super::{CheckOptions, CheckReport, FindingKind, Severity};
use crate::error::Error;
use crate::footer::DiskType;
use crate::image::Image;
use crate::storage::Storage;
use std::path::Path;

/// Opens the image as a reader would (checksums ignored, read-only): this checks the parent
/// link of a differencing image, and catches whatever makes the image unusable that the
/// structure checks did not name.
pub(super) fn open_check(
    file: Box<dyn Storage>,
    path: &Path,
    options: &CheckOptions,
    report: &mut CheckReport,
) {
    let differencing = report.disk_type == Some(DiskType::Differencing);
    if differencing && options.skip_parent {
        return;
    }
    let open_options = options.open_for_reading();
    let corrupt_already = report.has_corruption();
    let mut add = |severity, kind, message: String| report.add(severity, kind, None, || message);
    match Image::open_storage(file, path, &open_options) {
        Ok(image) => {
            if let Some(parent) = image.parent() {
                report.parent = Some(parent.path().to_path_buf());
            }
        }
        // Not the image's fault (a file that cannot be read, a parent locked for writing
        // elsewhere), but the check could not be finished.
        Err(e) if matches!(e.root(), Error::Io { .. } | Error::Locked { .. }) => {
            let kind = if differencing {
                FindingKind::ParentNotChecked
            } else {
                FindingKind::OpenFailed
            };
            add(
                Severity::Info,
                kind,
                format!("the image could not be opened to finish the check: {e}"),
            );
        }
        Err(e) if differencing && is_parent_error(&e) => {
            let kind = match &e {
                Error::ParentNotFound { .. } => FindingKind::ParentNotFound,
                Error::ParentMismatch { .. } => FindingKind::ParentMismatch,
                Error::ParentModified { .. } => FindingKind::ParentModified,
                _ => FindingKind::ParentUnusable,
            };
            add(Severity::Corrupt, kind, e.to_string());
        }
        // The structure checks already said what is wrong; the open only repeats it.
        Err(e) if corrupt_already => {
            if differencing {
                add(
                    Severity::Info,
                    FindingKind::ParentNotChecked,
                    format!("the parent link was not checked: the image does not open ({e})"),
                );
            }
        }
        Err(e) => add(
            Severity::Corrupt,
            FindingKind::OpenFailed,
            format!("the image does not open: {e}"),
        ),
    }
}

/// Whether `e` is about a differencing image's parent chain (the parent missing, another
/// image, modified, outside the root, looping, too deep, unusable) rather than the image
/// itself: the check reports it as a parent link finding, `ops::info_at` describes the
/// image without its parent.
pub(crate) fn is_parent_error(e: &Error) -> bool {
    matches!(
        e,
        Error::ParentNotFound { .. }
            | Error::ParentMismatch { .. }
            | Error::ParentModified { .. }
            | Error::Parent { .. }
            | Error::ParentLoop { .. }
            | Error::ChainTooDeep { .. }
            | Error::ParentOutsideRoot { .. }
            | Error::ParentSearchLimit { .. }
    )
}
