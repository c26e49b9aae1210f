//! A VHD file computed on the fly from a source disk, read like a file: what a stream
//! upload sends, byte for byte what `convert` writes.
//!
//! The layout is the one [`crate::create`] gives a new image, filled in:
//! - fixed: the virtual disk's bytes, then the footer;
//! - dynamic: the footer copy, the dynamic header at 512, the BAT at 1536 (padded to a
//!   sector with 0xFF), then one block per non-zero block of the source in ascending block
//!   order (a sector bitmap with every bit set, then the block's data), then the footer.
//!
//! [`Layout`] says which output byte comes from where; [`VhdStream`] serves it, and
//! `convert` writes it (skipping holes), so both give the same bytes by construction.

use super::{ConvertOptions, OutputFormat, Progress};
use crate::create::{new_footer, new_header, sparse_file, validate, CreateOptions, TABLE_OFFSET};
use crate::error::{Error, Result};
use crate::footer::{DiskType, Footer, FOOTER_SIZE};
use crate::sector_bitmap::bitmap_size;
use crate::zeros::is_all_zero;
use crate::VirtualDisk;

/// A source disk for conversion: a raw file or a VHD (chains flattened), read-only.
pub type Source = Box<dyn VirtualDisk + Send + Sync>;

/// Unit of source reads and of hole detection: large enough for sequential speed, small
/// enough that a mostly-empty disk leaves most of itself out.
pub(super) const CHUNK: u64 = 2 << 20;

/// Smallest and largest virtual size Azure accepts for a (fixed) VHD.
pub(super) const AZURE_SIZE_RANGE: std::ops::RangeInclusive<u64> = (20 << 20)..=(32 << 40);

/// The virtual size of the output for a source of `source_size` bytes: rounded up to whole
/// sectors with zeros (as qemu does with raw files), and with `azure` up to a whole MiB.
/// Refuses what Azure would refuse.
pub(super) fn output_size(source_size: u64, options: &ConvertOptions) -> Result<u64> {
    let unit = if options.azure { 1 << 20 } else { 512 };
    // Checked: a damaged footer may claim a size near u64::MAX.
    let size =
        source_size
            .checked_next_multiple_of(unit)
            .ok_or_else(|| Error::InvalidArgument {
                name: "source",
                reason: format!("its size, {source_size} bytes, is too large for a VHD"),
            })?;
    if options.azure && !AZURE_SIZE_RANGE.contains(&size) {
        return Err(Error::InvalidArgument {
            name: "azure",
            reason: format!(
                "the source is {source_size} bytes ({size} bytes once rounded up to a whole \
                 MiB); Azure accepts VHDs from {} to {} bytes",
                AZURE_SIZE_RANGE.start(),
                AZURE_SIZE_RANGE.end()
            ),
        });
    }
    Ok(size)
}

/// Reads `buf.len()` bytes of the source's disk at `offset`; what lies past its end reads
/// as zeros (the padding of the last sector, MiB or block).
pub(super) fn read_disk(source: &dyn VirtualDisk, buf: &mut [u8], offset: u64) -> Result<()> {
    let n = source.read_at(buf, offset)?;
    buf[n..].fill(0);
    Ok(())
}

/// True when `length` bytes of the source's disk at `offset` are known to be zeros without
/// reading them: unallocated in every image of the source, or past its end.
pub(super) fn reads_as_zeros(source: &dyn VirtualDisk, offset: u64, length: u64) -> bool {
    let size = source.size();
    offset >= size || source.reads_without_io(offset, length.min(size - offset))
}

/// Walks a source chunk by chunk and says which chunks may hold data, asking the source
/// ([`VirtualDisk::next_data`]) once per stretch of data or of holes rather than once per
/// chunk: a 2 TiB sparse raw file holding 1 GiB costs a few thousand `lseek`s, not a
/// million reads.
pub(super) struct DataCursor<'s> {
    source: &'s dyn VirtualDisk,
    /// The last answer: asked at `.0`, the source said `.1`.
    known: Option<(u64, Option<std::ops::Range<u64>>)>,
}

