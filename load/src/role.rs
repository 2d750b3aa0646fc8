//! What each connection does with the messages it receives: the workloads.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::conn::Out;
use crate::payload;
use crate::shared::{Shared, Window};
use crate::shutdown;
use crate::tally::Tally;

/// A publisher stops queueing while this much is unwritten on its socket.
const MAX_PENDING_OUT: usize = 4 << 20;

/// A connection's part in the workload.
pub enum Role {
    /// Sends numbered messages and checks each echo, in order.
    Echo {
        /// The connection id carried in its payloads.
        id: u32,
        /// Next sequence number to send.
        next_send: u64,
        /// Sequence number the next echo must carry.
        next_recv: u64,
        /// Send times of the messages in flight, oldest first.
        sent_at: VecDeque<Instant>,
    },
    /// Receives broadcasts and checks each publisher's sequence.
    Subscriber {
        /// Per publisher, the sequence number expected next.
        next: Vec<u64>,
    },
    /// Publishes numbered, timestamped messages (and ignores what it receives).
    Publisher {
        /// The publisher's index.
        index: u32,
        /// Next sequence number.
        seq: u64,
        /// When the next message is due (fixed-rate publishing).
        due: Option<Instant>,
    },
    /// Holds the connection open and does nothing.
    Idle,
}

/// Everything a role needs besides its own state.
pub struct Ctx<'a> {
    /// The run's settings.
    pub cfg: &'a Config,
    /// Shared counters.
    pub shared: &'a Shared,
    /// This thread's counts.
    pub tally: &'a mut Tally,
    /// The current time (one reading per poll wake-up).
    pub now: Instant,
    /// `now` in nanoseconds since the run's epoch (for broadcast latencies).
    pub now_ns: u64,
    /// Counts not yet added to `shared` (see [`Ctx::publish_counts`]).
    pub unpublished: &'a mut Unpublished,
    /// The window, once the workload has started.
    pub window: Option<Window>,
    /// A payload template of the configured size.
    pub template: &'a [u8],
    /// Scratch space for building payloads.
    pub scratch: &'a mut Vec<u8>,
}

/// Counts a load thread gathers over one poll wake-up before adding them to the
/// shared atomics: one atomic add per wake-up instead of two per message.
#[derive(Debug, Default)]
pub struct Unpublished {
    /// Messages received.
    received: u64,
    /// Deliveries counted, per publisher.
    delivered: Vec<u64>,
    /// Per publisher, the highest sequence number received, plus one.
    seen: Vec<u64>,
}

impl Ctx<'_> {
    /// Adds the counts gathered since the last call to the shared counters (which
    /// publishers and the progress display read).
    pub fn publish_counts(&mut self) {
        let counts = &mut *self.unpublished;
        if counts.received > 0 {
            self.shared
                .received
                .fetch_add(std::mem::take(&mut counts.received), Ordering::Relaxed);
        }
        for (shared, n) in self.shared.delivered.iter().zip(&mut counts.delivered) {
            if *n > 0 {
                shared.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        }
        for (shared, &seen) in self.shared.max_seen.iter().zip(&counts.seen) {
            shared.fetch_max(seen, Ordering::Relaxed);
        }
    }

    /// Notes that a subscriber received `seq` from `publisher`.
    fn saw(&mut self, publisher: usize, seq: u64) {
        let seen = &mut self.unpublished.seen;
        if seen.len() <= publisher {
            seen.resize(publisher + 1, 0);
        }
        seen[publisher] = seen[publisher].max(seq + 1);
    }

    /// Counts `n` deliveries from `publisher`.
    fn delivered(&mut self, publisher: usize, n: u64) {
        let counts = &mut self.unpublished.delivered;
        if counts.len() <= publisher {
            counts.resize(publisher + 1, 0);
        }
        counts[publisher] += n;
    }

    /// Counts a received message; inside the window, also its size and latency.
    fn count(&mut self, len: usize, latency: Duration) {
        self.unpublished.received += 1;
        if let Some(w) = self.window {
            if self.now >= w.from && self.now < w.to {
                self.tally.messages += 1;
                self.tally.bytes += len as u64;
                self.tally.latency.record(latency.as_nanos() as u64);
            }
        }
    }

    /// Whether messages may still be sent: inside the window, or, when the soak ends
    /// with a shutdown, until the server closes the connection.
    fn sending(&self) -> bool {
        let drain = if self.cfg.shutdown {
            shutdown::DRAIN
        } else {
            Duration::ZERO
        };
        self.window.is_some_and(|w| self.now < w.to + drain)
    }
}

impl Role {
    /// Called once the workload starts: echo connections fill their pipeline.
    pub fn start(&mut self, out: &mut Out, ctx: &mut Ctx<'_>) {
        if let Role::Echo { .. } = self {
            for _ in 0..ctx.cfg.in_flight {
                self.send_echo(out, ctx);
            }
        }
    }

