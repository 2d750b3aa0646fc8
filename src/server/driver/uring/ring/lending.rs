//! Which provided buffers are lent to the kernel, which are the driver's, and which
//! are parked: the bookkeeping of the buffer ring, without the ring (no `unsafe`, no
//! kernel: tested on its own).
//!
//! A buffer is in one of three states:
//!
//! - **idle**: not in circulation, never lent or parked by a shrink; the kernel
//!   never sees it, and its pages are not resident (never touched, or given back with
//!   `MADV_DONTNEED` when it was parked);
//! - **in the ring**: lent, the kernel's until a receive completion names it;
//! - **held**: named by a reaped completion, the driver's until it is recycled.
//!
//! Circulation grows as receives find the ring dry ([`Lending::grow`]). It shrinks
//! when a period's peak of held buffers is far below it ([`Lending::end_period`]):
//! from then on a recycled buffer is parked instead of going back into the ring,
//! until circulation is down to the target. Only a held buffer is ever parked, so the
//! pages given back are never ones the kernel may be writing.

/// The least circulation a shrink leaves: the ring's first loan.
pub(super) const FIRST_LENT: u16 = 32;

/// What to do with a buffer the driver gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Returned {
    /// Back into the ring.
    Relend,
    /// Out of circulation: give its pages back.
    Park,
}

/// The states of a ring's `count` buffers (see the module docs).
#[derive(Debug)]
pub(super) struct Lending {
    count: u16,
    /// Idle buffer ids, the next to lend last: lowest ids first at the start, then the
    /// most recently parked.
    idle: Vec<u16>,
    /// Buffers in circulation: in the ring or held.
    lent: u16,
    /// Buffers held now.
    held: u16,
    /// The most buffers held at once since the period began.
    peak_held: u16,
    /// The circulation wanted: a recycled buffer past it is parked.
    target: u16,
    /// Debug builds: which buffers are held (one bit each), to catch a buffer
    /// recycled twice or never handed out, and a completion naming a held buffer.
    #[cfg(debug_assertions)]
    held_bits: Vec<u64>,
}

impl Lending {
    /// `count` buffers, all idle.
    pub fn new(count: u16) -> Self {
        Self {
            count,
            idle: (0..count).rev().collect(),
            lent: 0,
            held: 0,
            peak_held: 0,
            target: count,
            #[cfg(debug_assertions)]
            held_bits: vec![0; usize::from(count).div_ceil(64)],
        }
    }

    /// Buffers in circulation.
    #[cfg(test)]
    pub fn lent(&self) -> u16 {
        self.lent
    }

    /// Puts idle buffers into circulation until `upto` are (at most `count`); returns
    /// their ids, to push into the ring. Raises the target to match.
    pub fn lend(&mut self, upto: u16) -> Vec<u16> {
        let upto = upto.min(self.count);
        self.target = self.target.max(upto);
        let mut out = Vec::new();
        while self.lent < upto {
            let Some(bid) = self.idle.pop() else { break };
            self.lent += 1;
            out.push(bid);
        }
        out
    }

    /// A receive found the ring dry: twice the circulation (at most all buffers);
    /// returns the ids to push.
    pub fn grow(&mut self) -> Vec<u16> {
        self.lend(self.lent.saturating_mul(2).max(1))
    }

    /// A reaped completion handed buffer `bid` to the driver.
    pub fn taken(&mut self, bid: u16) {
        #[cfg(debug_assertions)]
        {
            let (word, bit) = (usize::from(bid) / 64, 1u64 << (bid % 64));
            debug_assert!(
                bid < self.count && self.held_bits[word] & bit == 0,
                "provided buffer {bid} handed out while already held (or out of range)"
            );
            self.held_bits[word] |= bit;
        }
        #[cfg(not(debug_assertions))]
        let _ = bid;
        self.held += 1;
        self.peak_held = self.peak_held.max(self.held);
    }

    /// Whether buffer `bid` is held (debug builds; `true` otherwise).
    pub fn is_held(&self, bid: u16) -> bool {
        #[cfg(debug_assertions)]
        {
            bid < self.count && self.held_bits[usize::from(bid) / 64] & (1 << (bid % 64)) != 0
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = bid;
            true
        }
    }

