//! Whether bytes are all zeros: the one test behind every path that skips or drops zeros
//! (unallocated blocks in writes and conversion, compaction, the checks of resize).

/// Whether every byte of `data` is zero. Sixteen bytes at a time, without a branch per
/// byte, so that the compiler turns it into wide compares: it runs over every byte a
/// conversion or compaction reads.
pub(crate) fn is_all_zero(data: &[u8]) -> bool {
    let chunks = data.chunks_exact(16);
    let tail = chunks.remainder();
    chunks
        .map(|c| u128::from_ne_bytes(c.try_into().expect("16 bytes")))
        .all(|w| w == 0)
        && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_non_zero_byte_is_seen() {
        let mut bytes = vec![0u8; 1000];
        assert!(is_all_zero(&bytes));
        assert!(is_all_zero(&[]));
        for at in [0, 15, 16, 500, 991, 999] {
            bytes[at] = 1;
            assert!(!is_all_zero(&bytes), "byte {at}");
            bytes[at] = 0;
        }
    }
}
