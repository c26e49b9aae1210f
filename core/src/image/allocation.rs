//! The allocation map of a virtual disk: which parts hold data, and which image of a chain
//! holds them (what `qemu-img map` shows).
//!
//! The map is worked out per block from the BATs, and inside the allocated blocks of
//! differencing images per sector bitmap byte, with bitmaps taken from each image's cache:
//! no data is read.

use super::differencing::DifferencingImage;
use super::dynamic::DynamicImage;
use super::{Image, Parent, VirtualDisk};
use crate::error::{Error, Result};
use crate::ops::AllocatedRange;

impl Image {
    /// The allocated ranges of the virtual disk, in disk order (see
    /// [`crate::ops::allocated_ranges`], which this is).
    ///
    /// - Fixed image (or raw base): the whole disk, at its depth.
    /// - Dynamic image: every allocated block as a whole, as `qemu-img map` counts it
    ///   (its sector bitmap is not consulted: a dynamic image reads the block's data as it
    ///   is), the last block clipped at the disk size.
    /// - Differencing image: each sector comes from the nearest image of the chain whose
    ///   sector bitmap marks it present (depth 0 is this image, 1 its parent, …), falling
    ///   through to fixed, dynamic or raw bases as above; what lies past a parent's end is
    ///   not allocated anywhere.
    ///
    /// Sectors present nowhere (they read as zeros) are not listed. Adjacent runs at the
    /// same depth whose data is contiguous in that image's file are merged, as `qemu-img
    /// map` merges them. [`Image::chain`]`()[depth]` is the file that holds a range.
    ///
    /// The list is refused past [`MAX_LISTED_RANGES`] ranges ([`Error::TooManyRanges`]): a
    /// crafted image can hold millions of runs in a few MiB of file. Use
    /// [`Image::allocated_ranges_iter`], which holds a bounded number at a time, for those.
    pub fn allocated_ranges(&self) -> Result<Vec<AllocatedRange>> {
        let mut ranges = Vec::new();
        for range in self.allocated_ranges_iter() {
            if ranges.len() == MAX_LISTED_RANGES {
                return Err(Error::TooManyRanges {
                    path: self.path().to_path_buf(),
                    limit: MAX_LISTED_RANGES,
                });
            }
            ranges.push(range?);
        }
        Ok(ranges)
    }

    /// The allocated ranges of the virtual disk one by one, in disk order: the same ranges
    /// as [`Image::allocated_ranges`], worked out a window of the disk at a time, so that
    /// memory stays bounded (at most [`RangeCursor::MAX_HELD`] ranges) whatever their count.
    pub fn allocated_ranges_iter(&self) -> AllocatedRanges<'_> {
        AllocatedRanges::new(self, RangeCursor::new())
    }

    /// The ranges held by this image itself (depth 0), for a differencing image: exactly
    /// the sectors its bitmaps mark present. Bounded in memory as
    /// [`Image::allocated_ranges_iter`].
    pub(crate) fn own_ranges_iter(&self) -> AllocatedRanges<'_> {
        AllocatedRanges::new(self, RangeCursor::own_ranges())
    }
}

/// Most ranges [`Image::allocated_ranges`] lists (about 40 MiB of them); past that it
/// refuses with [`Error::TooManyRanges`] and the caller iterates instead.
pub const MAX_LISTED_RANGES: usize = 1 << 20;

/// Virtual bytes mapped in one step of a [`RangeCursor`]: a step finds at most one range
/// per sector of it, whatever the image.
const WINDOW: u64 = 4 << 20;

/// Where a walk over the allocated ranges of an image stands, kept apart from the image so
/// that a walk can be resumed later (the JavaScript iterator fetches ranges in batches, each
/// on a pool thread, with the image shared in between). Ranges found after a write to the
/// image reflect that write.
#[derive(Debug, Clone)]
pub struct RangeCursor {
    /// The first virtual byte not mapped yet.
    position: u64,
    /// The last range found: a later window may continue it (ranges are merged).
    pending: Option<AllocatedRange>,
    /// How deep into the chain the walk looks (0: the image's own sectors only).
    max_depth: usize,
    /// Where the walk ends (the disk's end, or the end of [`RangeCursor::range`]).
    end: u64,
    finished: bool,
}

impl Default for RangeCursor {
    fn default() -> Self {
        RangeCursor::new()
    }
}

