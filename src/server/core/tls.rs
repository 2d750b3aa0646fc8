//! The core's read and write paths for TLS connections (see `server/tls/`).
//!
//! Reading: the ciphertext the driver read is processed where it lies, in the
//! driver's read buffer; each decrypted record's plaintext is copied, behind the
//! connection's pending bytes, into the reactor thread's plaintext buffer and served
//! to the connection as if it had been read. Writing: the outbox and the cork
//! (plaintext) are encrypted, at most [`MAX_SEAL`] bytes at a time, into the reactor
//! thread's ciphertext buffer and written from there; what the socket refuses waits,
//! encrypted, in the session, and nothing more is encrypted until it has gone, so the
//! plaintext outbox still measures the connection's backpressure. Before the handshake completes nothing is
//! encrypted: plaintext waits in the outbox.

use std::cell::RefCell;
use std::io;

use crate::server::core::conn::{Connection, Env};
use crate::server::core::outbox::{Flushed, Outbox};
use crate::server::core::transport::writer;
use crate::server::core::{Core, Slot, Transport};
use crate::server::handler::Service;
use crate::server::metrics::counters::RefusalReason;
use crate::server::stats::Stats;
use crate::server::tls::session::{Fatal, MAX_SEAL, Received, Sealed, Session};

/// Plaintext of one TLS record at most (16 KiB), plus room for a connection's pending
/// bytes in front (at most 131).
const PLAINTEXT_BUF: usize = (16 << 10) + 256;

thread_local! {
    /// The reactor thread's buffers for its TLS connections: plaintext on its way to
    /// a connection, and ciphertext on its way to a socket (allocated on first use,
    /// reused).
    static BUFFERS: RefCell<(Vec<u8>, Sealed)> = RefCell::new((Vec::new(), Sealed::default()));
}

impl<S: Service, IO> Core<S, IO> {
    /// A session for a connection being opened, if the server speaks TLS (`None` for a
    /// TLS server too if rustls refused to start one: the connection is dropped).
    pub(super) fn tls_session(&self) -> Option<Box<Session>> {
        let acceptor = self.shared.tls.as_ref()?;
        match acceptor.accept() {
            Ok(session) => Some(session),
            Err(e) => {
                // The configuration was checked when given (`Acceptor::check`).
                tracing::error!(reactor = self.index, "TLS configuration unusable: {e}");
                None
            }
        }
    }

    /// [`Core::received`] for a TLS connection: `data` is ciphertext.
    pub(super) fn received_tls(&mut self, key: usize, data: &mut [u8]) {
        let Some(Slot { conn, tls, .. }) = self.conns.get_mut(key) else {
            return;
        };
        let Some(tls) = tls.as_deref_mut() else {
            return;
        };
        if conn.is_finishing() && !tls.handshake_pending() {
            // Nothing more is read (the last words are being written). A connection
            // refused before its handshake (503 over capacity) still completes it, so
            // the refusal can be encrypted and sent.
            return;
        }
        let mut env = env!(self);
        let handshaking = tls.is_handshaking();
        let received = BUFFERS.with_borrow_mut(|(plain, _)| {
            if plain.len() < PLAINTEXT_BUF {
                plain.resize(PLAINTEXT_BUF, 0);
            }
            tls.receive(data, |payload| serve(conn, payload, plain, &mut env))
        });
        match received {
            Ok(Received::Open) => {}
            // The peer will send nothing more. A connection still writing its last
            // words (the reply to a close frame) writes them first; either way our
            // close_notify answers the peer's (`Core::close_notify`).
            Ok(Received::Closed) => {
                if !conn.is_finishing() && !conn.is_done() {
                    conn.peer_closed(&mut env);
                }
            }
            Err(Fatal(reason)) => {
                tracing::debug!(
                    conn = conn.state.id.0,
                    peer = %conn.state.peer,
                    handshaking,
                    "TLS failed: {reason}"
                );
                if handshaking {
                    Stats::bump(&env.reactor.stats.handshake_refusals);
                    env.reactor.counters.refused(RefusalReason::Tls);
                } else {
                    Stats::bump(&env.reactor.stats.protocol_errors);
                }
                // The alert the session queued goes out; then the connection ends
                // (its deadline is not moved by more bytes after the failure).
                if !conn.is_done() && !conn.is_finishing() {
                    conn.fail_transport(&mut env);
                } else if handshaking {
                    // A refusal (503 over capacity) waiting for the handshake can
                    // never be encrypted now: without it the alert goes and the
                    // connection ends at once, instead of at its close timeout.
                    conn.state.outbox = Outbox::default();
                }
            }
        }
    }

