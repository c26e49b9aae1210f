//! One generic libuv thread-pool task: `work` runs on a pool thread with its `state`, never
//! unwinds into Node (panics become `ERR_VHD_INTERNAL`), and a failure is turned into a JS
//! error with its `code` in `reject`, on the JavaScript thread.
//!
//! The state lives in the task until the task is dropped on the JavaScript thread after the
//! promise settles. It never holds JavaScript memory (a buffer's bytes): that could be
//! freed under the pool thread (see src/buffers.rs).

use crate::errors::{guard, Failure};
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{Env, Status, Task};

pub struct Job<S: Send, T> {
    state: S,
    work: fn(&mut S) -> Result<T, Failure>,
    failure: Option<Failure>,
}

impl<S: Send, T> Job<S, T> {
    pub fn new(state: S, work: fn(&mut S) -> Result<T, Failure>) -> Job<S, T> {
        Job {
            state,
            work,
            failure: None,
        }
    }
}

impl<S: Send, T: ToNapiValue + TypeName + Send + 'static> Task for Job<S, T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let (work, state) = (self.work, &mut self.state);
        guard(|| work(state)).map_err(|failure| {
            // napi-rs only carries a status and a message from here to `reject`; the whole
            // failure waits in the task.
            let error = napi::Error::new(Status::GenericFailure, failure.message.clone());
            self.failure = Some(failure);
            error
        })
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, error: napi::Error) -> napi::Result<T> {
        Err(match self.failure.take() {
            Some(failure) => failure.into_napi(&env),
            None => error,
        })
    }
}
