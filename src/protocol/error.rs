//! Protocol violations and the close code each one maps to.

use super::close::CloseCode;

/// A violation of RFC 6455 by the peer (or a limit it ran into).
///
/// Every variant maps to the close code the connection must be failed with
/// ([`ProtocolError::close_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Opcode 3-7 or 11-15.
    ReservedOpcode(u8),
    /// An RSV bit set that no negotiated extension defines.
    ReservedBits,
    /// A control frame (close, ping, pong) without FIN.
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload.
    ControlTooLong,
    /// A 64-bit payload length with its most significant bit set.
    LengthTopBit,
    /// A client frame without a mask (decoded on the server side).
    UnmaskedFrame,
    /// A server frame with a mask (decoded on the client side).
    MaskedFrame,
    /// A continuation frame with no message to continue.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still open.
    ExpectedContinuation,
    /// A frame larger than the configured maximum frame size.
    FrameTooLarge,
    /// A message larger than the configured maximum message size.
    MessageTooLarge,
    /// A text message (or close reason) that is not valid UTF-8.
    InvalidUtf8,
    /// A close frame whose payload is one byte long.
    InvalidClosePayload,
    /// A close frame with a code that is never valid on the wire.
    InvalidCloseCode(u16),
    /// A control frame with RSV1 set while permessage-deflate is negotiated: control
    /// frames are never compressed (RFC 7692 section 6.1).
    CompressedControl,
    /// A continuation frame with RSV1 set: only a message's first frame carries it
    /// (RFC 7692 section 6.1).
    CompressedContinuation,
    /// A compressed message whose payload is not valid DEFLATE data (RFC 7692
    /// section 7.2.2). RFC 7692 names no close code; this fails with 1007 (Invalid
    /// Frame Payload Data, RFC 6455 section 7.4.1): the frames were well formed, but
    /// the message's data is not what its framing (RSV1: "DEFLATE") says, the same
    /// kind of fault as text that is not UTF-8. Node's `ws` makes the same choice.
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code to fail the connection with.
    pub const fn close_code(self) -> CloseCode {
        match self {
            Self::FrameTooLarge | Self::MessageTooLarge => CloseCode::MESSAGE_TOO_BIG,
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short human-readable reason, fit for a close frame.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::ReservedOpcode(_) => "reserved opcode",
            Self::ReservedBits => "reserved bits set",
            Self::FragmentedControl => "fragmented control frame",
            Self::ControlTooLong => "control frame too long",
            Self::LengthTopBit => "invalid payload length",
            Self::UnmaskedFrame => "client frame not masked",
            Self::MaskedFrame => "server frame masked",
            Self::UnexpectedContinuation => "continuation without a message",
            Self::ExpectedContinuation => "expected a continuation frame",
            Self::FrameTooLarge => "frame too large",
            Self::MessageTooLarge => "message too large",
            Self::InvalidUtf8 => "invalid UTF-8",
            Self::InvalidClosePayload => "invalid close payload",
            Self::InvalidCloseCode(_) => "invalid close code",
            Self::CompressedControl => "compressed control frame",
            Self::CompressedContinuation => "RSV1 on a continuation frame",
            Self::InvalidCompressedData => "invalid compressed data",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for ProtocolError {}
