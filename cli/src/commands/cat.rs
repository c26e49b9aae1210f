//! `vhd cat`: the virtual disk's bytes on stdout.

use super::{open_read_only, Command, ALLOW_REMOTE_PARENTS, PARENT_ROOT};
use crate::args::Parsed;
use crate::{CliError, Io};
use std::sync::atomic::Ordering;
use vhd_core::VirtualDisk;

/// Bytes read from the image and written to stdout at a time.
const CHUNK: usize = 4 << 20;

pub const COMMAND: Command = Command {
    name: "cat",
    synopsis: "[--parent-root DIR] FILE",
    summary: "write the virtual disk's contents to stdout",
    description: "\
Writes the whole virtual disk of the image FILE to stdout, as 'qemu-img convert -O raw'
would write it to a file (a differencing image is read through its chain). A reader that
stops early ('vhd cat disk.vhd | head -c 512') ends it quietly.",
    options: &[PARENT_ROOT, ALLOW_REMOTE_PARENTS],
    run,
};

fn run(parsed: &Parsed, io: &mut Io) -> Result<i32, CliError> {
    let [file] = parsed.positionals("cat", &["FILE"], &[])? else {
        unreachable!("exactly one positional was checked")
    };
    let image = open_read_only(parsed, file)?;
    let size = image.size();
    let mut buf = vec![0u8; CHUNK.min(size as usize).max(1)];
    let mut offset = 0;
    while offset < size {
        if io
            .cancel
            .is_some_and(|cancel| cancel.load(Ordering::Relaxed))
        {
            return Err(vhd_core::Error::Cancelled { operation: "cat" }.into());
        }
        let read = image.read_at(&mut buf, offset)?;
        if read == 0 {
            break;
        }
        // A closed pipe ends here with BrokenPipe, which `run` turns into exit code 0.
        io.stdout.write_all(&buf[..read])?;
        offset += read as u64;
    }
    Ok(0)
}
