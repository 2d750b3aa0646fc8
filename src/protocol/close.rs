//! Close codes and the rules for close-frame payloads (RFC 6455 sections 5.5.1 and 7.4).

use super::error::ProtocolError;
use super::utf8;

/// The most reason bytes a close frame can carry: 125 bytes of control payload minus
/// the two-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// A close status code (RFC 6455 section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint cannot accept this kind of data.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no code was present in the close frame. Never sent on the wire.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a close frame. Never sent on the wire.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message broke the endpoint's policy (also: backpressure limit reached).
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a frame or message was larger than the endpoint accepts.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition (a handler panicked).
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (temporary overload).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response upstream.
    pub const BAD_GATEWAY: Self = Self(1014);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Valid: 1000-1003, 1007-1014 (the IANA-registered ones), and 3000-4999 (for
    /// libraries, frameworks and applications). Never valid: below 1000, 1004-1006,
    /// 1015, 1016-2999 and 5000 and above.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A parsed close frame: its code and its reason, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code.
    pub code: CloseCode,
    /// The reason, valid UTF-8 of at most `MAX_REASON_LEN` (123) bytes.
    pub reason: &'a str,
}

/// Parses a close frame's (already unmasked) payload.
///
/// An empty payload is a close without a code (`Ok(None)`, reported to applications as
/// 1005). A one-byte payload or a code that is not valid on the wire is a protocol error
/// (1002); a reason that is not UTF-8 is 1007.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame<'_>>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = utf8::validate(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(CloseFrame { code, reason }))
        }
    }
}

/// Writes a close payload (code and reason) into `out`, returning the bytes used.
///
/// The reason is cut to [`MAX_REASON_LEN`] bytes, at a character boundary so it stays
/// valid UTF-8. A code that is not valid on the wire (1005, 1006, ...) gives an empty
/// payload, which the peer reads as "no status".
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut [u8; 125]) -> usize {
    if !code.is_valid_on_wire() {
        return 0;
    }
    let reason = truncate_reason(reason);
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    2 + reason.len()
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes at a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_of_every_code() {
        for code in 0..=u16::MAX {
            let valid = CloseCode(code).is_valid_on_wire();
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(valid, expected, "code {code}");
        }
        for never in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(never).is_valid_on_wire(), "{never}");
        }
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_valid_on_wire(), "{ok}");
        }
    }

    #[test]
    fn empty_payload_is_no_status() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn one_byte_payload_is_invalid() {
        assert_eq!(
            parse_close_payload(&[3]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            ProtocolError::InvalidClosePayload.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    #[test]
    fn code_and_reason() {
        let frame = parse_close_payload(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!(frame.code, CloseCode::NORMAL);
        assert_eq!(frame.reason, "bye");
        let frame = parse_close_payload(b"\x0f\xa0").unwrap().unwrap();
        assert_eq!(frame.code, CloseCode(4000));
        assert_eq!(frame.reason, "");
    }

    #[test]
    fn invalid_codes_are_protocol_errors() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            let err = parse_close_payload(&code.to_be_bytes()).unwrap_err();
            assert_eq!(err, ProtocolError::InvalidCloseCode(code));
            assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn invalid_utf8_reason_is_1007() {
        let err = parse_close_payload(b"\x03\xe8\xce\xba\xed\xa0\x80").unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn encode_round_trips_and_truncates_at_char_boundary() {
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode(4001), "bye", &mut out);
        assert_eq!(&out[..n], b"\x0f\xa1bye");
        let long = "é".repeat(100); // 200 bytes
        let n = encode_close_payload(CloseCode::NORMAL, &long, &mut out);
        assert!(n <= 125);
        let frame = parse_close_payload(&out[..n]).unwrap().unwrap();
        assert_eq!(frame.reason.len(), 122);
        assert_eq!(encode_close_payload(CloseCode::NO_STATUS, "x", &mut out), 0);
    }
}
