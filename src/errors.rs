//! Rust errors → JavaScript errors with a stable `code`.
//!
//! Every failure the binding reports is first a [`Failure`]: which JS error class to build,
//! the `code` property, the message and, for OS errors, `errno`. A `Failure` becomes a JS
//! error object only on the JavaScript thread ([`Failure::into_napi`]): synchronous methods
//! return it directly, asynchronous tasks keep it until their `reject` callback runs.

use napi::bindgen_prelude::{Object, Unknown};
use napi::{Env, JsError, JsRangeError, JsTypeError, JsValue};
use std::any::Any;

/// The JavaScript constructor of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Error,
    TypeError,
    RangeError,
}

/// An error on its way to JavaScript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
    /// The negated OS error number, as Node sets `errno` on its own I/O errors (Unix only).
    pub errno: Option<i32>,
}

impl Failure {
    pub fn new(class: ErrorClass, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            class,
            code: code.to_string(),
            message: message.into(),
            errno: None,
        }
    }

    /// Use of an image that is not open (closed, or never opened).
    pub fn closed() -> Failure {
        Failure::new(ErrorClass::Error, "ERR_VHD_CLOSED", "the image is closed")
    }

    /// A bug in this library (a panic, a poisoned lock): never a problem of the image.
    pub fn internal(message: impl std::fmt::Display) -> Failure {
        Failure::new(
            ErrorClass::Error,
            "ERR_VHD_INTERNAL",
            format!("internal error in the vhd native addon: {message}"),
        )
    }

    /// A panic caught by `catch_unwind`.
    pub fn from_panic(payload: Box<dyn Any + Send>) -> Failure {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_string()
        };
        Failure::internal(format!("panic: {message}"))
    }

    /// A number argument that is not a non-negative safe integer, or is too large.
    pub fn out_of_range(
        name: &str,
        requirement: &str,
        received: impl std::fmt::Display,
    ) -> Failure {
        Failure::new(
            ErrorClass::RangeError,
            "ERR_OUT_OF_RANGE",
            format!("The value of \"{name}\" is out of range. It must be {requirement}. Received {received}"),
        )
    }

    /// An argument of an acceptable type but an unacceptable value.
    pub fn invalid_value(name: &str, reason: impl std::fmt::Display) -> Failure {
        Failure::new(
            ErrorClass::TypeError,
            "ERR_INVALID_ARG_VALUE",
            format!("The argument '{name}' is invalid: {reason}"),
        )
    }

    /// Builds the JavaScript error object (on the JavaScript thread) and wraps it so that
    /// napi-rs throws or rejects with exactly that object, `code` included.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        let errno = self.errno;
        let error = napi::Error::new(self.code, self.message);
        let value: Unknown = match self.class {
            ErrorClass::Error => JsError::from(error).into_unknown(*env),
            ErrorClass::TypeError => JsTypeError::from(error).into_unknown(*env),
            ErrorClass::RangeError => JsRangeError::from(error).into_unknown(*env),
        };
        if let Some(errno) = errno {
            // Best effort: an error without `errno` is still the right error.
            let _ = value
                .coerce_to_object()
                .and_then(|mut object: Object| object.set("errno", errno));
        }
        napi::Error::from(value)
    }
}

impl From<vhd_core::Error> for Failure {
    fn from(error: vhd_core::Error) -> Failure {
        let class = match error {
            vhd_core::Error::OutOfRange { .. } | vhd_core::Error::InvalidArgument { .. } => {
                ErrorClass::RangeError
            }
            _ => ErrorClass::Error,
        };
        if let vhd_core::Error::Io { source, .. } = &error {
            if let Some(name) = os_error_name(source) {
                return Failure {
                    class,
                    code: name.to_string(),
                    message: format!("{name}: {error}"),
                    errno: errno_property(source),
                };
            }
        }
        Failure {
            class,
            code: error.code().to_string(),
            message: error.to_string(),
            errno: None,
        }
    }
}

