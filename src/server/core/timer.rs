//! A coarse timer wheel: one slot per tick, timers checked lazily.
//!
//! Connections keep their own deadline; the wheel only says when to look at them. A
//! connection is scheduled at most once at a time, and a timer whose connection has
//! since moved its deadline is simply dropped when its slot comes up (the connection
//! re-arms itself). So refreshing a deadline on every message costs nothing here.
//!
//! Memory follows the timers held: a slot whose timers fired gives back the room
//! they took, so the wheel holds at most about four times its timers (Vec doubling,
//! and its smallest allocation of 4 timers), whatever bursts came before. A timer of
//! a closed connection stays until its slot comes up, so the timers held are bounded
//! by the connections opened within the longest timeout (`handshake_timeout`,
//! `ping_interval` plus `pong_timeout`, `close_timeout`), not by the connections
//! ever opened.

use std::time::{Duration, Instant};

/// The wheel's resolution.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Slots in the wheel: 1024 ticks (about 100 s); later deadlines wrap around and are
/// re-armed when their slot comes up early.
const SLOTS: usize = 1024;

/// A point in time, in ticks since the reactor started.
pub(crate) type Tick = u32;

/// A timer: a check of one connection (slab key and id, so a reused key is not
/// confused with the old connection) due at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    pub key: usize,
    pub id: u64,
    pub due: Tick,
}

