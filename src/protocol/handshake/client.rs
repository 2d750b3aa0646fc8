//! The client side: building the upgrade request and validating the answer.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::accept::{ACCEPT_KEY_LEN, accept_key_bytes};
use super::response::put_header;
use super::tokens::{has_token, str_items};

/// Header fields [`ClientHandshake::validate`] accepts in a response head.
const MAX_RESPONSE_HEADERS: usize = 64;

/// Why a server's handshake response was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The response head is not valid HTTP/1.x.
    Malformed,
    /// The bytes end before the response head does.
    Incomplete,
    /// The response head exceeds the size limit or the header-field limit.
    TooLarge,
    /// The server answered with this status instead of 101.
    Status(u16),
    /// The `Upgrade` field does not list `websocket`.
    MissingUpgrade,
    /// The `Connection` field does not list `upgrade`.
    MissingConnection,
    /// `Sec-WebSocket-Accept` is missing, repeated or does not match the key.
    BadAccept,
    /// The server chose a subprotocol the client did not offer, or several.
    UnrequestedProtocol,
    /// The server accepted extensions although the client offered none.
    UnrequestedExtension,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed handshake response"),
            Self::Incomplete => f.write_str("incomplete handshake response"),
            Self::TooLarge => f.write_str("handshake response head too large"),
            Self::Status(code) => write!(f, "server answered {code} instead of 101"),
            Self::MissingUpgrade => f.write_str("response lacks Upgrade: websocket"),
            Self::MissingConnection => f.write_str("response lacks Connection: upgrade"),
            Self::BadAccept => f.write_str("wrong or missing Sec-WebSocket-Accept"),
            Self::UnrequestedProtocol => f.write_str("server chose a subprotocol not offered"),
            Self::UnrequestedExtension => f.write_str("server chose an extension not offered"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// A client's side of one opening handshake: the random key it sent and the
/// subprotocols it offered, to check the server's response against.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    key: [u8; 24],
    accept: [u8; ACCEPT_KEY_LEN],
    protocols: Vec<String>,
    offered_extensions: bool,
}

impl ClientHandshake {
    /// Starts a handshake with a fresh random key and returns the request bytes
    /// to send: `GET <path_and_query> HTTP/1.1`, `Host`, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`,
    /// `Sec-WebSocket-Protocol` when `protocols` is not empty, then
    /// `extra_headers`.
    ///
    /// An empty path becomes `/`; spaces in it are percent-encoded and control
    /// bytes dropped. Protocols are trimmed; empty ones or ones holding a comma
    /// are skipped. CR and LF are dropped from header names and values.
    pub fn new(
        host: &str,
        path_and_query: &str,
        protocols: &[&str],
        extra_headers: &[(&str, &str)],
    ) -> (Self, Vec<u8>) {
        Self::with_nonce(
            random_nonce(),
            host,
            path_and_query,
            protocols,
            extra_headers,
        )
    }

    /// [`new`](Self::new) with a caller-chosen 16-byte nonce instead of a random
    /// one; for tests and reproducible traces only (RFC 6455 wants it random).
    pub fn with_nonce(
        nonce: [u8; 16],
        host: &str,
        path_and_query: &str,
        protocols: &[&str],
        extra_headers: &[(&str, &str)],
    ) -> (Self, Vec<u8>) {
        let mut key = [0u8; 24];
        // 16 bytes encode to exactly 24 base64 characters, so this cannot fail.
        let _ = STANDARD.encode_slice(nonce, &mut key);
        let protocols: Vec<String> = protocols
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty() && !p.contains(','))
            .map(str::to_owned)
            .collect();
        let offered_extensions = extra_headers
            .iter()
            .any(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"));
        let handshake = Self {
            key,
            accept: accept_key_bytes(&key),
            protocols,
            offered_extensions,
        };
        let request = handshake.request(host, path_and_query, extra_headers);
        (handshake, request)
    }

