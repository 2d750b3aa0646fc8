//! The readiness driver: mio (epoll on Linux, edge-triggered) tells which sockets can
//! be read or written, and this driver reads and writes them for the core.
//!
//! One turn: wait for events (as long as [`Core::poll_timeout`] allows), then for each
//! connection that is ready write what waits, read until the socket is drained
//! (writing what each read produced before the next read), and let the core finish
//! with it; then accept, deliver wake-ups, and end the turn ([`Core::end_turn`]). The
//! only code here is system calls and what epoll's semantics require; every decision
//! is the core's.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::server::config::ServerConfig;
use crate::server::core::{Core, Transport};
use crate::server::driver::AcceptPause;
use crate::server::failure::{ReactorFailure, panic_message};
use crate::server::handler::Service;
use crate::server::shared::{Shared, Wake};
use crate::server::stats::Stats;

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
}

/// The system calls the core's decisions become (see [`Transport`]).
struct Ops<'a> {
    registry: &'a Registry,
    /// Connections whose reading resumes once the core call returns.
    resumed: &'a mut Vec<usize>,
}

impl Transport<Socket> for Ops<'_> {
    fn write(&mut self, _key: usize, io: &mut Socket, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        if slices.len() == 1 {
            io.stream.write(&slices[0])
        } else {
            io.stream.write_vectored(slices)
        }
    }

    fn shutdown_write(&mut self, io: &mut Socket) {
        let _ = io.stream.shutdown(Shutdown::Write);
    }

    fn resume_reading(&mut self, key: usize, io: &mut Socket) {
        io.read_to_eagain = true;
        self.resumed.push(key);
    }

    fn release(&mut self, _key: usize, mut io: Socket) {
        let _ = self.registry.deregister(&mut io.stream);
    }
}

/// One reactor on epoll: a core, its event source, its listener and read buffer.
pub(crate) struct EpollDriver<S: Service> {
    core: Core<S, Socket>,
    poll: Poll,
    listener: Option<TcpListener>,
    /// The reactor's one read buffer: every connection's bytes land here and are
    /// decoded in place.
    read_buf: Vec<u8>,
    /// Connections whose reading resumes after the current core call.
    resumed: Vec<usize>,
    /// Accepting is paused until this tick (after EMFILE and the like).
    accept_pause: AcceptPause,
}

/// Splits a driver into its core and the transport the core calls, borrowed side by
/// side.
macro_rules! split {
    ($driver:ident) => {
        (
            &mut $driver.core,
            &mut Ops {
                registry: $driver.poll.registry(),
                resumed: &mut $driver.resumed,
            },
        )
    };
}

impl<S: Service> EpollDriver<S> {
    /// A reactor over `listener` and `poll` (from [`new_poll`] and
    /// [`register_listener`]; the waker is in `shared`).
    pub fn new(
        index: usize,
        poll: Poll,
        listener: TcpListener,
        service: Arc<S>,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        let read_buf = vec![0; config.read_buffer_size.max(1024) + 256];
        Self {
            core: Core::new(index, service, config, shared, Instant::now()),
            poll,
            listener: Some(listener),
            read_buf,
            resumed: Vec::new(),
            accept_pause: AcceptPause::default(),
        }
    }

