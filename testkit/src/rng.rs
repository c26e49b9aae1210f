//! Seeded randomness that a failure can replay (`VHD_TEST_SEED`).

/// SplitMix64: tiny, fast, and good enough to pick offsets and fill buffers.
///
/// The seed comes from `VHD_TEST_SEED` when set, else from the clock; it is printed when
/// the generator is made and again if the test panics, so a failure can be replayed.
pub struct Rng {
    state: u64,
    seed: u64,
    label: String,
}

impl Rng {
    pub fn new(label: &str) -> Rng {
        let seed = match std::env::var("VHD_TEST_SEED") {
            Ok(s) => parse_seed(&s).unwrap_or_else(|| panic!("bad VHD_TEST_SEED {s:?}")),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let mut mix = Rng::from_seed(nanos ^ u64::from(std::process::id()) << 32);
                // Different tests started in the same nanosecond still differ.
                label.bytes().for_each(|b| mix.state ^= u64::from(b));
                mix.next_u64()
            }
        };
        println!("{label}: seed {seed:#x} (replay with VHD_TEST_SEED={seed:#x})");
        Rng {
            state: seed,
            seed,
            label: label.to_string(),
        }
    }

    /// A generator with a fixed seed (no printing, no environment).
    pub fn from_seed(seed: u64) -> Rng {
        Rng {
            state: seed,
            seed,
            label: String::new(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&last[..n]);
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.label.is_empty() {
            eprintln!(
                "{}: FAILED with seed {:#x}; replay with VHD_TEST_SEED={:#x}",
                self.label, self.seed, self.seed
            );
        }
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
