//! Exponential backoff with jitter, between a transport's connection attempts.

use std::time::Duration;

/// Delays between retries: `min`, doubling up to `max`, each shortened by a random
/// part of up to a quarter (so servers that lost the broker together do not all come
/// back in the same millisecond).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff from `min` to `max` (`max` is raised to `min` if lower); `seed` makes
    /// the jitter differ between servers (the node id, say).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt; the one after is twice as long, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift64: jitter, not secrecy.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let quarter = base.as_micros() as u64 / 4;
        let cut = if quarter == 0 { 0 } else { self.rng % quarter };
        base - Duration::from_micros(cut)
    }

    /// Back to `min`, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_bounded_jitter_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1000), 42);
        let bases = [100, 200, 400, 800, 1000, 1000];
        for base in bases {
            let delay = backoff.next_delay();
            assert!(
                delay <= ms(base) && delay >= ms(base) * 3 / 4,
                "{delay:?} {base}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= ms(100));
    }
}
