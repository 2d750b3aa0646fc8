//! Binding the listening socket(s) of one server.
//!
//! # The choice
//!
//! Two things are wanted at once: the reactors of one server must share the accepts,
//! and a second server (another process, or another `Server` in this one) must not be
//! able to start on an address in use and silently take half the clients.
//!
//! `SO_REUSEPORT` on one socket per reactor gives the first (the kernel hashes each new
//! connection to one of the sockets) but not the second: any socket of the same
//! effective user that also sets `SO_REUSEPORT` joins the group, and nothing lets the
//! first server keep it out. A bind probe without `SO_REUSEPORT` before joining is
//! racy, and does not stop a later `SO_REUSEPORT` socket either.
//!
//! So by default a server binds **one** socket without `SO_REUSEPORT`, which the kernel
//! claims exclusively at `bind` (a second bind gets `EADDRINUSE`, with or without
//! `SO_REUSEPORT`), and every reactor gets a duplicate of its descriptor (`dup`), each
//! registered with that reactor's own poll. A new connection makes the socket readable
//! for every reactor; whichever is free accepts it, and a reactor busy in a long
//! handler call never holds up accepts. The price is that an idle server wakes every
//! reactor for a new connection (all but one find nothing to accept): a few
//! microseconds per reactor per connection, never per message. (`EPOLLEXCLUSIVE` would
//! wake one, but mio does not expose it.)
//!
//! With [`ServerConfig::reuse_port`](super::ServerConfig::reuse_port) each reactor
//! binds its own `SO_REUSEPORT` socket as before, and other processes of the same user
//! that ask for it too may join the port: what a zero-downtime restart needs (start the
//! new server, then shut the old one down).
//!
//! `SO_REUSEADDR` is set on Unix in both modes: it lets a restarted server bind while
//! connections of the old one linger in `TIME_WAIT`, and on Linux it never lets two
//! listening sockets share an address.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Listen backlog of each listening socket.
const BACKLOG: i32 = 4096;

/// Binds `addr` for `workers` reactors (at least one); returns the address bound (the
/// real port when `addr` has port 0) and one non-blocking listener per reactor.
///
/// Without `reuse_port` the listeners are duplicates of one socket. With it, each is
/// its own `SO_REUSEPORT` socket (Unix only; elsewhere `ErrorKind::Unsupported`).
///
/// # Errors
///
/// `ErrorKind::AddrInUse` when another socket is listening on `addr` (with
/// `reuse_port`: one that did not set `SO_REUSEPORT`, or belongs to another user);
/// otherwise whatever `socket`, `bind`, `listen` or `dup` returned.
pub(crate) fn bind(
    addr: SocketAddr,
    workers: usize,
    reuse_port: bool,
) -> io::Result<(SocketAddr, Vec<TcpListener>)> {
    let workers = workers.max(1);
    let first = listen(addr, reuse_port)?;
    let local_addr = first.local_addr()?;
    let mut listeners = Vec::with_capacity(workers);
    listeners.push(first);
    for _ in 1..workers {
        let next = if reuse_port {
            // The others join the port the first one got (port 0 case).
            listen(local_addr, true)?
        } else {
            listeners[0].try_clone()?
        };
        listeners.push(next);
    }
    Ok((local_addr, listeners))
}

/// A non-blocking listening socket on `addr`, with `SO_REUSEADDR` (Unix) and, if
/// asked, `SO_REUSEPORT`.
fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        #[cfg(not(unix))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "reuse_port needs SO_REUSEPORT (Unix)",
        ));
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_port() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn default_listeners_share_one_socket_and_exclude_others() {
        let (addr, listeners) = bind(any_port(), 3, false).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(listeners.len(), 3);
        for listener in &listeners {
            assert_eq!(listener.local_addr().unwrap(), addr);
        }
        for reuse_port in [false, true] {
            let err = bind(addr, 1, reuse_port).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::AddrInUse,
                "reuse_port {reuse_port}"
            );
        }
        // A connection reaches the socket every listener stands for.
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listeners[2].set_nonblocking(false).unwrap();
        assert!(listeners[2].accept().is_ok());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reuse_port_groups_join_only_each_other() {
        let (addr, listeners) = bind(any_port(), 2, true).unwrap();
        assert_eq!(listeners[1].local_addr().unwrap(), addr);
        let (again, _more) = bind(addr, 2, true).unwrap();
        assert_eq!(again, addr);
        let err = bind(addr, 1, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn zero_workers_still_listen_once() {
        let (_, listeners) = bind(any_port(), 0, false).unwrap();
        assert_eq!(listeners.len(), 1);
    }
}