    /// Renders the request head.
    fn request(&self, host: &str, path_and_query: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(192 + path_and_query.len() + host.len());
        out.extend_from_slice(b"GET ");
        put_target(&mut out, path_and_query);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        put_header(&mut out, "Host", host.as_bytes());
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        put_header(&mut out, "Sec-WebSocket-Key", &self.key);
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
        if !self.protocols.is_empty() {
            put_header(
                &mut out,
                "Sec-WebSocket-Protocol",
                self.protocols.join(", ").as_bytes(),
            );
        }
        for (name, value) in extra_headers {
            put_header(&mut out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The `Sec-WebSocket-Key` this handshake sent.
    pub fn key(&self) -> &str {
        // Base64, hence ASCII; the fallback is never taken.
        std::str::from_utf8(&self.key).unwrap_or_default()
    }

    /// The subprotocols offered, in order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Validates a complete response head (bytes after it are ignored) and
    /// returns the negotiated subprotocol.
    ///
    /// Requires status 101, `Upgrade` listing `websocket`, `Connection` listing
    /// `upgrade`, exactly one `Sec-WebSocket-Accept` matching the key, at most
    /// one subprotocol and only one that was offered, and no
    /// `Sec-WebSocket-Extensions` unless the request carried that field (the
    /// extension parameters themselves are left to the caller). At most 64
    /// header fields are read.
    pub fn validate(&self, response: &[u8]) -> Result<Option<String>, HandshakeError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let parsed = parse_response(&mut slots, response)?;
        match parsed.code {
            Some(101) => {}
            Some(code) => return Err(HandshakeError::Status(code)),
            None => return Err(HandshakeError::Malformed),
        }
        let values = |name: &'static str| {
            parsed
                .headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        if !values("upgrade").any(|v| has_token(v, "websocket")) {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !values("connection").any(|v| has_token(v, "upgrade")) {
            return Err(HandshakeError::MissingConnection);
        }
        let mut accepts = values("sec-websocket-accept");
        if accepts.next() != Some(&self.accept[..]) || accepts.next().is_some() {
            return Err(HandshakeError::BadAccept);
        }
        if !self.offered_extensions && values("sec-websocket-extensions").any(|v| !v.is_empty()) {
            return Err(HandshakeError::UnrequestedExtension);
        }
        let mut chosen = values("sec-websocket-protocol");
        let Some(protocol) = chosen.next() else {
            return Ok(None);
        };
        if chosen.next().is_some() {
            return Err(HandshakeError::UnrequestedProtocol);
        }
        self.protocols
            .iter()
            .find(|offered| offered.as_bytes() == protocol)
            .map(|offered| Some(offered.clone()))
            .ok_or(HandshakeError::UnrequestedProtocol)
    }

    /// The extension elements of a response head's `Sec-WebSocket-Extensions` fields
    /// (comma-separated items of every such field, trimmed, in order), e.g. to check
    /// a `permessage-deflate` answer with
    /// [`check_response`](crate::protocol::deflate::check_response).
    ///
    /// # Errors
    ///
    /// As [`ClientHandshake::validate`] for a head that does not parse.
    pub fn response_extensions(response: &[u8]) -> Result<Vec<String>, HandshakeError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let parsed = parse_response(&mut slots, response)?;
        Ok(parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(str_items)
            .map(str::to_owned)
            .collect())
    }
}

/// Parses a complete response head into `slots` (at most [`MAX_RESPONSE_HEADERS`]
/// fields); the errors are those of [`ClientHandshake::validate`].
fn parse_response<'h, 'b>(
    slots: &'h mut [httparse::Header<'b>],
    response: &'b [u8],
) -> Result<httparse::Response<'h, 'b>, HandshakeError> {
    let mut parsed = httparse::Response::new(slots);
    match parsed.parse(response) {
        Ok(httparse::Status::Complete(_)) => Ok(parsed),
        Ok(httparse::Status::Partial) => Err(HandshakeError::Incomplete),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooLarge),
        Err(_) => Err(HandshakeError::Malformed),
    }
}

