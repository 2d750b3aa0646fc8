//! What a server and its bridge's transport share: the outbound buffer, the topics this
//! server has subscribers for, the delivery of other servers' messages to the reactors,
//! and the counters.
//!
//! The server side (reactors, the handle, the topic registry) only ever adds to the
//! buffer or marks a topic as changed, under a lock held for a few instructions and
//! never waited on by a transport's I/O. The transport side runs on the transport's
//! own threads and may block as long as it likes.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::server::bridge::BridgeLimits;
use crate::server::bridge::envelope::{self, Header};
use crate::server::bridge::queue::{Outgoing, Queue};
use crate::server::bridge::sequence::{Numbering, Seen, Tracker};
use crate::server::bridge::stats::{BridgeStats, Counters, Direction, LAG_BOUNDS_US};
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;

/// The outbound buffer and whether the bridge was stopped.
#[derive(Debug)]
struct Outbound {
    queue: Queue,
    stopped: bool,
}

/// The state a server and its bridge share (see the module docs).
pub(crate) struct BridgeShared {
    node: u64,
    limits: BridgeLimits,
    outbound: Mutex<Outbound>,
    /// Signalled when the buffer stops being empty, and on stop.
    ready: Condvar,
    /// Signalled on stop (for transports sleeping between retries).
    stopping: Condvar,
    /// The transport's numbering of this server's messages.
    numbering: Mutex<Numbering>,
    /// What arrived from the other servers.
    tracker: Mutex<Tracker>,
    /// Topics whose first subscriber arrived or last one left since the transport
    /// last looked.
    changed: Mutex<HashSet<Arc<str>>>,
    any_changed: AtomicBool,
    /// The server, once started (weak: the server owns this).
    shared: OnceLock<Weak<Shared>>,
    counters: Counters,
}

impl fmt::Debug for BridgeShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeShared")
            .field("node", &self.node)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Microseconds since the Unix epoch.
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A random node id (never 0).
fn random_node_id() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: the clock and the process id still tell servers apart.
        bytes = (now_micros() ^ ((std::process::id() as u64) << 40)).to_le_bytes();
    }
    u64::from_le_bytes(bytes).max(1)
}

impl BridgeShared {
    /// A bridge core with `limits` and a fresh node id.
    pub fn new(limits: BridgeLimits) -> Self {
        Self {
            node: random_node_id(),
            limits,
            outbound: Mutex::new(Outbound {
                queue: Queue::new(limits.max_buffered_bytes),
                stopped: false,
            }),
            ready: Condvar::new(),
            stopping: Condvar::new(),
            numbering: Mutex::new(Numbering::default()),
            tracker: Mutex::new(Tracker::default()),
            changed: Mutex::new(HashSet::new()),
            any_changed: AtomicBool::new(false),
            shared: OnceLock::new(),
            counters: Counters::default(),
        }
    }

    /// Connects the core to the server it serves.
    pub fn attach(&self, shared: Weak<Shared>) {
        let _ = self.shared.set(shared);
    }

    fn outbound(&self) -> MutexGuard<'_, Outbound> {
        self.outbound.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_gauges(&self, outbound: &Outbound) {
        let c = &self.counters;
        c.buffered
            .store(outbound.queue.len() as u64, Ordering::Relaxed);
        let bytes = outbound.queue.bytes() as u64;
        c.buffered_bytes.store(bytes, Ordering::Relaxed);
    }

    // ----- the server's side -----

    /// Largest payload a topic message may have to be published, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.limits.max_message_size
    }

    /// Counts a publish refused for its size.
    pub fn refused(&self) {
        Counters::add(&self.counters.refused, 1);
    }

    /// Hands topic publishes (broadcasts to every connection stay on this server) to
    /// the transport: one lock for all of them; past the buffer's bound they are
    /// dropped and counted. Never waits for the transport.
    pub fn send(&self, publishes: &[Publish]) {
        let sent_at = now_micros();
        let mut dropped = 0;
        let mut outbound = self.outbound();
        let was_empty = outbound.queue.is_empty();
        for publish in publishes {
            let Some(topic) = &publish.topic else {
                continue;
            };
            let item = Outgoing {
                topic: topic.clone(),
                frame: publish.frame.clone(),
                header: Header {
                    node: self.node,
                    epoch: 0,
                    seq: 0,
                    sent_at,
                },
            };
            if outbound.stopped || !outbound.queue.push(item) {
                dropped += 1;
            }
        }
        self.publish_gauges(&outbound);
        let wake = was_empty && !outbound.queue.is_empty();
        drop(outbound);
        if dropped > 0 {
            Counters::add(&self.counters.dropped, dropped);
        }
        if wake {
            self.ready.notify_one();
        }
    }

    /// A topic got its first subscriber on this server, or lost its last one.
    pub fn interest_changed(&self, topic: &Arc<str>) {
        self.changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.clone());
        self.any_changed.store(true, Ordering::Release);
    }

    /// The bridge's state and counters.
    pub fn stats(&self) -> BridgeStats {
        self.counters.snapshot(self.node)
    }

    /// The delivery-lag histogram (see [`Counters::lag_histogram`]).
    pub fn lag_histogram(&self) -> ([u64; LAG_BOUNDS_US.len() + 1], u64) {
        self.counters.lag_histogram()
    }

    /// Stops the bridge: the transport sends what is buffered if it is connected, and
    /// its threads return.
    pub fn stop(&self) {
        self.outbound().stopped = true;
        self.counters.stopped.store(true, Ordering::Relaxed);
        self.ready.notify_all();
        self.stopping.notify_all();
    }

    fn server(&self) -> Option<Arc<Shared>> {
        self.shared.get().and_then(Weak::upgrade)
    }
}

