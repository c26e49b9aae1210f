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
    /// For I/O errors and damaged structures: the file they concern, as Node sets `path` on its fs errors.
    pub path: Option<String>,
    /// For I/O errors: the system call that failed (`open`, `read`, `write`…), as Node
    /// sets `syscall`.
    pub syscall: Option<&'static str>,
}

impl Failure {
    pub fn new(class: ErrorClass, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            class,
            code: code.to_string(),
            message: message.into(),
            errno: None,
            path: None,
            syscall: None,
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
        let (errno, path, syscall) = (self.errno, self.path, self.syscall);
        let error = napi::Error::new(self.code, self.message);
        let value: Unknown = match self.class {
            ErrorClass::Error => JsError::from(error).into_unknown(*env),
            ErrorClass::TypeError => JsTypeError::from(error).into_unknown(*env),
            ErrorClass::RangeError => JsRangeError::from(error).into_unknown(*env),
        };
        if errno.is_some() || path.is_some() || syscall.is_some() {
            // Best effort: an error without these properties is still the right error.
            let _ = value.coerce_to_object().and_then(|mut object: Object| {
                if let Some(errno) = errno {
                    object.set("errno", errno)?;
                }
                if let Some(syscall) = syscall {
                    object.set("syscall", syscall)?;
                }
                if let Some(path) = path {
                    object.set("path", path)?;
                }
                Ok(())
            });
        }
        napi::Error::from(value)
    }
}

impl From<vhd_core::Error> for Failure {
    fn from(error: vhd_core::Error) -> Failure {
        let class = match error {
            vhd_core::Error::OutOfRange { .. }
            | vhd_core::Error::InvalidArgument { .. }
            | vhd_core::Error::ShrinkRefused { .. }
            | vhd_core::Error::RemoteAddressRefused { .. } => ErrorClass::RangeError,
            _ => ErrorClass::Error,
        };
        // Hints name the option as a JavaScript caller passes it.
        let message = error.message_with(&js_option);
        // `path`: the file an I/O error or a damaged structure concerns, as Node's fs errors.
        let path = error.file().map(|p| p.to_string_lossy().into_owned());
        let (syscall, errno) = match error.root() {
            vhd_core::Error::Io {
                syscall, source, ..
            } => (*syscall, errno_property(source)),
            _ => (None, None),
        };
        // Like Node's fs errors: the OS error's name as `code` (and first in the message);
        // I/O errors without a known name keep `ERR_VHD_IO`.
        let (code, message) = match error.os_code() {
            Some(name) => (name.to_string(), format!("{name}: {message}")),
            None => (error.code().to_string(), message),
        };
        Failure {
            class,
            code,
            message,
            errno: errno.filter(|_| error.os_code().is_some()),
            path,
            syscall,
        }
    }
}

/// How a JavaScript caller passes the option a [`vhd_core::Hint`] suggests.
fn js_option(hint: vhd_core::Hint) -> &'static str {
    use vhd_core::Hint;
    match hint {
        Hint::Overwrite => "{ overwrite: true }",
        Hint::Force => "{ force: true }",
        Hint::IgnoreParentTimestamp => "{ ignoreParentTimestamp: true }",
        Hint::NoLock => "{ lock: false }",
        Hint::SourceRaw => "{ sourceFormat: 'raw' }",
        Hint::Parent => "{ parent: path }",
        Hint::Check => "VHD.check(path)",
        Hint::AllowRemote => "{ allowRemote: true }",
        _ => hint.rust_option(),
    }
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
    fn io_errors_take_the_os_error_name_path_and_syscall() {
        let error = vhd_core::Error::io_at(
            std::path::Path::new("x.vhd"),
            "open",
            "opening the image",
            io::Error::from_raw_os_error(2),
        );
        let failure = Failure::from(error);
        assert_eq!(failure.code, "ENOENT");
        assert!(failure
            .message
            .starts_with("ENOENT: x.vhd: opening the image"));
        assert_eq!(failure.path.as_deref(), Some("x.vhd"));
        assert_eq!(failure.syscall, Some("open"));
        #[cfg(unix)]
        assert_eq!(failure.errno, Some(-2));
    }

    #[test]
    fn io_errors_without_an_os_number_use_the_kind_or_err_vhd_io() {
        let named = vhd_core::Error::io("x", io::Error::new(io::ErrorKind::AlreadyExists, "x"));
        assert_eq!(Failure::from(named).code, "EEXIST");
        let other = vhd_core::Error::io("reading", io::Error::other("odd"));
        assert_eq!(Failure::from(other).code, "ERR_VHD_IO");
    }

    #[test]
    fn hints_name_the_javascript_option() {
        let error = vhd_core::Error::AlreadyExists("out.vhd".into());
        let failure = Failure::from(error);
        assert_eq!(failure.code, "ERR_VHD_EXISTS");
        assert_eq!(
            failure.message,
            "out.vhd: file already exists (pass { overwrite: true } to replace it)"
        );
    }

    #[test]
    fn format_errors_keep_the_core_code_and_out_of_range_is_a_range_error() {
        let error = vhd_core::Error::OutOfRange {
            path: None,
            operation: "write",
            offset: 10,
            length: 5,
            size: 12,
        };
        let failure = Failure::from(error);
        assert_eq!(failure.code, "ERR_VHD_OUT_OF_RANGE");
        assert_eq!(failure.class, ErrorClass::RangeError);
        let error = vhd_core::Error::ReadOnly {
            path: None,
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
