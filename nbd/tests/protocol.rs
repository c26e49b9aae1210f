//! The protocol spoken byte by byte: well-formed requests, and every kind of malformed
//! client (garbage in the handshake, oversize requests, ranges past the end, writes to a
//! read-only export, unknown options, commands and flags, a client that goes away in the
//! middle of a request or never reads its replies). Each gets the protocol's error or a
//! closed connection; the server keeps serving others; nothing is written that no client
//! asked for.

#![cfg(unix)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use vhd_core::{create, CreateOptions, DiskType, Image, OpenOptions, VirtualDisk};
use vhd_nbd::proto::{self, cmd, cmd_flag, errno, opt, rep, reply};
use vhd_nbd::{Address, ServeOptions, Server};
use vhd_testkit::*;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 8 * MIB;

/// A dynamic image with 0x42 in its first MiB.
fn image(dir: &TempDir) -> PathBuf {
    let path = dir.join("disk.vhd");
    let mut image = create(&path, &CreateOptions::new(DiskType::Dynamic, SIZE)).unwrap();
    image.write_at(&vec![0x42; MIB as usize], 0).unwrap();
    image.flush().unwrap();
    path
}

fn serve(
    path: &Path,
    dir: &TempDir,
    read_only: bool,
) -> (Server, PathBuf, Arc<Mutex<Vec<String>>>) {
    let image = Image::open(
        path,
        &OpenOptions {
            read_only,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let socket = dir.join(if read_only { "ro.sock" } else { "rw.sock" });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log_lines = Arc::clone(&lines);
    let server = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Unix(socket.clone()),
        ServeOptions {
            export_name: "disk".into(),
            read_only,
            log: Some(Arc::new(move |line: &str| {
                log_lines.lock().unwrap().push(line.to_string())
            })),
            ..ServeOptions::default()
        },
    )
    .unwrap();
    (server, socket, lines)
}

/// A client speaking the protocol by hand.
struct Client {
    stream: UnixStream,
}

/// An option reply: (option, type, data).
type OptionReply = (u32, u32, Vec<u8>);

impl Client {
    /// Connects and reads the server's greeting.
    fn connect(socket: &Path) -> Client {
        let mut stream = UnixStream::connect(socket).unwrap();
        let mut greeting = [0u8; 18];
        stream.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting[..8], &proto::NBDMAGIC.to_be_bytes());
        assert_eq!(&greeting[8..16], &proto::IHAVEOPT.to_be_bytes());
        Client { stream }
    }

    /// Connects and sends fixed newstyle + no zeroes.
    fn fixed(socket: &Path) -> Client {
        let mut client = Client::connect(socket);
        client.send(&3u32.to_be_bytes());
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn option(&mut self, option: u32, data: &[u8]) {
        let mut message = Vec::new();
        message.extend_from_slice(&proto::IHAVEOPT.to_be_bytes());
        message.extend_from_slice(&option.to_be_bytes());
        message.extend_from_slice(&(data.len() as u32).to_be_bytes());
        message.extend_from_slice(data);
        self.send(&message);
    }

    fn option_reply(&mut self) -> OptionReply {
        let mut header = [0u8; 20];
        self.stream.read_exact(&mut header).unwrap();
        assert_eq!(&header[..8], &proto::OPTION_REPLY_MAGIC.to_be_bytes());
        let option = u32::from_be_bytes(header[8..12].try_into().unwrap());
        let kind = u32::from_be_bytes(header[12..16].try_into().unwrap());
        let length = u32::from_be_bytes(header[16..20].try_into().unwrap());
        let mut data = vec![0; length as usize];
        self.stream.read_exact(&mut data).unwrap();
        (option, kind, data)
    }

    /// Option replies up to and including the final one (ACK or an error).
    fn option_replies(&mut self) -> Vec<OptionReply> {
        let mut replies = Vec::new();
        loop {
            let reply = self.option_reply();
            let last = reply.1 == rep::ACK || reply.1 & (1 << 31) != 0;
            replies.push(reply);
            if last {
                return replies;
            }
        }
    }

    /// NBD_OPT_GO for `name`; returns the replies.
    fn go(&mut self, name: &str) -> Vec<OptionReply> {
        let mut data = Vec::new();
        data.extend_from_slice(&(name.len() as u32).to_be_bytes());
        data.extend_from_slice(name.as_bytes());
        data.extend_from_slice(&0u16.to_be_bytes());
        self.option(opt::GO, &data);
        self.option_replies()
    }

    /// A client in the transmission phase, with structured replies and base:allocation
    /// when `structured`.
    fn ready(socket: &Path, structured: bool) -> Client {
        let mut client = Client::fixed(socket);
        if structured {
            client.option(opt::STRUCTURED_REPLY, &[]);
            assert_eq!(client.option_replies()[0].1, rep::ACK);
            let mut data = Vec::new();
            data.extend_from_slice(&4u32.to_be_bytes());
            data.extend_from_slice(b"disk");
            data.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(&15u32.to_be_bytes());
            data.extend_from_slice(b"base:allocation");
            client.option(opt::SET_META_CONTEXT, &data);
            let replies = client.option_replies();
            assert_eq!(replies[0].1, rep::META_CONTEXT);
            assert_eq!(replies.last().unwrap().1, rep::ACK);
        }
        assert_eq!(client.go("disk").last().unwrap().1, rep::ACK);
        client
    }

    fn request(&mut self, command: u16, flags: u16, cookie: u64, offset: u64, length: u32) {
        let mut header = Vec::with_capacity(28);
        header.extend_from_slice(&proto::REQUEST_MAGIC.to_be_bytes());
        header.extend_from_slice(&flags.to_be_bytes());
        header.extend_from_slice(&command.to_be_bytes());
        header.extend_from_slice(&cookie.to_be_bytes());
        header.extend_from_slice(&offset.to_be_bytes());
        header.extend_from_slice(&length.to_be_bytes());
        self.send(&header);
    }

    /// A simple reply: (cookie, error), then `data_length` bytes of data when error is 0.
    fn simple_reply(&mut self, data_length: usize) -> (u64, u32, Vec<u8>) {
        let mut header = [0u8; 16];
        self.stream.read_exact(&mut header).unwrap();
        assert_eq!(&header[..4], &proto::SIMPLE_REPLY_MAGIC.to_be_bytes());
        let error = u32::from_be_bytes(header[4..8].try_into().unwrap());
        let cookie = u64::from_be_bytes(header[8..16].try_into().unwrap());
        let mut data = vec![0; if error == 0 { data_length } else { 0 }];
        self.stream.read_exact(&mut data).unwrap();
        (cookie, error, data)
    }

    /// A structured reply chunk: (flags, type, cookie, payload).
    fn chunk(&mut self) -> (u16, u16, u64, Vec<u8>) {
        let mut header = [0u8; 20];
        self.stream.read_exact(&mut header).unwrap();
        assert_eq!(&header[..4], &proto::STRUCTURED_REPLY_MAGIC.to_be_bytes());
        let flags = u16::from_be_bytes(header[4..6].try_into().unwrap());
        let kind = u16::from_be_bytes(header[6..8].try_into().unwrap());
        let cookie = u64::from_be_bytes(header[8..16].try_into().unwrap());
        let length = u32::from_be_bytes(header[16..20].try_into().unwrap());
        let mut payload = vec![0; length as usize];
        self.stream.read_exact(&mut payload).unwrap();
        (flags, kind, cookie, payload)
    }

    /// True when the server closed the connection (a read gets end of file or a reset).
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

/// The error of a structured error chunk.
fn chunk_error(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap())
}

/// Reads the whole disk through a fresh connection: the server still serves.
fn read_disk(socket: &Path) -> Vec<u8> {
    let mut client = Client::ready(socket, false);
    client.request(cmd::READ, 0, 7, 0, SIZE as u32);
    let (cookie, error, data) = client.simple_reply(SIZE as usize);
    assert_eq!((cookie, error), (7, 0));
    client.request(cmd::DISC, 0, 8, 0, 0);
    data
}

fn model() -> Vec<u8> {
    let mut model = vec![0u8; SIZE as usize];
    model[..MIB as usize].fill(0x42);
    model
}

#[test]
fn garbage_in_the_handshake_closes_only_that_connection() {
    let dir = TempDir::new("nbd-proto-handshake");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    // Unknown client flags.
    let mut client = Client::connect(&socket);
    client.send(&0xffu32.to_be_bytes());
    assert!(client.is_closed());
    // A bad option magic.
    let mut client = Client::fixed(&socket);
    client.send(b"GARBAGE!GARBAGE!GARBAGE!");
    assert!(client.is_closed());
    // Without fixed newstyle, any option but NBD_OPT_EXPORT_NAME.
    let mut client = Client::connect(&socket);
    client.send(&0u32.to_be_bytes());
    client.option(opt::LIST, &[]);
    assert!(client.is_closed());
    // NBD_OPT_EXPORT_NAME of an unknown export.
    let mut client = Client::fixed(&socket);
    client.option(opt::EXPORT_NAME, b"nope");
    assert!(client.is_closed());
    // A client that goes away in the middle of an option.
    let mut client = Client::fixed(&socket);
    client.send(&proto::IHAVEOPT.to_be_bytes());
    client.send(&opt::GO.to_be_bytes());
    client.send(&100u32.to_be_bytes());
    client.send(b"half");
    drop(client);
    // The server is still there, the disk as it was.
    assert_same_bytes(&read_disk(&socket), &model(), "disk");
    server.shutdown().unwrap();
}

#[test]
fn a_client_that_says_nothing_is_disconnected_after_the_handshake_limit() {
    let dir = TempDir::new("nbd-proto-silent");
    let path = image(&dir);
    let socket = dir.join("silent.sock");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log_lines = Arc::clone(&lines);
    let server = Server::start(
        Arc::new(RwLock::new(
            Image::open(&path, &OpenOptions::default()).unwrap(),
        )),
        &Address::Unix(socket.clone()),
        ServeOptions {
            export_name: "disk".into(),
            handshake_limit: Duration::from_millis(200),
            log: Some(Arc::new(move |line: &str| {
                log_lines.lock().unwrap().push(line.to_string())
            })),
            ..ServeOptions::default()
        },
    )
    .unwrap();
    // Connects, reads the greeting, then says nothing (nor the client flags).
    let mut silent = Client::connect(&socket);
    // A guard against a hang: far longer than the limit. A timeout here is a failure.
    silent
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut byte = [0u8; 1];
    match silent.stream.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the silent client was not disconnected: {other:?}"),
    }
    // The place it held is free, and a client that speaks is served as before.
    assert_same_bytes(&read_disk(&socket), &model(), "disk");
    server.shutdown().unwrap();
    let lines = lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("handshake failed: the client took more than 200ms")),
        "{lines:?}"
    );
}

