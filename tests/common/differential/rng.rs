//! A small seeded pseudo-random generator (SplitMix64), so the dataset and
//! the queries are the same on every run for a given seed, with no crate
//! whose stream could change between versions.

/// SplitMix64: one `u64` of state, statistically good enough for test data.
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `n` distinct elements of `items` (all of them if it has fewer).
    pub fn sample<T: Clone>(&mut self, items: &[T], n: usize) -> Vec<T> {
        let mut indexes: Vec<usize> = (0..items.len()).collect();
        let n = n.min(items.len());
        for i in 0..n {
            let j = i + self.below(indexes.len() - i);
            indexes.swap(i, j);
        }
        indexes[..n].iter().map(|&i| items[i].clone()).collect()
    }

    /// `Some(value())` except `null_percent` percent of the time.
    pub fn nullable<T>(
        &mut self,
        null_percent: u64,
        value: impl FnOnce(&mut Rng) -> T,
    ) -> Option<T> {
        if self.chance(null_percent) {
            None
        } else {
            Some(value(self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream_and_bounds_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let v = a.between(-3, 3);
            assert!((-3..=3).contains(&v));
            b.between(-3, 3);
        }
        let picked = a.sample(&[1, 2, 3, 4, 5], 3);
        let mut distinct = picked.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
    }
}