    /// [`Core::write`] for a TLS connection: encrypts the outbox and the cork, writes
    /// the ciphertext; tells the handler when it drained.
    pub(super) fn write_tls<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        BUFFERS.with_borrow_mut(|(_, sealed)| {
            loop {
                let Some(slot) = self.conns.get_mut(key) else {
                    self.reactor.cork.clear();
                    return;
                };
                let Some(tls) = slot.tls.as_deref_mut() else {
                    return;
                };
                let io = &mut slot.io;
                let outbox = &mut slot.conn.state.outbox;
                let reactor = &mut self.reactor;
                let had_queue = !outbox.is_empty();
                // Ciphertext refused before goes first; only then is more encrypted, at
                // most MAX_SEAL bytes at a time (the rest waits as plaintext).
                let mut wrote = false;
                let mut write = writer(&mut *t, key, io, &mut wrote);
                let sent = tls.send(sealed, &mut write).and_then(|sent| {
                    let plaintext = !outbox.is_empty() || !reactor.cork.is_empty();
                    if sent == Flushed::Blocked || (plaintext && !tls.can_encrypt()) {
                        // The cork's plaintext waits in the outbox, unencrypted.
                        outbox.flush_with(&mut reactor.cork, &reactor.batch, |_| {
                            Err(io::ErrorKind::WouldBlock.into())
                        })?;
                        return Ok(sent);
                    }
                    if plaintext {
                        outbox.flush_with(&mut reactor.cork, &reactor.batch, |slices| {
                            tls.encrypt(slices, sealed, MAX_SEAL)
                        })?;
                    }
                    tls.send(sealed, &mut write)
                });
                drop(write);
                slot.conn.state.wrote_since_ping |= wrote && !slot.all_sent();
                sealed.clear();
                match sent {
                    Ok(Flushed::All) if !slot.conn.state.outbox.is_empty() => {
                        // More plaintext than one step encrypts, or a handshake that
                        // is not complete yet (then it waits).
                        if !slot.tls.as_ref().is_some_and(|tls| tls.can_encrypt()) {
                            return;
                        }
                    }
                    other => {
                        if !self.flushed(key, other, had_queue, t) {
                            return;
                        }
                    }
                }
            }
        });
    }

    /// A finishing TLS connection whose plaintext has all been encrypted says
    /// close_notify (RFC 8446 §6.1) after it, before its socket is shut down or
    /// closed. Returns whether it did.
    pub(super) fn close_notify<T: Transport<IO>>(&mut self, key: usize, t: &mut T) -> bool {
        let Some(slot) = self.conns.get_mut(key) else {
            return false;
        };
        let Some(tls) = slot.tls.as_deref_mut() else {
            return false;
        };
        if !slot.conn.is_finishing() || !slot.conn.state.outbox.is_empty() {
            return false;
        }
        let io = &mut slot.io;
        BUFFERS.with_borrow_mut(|(_, sealed)| {
            tls.close_notify(sealed);
            if !sealed.is_empty() {
                // A write error shows at the next write; the connection ends anyway.
                let mut wrote = false;
                let _ = tls.send(sealed, writer(t, key, io, &mut wrote));
            }
            sealed.clear();
        });
        true
    }
}

impl<H, IO> Slot<H, IO> {
    /// Bytes that wait for the socket: plaintext queued, and ciphertext refused.
    pub(super) fn unsent(&self) -> usize {
        self.conn.state.outbox.len() + self.tls.as_ref().map_or(0, |tls| tls.unsent_len())
    }

    /// Whether bytes wait that a [`crate::server::core::Sends::Later`] write can take
    /// now: the outbox, or for TLS the ciphertext (plaintext waiting for the handshake
    /// is not).
    pub(super) fn has_sendable(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.has_unsent(),
            None => !self.conn.state.outbox.is_empty(),
        }
    }

    /// Whether everything queued for the connection went out.
    pub(super) fn all_sent(&self) -> bool {
        self.conn.state.outbox.is_empty() && self.tls.as_ref().is_none_or(|tls| !tls.has_unsent())
    }
}

/// Serves one record's plaintext to the connection (behind its pending bytes, in
/// `buf`); returns whether the connection still reads.
fn serve<S: Service>(
    conn: &mut Connection<S::Handler>,
    payload: &[u8],
    buf: &mut [u8],
    env: &mut Env<'_, S>,
) -> bool {
    if conn.is_done() || conn.is_finishing() {
        return false;
    }
    let held = conn.take_pending(buf);
    buf[held..held + payload.len()].copy_from_slice(payload);
    conn.receive(&mut buf[..held + payload.len()], env);
    !conn.is_done() && !conn.is_finishing()
}
