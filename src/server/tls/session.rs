//! One TLS connection's state between the socket and the WebSocket/HTTP connection,
//! without I/O: ciphertext in, plaintext out, and back.
//!
//! A [`Session`] wraps a rustls [`UnbufferedServerConnection`]: a state machine that
//! owns no I/O buffer. The ciphertext it is given is the driver's read buffer itself
//! (records are processed where they lie); only an incomplete record at the end of a
//! read is kept, in a buffer of the session's own that exists until the record is
//! complete. Ciphertext to send is encrypted into the caller's (the reactor thread's)
//! buffer and written from there; only what the socket refuses waits in the session
//! (`wire`, an [`Outbox`] like a plain connection's, so a completion driver submits its
//! frozen bytes the same way). An idle TLS connection therefore holds rustls' state
//! (keys, the connection's configuration) and no buffer.

use std::io::{self, IoSlice};

use bytes::Bytes;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};

use crate::server::core::outbox::{Flushed, Outbox};

/// The most ciphertext kept while a record (or, during the handshake, a handshake
/// message split across records, which rustls joins where it lies) is incomplete:
/// rustls refuses handshake messages over 64 KiB and records over 16 KiB + 2 KiB.
const MAX_PARTIAL: usize = (64 << 10) + (18 << 10);

/// Bytes of ciphertext one record adds to its plaintext, at most (TLS 1.2 AES-GCM:
/// 5 header, 8 explicit nonce, 16 tag; TLS 1.3 adds 1 content type instead of the
/// nonce), rounded up.
const RECORD_OVERHEAD: usize = 32;

/// Plaintext bytes per record (the TLS maximum, RFC 8446 §5.1).
const RECORD_PLAINTEXT: usize = 16 << 10;

/// Plaintext encrypted at a time (four records): what waits encrypted for a slow
/// socket is at most this much, the rest stays plaintext in the outbox.
pub(crate) const MAX_SEAL: usize = 4 * RECORD_PLAINTEXT;

/// A reactor thread's buffer for ciphertext on its way to a socket: grown as needed,
/// never zeroed again (rustls writes into initialized memory), reused.
#[derive(Debug, Default)]
pub(crate) struct Sealed {
    buf: Vec<u8>,
    len: usize,
}

impl Sealed {
    /// `n` bytes of room after what is there.
    fn room(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() < self.len + n {
            self.buf.resize(self.len + n, 0);
        }
        &mut self.buf[self.len..self.len + n]
    }

    /// `n` bytes of the room were written.
    fn commit(&mut self, n: usize) {
        self.len += n;
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
        self.commit(bytes.len());
    }

    /// The ciphertext.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties it (keeping the memory, unless a large handshake message grew it).
    pub fn clear(&mut self) {
        self.len = 0;
        if self.buf.len() > 2 * MAX_SEAL {
            self.buf = Vec::new();
        }
    }
}

/// A TLS connection's state (see the module docs).
pub(crate) struct Session {
    tls: UnbufferedServerConnection,
    /// Ciphertext the socket refused, in order.
    wire: Outbox,
    /// An incomplete record (or handshake message) from the end of the last read.
    partial: Option<Vec<u8>>,
    /// Our close_notify was encrypted.
    close_notify_sent: bool,
    /// TLS failed: nothing more is read.
    broken: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.tls.is_handshaking())
            .field("unsent", &self.wire.len())
            .field("partial", &self.partial.as_ref().map(Vec::len))
            .finish()
    }
}

/// What a [`Session::receive`] saw besides application data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// The session goes on.
    Open,
    /// The peer sent close_notify: it will send nothing more (RFC 8446 §6.1).
    Closed,
}

/// The TLS layer failed: the peer broke the protocol (garbage instead of a
/// ClientHello, a record over the maximum size, a bad MAC, plaintext HTTP) or the
/// handshake failed. The alert that says why is queued; the connection must end.
#[derive(Debug)]
pub(crate) struct Fatal(pub String);

impl From<rustls::Error> for Fatal {
    fn from(e: rustls::Error) -> Self {
        Fatal(e.to_string())
    }
}

