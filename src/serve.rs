//! `VHD.serve`: an NBD server (crate `vhd-nbd`) for an image JavaScript has open, and the
//! `NativeNbdServer` class lib/serve.js wraps.
//!
//! The server serves the very image of a `NativeImage` (its [`Shared`]): the same lock, the
//! same file, so that JavaScript's reads and writes and the clients' go through one
//! `RwLock` and see each other's writes. It runs on threads of its own (an accept thread,
//! threads per connection); starting it (binding) and closing it (finishing the requests in
//! flight, flushing) run on the libuv thread pool, never on the JavaScript thread.
//!
//! No JavaScript runs on the server's threads. What JavaScript hears of them goes through a
//! threadsafe function, which is also what keeps the event loop alive while the server runs
//! (as a listening `net.Server` does): the log lines, one per connection, when the caller
//! asked for them. `close` releases it.

use crate::errors::Failure;
use crate::image::Shared;
use crate::task::Job;
use crate::types::{ServeArgs, ServerAddress};
use napi::bindgen_prelude::{AsyncTask, External};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vhd_core::Image;
use vhd_nbd::{Address, ServeOptions, Server, SharedImage};

/// The JavaScript function log lines go to (no error-first argument). Strong: while the
/// server holds it, the event loop stays alive.
type LogFn = ThreadsafeFunction<String, (), String, Status, false>;

/// The binding's image as the server sees it: a closed image (JavaScript closed it under the
/// server, which lib/serve.js prevents by closing the server first) fails every request.
struct Served(Shared);

/// The error of a request on an image that was closed under the server.
fn closed_error() -> vhd_core::Error {
    vhd_core::Error::io(
        "the image is closed",
        std::io::Error::new(std::io::ErrorKind::NotConnected, "the image was closed"),
    )
}

/// A writer panicked while holding the lock (a bug): the image may be half-updated, so
/// nothing more is read or written (the binding's own calls refuse the same way).
fn poisoned_error() -> vhd_core::Error {
    vhd_core::Error::io(
        "the image is unusable after an earlier internal error",
        std::io::Error::other("lock poisoned"),
    )
}

impl SharedImage for Served {
    fn with_read(&self, f: &mut dyn FnMut(&Image) -> vhd_core::Result<()>) -> vhd_core::Result<()> {
        let guard = self.0.read().map_err(|_| poisoned_error())?;
        f(guard.as_ref().ok_or_else(closed_error)?)
    }

    fn with_write(
        &self,
        f: &mut dyn FnMut(&mut Image) -> vhd_core::Result<()>,
    ) -> vhd_core::Result<()> {
        let mut guard = self.0.write().map_err(|_| poisoned_error())?;
        f(guard.as_mut().ok_or_else(closed_error)?)
    }
}

/// What is shared between the JavaScript object and the close task.
pub struct Running {
    server: Server,
    /// Released once the server has stopped: the event loop may then end. Shared with the
    /// server's log function, which then finds it gone.
    log: Arc<Mutex<Option<LogFn>>>,
}

/// A running NBD server. Made by `serve`; not constructible from JavaScript.
#[napi]
pub struct NativeNbdServer {
    running: Arc<Running>,
    address: ServerAddress,
    uri: String,
}

#[napi]
impl NativeNbdServer {
    /// Where the server listens (with the port picked when port 0 was asked for).
    #[napi(getter)]
    pub fn address(&self) -> ServerAddress {
        self.address.clone()
    }

    /// The NBD URI of the export, as nbdinfo, nbdcopy, nbdfuse and qemu take it.
    #[napi(getter)]
    pub fn uri(&self) -> String {
        self.uri.clone()
    }

    /// Connections open now.
    #[napi(getter)]
    pub fn connections(&self) -> u32 {
        self.running.server.connections() as u32
    }

    /// Stops accepting, finishes the requests in flight, flushes, closes the connections
    /// (and removes the Unix socket); resolves once done. Again: resolves once stopped.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<Arc<Running>, ()>> {
        AsyncTask::new(Job::new(self.running.clone(), close_work))
    }
}

fn close_work(running: &mut Arc<Running>) -> Result<(), Failure> {
    let result = running.server.shutdown();
    // The last log lines are queued already: a released function still delivers them.
    drop(
        running
            .log
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take(),
    );
    Ok(result?)
}

/// What the start task needs.
pub struct StartState {
    image: Shared,
    address: Option<Address>,
    options: ServeOptions,
    log: Arc<Mutex<Option<LogFn>>>,
}

fn start_work(state: &mut StartState) -> Result<NativeNbdServer, Failure> {
    // The caller had the image open; JavaScript may not close it under a start (lib/serve.js
    // counts the start as in flight), so this only reports what should not happen.
    if state
        .image
        .read()
        .map_err(|_| Failure::internal("the image lock is poisoned"))?
        .is_none()
    {
        return Err(Failure::closed());
    }
    let address = state.address.take().ok_or_else(Failure::closed)?;
    let server = Server::start(
        Arc::new(Served(state.image.clone())),
        &address,
        state.options.clone(),
    )?;
    let bound = match server.address() {
        Address::Unix(path) => ServerAddress {
            socket: Some(path.to_string_lossy().into_owned()),
            host: None,
            port: None,
        },
        Address::Tcp(socket) => ServerAddress {
            socket: None,
            host: Some(socket.ip().to_string()),
            port: Some(u32::from(socket.port())),
        },
    };
    let uri = server.address().to_string();
    Ok(NativeNbdServer {
        running: Arc::new(Running {
            server,
            log: state.log.clone(),
        }),
        address: bound,
        uri,
    })
}

