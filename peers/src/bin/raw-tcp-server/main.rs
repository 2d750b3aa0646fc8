//! Raw TCP peer: the ceiling no WebSocket server can pass. It speaks no HTTP
//! and no framing; `--mode echo` writes bytes back, `--mode fanout` writes them
//! to every other connection. Plain mio, one 64 KiB read buffer per loop.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod conn;
mod echo;
mod fanout;

use std::io::{self, ErrorKind};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Registry};
use wavecore_peers::Mode;

use conn::{Conn, LISTENER, Slots};

/// Size of the one read buffer each event loop reuses for every connection.
const READ_BUF: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let args = wavecore_peers::args_or_exit("raw-tcp-server", true);
    if args.mode == Mode::Fanout && args.threads > 1 {
        eprintln!("raw-tcp-server: fanout mode runs on one thread (drop --threads)");
        std::process::exit(2);
    }
    let listener = std::net::TcpListener::bind(args.addr)?;
    listener.set_nonblocking(true)?;
    wavecore_peers::announce(listener.local_addr()?);

    // Extra echo loops each poll a clone of the one listening socket; whichever
    // loop wins the accept race owns the connection.
    let mut workers = Vec::new();
    for _ in 1..args.threads {
        let clone = TcpListener::from_std(listener.try_clone()?);
        workers.push(std::thread::spawn(move || echo::run(clone)));
    }
    let listener = TcpListener::from_std(listener);
    let result = match args.mode {
        Mode::Echo => echo::run(listener),
        Mode::Fanout => fanout::run(listener),
    };
    for worker in workers {
        let _ = worker.join();
    }
    result
}

/// Creates the poller and registers `listener` on it.
fn poll_for(listener: &mut TcpListener) -> io::Result<Poll> {
    let poll = Poll::new()?;
    poll.registry()
        .register(listener, LISTENER, Interest::READABLE)?;
    Ok(poll)
}

/// Accepts every pending connection, registering each for reads and writes
/// (edge-triggered, so write readiness costs nothing while idle).
fn accept_all(listener: &TcpListener, registry: &Registry, slots: &mut Slots) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                // Nagle would only add latency to a peer that never batches.
                let _ = stream.set_nodelay(true);
                register(stream, registry, slots)?;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Running out of fds or a connection reset before accept: try later.
            Err(_) => return Ok(()),
        }
    }
}

/// Stores a new connection and registers it for read and write readiness.
fn register(stream: TcpStream, registry: &Registry, slots: &mut Slots) -> io::Result<()> {
    let token = slots.insert(Conn::new(stream));
    let conn = slots.get_mut(token).expect("just inserted");
    let interest = Interest::READABLE | Interest::WRITABLE;
    if let Err(e) = registry.register(&mut conn.stream, token, interest) {
        slots.remove(token);
        return Err(e);
    }
    Ok(())
}

/// Deregisters and drops the connection behind `token`.
fn close(token: mio::Token, registry: &Registry, slots: &mut Slots) {
    if let Some(mut conn) = slots.remove(token) {
        let _ = registry.deregister(&mut conn.stream);
    }
}
