//! Read-side flow control (issue 11, fault 6): a client that sends but does not read
//! is slowed down by TCP, not buffered for by the server up to `max_backpressure`; once
//! it reads, it gets every reply, whole and in order.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::{OP_BINARY, TestServer, builder, encode_frame, is_timeout, raw_upgrade};
use wavecore::{Conn, Handler, Message};

const HIGH_WATER: usize = 64 << 10;
const READ_BUFFER: usize = 64 << 10;
const FRAME: usize = 1024;

/// Echoes; records the most bytes it ever saw buffered for its connection.
struct Echo {
    most_buffered: Arc<AtomicUsize>,
}

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
        self.most_buffered
            .fetch_max(conn.buffered_amount(), Ordering::Relaxed);
    }
}

/// Message `i`: its number, then filler, `FRAME` bytes in all.
fn payload(i: usize) -> Vec<u8> {
    let mut p = (i as u64).to_be_bytes().to_vec();
    p.resize(FRAME, (i % 251) as u8);
    p
}

#[test]
fn a_client_that_sends_but_never_reads_is_throttled_not_buffered() {
    let most_buffered = Arc::new(AtomicUsize::new(0));
    let recorded = most_buffered.clone();
    let server = TestServer::start(
        builder()
            .high_water_mark(HIGH_WATER)
            .read_buffer_size(READ_BUFFER)
            .max_backpressure(256 << 20),
        wavecore::accept_all(move || Echo {
            most_buffered: recorded.clone(),
        }),
    );
    let mut stream = raw_upgrade(server.addr);
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Write until the socket stays full: the server has stopped reading.
    let mut sent = 0;
    let mut pending: Vec<u8> = Vec::new();
    let throttled = loop {
        if pending.is_empty() {
            pending = encode_frame(true, OP_BINARY, &payload(sent), true);
            sent += 1;
        }
        match stream.write(&pending) {
            Ok(n) => drop(pending.drain(..n)),
            Err(e) if is_timeout(&e) => break true,
            Err(e) => panic!("write failed: {e}"),
        }
        if sent > 200_000 {
            break false; // 200 MiB accepted: no flow control (bounds the test).
        }
    };
    assert!(
        throttled,
        "the server kept reading a client that never reads"
    );
    let bound = HIGH_WATER + READ_BUFFER + 4 * FRAME;
    let most = most_buffered.load(Ordering::Relaxed);
    assert!(
        most <= bound,
        "buffered {most} bytes for one connection, above the high-water mark + one read ({bound})"
    );
    // Now the client reads: every reply arrives, and the rest of its sending goes on.
    let mut reader = stream.try_clone().unwrap();
    let replies = thread::spawn(move || {
        for i in 0..sent {
            let frame = common::read_frame(&mut reader).expect("a reply");
            assert_eq!(frame.payload, payload(i), "reply {i} whole and in order");
        }
    });
    stream.set_write_timeout(None).unwrap();
    stream.write_all(&pending).unwrap();
    replies.join().expect("every reply");
    let stats = server.handle.stats();
    assert_eq!(stats.backpressure_closes, 0);
    assert_eq!(stats.dropped_messages, 0);
    let mut nothing = [0u8; 1];
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    assert!(
        matches!(stream.read(&mut nothing), Err(ref e) if is_timeout(e)),
        "no more replies than messages"
    );
}
