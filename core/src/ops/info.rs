//! Everything known about an image, for `vhd info`.

use crate::error::{Error, Result};
use crate::Image;
use std::path::PathBuf;

/// One image of a parent chain.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    pub path: PathBuf,
}

/// Every footer and header field, the parent chain and the allocated size of an image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub chain: Vec<ChainEntry>,
}

/// Describes an open image.
pub fn info(image: &Image) -> Result<ImageInfo> {
    let _ = image;
    Err(Error::Unsupported(format!("{} is not implemented yet", module_path!())))
}
