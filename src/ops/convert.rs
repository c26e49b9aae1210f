//! `convert` and the VHD stream (`createVhdStream`): the bytes `convert` would write,
//! computed while they are read.

use super::{open_options, progress_task, to_napi, OpState, Operation, ProgressFn};
use crate::errors::{guard, Failure};
use crate::options::integer;
use crate::task::Job;
use crate::types::{ConvertArgs, ConvertResult, DetectedSource};
use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi::Env;
use napi_derive::napi;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use vhd_core::names::UnknownName;
use vhd_core::ops::{self, OutputFormat, SourceFormat, VhdStream};

/// Largest read of the VHD stream in one call (the JavaScript side asks for 1 MiB).
const MAX_STREAM_READ: usize = 16 << 20;

impl ConvertArgs {
    fn to_core(&self) -> Result<ops::ConvertOptions, Failure> {
        let to: OutputFormat = self
            .to
            .parse()
            .map_err(|e: UnknownName| Failure::invalid_value("to", e.to_string()))?;
        let block_size = match self.block_size {
            None => vhd_core::dynamic_header::DEFAULT_BLOCK_SIZE,
            Some(value) => {
                let value = integer("blockSize", value)?;
                u32::try_from(value).map_err(|_| {
                    Failure::out_of_range("blockSize", "a power of two of at most 256 MiB", value)
                })?
            }
        };
        let unique_id = self.unique_id.as_deref().map(unique_id).transpose()?;
        let timestamp = match self.timestamp {
            None => None,
            Some(value) => {
                let value = integer("timestamp", value)?;
                Some(u32::try_from(value).map_err(|_| {
                    Failure::out_of_range("timestamp", "at most 2^32 - 1 seconds after 2000", value)
                })?)
            }
        };
        Ok(ops::ConvertOptions {
            to,
            source_format: source_format(self.source_format.as_deref())?,
            azure: self.azure.unwrap_or(false),
            block_size,
            overwrite: self.overwrite.unwrap_or(false),
            unique_id,
            timestamp,
            open: open_options(&self.open)?,
            partition: None,
        })
    }
}

/// 32 hexadecimal digits → 16 bytes.
fn unique_id(hex: &str) -> Result<[u8; 16], Failure> {
    let invalid = || {
        Failure::invalid_value(
            "uniqueId",
            format!("expected 32 hexadecimal digits, received {hex:?}"),
        )
    };
    if hex.len() != 32 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
    }
    Ok(id)
}

fn source_format(value: Option<&str>) -> Result<SourceFormat, Failure> {
    value
        .map_or(Ok(SourceFormat::Auto), str::parse)
        .map_err(|e: UnknownName| Failure::invalid_value("sourceFormat", e.to_string()))
}

/// The binding's form of a source detection: what was decided, and the warnings for the
/// caller (none, or one when auto-detection read as raw a file that looked like a VHD).
fn detected(detection: &ops::SourceDetection) -> (DetectedSource, Vec<String>) {
    let format = match detection.format {
        SourceFormat::Vhd => "vhd",
        _ => "raw",
    };
    let source = DetectedSource {
        format: format.to_string(),
        reason: detection.reason.clone(),
    };
    (source, detection.warning.iter().cloned().collect())
}

pub struct ConvertJob {
    source: PathBuf,
    destination: PathBuf,
    options: ops::ConvertOptions,
}

fn convert_work(state: &mut OpState<ConvertJob>) -> Result<ConvertResult, Failure> {
    let report = state.with_progress(|job, progress| {
        ops::convert(&job.source, &job.destination, &job.options, progress)
    })?;
    let (detected, warnings) = detected(&report.detection);
    Ok(ConvertResult {
        source_size: report.source_size as f64,
        virtual_size: report.virtual_size as f64,
        file_size: report.file_size as f64,
        allocated_blocks: report.allocated_blocks as f64,
        detected,
        warnings,
    })
}

