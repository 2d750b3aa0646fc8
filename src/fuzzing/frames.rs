//! The frame decoder, fed whole and in reads.

use crate::protocol::owned_event::OwnedEvent as Owned;
use crate::protocol::{Decoder, DecoderConfig, Event, ProtocolError, Role};

use super::Input;

/// The most bytes the decoder may leave with its caller between reads: a partial
/// header (14 bytes) or a partial control frame (131 bytes).
const MAX_LEFTOVER: usize = 131;

/// Decodes the stream of `data` in `role`, once in one read and once in the reads
/// its first byte asks for, and checks both give the same events and outcome.
/// Option bit 0 picks small limits (64-byte frames, 256-byte messages); bits 4-6
/// are the RSV bits an extension would have allowed.
pub fn frames(role: Role, data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let (max_frame_size, max_message_size) = if input.option(0) {
        (64, 256)
    } else {
        (1 << 20, 1 << 20)
    };
    let config = DecoderConfig {
        role,
        max_frame_size,
        max_message_size,
        allowed_rsv: (input.options >> 4) & 0b111,
        inflate: None,
    };
    let whole = decode(config, &[input.stream]);
    let split = decode(config, &input.reads());
    assert_eq!(
        whole,
        split,
        "one read and {} reads disagree",
        input.reads().len()
    );
}

/// Feeds `reads` as a connection would: leftover bytes go in front of the next read.
fn decode(config: DecoderConfig, reads: &[&[u8]]) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(config);
    let mut events = Vec::new();
    let mut leftover = Vec::new();
    for read in reads {
        let mut buf = std::mem::take(&mut leftover);
        buf.extend_from_slice(read);
        let mut pos = 0;
        loop {
            let (used, result) = decoder.decode(&mut buf[pos..]);
            pos += used;
            match result {
                Ok(Some(event)) => events.push(check(event, &config)),
                Ok(None) => {
                    decoder.release();
                    leftover = buf[pos..].to_vec();
                    assert!(leftover.len() <= MAX_LEFTOVER, "{} left", leftover.len());
                    break;
                }
                Err(error) => return (events, Some(error)),
            }
        }
    }
    (events, None)
}

/// Checks what any event must be, and returns it owned.
fn check(event: Event<'_>, config: &DecoderConfig) -> Owned {
    match event {
        Event::Text(text) => {
            // The decoder vouches for UTF-8 without a second look (`unsafe`): look.
            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
            assert!(text.len() <= config.max_message_size);
            Owned::Text(text.to_owned())
        }
        Event::Binary(bytes) => {
            assert!(bytes.len() <= config.max_message_size);
            Owned::Binary(bytes.to_vec())
        }
        Event::Ping(payload) => {
            assert!(payload.len() <= 125);
            Owned::Ping(payload.to_vec())
        }
        Event::Pong(payload) => {
            assert!(payload.len() <= 125);
            Owned::Pong(payload.to_vec())
        }
        Event::Close(frame) => Owned::Close(frame.map(|f| {
            assert!(f.code.is_valid_on_wire(), "{:?}", f.code);
            assert!(f.reason.len() <= 123);
            (f.code.0, f.reason.to_owned())
        })),
    }
}