    fn send_echo(&mut self, out: &mut Out, ctx: &mut Ctx<'_>) {
        let Role::Echo {
            id,
            next_send,
            sent_at,
            ..
        } = self
        else {
            return;
        };
        ctx.scratch.clear();
        ctx.scratch.extend_from_slice(ctx.template);
        payload::put_echo(ctx.scratch, *id, *next_send);
        out.message(ctx.scratch);
        *next_send += 1;
        sent_at.push_back(ctx.now);
    }

    /// Handles one received data message.
    pub fn on_message(
        &mut self,
        out: &mut Out,
        data: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), String> {
        match self {
            Role::Echo {
                id,
                next_recv,
                sent_at,
                ..
            } => {
                let Some(sent) = sent_at.pop_front() else {
                    return Err("echo of a message never sent".into());
                };
                if !payload::is_echo(data, ctx.template, *id, *next_recv) {
                    return Err(format!(
                        "connection {id}: echo {next_recv} wrong ({} bytes, starts {:?})",
                        data.len(),
                        String::from_utf8_lossy(&data[..data.len().min(24)])
                    ));
                }
                *next_recv += 1;
                ctx.count(data.len(), ctx.now.saturating_duration_since(sent));
                if ctx.sending() {
                    self.send_echo(out, ctx);
                }
                Ok(())
            }
            Role::Subscriber { next } => {
                let (publisher, seq, sent_ns) = payload::parse_broadcast(data, ctx.template)
                    .ok_or_else(|| format!("malformed broadcast of {} bytes", data.len()))?;
                let Some(expected) = next.get_mut(publisher as usize) else {
                    return Err(format!("broadcast from unknown publisher {publisher}"));
                };
                if seq < *expected {
                    ctx.tally.out_of_order += 1;
                    ctx.tally.error(|| {
                        format!(
                            "publisher {publisher}: {seq} arrived after {}",
                            *expected - 1
                        )
                    });
                    ctx.shared.error();
                    return Ok(());
                }
                if seq > *expected {
                    ctx.tally.lost += seq - *expected;
                    ctx.delivered(publisher as usize, seq - *expected);
                }
                *expected = seq + 1;
                ctx.delivered(publisher as usize, 1);
                ctx.saw(publisher as usize, seq);
                let latency = ctx.now_ns.saturating_sub(sent_ns);
                ctx.count(data.len(), Duration::from_nanos(latency));
                Ok(())
            }
            Role::Publisher { .. } | Role::Idle => Ok(()),
        }
    }

    /// Handles the server's close frame: an error, except Close 1001 after the soak's
    /// shutdown signal, where a subscriber must have received everything it was owed
    /// (each delivery short of the floor counts as lost).
    pub fn on_close(&mut self, code: u16, ctx: &mut Ctx<'_>) -> Result<(), String> {
        if !(ctx.cfg.shutdown && code == 1001 && shutdown::begun()) {
            return Err(format!("server sent close {code}"));
        }
        if let Role::Subscriber { next } = self {
            let missing = shutdown::missing(next);
            if missing > 0 {
                ctx.tally.lost += missing;
                return Err(format!(
                    "close 1001 before {missing} deliveries published before the shutdown"
                ));
            }
        }
        ctx.tally.closed_1001 += 1;
        Ok(())
    }

    /// Lets a publisher send what is due; returns when it next wants to run.
    pub fn tick(&mut self, out: &mut Out, ctx: &mut Ctx<'_>) -> Option<Instant> {
        let Role::Publisher { index, seq, due } = self else {
            return None;
        };
        if !ctx.sending() {
            return None;
        }
        let subscribers = ctx.cfg.connections as u64;
        let window = ctx.cfg.window as u64;
        loop {
            if out.pending() >= MAX_PENDING_OUT {
                return Some(ctx.now + Duration::from_millis(1));
            }
            if ctx.cfg.rate > 0.0 {
                let at = due.get_or_insert(ctx.now);
                if *at > ctx.now {
                    return Some(*at);
                }
                *at += Duration::from_secs_f64(1.0 / ctx.cfg.rate);
                if ctx.now.saturating_duration_since(*at) > Duration::from_secs(1) {
                    // Too far behind to catch up honestly: skip ahead.
                    *at = ctx.now;
                }
            } else {
                let delivered = ctx.shared.delivered[*index as usize].load(Ordering::Relaxed);
                if (*seq).saturating_mul(subscribers) >= delivered + window * subscribers {
                    return Some(ctx.now + Duration::from_millis(1));
                }
            }
            ctx.scratch.clear();
            ctx.scratch.extend_from_slice(ctx.template);
            payload::put_broadcast(ctx.scratch, *index, *seq, ctx.now_ns);
            out.message(ctx.scratch);
            *seq += 1;
        }
    }
}
