//! Frame headers (RFC 6455 section 5.2): decoding without copying, and encoding.
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! ```

use super::error::ProtocolError;
use super::mask::apply_mask;

/// The longest possible frame header: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// RSV1 as it sits in `FrameHeader::rsv`.
pub const RSV1: u8 = 0b100;
/// RSV2 as it sits in `FrameHeader::rsv`.
pub const RSV2: u8 = 0b010;
/// RSV3 as it sits in `FrameHeader::rsv`.
pub const RSV3: u8 = 0b001;

/// A frame's opcode. Reserved opcodes are rejected while decoding, so they have no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: the first frame of a text message.
    Text = 0x1,
    /// 0x2: the first frame of a binary message.
    Binary = 0x2,
    /// 0x8: starts or answers the closing handshake.
    Close = 0x8,
    /// 0x9: asks for a pong.
    Ping = 0x9,
    /// 0xA: answers a ping (or is sent unsolicited as a heartbeat).
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for a reserved one.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub const fn is_control(self) -> bool {
        self as u8 & 0x8 != 0
    }
}

/// Which side of the connection decodes: servers require masked frames, clients
/// require unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decoding frames a client sent (they must be masked).
    Server,
    /// Decoding frames a server sent (they must not be masked).
    Client,
}

/// A decoded frame header. Its payload follows `header_len` bytes after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whether this is the final frame of its message.
    pub fin: bool,
    /// The RSV1-3 bits, RSV1 highest ([`RSV1`], [`RSV2`], [`RSV3`]).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
    /// The header's own length in bytes (2 to 14).
    pub header_len: u8,
}

/// Decodes the frame header at the start of `buf`, without copying.
///
/// Returns `Ok(None)` when `buf` holds only part of a header ("need more bytes").
/// `allowed_rsv` holds the RSV bits that negotiated extensions define (0 when none
/// were negotiated). The checks: reserved opcodes, RSV bits, fragmented or oversized
/// control frames, a 64-bit length with the top bit set, and masking by `role`.
/// Non-minimal length encodings are accepted, as most peers do.
#[inline]
pub fn decode_header(
    buf: &[u8],
    role: Role,
    allowed_rsv: u8,
) -> Result<Option<FrameHeader>, ProtocolError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0b111;
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
    if rsv & !allowed_rsv != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    let short_len = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        if short_len as usize > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlTooLong);
        }
    }
    let (payload_len, mut pos) = match short_len {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            (u16::from_be_bytes([bytes[0], bytes[1]]) as u64, 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthTopBit);
            }
            (len, 10)
        }
        len => (len as u64, 2),
    };
    let mask = if masked {
        let Some(key) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        header_len: pos as u8,
    }))
}

/// Encodes a frame header into `out` and returns its length.
///
/// Servers pass `mask: None`; clients pass a fresh random key for every frame. RSV bits
/// are left clear. The shortest length encoding is always used.
#[inline]
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = (fin as u8) << 7 | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if payload_len < 126 {
        out[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= u16::MAX as u64 {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    };
    if let Some(key) = mask {
        out[pos..pos + 4].copy_from_slice(&key);
        pos += 4;
    }
    pos
}

/// The length of the header [`encode_header`] writes for these parameters.
pub const fn header_len(payload_len: u64, masked: bool) -> usize {
    let base = if payload_len < 126 {
        2
    } else if payload_len <= u16::MAX as u64 {
        4
    } else {
        10
    };
    if masked { base + 4 } else { base }
}

/// Appends a whole frame (header and payload, masked when `mask` is given) to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, fin, opcode, payload.len() as u64, mask);
    out.reserve(n + payload.len());
    out.extend_from_slice(&header[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_server(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        decode_header(buf, Role::Server, 0)
    }

    fn decode_client(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        decode_header(buf, Role::Client, 0)
    }

    /// RFC 6455 section 5.7: a single-frame unmasked text message "Hello".
    #[test]
    fn rfc_unmasked_hello() {
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let h = decode_client(&frame).unwrap().unwrap();
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.header_len, 2);
        // The payload is where the header says it is, and it is the RFC's "Hello".
        let start = usize::from(h.header_len);
        let payload = &frame[start..start + h.payload_len as usize];
        assert_eq!(payload, b"Hello");
        assert_eq!(
            start + payload.len(),
            frame.len(),
            "nothing after the payload"
        );
    }

    /// RFC 6455 section 5.7: a single-frame masked text message "Hello".
    #[test]
    fn rfc_masked_hello() {
        let mut frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = decode_server(&frame).unwrap().unwrap();
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.header_len, 6);
        apply_mask(&mut frame[6..], h.mask.unwrap(), 0);
        assert_eq!(&frame[6..], b"Hello");
    }

    /// RFC 6455 section 5.7: a fragmented unmasked text message "Hel" + "lo".
    #[test]
    fn rfc_fragmented_hello() {
        let first = decode_client(&[0x01, 0x03, 0x48, 0x65, 0x6c])
            .unwrap()
            .unwrap();
        assert!(!first.fin);
        assert_eq!(first.opcode, OpCode::Text);
        let second = decode_client(&[0x80, 0x02, 0x6c, 0x6f]).unwrap().unwrap();
        assert!(second.fin);
        assert_eq!(second.opcode, OpCode::Continuation);
    }

    /// RFC 6455 section 5.7: unmasked ping and masked pong with body "Hello".
    #[test]
    fn rfc_ping_pong() {
        let ping = decode_client(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
            .unwrap()
            .unwrap();
        assert_eq!(ping.opcode, OpCode::Ping);
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let pong = decode_server(&pong).unwrap().unwrap();
        assert_eq!(pong.opcode, OpCode::Pong);
        assert_eq!(pong.payload_len, 5);
    }

    /// RFC 6455 section 5.7: 256 bytes and 64 KiB binary messages in one unmasked frame.
    #[test]
    fn rfc_16_and_64_bit_lengths() {
        let h = decode_client(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, h.header_len), (256, 4));
        let h = decode_client(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, h.header_len), (65536, 10));
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(decode_server(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(decode_server(&full).unwrap().is_some());
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
            let err = decode_server(&[0x80 | op, 0x80, 0, 0, 0, 0]).unwrap_err();
            assert_eq!(err, ProtocolError::ReservedOpcode(op));
        }
    }

    #[test]
    fn rsv_bits_need_negotiation() {
        for bits in 1..8u8 {
            let frame = [0x81 | bits << 4, 0x80, 0, 0, 0, 0];
            assert_eq!(decode_server(&frame), Err(ProtocolError::ReservedBits));
            let h = decode_header(&frame, Role::Server, bits).unwrap().unwrap();
            assert_eq!(h.rsv, bits);
        }
        let rsv1 = [0x81 | 0x40, 0x80, 0, 0, 0, 0];
        assert_eq!(
            decode_header(&rsv1, Role::Server, RSV1)
                .unwrap()
                .unwrap()
                .rsv,
            RSV1
        );
    }

    #[test]
    fn control_frames_must_be_final_and_short() {
        assert_eq!(
            decode_server(&[0x09, 0x80, 0, 0, 0, 0]),
            Err(ProtocolError::FragmentedControl)
        );
        assert_eq!(
            decode_server(&[0x89, 0xFE, 0, 126]),
            Err(ProtocolError::ControlTooLong)
        );
        assert_eq!(
            decode_server(&[0x88, 0xFE]),
            Err(ProtocolError::ControlTooLong)
        );
        assert!(
            decode_server(&[0x89, 0x80 | 125, 0, 0, 0, 0])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn top_bit_of_64_bit_length() {
        let frame = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(decode_server(&frame), Err(ProtocolError::LengthTopBit));
    }

    #[test]
    fn masking_by_role() {
        assert_eq!(
            decode_server(&[0x81, 0x00]),
            Err(ProtocolError::UnmaskedFrame)
        );
        assert_eq!(
            decode_client(&[0x81, 0x80, 0, 0, 0, 0]),
            Err(ProtocolError::MaskedFrame)
        );
    }

    #[test]
    fn error_codes() {
        use crate::protocol::CloseCode;
        assert_eq!(
            ProtocolError::ReservedOpcode(3).close_code(),
            CloseCode::PROTOCOL_ERROR
        );
        assert_eq!(
            ProtocolError::FrameTooLarge.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(
            ProtocolError::InvalidUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
    }

    #[test]
    fn encoded_lengths_pick_the_shortest_form() {
        let mut out = [0u8; MAX_HEADER_LEN];
        for (len, expect) in [(0u64, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            assert_eq!(
                encode_header(&mut out, true, OpCode::Binary, len, None),
                expect
            );
            assert_eq!(header_len(len, false), expect);
            assert_eq!(
                encode_header(&mut out, true, OpCode::Binary, len, Some([1; 4])),
                expect + 4
            );
            assert_eq!(header_len(len, true), expect + 4);
        }
    }

    #[test]
    fn encode_frame_matches_rfc_example() {
        let mut out = Vec::new();
        encode_frame(
            &mut out,
            true,
            OpCode::Text,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(
            out,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        out.clear();
        encode_frame(&mut out, true, OpCode::Text, b"Hello", None);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn header_round_trip(
            fin in any::<bool>(),
            opcode in any_opcode(),
            len in prop_oneof![0u64..200, 60_000u64..70_000, 0u64..(1 << 63)],
            mask in proptest::option::of(any::<[u8; 4]>()),
        ) {
            let control = opcode.is_control();
            let len = if control { len % 126 } else { len };
            let fin = fin || control;
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = encode_header(&mut out, fin, opcode, len, mask);
            let role = if mask.is_some() { Role::Server } else { Role::Client };
            let h = decode_header(&out[..n], role, 0).unwrap().unwrap();
            prop_assert_eq!(h, FrameHeader { fin, rsv: 0, opcode, mask, payload_len: len, header_len: n as u8 });
        }

        #[test]
        fn frame_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..70_000), key in any::<[u8; 4]>()) {
            let mut out = Vec::new();
            encode_frame(&mut out, true, OpCode::Binary, &payload, Some(key));
            let h = decode_header(&out, Role::Server, 0).unwrap().unwrap();
            let body = &mut out[h.header_len as usize..];
            prop_assert_eq!(body.len() as u64, h.payload_len);
            apply_mask(body, key, 0);
            prop_assert_eq!(&*body, &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = decode_header(&bytes, Role::Server, 0);
            let _ = decode_header(&bytes, Role::Client, RSV1);
        }
    }
}