impl RangeCursor {
    /// Most ranges one [`RangeCursor::next_ranges`] call appends: one per sector of a
    /// window, plus the range held over from the window before.
    pub const MAX_HELD: usize = (WINDOW / 512) as usize + 1;

    /// A walk from the start of the disk, through the whole chain.
    pub fn new() -> RangeCursor {
        RangeCursor {
            position: 0,
            pending: None,
            max_depth: usize::MAX,
            end: u64::MAX,
            finished: false,
        }
    }

    /// A walk over virtual bytes `start..end` only (through the whole chain): the ranges
    /// it finds are those of [`RangeCursor::new`] clipped to `start..end`. What a server
    /// answering a question about one range asks (NBD's block status), without mapping
    /// the disk before `start` nor after `end`.
    pub fn range(start: u64, end: u64) -> RangeCursor {
        RangeCursor {
            position: start,
            end,
            ..RangeCursor::new()
        }
    }

    fn own_ranges() -> RangeCursor {
        RangeCursor {
            max_depth: 0,
            ..RangeCursor::new()
        }
    }

    /// Whether the walk has reached the end of the disk (every range was handed out).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Maps the next windows of `image`'s disk until at least one range is complete (or
    /// the disk ends), and appends the complete ones to `out` (at most
    /// [`RangeCursor::MAX_HELD`]). Appends nothing once [`RangeCursor::is_finished`].
    pub fn next_ranges(&mut self, image: &Image, out: &mut Vec<AllocatedRange>) -> Result<()> {
        let size = image.size().min(self.end);
        while !self.finished {
            if self.position >= size {
                out.extend(self.pending.take());
                self.finished = true;
                break;
            }
            let end = size.min(self.position + WINDOW);
            let mut map = Map {
                ranges: Vec::from_iter(self.pending.take()),
                max_depth: self.max_depth,
            };
            map.layer(Layer::Image(image), self.position, end, 0)?;
            self.position = end;
            // The last range may go on in the next window; the others are complete.
            self.pending = map.ranges.pop();
            if !map.ranges.is_empty() {
                out.append(&mut map.ranges);
                break;
            }
        }
        Ok(())
    }
}

/// The allocated ranges of an image one by one (see [`Image::allocated_ranges_iter`]).
/// After an error it ends.
pub struct AllocatedRanges<'a> {
    image: &'a Image,
    cursor: RangeCursor,
    /// Complete ranges not handed out yet, in reverse order.
    ready: Vec<AllocatedRange>,
}

impl<'a> AllocatedRanges<'a> {
    fn new(image: &'a Image, cursor: RangeCursor) -> AllocatedRanges<'a> {
        AllocatedRanges {
            image,
            cursor,
            ready: Vec::new(),
        }
    }

    /// How many ranges the iterator holds now (never more than [`RangeCursor::MAX_HELD`]).
    pub fn held(&self) -> usize {
        self.ready.len() + usize::from(self.cursor.pending.is_some())
    }
}

impl Iterator for AllocatedRanges<'_> {
    type Item = Result<AllocatedRange>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ready.is_empty() {
            if let Err(error) = self.cursor.next_ranges(self.image, &mut self.ready) {
                self.cursor.finished = true;
                return Some(Err(error));
            }
            self.ready.reverse();
        }
        self.ready.pop().map(Ok)
    }
}

/// One image of a chain, seen as a layer of the allocation map.
#[derive(Clone, Copy)]
enum Layer<'a> {
    Image(&'a Image),
    Parent(&'a Parent),
}

impl Layer<'_> {
    fn size(&self) -> u64 {
        match self {
            Layer::Image(image) => image.size(),
            Layer::Parent(parent) => parent.disk().size(),
        }
    }
}

/// The map being built, and how deep into the chain it looks.
struct Map {
    ranges: Vec<AllocatedRange>,
    max_depth: usize,
}

impl Map {
    /// Maps virtual bytes `start..end` of `layer`, which sits at `depth` of the chain.
    fn layer(&mut self, layer: Layer, start: u64, end: u64, depth: usize) -> Result<()> {
        // A child may be larger than its parent: nothing past the parent's end is in it.
        let end = end.min(layer.size());
        if start >= end || depth > self.max_depth {
            return Ok(());
        }
        let image = match layer {
            Layer::Image(image) => image,
            Layer::Parent(Parent::Image(image)) => image.as_ref(),
            // A raw base holds every byte, at its own offset.
            Layer::Parent(Parent::Raw(_)) => {
                self.push(start, end - start, depth, start);
                return Ok(());
            }
        };
        match image {
            Image::Fixed(_) => self.push(start, end - start, depth, start),
            Image::Dynamic(dynamic) => self.dynamic(dynamic, start, end, depth),
            Image::Differencing(child) => self.differencing(child, start, end, depth)?,
        }
        Ok(())
    }

