//! # wavecore
//!
//! A WebSocket (RFC 6455) server framework: one event loop per core (mio), zero-copy
//! frame parsing in the reactor's read buffer, SIMD unmasking and UTF-8 validation, and
//! cheap broadcast (a message published to a topic is encoded once and the same bytes
//! go to every subscriber).
//!
//! An application implements two traits and starts a server:
//!
//! * [`Service`]: shared by every reactor thread; decides each upgrade request (path,
//!   query, headers, Origin, subprotocols: accept with a handler, or refuse with an
//!   HTTP status) and answers plain HTTP requests on the same port.
//! * [`Handler`]: one connection's state and callbacks (`on_open`, `on_message`,
//!   `on_close`, ...), called on the reactor thread that owns the connection.
//! * [`Conn`]: what a callback can do to its connection: send, ping, close, subscribe
//!   to topics, publish to them, see its backpressure.
//! * [`Message`]: a complete text (`&str`) or binary (`&[u8]`) message, borrowed from
//!   the read buffer when it arrived whole.
//! * [`Server`]: configure with [`Server::builder`] (every limit has a safe default,
//!   [`ServerConfig`]), start, join; [`ServerHandle`] queries, publishes and shuts down
//!   from any thread.
//! * [`bridge`]: topics across server processes ([`bridge::RedisBridge`]: Redis
//!   Pub/Sub), with [`ServerBuilder::bridge`].
//! * [`tls`]: `wss://` and `https://` on the same port, with rustls
//!   ([`ServerBuilder::tls_pem_files`], [`ServerBuilder::tls`]); the certificate can be
//!   replaced while the server runs ([`ServerHandle::reload_tls_pem_files`]).
//!
//! ```no_run
//! use wavecore::{Conn, Handler, Message, Server};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
//!         conn.send(message);
//!     }
//! }
//!
//! Server::builder().bind("127.0.0.1:9001").run(wavecore::accept_all(|| Echo)).unwrap();
//! ```
//!
//! [`Service`] shows routing by path, checking Origin, choosing a subprotocol and
//! refusing with a status. Then:
//!
//! * [the guide](docs::guide): from zero to the chat demo in steps, backpressure,
//!   broadcast ordering, limits as a security page, deployment;
//! * [the architecture](docs::architecture): threads, one turn of a reactor, the life
//!   of a message and of a connection;
//! * [`admission`]: limits on who may connect and how fast (per-address connections
//!   and rates, allowed Origins, trusted proxies), with [`ServerBuilder::admission`];
//! * [`channels`]: named channels with history and recovery, in memory or on Redis;
//! * [`metrics`]: what `/metrics` reports;
//! * [`protocol`]: the codec types the API hands out (the request head, deflate
//!   parameters);
//! * [`client`]: a small blocking client (tests, tools, the load generator's checks).
//!
//! Each public item has one path: the everyday types above are at the crate root, the
//! specialised ones in their module.
#![warn(missing_docs)]
// A type the public API hands out must have a public path (see `internals` for the
// hidden ones the workspace's tools use).
#![warn(unnameable_types)]
// `unsafe` lives only in `protocol` (SIMD unmasking and UTF-8 scans, each block with a
// SAFETY comment), in one FFI call, `server/allocator.rs` (glibc's `malloc_trim`), and
// in the io_uring backend's ring module, `server/driver/uring/ring.rs` (submissions that
// name memory, the provided buffers, descriptors from accept); everywhere else the
// compiler refuses it.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod client;
pub mod docs;
/// The rustls this crate is built with, for [`ServerBuilder::tls`] and
/// [`ServerHandle::set_tls_config`] configurations of a matching version.
pub use rustls;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod internals;

#[allow(unsafe_code)]
pub mod protocol;
// Private: everything an application uses is re-exported below, each at one path.
pub(crate) mod server;

pub use server::{admission, bridge, channels, metrics, tls};

pub use protocol::close::CloseCode;
pub use protocol::deflate::DeflateConfig;
pub use server::handler::{
    CloseInfo, Conn, ConnHandle, ConnId, HandleStatus, Handler, Message, PendingResponse,
    PendingUpgrade, Request, SendStatus, Service, TooLate, Upgrade, accept_all,
};
pub use server::{
    Backend, BackpressurePolicy, HttpResponse, ReactorFailure, Server, ServerBuilder, ServerConfig,
    ServerHandle, StatsSnapshot,
};