    /// The driver gives buffer `bid` back: into the ring again, or parked while
    /// circulation is over the target.
    pub fn returned(&mut self, bid: u16) -> Returned {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                self.is_held(bid),
                "provided buffer {bid} recycled but not held: recycled twice, or never \
                 handed out by a completion"
            );
            self.held_bits[usize::from(bid) / 64] &= !(1 << (bid % 64));
        }
        self.held = self.held.saturating_sub(1);
        if self.lent > self.target {
            self.lent -= 1;
            self.idle.push(bid);
            Returned::Park
        } else {
            Returned::Relend
        }
    }

    /// Ends a period (about 100 ms): if circulation is over four times what the
    /// period needed (twice its peak of held buffers, at least [`FIRST_LENT`]), the
    /// target drops to that, and recycled buffers are parked until circulation is
    /// down to it; otherwise the target stays. A steady load keeps its buffers; a
    /// spent burst gives them back as they come home.
    pub fn end_period(&mut self) {
        let wanted = (2 * u32::from(self.peak_held)).max(u32::from(FIRST_LENT));
        if u32::from(self.lent) > 2 * wanted {
            self.target = wanted as u16;
        }
        self.peak_held = self.held;
    }

    /// Buffers in the ring beyond the circulation wanted: what a shrink could take
    /// home now rather than wait for receives to bring them. The ring keeps at least
    /// the target for the receives to come (held ones come home later, and are
    /// parked then).
    pub fn spare_in_ring(&self) -> u16 {
        let in_ring = self.lent - self.held;
        self.lent
            .saturating_sub(self.target)
            .min(in_ring.saturating_sub(self.target))
    }

    /// The circulation wanted now.
    #[cfg(test)]
    pub fn target(&self) -> u16 {
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::{FIRST_LENT, Lending, Returned};

    #[test]
    fn buffers_are_lent_lowest_first_and_growth_doubles_up_to_all() {
        let mut lending = Lending::new(128);
        assert_eq!(lending.lend(FIRST_LENT), (0..32).collect::<Vec<_>>());
        assert_eq!(lending.grow(), (32..64).collect::<Vec<_>>());
        assert_eq!(lending.grow().len(), 64);
        assert!(lending.grow().is_empty());
        assert_eq!(lending.lent(), 128);
        let mut small = Lending::new(2);
        assert_eq!(small.lend(FIRST_LENT), vec![0, 1]);
    }

    #[test]
    fn the_spare_buffers_taken_home_leave_the_target_in_the_ring() {
        let mut lending = Lending::new(256);
        lending.lend(128);
        // A quiet period after the burst: the target drops to the first loan.
        lending.end_period();
        assert_eq!(lending.target(), FIRST_LENT);
        assert_eq!(lending.spare_in_ring(), 128 - FIRST_LENT);
        // Load came back: 100 held, 28 in the ring; none of those is spare.
        for bid in 0..100 {
            lending.taken(bid);
        }
        assert_eq!(lending.spare_in_ring(), 0);
    }

    #[test]
    fn a_spent_burst_parks_recycled_buffers_down_to_twice_the_new_peak() {
        let mut lending = Lending::new(256);
        lending.lend(256);
        // The burst: 200 held at once.
        for bid in 0..200 {
            lending.taken(bid);
        }
        for bid in 0..200 {
            assert_eq!(lending.returned(bid), Returned::Relend);
        }
        lending.end_period();
        assert_eq!(
            lending.target(),
            256,
            "the burst's own period keeps its buffers"
        );
        // A quiet period: 3 held at most.
        for bid in 0..3 {
            lending.taken(bid);
            lending.returned(bid);
        }
        lending.end_period();
        assert_eq!(lending.target(), FIRST_LENT);
        let parked = (0..256)
            .filter(|&bid| {
                lending.taken(bid);
                lending.returned(bid) == Returned::Park
            })
            .count();
        assert_eq!(parked, 256 - usize::from(FIRST_LENT));
        assert_eq!(lending.lent(), FIRST_LENT);
        // Load again: growth lends the parked buffers, most recently parked first.
        assert_eq!(lending.grow(), (192..224).rev().collect::<Vec<_>>());
        assert_eq!(lending.lent(), 64);
    }

    #[test]
    fn a_steady_load_keeps_its_buffers() {
        let mut lending = Lending::new(256);
        lending.lend(128);
        for _ in 0..3 {
            for bid in 0..40 {
                lending.taken(bid);
            }
            for bid in 0..40 {
                assert_eq!(lending.returned(bid), Returned::Relend);
            }
            lending.end_period();
            assert_eq!(lending.lent(), 128);
        }
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "recycled but not held")]
    fn recycling_a_buffer_twice_is_caught_in_debug_builds() {
        let mut lending = Lending::new(32);
        lending.lend(32);
        lending.taken(5);
        lending.returned(5);
        lending.returned(5);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "recycled but not held")]
    fn recycling_a_buffer_no_completion_handed_out_is_caught_in_debug_builds() {
        let mut lending = Lending::new(32);
        lending.lend(32);
        lending.returned(7);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "while already held")]
    fn a_completion_naming_a_held_buffer_is_caught_in_debug_builds() {
        let mut lending = Lending::new(32);
        lending.lend(32);
        lending.taken(9);
        lending.taken(9);
    }
}
