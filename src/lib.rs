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
//! * [`server::bridge`]: topics across server processes ([`RedisBridge`]: Redis
//!   Pub/Sub), with [`ServerBuilder::bridge`].
//! * [`server::tls`]: `wss://` and `https://` on the same port, with rustls
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
//! * [`protocol`]: RFC 6455 without I/O (frame headers, SIMD unmasking, streaming
//!   UTF-8 validation, close codes, message reassembly, the opening handshake);
//! * [`client`]: a small blocking client (tests, tools, the load generator's checks).
#![warn(missing_docs)]
// `unsafe` lives only in `protocol` (SIMD unmasking and UTF-8 scans, each block with a
// SAFETY comment), in one FFI call, `server/allocator.rs` (glibc's `malloc_trim`), and
// in the io_uring driver's ring module, `server/driver/uring/ring.rs` (submissions that
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

#[allow(unsafe_code)]
pub mod protocol;
pub mod server;

#[doc(inline)]
pub use server::channels;

#[doc(inline)]
pub use protocol::CloseCode;
#[doc(inline)]
pub use protocol::deflate::{DeflateConfig, DeflateParams};
pub use server::bridge::{BridgeState, BridgeStats};
#[doc(inline)]
pub use server::handler::{
    CloseInfo, Conn, ConnHandle, ConnId, HandleStatus, Handler, Message, PendingResponse,
    PendingUpgrade, Request, SendStatus, Service, TooLate, Upgrade, accept_all,
};
#[doc(inline)]
pub use server::{
    AdmissionConfig, AllowedOrigins, Backend, BackpressurePolicy, Cidr, HttpResponse, MessageRate,
    PublishStatus, Rate, RatePolicy, ReactorFailure, RedisBridge, Server, ServerBuilder,
    ServerConfig, ServerHandle, StatsSnapshot,
};
