//! Latency counts: the `hdrhistogram` crate with three significant digits, plus the
//! exact maximum.
//!
//! The histogram covers every `u64` (nanoseconds here): values below 2048 are counted
//! exactly and larger ones within 0.1%. Every histogram has the same range, so the
//! per-thread histograms always merge. This wrapper adds what the reports need on top:
//! `Default` (for [`Tally`](crate::tally::Tally)), the exact largest value, and
//! quantiles that never exceed it.

/// Significant decimal digits kept for every value.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Counts of `u64` values with three significant digits and the exact maximum.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: hdrhistogram::Histogram<u64>,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        let counts = hdrhistogram::Histogram::new_with_bounds(1, u64::MAX, SIGNIFICANT_DIGITS)
            .expect("1..=u64::MAX at 3 significant digits is a valid range");
        Self { counts, max: 0 }
    }
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        // The range is all of `u64`, so nothing is clamped.
        self.counts.saturating_record(v);
        self.max = self.max.max(v);
    }

    /// Adds every count of `other`.
    pub fn add(&mut self, other: &Histogram) {
        self.counts
            .add(&other.counts)
            .expect("histograms with the same range always add");
        self.max = self.max.max(other.max);
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.counts.len()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The largest value counted (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0 to 1): the top of the smallest bucket with at
    /// least `q` of the counts at or below it, capped at the exact maximum; 0 when
    /// empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.counts
            .value_at_quantile(q.clamp(0.0, 1.0))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact_and_large_ones_within_a_thousandth() {
        for v in [1, 2047, 2048, 2049, 4095, 123_456, 9_876_543_210, u64::MAX] {
            let mut h = Histogram::default();
            h.record(v);
            h.record(0);
            assert_eq!(h.max(), v);
            let top = h.value_at_quantile(1.0);
            assert!(top <= v, "capped at the exact maximum");
            assert!(v - top <= v / 1000 + 1, "{v} -> {top}");
            let bucket_top = h.counts.highest_equivalent(v);
            assert!(
                bucket_top.abs_diff(v) <= v / 1000 + 1,
                "{v} -> {bucket_top}"
            );
        }
        let mut h = Histogram::default();
        h.record(1234);
        assert_eq!(h.counts.highest_equivalent(1234), 1234);
    }

    #[test]
    fn quantiles_and_merging() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.value_at_quantile(0.5);
        assert!((5_000_000..=5_005_000).contains(&p50), "{p50}");
        let p99 = h.value_at_quantile(0.99);
        assert!((9_900_000..=9_910_000).contains(&p99), "{p99}");
        assert_eq!(h.value_at_quantile(1.0), 10_000_000);
        let mut other = Histogram::default();
        other.record(20_000_000);
        other.record(7);
        h.add(&other);
        assert_eq!(h.max(), 20_000_000);
        assert_eq!(h.len(), 10_002);
        assert_eq!(h.value_at_quantile(0.0), 7);
        assert_eq!(Histogram::default().value_at_quantile(0.5), 0);
        assert!(Histogram::default().is_empty());
    }

    #[test]
    fn merging_into_an_empty_histogram_copies() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        b.record(3_000);
        b.record(5_000_000_000);
        a.add(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(a.max(), 5_000_000_000);
        assert_eq!(a.value_at_quantile(0.5), b.value_at_quantile(0.5));
    }
}