/// Appends the request target: `/` when empty, spaces as `%20`, control bytes
/// dropped.
fn put_target(out: &mut Vec<u8>, target: &str) {
    if target.is_empty() {
        out.push(b'/');
        return;
    }
    for &b in target.as_bytes() {
        match b {
            b' ' => out.extend_from_slice(b"%20"),
            0..=0x1f | 0x7f => {}
            _ => out.push(b),
        }
    }
}

/// 16 random bytes from the OS. Should the OS source fail, a hash of the time,
/// a process-wide counter and the process id stands in: unpredictable enough for
/// a handshake nonce, which only guards against caching intermediaries.
fn random_nonce() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_ok() {
        return nonce;
    }
    use sha1::{Digest, Sha1};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = Sha1::new();
    hasher.update(now.to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    let digest = hasher.finalize();
    for (dst, src) in nonce.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::super::{
        HeadReader, RequestKind, ResponseReader, accept_key, classify, write_accept_response,
    };
    use super::*;

    fn response(accept: &str, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn request_has_every_required_field() {
        let (hs, request) = ClientHandshake::with_nonce(
            *b"the sample nonce",
            "server.example.com",
            "/chat?x=1",
            &["chat", " superchat "],
            &[("Origin", "http://example.com")],
        );
        assert_eq!(hs.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            request,
            &b"GET /chat?x=1 HTTP/1.1\r\n\
               Host: server.example.com\r\n\
               Upgrade: websocket\r\n\
               Connection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Version: 13\r\n\
               Sec-WebSocket-Protocol: chat, superchat\r\n\
               Origin: http://example.com\r\n\
               \r\n"[..]
        );
    }

    #[test]
    fn keys_are_random_and_valid() {
        let (a, request) = ClientHandshake::new("h", "", &[], &[]);
        let (b, _) = ClientHandshake::new("h", "/", &[], &[]);
        assert_ne!(a.key(), b.key());
        assert!(super::super::WebSocketKey::parse(a.key().as_bytes()).is_some());
        assert!(request.starts_with(b"GET / HTTP/1.1\r\n"));
        assert!(!request.windows(22).any(|w| w == b"Sec-WebSocket-Protocol"));
    }

    #[test]
    fn target_is_sanitised() {
        let (_, request) = ClientHandshake::new("h", "/a b\r\nX: y", &[], &[]);
        assert!(request.starts_with(b"GET /a%20bX:%20y HTTP/1.1\r\nHost: h\r\n"));
    }

    #[test]
    fn validate_accepts_the_rfc_example() {
        let (hs, _) = ClientHandshake::with_nonce(*b"the sample nonce", "h", "/", &["chat"], &[]);
        let ok = response(
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "Sec-WebSocket-Protocol: chat\r\n",
        );
        assert_eq!(hs.validate(&ok), Ok(Some("chat".to_owned())));
        let ok = response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "");
        assert_eq!(hs.validate(&ok), Ok(None));
    }

    #[test]
    fn validate_rejects_each_fault() {
        let (hs, _) = ClientHandshake::with_nonce(*b"the sample nonce", "h", "/", &["chat"], &[]);
        let good = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        let cases: [(&[u8], HandshakeError); 11] = [
            (b"HTTP/1.1 200 OK\r\n\r\n", HandshakeError::Status(200)),
            (b"HTTP/1.1 101 Switching Protocols\r\n", HandshakeError::Incomplete),
            (b"HTTP/1.1 1x1 Hm\r\n\r\n", HandshakeError::Malformed),
            (
                b"HTTP/1.1 101 S\r\nConnection: upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                HandshakeError::MissingUpgrade,
            ),
            (
                b"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                HandshakeError::MissingConnection,
            ),
            (&response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo", ""), HandshakeError::BadAccept),
            (
                &response(good, &format!("Sec-WebSocket-Accept: {good}\r\n")),
                HandshakeError::BadAccept,
            ),
            (
                &response(good, "Sec-WebSocket-Protocol: superchat\r\n"),
                HandshakeError::UnrequestedProtocol,
            ),
            (
                &response(good, "Sec-WebSocket-Protocol: chat, chat\r\n"),
                HandshakeError::UnrequestedProtocol,
            ),
            (
                &response(good, "Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                HandshakeError::UnrequestedExtension,
            ),
            (
                b"HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
                HandshakeError::BadAccept,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(hs.validate(bytes), Err(expected.clone()), "{expected}");
        }
        let (plain, _) = ClientHandshake::with_nonce(*b"the sample nonce", "h", "/", &[], &[]);
        let chose = response(good, "Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            plain.validate(&chose),
            Err(HandshakeError::UnrequestedProtocol)
        );
    }

    #[test]
    fn offered_extensions_may_be_accepted() {
        let (hs, _) = ClientHandshake::with_nonce(
            *b"the sample nonce",
            "h",
            "/",
            &[],
            &[("Sec-WebSocket-Extensions", "permessage-deflate")],
        );
        let ok = response(
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        );
        assert_eq!(hs.validate(&ok), Ok(None));
    }

    #[test]
    fn too_many_response_headers() {
        let (hs, _) = ClientHandshake::with_nonce(*b"the sample nonce", "h", "/", &[], &[]);
        let many = "X: y\r\n".repeat(70);
        let bytes = response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &many);
        assert_eq!(hs.validate(&bytes), Err(HandshakeError::TooLarge));
    }

    #[test]
    fn client_and_server_agree() {
        let (client, request) = ClientHandshake::new(
            "localhost:9001",
            "/echo?x=1",
            &["v2.wavecore", "v1.wavecore"],
            &[("Origin", "http://localhost")],
        );
        // Server: read the request in two pieces, with an early frame behind it.
        let mut wire = request.clone();
        wire.extend_from_slice(b"\x81\x80mask");
        let mut reader = HeadReader::default();
        let (first, second) = wire.split_at(10);
        assert!(reader.push(first).unwrap().is_none());
        let (head, used) = reader.push(second).unwrap().unwrap();
        assert_eq!(&second[used..], b"\x81\x80mask");
        assert_eq!(head.path(), "/echo");
        assert_eq!(head.origin(), Some("http://localhost"));
        let RequestKind::WebSocket { key } = classify(&head).unwrap() else {
            panic!("not an upgrade");
        };
        let chosen = head.protocols().find(|p| *p == "v1.wavecore");
        let mut answer = Vec::new();
        write_accept_response(&mut answer, &key, chosen, &[]);
        answer.extend_from_slice(b"\x81\x02hi");
        // Client: read the response head, then validate it.
        let mut response_reader = ResponseReader::default();
        let mut total = 0;
        let mut done = None;
        for piece in answer.chunks(7) {
            if let Some(used) = response_reader.push(piece).unwrap() {
                done = Some(total + used);
                break;
            }
            total += piece.len();
        }
        let head_len = done.unwrap();
        assert_eq!(&answer[head_len..], b"\x81\x02hi");
        let head = response_reader.head().unwrap();
        assert_eq!(client.validate(head), Ok(Some("v1.wavecore".to_owned())));
        assert_eq!(
            accept_key(client.key().as_bytes()),
            key.accept().map(char::from).iter().collect::<String>()
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_responses_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            chunk in 1usize..40,
        ) {
            let (hs, _) = ClientHandshake::new("h", "/", &["chat"], &[]);
            let _ = hs.validate(&bytes);
            let mut reader = ResponseReader::new(256);
            for piece in bytes.chunks(chunk) {
                match reader.push(piece) {
                    Ok(Some(used)) => {
                        proptest::prop_assert!(used <= piece.len());
                        let _ = hs.validate(reader.head().unwrap_or_default());
                        break;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn accept_key_matches_tungstenite() {
        for _ in 0..32 {
            let key = tungstenite::handshake::client::generate_key();
            assert_eq!(
                accept_key(key.as_bytes()),
                tungstenite::handshake::derive_accept_key(key.as_bytes())
            );
        }
    }
}