impl<'s> DataCursor<'s> {
    pub(super) fn new(source: &'s dyn VirtualDisk) -> DataCursor<'s> {
        DataCursor {
            source,
            known: None,
        }
    }

    /// Where the source may hold data at or after `offset`; `None` when nowhere.
    fn next_data(&mut self, offset: u64) -> Result<Option<u64>> {
        match &self.known {
            // Still true of any offset from where it was asked to the end of the data.
            Some((asked, Some(data))) if *asked <= offset && offset < data.end => {
                return Ok(Some(data.start.max(offset)))
            }
            Some((asked, None)) if *asked <= offset => return Ok(None),
            _ => {}
        }
        let next = self.source.next_data(offset)?;
        let start = next.as_ref().map(|data| data.start.max(offset));
        self.known = Some((offset, next));
        Ok(start)
    }

    /// Where the next chunk to read starts, for the chunk of `length` bytes at `offset`
    /// ([`CHUNK`]-aligned, as are all chunks but the last before `end`): `offset` when it
    /// may hold data; otherwise the start of the chunk that holds the next data, or `end`
    /// when there is none. Everything from `offset` to the answer reads as zeros.
    pub(super) fn next_chunk(&mut self, offset: u64, length: u64, end: u64) -> Result<u64> {
        Ok(match self.next_data(offset)? {
            Some(start) if start < offset + length => offset,
            Some(start) => (start - start % CHUNK).clamp(offset + length, end),
            None => end,
        })
    }
}

/// Which output byte comes from where.
#[derive(Debug)]
pub(super) enum Layout {
    /// The disk's bytes, then the footer.
    Fixed {
        size: u64,
        footer: [u8; FOOTER_SIZE],
    },
    Dynamic(DynamicLayout),
}

impl Layout {
    /// The layout of a fixed or dynamic image of `size` bytes, with no block allocated
    /// yet; it checks the size and block size as `create` does.
    pub(super) fn new(size: u64, options: &ConvertOptions) -> Result<Layout> {
        let disk_type = match options.to {
            OutputFormat::Fixed => DiskType::Fixed,
            OutputFormat::Dynamic => DiskType::Dynamic,
            OutputFormat::Raw => {
                return Err(Error::InvalidArgument {
                    name: "to",
                    reason: "a VHD stream is fixed or dynamic; convert to raw instead".into(),
                })
            }
        };
        validate(disk_type, size, options.block_size)?;
        let create = CreateOptions {
            block_size: options.block_size,
            // A random id (when `None`) is drawn once, by `new_footer`: the footer copy and
            // the end footer are the same bytes.
            unique_id: options.unique_id,
            timestamp: options.timestamp,
            ..CreateOptions::new(disk_type, size)
        };
        let footer = new_footer(&create, size);
        Ok(match disk_type {
            DiskType::Fixed => Layout::Fixed {
                size,
                footer: footer.to_bytes(),
            },
            _ => Layout::Dynamic(DynamicLayout::new(&footer, size, options.block_size)),
        })
    }

    /// Total length of the file.
    pub(super) fn len(&self) -> u64 {
        match self {
            Layout::Fixed { size, .. } => size + FOOTER_SIZE as u64,
            Layout::Dynamic(layout) => layout.len(),
        }
    }

    /// The footer at the end of the file.
    pub(super) fn footer(&self) -> &[u8; FOOTER_SIZE] {
        match self {
            Layout::Fixed { footer, .. } => footer,
            Layout::Dynamic(layout) => layout.footer(),
        }
    }

