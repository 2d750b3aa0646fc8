//! # wavecore
//!
//! A high-performance WebSocket (RFC 6455) server framework: one event loop per core
//! (mio), zero-copy frame parsing in the reactor's read buffer, SIMD unmasking and
//! UTF-8 validation, and cheap broadcast (encode once, share the bytes).
//!
//! * [`Server`]: configure, start, run; [`ServerHandle`] to query, publish and shut
//!   down from any thread.
//! * [`Service`] and [`Handler`]: what an application implements; [`Conn`]: what a
//!   callback can do to its connection.
//! * [`protocol`]: RFC 6455 without I/O: frame headers, SIMD unmasking, streaming
//!   UTF-8 validation, close codes, message reassembly and the opening handshake.
//! * [`client`]: a small blocking client (tests, tools, the load generator's checks).
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
//! See `docs/architecture.md` for how the pieces fit.
#![warn(missing_docs)]
// `unsafe` lives only in `protocol` (SIMD unmasking and UTF-8 scans, each block with a
// SAFETY comment); everywhere else the compiler refuses it.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod client;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
#[allow(unsafe_code)]
pub mod protocol;
pub mod server;

pub use handler::{
    CloseInfo, Conn, ConnId, Handler, Message, Request, SendStatus, Service, Upgrade, accept_all,
};
pub use protocol::CloseCode;
pub use server::{
    BackpressurePolicy, HttpResponse, ReactorFailure, Server, ServerBuilder, ServerConfig,
    ServerHandle, StatsSnapshot,
};
