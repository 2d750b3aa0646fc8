//! The request head reader with `classify`, and the client's response reader with
//! its handshake check.

use crate::protocol::handshake::{
    ClientHandshake, HandshakeError, HandshakeLimits, HeadReader, Refusal, RequestKind,
    ResponseReader, classify, request_body, write_accept_response,
};

use super::Input;

/// The nonce of RFC 6455's example: key `dGhlIHNhbXBsZSBub25jZQ==`, accept
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`, so seeds can hold a response that validates.
const RFC_NONCE: [u8; 16] = *b"the sample nonce";

/// What reading a request head came to: the head's bytes and where it ended in the
/// stream, a refusal, or not enough bytes.
type HeadOutcome = Result<Option<(Vec<u8>, usize)>, Refusal>;

/// Reads a request head from the stream of `data`, in one read and in the reads its
/// first byte asks for (both must agree), then classifies it and writes the answer:
/// a 101 or a refusal, which must be a well-formed response. Option bit 0 limits the
/// head to 256 bytes, bit 1 to 4 header fields.
pub fn request_head(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let limits = HandshakeLimits {
        max_header_bytes: if input.option(0) { 256 } else { 8192 },
        max_headers: if input.option(1) { 4 } else { 64 },
    };
    let whole = read_head(limits, &[input.stream]);
    let split = read_head(limits, &input.reads());
    assert_eq!(
        whole,
        split,
        "one read and {} reads disagree",
        input.reads().len()
    );

    let mut reader = HeadReader::new(limits);
    let head = match reader.push(input.stream) {
        Ok(Some((head, _))) => head,
        Ok(None) => return,
        Err(refusal) => return check_refusal(&refusal),
    };
    // Everything a Service may look at.
    let _ = (
        head.method(),
        head.target(),
        head.target_form(),
        head.path(),
    );
    let _ = (
        head.query(),
        head.authority(),
        head.origin(),
        head.version_minor(),
    );
    let _ = (head.protocols().count(), head.extensions().count());
    assert_eq!(head.headers().count(), head.header_count());
    assert!(head.header_count() <= limits.max_headers);
    let _ = request_body(&head);
    match classify(&head) {
        Ok(RequestKind::WebSocket { key }) => {
            let mut response = Vec::new();
            write_accept_response(&mut response, &key, head.protocols().next(), &[]);
            let mut reader = ResponseReader::default();
            assert_eq!(reader.push(&response), Ok(Some(response.len())));
        }
        Ok(RequestKind::Http) => {}
        Err(refusal) => check_refusal(&refusal),
    }
}

/// Pushes `reads` until the head is complete or refused.
fn read_head(limits: HandshakeLimits, reads: &[&[u8]]) -> HeadOutcome {
    let mut reader = HeadReader::new(limits);
    let mut before = 0;
    for read in reads {
        if let Some((head, used)) = reader.push(read)? {
            assert!(used <= read.len());
            assert!(head.raw().len() <= limits.max_header_bytes);
            return Ok(Some((head.raw().to_vec(), before + used)));
        }
        before += read.len();
    }
    Ok(None)
}

/// A refusal's response: one status line with its status, `Content-Length` equal to
/// the body (the reason), and nothing after.
fn check_refusal(refusal: &Refusal) {
    let mut out = Vec::new();
    refusal.write(&mut out);
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(head_len)) = response.parse(&out) else {
        panic!("refusal {refusal}: not a complete response head");
    };
    assert_eq!(response.code, Some(refusal.status));
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        });
    assert_eq!(length, Some(out.len() - head_len));
    assert_eq!(&out[head_len..], refusal.reason.as_bytes());
}

/// What reading and checking a response came to.
type ResponseOutcome =
    Result<Option<(usize, Result<Option<String>, HandshakeError>)>, HandshakeError>;

/// Reads a response head from the stream of `data` as the client does, in one read
/// and in the reads its first byte asks for (both must agree), and checks it against
/// an RFC-nonce handshake that offered subprotocol `chat`. Option bit 0 limits the
/// head to 64 bytes.
pub fn response_head(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let max = if input.option(0) { 64 } else { 8192 };
    let whole = read_response(max, &[input.stream]);
    let split = read_response(max, &input.reads());
    assert_eq!(
        whole,
        split,
        "one read and {} reads disagree",
        input.reads().len()
    );
    if let Ok(Some((_, Ok(protocol)))) = whole {
        assert!(
            protocol.is_none_or(|p| p == "chat"),
            "an unoffered protocol"
        );
    }
}

fn read_response(max: usize, reads: &[&[u8]]) -> ResponseOutcome {
    let (client, _) = ClientHandshake::with_nonce(RFC_NONCE, "localhost", "/", &["chat"], &[]);
    let mut reader = ResponseReader::new(max);
    let mut before = 0;
    for read in reads {
        if let Some(used) = reader.push(read)? {
            assert!(used <= read.len());
            let head = reader.head().expect("a complete head");
            assert!(head.len() <= max);
            return Ok(Some((before + used, client.validate(head))));
        }
        before += read.len();
    }
    Ok(None)
}
