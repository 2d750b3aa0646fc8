//! A token bucket: a rate with a burst, in whole milliseconds of the caller's clock.

use std::time::Duration;

/// A sustained rate with a burst: `per_second` tokens are added each second, up to
/// `burst` held at once. A new bucket starts full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second (connections, messages or bytes per second). Must be
    /// above zero; a rate of zero or less admits nothing after the burst.
    pub per_second: f64,
    /// Most tokens held at once: how many may be spent in one instant after a quiet
    /// period. At least 1.
    pub burst: f64,
}

impl Rate {
    /// `per_second` with a burst of one second's worth (at least 1).
    pub fn per_second(per_second: f64) -> Self {
        Self {
            per_second,
            burst: per_second.max(1.0),
        }
    }

    /// The same rate with a burst of `burst` tokens (at least 1).
    pub fn with_burst(self, burst: f64) -> Self {
        Self {
            burst: burst.max(1.0),
            ..self
        }
    }
}

/// The state of one bucket: 16 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn full(rate: &Rate, now_ms: u64) -> Self {
        Self {
            tokens: rate.burst,
            last_ms: now_ms,
        }
    }

    /// Refills for the time since the last call, then spends `cost` tokens if there
    /// are that many (or, for a cost above the burst, if the bucket is full: the
    /// bucket then goes into debt, so a large message passes but delays the next).
    /// Otherwise spends nothing and returns how long until `cost` would be there.
    pub fn take(&mut self, rate: &Rate, now_ms: u64, cost: f64) -> Result<(), Duration> {
        if now_ms > self.last_ms {
            let refill = (now_ms - self.last_ms) as f64 * rate.per_second / 1000.0;
            self.tokens = (self.tokens + refill).min(rate.burst);
            self.last_ms = now_ms;
        }
        let needed = cost.min(rate.burst);
        if self.tokens >= needed {
            self.tokens -= cost;
            return Ok(());
        }
        let seconds = if rate.per_second > 0.0 {
            (needed - self.tokens) / rate.per_second
        } else {
            3600.0
        };
        // A rate that is NaN or infinite waits the longest (never a panic).
        let seconds = if seconds.is_finite() {
            seconds.clamp(0.0, 3600.0)
        } else {
            3600.0
        };
        Err(Duration::from_secs_f64(seconds))
    }

    /// Whether the bucket has refilled to its burst by `now_ms`: it then carries no
    /// information and may be forgotten.
    pub fn is_full(&self, rate: &Rate, now_ms: u64) -> bool {
        let refill = now_ms.saturating_sub(self.last_ms) as f64 * rate.per_second / 1000.0;
        self.tokens + refill >= rate.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let rate = Rate::per_second(10.0).with_burst(3.0);
        let mut bucket = TokenBucket::full(&rate, 0);
        for _ in 0..3 {
            assert!(bucket.take(&rate, 0, 1.0).is_ok());
        }
        let wait = bucket.take(&rate, 0, 1.0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(bucket.take(&rate, 50, 1.0).is_err());
        assert!(bucket.take(&rate, 100, 1.0).is_ok());
        // A long quiet period refills to the burst, no more.
        assert!(bucket.is_full(&rate, 10_000));
        for _ in 0..3 {
            assert!(bucket.take(&rate, 10_000, 1.0).is_ok());
        }
        assert!(bucket.take(&rate, 10_000, 1.0).is_err());
    }

    #[test]
    fn odd_rates_never_panic() {
        for per_second in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let rate = Rate::per_second(per_second);
            let mut bucket = TokenBucket::full(&rate, 0);
            for now in [0, 10, 5, 1_000_000] {
                let _ = bucket.take(&rate, now, 1.0);
                let _ = bucket.take(&rate, now, 1e300);
            }
        }
    }

    #[test]
    fn a_cost_above_the_burst_passes_when_full_and_leaves_a_debt() {
        let rate = Rate::per_second(1000.0);
        let mut bucket = TokenBucket::full(&rate, 0);
        assert!(bucket.take(&rate, 0, 5000.0).is_ok());
        let wait = bucket.take(&rate, 0, 1.0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(4001));
        assert!(bucket.take(&rate, 4001, 1.0).is_ok());
    }
}
