//! The outbox against a socket that takes a few bytes at a time.

use bytes::Bytes;

use super::*;
use crate::server::testing::Limited;

/// A turn batch holding `bytes`, and the range of them.
fn batch_of(bytes: &[u8]) -> (TurnBatch, BatchRange) {
    let mut batch = TurnBatch::default();
    let range = batch.append(bytes);
    (batch, range)
}

#[test]
fn queue_then_cork_in_one_write() {
    let mut outbox = Outbox::default();
    outbox.push(Bytes::from_static(b"ab"));
    outbox.push(Bytes::from_static(b"cd"));
    let mut cork = b"ef".to_vec();
    let mut socket = Limited::new(100);
    let batch = TurnBatch::default();
    assert_eq!(
        outbox.flush(&mut socket, &mut cork, &batch).unwrap(),
        Flushed::All
    );
    assert_eq!(socket.taken, b"abcdef");
    assert_eq!(socket.calls, 1);
    assert!(outbox.is_empty() && cork.is_empty());
    outbox.release();
    assert!(outbox.queue.0.is_none(), "a released outbox owns no memory");
}

#[test]
fn partial_write_keeps_the_rest_in_order() {
    let mut outbox = Outbox::default();
    outbox.push(Bytes::from_static(b"abc"));
    let mut cork = b"defgh".to_vec();
    let mut socket = Limited::new(4);
    let batch = TurnBatch::default();
    assert_eq!(
        outbox.flush(&mut socket, &mut cork, &batch).unwrap(),
        Flushed::Blocked
    );
    assert_eq!(outbox.len(), 4);
    assert!(cork.is_empty());
    socket.budget = 100;
    let mut more = b"ij".to_vec();
    assert_eq!(
        outbox.flush(&mut socket, &mut more, &batch).unwrap(),
        Flushed::All
    );
    assert_eq!(socket.taken, b"abcdefghij");
}

#[test]
fn blocked_socket_moves_the_cork_into_the_queue() {
    let mut outbox = Outbox::default();
    let mut cork = b"xyz".to_vec();
    let mut socket = Limited::new(0);
    assert_eq!(
        outbox
            .flush(&mut socket, &mut cork, &TurnBatch::default())
            .unwrap(),
        Flushed::Blocked
    );
    assert_eq!(outbox.len(), 3);
}

#[test]
fn more_chunks_than_one_writev_takes() {
    let mut outbox = Outbox::default();
    for i in 0..200u8 {
        outbox.push(Bytes::from(vec![i]));
    }
    let mut socket = Limited::new(1000);
    assert_eq!(
        outbox
            .flush(&mut socket, &mut Vec::new(), &TurnBatch::default())
            .unwrap(),
        Flushed::All
    );
    assert_eq!(socket.taken, (0..200u8).collect::<Vec<_>>());
    assert!(socket.calls >= 4);
}

#[test]
fn contiguous_batch_ranges_merge_into_one_range_and_one_write() {
    let mut batch = TurnBatch::default();
    let _skipped = batch.append(b"01");
    let a = batch.append(b"23");
    let b = batch.append(b"456");
    let _gap = batch.append(b"7");
    let c = batch.append(b"8");
    let mut outbox = Outbox::default();
    outbox.push_chunk(Chunk::Batched(a));
    outbox.push_chunk(Chunk::Batched(b));
    assert!(
        outbox.queue.is_empty(),
        "a continuing range extends the tail"
    );
    assert_eq!(batch.resolve(outbox.tail), b"23456");
    outbox.push_chunk(Chunk::Batched(c));
    assert_eq!(outbox.queue.len(), 1, "a gap starts a new range");
    let mut socket = Limited::new(100);
    let mut cork = b"!".to_vec();
    assert_eq!(
        outbox.flush(&mut socket, &mut cork, &batch).unwrap(),
        Flushed::All
    );
    assert_eq!(socket.taken, b"234568!");
    assert_eq!(socket.calls, 1);
}

#[test]
fn settled_ranges_outlive_the_turn() {
    let (mut batch, range) = batch_of(b"bcde");
    let mut outbox = Outbox::default();
    outbox.push(Bytes::from_static(b"<"));
    outbox.push_chunk(Chunk::Batched(range));
    batch.hold(0, &mut false);
    let mut socket = Limited::new(3);
    assert_eq!(
        outbox.flush(&mut socket, &mut Vec::new(), &batch).unwrap(),
        Flushed::Blocked
    );
    assert_eq!(socket.taken, b"<bc");
    // The turn ends: what is left refers to the sealed batch, not to offsets.
    batch.seal(|_, sealed| outbox.settle(sealed));
    assert!(!outbox.holds_batch());
    batch.append(b"another turn");
    socket.budget = 100;
    assert_eq!(
        outbox.flush(&mut socket, &mut Vec::new(), &batch).unwrap(),
        Flushed::All
    );
    assert_eq!(socket.taken, b"<bcde");
    assert!(outbox.is_empty());
}

/// The crash of issue 10: a tail written out completely by the general path kept its
/// offsets (`n..n`); a later turn with a shorter batch resolved it and panicked.
#[test]
fn a_written_tail_leaves_no_offset_behind() {
    let mut batch = TurnBatch::default();
    batch.append(&[b'.'; 1584]);
    let range = batch.append(b"frame");
    let mut outbox = Outbox::default();
    outbox.push(Bytes::from_static(b"q"));
    outbox.push_chunk(Chunk::Batched(range));
    batch.hold(0, &mut false);
    let mut socket = Limited::new(100);
    assert_eq!(
        outbox.flush(&mut socket, &mut Vec::new(), &batch).unwrap(),
        Flushed::All
    );
    batch.seal(|_, sealed| outbox.settle(sealed));
    // Next turn: nothing batched, a ping queued, the socket full then free.
    outbox.push(Bytes::from_static(b"ping"));
    let mut blocked = Limited::new(0);
    assert_eq!(
        outbox
            .flush(&mut blocked, &mut b"x".to_vec(), &batch)
            .unwrap(),
        Flushed::Blocked
    );
    assert_eq!(
        outbox.flush(&mut socket, &mut Vec::new(), &batch).unwrap(),
        Flushed::All
    );
    assert_eq!(socket.taken, b"qframepingx");
}

#[test]
fn a_long_queue_goes_out_before_the_tail_and_the_cork() {
    let mut outbox = Outbox::default();
    for i in 0..(MAX_IOVECS as u8 + 8) {
        outbox.push(Bytes::from(vec![b'a' + i % 26]));
    }
    let (batch, range) = batch_of(b"XY");
    outbox.push_chunk(Chunk::Batched(range));
    let mut cork = b"!".to_vec();
    let mut socket = Limited::new(1000);
    assert_eq!(
        outbox.flush(&mut socket, &mut cork, &batch).unwrap(),
        Flushed::All
    );
    let mut expected: Vec<u8> = (0..(MAX_IOVECS as u8 + 8)).map(|i| b'a' + i % 26).collect();
    expected.extend_from_slice(b"XY!");
    assert_eq!(socket.taken, expected);
}
