//! # wavecore
//!
//! A high-performance WebSocket (RFC 6455) server framework.
//!
//! * [`protocol`]: RFC 6455 without I/O: frame headers, SIMD unmasking, streaming
//!   UTF-8 validation, close codes, message reassembly and the opening handshake.
//!
//! See `docs/architecture.md` for how the pieces fit.
#![warn(missing_docs)]

pub mod protocol;
