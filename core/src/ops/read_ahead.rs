//! Reading a conversion's source on a thread of its own while the output is written.
//!
//! A conversion reads a chunk, then writes it: one thread doing both spends its time in
//! `pread` and `pwrite` in turn. Converting 1 GiB of dense raw into a fixed image on tmpfs
//! took 0.31 s that way (0.13 s of reads, 0.18 s of writes, `strace -c`), against 0.22 s
//! for `qemu-img convert`, whose reads and writes run on threads of their own and overlap;
//! with the reading here on a second thread, 0.20 s.
//!
//! [`read_ahead`] runs the reading side (`produce`: it reads, finds what to write and
//! hands it over through a [`Pipe`]) on a scoped thread, and carries out what it hands
//! over on the calling thread, in order. The writing stays on the calling thread, so every
//! change to the output is made by one thread, in one sequence (what the crash-point tests
//! of the command line rely on: cli/tests/kill.rs).
//!
//! Memory is bounded: the reading side fills buffers taken from a pool of [`POOL`] (each
//! of [`BUFFER`] bytes' capacity), which come back once written. The first failure of
//! either side stops both; a failure to write (or to report progress) wins over what the
//! reading side says once it is cut off.

use crate::error::{Error, Result};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// How many buffers may be in flight: filled ahead of the writes, or being written.
pub(super) const POOL: usize = 4;

/// The capacity of each buffer: two chunks of a conversion (what its joined writes of a
/// dynamic output hold at most).
pub(super) const BUFFER: usize = 4 << 20;

/// What the calling thread writes to: a conversion's output.
pub(super) trait Target {
    /// Writes `bytes` at `offset`.
    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()>;
    /// Writes `length` zeros at `offset`.
    fn write_zeros(&self, offset: u64, length: u64) -> Result<()>;
    /// Gives the output the length `len`.
    fn set_len(&self, len: u64) -> Result<()>;
}

/// A buffer of the pool: all of it is what a write hands over. One comes back as it went
/// (its length too), so a reader that fills buffers to the same length never has to clear
/// or zero one.
pub(super) type Buffer = Vec<u8>;

enum Command {
    Write { buffer: Buffer, offset: u64 },
    Zeros { offset: u64, length: u64 },
    SetLen(u64),
}

/// The reading side's way to the writes (see the module documentation).
pub(super) struct Pipe {
    commands: SyncSender<Command>,
    returned: Receiver<Buffer>,
    /// Buffers made so far (at most [`POOL`]).
    made: usize,
}

impl Pipe {
    /// A buffer to fill (its length is the caller's to set): a new, empty one while fewer
    /// than [`POOL`] exist, else the next one written, as it was, waiting for it if need be.
    pub fn buffer(&mut self) -> Result<Buffer> {
        if self.made < POOL {
            self.made += 1;
            return Ok(Vec::with_capacity(BUFFER));
        }
        self.returned.recv().map_err(|_| cut_off())
    }

    /// Hands over `buffer`, to be written at `offset`.
    pub fn write(&mut self, buffer: Buffer, offset: u64) -> Result<()> {
        self.send(Command::Write { buffer, offset })
    }

    /// Hands over a copy of `bytes`, to be written at `offset` (the few small pieces not
    /// read into a buffer: a footer, a dynamic image's head).
    pub fn write_copy(&mut self, bytes: &[u8], offset: u64) -> Result<()> {
        self.send(Command::Write {
            buffer: bytes.to_vec(),
            offset,
        })
    }

    /// `length` zeros at `offset`.
    pub fn write_zeros(&mut self, offset: u64, length: u64) -> Result<()> {
        self.send(Command::Zeros { offset, length })
    }

    /// The output's length.
    pub fn set_len(&mut self, len: u64) -> Result<()> {
        self.send(Command::SetLen(len))
    }

    fn send(&mut self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| cut_off())
    }
}

/// What the reading side gets once the writing side has stopped (a failure, which is what
/// [`read_ahead`] reports).
fn cut_off() -> Error {
    Error::io(
        "handing data to the output",
        std::io::Error::other("the output's writes stopped at a failure"),
    )
}

