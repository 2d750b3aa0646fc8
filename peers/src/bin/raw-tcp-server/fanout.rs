//! Fanout mode: every byte read from one connection goes to every other one.

use std::io::{self, ErrorKind, Read};

use mio::net::TcpListener;
use mio::{Events, Token};

use crate::conn::{LISTENER, Slots};
use crate::{READ_BUF, accept_all, close, poll_for};

/// A receiver whose queue grows past this is too slow to keep and is dropped.
const MAX_QUEUED: usize = 64 << 20;

/// Runs the single fanout event loop on `listener` forever.
pub fn run(mut listener: TcpListener) -> io::Result<()> {
    let mut poll = poll_for(&mut listener)?;
    let mut events = Events::with_capacity(1024);
    let mut slots = Slots::default();
    let mut buf = vec![0u8; READ_BUF];
    let mut doomed: Vec<Token> = Vec::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            let token = event.token();
            if token == LISTENER {
                accept_all(&listener, poll.registry(), &mut slots)?;
                continue;
            }
            let Some(conn) = slots.get_mut(token) else {
                continue;
            };
            if conn.queued() > 0 && conn.flush_pending().is_err() {
                doomed.push(token);
            } else if event.is_readable() || event.is_read_closed() {
                read_and_fan_out(token, &mut slots, &mut buf, &mut doomed);
            }
            for token in doomed.drain(..) {
                close(token, poll.registry(), &mut slots);
            }
        }
    }
}

/// Reads `from` until WouldBlock and writes each chunk to every other open
/// connection, queueing what their sockets do not take. Connections that fail
/// or fall too far behind are added to `doomed`.
fn read_and_fan_out(from: Token, slots: &mut Slots, buf: &mut [u8], doomed: &mut Vec<Token>) {
    loop {
        let Some(conn) = slots.get_mut(from) else {
            return;
        };
        let n = match conn.stream.read(buf) {
            Ok(0) => {
                doomed.push(from);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                doomed.push(from);
                return;
            }
        };
        for (token, other) in slots.iter_mut() {
            if token == from || doomed.contains(&token) {
                continue;
            }
            if other.write_or_queue(&buf[..n]).is_err() || other.queued() > MAX_QUEUED {
                doomed.push(token);
            }
        }
    }
}