/// Node's name for an OS error (`ENOENT`, `EACCES`, …), or `None` for uncommon ones, which
/// keep the core's `ERR_VHD_IO`.
fn os_error_name(error: &std::io::Error) -> Option<&'static str> {
    #[cfg(unix)]
    if let Some(name) = error.raw_os_error().and_then(unix_errno_name) {
        return Some(name);
    }
    use std::io::ErrorKind as K;
    Some(match error.kind() {
        K::NotFound => "ENOENT",
        K::PermissionDenied => "EACCES",
        K::AlreadyExists => "EEXIST",
        K::StorageFull => "ENOSPC",
        K::IsADirectory => "EISDIR",
        K::NotADirectory => "ENOTDIR",
        K::ReadOnlyFilesystem => "EROFS",
        K::FileTooLarge => "EFBIG",
        K::ResourceBusy => "EBUSY",
        K::InvalidFilename => "ENAMETOOLONG",
        K::QuotaExceeded => "EDQUOT",
        K::Interrupted => "EINTR",
        K::WouldBlock => "EAGAIN",
        _ => return None,
    })
}

/// Error numbers 1–34 are the same on Linux, macOS and the BSDs; the others differ.
#[cfg(unix)]
fn unix_errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        9 => "EBADF",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        11 => "EAGAIN",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        36 => "ENAMETOOLONG",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        40 => "ELOOP",
        #[cfg(any(target_os = "linux", target_os = "android"))]
        122 => "EDQUOT",
        #[cfg(target_os = "macos")]
        35 => "EAGAIN",
        #[cfg(target_os = "macos")]
        62 => "ELOOP",
        #[cfg(target_os = "macos")]
        63 => "ENAMETOOLONG",
        #[cfg(target_os = "macos")]
        69 => "EDQUOT",
        _ => return None,
    })
}

/// Node reports `errno` negated on Unix (`-2` for `ENOENT`); Windows numbers are libuv's own,
/// which we do not know, so no `errno` there.
fn errno_property(error: &std::io::Error) -> Option<i32> {
    if cfg!(unix) {
        error.raw_os_error().map(|n| -n)
    } else {
        None
    }
}

/// Runs `work`, turning a panic into an `ERR_VHD_INTERNAL` failure instead of unwinding
/// into Node (which would abort the process).
pub fn guard<T>(work: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|payload| Err(Failure::from_panic(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn io_errors_take_the_os_error_name() {
        let error = vhd_core::Error::Io {
            context: "opening x.vhd".into(),
            source: io::Error::from_raw_os_error(2),
        };
        let failure = Failure::from(error);
        assert_eq!(failure.code, "ENOENT");
        assert!(failure.message.starts_with("ENOENT: opening x.vhd"));
        #[cfg(unix)]
        assert_eq!(failure.errno, Some(-2));
    }

    #[test]
    fn io_errors_without_an_os_number_use_the_kind_or_err_vhd_io() {
        let named = io::Error::new(io::ErrorKind::AlreadyExists, "x");
        assert_eq!(os_error_name(&named), Some("EEXIST"));
        let other = vhd_core::Error::Io {
            context: "reading".into(),
            source: io::Error::other("odd"),
        };
        assert_eq!(Failure::from(other).code, "ERR_VHD_IO");
    }

    #[test]
    fn format_errors_keep_the_core_code_and_out_of_range_is_a_range_error() {
        let error = vhd_core::Error::OutOfRange {
            operation: "write",
            offset: 10,
            length: 5,
            size: 12,
        };
        let failure = Failure::from(error);
        assert_eq!(failure.code, "ERR_VHD_OUT_OF_RANGE");
        assert_eq!(failure.class, ErrorClass::RangeError);
        let error = vhd_core::Error::ReadOnly {
            reason: "why".into(),
        };
        assert_eq!(Failure::from(error).code, "ERR_VHD_READ_ONLY");
    }

    #[test]
    fn panics_become_internal_errors() {
        let result: Result<(), Failure> = guard(|| panic!("boom"));
        let failure = result.unwrap_err();
        assert_eq!(failure.code, "ERR_VHD_INTERNAL");
        assert!(failure.message.contains("boom"));
    }
}
