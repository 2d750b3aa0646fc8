//! The codec types the server and client API hand out: the parsed head of an HTTP
//! request ([`RequestHead`], what [`Request`](crate::Request) dereferences to) and
//! permessage-deflate (RFC 7692) parameters ([`DeflateParams`], a client's offer as
//! [`Request::deflate_offers`](crate::Request::deflate_offers) yields it, and
//! [`ClientNegotiated`], what [`Client::deflate`](crate::client::Client::deflate)
//! settled). [`CloseCode`] and [`DeflateConfig`](crate::DeflateConfig)
//! are at the crate root, with the connection and configuration types that take them.
//!
//! Underneath, RFC 6455 (and RFC 7692) without I/O: no sockets, threads or clocks, and
//! no allocation per frame. Everything takes bytes and returns bytes and events, so it
//! can be tested, fuzzed and benchmarked without a socket:
//!
//! * `frame`: frame header decode/encode and the opcode.
//! * `mask`: in-place (un)masking, SIMD where the CPU has it.
//! * `utf8`: streaming UTF-8 validation that fails fast.
//! * `close`: close codes and close-frame payload rules.
//! * `message`: turns incoming bytes into messages and control frames.
//! * `handshake`: the HTTP/1.1 opening handshake, server and client side.
//! * `deflate`: permessage-deflate: negotiation, bounded (in)flate.
//! * `proxy`: the PROXY protocol (v1 and v2) a load balancer puts before the client's bytes.
//!
//! Those modules are the crate's own: the workspace's load generator, benchmarks and
//! fuzz targets reach the parts they drive through the hidden `wavecore::internals`
//! module, which is not a stable API.

pub(crate) mod close;
pub(crate) mod deflate;
pub(crate) mod error;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod mask;
pub(crate) mod message;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod owned_event;
pub(crate) mod proxy;
#[cfg(test)]
pub(crate) mod simd_testing;
pub(crate) mod utf8;

pub use deflate::{ClientNegotiated, DeflateParams, InflateParams, ParamsError};
pub use handshake::{RequestHead, TargetForm};

// The crate's own short paths (`crate::protocol::Decoder`, ...); public ones are above,
// at the crate root, and in `crate::internals`.
pub(crate) use close::CloseCode;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use error::ProtocolError;
pub(crate) use frame::{OpCode, Role};
pub(crate) use message::{Decoder, DecoderConfig, Event};
