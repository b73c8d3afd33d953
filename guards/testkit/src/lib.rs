//! Dev-only helpers shared by the host tests and benchmarks of every crate
//! (never a dependency of the kernel or the tools themselves): one seeded
//! PRNG, so that a randomized test reproduces from its seed, and one median,
//! so that every benchmark reports the same statistic, and one replay of
//! the committed fuzz corpora.

use std::time::Instant;

/// SplitMix64: small, fast, any seed (0 included) gives a full-period
/// sequence. Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// Like [`Rng::below`] for indices.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

/// The median of `v` (the upper middle element for an even count); `None`
/// when empty. Sorts `v`.
pub fn median<T: PartialOrd + Copy>(v: &mut [T]) -> Option<T> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}

/// Median over `runs` runs of the time per call of `f`, in nanoseconds,
/// each run calling it `iters` times.
pub fn median_ns(runs: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters.max(1))
        })
        .collect();
    median(&mut v).unwrap_or(0.0)
}

/// Feeds every file of a committed fuzz corpus directory to `target`, in
/// name order, so each input that once found new coverage stays a
/// regression test on stable. An empty or missing corpus fails the test.
pub fn replay_corpus(dir: &std::path::Path, target: fn(&[u8])) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for p in &files {
        target(&std::fs::read(p).expect("read corpus file"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_bounded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(xs[0], xs[1]);
        assert_ne!(Rng::new(0).next_u64(), 0);
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3, 1, 2]), Some(2));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median::<u32>(&mut []), None);
    }
}