/// A transport's side of the server it bridges: the messages to send, the topics to
/// listen to, where to hand what it receives, and where to report how it goes.
///
/// Cheap to clone (a reference count); every method may be called from any of the
/// transport's threads. See [`crate::server::bridge`] for what a transport does with
/// it, and `server/bridge/redis.rs` for one.
#[derive(Debug, Clone)]
pub struct BridgeLink {
    core: Arc<BridgeShared>,
}

impl BridgeLink {
    pub(crate) fn new(core: Arc<BridgeShared>) -> Self {
        Self { core }
    }

    /// This server's node id: the envelopes it sends carry it, and messages carrying
    /// it are not delivered here again.
    pub fn node_id(&self) -> u64 {
        self.core.node
    }

    /// The limits the server applies for this bridge.
    pub fn limits(&self) -> BridgeLimits {
        self.core.limits
    }

    /// Waits up to `wait` for messages to send and moves them from the buffer into
    /// `batch`: at least one if any wait, then more while the batch stays within
    /// `max_bytes` of envelopes. Each is numbered on its topic the first time it is
    /// taken (a message put back by [`BridgeLink::unconfirmed`] keeps its number, so
    /// the receivers recognise a resend).
    ///
    /// Returns `false` once the bridge is stopped and nothing is left to send (the
    /// transport's sending thread should then return).
    pub fn next_batch(&self, batch: &mut Vec<Outgoing>, max_bytes: usize, wait: Duration) -> bool {
        let core = &*self.core;
        let mut outbound = core.outbound();
        if outbound.queue.is_empty() && !outbound.stopped {
            outbound = core
                .ready
                .wait_timeout_while(outbound, wait, |o| o.queue.is_empty() && !o.stopped)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if outbound.queue.is_empty() && outbound.stopped {
            return false;
        }
        let start = batch.len();
        outbound.queue.take(batch, max_bytes);
        core.publish_gauges(&outbound);
        drop(outbound);
        let mut numbering = core.numbering.lock().unwrap_or_else(|e| e.into_inner());
        for item in &mut batch[start..] {
            if item.header.seq == 0 {
                let (epoch, seq) = numbering.next(&item.topic);
                item.header.epoch = epoch;
                item.header.seq = seq;
            }
        }
        true
    }

    /// The broker accepted every message of `batch` (which is emptied).
    pub fn confirmed(&self, batch: &mut Vec<Outgoing>) {
        Counters::add(&self.core.counters.messages_out, batch.len() as u64);
        batch.clear();
    }

    /// The messages of `batch` (emptied) may not have reached the broker (the
    /// connection failed): they go back to the front of the buffer, to be sent again
    /// once connected. Receivers that got them already drop the second copy. If the
    /// bridge is stopping, they are dropped and counted instead.
    pub fn unconfirmed(&self, batch: &mut Vec<Outgoing>) {
        let mut outbound = self.core.outbound();
        if outbound.stopped {
            Counters::add(&self.core.counters.dropped, batch.len() as u64);
            batch.clear();
            return;
        }
        outbound.queue.requeue(batch);
        self.core.publish_gauges(&outbound);
    }

    /// The bridge is stopping and the transport cannot send what is left (it is not
    /// connected): drops it, counted in [`BridgeStats::dropped`].
    pub fn abandon(&self) {
        let mut outbound = self.core.outbound();
        let n = outbound.queue.clear();
        self.core.publish_gauges(&outbound);
        drop(outbound);
        Counters::add(&self.core.counters.dropped, n as u64);
    }

    /// The broker refused the messages of `batch` (emptied): an error answer, not a
    /// failed connection, so sending them again would fail again. Dropped, counted in
    /// [`BridgeStats::dropped`], and logged at `warn` with `error`.
    pub fn rejected(&self, batch: &mut Vec<Outgoing>, error: &dyn fmt::Display) {
        Counters::add(&self.core.counters.dropped, batch.len() as u64);
        tracing::warn!(
            messages = batch.len(),
            %error,
            "wavecore bridge: the broker refused messages; dropped"
        );
        batch.clear();
    }

    /// Whether the bridge was stopped (the server is shutting down). One atomic load.
    pub fn is_stopped(&self) -> bool {
        self.core.counters.stopped.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration` or until the bridge is stopped; returns `false` if it
    /// was stopped (the transport's threads should then return).
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut outbound = self.core.outbound();
        while !outbound.stopped {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            outbound = self
                .core
                .stopping
                .wait_timeout(outbound, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        false
    }

    /// Whether topics gained their first or lost their last local subscriber since
    /// the last [`BridgeLink::reconcile`] or [`BridgeLink::interest`] (one atomic
    /// load: cheap enough to ask after every message).
    pub fn interest_changed(&self) -> bool {
        self.core.any_changed.load(Ordering::Acquire)
    }

    /// Every topic this server has subscribers for now. Forgets the pending changes
    /// (this is the whole picture): call it after (re)connecting, subscribe to all of
    /// them, then [`BridgeLink::set_subscribed`].
    pub fn interest(&self) -> Vec<Arc<str>> {
        self.core.any_changed.store(false, Ordering::Release);
        self.core
            .changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let Some(shared) = self.core.server() else {
            return Vec::new();
        };
        shared.topic_counts.lock().keys().cloned().collect()
    }

    /// The changes since the last look, against `subscribed` (the topics the
    /// transport is subscribed to): the topics to subscribe to, and those to
    /// unsubscribe from (what arrives for those from now on is not counted as lost).
    pub fn reconcile(&self, subscribed: &HashSet<Arc<str>>) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
        self.core.any_changed.store(false, Ordering::Release);
        let changed: Vec<Arc<str>> = self
            .core
            .changed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        let Some(shared) = self.core.server() else {
            return (add, remove);
        };
        let counts = shared.topic_counts.lock();
        for topic in changed {
            match (counts.contains_key(&topic), subscribed.contains(&topic)) {
                (true, false) => add.push(topic),
                (false, true) => remove.push(topic),
                _ => {}
            }
        }
        drop(counts);
        let mut tracker = self.core.tracker.lock().unwrap_or_else(|e| e.into_inner());
        for topic in &remove {
            tracker.forget(topic);
        }
        (add, remove)
    }

    /// Reports how many topics the transport is subscribed to now (confirmed by the
    /// broker), for [`BridgeStats::subscribed_topics`].
    pub fn set_subscribed(&self, topics: usize) {
        let gauge = &self.core.counters.subscribed_topics;
        gauge.store(topics as u64, Ordering::Relaxed);
    }

    /// Hands a message received on `topic` to this server's subscribers, unless it is
    /// this server's own, a duplicate, or not a valid envelope (counted and logged at
    /// `warn`). The frame inside is shared by every reactor as it is; nothing is
    /// encoded again.
    pub fn receive(&self, topic: &str, envelope: Bytes) {
        let core = &*self.core;
        let header = match Header::read(&envelope) {
            Ok(header) => header,
            Err(why) => return self.invalid(topic, why),
        };
        if header.node == core.node {
            return;
        }
        let frame = match envelope::frame(&envelope, core.limits.max_message_size) {
            Ok(frame) => frame,
            Err(why) => return self.invalid(topic, why),
        };
        let (seen, topic) = core
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(topic, header.node, header.epoch, header.seq);
        match seen {
            Seen::Duplicate => return Counters::add(&core.counters.duplicates, 1),
            Seen::After(missed) => Counters::add(&core.counters.lost, missed),
            Seen::InOrder => {}
        }
        let Some(shared) = core.server() else {
            return;
        };
        let publish = Publish::of_frame(Some(topic), frame, shared.deflate.as_ref());
        // Counted first: whoever sees the message delivered sees it counted.
        core.counters
            .lag(now_micros().saturating_sub(header.sent_at));
        Counters::add(&core.counters.messages_in, 1);
        for remote in &shared.remotes {
            remote.send_publishes(std::iter::once(publish.clone()));
        }
    }

    /// Counts an invalid message; logs the 1st, 2nd, 4th, 8th... so a stream of them
    /// cannot flood the log.
    fn invalid(&self, topic: &str, why: envelope::Invalid) {
        let n = self.core.counters.invalid.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                topic,
                invalid = n,
                "wavecore bridge: dropped a message on topic {topic:?}: {why}"
            );
        }
    }

    /// Reports that the `direction` connection connected.
    pub fn connected(&self, direction: Direction) {
        self.core.counters.set_up(direction, true);
        tracing::info!(?direction, "wavecore bridge: connected");
    }

    /// Reports that the `direction` connection failed after it was established
    /// (`error` says how); the transport reconnects.
    pub fn disconnected(&self, direction: Direction, error: &dyn fmt::Display) {
        let counters = &self.core.counters;
        counters.set_up(direction, false);
        if direction == Direction::Subscribe {
            self.set_subscribed(0);
        }
        Counters::add(&counters.disconnects, 1);
        tracing::warn!(?direction, %error, "wavecore bridge: connection lost; reconnecting");
    }

    /// Reports a failed attempt to connect the `direction` connection, and when the
    /// next one is.
    pub fn connect_failed(
        &self,
        direction: Direction,
        error: &dyn fmt::Display,
        retry_in: Duration,
    ) {
        Counters::add(&self.core.counters.connect_failures, 1);
        tracing::warn!(
            ?direction,
            %error,
            retry_in_ms = retry_in.as_millis() as u64,
            "wavecore bridge: cannot connect; retrying"
        );
    }
}

#[cfg(test)]
mod tests;
