//! `info`: the image opened read-only and described by the core's one JSON shape of it
//! ([`vhd_core::ops::ImageInfo::to_json`]), made a JavaScript object unchanged: the same
//! keys and values as `vhd info --json`, which prints the same value.

use super::maintenance::PathJob;
use super::{open_options, to_napi};
use crate::errors::{guard, Failure};
use crate::task::Job;
use crate::types::OpenArgs;
use napi::bindgen_prelude::{AsyncTask, Null, ToNapiValue, TypeName, ValueType};
use napi::{check_status, sys, Env};
use napi_derive::napi;
use std::ffi::CString;
use std::ptr;
use vhd_core::json::Json;
use vhd_core::ops;

/// A core JSON value as a plain JavaScript value: objects keep their key order, integers
/// are Numbers (exact up to 2^53; a crafted field above it rounds as `JSON.parse` rounds
/// the command line's exact text).
pub struct JsonValue(pub Json);

impl TypeName for JsonValue {
    fn type_name() -> &'static str {
        "JsonValue"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for JsonValue {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        match value.0 {
            Json::Null => ToNapiValue::to_napi_value(env, Null),
            Json::Bool(b) => ToNapiValue::to_napi_value(env, b),
            Json::UInt(n) => ToNapiValue::to_napi_value(env, n as f64),
            Json::Int(n) => ToNapiValue::to_napi_value(env, n as f64),
            Json::String(s) => ToNapiValue::to_napi_value(env, s),
            Json::Array(items) => {
                let items: Vec<JsonValue> = items.into_iter().map(JsonValue).collect();
                ToNapiValue::to_napi_value(env, items)
            }
            Json::Object(members) => {
                let mut object = ptr::null_mut();
                check_status!(sys::napi_create_object(env, &mut object))?;
                for (key, member) in members {
                    // Keys are the core's own names (no NUL in them).
                    let key = CString::new(key)
                        .map_err(|e| napi::Error::from_reason(format!("JSON key: {e}")))?;
                    let member = ToNapiValue::to_napi_value(env, JsonValue(member))?;
                    check_status!(sys::napi_set_named_property(
                        env,
                        object,
                        key.as_ptr(),
                        member
                    ))?;
                }
                Ok(object)
            }
        }
    }
}

fn info_work(job: &mut PathJob) -> Result<JsonValue, Failure> {
    Ok(JsonValue(ops::info_at(&job.path, &job.open)?.to_json()))
}

/// Opens the image read-only and describes it: `vhd info --json`'s object, a differencing
/// image whose parent chain is broken included (with `parentProblem`, as `vhd info`).
#[napi(catch_unwind, ts_return_type = "Promise<import('./index').ImageInfo>")]
pub fn info(
    env: Env,
    path: String,
    open: Option<OpenArgs>,
) -> napi::Result<AsyncTask<Job<PathJob, JsonValue>>> {
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
