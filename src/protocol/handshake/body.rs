//! What a request head says about the message body after it (RFC 9112 section 6).

use super::refusal::Refusal;
use super::request::RequestHead;

/// The body a request head announces (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body: neither `Content-Length` nor `Transfer-Encoding`, or
    /// `Content-Length: 0`. Bytes after the head belong to what comes next.
    Empty,
    /// `Content-Length` bytes, more than zero.
    Length(u64),
    /// A `Transfer-Encoding` (`chunked` or any other): the length is known only by
    /// decoding the body.
    Encoded,
}

/// Reads the body framing of `head`.
///
/// Refuses with `400` what could be read two ways (the request smuggling shapes
/// RFC 9112 sections 6.3 and 11.2 warn of): a `Content-Length` that is not one
/// decimal number fitting in 64 bits, more than one `Content-Length` field (even
/// with equal values, or a list such as `5, 5`), and `Content-Length` together
/// with `Transfer-Encoding`.
pub fn request_body(head: &RequestHead) -> Result<RequestBody, Refusal> {
    let mut lengths = head.header_values("content-length");
    let length = lengths.next();
    if lengths.next().is_some() {
        return Err(Refusal::bad_request("duplicate Content-Length"));
    }
    let encoded = head.header("transfer-encoding").is_some();
    match (length, encoded) {
        (Some(_), true) => Err(Refusal::bad_request(
            "both Transfer-Encoding and Content-Length",
        )),
        (None, true) => Ok(RequestBody::Encoded),
        (None, false) => Ok(RequestBody::Empty),
        (Some(value), false) => match parse_length(value) {
            Some(0) => Ok(RequestBody::Empty),
            Some(n) => Ok(RequestBody::Length(n)),
            None => Err(Refusal::bad_request("invalid Content-Length")),
        },
    }
}

/// `1*DIGIT` as a `u64`; `None` for anything else (signs, spaces, lists, overflow).
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::super::HandshakeLimits;
    use super::*;

    fn body(fields: &str) -> Result<RequestBody, Refusal> {
        let text = format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        request_body(
            &RequestHead::from_bytes(text.as_bytes(), &HandshakeLimits::default()).unwrap(),
        )
    }

    fn reason(fields: &str) -> String {
        let refusal = body(fields).unwrap_err();
        assert_eq!(refusal.status, 400, "{fields}");
        refusal.reason.into_owned()
    }

    #[test]
    fn no_body_or_an_empty_one() {
        assert_eq!(body(""), Ok(RequestBody::Empty));
        assert_eq!(body("Content-Length: 0\r\n"), Ok(RequestBody::Empty));
        assert_eq!(body("Content-Length: 000\r\n"), Ok(RequestBody::Empty));
    }

    #[test]
    fn lengths_and_encodings() {
        assert_eq!(body("Content-Length: 14\r\n"), Ok(RequestBody::Length(14)));
        assert_eq!(
            body("content-length: 18446744073709551615\r\n"),
            Ok(RequestBody::Length(u64::MAX))
        );
        for te in ["chunked", "gzip, chunked", "identity", ""] {
            let fields = format!("Transfer-Encoding: {te}\r\n");
            assert_eq!(body(&fields), Ok(RequestBody::Encoded), "{te}");
        }
    }

    #[test]
    fn ambiguous_framing_is_400() {
        for value in [
            "abc",
            "-1",
            "+1",
            "1 2",
            "1, 1",
            "0x10",
            "18446744073709551616",
            "",
        ] {
            let fields = format!("Content-Length: {value}\r\n");
            assert_eq!(reason(&fields), "invalid Content-Length", "{value}");
        }
        assert_eq!(
            reason("Content-Length: 5\r\nContent-Length: 5\r\n"),
            "duplicate Content-Length"
        );
        assert_eq!(
            reason("Content-Length: 5\r\nContent-Length: 6\r\n"),
            "duplicate Content-Length"
        );
        assert_eq!(
            reason("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"),
            "both Transfer-Encoding and Content-Length"
        );
    }
}