/// Starts an NBD server for the image behind `handle`; resolves once it listens. `log` is
/// called with each log line when `args.log` is set (and keeps the event loop alive while
/// the server runs, whether or not).
#[napi(
    js_name = "serve",
    catch_unwind,
    ts_return_type = "Promise<NativeNbdServer>"
)]
pub fn serve(
    env: Env,
    #[napi(ts_arg_type = "ExternalObject<'image'>")] handle: &External<Shared>,
    args: ServeArgs,
    #[napi(ts_arg_type = "(line: string) => void")] log: LogFn,
) -> napi::Result<AsyncTask<Job<StartState, NativeNbdServer>>> {
    let address = crate::errors::guard(|| {
        let address = to_address(&args)?;
        // The one rule (vhd-nbd's), before anything starts.
        vhd_nbd::check_address(&address, args.allow_remote.unwrap_or(false))?;
        Ok(address)
    })
    .map_err(|f| f.into_napi(&env))?;
    let log = Arc::new(Mutex::new(Some(log)));
    let options = ServeOptions {
        export_name: args.export_name.clone().unwrap_or_default(),
        read_only: args.read_only.unwrap_or(false),
        allow_remote: args.allow_remote.unwrap_or(false),
        log: args.log.unwrap_or(false).then(|| {
            let log = log.clone();
            let line: vhd_nbd::Log = Arc::new(move |line: &str| {
                if let Some(log) = &*log.lock().unwrap_or_else(|poison| poison.into_inner()) {
                    // Non-blocking: the queue is unbounded, and a server thread never
                    // waits for JavaScript.
                    log.call(line.to_string(), ThreadsafeFunctionCallMode::NonBlocking);
                }
            });
            line
        }),
        ..ServeOptions::default()
    };
    let state = StartState {
        image: (**handle).clone(),
        address: Some(address),
        options,
        log,
    };
    Ok(AsyncTask::new(Job::new(state, start_work)))
}

fn to_address(args: &ServeArgs) -> Result<Address, Failure> {
    match (&args.socket, &args.host) {
        (Some(socket), None) => Ok(Address::Unix(PathBuf::from(socket))),
        (None, Some(host)) => {
            let ip: IpAddr = host.parse().map_err(|_| {
                Failure::invalid_value("host", format!("{host:?} is not an IP address"))
            })?;
            let port = args.port.unwrap_or(0);
            let port = u16::try_from(port)
                .map_err(|_| Failure::out_of_range("port", ">= 0 && <= 65535", port))?;
            Ok(Address::Tcp(SocketAddr::new(ip, port)))
        }
        _ => Err(Failure::invalid_value(
            "options",
            "give either socket or host and port",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::RwLock;

    fn image(dir: &std::path::Path) -> Image {
        let path = dir.join("served.vhd");
        let options = vhd_core::CreateOptions::new(vhd_core::DiskType::Dynamic, 1 << 20);
        vhd_core::create(&path, &options).unwrap()
    }

    #[test]
    fn a_closed_image_fails_every_request_and_an_open_one_is_served() {
        let dir = std::env::temp_dir().join(format!("vhd-serve-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shared: Shared = Arc::new(RwLock::new(Some(image(&dir))));
        let served = Served(shared.clone());
        let mut size = 0;
        served
            .with_read(&mut |image| {
                size = vhd_core::VirtualDisk::size(image);
                Ok(())
            })
            .unwrap();
        assert_eq!(size, 1 << 20);
        served
            .with_write(&mut |image| vhd_core::VirtualDisk::write_at(image, b"x", 0))
            .unwrap();
        // JavaScript closed it (lib/serve.js closes the servers first; this is the fallback).
        drop(shared.write().unwrap().take());
        let error = served.with_read(&mut |_| Ok(())).unwrap_err();
        assert!(error.to_string().contains("the image is closed"), "{error}");
        assert!(served.with_write(&mut |_| Ok(())).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn addresses_are_a_socket_or_an_ip_and_a_port() {
        let unix = ServeArgs {
            socket: Some("x.sock".into()),
            ..ServeArgs::default()
        };
        assert_eq!(to_address(&unix).unwrap(), Address::Unix("x.sock".into()));
        let tcp = ServeArgs {
            host: Some("::1".into()),
            port: Some(10809),
            ..ServeArgs::default()
        };
        assert_eq!(
            to_address(&tcp).unwrap(),
            Address::Tcp("[::1]:10809".parse().unwrap())
        );
        let name = ServeArgs {
            host: Some("example.org".into()),
            port: Some(1),
            ..ServeArgs::default()
        };
        assert_eq!(to_address(&name).unwrap_err().code, "ERR_INVALID_ARG_VALUE");
        let port = ServeArgs {
            host: Some("127.0.0.1".into()),
            port: Some(70000),
            ..ServeArgs::default()
        };
        assert_eq!(to_address(&port).unwrap_err().code, "ERR_OUT_OF_RANGE");
        assert!(to_address(&ServeArgs::default()).is_err());
    }
}
