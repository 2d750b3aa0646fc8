//! One raw connection and the slot table that owns them all.

use std::io::{self, ErrorKind, Write};

use mio::Token;
use mio::net::TcpStream;

/// Token reserved for the listener; connection `i` uses `Token(i + 1)`.
pub const LISTENER: Token = Token(0);

/// A client connection plus the bytes it still owes the peer.
pub struct Conn {
    /// The non-blocking socket.
    pub stream: TcpStream,
    /// Bytes accepted for writing but not yet taken by the kernel.
    pending: Vec<u8>,
    /// How much of `pending` has already been written.
    sent: usize,
    /// Reading stopped early (echo back-pressure) and must resume once drained.
    pub read_paused: bool,
}

impl Conn {
    /// Wraps a freshly accepted stream.
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            pending: Vec::new(),
            sent: 0,
            read_paused: false,
        }
    }

    /// Bytes still queued for this connection.
    pub fn queued(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// Writes `data` now if nothing is queued, queueing whatever the kernel does
    /// not take; appends to the queue otherwise, so bytes never reorder.
    pub fn write_or_queue(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.queued() == 0 {
            while !data.is_empty() {
                match self.stream.write(data) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => data = &data[n..],
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Writes queued bytes until the queue is empty or the socket is full.
    pub fn flush_pending(&mut self) -> io::Result<()> {
        while self.sent < self.pending.len() {
            match self.stream.write(&self.pending[self.sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.pending.len() {
            self.pending.clear();
            self.sent = 0;
        } else if self.sent > self.pending.len() / 2 {
            self.pending.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }
}

/// Connections indexed by token, reusing freed slots.
#[derive(Default)]
pub struct Slots {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Slots {
    /// Stores `conn` and returns the token it is registered under.
    pub fn insert(&mut self, conn: Conn) -> Token {
        let index = match self.free.pop() {
            Some(i) => {
                self.conns[i] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        Token(index + 1)
    }

    /// The connection behind `token`, if it is still open.
    pub fn get_mut(&mut self, token: Token) -> Option<&mut Conn> {
        let index = token.0.checked_sub(1)?;
        self.conns.get_mut(index)?.as_mut()
    }

    /// Removes and returns the connection behind `token`.
    pub fn remove(&mut self, token: Token) -> Option<Conn> {
        let index = token.0.checked_sub(1)?;
        let conn = self.conns.get_mut(index)?.take()?;
        self.free.push(index);
        Some(conn)
    }

    /// Every open connection with its token.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut Conn)> {
        self.conns
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.as_mut().map(|c| (Token(i + 1), c)))
    }
}
