//! The readiness backend: mio (epoll on Linux, edge-triggered; kqueue elsewhere)
//! tells which sockets can be read or written, and this backend reads and writes them
//! for the core.
//!
//! A turn's wait is one `epoll_wait`; each event is one connection served (write what
//! waits, read until the socket is drained, writing what each read produced before
//! the next read), the listener drained, or a wake-up handed to the turn loop
//! (`reactor.rs`). Writes happen at once, from the core's borrowed slices
//! ([`Sends::Now`]). The only code here is system calls and what epoll's semantics
//! require; every decision is the core's or the loop's.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::server::config::ServerConfig;
use crate::server::core::{Core, RECV_HEADROOM, Sends, Transport};
use crate::server::driver::reactor::{Backend, Event, accept_error};
use crate::server::handler::Service;
use crate::server::shared::Wake;

/// The listening socket's token.
const LISTENER: Token = Token(usize::MAX - 1);
/// The waker's token: commands from other threads.
const WAKER: Token = Token(usize::MAX - 2);

impl Wake for Waker {
    fn wake(&self) -> io::Result<()> {
        Waker::wake(self)
    }
}

/// A reactor's event source and the waker other threads rouse it with.
///
/// # Errors
///
/// What creating the epoll instance or its eventfd returned (`EMFILE`, `ENOMEM`...).
pub(crate) fn new_poll() -> io::Result<(Poll, Box<dyn Wake>)> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    Ok((poll, Box::new(waker)))
}

/// Registers a bound, non-blocking listener with the poll a reactor will use.
///
/// # Errors
///
/// What `epoll_ctl` returned.
pub(crate) fn register_listener(
    poll: &Poll,
    listener: std::net::TcpListener,
) -> io::Result<TcpListener> {
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    Ok(listener)
}

/// What an event says about a connection's socket.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The peer shut down its side, or the connection failed (reset, error).
    hung_up: bool,
}

/// A connection's socket and what epoll said about it (the core's `IO`).
pub(crate) struct Socket {
    stream: TcpStream,
    /// The peer hung up (or the connection failed): read on to EOF whatever a read
    /// returns, even while paused (its FIN may wait behind the data of the same event,
    /// and no later event will announce it).
    hung_up: bool,
    /// A short read does not prove the socket drained: read on until `EAGAIN`. Set when
    /// reading resumes after a pause (the events of the pause were not acted on).
    read_to_eagain: bool,
    /// Reading is paused for flow control (the core said so).
    paused: bool,
}

/// One reactor's epoll backend: its event source, listener and read buffer.
pub(crate) struct Epoll {
    poll: Poll,
    events: Events,
    /// What the last wait returned, taken one at a time by [`Backend::next_event`]
    /// (the next one at `cursor`).
    ready: Vec<(Token, Readiness)>,
    cursor: usize,
    listener: Option<TcpListener>,
    /// The listener said it has connections: accept until `EAGAIN`.
    accepting: bool,
    /// The reactor's one read buffer: every connection's bytes land here (behind the
    /// few bytes it kept from its last read, [`Core::kept`]) and are decoded in place.
    read_buf: Vec<u8>,
    /// Connections whose reading resumes once the current core call returns.
    resumed: Vec<usize>,
}

impl Epoll {
    /// A backend over `poll` and `listener` (from [`new_poll`] and
    /// [`register_listener`]; the waker is in the server's shared state).
    pub fn new(poll: Poll, listener: TcpListener, config: &ServerConfig) -> Self {
        Self {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            cursor: 0,
            listener: Some(listener),
            accepting: false,
            read_buf: vec![0; RECV_HEADROOM + config.read_buffer_size.max(1024)],
            resumed: Vec::new(),
        }
    }

    /// Accepts one connection; `None` once the listener has nothing more (or is
    /// gone).
    fn accept<S: Service>(&mut self, core: &Core<S, Socket>) -> Option<Event<Socket>> {
        loop {
            let listener = self.listener.as_ref()?;
            let (mut stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => match accept_error(e) {
                    None => continue,
                    Some(error) => return Some(Event::AcceptFailed(error)),
                },
            };
            let _ = stream.set_nodelay(true);
            let interest = Interest::READABLE | Interest::WRITABLE;
            let token = Token(core.vacant_key());
            if self
                .poll
                .registry()
                .register(&mut stream, token, interest)
                .is_err()
            {
                continue;
            }
            let socket = Socket {
                stream,
                hung_up: false,
                read_to_eagain: false,
                paused: false,
            };
            return Some(Event::Accepted(socket, peer));
        }
    }

    /// Reads a connection whose flow-control pause ended, as if it had become
    /// readable; returns whether there was one.
    fn serve_resumed<S: Service>(&mut self, core: &mut Core<S, Socket>) -> bool {
        let Some(key) = self.resumed.pop() else {
            return false;
        };
        let readiness = Readiness {
            readable: true,
            writable: false,
            hung_up: false,
        };
        self.serve(core, key, readiness);
        true
    }

    /// Serves connection `key` for an event.
    fn serve<S: Service>(&mut self, core: &mut Core<S, Socket>, key: usize, readiness: Readiness) {
        let mut buf = std::mem::take(&mut self.read_buf);
        core.contained(Some(key), self, |core, this| {
            if readiness.writable {
                core.write(key, this);
            }
            if readiness.hung_up
                && let Some(socket) = core.io_mut(key)
            {
                socket.hung_up = true;
            }
            if readiness.readable || readiness.hung_up {
                read(core, &mut buf, this, key);
            }
            core.served(key, this);
        });
        self.read_buf = buf;
    }
}

