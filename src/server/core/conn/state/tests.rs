//! Broadcast delivery into one connection's queue: runs of batched frames and the
//! backpressure policy applied message by message.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::ConnState;
use crate::server::config::{BackpressurePolicy, ServerConfig};
use crate::server::conn_api::ConnId;
use crate::server::core::batch::{BatchRange, TurnBatch};
use crate::server::core::outbox::Delivery;
use crate::server::stats::Stats;

fn state() -> ConnState {
    ConnState::new(0, ConnId(1), SocketAddr::from((Ipv4Addr::LOCALHOST, 1)), 0)
}

/// Appends frames of `sizes` bytes to `batch`; returns their ranges.
fn frames(batch: &mut TurnBatch, sizes: &[usize]) -> Vec<BatchRange> {
    sizes
        .iter()
        .map(|&n| batch.append(&vec![b'x'; n]))
        .collect()
}

fn config(limit: usize, policy: BackpressurePolicy) -> ServerConfig {
    ServerConfig {
        max_backpressure: limit,
        backpressure_policy: policy,
        ..ServerConfig::default()
    }
}

#[test]
fn a_run_of_frames_under_the_limit_is_one_range() {
    let mut state = state();
    let stats = Stats::default();
    let config = config(100, BackpressurePolicy::Drop);
    let mut batch = TurnBatch::default();
    let run = frames(&mut batch, &[5, 4, 11]);
    state.deliver(Delivery::batched(&run), &config, &stats);
    assert_eq!(state.outbox.len(), 20);
    assert!(!state.outbox.queue_in_use(), "one range, no queue entry");
    let next = frames(&mut batch, &[10]);
    state.deliver(Delivery::batched(&next), &config, &stats);
    assert_eq!(state.outbox.len(), 30);
    assert!(
        !state.outbox.queue_in_use(),
        "the next run extends the range"
    );
    assert_eq!(stats.dropped_messages.load(Ordering::Relaxed), 0);
}

#[test]
fn past_the_limit_each_message_is_judged_alone() {
    let mut state = state();
    let stats = Stats::default();
    let config = config(10, BackpressurePolicy::Drop);
    // An empty queue takes the first message whatever its size, then the limit holds.
    let mut batch = TurnBatch::default();
    let run = frames(&mut batch, &[6, 6, 4]);
    state.deliver(Delivery::batched(&run), &config, &stats);
    assert_eq!(
        state.outbox.len(),
        10,
        "6, then 4 more fit; 6 more would not"
    );
    assert_eq!(stats.dropped_messages.load(Ordering::Relaxed), 1);
    assert!(state.needs_drain);
    state.deliver(Delivery::Shared(&Bytes::from_static(b"x")), &config, &stats);
    assert_eq!(stats.dropped_messages.load(Ordering::Relaxed), 2);
}

#[test]
fn the_close_policy_closes_once_and_queues_nothing_after() {
    let mut state = state();
    let stats = Stats::default();
    let config = config(10, BackpressurePolicy::Close);
    state.deliver(
        Delivery::Shared(&Bytes::from_static(b"12345678")),
        &config,
        &stats,
    );
    let mut batch = TurnBatch::default();
    let run = frames(&mut batch, &[4, 4]);
    state.deliver(Delivery::batched(&run), &config, &stats);
    assert_eq!(stats.backpressure_closes.load(Ordering::Relaxed), 1);
    assert!(state.closing.is_some());
    let queued = state.outbox.len();
    let last = frames(&mut batch, &[1]);
    state.deliver(Delivery::batched(&last), &config, &stats);
    assert_eq!(
        state.outbox.len(),
        queued,
        "nothing is queued behind the close"
    );
}
