//! `info`: the fields of the CLI's `info --json`; `lib/ops.js` puts them in its order, with
//! `null` for what is absent and time stamps as ISO 8601.

use super::maintenance::PathJob;
use super::{open_options, to_napi};
use crate::errors::guard;
use crate::errors::Failure;
use crate::task::Job;
use crate::types::OpenArgs;
use crate::types::{
    ChainResult, ChecksumResult, CreatorResult, FeaturesResult, FooterFields, GeometryResult,
    HeaderFields, InfoResult, LocatorResult, ParentResult,
};
use napi::bindgen_prelude::AsyncTask;
use napi::Env;
use napi_derive::napi;
use vhd_core::footer::{
    format_unique_id, FEATURE_RESERVED, FEATURE_TEMPORARY, HOST_OS_MACINTOSH, HOST_OS_WINDOWS,
    NO_DATA_OFFSET,
};
use vhd_core::ops;
use vhd_core::{DynamicHeader, Footer, FooterSource};

fn checksum_result(checksum: ops::ChecksumInfo) -> ChecksumResult {
    ChecksumResult {
        stored: checksum.stored,
        computed: checksum.computed,
        valid: checksum.is_valid(),
    }
}

/// A data offset; a fixed image's (all ones) is `None`.
fn data_offset(offset: u64) -> Option<f64> {
    (offset != NO_DATA_OFFSET).then_some(offset as f64)
}

fn host_os(code: u32) -> String {
    match code {
        HOST_OS_WINDOWS => "Windows".into(),
        HOST_OS_MACINTOSH => "Macintosh".into(),
        other => format!("{:?}", String::from_utf8_lossy(&other.to_be_bytes())),
    }
}

fn footer_fields(footer: &Footer) -> FooterFields {
    FooterFields {
        features: footer.features,
        format_version: footer.format_version,
        data_offset: data_offset(footer.data_offset),
        timestamp: footer.timestamp,
        creator_application: footer.creator_application_str(),
        creator_version: footer.creator_version,
        creator_host_os: footer.creator_host_os,
        original_size: footer.original_size as f64,
        current_size: footer.current_size as f64,
        disk_type: footer.disk_type_code,
        checksum: footer.checksum,
        unique_id: format_unique_id(&footer.unique_id),
        saved_state: u32::from(footer.saved_state),
    }
}

fn header_fields(header: &DynamicHeader) -> HeaderFields {
    HeaderFields {
        data_offset: data_offset(header.data_offset),
        table_offset: header.table_offset as f64,
        header_version: header.header_version,
        max_table_entries: header.max_table_entries,
        block_size: header.block_size,
        checksum: header.checksum,
        parent_unique_id: format_unique_id(&header.parent_unique_id),
        parent_timestamp: header.parent_timestamp,
        parent_name: header.parent_name(),
    }
}

fn locator_result(locator: &ops::LocatorInfo) -> LocatorResult {
    LocatorResult {
        index: locator.index as u32,
        platform_code: locator.entry.platform_name(),
        data_space: locator.entry.platform_data_space,
        data_length: locator.entry.platform_data_length,
        data_offset: locator.entry.platform_data_offset as f64,
        path: locator.path.clone(),
    }
}

fn info_result(info: ops::ImageInfo) -> InfoResult {
    let footer = &info.footer;
    let (major, minor) = footer.creator_version_parts();
    InfoResult {
        path: info.path.display().to_string(),
        disk_type: info.disk_type.name().to_string(),
        virtual_size: info.virtual_size as f64,
        geometry: GeometryResult {
            cylinders: u32::from(footer.geometry.cylinders),
            heads: u32::from(footer.geometry.heads),
            sectors_per_track: u32::from(footer.geometry.sectors_per_track),
            size: info.geometry_size as f64,
        },
        block_size: info.header.as_ref().map(|h| h.block_size),
        allocated_bytes: info.allocated_bytes as f64,
        allocated_blocks: info.allocated_blocks.map(|n| n as f64),
        file_size: info.file_size as f64,
        disk_usage: info.disk_usage.map(|n| n as f64),
        creator: CreatorResult {
            application: footer.creator_application_str(),
            version: format!("{major}.{minor}"),
            host_os: host_os(footer.creator_host_os),
        },
        unique_id: format_unique_id(&footer.unique_id),
        timestamp: footer.timestamp,
        features: FeaturesResult {
            value: footer.features,
            temporary: footer.features & FEATURE_TEMPORARY != 0,
            reserved: footer.features & FEATURE_RESERVED != 0,
        },
        footer_checksum: checksum_result(info.footer_checksum),
        header_checksum: info.header_checksum.map(checksum_result),
        footer_source: match info.footer_source {
            FooterSource::End => "end",
            FooterSource::End511 => "end511",
            FooterSource::Copy => "copy",
        }
        .to_string(),
        footer: footer_fields(footer),
        header: info.header.as_ref().map(header_fields),
        parent: info.parent.as_ref().map(|parent| ParentResult {
            name: parent.name.clone(),
            unique_id: format_unique_id(&parent.unique_id),
            timestamp: parent.timestamp,
            timestamp_recorded: parent.timestamp_recorded,
            path: parent.path.display().to_string(),
            locators: info.parent_locators.iter().map(locator_result).collect(),
        }),
        chain: info
            .chain
            .iter()
            .map(|entry| ChainResult {
                path: entry.path.display().to_string(),
                kind: entry.kind.name().to_string(),
                virtual_size: entry.virtual_size as f64,
            })
            .collect(),
    }
}

fn info_work(job: &mut PathJob) -> Result<InfoResult, Failure> {
    let image = vhd_core::Image::open(&job.path, &job.open)?;
    Ok(info_result(ops::info(&image)?))
}

/// Opens the image read-only and describes it.
#[napi(catch_unwind, ts_return_type = "Promise<InfoResult>")]
pub fn info(
    env: Env,
    path: String,
    open: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<PathJob, InfoResult>>> {
    let mut open = to_napi(&env, guard(|| open_options(&open)))?;
    open.read_only = true;
    Ok(AsyncTask::new(Job::new(
        PathJob {
            path: path.into(),
            open,
        },
        info_work,
    )))
}
