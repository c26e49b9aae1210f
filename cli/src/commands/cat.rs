//! `vhd cat`: the virtual disk's bytes on stdout.

use super::{Target, COMMAND_HELP};
use crate::args::PartitionArgs;
use crate::{CliError, Io};
use std::sync::atomic::Ordering;
use vhd_core::VirtualDisk;

/// Bytes read from the image and written to stdout at a time.
const CHUNK: usize = 4 << 20;

const DESCRIPTION: &str = "\
Writes the whole virtual disk of the image FILE to stdout, as 'qemu-img convert -O raw'
would write it to a file (a differencing image is read through its chain). A reader that
stops early ('vhd cat disk.vhd | head -c 512') ends it quietly.

--partition N writes only partition N of the disk's partition table (as 'vhd partitions'
numbers them): 'vhd cat --partition 1 disk.vhd | file -' says what file system it holds.";

/// `vhd cat`.
#[derive(clap::Args, Debug)]
#[command(
    about = "write the virtual disk's contents to stdout",
    before_help = DESCRIPTION,
    help_template = COMMAND_HELP,
    override_usage = "vhd cat [--partition N] [-U] [--parent-root DIR] FILE"
)]
pub struct CatArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    partition: PartitionArgs,
}

pub fn run(args: &CatArgs, io: &mut Io) -> Result<i32, CliError> {
    let image = args.target.chain.open_read_only(&args.target.file)?;
    match args.partition.partition {
        None => copy(&image, io),
        Some(index) => copy(
            &vhd_core::partition::partition_view(image, index, &args.target.file)?,
            io,
        ),
    }
}

/// Writes every byte of `image` to stdout.
fn copy(image: &dyn VirtualDisk, io: &mut Io) -> Result<i32, CliError> {
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