/// Converts `source` into a new image (or raw file) at `destination`.
#[napi(catch_unwind, ts_return_type = "Promise<ConvertResult>")]
pub fn convert(
    env: Env,
    source: String,
    destination: String,
    options: ConvertArgs,
    operation: &Operation,
    #[napi(ts_arg_type = "((report: ProgressReport) => void) | undefined | null")]
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<ConvertJob>, ConvertResult>>> {
    let options = to_napi(&env, guard(|| options.to_core()))?;
    let job = ConvertJob {
        source: source.into(),
        destination: destination.into(),
        options,
    };
    Ok(progress_task(job, operation, on_progress, convert_work))
}

type SharedStream = Arc<RwLock<Option<VhdStream>>>;

/// The bytes of the VHD file `convert` would write, computed while they are read.
#[napi]
pub struct NativeVhdStream {
    stream: SharedStream,
    length: u64,
    detection: ops::SourceDetection,
}

pub struct StreamJob {
    source: PathBuf,
    options: ops::ConvertOptions,
}

fn open_stream_work(state: &mut OpState<StreamJob>) -> Result<NativeVhdStream, Failure> {
    let (stream, detection) = state.with_progress(|job, progress| {
        let (source, detection) = ops::open_source_with_detection(
            &job.source,
            job.options.source_format,
            &job.options.open,
        )?;
        Ok((VhdStream::new(source, &job.options, progress)?, detection))
    })?;
    Ok(NativeVhdStream {
        length: stream.len(),
        stream: Arc::new(RwLock::new(Some(stream))),
        detection,
    })
}

/// Opens `source` and plans the VHD file (`options.to`: `'fixed'` or `'dynamic'`); dynamic
/// output reads the whole source first (reported as progress) to leave out all-zero blocks.
#[napi(catch_unwind, ts_return_type = "Promise<NativeVhdStream>")]
pub fn open_vhd_stream(
    env: Env,
    source: String,
    options: ConvertArgs,
    operation: &Operation,
    #[napi(ts_arg_type = "((report: ProgressReport) => void) | undefined | null")]
    on_progress: Option<ProgressFn>,
) -> napi::Result<AsyncTask<Job<OpState<StreamJob>, NativeVhdStream>>> {
    let options = to_napi(
        &env,
        guard(|| {
            let options = options.to_core()?;
            if options.to == OutputFormat::Raw {
                return Err(Failure::invalid_value(
                    "type",
                    "a VHD stream is 'fixed' or 'dynamic'",
                ));
            }
            Ok(options)
        }),
    )?;
    let job = StreamJob {
        source: source.into(),
        options,
    };
    Ok(progress_task(job, operation, on_progress, open_stream_work))
}

pub struct StreamRead {
    stream: SharedStream,
    length: usize,
    position: u64,
}

/// Reads into memory of its own, handed to JavaScript as the resolved Buffer: no pointer to
/// JavaScript memory crosses to the thread pool (see src/buffers.rs for why that matters).
fn stream_read_work(state: &mut StreamRead) -> Result<Buffer, Failure> {
    let guard = state
        .stream
        .read()
        .map_err(|_| Failure::internal("poisoned VHD stream"))?;
    let stream = guard.as_ref().ok_or_else(Failure::closed)?;
    let mut bytes = vec![0; state.length];
    let read = stream.read_at(&mut bytes, state.position)?;
    bytes.truncate(read);
    Ok(Buffer::from(bytes))
}

fn stream_close_work(stream: &mut SharedStream) -> Result<(), Failure> {
    // Waits for a read in progress; dropping the stream closes the source.
    let mut guard = stream.write().unwrap_or_else(|p| p.into_inner());
    guard.take();
    Ok(())
}

#[napi]
impl NativeVhdStream {
    /// Total length of the VHD file in bytes.
    #[napi(getter)]
    pub fn length(&self) -> f64 {
        self.length as f64
    }

    /// How the source is read, and why.
    #[napi(getter)]
    pub fn detected(&self) -> DetectedSource {
        detected(&self.detection).0
    }

    /// What the caller should know about the source (see `ConvertResult.warnings`).
    #[napi(getter)]
    pub fn warnings(&self) -> Vec<String> {
        detected(&self.detection).1
    }

    /// Reads `length` bytes (at most 16 MiB) at `position`; resolves to a new Buffer of the
    /// bytes read, short only at the end.
    #[napi(catch_unwind, ts_return_type = "Promise<Buffer>")]
    pub fn read(
        &self,
        env: Env,
        length: f64,
        position: f64,
    ) -> napi::Result<AsyncTask<Job<StreamRead, Buffer>>> {
        let checked = guard(|| {
            let length = integer("length", length)?;
            if length > MAX_STREAM_READ as u64 {
                return Err(Failure::out_of_range("length", "at most 16 MiB", length));
            }
            Ok((length as usize, integer("position", position)?))
        });
        let (length, position) = to_napi(&env, checked)?;
        Ok(AsyncTask::new(Job::new(
            StreamRead {
                stream: self.stream.clone(),
                length,
                position,
            },
            stream_read_work,
        )))
    }

    /// Closes the source (after a read in progress). Later reads fail with `ERR_VHD_CLOSED`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<SharedStream, ()>> {
        AsyncTask::new(Job::new(self.stream.clone(), stream_close_work))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_args_are_checked() {
        let args = ConvertArgs {
            to: "dynamic".into(),
            source_format: None,
            azure: None,
            block_size: None,
            overwrite: None,
            unique_id: None,
            timestamp: Some(5.0),
            open: None,
        };
        let with_id = ConvertArgs {
            unique_id: Some("00112233445566778899aabbccddeeff".into()),
            ..args.clone()
        };
        assert_eq!(with_id.to_core().unwrap().unique_id.unwrap()[15], 0xff);
        for bad in ["0011", "zz112233445566778899aabbccddeeff"] {
            let bad = ConvertArgs {
                unique_id: Some(bad.into()),
                ..args.clone()
            };
            assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        }
        let options = args.to_core().unwrap();
        assert_eq!(options.to, OutputFormat::Dynamic);
        assert_eq!(options.block_size, 2 << 20);
        assert_eq!(options.timestamp, Some(5));
        let bad = ConvertArgs {
            to: "vhdx".into(),
            ..args.clone()
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        let bad = ConvertArgs {
            source_format: Some("qcow2".into()),
            ..args.clone()
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        let bad = ConvertArgs {
            block_size: Some(-1.0),
            ..args
        };
        assert_eq!(bad.to_core().unwrap_err().code, "ERR_OUT_OF_RANGE");
    }
}