impl Session {
    /// A session for a connection just accepted.
    pub fn new(tls: UnbufferedServerConnection) -> Self {
        Self {
            tls,
            wire: Outbox::default(),
            partial: None,
            close_notify_sent: false,
            broken: false,
        }
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Whether the handshake is under way and has not failed: more ciphertext can
    /// complete it.
    pub fn handshake_pending(&self) -> bool {
        self.tls.is_handshaking() && !self.broken
    }

    /// Processes the ciphertext `data` (the driver's read buffer, used in place):
    /// hands each decrypted record's plaintext to `plaintext` (which returns whether it
    /// still reads), and queues in `wire` what the handshake answers. An incomplete
    /// record at the end is kept for the next call.
    ///
    /// # Errors
    ///
    /// [`Fatal`] when the peer broke TLS; the alert is queued in `wire`.
    pub fn receive(
        &mut self,
        data: &mut [u8],
        mut plaintext: impl FnMut(&[u8]) -> bool,
    ) -> Result<Received, Fatal> {
        if self.broken {
            return Err(Fatal("TLS failed before".into()));
        }
        let mut kept = self.partial.take();
        let input: &mut [u8] = match &mut kept {
            Some(partial) => {
                partial.extend_from_slice(data);
                partial
            }
            None => data,
        };
        let mut scratch = Vec::new();
        let mut pos = 0;
        let mut received = Received::Open;
        let outcome = loop {
            let UnbufferedStatus { mut discard, state } =
                self.tls.process_tls_records(&mut input[pos..]);
            let state = match state {
                Ok(state) => state,
                Err(e) => break Err(Fatal::from(e)),
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    let mut reading = true;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                reading = reading && plaintext(record.payload);
                            }
                            Err(e) => return self.failed(e.into()),
                        }
                    }
                    reading
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    if let Err(e) = encode_into(&mut encode, &mut scratch) {
                        break Err(e);
                    }
                    self.wire.push(Bytes::copy_from_slice(&scratch));
                    true
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // The records are queued in `wire`, ahead of anything encrypted
                    // after them.
                    transmit.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    received = Received::Closed;
                    true
                }
                // Everything complete is processed: the rest is an incomplete record.
                ConnectionState::BlockedHandshake
                | ConnectionState::WriteTraffic(_)
                | ConnectionState::Closed => false,
                // Early data is never accepted (the configuration's default), and a
                // state added by a later rustls is not one this server expects.
                _ => break Err(Fatal("unexpected TLS state".into())),
            };
            pos += discard;
            if !more {
                break Ok(received);
            }
        };
        let received = match outcome {
            Ok(received) => received,
            Err(fatal) => return self.failed(fatal),
        };
        let rest = input.len() - pos;
        if rest > 0 {
            if rest > MAX_PARTIAL {
                return self.failed(Fatal("incomplete TLS message over 82 KiB".into()));
            }
            let mut partial = kept.unwrap_or_default();
            if partial.is_empty() {
                partial.extend_from_slice(&data[pos..]);
            } else {
                partial.drain(..pos);
            }
            self.partial = Some(partial);
        }
        Ok(received)
    }

    /// After a failure: queues the alert rustls prepared, and returns `fatal`.
    fn failed(&mut self, fatal: Fatal) -> Result<Received, Fatal> {
        self.broken = true;
        let mut scratch = Vec::new();
        for _ in 0..4 {
            match self.tls.process_tls_records(&mut []).state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    if encode_into(&mut encode, &mut scratch).is_ok() {
                        self.wire.push(Bytes::copy_from_slice(&scratch));
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => break,
            }
        }
        self.partial = None;
        Err(fatal)
    }

    /// Whether application data can be encrypted (the handshake is complete).
    pub fn can_encrypt(&self) -> bool {
        !self.tls.is_handshaking()
    }

    /// Encrypts the first `max` bytes of `slices` (plaintext, in order; all of them if
    /// shorter), appending the ciphertext to `out`; returns how many bytes it took.
    /// Call only when [`Session::can_encrypt`].
    ///
    /// # Errors
    ///
    /// `Other` if rustls cannot encrypt (its keys are exhausted: after 2^64 records).
    pub fn encrypt(
        &mut self,
        slices: &[IoSlice<'_>],
        out: &mut Sealed,
        max: usize,
    ) -> io::Result<usize> {
        self.with_write_traffic(out, |traffic, out| {
            let mut taken = 0;
            for slice in slices {
                let plain = &slice[..slice.len().min(max - taken)];
                let records = plain.len().div_ceil(RECORD_PLAINTEXT).max(1);
                let mut room = plain.len() + records * RECORD_OVERHEAD;
                loop {
                    match traffic.encrypt(plain, out.room(room)) {
                        Ok(n) => {
                            out.commit(n);
                            break;
                        }
                        Err(EncryptError::InsufficientSize(e)) => room = e.required_size,
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    }
                }
                taken += plain.len();
                if taken == max {
                    break;
                }
            }
            Ok(taken)
        })
        .unwrap_or_else(|| Err(io::Error::other("TLS session not ready to encrypt")))
    }

    /// Encrypts close_notify (RFC 8446 §6.1), once, appending it to `out`.
    pub fn close_notify(&mut self, out: &mut Sealed) {
        if self.close_notify_sent || self.tls.is_handshaking() {
            return;
        }
        self.close_notify_sent = true;
        self.with_write_traffic(out, |traffic, out| {
            if let Ok(n) = traffic.queue_close_notify(out.room(RECORD_OVERHEAD + 2)) {
                out.commit(n);
            }
        });
    }

    /// Runs `f` with rustls' write state, first queueing in `out` whatever rustls has
    /// to send before (a key update's answer, say); `None` if there is no write state.
    fn with_write_traffic<R>(
        &mut self,
        out: &mut Sealed,
        f: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Sealed,
        ) -> R,
    ) -> Option<R> {
        let mut scratch = Vec::new();
        for _ in 0..8 {
            match self.tls.process_tls_records(&mut []).state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    return Some(f(&mut traffic, out));
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut encode, &mut scratch).ok()?;
                    out.extend(&scratch);
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return None,
            }
        }
        None
    }

    /// Whether ciphertext waits for the socket.
    pub fn has_unsent(&self) -> bool {
        !self.wire.is_empty()
    }

    /// Ciphertext bytes the socket refused so far.
    pub fn unsent_len(&self) -> usize {
        self.wire.len()
    }

    /// The ciphertext queue, for a completion driver (frozen bytes, then consumed).
    pub fn wire(&mut self) -> &mut Outbox {
        &mut self.wire
    }

    /// Writes the ciphertext waiting in `wire`, then `fresh` (just encrypted), through
    /// `write` (the driver's write: it returns the bytes it took of the slices, in
    /// order). What is not taken of `fresh` is copied into `wire`; `fresh` is left
    /// empty.
    ///
    /// # Errors
    ///
    /// What `write` returned, other than `WouldBlock` and `Interrupted`.
    pub fn send(
        &mut self,
        fresh: &mut Sealed,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<Flushed> {
        let bytes = fresh.bytes();
        let result = if self.wire.is_empty() && !bytes.is_empty() {
            let mut written = 0;
            let result = loop {
                if written == bytes.len() {
                    break Ok(Flushed::All);
                }
                match write(&[IoSlice::new(&bytes[written..])]) {
                    Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(Flushed::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if written < bytes.len() {
                self.wire.push(Bytes::copy_from_slice(&bytes[written..]));
            }
            result
        } else {
            if !bytes.is_empty() {
                self.wire.push(Bytes::copy_from_slice(bytes));
            }
            self.wire
                .flush_with(&mut Vec::new(), &Default::default(), &mut write)
        };
        fresh.clear();
        result
    }
}

/// Copies a handshake record rustls prepared into `out` (replacing its contents).
fn encode_into(
    encode: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), Fatal> {
    out.resize(4096, 0);
    loop {
        match encode.encode(out) {
            Ok(n) => {
                out.truncate(n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(e)) => out.resize(e.required_size, 0),
            Err(e) => return Err(Fatal(e.to_string())),
        }
    }
}
