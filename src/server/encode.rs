//! Server frames as bytes: encoded into a buffer (the cork, a turn batch), into a
//! shared buffer of their own (queues, broadcast), and compressed first when the
//! connection negotiated permessage-deflate (RFC 7692).

use bytes::Bytes;

use crate::protocol::deflate::{DeflateConfig, pool};
use crate::protocol::frame::{MAX_HEADER_LEN, OpCode, RSV1, encode_header};

/// A compression scratch buffer larger than this is not kept after use (bytes).
const MAX_KEPT_SCRATCH: usize = 256 << 10;

/// Appends an unmasked server frame to `out`.
pub(crate) fn encode_into(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    encode_frame_into(out, opcode, payload, false);
}

/// Appends an unmasked server frame to `out`, with RSV1 set when `compressed` (the
/// payload is a permessage-deflate message, RFC 7692 section 6).
pub(crate) fn encode_frame_into(
    out: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
    compressed: bool,
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, true, opcode, payload.len() as u64, None);
    if compressed {
        header[0] |= RSV1 << 4;
    }
    out.reserve(n + payload.len());
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
}

/// An unmasked server frame in its own shared buffer (for queues and broadcast).
pub(crate) fn encode_shared(opcode: OpCode, payload: &[u8]) -> Bytes {
    encode_shared_frame(opcode, payload, false)
}

/// [`encode_frame_into`] into a buffer of its own.
pub(crate) fn encode_shared_frame(opcode: OpCode, payload: &[u8], compressed: bool) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 10);
    encode_frame_into(&mut out, opcode, payload, compressed);
    Bytes::from(out)
}

/// Compresses `payload` into `scratch` (cleared first) for a connection that
/// negotiated permessage-deflate with windows up to `window` bits, if `config` says
/// it is worth it: at least `min_message_size` bytes, and smaller once compressed.
/// Returns whether `scratch` holds the compressed payload to send (RSV1 set);
/// otherwise the message goes out as it is.
pub(crate) fn deflate_message(
    scratch: &mut Vec<u8>,
    window: Option<u8>,
    config: Option<&DeflateConfig>,
    payload: &[u8],
) -> bool {
    let (Some(window), Some(config)) = (window, config) else {
        return false;
    };
    if payload.len() < config.min_message_size {
        return false;
    }
    if scratch.capacity() > MAX_KEPT_SCRATCH {
        *scratch = Vec::new();
    }
    scratch.clear();
    pool::compress(config.level, window, payload, scratch) && scratch.len() < payload.len()
}