/// The wheel.
#[derive(Debug)]
pub(crate) struct TimerWheel {
    origin: Instant,
    slots: Vec<Vec<Timer>>,
    /// The next tick whose slot has not been processed.
    next: Tick,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel starting now.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            next: 0,
            len: 0,
        }
    }

    /// The instant tick `tick` starts at.
    pub fn instant_of(&self, tick: Tick) -> Instant {
        self.origin + TICK * tick
    }

    /// The tick `at` falls in.
    pub fn tick_of(&self, at: Instant) -> Tick {
        // 64-bit arithmetic: this runs on every loop turn.
        let elapsed = at.saturating_duration_since(self.origin);
        let millis = elapsed.as_secs() * 1000 + u64::from(elapsed.subsec_millis());
        (millis / TICK.as_millis() as u64) as Tick
    }

    /// The tick `delay` from `now`, rounded up so a timer never fires early.
    #[cfg(test)]
    pub fn after(&self, now: Instant, delay: Duration) -> Tick {
        let elapsed = now.saturating_duration_since(self.origin) + delay;
        elapsed.as_millis().div_ceil(TICK.as_millis()) as Tick
    }

    /// Schedules a timer; returns the tick it is filed under, which the timer will
    /// carry when it fires: `due`, or the next unprocessed tick for a `due` the wheel
    /// has already passed (it fires on the next `advance`). A caller that recognises
    /// its timer by its tick must keep this one, not `due`.
    #[must_use = "a fired timer carries the tick returned here, not the one asked for"]
    pub fn schedule(&mut self, key: usize, id: u64, due: Tick) -> Tick {
        let due = due.max(self.next);
        self.slots[(due % SLOTS as Tick) as usize].push(Timer { key, id, due });
        self.len += 1;
        due
    }

    /// Drops every timer and gives back the slots' memory (for a reactor left with no
    /// connection, whose timers all belong to connections gone).
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            *slot = Vec::new();
        }
        self.len = 0;
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How long until the next tick boundary after `now` (the poll timeout).
    pub fn until_next_tick(&self, now: Instant) -> Duration {
        let next = self.origin + TICK * (self.tick_of(now) + 1);
        next.saturating_duration_since(now)
    }

    /// Moves the wheel to `now`, appending every timer that came due to `fired`.
    pub fn advance(&mut self, now: Instant, fired: &mut Vec<Timer>) {
        let now = self.tick_of(now);
        while self.next <= now {
            let slot = &mut self.slots[(self.next % SLOTS as Tick) as usize];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].due <= now {
                    fired.push(slot.swap_remove(i));
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
            // A slot keeps room for what it still holds (usually nothing), not for the
            // largest crowd it ever held: otherwise a burst of connections, whose
            // deadlines share a slot, would leave its size behind in every slot it
            // visits as it moves round the wheel, and the wheel would grow with every
            // burst, up to `SLOTS` times the largest one.
            if slot.capacity() > 4 * slot.len() {
                slot.shrink_to(2 * slot.len());
            }
            self.next += 1;
            if self.len == 0 {
                self.next = self.next.max(now + 1);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_drops_every_entry_and_the_slots_memory() {
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        for key in 0..5000 {
            let _ = wheel.schedule(key, key as u64, (key % 300) as Tick);
        }
        wheel.clear();
        assert!(wheel.is_empty());
        assert!(wheel.slots.iter().all(|slot| slot.capacity() == 0));
        let mut fired = Vec::new();
        wheel.advance(origin + Duration::from_secs(60), &mut fired);
        assert!(fired.is_empty(), "nothing cleared fires later");
    }

    /// Timers held and the memory the slots keep for them, in timers.
    fn held(wheel: &TimerWheel) -> (usize, usize) {
        let capacity = wheel.slots.iter().map(Vec::capacity).sum();
        (wheel.len, capacity)
    }

    #[test]
    fn memory_follows_the_entries_held_not_the_bursts_of_the_past() {
        // A churn that opens 100 connections at once about every 1.1 s: each burst's
        // handshake deadlines share one slot, and the burst slot moves round the
        // wheel. Before the fix every slot kept room for the largest burst it had
        // ever held (128 timers, 3 KiB), so the wheel grew for as long as the churn
        // lasted, until every slot had met a burst.
        let origin = Instant::now();
        let mut wheel = TimerWheel::new(origin);
        let mut fired = Vec::new();
        let (burst, every, timeout) = (100, 11, 101);
        for round in 0..2 * SLOTS as Tick {
            let now = round * every;
            wheel.advance(origin + TICK * now, &mut fired);
            fired.clear();
            for key in 0..burst {
                let _ = wheel.schedule(key, u64::from(round), now + timeout);
            }
        }
        let (len, capacity) = held(&wheel);
        // Timers live until their deadline: the bursts of the last `timeout` ticks.
        assert!(
            len <= burst * (timeout / every + 1) as usize,
            "{len} timers held"
        );
        // Vec doubling and its smallest allocation (4 timers) at most 4x.
        assert!(
            capacity <= 4 * len,
            "the slots keep room for {capacity} timers while holding {len}"
        );
        // Once everything fired, nothing is kept.
        wheel.advance(origin + TICK * (3 * SLOTS as Tick * every), &mut fired);
        assert_eq!(held(&wheel), (0, 0));
    }

    #[test]
    fn fires_when_due_and_not_before() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let due = wheel.after(start, Duration::from_millis(250));
        let _ = wheel.schedule(7, 1, due);
        let mut fired = Vec::new();
        wheel.advance(start + Duration::from_millis(200), &mut fired);
        assert!(fired.is_empty());
        wheel.advance(start + Duration::from_millis(300), &mut fired);
        assert_eq!(fired, [Timer { key: 7, id: 1, due }]);
        assert!(wheel.is_empty());
    }

    #[test]
    fn deadlines_beyond_one_turn_wait_for_their_turn() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let due = wheel.after(start, TICK * (SLOTS as u32 + 5));
        let _ = wheel.schedule(1, 1, due);
        let mut fired = Vec::new();
        wheel.advance(start + TICK * 10, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(start + TICK * (SLOTS as u32 + 6), &mut fired);
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn past_deadlines_fire_at_once() {
        let start = Instant::now();
        let mut wheel = TimerWheel::new(start);
        let mut fired = Vec::new();
        wheel.advance(start + TICK * 50, &mut fired);
        // Filed under the next tick the wheel has not processed, and fired with it:
        // the caller recognises its timer by the tick returned, not the one it asked.
        let filed = wheel.schedule(3, 9, 0);
        assert_eq!(filed, 51);
        wheel.advance(start + TICK * 51, &mut fired);
        assert_eq!(
            fired,
            [Timer {
                key: 3,
                id: 9,
                due: filed
            }]
        );
    }
}
