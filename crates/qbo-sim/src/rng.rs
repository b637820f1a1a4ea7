//! Deterministic pseudo-random numbers: splitmix64, so generated data never changes with crate
//! versions, plus a lock-free shared generator for fault draws and token material.

use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser: a good 64-bit mixing function.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable hash of `(seed, salt, n)`: the basis of every generated value.
pub(crate) fn hash3(seed: u64, salt: u64, n: u64) -> u64 {
    mix(mix(mix(seed) ^ salt) ^ n)
}

/// Uniform `[0, 1)` from 64 random bits.
pub(crate) fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A splitmix64 generator shared between threads (each call advances it atomically).
#[derive(Debug)]
pub(crate) struct SharedRng(AtomicU64);

impl SharedRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    pub(crate) fn next_u64(&self) -> u64 {
        mix(self.0.fetch_add(GOLDEN, Ordering::Relaxed))
    }

    /// Uniform `[0, 1)`.
    pub(crate) fn next_f64(&self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Reference: splitmix64 seeded with 0 yields these first outputs.
        let rng = SharedRng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn unit_is_in_range() {
        assert!(unit(u64::MAX) < 1.0);
        assert_eq!(unit(0), 0.0);
    }
}
