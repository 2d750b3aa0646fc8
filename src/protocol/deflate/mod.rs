//! permessage-deflate (RFC 7692) without I/O: negotiation, and bounded streaming
//! compression and decompression of messages.
//!
//! * [`params`]: one `permessage-deflate` element of `Sec-WebSocket-Extensions`,
//!   parsed and checked ([`DeflateParams`]).
//! * [`negotiate`]: the server's choice among offers ([`DeflateConfig::accept`]) and
//!   the client's check of the answer ([`check_response`]).
//! * [`inflate`]: [`Inflater`], inflating a message as its bytes arrive, never past
//!   the message size limit.
//! * [`compress`]: [`Compressor`], one message at a time, context reset after each.
//! * [`pool`]: the per-thread compressors and inflaters connections share.
//!
//! The library is `flate2` on its `zlib-rs` backend (zlib's algorithms in Rust): raw
//! DEFLATE with a chosen window (9 to 15 bits) and sync flush, which RFC 7692 needs.
//!
//! The [`Decoder`](crate::protocol::Decoder) inflates messages whose first frame has
//! RSV1 set once [`DecoderConfig::inflate`](crate::protocol::DecoderConfig::inflate) is
//! set; invalid DEFLATE data fails the connection with 1007 (see
//! [`ProtocolError::InvalidCompressedData`](crate::protocol::ProtocolError::InvalidCompressedData)).
//!
//! # Example: RFC 7692 section 7.2.3.1
//!
//! ```
//! use wavecore::internals::deflate::{Compressor, Inflater};
//!
//! let mut out = Vec::new();
//! assert!(Compressor::new(6, 15).compress(b"Hello", &mut out));
//! let mut inflated = Vec::new();
//! let mut inflater = Inflater::new(15);
//! inflater.inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut inflated, 1024, &mut |_| Ok(()))?;
//! inflater.finish(&mut inflated, 1024, &mut |_| Ok(()))?;
//! assert_eq!(inflated, b"Hello");
//! # Ok::<(), wavecore::internals::ProtocolError>(())
//! ```

pub mod compress;
pub mod inflate;
pub mod negotiate;
pub mod params;
pub mod pool;

pub use compress::Compressor;
pub use inflate::Inflater;
pub use negotiate::{ClientNegotiated, DeflateConfig, InflateParams, check_response, client_offer};
pub use params::{DeflateParams, ParamsError};

#[cfg(test)]
mod tests;
