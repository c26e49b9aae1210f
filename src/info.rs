//! What an open image is: its type, sizes, where its footer came from, every field of its
//! footer and dynamic header, and (differencing images) the images below it, as plain
//! JavaScript objects.
//!
//! The footer and header are in the one form the binding gives them (src/structures.rs:
//! vhd@0.5.0's fields, 64-bit ones as BigInt), which `lib/structures.js` makes `VHD.Footer`
//! and `VHD.Header` instances of.

use crate::structures::{footer_fields, header_fields};
use crate::types::{ImageInfo, ParentInfo};
use napi::bindgen_prelude::Buffer;
use vhd_core::{DynamicHeader, Footer, FooterSource, Image, Parent, VirtualDisk};

/// The metadata of an image, taken when it is opened (it does not change while it is open).
#[derive(Debug, Clone)]
pub struct Snapshot {
    path: String,
    size: u64,
    footer: Footer,
    header: Option<DynamicHeader>,
    /// The decoded text of each parent locator (dynamic and differencing images).
    locator_texts: [Option<String>; 8],
    footer_source: FooterSource,
    read_only_reason: Option<String>,
    parents: Vec<ParentSnapshot>,
}

/// One image below a differencing image.
#[derive(Debug, Clone)]
struct ParentSnapshot {
    path: String,
    /// The footer of a VHD parent; `None` for a raw base.
    footer: Option<Footer>,
    size: u64,
}

impl ParentSnapshot {
    fn of(parent: &Parent) -> ParentSnapshot {
        ParentSnapshot {
            path: parent.path().to_string_lossy().into_owned(),
            footer: match parent {
                Parent::Image(image) => Some(image.footer().clone()),
                Parent::Raw(_) => None,
            },
            size: parent.disk().size(),
        }
    }

    fn to_js(&self) -> ParentInfo {
        let footer = self.footer.as_ref();
        ParentInfo {
            path: self.path.clone(),
            disk_type: footer.map(|f| f.disk_type_code),
            type_name: footer
                .map_or("raw", |f| f.disk_type().map_or("unknown", |t| t.name()))
                .to_string(),
            size: self.size as f64,
            unique_id: footer.map(|f| Buffer::from(f.unique_id.to_vec())),
            raw: footer.is_none(),
        }
    }
}

/// Every parent below `image`, nearest first (empty unless it is a differencing image).
fn parents_of(image: &Image) -> Vec<ParentSnapshot> {
    let mut parents = Vec::new();
    let mut next = image.parent();
    while let Some(parent) = next {
        parents.push(ParentSnapshot::of(parent));
        next = match parent {
            Parent::Image(image) => image.parent(),
            Parent::Raw(_) => None,
        };
    }
    parents
}

impl Snapshot {
    pub fn of(image: &Image) -> Snapshot {
        Snapshot {
            path: image.path().to_string_lossy().into_owned(),
            size: image.size(),
            footer: image.footer().clone(),
            header: image.header().cloned(),
            locator_texts: image.parent_locator_texts().unwrap_or_default(),
            footer_source: image.footer_source(),
            read_only_reason: image.read_only_reason().map(str::to_string),
            parents: parents_of(image),
        }
    }

    /// The footer the image was opened with.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The dynamic disk header (dynamic and differencing images).
    pub fn header(&self) -> Option<&DynamicHeader> {
        self.header.as_ref()
    }

    pub fn to_js(&self) -> ImageInfo {
        let footer = &self.footer;
        ImageInfo {
            path: self.path.clone(),
            disk_type: footer.disk_type_code,
            type_name: footer
                .disk_type()
                .map(|t| t.name())
                .unwrap_or("unknown")
                .to_string(),
            size: self.size as f64,
            geometry_size: footer.geometry_size() as f64,
            block_size: self.header.as_ref().map(|h| h.block_size),
            footer_source: self.footer_source.to_string(),
            read_only: self.read_only_reason.is_some(),
            read_only_reason: self.read_only_reason.clone(),
            footer: footer_fields(footer),
            header: self
                .header
                .as_ref()
                .map(|h| header_fields(h, h.parent_locators.len())),
            locator_texts: match self.header {
                Some(_) => self.locator_texts.to_vec(),
                None => Vec::new(),
            },
            parents: self.parents.iter().map(ParentSnapshot::to_js).collect(),
        }
    }
}
