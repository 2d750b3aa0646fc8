//! Lists of the driver that a burst grows (10,000 handshakes answered in one turn
//! leave room for 10,000 completions and 10,000 writes in flight) give that memory
//! back once the burst is over, so an idle connection does not pay for the busiest
//! turn the reactor ever had.

/// The most a list held since it was last checked.
#[derive(Debug, Default)]
pub(super) struct Peak(usize);

impl Peak {
    /// The list holds `len` items now.
    pub fn see(&mut self, len: usize) {
        self.0 = self.0.max(len);
    }

    /// Starts a new period; returns the capacity a list of `capacity` should shrink to,
    /// if it is more than four times what the period needed: twice the period's peak
    /// (at least 64), so a steady load keeps its room and only a spent burst is given
    /// back.
    pub fn shrink_target(&mut self, capacity: usize) -> Option<usize> {
        let target = (2 * std::mem::take(&mut self.0)).max(64);
        (capacity > 2 * target).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::Peak;

    #[test]
    fn a_spent_burst_is_given_back_and_a_steady_load_keeps_its_room() {
        let mut peak = Peak::default();
        peak.see(10_000);
        assert_eq!(peak.shrink_target(16_384), None, "the burst's own period");
        peak.see(3);
        assert_eq!(peak.shrink_target(16_384), Some(64));
        peak.see(900);
        assert_eq!(peak.shrink_target(2_048), None);
        peak.see(100);
        assert_eq!(peak.shrink_target(2_048), Some(200));
    }
}