    /// Fills the start of `buf` with output bytes from `offset` (inside the file), up to
    /// the end of the region `offset` lies in; returns how many bytes it filled.
    fn read_region(&self, source: &dyn VirtualDisk, buf: &mut [u8], offset: u64) -> Result<usize> {
        match self {
            Layout::Fixed { size, .. } if offset < *size => {
                let n = buf.len().min((size - offset) as usize);
                read_disk(source, &mut buf[..n], offset)?;
                Ok(n)
            }
            Layout::Fixed { size, footer } => Ok(copy_from(footer, offset - size, buf)),
            Layout::Dynamic(layout) => layout.read_region(source, buf, offset),
        }
    }
}

/// Copies `bytes[start..]` into the start of `buf`; returns how many bytes it copied.
fn copy_from(bytes: &[u8], start: u64, buf: &mut [u8]) -> usize {
    let bytes = &bytes[start as usize..];
    let n = bytes.len().min(buf.len());
    buf[..n].copy_from_slice(&bytes[..n]);
    n
}

/// The layout of a dynamic image: metadata as `create` writes it, then the blocks
/// allocated so far, one after the other in the order they were pushed.
#[derive(Debug)]
pub(super) struct DynamicLayout {
    /// Footer copy, dynamic header and BAT: everything in front of the first block.
    head: Vec<u8>,
    footer: [u8; FOOTER_SIZE],
    size: u64,
    block_size: u64,
    bitmap_size: u64,
    /// The disk blocks stored, in file order.
    blocks: Vec<u32>,
}

impl DynamicLayout {
    fn new(footer: &Footer, size: u64, block_size: u32) -> DynamicLayout {
        let header = new_header(size, block_size);
        // `create`'s whole empty file, less its end footer: the head every block follows.
        let mut head = sparse_file(footer, header, &[]);
        head.truncate(head.len() - FOOTER_SIZE);
        DynamicLayout {
            head,
            footer: footer.to_bytes(),
            size,
            block_size: u64::from(block_size),
            bitmap_size: bitmap_size(block_size),
            blocks: Vec::new(),
        }
    }

    /// Bytes of file per stored block: its sector bitmap and its data.
    fn stride(&self) -> u64 {
        self.bitmap_size + self.block_size
    }

    /// Number of blocks of the disk (BAT entries).
    fn block_count(&self) -> u64 {
        self.size.div_ceil(self.block_size)
    }

