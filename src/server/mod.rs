//! The runtime: reactor threads, sockets and time.
//!
//! [`Server::builder`] configures a server; [`ServerBuilder::start`] binds the listening
//! socket (one shared by every worker, or one `SO_REUSEPORT` socket per worker with
//! [`ServerBuilder::reuse_port`]; see `listener.rs` for why), starts one reactor thread
//! per worker, and returns a [`Server`] whose [`ServerHandle`] can be cloned and sent
//! anywhere to query, publish to, or shut down the server.

pub mod admission;
pub(crate) mod allocator;
pub mod bridge;
pub mod channels;
pub(crate) mod command;
pub(crate) mod config;
pub(crate) mod conn_api;
pub(crate) mod conn_handle;
pub(crate) mod core;
pub(crate) mod driver;
pub(crate) mod encode;
pub(crate) mod failure;
pub mod handler;
pub(crate) mod http;
pub mod metrics;
pub(crate) mod pending;
pub(crate) mod pubsub;
pub(crate) mod shared;
pub(crate) mod signals;
pub(crate) mod stats;
#[cfg(test)]
pub(crate) mod testing;
pub mod tls;

mod builder;
mod handle;

pub use builder::{Server, ServerBuilder};
pub use config::{Backend, BackpressurePolicy, ServerConfig};
pub use failure::ReactorFailure;
pub use handle::ServerHandle;
pub use http::HttpResponse;
pub use stats::StatsSnapshot;