impl Transport<Socket> for Epoll {
    fn sends(&self) -> Sends {
        Sends::Now
    }

    fn write_now(
        &mut self,
        _key: usize,
        io: &mut Socket,
        slices: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        if slices.len() == 1 {
            io.stream.write(&slices[0])
        } else {
            io.stream.write_vectored(slices)
        }
    }

    fn write_last(&mut self, key: usize, io: &mut Socket, bytes: &[u8]) {
        let _ = self.write_now(key, io, &[IoSlice::new(bytes)]);
    }

    fn shutdown_write(&mut self, io: &mut Socket) {
        let _ = io.stream.shutdown(Shutdown::Write);
    }

    fn pause_reading(&mut self, _key: usize, io: &mut Socket) {
        io.paused = true;
    }

    fn resume_reading(&mut self, key: usize, io: &mut Socket) {
        io.paused = false;
        io.read_to_eagain = true;
        self.resumed.push(key);
    }

    fn release(&mut self, _key: usize, mut io: Socket) {
        let _ = self.poll.registry().deregister(&mut io.stream);
    }
}

impl Backend for Epoll {
    type Io = Socket;

    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ready.clear();
        self.cursor = 0;
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        self.ready.extend(self.events.iter().map(|event| {
            let readiness = Readiness {
                readable: event.is_readable(),
                writable: event.is_writable(),
                hung_up: event.is_read_closed() || event.is_error(),
            };
            (event.token(), readiness)
        }));
        Ok(())
    }

    fn next_event<S: Service>(
        &mut self,
        core: &mut Core<S, Socket>,
    ) -> io::Result<Option<Event<Socket>>> {
        loop {
            if self.serve_resumed(core) {
                continue;
            }
            if self.accepting {
                match self.accept(core) {
                    Some(event) => return Ok(Some(event)),
                    None => self.accepting = false,
                }
                continue;
            }
            let Some(&(token, readiness)) = self.ready.get(self.cursor) else {
                return Ok(None);
            };
            self.cursor += 1;
            match token {
                LISTENER => self.accepting = true,
                WAKER => return Ok(Some(Event::Woken)),
                Token(key) => self.serve(core, key, readiness),
            }
        }
    }

    fn opened<S: Service>(&mut self, _core: &mut Core<S, Socket>, _key: usize) {
        // Registered at accept; its first bytes raise an event of their own.
    }

    fn pause_accepting(&mut self) {
        self.accepting = false;
        if let Some(listener) = self.listener.as_mut() {
            let _ = self.poll.registry().deregister(listener);
        }
    }

    fn resume_accepting(&mut self) {
        if let Some(listener) = self.listener.as_mut() {
            let _ = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE);
            self.accepting = true;
        }
    }

    fn stop_accepting(&mut self) {
        self.accepting = false;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    fn end_turn<S: Service>(&mut self, core: &mut Core<S, Socket>) -> io::Result<()> {
        // Reading resumed by the turn's flush goes on now, not at the next event.
        while self.serve_resumed(core) {}
        Ok(())
    }

    fn failed(&mut self) {
        self.resumed.clear();
    }
}

/// Reads until the socket is drained (or the connection is done, or its reading is
/// paused for flow control), feeding bytes to the core. What one read's messages
/// produced is written before the next read, so the cork holds at most one read's
/// replies and flow control sees what the socket refused.
///
/// Platform assumptions (epoll, edge-triggered through mio): new bytes or a FIN
/// arriving after a read that returned less than asked raise a new event; a FIN that
/// arrived together with data is reported on the same event (`EPOLLRDHUP`), which is
/// why a hang-up makes the loop read on to EOF instead of trusting a short read; an
/// error or reset is reported as `EPOLLERR`/`EPOLLHUP` and also read to its end; a
/// socket that refused bytes raises a writable event once it has room (which is what
/// resumes a paused connection).
fn read<S: Service>(core: &mut Core<S, Socket>, buf: &mut [u8], t: &mut Epoll, key: usize) {
    loop {
        // The read lands right behind the room for what the connection kept (usually
        // none, so at the buffer's start: docs/benchmarks.md §10 says why that
        // matters).
        let kept = core.kept(key);
        let Some(socket) = core.io_mut(key) else {
            return;
        };
        // Read-side flow control: while the peer does not take what we send, stop
        // taking what it sends; TCP then slows it down. A hang-up is still read, so a
        // dead peer is noticed.
        let hung_up = socket.hung_up;
        if socket.paused && !hung_up {
            return;
        }
        let space = buf.len() - kept;
        match socket.stream.read(&mut buf[kept..]) {
            Ok(0) => return core.eof(key),
            Ok(n) => {
                // With edge-triggered readiness a short read means the socket is
                // drained for now: new bytes will raise a new event.
                let more = n == space || socket.read_to_eagain || hung_up;
                let reading = core.received(key, &mut buf[..kept + n], kept);
                if !(more && reading) {
                    // `Core::served` writes what it produced.
                    return;
                }
                core.write(key, t);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.read_to_eagain = false;
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return core.eof(key),
        }
    }
}