    /// Blocks stored so far.
    pub(super) fn allocated_blocks(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// The last block pushed.
    fn last_block(&self) -> Option<u32> {
        self.blocks.last().copied()
    }

    /// Footer copy, dynamic header and BAT, as they are with the blocks pushed so far.
    pub(super) fn head(&self) -> &[u8] {
        &self.head
    }

    /// The file offset of the `index`th stored block (of its sector bitmap).
    fn block_start(&self, index: usize) -> u64 {
        self.head.len() as u64 + index as u64 * self.stride()
    }

    /// The file offset of the data of the `index`th stored block.
    pub(super) fn data_offset(&self, index: usize) -> u64 {
        self.block_start(index) + self.bitmap_size
    }

    /// Stores `block` after the blocks pushed before it (which must be lower) and points its
    /// BAT entry at it; returns the file offset of its sector bitmap.
    pub(super) fn push(&mut self, block: u32) -> Result<u64> {
        debug_assert!(self.last_block().is_none_or(|last| last < block));
        let offset = self.block_start(self.blocks.len());
        let sector = crate::image::bat_sector(offset).ok_or_else(|| {
            Error::Unsupported(format!(
                "the output is too large: the BAT cannot address a block at offset {offset}"
            ))
        })?;
        let entry = TABLE_OFFSET as usize + 4 * block as usize;
        self.head[entry..entry + 4].copy_from_slice(&sector.to_be_bytes());
        self.blocks.push(block);
        Ok(offset)
    }

    /// The footer at the end of the file (the same bytes as the copy at its start).
    pub(super) fn footer(&self) -> &[u8; FOOTER_SIZE] {
        &self.footer
    }

    /// A sector bitmap saying every sector of a block is present.
    pub(super) fn full_bitmap(&self) -> Vec<u8> {
        vec![0xFF; self.bitmap_size as usize]
    }

    /// Total length of the file with the blocks pushed so far.
    pub(super) fn len(&self) -> u64 {
        self.block_start(self.blocks.len()) + FOOTER_SIZE as u64
    }

    /// See [`Layout::read_region`].
    fn read_region(&self, source: &dyn VirtualDisk, buf: &mut [u8], offset: u64) -> Result<usize> {
        let head = self.head.len() as u64;
        let footer_offset = self.len() - FOOTER_SIZE as u64;
        if offset < head {
            return Ok(copy_from(&self.head, offset, buf));
        }
        if offset >= footer_offset {
            return Ok(copy_from(&self.footer, offset - footer_offset, buf));
        }
        let index = ((offset - head) / self.stride()) as usize;
        let in_block = (offset - head) % self.stride();
        if in_block < self.bitmap_size {
            let n = buf.len().min((self.bitmap_size - in_block) as usize);
            buf[..n].fill(0xFF);
            return Ok(n);
        }
        let in_data = in_block - self.bitmap_size;
        let n = buf.len().min((self.block_size - in_data) as usize);
        let disk_offset = u64::from(self.blocks[index]) * self.block_size + in_data;
        read_disk(source, &mut buf[..n], disk_offset)?;
        Ok(n)
    }
}

/// Where the non-zero data found by [`scan_blocks`] goes: `(file offset, bytes)`.
pub(super) type Sink<'s> = &'s mut dyn FnMut(u64, &[u8]) -> Result<()>;

/// Reads the source block by block (in [`CHUNK`] units), pushes every block that holds a
/// non-zero byte into `layout`, and hands each non-zero piece with its place in the file
/// (and each new block's sector bitmap) to `sink`. Reports progress (and stops when
/// cancelled) after each chunk.
pub(super) fn scan_blocks(
    source: &dyn VirtualDisk,
    layout: &mut DynamicLayout,
    progress: Progress,
    operation: &'static str,
    mut sink: Option<Sink>,
) -> Result<()> {
    let total = layout.size;
    let padded = layout.block_count() * layout.block_size;
    // Blocks are powers of two, so are chunks: a chunk holds whole blocks, or a block
    // holds whole chunks.
    let piece_size = layout.block_size.min(CHUNK) as usize;
    let mut buf = vec![0u8; CHUNK.min(padded) as usize];
    let mut holes = DataCursor::new(source);
    let mut offset = 0;
    while offset < padded {
        let n = CHUNK.min(padded - offset) as usize;
        let next = holes.next_chunk(offset, n as u64, padded)?;
        if next > offset {
            // Holes: no block there.
            offset = next;
            progress.report(operation, offset.min(total), total)?;
            continue;
        }
        // Without a sink only the block list matters: the rest of a block larger than a
        // chunk need not be read once it is known to be stored.
        let stored = layout.last_block() == Some((offset / layout.block_size) as u32);
        if (sink.is_some() || !stored) && !reads_as_zeros(source, offset, n as u64) {
            read_disk(source, &mut buf[..n], offset)?;
            for (i, piece) in buf[..n].chunks(piece_size).enumerate() {
                if !is_all_zero(piece) {
                    let piece_offset = offset + (i * piece_size) as u64;
                    store_piece(layout, &mut sink, piece_offset, piece)?;
                }
            }
        }
        offset += n as u64;
        progress.report(operation, offset.min(total), total)?;
    }
    Ok(())
}

/// Stores the non-zero `piece` of the disk at `disk_offset`: pushes its block if it is
/// new, and hands the block's bitmap and the piece to `sink`.
fn store_piece(
    layout: &mut DynamicLayout,
    sink: &mut Option<Sink>,
    disk_offset: u64,
    piece: &[u8],
) -> Result<()> {
    let block = (disk_offset / layout.block_size) as u32;
    if layout.last_block() != Some(block) {
        let bitmap_offset = layout.push(block)?;
        if let Some(sink) = sink.as_mut() {
            sink(bitmap_offset, &layout.full_bitmap())?;
        }
    }
    if let Some(sink) = sink.as_mut() {
        let in_block = disk_offset % layout.block_size;
        sink(
            layout.data_offset(layout.blocks.len() - 1) + in_block,
            piece,
        )?;
    }
    Ok(())
}

/// The bytes of the fixed or dynamic VHD that `convert` would write for a source.
///
/// Reads are served from the layout planned in [`VhdStream::new`] and the source, with no
/// scanning: a read inside a block is one read of the source. Any offset and length may
/// be read, from any thread (`read_at` takes `&self`).
pub struct VhdStream {
    source: Source,
    layout: Layout,
}

impl VhdStream {
    /// Plans the output for `options.to` ([`OutputFormat::Fixed`] or
    /// [`OutputFormat::Dynamic`]; raw is refused with [`Error::InvalidArgument`]), with the
    /// size, `azure`, block size, unique id, time stamp and partition rules of `convert`. Dynamic
    /// output reads the whole source once here, to leave all-zero blocks out, so that the
    /// length is known before the first byte; that scan reports to `progress` and stops
    /// with [`Error::Cancelled`] when asked. A unique id or time stamp left `None` is drawn
    /// here, once.
    pub fn new(source: Source, options: &ConvertOptions, progress: Progress) -> Result<VhdStream> {
        options.validate()?;
        // `partition` as `convert` takes it (the source has no path here to name).
        let source = super::source::restrict_to_partition(
            source,
            options.partition,
            std::path::Path::new("the source"),
        )?;
        let size = output_size(source.size(), options)?;
        let mut layout = Layout::new(size, options)?;
        if let Layout::Dynamic(dynamic) = &mut layout {
            scan_blocks(source.as_ref(), dynamic, progress, "VHD stream", None)?;
        }
        Ok(VhdStream::from_layout(source, layout))
    }