    /// Runs the reactor until a graceful shutdown completes, or until it fails; a
    /// failure is reported before this returns it.
    ///
    /// # Errors
    ///
    /// The [`ReactorFailure`]: a panic outside any one connection, or epoll failing.
    pub fn run_reported(mut self) -> Result<(), ReactorFailure> {
        let cause = match catch_unwind(AssertUnwindSafe(|| self.run())) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => format!("event source failed: {error}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        self.resumed.clear();
        let (core, ops) = split!(self);
        let failure = core.fail_reactor(cause, ops);
        self.stop_accepting();
        Err(failure)
    }

    /// Runs until a graceful shutdown completes.
    ///
    /// # Errors
    ///
    /// The event source's error, if polling fails.
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self
                .core
                .poll_timeout(Instant::now(), self.accept_pause.is_paused());
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            let woke = Instant::now();
            self.core.begin_turn(woke);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.wake(),
                    Token(key) => self.serve(
                        key,
                        Readiness {
                            readable: event.is_readable(),
                            writable: event.is_writable(),
                            hung_up: event.is_read_closed() || event.is_error(),
                        },
                    ),
                }
                self.read_resumed();
            }
            self.resume_accepting();
            let (core, ops) = split!(self);
            core.end_turn(Instant::now(), ops);
            self.read_resumed();
            self.core.observe_turn(woke.elapsed());
            if self.core.finished(Instant::now()) {
                return Ok(());
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(error) => return self.pause_accepting(&error),
            };
            let _ = stream.set_nodelay(true);
            Stats::bump(&self.core.shared().stats.accepted);
            let key = self.core.vacant_key();
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .register(&mut stream, Token(key), interest)
                .is_err()
            {
                continue;
            }
            let socket = Socket {
                stream,
                hung_up: false,
                read_to_eagain: false,
            };
            self.open(socket, peer);
        }
    }

    fn open(&mut self, socket: Socket, peer: SocketAddr) {
        let (core, ops) = split!(self);
        core.open(socket, peer, ops);
        self.read_resumed();
    }

    /// EMFILE, ENFILE, ENOBUFS, ENOMEM...: stop accepting for a tick rather than spin
    /// on a listener that stays readable.
    fn pause_accepting(&mut self, error: &io::Error) {
        self.accept_pause.start(&self.core, error);
        if let Some(listener) = self.listener.as_mut() {
            let _ = self.poll.registry().deregister(listener);
        }
    }

    fn resume_accepting(&mut self) {
        if !self.accept_pause.ended(self.core.tick()) {
            return;
        }
        if let Some(listener) = self.listener.as_mut() {
            let _ = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE);
            self.accept();
        }
    }

    /// Closes this reactor's listening socket (its own, or its duplicate of the
    /// shared one): new connections go to no one (a shutdown) or to the other
    /// reactors (a failure).
    fn stop_accepting(&mut self) {
        self.accept_pause.clear();
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    /// Commands from other threads: publishes, shutdown.
    fn wake(&mut self) {
        let (core, ops) = split!(self);
        core.wake(Instant::now(), ops);
        if self.core.is_shutting_down() {
            self.stop_accepting();
        }
        self.read_resumed();
    }

    /// Serves connection `key` for an event.
    fn serve(&mut self, key: usize, readiness: Readiness) {
        let read_buf = &mut self.read_buf;
        let (core, ops) = split!(self);
        core.contained(Some(key), ops, |core, ops| {
            if readiness.writable {
                core.write(key, ops);
            }
            if readiness.hung_up
                && let Some(socket) = core.io_mut(key)
            {
                socket.hung_up = true;
            }
            if readiness.readable || readiness.hung_up {
                read(core, read_buf, ops, key);
            }
            core.served(key, ops);
        });
    }

    /// Reads the connections the core said may read again (their flow-control pause
    /// ended), as if they had become readable.
    fn read_resumed(&mut self) {
        while let Some(key) = self.resumed.pop() {
            let readiness = Readiness {
                readable: true,
                writable: false,
                hung_up: false,
            };
            self.serve(key, readiness);
        }
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
fn read<S: Service>(core: &mut Core<S, Socket>, buf: &mut [u8], ops: &mut Ops<'_>, key: usize) {
    while read_once(core, buf, key) {
        core.write(key, ops);
    }
}

/// One `read` (retried on `EINTR`); returns whether to read again.
fn read_once<S: Service>(core: &mut Core<S, Socket>, buf: &mut [u8], key: usize) -> bool {
    let Some(socket) = core.io_mut(key) else {
        return false;
    };
    // Read-side flow control: while the peer does not take what we send, stop taking
    // what it sends; TCP then slows it down. A hang-up is still read, so a dead peer
    // is noticed.
    let hung_up = socket.hung_up;
    if !hung_up && core.pause_reading(key) {
        return false;
    }
    loop {
        let held = core.take_pending(key, buf);
        let space = buf.len() - held;
        let Some(socket) = core.io_mut(key) else {
            return false;
        };
        match socket.stream.read(&mut buf[held..]) {
            Ok(0) => {
                core.eof(key);
                return false;
            }
            Ok(n) => {
                // With edge-triggered readiness a short read means the socket is
                // drained for now: new bytes will raise a new event.
                let more = n == space || socket.read_to_eagain || hung_up;
                core.received(key, &mut buf[..held + n]);
                return more && !core.is_done(key);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.read_to_eagain = false;
                core.restore_pending(key, &buf[..held]);
                return false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                core.restore_pending(key, &buf[..held]);
            }
            Err(_) => {
                core.eof(key);
                return false;
            }
        }
    }
}
