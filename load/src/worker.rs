//! One event-loop thread: opens its share of the connections on its own mio poll and
//! drives their roles until the window closes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use crate::config::Config;
use crate::payload;
use crate::role::{Ctx, Unpublished};
use crate::shared::{Shared, Window};
use crate::shutdown;
use crate::slots::{Slots, Spec};
use crate::tally::Tally;

/// The longest a thread sleeps in its poll, so it notices the window and aborts.
const MAX_WAIT: Duration = Duration::from_millis(10);
/// How long slow consumers read, after their window, to see which ones the server
/// closed.
const STALL_CHECK: Duration = Duration::from_secs(2);

/// Runs one thread's connections; returns what it counted.
pub fn run(cfg: &Config, shared: &Shared, specs: Vec<Spec>) -> Tally {
    let poll = match Poll::new() {
        Ok(poll) => poll,
        Err(e) => {
            let mut tally = Tally::default();
            tally.error(|| format!("poll: {e}"));
            shared.ready.fetch_add(1, Ordering::SeqCst);
            return tally;
        }
    };
    // A staged run opens the connections of the first half (the lowest indices, first
    // in each thread's list) until the main thread lets the rest open.
    let first_half = cfg.staged().then(|| {
        specs
            .iter()
            .filter(|s| s.index < cfg.connections / 2)
            .count()
    });
    let mut slots = Slots::new(poll, specs);
    if let Some(first_half) = first_half {
        slots.allow(first_half);
    }
    let mut worker = Worker {
        cfg,
        shared,
        slots,
        events: Events::with_capacity(1024),
        local: Local {
            tally: Tally::default(),
            unpublished: Unpublished::default(),
            template: payload::template(cfg.size, cfg.json_payload),
            scratch: Vec::with_capacity(cfg.size),
        },
        ready_sent: false,
        halfway: first_half.is_some(),
        halfway_sent: false,
        started: false,
        draining: false,
        wake: None,
    };
    worker.run();
    worker.local.tally
}

/// A thread's state between wake-ups.
struct Worker<'a> {
    cfg: &'a Config,
    shared: &'a Shared,
    slots: Slots,
    events: Events,
    local: Local,
    /// Whether this thread has told the main thread its connections are settled.
    ready_sent: bool,
    /// A staged run, before the second half may open: the thread is to tell the main
    /// thread when its first half is settled, then wait.
    halfway: bool,
    /// Whether it has told it.
    halfway_sent: bool,
    /// Whether the roles have started (the window is known).
    started: bool,
    /// Whether the slow consumers are being read again (after their window).
    draining: bool,
    /// When a publisher next wants to run.
    wake: Option<Instant>,
}

/// What the roles write to, besides their connection: lent to them as a [`Ctx`].
struct Local {
    tally: Tally,
    unpublished: Unpublished,
    template: Vec<u8>,
    scratch: Vec<u8>,
}

impl Local {
    fn ctx<'a>(
        &'a mut self,
        cfg: &'a Config,
        shared: &'a Shared,
        window: Option<Window>,
    ) -> Ctx<'a> {
        let now = Instant::now();
        Ctx {
            cfg,
            shared,
            tally: &mut self.tally,
            now,
            now_ns: shared.nanos(now),
            unpublished: &mut self.unpublished,
            window,
            template: &self.template,
            scratch: &mut self.scratch,
        }
    }
}

impl Worker<'_> {
    /// Wake-ups until the window closes or the run is aborted.
    fn run(&mut self) {
        loop {
            let (cfg, shared) = (self.cfg, self.shared);
            self.report_halfway();
            self.slots.open_more(cfg, shared, &mut self.local.tally);
            self.report_ready();
            let now = Instant::now();
            let window = shared.window.get().copied();
            if shared.abort.load(Ordering::Relaxed) {
                if !self.ready_sent && !crate::interrupt::requested() {
                    // The run gave up waiting for these: each is an error.
                    self.slots.fail_unsettled(
                        &mut self.local.tally,
                        "no handshake answer before the run gave up waiting",
                    );
                }
                break;
            }
            if let Some(w) = window
                && now >= w.to
                && self.finished(w, now)
            {
                break;
            }
            let timeout = self.timeout(now, window);
            if let Err(e) = self.slots.wait(&mut self.events, timeout) {
                self.local.tally.error(|| format!("poll: {e}"));
                break;
            }
            // Read again: another worker may have opened the window during the wait,
            // and a publisher of its may already have sent what this wake-up reads.
            self.turn(shared.window.get().copied());
        }
    }

    /// Whether this thread is done, the window having closed: at once, except at the
    /// end of a soak with a shutdown (once the server has closed every connection, or
    /// [`shutdown::DRAIN`] passed) and for slow consumers (once they have been read
    /// again for [`STALL_CHECK`], to see which ones the server closed).
    fn finished(&mut self, w: Window, now: Instant) -> bool {
        if self.cfg.shutdown {
            if self.slots.all_ended() {
                return true;
            }
            if now >= w.to + shutdown::DRAIN {
                self.slots.fail_open(
                    &mut self.local.tally,
                    "no close 1001 within the drain time after the window",
                );
                return true;
            }
            return false;
        }
        if self.cfg.stall {
            if !self.draining {
                self.draining = true;
                let mut ctx = self.local.ctx(self.cfg, self.shared, Some(w));
                self.slots.drain_stalled(&mut ctx);
            }
            return self.slots.all_ended() || now >= w.to + STALL_CHECK;
        }
        true
    }

    /// A staged run: tells the main thread, once, that every connection of this
    /// thread's first half is open or failed; lets the rest open once the main thread
    /// says so.
    fn report_halfway(&mut self) {
        if !self.halfway {
            return;
        }
        if self.shared.second_half.load(Ordering::SeqCst) {
            self.halfway = false;
            self.slots.allow(usize::MAX);
        } else if self.slots.settled_allowed() && !self.halfway_sent {
            self.halfway_sent = true;
            self.shared.halfway.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Tells the main thread, once, that every connection is open or failed.
    fn report_ready(&mut self) {
        if self.halfway {
            return;
        }
        if !self.ready_sent && self.slots.settled() {
            self.ready_sent = true;
            self.shared.ready.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How long the next poll may sleep: until a publisher is due or the window
    /// closes, and never more than [`MAX_WAIT`].
    fn timeout(&self, now: Instant, window: Option<Window>) -> Duration {
        let mut timeout = MAX_WAIT;
        if let Some(at) = self.wake {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        if let Some(w) = window
            && now < w.to
        {
            timeout = timeout.min(w.to - now);
        }
        timeout
    }

    /// Everything one wake-up does after the poll returns.
    fn turn(&mut self, window: Option<Window>) {
        let mut ctx = self.local.ctx(self.cfg, self.shared, window);
        self.slots.handle(&self.events, &mut ctx);
        // Before the publishers look at the delivered counts.
        ctx.publish_counts();
        if window.is_some() && !self.started {
            self.started = true;
            self.slots.start(&mut ctx);
        }
        self.wake = self.slots.tick_publishers(&mut ctx);
    }
}
