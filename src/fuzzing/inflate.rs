//! permessage-deflate's receive path: arbitrary bytes as the compressed payload of a
//! message, and a compress-then-inflate round trip.

use crate::protocol::deflate::{Compressor, InflateParams};
use crate::protocol::frame::{OpCode, RSV1, encode_frame};
use crate::protocol::{CloseCode, Decoder, DecoderConfig, Event, ProtocolError, Role};

use super::Input;

/// The message size limit with option bit 0 (small, so bombs hit it quickly).
const SMALL_LIMIT: usize = 1024;

/// Treats the stream as the compressed payload of one binary message (text with option
/// bit 2), sent as masked client frames of `step` bytes (one frame when 0), and
/// decodes it as a server with permessage-deflate negotiated (client context takeover
/// with option bit 1), in one read and byte by byte. Both must agree; a message never
/// passes the limit; a failure is 1007 (not DEFLATE, or not UTF-8) or 1009 (too
/// large). Then the stream, compressed by [`Compressor`], must inflate back to itself.
pub fn inflate(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let limit = if input.option(0) {
        SMALL_LIMIT
    } else {
        1 << 20
    };
    let config = DecoderConfig {
        role: Role::Server,
        max_frame_size: 1 << 20,
        max_message_size: limit,
        allowed_rsv: 0,
        inflate: Some(InflateParams {
            no_context_takeover: !input.option(1),
            window_bits: 15,
        }),
    };
    let text = input.option(2);
    let wire = frames(text, input.stream, input.step);
    let whole = decode(config, &wire, wire.len().max(1));
    let split = decode(config, &wire, 1);
    // Invalid DEFLATE data and invalid UTF-8 may be found in either order (both 1007).
    assert_eq!(
        whole.clone().map_err(ProtocolError::close_code),
        split.map_err(ProtocolError::close_code),
        "one read and byte-by-byte reads disagree"
    );
    match &whole {
        Ok(message) => assert!(message.len() <= limit, "{} bytes inflated", message.len()),
        Err(e) => assert!(
            matches!(
                e.close_code(),
                CloseCode::INVALID_PAYLOAD | CloseCode::MESSAGE_TOO_BIG
            ),
            "{e:?}"
        ),
    }
    let mut compressed = Vec::new();
    assert!(Compressor::new(1, 15).compress(input.stream, &mut compressed));
    let wire = frames(false, &compressed, input.step);
    let config = DecoderConfig {
        max_message_size: 1 << 20,
        ..config
    };
    assert_eq!(decode(config, &wire, 7), Ok(input.stream.to_vec()));
}

/// The payload as masked client frames of `step` bytes, RSV1 on the first.
fn frames(text: bool, payload: &[u8], step: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let pieces: Vec<&[u8]> = match step {
        0 => vec![payload],
        step => payload.chunks(step).collect(),
    };
    let count = pieces.len().max(1);
    for i in 0..count {
        let piece = pieces.get(i).copied().unwrap_or_default();
        let opcode = match (i, text) {
            (0, true) => OpCode::Text,
            (0, false) => OpCode::Binary,
            _ => OpCode::Continuation,
        };
        let start = wire.len();
        encode_frame(&mut wire, i + 1 == count, opcode, piece, Some([1, 2, 3, 4]));
        if i == 0 {
            wire[start] |= RSV1 << 4;
        }
    }
    wire
}

/// Decodes `wire` in reads of `read` bytes until the first message or error.
fn decode(config: DecoderConfig, wire: &[u8], read: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut decoder = Decoder::new(config);
    let mut buf = Vec::new();
    for chunk in wire.chunks(read) {
        buf.extend_from_slice(chunk);
        // One call takes everything it can use until the message (or more is needed).
        let (used, result) = decoder.decode(&mut buf);
        match result? {
            Some(Event::Text(text)) => return Ok(text.as_bytes().to_vec()),
            Some(Event::Binary(bytes)) => return Ok(bytes.to_vec()),
            Some(_) => unreachable!("only data frames are sent"),
            None => {}
        }
        buf.drain(..used);
    }
    Ok(Vec::new())
}