    /// A stream over a planned layout (dynamic blocks already pushed).
    pub(super) fn from_layout(source: Source, layout: Layout) -> VhdStream {
        VhdStream { source, layout }
    }

    /// Total length of the VHD file in bytes.
    pub fn len(&self) -> u64 {
        self.layout.len()
    }

    /// Whether the output is empty (it never is: every VHD has a footer).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Virtual size of the disk in the VHD.
    pub fn virtual_size(&self) -> u64 {
        match &self.layout {
            Layout::Fixed { size, .. } => *size,
            Layout::Dynamic(layout) => layout.size,
        }
    }

    /// Blocks stored in dynamic output (0 for fixed output).
    pub fn allocated_blocks(&self) -> u64 {
        match &self.layout {
            Layout::Fixed { .. } => 0,
            Layout::Dynamic(layout) => layout.allocated_blocks(),
        }
    }

    /// The footer that ends the file (and, in dynamic output, starts it).
    pub fn footer(&self) -> Footer {
        Footer::parse(self.layout.footer(), self.len() - FOOTER_SIZE as u64)
            .expect("the footer was made by create's code")
    }

    /// Reads output bytes at `offset`, like `pread`: fills `buf` unless the end of the file
    /// comes first; returns the number of bytes read (0 at or past the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let wanted = self.len().saturating_sub(offset).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < wanted {
            let at = offset + done as u64;
            done += self
                .layout
                .read_region(self.source.as_ref(), &mut buf[done..wanted], at)?;
        }
        Ok(wanted)
    }
}

