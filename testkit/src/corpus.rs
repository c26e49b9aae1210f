//! The corpus of real images made by other software (`shared/corpus` beside the repository,
//! or `VHD_CORPUS_DIR`).

use crate::{decompress, skip, TempDir};
use std::path::{Path, PathBuf};

/// The corpus of images made by other software (`shared/corpus` beside the repository, or
/// `VHD_CORPUS_DIR`), or `None` after reporting the test as skipped.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("VHD_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        // CARGO_MANIFEST_DIR is `<repo>/testkit`; the corpus is `<repo>/../shared/corpus`.
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        skip(&format!(
            "the VHD corpus is not installed (no README.md in {}; set VHD_CORPUS_DIR)",
            dir.display()
        ));
        None
    }
}

/// Copies a file to `to`, writable: corpus files are stored read-only, and `fs::copy`
/// copies their permissions too.
pub fn copy_writable(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let mut permissions = std::fs::metadata(to).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(to, permissions).unwrap();
}

/// A corpus image copied (decompressed) into `dir` as `name`, writable.
pub fn corpus_copy(corpus: &Path, file: &str, dir: &TempDir, name: &str) -> Option<PathBuf> {
    let source = corpus.join(file);
    let target = dir.join(name);
    if file.ends_with(".gz") || file.ends_with(".bz2") {
        // Decompressed into a new file, which is writable already.
        std::fs::rename(decompress(&source, dir.path())?, &target).unwrap();
    } else {
        copy_writable(&source, &target);
    }
    Some(target)
}
