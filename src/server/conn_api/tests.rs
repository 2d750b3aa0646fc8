//! Broadcast delivery into one connection's queue: runs of batched frames and the
//! backpressure policy applied message by message.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{ConnCore, ConnId};
use crate::server::config::{BackpressurePolicy, ServerConfig};
use crate::server::outbox::Delivery;
use crate::server::stats::Stats;

fn core() -> ConnCore {
    ConnCore::new(0, ConnId(1), SocketAddr::from((Ipv4Addr::LOCALHOST, 1)), 0)
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
    let mut core = core();
    let stats = Stats::default();
    let config = config(100, BackpressurePolicy::Drop);
    core.deliver(
        Delivery::Batched(&[(0, 5), (5, 9), (9, 20)]),
        &config,
        &stats,
    );
    assert_eq!(core.outbox.len(), 20);
    core.deliver(Delivery::Batched(&[(20, 30)]), &config, &stats);
    assert_eq!(core.outbox.len(), 30);
    assert_eq!(stats.dropped_messages.load(Ordering::Relaxed), 0);
}

#[test]
fn past_the_limit_each_message_is_judged_alone() {
    let mut core = core();
    let stats = Stats::default();
    let config = config(10, BackpressurePolicy::Drop);
    // An empty queue takes the first message whatever its size, then the limit holds.
    core.deliver(
        Delivery::Batched(&[(0, 6), (6, 12), (12, 16)]),
        &config,
        &stats,
    );
    assert_eq!(
        core.outbox.len(),
        10,
        "6, then 4 more fit; 6 more would not"
    );
    assert_eq!(stats.dropped_messages.load(Ordering::Relaxed), 1);
    assert!(core.needs_drain);
    core.deliver(Delivery::Shared(&Bytes::from_static(b"x")), &config, &stats);
    assert_eq!(stats.dropped_messages.load(Ordering::Relaxed), 2);
}

#[test]
fn the_close_policy_closes_once_and_queues_nothing_after() {
    let mut core = core();
    let stats = Stats::default();
    let config = config(10, BackpressurePolicy::Close);
    core.deliver(
        Delivery::Shared(&Bytes::from_static(b"12345678")),
        &config,
        &stats,
    );
    core.deliver(Delivery::Batched(&[(0, 4), (4, 8)]), &config, &stats);
    assert_eq!(stats.backpressure_closes.load(Ordering::Relaxed), 1);
    assert!(core.closing.is_some());
    let queued = core.outbox.len();
    core.deliver(Delivery::Batched(&[(8, 9)]), &config, &stats);
    assert_eq!(
        core.outbox.len(),
        queued,
        "nothing is queued behind the close"
    );
}
