//! The codec internals the workspace's own tools drive: the load generator (`load/`),
//! the criterion benchmarks (`benches/`) and the tests of `tests/` and `fuzz/`.
//!
//! Hidden from the documentation and not a stable API: these re-export parts of
//! `protocol`'s modules that an application never needs (the frame decoder and
//! encoder, the handshake readers, deflate's compressor and pool, the masking and
//! UTF-8 kernels), so that the workspace's members can import them without making
//! them part of what `wavecore` promises. Each item has this one public path; what
//! applications use is at the crate root, in [`crate::protocol`], and in the other
//! public modules.
//!
//! Always compiled (not behind a cargo feature) so that `cargo test`, `cargo bench`
//! and the load generator build with no flags, and so that `cargo check -p wavecore`
//! sees every item used.

pub use crate::protocol::close::CloseFrame;
pub use crate::protocol::error::ProtocolError;
pub use crate::protocol::frame::{OpCode, Role};
pub use crate::protocol::message::{Decoder, DecoderConfig, Event};

/// Frame encoding (RFC 6455 section 5.2).
pub mod frame {
    pub use crate::protocol::frame::{RSV1, RSV2, RSV3, encode_frame};
}

/// In-place (un)masking (RFC 6455 section 5.3): the selected SIMD path and the scalar
/// and byte-by-byte ones it is benchmarked and tested against.
pub mod mask {
    pub use crate::protocol::mask::{
        MaskFn, apply_mask, apply_mask_reference, apply_mask_scalar, simd_paths,
    };
}

/// UTF-8 validation, whole and streaming.
pub mod utf8 {
    pub use crate::protocol::utf8::{InvalidUtf8, Utf8Stream, validate};
}

/// The opening handshake's readers and writers, server and client side.
pub mod handshake {
    pub use crate::protocol::handshake::{
        ClientHandshake, HandshakeError, HandshakeLimits, HeadReader, Refusal, RequestKind,
        ResponseReader, WebSocketKey, accept_key, accept_key_bytes, classify,
        write_accept_response,
    };
}

/// permessage-deflate's compressor, inflater, client-side negotiation and the
/// per-thread pool.
pub mod deflate {
    pub use crate::protocol::deflate::{Compressor, Inflater, check_response, client_offer, pool};
}
