//! RFC 6455 (and RFC 7692) without I/O: no sockets, threads or clocks, and no allocation per frame.
//!
//! Everything here takes bytes and returns bytes and events, so it can be tested,
//! fuzzed and benchmarked without a socket.
//!
//! * [`frame`]: frame header decode/encode and [`OpCode`].
//! * [`mask`]: in-place (un)masking, SIMD where the CPU has it.
//! * [`utf8`]: streaming UTF-8 validation that fails fast.
//! * [`close`]: close codes and close-frame payload rules.
//! * [`message`]: turns incoming bytes into messages and control frames.
//! * [`handshake`]: the HTTP/1.1 opening handshake, server and client side.
//! * [`deflate`]: permessage-deflate (RFC 7692): negotiation, bounded (in)flate.
//! * [`proxy`]: the PROXY protocol (v1 and v2) a load balancer puts before the client's bytes.

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod owned_event;
pub mod proxy;
#[cfg(test)]
pub(crate) mod simd_testing;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use error::ProtocolError;
pub use frame::{FrameHeader, OpCode, Role};
pub use message::{Decoder, DecoderConfig, Event};
