//! One TLS connection's state between the socket and the WebSocket/HTTP connection,
//! without I/O: ciphertext in, plaintext out, and back.
//!
//! A [`Session`] wraps a rustls [`ServerConnection`] (an I/O-free state machine) and
//! the ciphertext its socket has not taken yet (`wire`, an [`Outbox`] like a plain
//! connection's, so a completion driver submits its frozen bytes the same way). The
//! reactor core feeds it what the driver read ([`Session::feed`]), takes the
//! plaintext out ([`Session::read_plaintext`]) for the connection, hands it the
//! connection's plaintext output ([`Session::encrypt`]) and writes the ciphertext
//! ([`Session::send`]).

use std::io::{self, IoSlice, Read, Write};

use bytes::Bytes;
use rustls::ServerConnection;

use crate::server::outbox::{Flushed, Outbox};

/// A TLS connection's state (see the module docs).
#[derive(Debug)]
pub(crate) struct Session {
    tls: ServerConnection,
    /// Ciphertext the socket refused, in order, ahead of anything rustls still holds.
    wire: Outbox,
    /// Our close_notify is queued (sent once).
    close_notify_sent: bool,
}

/// What [`Session::read_plaintext`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plaintext {
    /// This many bytes were copied out.
    Bytes(usize),
    /// Nothing decrypted waits (more ciphertext is needed).
    Empty,
    /// The peer sent close_notify: it will send nothing more (RFC 8446 §6.1).
    Closed,
}

/// The TLS layer failed: the peer broke the protocol (garbage instead of a
/// ClientHello, a record over the maximum size, a bad MAC, plaintext HTTP) or the
/// handshake failed. The alert that says why is queued; the connection must end.
#[derive(Debug)]
pub(crate) struct Fatal(pub String);

impl Session {
    /// A session for a connection just accepted. rustls' own buffer limit is lifted:
    /// the connection's backpressure limits already bound what it queues, and the
    /// plaintext handed to [`Session::encrypt`] must be taken whole.
    pub fn new(mut tls: ServerConnection) -> Self {
        tls.set_buffer_limit(None);
        Self {
            tls,
            wire: Outbox::default(),
            close_notify_sent: false,
        }
    }

    /// Takes ciphertext from the front of `input` (it advances past what was taken:
    /// rustls takes at most one buffer's worth, up to one maximum-size record, at a
    /// time) and processes the records it completes. Call again while `input` is not
    /// empty, after taking the plaintext out.
    ///
    /// # Errors
    ///
    /// [`Fatal`] when the peer broke TLS; an alert is queued for [`Session::send`].
    pub fn feed(&mut self, input: &mut &[u8]) -> Result<(), Fatal> {
        if let Err(e) = self.tls.read_tls(input as &mut dyn Read) {
            // A buffer that cannot grow (a handshake message over 64 KiB) or plaintext
            // nobody takes: neither happens with a peer that keeps to the protocol.
            return Err(Fatal(e.to_string()));
        }
        match self.tls.process_new_packets() {
            Ok(_) => Ok(()),
            Err(e) => Err(Fatal(e.to_string())),
        }
    }

    /// Copies decrypted bytes into `buf`.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> Plaintext {
        match self.tls.reader().read(buf) {
            Ok(0) if !buf.is_empty() => Plaintext::Closed,
            Ok(n) => Plaintext::Bytes(n),
            // `WouldBlock`: nothing waits. `UnexpectedEof` cannot happen: the core
            // never reports a TCP EOF to rustls (it ends the connection itself).
            Err(_) => Plaintext::Empty,
        }
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Encrypts `slices` (plaintext, in order); takes them whole and returns their
    /// length. Before the handshake ends rustls keeps them and encrypts them after.
    pub fn encrypt(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut taken = 0;
        let mut writer = self.tls.writer();
        for slice in slices {
            writer.write_all(slice)?;
            taken += slice.len();
        }
        Ok(taken)
    }

    /// Queues close_notify (RFC 8446 §6.1) once, after everything encrypted so far.
    pub fn close_notify(&mut self) {
        if !self.close_notify_sent {
            self.close_notify_sent = true;
            self.tls.send_close_notify();
        }
    }

    /// Whether ciphertext waits: in `wire`, or encrypted by rustls and not yet
    /// handed out.
    pub fn has_unsent(&self) -> bool {
        !self.wire.is_empty() || self.tls.wants_write()
    }

    /// Ciphertext bytes the socket refused so far.
    pub fn unsent_len(&self) -> usize {
        self.wire.len()
    }

    /// The ciphertext queue, for a completion driver (frozen bytes, then consumed).
    pub fn wire(&mut self) -> &mut Outbox {
        &mut self.wire
    }

    /// Writes waiting ciphertext through `write` (the driver's write: it returns the
    /// bytes it took of the slices, in order): first what the socket refused before,
    /// then what rustls encrypted since, straight from rustls' buffers. What `write`
    /// does not take is copied into `wire`, so rustls' buffers are empty after.
    ///
    /// # Errors
    ///
    /// What `write` returned, other than `WouldBlock` and `Interrupted`.
    pub fn send(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<Flushed> {
        let mut blocked = false;
        if !self.wire.is_empty() {
            blocked = self
                .wire
                .flush_with(&mut Vec::new(), &Default::default(), &mut write)?
                == Flushed::Blocked;
        }
        while self.tls.wants_write() {
            let mut sink = Sink {
                write: &mut write,
                wire: &mut self.wire,
                blocked,
            };
            self.tls.write_tls(&mut sink)?;
            blocked = sink.blocked;
        }
        Ok(if self.wire.is_empty() {
            Flushed::All
        } else {
            Flushed::Blocked
        })
    }
}

/// Where rustls writes its ciphertext: the socket while it takes bytes and nothing
/// waits before them, else (copied) the `wire` queue.
struct Sink<'a, W> {
    write: &'a mut W,
    wire: &'a mut Outbox,
    /// The socket refused bytes: queue the rest, in order.
    blocked: bool,
}

impl<W: FnMut(&[IoSlice<'_>]) -> io::Result<usize>> Write for Sink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(0);
        }
        if !self.blocked {
            loop {
                match (self.write)(bufs) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        // A short write means the socket is full: the rest waits.
                        self.blocked = n < total;
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for buf in bufs {
            self.wire.push(Bytes::copy_from_slice(buf));
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
