//! Echo mode: every byte read goes straight back to its sender.

use std::io::{self, ErrorKind, Read};

use mio::Events;
use mio::net::TcpListener;

use crate::conn::{Conn, LISTENER, Slots};
use crate::{READ_BUF, accept_all, close, poll_for};

/// Runs one echo event loop on `listener` forever.
pub fn run(mut listener: TcpListener) -> io::Result<()> {
    let mut poll = poll_for(&mut listener)?;
    let mut events = Events::with_capacity(1024);
    let mut slots = Slots::default();
    let mut buf = vec![0u8; READ_BUF];
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
            let mut want_read = event.is_readable() || event.is_read_closed();
            if conn.queued() > 0 {
                if conn.flush_pending().is_err() {
                    close(token, poll.registry(), &mut slots);
                    continue;
                }
                // Drained: pick up the input we stopped reading for back-pressure.
                want_read |= conn.queued() == 0 && conn.read_paused;
            }
            if want_read && !echo_readable(conn, &mut buf) {
                close(token, poll.registry(), &mut slots);
            }
        }
    }
}

/// Reads until WouldBlock, writing each chunk straight back. Stops early while
/// bytes are queued so an unread peer cannot grow the queue past one buffer.
/// Returns false when the connection should close.
fn echo_readable(conn: &mut Conn, buf: &mut [u8]) -> bool {
    conn.read_paused = false;
    loop {
        if conn.queued() > 0 {
            conn.read_paused = true;
            return true;
        }
        match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                if conn.write_or_queue(&buf[..n]).is_err() {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}