/// Runs `produce` on a thread of its own, writing what it hands over to `target` here, in
/// order; returns what `produce` returns once everything it handed over is written. The
/// first failure to write stops `produce` (its next hand-over fails) and is what this
/// returns; otherwise a failure of `produce` is.
pub(super) fn read_ahead<T, R, P>(target: &T, produce: P) -> Result<R>
where
    T: Target,
    R: Send,
    P: FnOnce(&mut Pipe) -> Result<R> + Send,
{
    // Room for every buffer, and for the small commands between them.
    let (commands, received) = sync_channel::<Command>(2 * POOL);
    let (give_back, returned) = channel::<Buffer>();
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("vhd-read-ahead".into())
            .spawn_scoped(scope, move || {
                let mut pipe = Pipe {
                    commands,
                    returned,
                    made: 0,
                };
                produce(&mut pipe)
            })
            .map_err(|e| Error::io("starting the thread that reads the source", e))?;
        // Until the reading side is done (its end of the channel closes), or a write fails.
        let written = write_all(target, received, give_back);
        let produced = match reader.join() {
            Ok(produced) => produced,
            // A panic there is a bug: carried on here, where it is caught as elsewhere.
            Err(payload) => std::panic::resume_unwind(payload),
        };
        written.and(produced)
    })
}

/// Carries out the commands in order until the channel closes or one fails (then the
/// receiver goes, and with it the reading side's next hand-over), giving each written
/// buffer back.
fn write_all<T: Target>(
    target: &T,
    commands: Receiver<Command>,
    give_back: Sender<Buffer>,
) -> Result<()> {
    for command in commands {
        match command {
            Command::Write { buffer, offset } => {
                target.write_at(&buffer, offset)?;
                // The reading side may have finished: nothing to give back to then.
                let _ = give_back.send(buffer);
            }
            Command::Zeros { offset, length } => target.write_zeros(offset, length)?,
            Command::SetLen(len) => target.set_len(len)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An in-memory output that records what was done (and by which thread), and can fail
    /// at a given write.
    #[derive(Default)]
    struct Memory {
        log: Mutex<Vec<String>>,
        threads: Mutex<Vec<std::thread::ThreadId>>,
        fail_at: Option<u64>,
    }

    impl Memory {
        fn note(&self, line: String) {
            self.log.lock().unwrap().push(line);
            self.threads
                .lock()
                .unwrap()
                .push(std::thread::current().id());
        }
    }

    impl Target for Memory {
        fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
            if self.fail_at == Some(offset) {
                return Err(Error::io(
                    format!("writing at offset {offset}"),
                    std::io::Error::from_raw_os_error(28),
                ));
            }
            self.note(format!("write {offset} {bytes:?}"));
            Ok(())
        }
        fn write_zeros(&self, offset: u64, length: u64) -> Result<()> {
            self.note(format!("zeros {offset} {length}"));
            Ok(())
        }
        fn set_len(&self, len: u64) -> Result<()> {
            self.note(format!("len {len}"));
            Ok(())
        }
    }

    fn write_numbered(pipe: &mut Pipe, count: u64) -> Result<()> {
        for i in 0..count {
            let mut buffer = pipe.buffer()?;
            buffer.clear();
            buffer.extend_from_slice(&[i as u8, 7]);
            pipe.write(buffer, i * 10)?;
        }
        Ok(())
    }

    #[test]
    fn writes_happen_in_order_on_the_calling_thread_and_buffers_come_back() {
        let memory = Memory::default();
        let count = 3 * POOL as u64;
        let made = read_ahead(&memory, |pipe| {
            pipe.set_len(100)?;
            // More writes than buffers: the pool is reused.
            write_numbered(pipe, count)?;
            pipe.write_zeros(5, 3)?;
            pipe.write_copy(&[9], 99)?;
            Ok(pipe.made)
        })
        .unwrap();
        assert_eq!(made, POOL);
        let mut expected = vec!["len 100".to_string()];
        expected.extend((0..count).map(|i| format!("write {} {:?}", i * 10, [i as u8, 7])));
        expected.push("zeros 5 3".into());
        expected.push("write 99 [9]".into());
        assert_eq!(*memory.log.lock().unwrap(), expected);
        let here = std::thread::current().id();
        assert!(memory.threads.lock().unwrap().iter().all(|&id| id == here));
    }

    #[test]
    fn a_failed_write_stops_the_reading_side_and_is_what_is_reported() {
        let memory = Memory {
            fail_at: Some(20),
            ..Memory::default()
        };
        let error = read_ahead(&memory, |pipe| write_numbered(pipe, 1000)).unwrap_err();
        assert_eq!(error.os_code(), Some("ENOSPC"), "{error}");
        assert_eq!(
            *memory.log.lock().unwrap(),
            vec!["write 0 [0, 7]", "write 10 [1, 7]"]
        );
    }

    #[test]
    fn a_failure_of_the_reading_side_comes_after_the_writes_it_handed_over() {
        let memory = Memory::default();
        let error = read_ahead(&memory, |pipe| -> Result<()> {
            write_numbered(pipe, 2)?;
            Err(Error::Cancelled { operation: "test" })
        })
        .unwrap_err();
        assert!(matches!(error, Error::Cancelled { .. }), "{error}");
        assert_eq!(memory.log.lock().unwrap().len(), 2);
    }
}
