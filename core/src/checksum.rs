//! The checksum shared by the footer and the dynamic disk header.

use crate::error::{Error, Result};

/// One's complement of the byte sum of `bytes`, skipping the 4-byte checksum field that
/// starts at `checksum_field`.
///
/// The specification defines the checksum over the structure with its checksum field
/// taken as zero, which is the same as leaving those four bytes out of the sum.
pub fn checksum(bytes: &[u8], checksum_field: usize) -> u32 {
    let sum = bytes
        .iter()
        .enumerate()
        .filter(|(i, _)| !(checksum_field..checksum_field + 4).contains(i))
        .fold(0u32, |sum, (_, &b)| sum.wrapping_add(u32::from(b)));
    !sum
}

/// Fails with [`Error::Checksum`] naming `structure` and where it is when `stored` is not
/// the `computed` checksum.
pub(crate) fn verify(
    structure: &'static str,
    offset: u64,
    stored: u32,
    computed: u32,
) -> Result<()> {
    if stored == computed {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: None,
            structure,
            offset,
            stored,
            computed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_structure_sums_to_all_ones() {
        assert_eq!(checksum(&[0u8; 512], 64), 0xFFFF_FFFF);
    }

    #[test]
    fn checksum_field_is_ignored() {
        let mut a = [1u8; 16];
        let b = a;
        a[4..8].copy_from_slice(&[0xAA; 4]);
        assert_eq!(checksum(&a, 4), checksum(&b, 4));
        assert_eq!(checksum(&b, 4), !12u32);
    }
}
