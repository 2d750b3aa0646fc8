//! The envelope a topic message travels in between server processes: who published it,
//! its place in that publisher's sequence for the topic, when, and the WebSocket frame
//! the publishing server encoded (so the receiving servers share those bytes as they
//! are, without encoding again).
//!
//! Layout (integers little-endian), [`HEADER_LEN`] bytes and then the frame:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `WCB1` (wavecore bridge, version 1) |
//! | 4..12 | node id of the publishing server |
//! | 12..16 | numbering epoch (see `sequence.rs`) |
//! | 16..24 | sequence number within (node, topic, epoch), from 1 |
//! | 24..32 | when the publishing server handed it to its bridge, microseconds since the Unix epoch |
//! | 32.. | one final, unmasked text or binary frame (RFC 6455 section 5.2), nothing after it |
//!
//! The topic is the transport's business (a Redis channel name, for one).

use std::fmt;
use std::io::{self, Write};

use bytes::Bytes;

use crate::protocol::frame::{OpCode, Role, decode_header};

/// Bytes before the frame.
pub(crate) const HEADER_LEN: usize = 32;

const MAGIC: [u8; 4] = *b"WCB1";

/// The fields before the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub node: u64,
    pub epoch: u32,
    pub seq: u64,
    /// Microseconds since the Unix epoch.
    pub sent_at: u64,
}

impl Header {
    /// Writes the header and then `frame`.
    pub fn write(&self, frame: &[u8], out: &mut impl Write) -> io::Result<()> {
        let mut head = [0u8; HEADER_LEN];
        head[0..4].copy_from_slice(&MAGIC);
        head[4..12].copy_from_slice(&self.node.to_le_bytes());
        head[12..16].copy_from_slice(&self.epoch.to_le_bytes());
        head[16..24].copy_from_slice(&self.seq.to_le_bytes());
        head[24..32].copy_from_slice(&self.sent_at.to_le_bytes());
        out.write_all(&head)?;
        out.write_all(frame)
    }

    /// Reads the header of an envelope (the frame is not looked at).
    pub fn read(envelope: &[u8]) -> Result<Self, Invalid> {
        let head = envelope.get(..HEADER_LEN).ok_or(Invalid::Short)?;
        if head[0..4] != MAGIC {
            return Err(Invalid::Magic);
        }
        let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8"));
        Ok(Self {
            node: u64_at(4),
            epoch: u32::from_le_bytes(head[12..16].try_into().expect("4")),
            seq: u64_at(16),
            sent_at: u64_at(24),
        })
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Shorter than a header.
    Short,
    /// Not a wavecore envelope (or another version of it).
    Magic,
    /// The frame is not one whole, final, unmasked text or binary frame without RSV
    /// bits, or something follows it.
    Frame,
    /// A text frame whose payload is not UTF-8.
    Utf8,
    /// The payload is larger than this server's bridge accepts.
    TooLarge,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::Short => "shorter than an envelope header",
            Invalid::Magic => "not a wavecore bridge envelope (magic WCB1)",
            Invalid::Frame => "not one final unmasked text or binary frame",
            Invalid::Utf8 => "a text frame that is not UTF-8",
            Invalid::TooLarge => "larger than this server's bridge max_message_size",
        })
    }
}

/// Checks the frame that follows the header of `envelope` and returns it, sharing
/// `envelope`'s memory: what a subscriber's socket gets, so it is checked as strictly
/// as a client's frame would be.
pub(crate) fn frame(envelope: &Bytes, max_payload: usize) -> Result<Bytes, Invalid> {
    let frame = envelope.get(HEADER_LEN..).ok_or(Invalid::Short)?;
    let header = decode_header(frame, Role::Client, 0)
        .map_err(|_| Invalid::Frame)?
        .ok_or(Invalid::Frame)?;
    let whole = header.header_len as u64 + header.payload_len == frame.len() as u64;
    if !header.fin || !whole || !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
        return Err(Invalid::Frame);
    }
    if header.payload_len > max_payload as u64 {
        return Err(Invalid::TooLarge);
    }
    let payload = &frame[header.header_len as usize..];
    if header.opcode == OpCode::Text && simdutf8::basic::from_utf8(payload).is_err() {
        return Err(Invalid::Utf8);
    }
    Ok(envelope.slice(HEADER_LEN..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::encode::encode_shared;

    fn envelope(frame: &[u8]) -> Bytes {
        let header = Header {
            node: 7,
            epoch: 2,
            seq: 41,
            sent_at: 1_700_000_000_000_000,
        };
        let mut out = Vec::new();
        header.write(frame, &mut out).unwrap();
        Bytes::from(out)
    }

    #[test]
    fn round_trip_shares_the_frame() {
        let frame = encode_shared(OpCode::Text, "héllo".as_bytes());
        let bytes = envelope(&frame);
        let header = Header::read(&bytes).unwrap();
        assert_eq!((header.node, header.epoch, header.seq), (7, 2, 41));
        assert_eq!(header.sent_at, 1_700_000_000_000_000);
        let got = super::frame(&bytes, 1024).unwrap();
        assert_eq!(got, frame);
        assert_eq!(got.as_ptr(), bytes[HEADER_LEN..].as_ptr(), "no copy");
    }

    #[test]
    fn refuses_what_a_subscriber_must_not_get() {
        assert_eq!(Header::read(b"WCB1"), Err(Invalid::Short));
        assert_eq!(Header::read(&[0u8; 40]), Err(Invalid::Magic));
        let text = encode_shared(OpCode::Text, b"abc");
        let mut trailing = text.to_vec();
        trailing.push(0);
        assert_eq!(frame(&envelope(&trailing), 1024), Err(Invalid::Frame));
        assert_eq!(frame(&envelope(&text[..4]), 1024), Err(Invalid::Frame));
        let ping = encode_shared(OpCode::Ping, b"abc");
        assert_eq!(frame(&envelope(&ping), 1024), Err(Invalid::Frame));
        let mut unfinished = text.to_vec();
        unfinished[0] &= 0x7F;
        assert_eq!(frame(&envelope(&unfinished), 1024), Err(Invalid::Frame));
        let masked = [0x81, 0x80 | 1, 1, 2, 3, 4, b'a'];
        assert_eq!(frame(&envelope(&masked), 1024), Err(Invalid::Frame));
        let bad_utf8 = encode_shared(OpCode::Text, &[0xC3, 0x28]);
        assert_eq!(frame(&envelope(&bad_utf8), 1024), Err(Invalid::Utf8));
        let binary = encode_shared(OpCode::Binary, &[0xC3, 0x28]);
        assert!(frame(&envelope(&binary), 1024).is_ok());
        assert_eq!(frame(&envelope(&binary), 1), Err(Invalid::TooLarge));
    }
}
