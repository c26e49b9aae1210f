//! CHS geometry, computed as in the specification's appendix "CHS Calculation".

/// Cylinders, heads and sectors per track, as stored in the hard disk footer.
///
/// Old readers (Virtual PC, BIOSes) size a disk by its geometry; modern ones use the
/// footer's current size. The geometry is kept for them and exposed as extra information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Geometry {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors_per_track: u8,
}

/// The largest number of sectors CHS can describe: 65535 cylinders × 16 heads × 255 sectors.
pub const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;

impl Geometry {
    /// The geometry the specification assigns to a disk of `total_sectors` 512-byte sectors.
    ///
    /// Disks larger than [`MAX_CHS_SECTORS`] get the maximum geometry, 65535/16/255.
    pub fn for_sectors(total_sectors: u64) -> Geometry {
        let total = total_sectors.min(MAX_CHS_SECTORS);
        let (sectors_per_track, heads, cylinder_times_heads) = if total >= 65535 * 16 * 63 {
            (255, 16, total / 255)
        } else {
            let mut spt = 17;
            let mut cth = total / spt;
            let mut heads = cth.div_ceil(1024).max(4);
            if cth >= heads * 1024 || heads > 16 {
                spt = 31;
                heads = 16;
                cth = total / spt;
            }
            if cth >= heads * 1024 {
                spt = 63;
                heads = 16;
                cth = total / spt;
            }
            (spt, heads, cth)
        };
        Geometry {
            cylinders: (cylinder_times_heads / heads) as u16,
            heads: heads as u8,
            sectors_per_track: sectors_per_track as u8,
        }
    }

    /// The geometry for a disk of `size` bytes (rounded down to whole sectors).
    pub fn for_size(size: u64) -> Geometry {
        Geometry::for_sectors(size / 512)
    }

    /// Number of sectors the geometry describes (C × H × S).
    pub fn total_sectors(&self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors_per_track)
    }

    /// Size in bytes the geometry describes: what CHS-trusting readers take as the disk size.
    pub fn size(&self) -> u64 {
        self.total_sectors() * 512
    }

    /// True for 65535/16/255, which Disk2VHD and large disks use to mean "see the current size".
    pub fn is_max(&self) -> bool {
        self.total_sectors() == MAX_CHS_SECTORS
    }

    pub(crate) fn to_bytes(self) -> [u8; 4] {
        let c = self.cylinders.to_be_bytes();
        [c[0], c[1], self.heads, self.sectors_per_track]
    }

    pub(crate) fn from_bytes(b: [u8; 4]) -> Geometry {
        Geometry {
            cylinders: u16::from_be_bytes([b[0], b[1]]),
            heads: b[2],
            sectors_per_track: b[3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chs(c: u16, h: u8, s: u8) -> Geometry {
        Geometry {
            cylinders: c,
            heads: h,
            sectors_per_track: s,
        }
    }

    #[test]
    fn geometries_seen_in_real_images() {
        // Windows 10, 10 MiB (corpus dissect-hypervisor and node-vhd).
        assert_eq!(Geometry::for_size(10 * 1024 * 1024), chs(301, 4, 17));
        // Windows 7, 200 MiB (corpus rdisk/win7dyn): moves to 31 sectors per track.
        assert_eq!(Geometry::for_size(200 * 1024 * 1024), chs(825, 16, 31));
        // Hyper-V 2012 R2, 127 GiB-class disk: 255 sectors per track.
        assert_eq!(Geometry::for_size(136_365_211_648), chs(65278, 16, 255));
        // 3 MiB (rdisk/du.vhd).
        assert_eq!(Geometry::for_size(3 * 1024 * 1024), chs(90, 4, 17));
    }

    #[test]
    fn every_branch_of_the_algorithm() {
        // Small disks keep 4 heads minimum.
        assert_eq!(Geometry::for_sectors(17 * 4), chs(1, 4, 17));
        // 63 sectors per track when 31 is not enough (heads capped at 16).
        assert_eq!(Geometry::for_sectors(16 * 1024 * 31), chs(503, 16, 63));
        // Exactly at the 255-sector threshold.
        assert_eq!(Geometry::for_sectors(65535 * 16 * 63), chs(16191, 16, 255));
        // Larger than CHS can describe: clamps at the maximum.
        let max = Geometry::for_sectors(u64::MAX / 512);
        assert_eq!(max, chs(65535, 16, 255));
        assert!(max.is_max());
        assert_eq!(max.size(), MAX_CHS_SECTORS * 512);
    }

    #[test]
    fn geometry_never_exceeds_the_disk() {
        for sectors in (1..2_000_000u64).step_by(9973) {
            let g = Geometry::for_sectors(sectors);
            assert!(g.total_sectors() <= sectors, "{sectors} -> {g:?}");
        }
    }

    #[test]
    fn byte_round_trip() {
        let g = chs(0x1234, 16, 63);
        assert_eq!(g.to_bytes(), [0x12, 0x34, 16, 63]);
        assert_eq!(Geometry::from_bytes(g.to_bytes()), g);
    }
}
