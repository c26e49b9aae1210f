//! The allocation map of a virtual disk: which parts hold data, and which image of a chain
//! holds them (what `qemu-img map` shows).
//!
//! The map is worked out per block from the BATs, and inside the allocated blocks of
//! differencing images per sector bitmap byte, with bitmaps taken from each image's cache:
//! no data is read.

use super::differencing::DifferencingImage;
use super::dynamic::DynamicImage;
use super::{Image, Parent, VirtualDisk};
use crate::error::Result;
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
    pub fn allocated_ranges(&self) -> Result<Vec<AllocatedRange>> {
        self.ranges_down_to(usize::MAX)
    }

    /// The ranges held by this image itself (depth 0), for a differencing image: exactly
    /// the sectors its bitmaps mark present.
    pub(crate) fn own_ranges(&self) -> Result<Vec<AllocatedRange>> {
        self.ranges_down_to(0)
    }

    fn ranges_down_to(&self, max_depth: usize) -> Result<Vec<AllocatedRange>> {
        let mut map = Map {
            ranges: Vec::new(),
            max_depth,
        };
        map.layer(Layer::Image(self), 0, self.size(), 0)?;
        Ok(map.ranges)
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
        let block_size = u64::from(image.block_size());
        let bitmap_size = crate::sector_bitmap::bitmap_size(image.block_size());
        for (block, block_start, lo, hi) in blocks(start, end, block_size) {
            if let Some(sector) = image.bat().get(block) {
                let data = u64::from(sector) * 512 + bitmap_size;
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
