//! The core's read and write paths for TLS connections (see `server/tls/`).
//!
//! Reading: the ciphertext the driver read goes to the connection's
//! [`Session`]; the plaintext that comes out is copied, a buffer at a time, into the
//! reactor thread's plaintext buffer (after the connection's pending bytes, as the
//! driver does with its read buffer) and served to the connection as if it had been
//! read. Writing: the cork and the outbox (plaintext) are encrypted whole, then the
//! ciphertext is written; what the socket refuses waits, encrypted, in the session,
//! and nothing more is encrypted until it has gone, so the plaintext outbox still
//! measures the connection's backpressure.

use std::cell::RefCell;
use std::io;

use crate::handler::Service;
use crate::server::core::{Core, Slot, Transport};
use crate::server::outbox::Flushed;
use crate::server::stats::Stats;
use crate::server::tls::session::{Fatal, Plaintext, Session};

/// Plaintext taken out of rustls at a time (one TLS record holds at most 16 KiB),
/// plus room for a connection's pending bytes in front (at most 131).
const PLAINTEXT_BUF: usize = (16 << 10) + 256;

thread_local! {
    /// The reactor thread's plaintext buffer, shared by its TLS connections
    /// (allocated on the first TLS read).
    static PLAINTEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S: Service, IO> Core<S, IO> {
    /// A session for a connection being opened, if the server speaks TLS.
    pub(super) fn tls_session(&self) -> Option<Box<Session>> {
        let acceptor = self.shared.tls.as_ref()?;
        match acceptor.accept() {
            Ok(session) => Some(session),
            Err(e) => {
                // Only a configuration with no usable protocol version gets here.
                tracing::error!(reactor = self.index, "TLS configuration unusable: {e}");
                None
            }
        }
    }

    /// [`Core::received`] for a TLS connection: `data` is ciphertext.
    pub(super) fn received_tls(&mut self, key: usize, data: &[u8]) {
        PLAINTEXT.with_borrow_mut(|buf| {
            if buf.len() < PLAINTEXT_BUF {
                buf.resize(PLAINTEXT_BUF, 0);
            }
            let mut input = data;
            loop {
                let Some(slot) = self.conns.get_mut(key) else {
                    return;
                };
                let Some(tls) = slot.tls.as_deref_mut() else {
                    return;
                };
                if slot.conn.is_finishing() {
                    // Nothing more is read (an alert went out, or the last words).
                    return;
                }
                let handshaking = tls.is_handshaking();
                let fed = tls.feed(&mut input);
                let mut env = env!(self);
                if !drain_plaintext(slot, buf, &mut env) {
                    return;
                }
                if let Err(Fatal(reason)) = fed {
                    tracing::debug!(conn = slot.conn.core.id.0, "TLS failed: {reason}");
                    if handshaking {
                        Stats::bump(&env.turn.stats.handshake_refusals);
                    }
                    // The alert rustls queued goes out; then the connection ends.
                    slot.conn.fail_transport(&mut env);
                    return;
                }
                if input.is_empty() {
                    return;
                }
            }
        });
    }

    /// [`Core::write`] for a TLS connection: encrypts the cork and the outbox, writes
    /// the ciphertext; tells the handler when it drained.
    pub(super) fn write_tls<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        loop {
            let Some(slot) = self.conns.get_mut(key) else {
                self.turn.cork.clear();
                return;
            };
            let Some(tls) = slot.tls.as_deref_mut() else {
                return;
            };
            let io = &mut slot.io;
            let outbox = &mut slot.conn.core.outbox;
            let turn = &mut self.turn;
            let had_queue = !outbox.is_empty();
            // Ciphertext refused before goes first; only then is more encrypted.
            let sent = tls.send(|slices| t.write(io, slices)).and_then(|sent| {
                if sent == Flushed::Blocked {
                    // Keeps the cork's plaintext in the outbox, unencrypted.
                    outbox.flush_with(&mut turn.cork, &turn.batch, |_| {
                        Err(io::ErrorKind::WouldBlock.into())
                    })?;
                    return Ok(Flushed::Blocked);
                }
                if !outbox.is_empty() || !turn.cork.is_empty() {
                    outbox.flush_with(&mut turn.cork, &turn.batch, |slices| tls.encrypt(slices))?;
                }
                tls.send(|slices| t.write(io, slices))
            });
            match sent {
                Ok(Flushed::All) => {
                    if !had_queue && !slot.conn.core.needs_drain {
                        return;
                    }
                    let mut env = env!(self);
                    slot.conn.drained(&mut env);
                    if self.turn.cork.is_empty() {
                        return;
                    }
                }
                Ok(Flushed::Blocked) => return,
                Err(_) => {
                    let mut env = env!(self);
                    slot.conn.eof(&mut env);
                    return;
                }
            }
        }
    }

    /// A finishing TLS connection whose plaintext has all been encrypted says
    /// close_notify (RFC 8446 §6.1) after it, before its socket is shut down or
    /// closed.
    pub(super) fn close_notify<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(tls) = slot.tls.as_deref_mut() else {
            return;
        };
        if slot.conn.is_finishing() && slot.conn.core.outbox.is_empty() {
            tls.close_notify();
            self.write_tls(key, t);
        }
    }
}

impl<H, IO> Slot<H, IO> {
    /// Bytes that wait for the socket: plaintext queued, and ciphertext refused.
    pub(super) fn unsent(&self) -> usize {
        self.conn.core.outbox.len() + self.tls.as_ref().map_or(0, |tls| tls.unsent_len())
    }

    /// Whether everything queued for the connection went out.
    pub(super) fn all_sent(&self) -> bool {
        self.conn.core.outbox.is_empty() && self.tls.as_ref().is_none_or(|tls| !tls.has_unsent())
    }
}

/// Serves the plaintext the session decrypted to the connection, a buffer at a time;
/// returns whether the connection still reads.
fn drain_plaintext<S: Service, IO>(
    slot: &mut Slot<S::Handler, IO>,
    buf: &mut [u8],
    env: &mut crate::server::conn::Env<'_, S>,
) -> bool {
    let Some(tls) = slot.tls.as_deref_mut() else {
        return false;
    };
    loop {
        if slot.conn.is_done() {
            return false;
        }
        let held = slot.conn.take_pending(buf);
        match tls.read_plaintext(&mut buf[held..]) {
            Plaintext::Bytes(n) => slot.conn.receive(&mut buf[..held + n], env),
            Plaintext::Empty => {
                slot.conn.restore_pending(&buf[..held]);
                return true;
            }
            Plaintext::Closed => {
                slot.conn.restore_pending(&buf[..held]);
                // The peer will send nothing more. A connection still writing its
                // last words (the reply to a close frame) writes them first.
                if !slot.conn.is_finishing() {
                    slot.conn.eof(env);
                }
                return false;
            }
        }
    }
}
