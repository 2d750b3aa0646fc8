//! The bridge core without a broker or a server: the bound, numbering, resends, and
//! what a receiver makes of envelopes (its own, duplicates, gaps, garbage).

use std::time::Duration;

use super::*;
use crate::protocol::frame::OpCode;
use crate::server::bridge::BridgeState;
use crate::server::encode::encode_shared;

fn link(max_buffered_bytes: usize) -> BridgeLink {
    BridgeLink::new(Arc::new(BridgeShared::new(BridgeLimits {
        max_message_size: 64,
        max_buffered_bytes,
    })))
}

fn publish(topic: Option<&str>, text: &str) -> Publish {
    Publish {
        topic: topic.map(Arc::from),
        frame: encode_shared(OpCode::Text, text.as_bytes()),
        exclude: None,
        deflated: None,
        offset: 0,
        epoch: 0,
    }
}

fn envelope(node: u64, seq: u64, text: &str) -> Bytes {
    let mut out = Vec::new();
    let header = Header {
        node,
        epoch: 0,
        seq,
        sent_at: now_micros(),
    };
    header
        .write(&encode_shared(OpCode::Text, text.as_bytes()), &mut out)
        .unwrap();
    Bytes::from(out)
}

#[test]
fn buffers_topic_publishes_up_to_the_bound_and_numbers_them_per_topic() {
    let cost = envelope::HEADER_LEN + 2 + 1;
    let link = link(3 * cost);
    let publishes = [
        publish(Some("a"), "1"),
        publish(None, "broadcasts stay local"),
        publish(Some("b"), "1"),
        publish(Some("a"), "2"),
        publish(Some("a"), "3"),
    ];
    link.core.send(&publishes);
    let stats = link.core.stats();
    assert_eq!((stats.buffered, stats.dropped), (3, 1), "{stats:?}");
    assert_eq!(stats.buffered_bytes, 3 * cost as u64);

    let mut batch = Vec::new();
    assert!(link.next_batch(&mut batch, usize::MAX, Duration::ZERO));
    let numbered: Vec<(&str, u64)> = batch.iter().map(|o| (o.topic(), o.header.seq)).collect();
    assert_eq!(numbered, [("a", 1), ("b", 1), ("a", 2)]);
    assert!(batch.iter().all(|o| o.header.node == link.node_id()));

    // Not confirmed: back in front, numbers kept; then confirmed.
    link.core.send(&[publish(Some("a"), "4")]);
    link.unconfirmed(&mut batch);
    assert!(link.next_batch(&mut batch, usize::MAX, Duration::ZERO));
    let numbered: Vec<u64> = batch.iter().map(|o| o.header.seq).collect();
    assert_eq!(numbered, [1, 1, 2, 3]);
    link.confirmed(&mut batch);
    assert!(batch.is_empty());
    let stats = link.core.stats();
    assert_eq!((stats.messages_out, stats.buffered), (4, 0), "{stats:?}");
}

#[test]
fn a_stopped_bridge_hands_out_what_is_left_then_says_stop() {
    let link = link(1 << 20);
    link.core.send(&[publish(Some("a"), "1")]);
    link.core.stop();
    assert!(link.is_stopped() && !link.sleep(Duration::from_secs(5)));
    let mut batch = Vec::new();
    assert!(link.next_batch(&mut batch, usize::MAX, Duration::from_secs(5)));
    assert_eq!(batch.len(), 1);
    link.unconfirmed(&mut batch);
    assert!(!link.next_batch(&mut batch, usize::MAX, Duration::from_secs(5)));
    link.core.send(&[publish(Some("a"), "late")]);
    let stats = link.core.stats();
    assert_eq!((stats.dropped, stats.state), (2, BridgeState::Stopped));
}

#[test]
fn receiving_skips_its_own_drops_duplicates_counts_gaps_and_refuses_garbage() {
    let link = link(1 << 20);
    let me = link.node_id();
    let other = me.wrapping_add(1).max(1);
    link.receive("t", envelope(me, 1, "mine"));
    link.receive("t", envelope(other, 1, "one"));
    link.receive("t", envelope(other, 1, "one again"));
    link.receive("t", envelope(other, 4, "four"));
    link.receive(
        "t",
        Bytes::from_static(b"not an envelope at all, but long enough"),
    );
    link.receive("t", envelope(other, 5, &"x".repeat(65)));
    let stats = link.core.stats();
    assert_eq!(stats.duplicates, 1, "{stats:?}");
    assert_eq!(stats.lost, 2, "{stats:?}");
    assert_eq!(stats.invalid, 2, "{stats:?}");
}