#[test]
fn only_loopback_addresses_unless_remote_clients_are_allowed() {
    use std::net::SocketAddr;
    let tcp = |text: &str| Address::Tcp(text.parse::<SocketAddr>().unwrap());
    for near in [
        "127.0.0.1:0",
        "127.9.9.9:10809",
        "[::1]:0",
        "[::ffff:127.0.0.1]:0",
    ] {
        assert!(vhd_nbd::check_address(&tcp(near), false).is_ok(), "{near}");
    }
    for far in [
        "0.0.0.0:0",
        "192.0.2.1:10809",
        "[::]:0",
        "[::ffff:192.0.2.1]:0",
    ] {
        let refused = vhd_nbd::check_address(&tcp(far), false).unwrap_err();
        assert_eq!(refused.code(), "ERR_VHD_INVALID_ARGUMENT");
        assert!(
            refused
                .to_string()
                .contains("is not a loopback address: NBD is cleartext"),
            "{refused}"
        );
        assert!(vhd_nbd::check_address(&tcp(far), true).is_ok(), "{far}");
    }
    assert!(vhd_nbd::check_address(&Address::Unix("any.sock".into()), false).is_ok());
}

#[test]
fn a_start_that_fails_leaves_no_socket_file() {
    let dir = TempDir::new("nbd-proto-failed-start");
    let path = image(&dir);
    let socket = dir.join("never.sock");
    let image = Image::open(&path, &OpenOptions::default()).unwrap();
    let refused = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Unix(socket.clone()),
        ServeOptions {
            export_name: "x".repeat(proto::MAX_STRING + 1),
            ..ServeOptions::default()
        },
    );
    assert!(
        matches!(
            refused,
            Err(vhd_core::Error::InvalidArgument {
                name: "export name",
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
    assert!(
        !socket.exists(),
        "the failed start left {}",
        socket.display()
    );
}

#[test]
fn options_get_their_replies() {
    let dir = TempDir::new("nbd-proto-options");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    let mut client = Client::fixed(&socket);
    // Unknown options, and those not supported: NBD_REP_ERR_UNSUP.
    for option in [99, opt::STARTTLS, opt::EXTENDED_HEADERS] {
        client.option(option, &[]);
        let replies = client.option_replies();
        assert_eq!((replies[0].0, replies[0].1), (option, rep::ERR_UNSUP));
    }
    // An oversize option: its data is dropped, NBD_REP_ERR_TOO_BIG.
    client.option(opt::LIST, &vec![0u8; 100 << 10]);
    assert_eq!(client.option_replies()[0].1, rep::ERR_TOO_BIG);
    // NBD_OPT_LIST: the export, then ACK; with data, NBD_REP_ERR_INVALID.
    client.option(opt::LIST, &[]);
    let replies = client.option_replies();
    assert_eq!(replies[0].1, rep::SERVER);
    assert_eq!(&replies[0].2[4..], b"disk");
    assert_eq!(replies[1].1, rep::ACK);
    client.option(opt::LIST, b"x");
    assert_eq!(client.option_replies()[0].1, rep::ERR_INVALID);
    // Meta contexts before structured replies: NBD_REP_ERR_INVALID.
    client.option(opt::LIST_META_CONTEXT, &[0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(client.option_replies()[0].1, rep::ERR_INVALID);
    client.option(opt::STRUCTURED_REPLY, &[]);
    assert_eq!(client.option_replies()[0].1, rep::ACK);
    // LIST_META_CONTEXT with no query lists base:allocation.
    client.option(opt::LIST_META_CONTEXT, &[0, 0, 0, 0, 0, 0, 0, 0]);
    let replies = client.option_replies();
    assert_eq!(replies[0].1, rep::META_CONTEXT);
    assert_eq!(&replies[0].2[4..], b"base:allocation");
    // A malformed one (a query longer than the data).
    client.option(opt::SET_META_CONTEXT, &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9]);
    assert_eq!(client.option_replies()[0].1, rep::ERR_INVALID);
    // NBD_OPT_INFO and NBD_OPT_GO of an unknown export: NBD_REP_ERR_UNKNOWN.
    assert_eq!(client.go("nope")[0].1, rep::ERR_UNKNOWN);
    // NBD_OPT_INFO of the export: size and flags, block sizes.
    let mut data = Vec::new();
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(&0u16.to_be_bytes());
    client.option(opt::INFO, &data);
    let replies = client.option_replies();
    let export = &replies[0].2;
    assert_eq!(u16::from_be_bytes([export[0], export[1]]), 0);
    assert_eq!(u64::from_be_bytes(export[2..10].try_into().unwrap()), SIZE);
    let block_size = replies
        .iter()
        .find(|r| r.1 == rep::INFO && r.2[..2] == [0, 3])
        .expect("NBD_INFO_BLOCK_SIZE");
    let sizes: Vec<u32> = block_size.2[2..]
        .chunks(4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(sizes, vec![1, 4096, 32 << 20]);
    // NBD_OPT_ABORT: ACK, then the server closes.
    client.option(opt::ABORT, &[]);
    assert_eq!(client.option_reply().1, rep::ACK);
    assert!(client.is_closed());
    server.shutdown().unwrap();
}

#[test]
fn bad_requests_get_errors_and_write_nothing() {
    let dir = TempDir::new("nbd-proto-requests");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    for structured in [false, true] {
        let mut client = Client::ready(&socket, structured);
        let expect_error = |client: &mut Client, cookie: u64, expected: u32| {
            if structured {
                let (flags, kind, got, payload) = client.chunk();
                assert_eq!(
                    (flags, kind, got),
                    (reply::FLAG_DONE, reply::TYPE_ERROR, cookie)
                );
                assert_eq!(chunk_error(&payload), expected, "cookie {cookie}");
            } else {
                let (got, error, _) = client.simple_reply(0);
                assert_eq!((got, error), (cookie, expected));
            }
        };
        // Past the end: reads EINVAL, writes ENOSPC (their data is taken and dropped).
        client.request(cmd::READ, 0, 1, SIZE - 10, 11);
        expect_error(&mut client, 1, errno::EINVAL);
        client.request(cmd::WRITE, 0, 2, SIZE - 10, 11);
        client.send(&[0xee; 11]);
        expect_error(&mut client, 2, errno::ENOSPC);
        client.request(cmd::WRITE, 0, 3, u64::MAX - 3, 8);
        client.send(&[0xee; 8]);
        expect_error(&mut client, 3, errno::ENOSPC);
        // Over the maximum payload: EOVERFLOW (the write's 33 MiB are read and dropped).
        client.request(cmd::READ, 0, 4, 0, 33 << 20);
        expect_error(&mut client, 4, errno::EOVERFLOW);
        client.request(cmd::WRITE, 0, 5, 0, 33 << 20);
        client.send(&vec![0xee; 33 << 20]);
        expect_error(&mut client, 5, errno::EOVERFLOW);
        // Unknown commands and flags: EINVAL.
        client.request(42, 0, 6, 0, 512);
        expect_error(&mut client, 6, errno::EINVAL);
        client.request(cmd::READ, 1 << 9, 7, 0, 512);
        expect_error(&mut client, 7, errno::EINVAL);
        client.request(cmd::READ, cmd_flag::REQ_ONE, 8, 0, 512);
        expect_error(&mut client, 8, errno::EINVAL);
        if !structured {
            // Block status without a meta context (or structured replies): EINVAL.
            client.request(cmd::BLOCK_STATUS, 0, 9, 0, 512);
            expect_error(&mut client, 9, errno::EINVAL);
        }
        // The connection still works: a read.
        client.request(cmd::READ, 0, 10, MIB - 2, 4);
        if structured {
            let (flags, kind, cookie, payload) = client.chunk();
            assert_eq!(
                (flags, kind, cookie),
                (reply::FLAG_DONE, reply::TYPE_OFFSET_DATA, 10)
            );
            assert_eq!(
                u64::from_be_bytes(payload[..8].try_into().unwrap()),
                MIB - 2
            );
            assert_eq!(&payload[8..], &[0x42, 0x42, 0, 0]);
        } else {
            let (cookie, error, data) = client.simple_reply(4);
            assert_eq!((cookie, error, data), (10, 0, vec![0x42, 0x42, 0, 0]));
        }
        // A bad request magic: the server hangs up.
        client.send(&[0xde; 28]);
        assert!(client.is_closed());
    }
    assert_same_bytes(&read_disk(&socket), &model(), "disk");
    server.shutdown().unwrap();
    drop(server);
    assert_clean(&path);
}

#[test]
fn a_read_only_export_refuses_every_change() {
    let dir = TempDir::new("nbd-proto-read-only");
    let path = image(&dir);
    let hash = sha256_file(&path);
    let (server, socket, _) = serve(&path, &dir, true);
    let mut client = Client::ready(&socket, false);
    client.request(cmd::WRITE, 0, 1, 0, 512);
    client.send(&[0xee; 512]);
    assert_eq!(client.simple_reply(0).1, errno::EPERM);
    client.request(cmd::TRIM, 0, 2, 0, 512);
    assert_eq!(client.simple_reply(0).1, errno::EPERM);
    client.request(cmd::WRITE_ZEROES, 0, 3, 0, 512);
    assert_eq!(client.simple_reply(0).1, errno::EPERM);
    client.request(cmd::FLUSH, 0, 4, 0, 0);
    assert_eq!(client.simple_reply(0).1, 0);
    client.request(cmd::DISC, 0, 5, 0, 0);
    assert!(client.is_closed());
    server.shutdown().unwrap();
    drop(server);
    assert_eq!(sha256_file(&path), hash);
}

#[test]
fn pipelined_requests_are_all_answered_with_their_cookies() {
    let dir = TempDir::new("nbd-proto-pipeline");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    let mut client = Client::ready(&socket, true);
    // 100 writes and reads sent before any reply is read.
    for i in 0..100u64 {
        client.request(
            cmd::WRITE,
            cmd_flag::FUA * (i % 2) as u16,
            1000 + i,
            2 * MIB + i * 4096,
            4096,
        );
        client.send(&[i as u8; 4096]);
    }
    client.request(cmd::FLUSH, 0, 5000, 0, 0);
    let mut cookies: Vec<u64> = (0..101).map(|_| client.chunk().2).collect();
    cookies.sort();
    let mut expected: Vec<u64> = (1000..1100).collect();
    expected.push(5000);
    assert_eq!(cookies, expected);
    for i in 0..100u64 {
        client.request(cmd::READ, 0, i, 2 * MIB + i * 4096, 4096);
    }
    let mut seen = [false; 100];
    for _ in 0..100 {
        let (flags, kind, cookie, payload) = client.chunk();
        assert_eq!((flags, kind), (reply::FLAG_DONE, reply::TYPE_OFFSET_DATA));
        assert!(payload[8..].iter().all(|&b| b == cookie as u8));
        seen[cookie as usize] = true;
    }
    assert!(seen.iter().all(|&s| s));
    // Block status: data where written, hole+zero elsewhere.
    client.request(cmd::BLOCK_STATUS, 0, 77, 0, SIZE as u32);
    let (_, kind, cookie, payload) = client.chunk();
    assert_eq!((kind, cookie), (reply::TYPE_BLOCK_STATUS, 77));
    let extents: Vec<(u32, u32)> = payload[4..]
        .chunks(8)
        .map(|e| {
            (
                u32::from_be_bytes(e[..4].try_into().unwrap()),
                u32::from_be_bytes(e[4..].try_into().unwrap()),
            )
        })
        .collect();
    // Blocks of 2 MiB: block 0 (the first MiB) and block 1 (the writes) hold data.
    assert_eq!(extents, vec![(4 << 20, 0), (4 << 20, 3)]);
    client.request(cmd::BLOCK_STATUS, cmd_flag::REQ_ONE, 78, 5 * MIB, 1000);
    let payload = client.chunk().3;
    assert_eq!(payload.len(), 12);
    assert_eq!(&payload[4..], &[0, 0, 3, 232, 0, 0, 0, 3]);
    server.shutdown().unwrap();
}

#[test]
fn a_client_gone_mid_request_writes_nothing() {
    let dir = TempDir::new("nbd-proto-gone");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    let mut client = Client::ready(&socket, false);
    client.request(cmd::WRITE, 0, 1, 3 * MIB, 65536);
    client.send(&[0xee; 30000]);
    drop(client);
    let mut client = Client::ready(&socket, false);
    client.request(cmd::WRITE, 0, 1, 3 * MIB, 65536);
    drop(client);
    assert_same_bytes(&read_disk(&socket), &model(), "disk");
    server.shutdown().unwrap();
    drop(server);
    assert_clean(&path);
}

#[test]
fn a_client_that_never_reads_replies_blocks_only_itself() {
    let dir = TempDir::new("nbd-proto-stuck");
    let path = image(&dir);
    let (server, socket, lines) = serve(&path, &dir, false);
    let mut stuck = Client::ready(&socket, false);
    // Far more reply data than the socket buffers hold, never read.
    stuck.stream.set_nonblocking(true).unwrap();
    let mut header = Vec::new();
    for i in 0..2000u64 {
        header.clear();
        header.extend_from_slice(&proto::REQUEST_MAGIC.to_be_bytes());
        header.extend_from_slice(&0u16.to_be_bytes());
        header.extend_from_slice(&cmd::READ.to_be_bytes());
        header.extend_from_slice(&i.to_be_bytes());
        header.extend_from_slice(&0u64.to_be_bytes());
        header.extend_from_slice(&(1u32 << 20).to_be_bytes());
        if stuck.stream.write_all(&header).is_err() {
            break; // The server stopped reading requests: its queue is full.
        }
    }
    // Others are served meanwhile.
    assert_same_bytes(&read_disk(&socket), &model(), "disk");
    // The other connection closes after its NBD_CMD_DISC; the stuck one stays open.
    while server.connections() != 1 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Shutdown does not wait for the stuck client for ever: it cuts it.
    server.shutdown().unwrap();
    assert_eq!(server.connections(), 0);
    assert!(
        lines.lock().unwrap().len() >= 2,
        "{:?}",
        lines.lock().unwrap()
    );
    drop(stuck);
}

#[test]
fn shutdown_answers_what_was_asked_then_flushes_and_removes_the_socket() {
    let dir = TempDir::new("nbd-proto-shutdown");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    let mut client = Client::ready(&socket, false);
    client.request(cmd::WRITE, 0, 1, 5 * MIB, 4096);
    client.send(&[0x17; 4096]);
    assert_eq!(client.simple_reply(0), (1, 0, vec![]));
    server.shutdown().unwrap();
    server.shutdown().unwrap();
    assert!(client.is_closed());
    assert!(!socket.exists());
    drop(server);
    let image = open_ro(&path);
    let mut data = vec![0u8; 4096];
    image.read_at(&mut data, 5 * MIB).unwrap();
    assert!(data.iter().all(|&b| b == 0x17));
}

#[test]
fn a_socket_path_that_is_not_a_socket_is_never_replaced() {
    let dir = TempDir::new("nbd-proto-path");
    let path = image(&dir);
    let file = dir.join("taken");
    std::fs::write(&file, b"keep me").unwrap();
    let image = Image::open(&path, &OpenOptions::default()).unwrap();
    let error = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Unix(file.clone()),
        ServeOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error.code(), "ERR_VHD_IO");
    assert_mentions(&error.to_string(), &["taken", "not a socket"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    // Nor does a TCP address beyond loopback go without allow_remote.
    let image = Image::open(&path, &OpenOptions::default()).unwrap();
    let error = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Tcp("0.0.0.0:0".parse().unwrap()),
        ServeOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error.code(), "ERR_VHD_INVALID_ARGUMENT");
}

#[test]
fn tcp_on_loopback_with_a_port_picked() {
    let dir = TempDir::new("nbd-proto-tcp");
    let path = image(&dir);
    let image = Image::open(&path, &OpenOptions::default()).unwrap();
    let server = Server::start(
        Arc::new(RwLock::new(image)),
        &Address::Tcp("127.0.0.1:0".parse().unwrap()),
        ServeOptions::default(),
    )
    .unwrap();
    let Address::Tcp(bound) = server.address().clone() else {
        panic!("not TCP")
    };
    assert_ne!(bound.port(), 0);
    assert_eq!(
        server.address().to_string(),
        format!("nbd://127.0.0.1:{}/", bound.port())
    );
    let mut stream = std::net::TcpStream::connect(bound).unwrap();
    let mut greeting = [0u8; 18];
    stream.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting[..8], b"NBDMAGIC");
    server.shutdown().unwrap();
}

#[test]
fn reads_that_must_wait_for_the_disk_read_the_same() {
    use std::os::unix::io::AsRawFd;
    let dir = TempDir::new("nbd-proto-cold");
    let path = image(&dir);
    let (server, socket, _) = serve(&path, &dir, false);
    let mut client = Client::ready(&socket, true);
    let mut rng = Rng::new("nbd-cold");
    let data = rng.bytes(3 * MIB as usize);
    client.request(
        cmd::WRITE,
        cmd_flag::FUA,
        1,
        2 * MIB + 100,
        data.len() as u32,
    );
    client.send(&data);
    assert_eq!(client.chunk().1, reply::TYPE_NONE);
    // Out of the page cache (the pages are clean after the flush): these reads cannot be
    // answered at once and go to the workers, several at a time.
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: posix_fadvise on a descriptor we own; it only drops cached pages.
    let advised = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(advised, 0);
    for i in 0..8u64 {
        client.request(cmd::READ, 0, 10 + i, 2 * MIB + 100 + i * 300_000, 300_000);
    }
    for _ in 0..8 {
        let (flags, kind, cookie, payload) = client.chunk();
        assert_eq!((flags, kind), (reply::FLAG_DONE, reply::TYPE_OFFSET_DATA));
        let i = (cookie - 10) as usize;
        assert_eq!(
            &payload[8..],
            &data[i * 300_000..(i + 1) * 300_000],
            "read {i}"
        );
    }
    server.shutdown().unwrap();
}
