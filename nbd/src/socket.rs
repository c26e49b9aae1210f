//! The listening socket and the connections' sockets, TCP or Unix, behind one type each.

use crate::Address;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use vhd_core::{Error, Result};

/// A bound, listening socket.
pub(crate) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener),
}

impl Listener {
    /// Binds `address`; returns the listener and the address it is bound to (the real port).
    pub(crate) fn bind(address: &Address) -> Result<(Listener, Address)> {
        match address {
            Address::Tcp(socket) => {
                let listener = TcpListener::bind(socket).map_err(|e| bind_error(address, e))?;
                let bound = listener.local_addr().map_err(|e| bind_error(address, e))?;
                Ok((Listener::Tcp(listener), Address::Tcp(bound)))
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                clear_stale_socket(path)?;
                let listener = UnixListener::bind(path)
                    .map_err(|e| Error::io_at(path, "bind", "binding the NBD socket", e))?;
                Ok((Listener::Unix(listener), address.clone()))
            }
            #[cfg(not(unix))]
            Address::Unix(path) => Err(Error::io_at(
                path,
                "bind",
                "binding the NBD socket",
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Unix sockets are not available here",
                ),
            )),
        }
    }

    /// Waits for the next connection; returns it with a description of the client.
    pub(crate) fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                // Replies are written whole (header and data in one write): no delay.
                let _ = stream.set_nodelay(true);
                Ok((Stream::Tcp(stream), peer.to_string()))
            }
            #[cfg(unix)]
            Listener::Unix(listener) => {
                let (stream, _) = listener.accept()?;
                Ok((Stream::Unix(stream), "unix socket".into()))
            }
        }
    }
}

/// The error of a failed bind: an I/O error naming the address.
fn bind_error(address: &Address, e: io::Error) -> Error {
    match address {
        Address::Unix(path) => Error::io_at(path, "bind", "binding the NBD socket", e),
        Address::Tcp(socket) => Error::Io {
            path: None,
            syscall: Some("bind"),
            context: format!("binding the NBD server to {socket}"),
            source: e,
        },
    }
}

/// Makes way for a socket at `path`: nothing there is fine; a socket no server answers on
/// (left by a server that was killed) is removed; anything else (a file, a live socket) is
/// refused, never replaced.
#[cfg(unix)]
fn clear_stale_socket(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::io_at(
                path,
                "lstat",
                "looking at the NBD socket path",
                e,
            ))
        }
    };
    let refuse = |what: &str| {
        Error::io_at(
            path,
            "bind",
            format!("binding the NBD socket ({what})"),
            io::Error::from(io::ErrorKind::AddrInUse),
        )
    };
    if !metadata.file_type().is_socket() {
        return Err(refuse(
            "the path exists and is not a socket; it is left as it is",
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(refuse("a server is listening on it"));
    }
    std::fs::remove_file(path)
        .map_err(|e| Error::io_at(path, "unlink", "removing the stale NBD socket", e))
}

/// Wakes a thread blocked accepting on `address` (the server's own), by connecting to it.
pub(crate) fn wake(address: &Address) {
    match address {
        Address::Tcp(socket) => {
            let mut target = *socket;
            if target.ip().is_unspecified() {
                target.set_ip(match target {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let _ = TcpStream::connect(target);
        }
        #[cfg(unix)]
        Address::Unix(path) => {
            let _ = UnixStream::connect(path);
        }
        #[cfg(not(unix))]
        Address::Unix(_) => {}
    }
}

/// A connection's socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    /// Another handle on the same socket (the reader keeps one, the replies another).
    pub(crate) fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            #[cfg(unix)]
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    /// Limits how long a read may wait (`None`: for ever).
    pub(crate) fn set_read_timeout(&self, limit: Option<std::time::Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(limit),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_read_timeout(limit),
        }
    }

    /// Shuts down one or both directions (wakes a thread blocked on the socket).
    pub(crate) fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Stream::Unix(s) => s.shutdown(how),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            #[cfg(unix)]
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