    /// An allocated block of a dynamic image is data as a whole; others hold nothing.
    fn dynamic(&mut self, image: &DynamicImage, start: u64, end: u64, depth: usize) {
        let sparse = image.sparse();
        let block_size = u64::from(sparse.block_size());
        for (block, block_start, lo, hi) in blocks(start, end, block_size) {
            if let Some(sector) = sparse.bat().get(block) {
                let data = sparse.data_offset(sector);
                self.push(lo, hi - lo, depth, data + (lo - block_start));
            }
        }
    }

    /// Present sectors are this image's; the others, and unallocated blocks, are the
    /// parent's to map.
    fn differencing(
        &mut self,
        image: &DifferencingImage,
        start: u64,
        end: u64,
        depth: usize,
    ) -> Result<()> {
        let sparse = image.sparse();
        let parent = Layer::Parent(image.parent());
        let block_size = u64::from(sparse.block_size());
        for (block, block_start, lo, hi) in blocks(start, end, block_size) {
            let Some(sector) = sparse.bat().get(block) else {
                self.layer(parent, lo, hi, depth + 1)?;
                continue;
            };
            let bitmap = sparse.bitmap(block, sector)?;
            let data = sparse.data_offset(sector);
            let last = (hi - block_start).div_ceil(512) as u32;
            let mut first = ((lo - block_start) / 512) as u32;
            while first < last {
                let present = bitmap.is_set(first);
                let run_end = bitmap.run_end(first, last);
                let run_lo = (block_start + u64::from(first) * 512).max(lo);
                let run_hi = (block_start + u64::from(run_end) * 512).min(hi);
                if present {
                    self.push(
                        run_lo,
                        run_hi - run_lo,
                        depth,
                        data + (run_lo - block_start),
                    );
                } else {
                    self.layer(parent, run_lo, run_hi, depth + 1)?;
                }
                first = run_end;
            }
        }
        Ok(())
    }

    /// Appends a run, merged into the previous one when it continues it on the disk and in
    /// the same file.
    fn push(&mut self, offset: u64, length: u64, depth: usize, file_offset: u64) {
        if let Some(last) = self.ranges.last_mut() {
            let continues = last.depth == depth
                && last.offset + last.length == offset
                && last.file_offset.map(|start| start + last.length) == Some(file_offset);
            if continues {
                last.length += length;
                return;
            }
        }
        self.ranges.push(AllocatedRange {
            offset,
            length,
            depth,
            file_offset: Some(file_offset),
        });
    }
}

/// `(block, block start, lo, hi)` for each block that virtual bytes `start..end` touch,
/// `lo..hi` being the part of the range inside the block.
fn blocks(start: u64, end: u64, block_size: u64) -> impl Iterator<Item = (u32, u64, u64, u64)> {
    let first = start / block_size;
    let last = (end - 1) / block_size;
    (first..=last).map(move |block| {
        let block_start = block * block_size;
        let lo = start.max(block_start);
        let hi = end.min(block_start + block_size);
        (block as u32, block_start, lo, hi)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_only_when_contiguous_in_the_file_too() {
        let mut map = Map {
            ranges: Vec::new(),
            max_depth: 0,
        };
        // A long run placed late in the file, then the next disk run early in the file
        // (blocks written out of order): no merge, and no arithmetic overflow.
        map.push(0, 4 << 20, 0, 8 << 20);
        map.push(4 << 20, 1 << 20, 0, 1 << 20);
        map.push(5 << 20, 1 << 20, 0, 2 << 20);
        let starts: Vec<_> = map.ranges.iter().map(|r| (r.offset, r.length)).collect();
        assert_eq!(starts, vec![(0, 4 << 20), (4 << 20, 2 << 20)]);
    }

    #[test]
    fn blocks_split_a_range_at_block_boundaries() {
        let spans: Vec<_> = blocks(1000, 5000, 2048).collect();
        assert_eq!(
            spans,
            vec![
                (0, 0, 1000, 2048),
                (1, 2048, 2048, 4096),
                (2, 4096, 4096, 5000)
            ]
        );
    }
}