impl std::fmt::Debug for VhdStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhdStream")
            .field("len", &self.len())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk of `size` bytes whose only data is `data`, which it tells as a VHD does
    /// (range by range: `reads_without_io`) or, `like_a_file`, as a sparse file does
    /// (`next_data`). It counts its reads (which fill 7s) and the questions of `next_data`.
    struct TestDisk {
        size: u64,
        data: std::ops::Range<u64>,
        like_a_file: bool,
        reads: std::sync::Mutex<Vec<(u64, usize)>>,
        asked: std::sync::Mutex<Vec<u64>>,
    }

    impl TestDisk {
        fn new(size: u64, data: std::ops::Range<u64>, like_a_file: bool) -> TestDisk {
            TestDisk {
                size,
                data,
                like_a_file,
                reads: Default::default(),
                asked: Default::default(),
            }
        }
    }

    impl VirtualDisk for TestDisk {
        fn size(&self) -> u64 {
            self.size
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
            self.reads.lock().unwrap().push((offset, buf.len()));
            buf.fill(7);
            Ok(buf.len())
        }
        fn write_at(&mut self, _: &[u8], _: u64) -> Result<()> {
            unreachable!("sources are only read")
        }
        fn flush(&mut self) -> Result<()> {
            Ok(())
        }
        fn reads_without_io(&self, offset: u64, length: u64) -> bool {
            !self.like_a_file && (offset + length <= self.data.start || offset >= self.data.end)
        }
        fn next_data(&self, offset: u64) -> Result<Option<std::ops::Range<u64>>> {
            if !self.like_a_file {
                return Ok((offset < self.size).then_some(offset..self.size));
            }
            self.asked.lock().unwrap().push(offset);
            let data = &self.data;
            Ok((offset < data.end).then(|| data.start.max(offset)..data.end))
        }
    }

    /// Scans `source` for dynamic output with default options: the layout, and the
    /// (file offset, length) of each piece handed to the sink.
    fn scan(source: &TestDisk) -> (DynamicLayout, Vec<(u64, usize)>) {
        let options = ConvertOptions::new(OutputFormat::Dynamic);
        let Layout::Dynamic(mut layout) = Layout::new(source.size(), &options).unwrap() else {
            panic!("a dynamic layout");
        };
        let mut pieces = Vec::new();
        let mut sink = |offset: u64, bytes: &[u8]| {
            pieces.push((offset, bytes.len()));
            Ok(())
        };
        scan_blocks(
            source,
            &mut layout,
            Progress::default(),
            "test",
            Some(&mut sink),
        )
        .unwrap();
        (layout, pieces)
    }

    #[test]
    fn the_scan_reads_only_what_the_source_may_hold() {
        // Data only in bytes 8–10 MiB of 32 MiB, told range by range.
        let source = TestDisk::new(32 << 20, DATA, false);
        let (layout, pieces) = scan(&source);
        assert_eq!(layout.allocated_blocks(), 1, "the one 2 MiB block of data");
        assert_eq!(*source.reads.lock().unwrap(), vec![(DATA.start, 2 << 20)]);
        assert_eq!(
            pieces.len(),
            2,
            "the block's bitmap and its data: {pieces:?}"
        );
    }

    const DATA: std::ops::Range<u64> = (8 << 20)..(10 << 20);

    /// 3 MiB at 1 TiB + 1 MiB of a 2000 GiB disk.
    const SPARSE_DATA: std::ops::Range<u64> = (1 << 40) + (1 << 20)..(1 << 40) + (4 << 20);

    #[test]
    fn the_scan_jumps_over_holes_asking_once_per_stretch() {
        let source = TestDisk::new(2000 << 30, SPARSE_DATA, true);
        let (layout, _) = scan(&source);
        // The chunks at 1 TiB (1 MiB of data in its second half) and 1 TiB + 2 MiB.
        assert_eq!(
            *source.reads.lock().unwrap(),
            vec![(1 << 40, 2 << 20), ((1 << 40) + (2 << 20), 2 << 20)]
        );
        assert_eq!(layout.allocated_blocks(), 2);
        // Once at 0 (data at 1 TiB + 1 MiB, to its end), once past the data: holes to the end.
        assert_eq!(
            *source.asked.lock().unwrap(),
            vec![0, (1 << 40) + (4 << 20)]
        );
    }

    #[test]
    fn images_and_raw_disks_are_sources_and_streams_are_shared() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Image>();
        assert_send_sync::<crate::RawDisk>();
        assert_send_sync::<VhdStream>();
    }
}
