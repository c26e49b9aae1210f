//! What an open image is: its type, sizes, where its footer came from, every field of its
//! footer and dynamic header, and (differencing images) the images below it, as plain
//! JavaScript objects.
//!
//! The values are raw: `index.js` shapes them into vhd@0.5.0's `Footer`/`Header` fields.
//! 64-bit fields are decimal strings, which `index.js` turns into BigInt: napi-rs makes
//! BigInt only with its `napi6` feature, and a string loses no bits either.

use crate::types::{FooterInfo, HeaderInfo, ImageInfo, LocatorInfo, ParentInfo};
use napi::bindgen_prelude::Buffer;
use vhd_core::{DynamicHeader, Footer, FooterSource, Image, Parent, ParentLocator, VirtualDisk};

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
            size: self.size as i64,
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
            size: self.size as i64,
            geometry_size: footer.geometry_size() as i64,
            block_size: self.header.as_ref().map(|h| h.block_size),
            footer_source: self.footer_source.to_string(),
            read_only: self.read_only_reason.is_some(),
            read_only_reason: self.read_only_reason.clone(),
            footer: footer_info(footer),
            header: self
                .header
                .as_ref()
                .map(|h| header_info(h, &self.locator_texts)),
            parents: self.parents.iter().map(ParentSnapshot::to_js).collect(),
        }
    }
}

fn footer_info(f: &Footer) -> FooterInfo {
    FooterInfo {
        cookie: "conectix".to_string(),
        features: f.features,
        format_version: f.format_version,
        data_offset: f.data_offset.to_string(),
        timestamp: f.timestamp,
        creator_application: Buffer::from(f.creator_application.to_vec()),
        creator_version: f.creator_version,
        creator_host_os: f.creator_host_os,
        original_size: f.original_size.to_string(),
        current_size: f.current_size.to_string(),
        cylinders: u32::from(f.geometry.cylinders),
        heads: u32::from(f.geometry.heads),
        sectors_per_track: u32::from(f.geometry.sectors_per_track),
        disk_type: f.disk_type_code,
        checksum: f.checksum,
        unique_id: Buffer::from(f.unique_id.to_vec()),
        saved_state: u32::from(f.saved_state),
        reserved: Buffer::from(f.reserved.to_vec()),
    }
}

fn header_info(h: &DynamicHeader, locator_texts: &[Option<String>; 8]) -> HeaderInfo {
    HeaderInfo {
        cookie: "cxsparse".to_string(),
        data_offset: h.data_offset.to_string(),
        table_offset: h.table_offset.to_string(),
        header_version: h.header_version,
        max_table_entries: h.max_table_entries,
        block_size: h.block_size,
        checksum: h.checksum,
        parent_unique_id: Buffer::from(h.parent_unique_id.to_vec()),
        parent_timestamp: h.parent_timestamp,
        reserved1: h.reserved1,
        parent_unicode_name: Buffer::from(h.parent_unicode_name.to_vec()),
        parent_name: h.parent_name(),
        parent_locators: h
            .parent_locators
            .iter()
            .zip(locator_texts)
            .map(|(l, text)| locator_info(l, text.clone()))
            .collect(),
        reserved2: Buffer::from(h.reserved2.to_vec()),
    }
}

fn locator_info(l: &ParentLocator, text: Option<String>) -> LocatorInfo {
    LocatorInfo {
        platform_code: l.platform_code,
        platform_data_space: l.platform_data_space,
        platform_data_length: l.platform_data_length,
        reserved: l.reserved,
        platform_data_offset: l.platform_data_offset.to_string(),
        text,
    }
}
