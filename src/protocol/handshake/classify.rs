//! Deciding what a request head asks for: a WebSocket upgrade, plain HTTP, or
//! a refusal (RFC 6455 section 4.2.1).

use std::fmt;
use std::ops::Deref;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::accept::{ACCEPT_KEY_LEN, accept_key_bytes};
use super::body::{RequestBody, request_body};
use super::refusal::Refusal;
use super::request::RequestHead;
use super::target::TargetForm;
use super::tokens::{has_token, list_items};

/// Length of a valid `Sec-WebSocket-Key`: base64 of 16 bytes.
const KEY_LEN: usize = 24;

/// A validated `Sec-WebSocket-Key`: 24 base64 characters encoding 16 bytes.
///
/// Dereferences to its ASCII bytes, ready for
/// [`write_accept_response`](super::write_accept_response).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebSocketKey([u8; KEY_LEN]);

impl WebSocketKey {
    /// Checks a header value: exactly 24 base64 characters that decode to 16
    /// bytes. `None` otherwise.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let key: [u8; KEY_LEN] = value.try_into().ok()?;
        let mut decoded = [0u8; 18];
        match STANDARD.decode_slice(key, &mut decoded) {
            Ok(16) => Some(Self(key)),
            _ => None,
        }
    }

    /// The key as sent, in ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        // Validated base64, hence ASCII; the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The `Sec-WebSocket-Accept` value answering this key.
    pub fn accept(&self) -> [u8; ACCEPT_KEY_LEN] {
        accept_key_bytes(&self.0)
    }
}

impl Deref for WebSocketKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for WebSocketKey {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebSocketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebSocketKey({:?})", self.as_str())
    }
}

impl fmt::Display for WebSocketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a well-formed request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// A valid WebSocket upgrade.
    WebSocket {
        /// The client's `Sec-WebSocket-Key`, to answer with
        /// [`write_accept_response`](super::write_accept_response).
        key: WebSocketKey,
    },
    /// Not an upgrade: plain HTTP for the HTTP hook.
    Http,
}

/// Classifies a request head.
///
/// First, for every request, the body framing is read (`request_body`): an
/// invalid or duplicated `Content-Length`, or one together with
/// `Transfer-Encoding`, is `400`.
///
/// A request whose `Upgrade` list holds `websocket` (any case) is an upgrade,
/// and must then, checked in this order: use `GET` (else `405` with
/// `Allow: GET`); be HTTP/1.1 or later (`400`); have an origin-form or
/// absolute-form target (`400` for asterisk-form and authority-form, RFC 9112
/// section 3.2); have no body (`400` for `Content-Length` above 0 or any
/// `Transfer-Encoding`, so body bytes are never read as frames); carry exactly
/// one `Host` (`400`; with an absolute-form target its value gives way to the
/// target's authority, see [`RequestHead::authority`]); list `upgrade` in
/// `Connection` (`400`); carry exactly one `Sec-WebSocket-Key` that is base64
/// of 16 bytes (`400`); and carry `Sec-WebSocket-Version: 13` (else `426`, RFC
/// 6455 section 4.4).
///
/// A `GET` that is not an upgrade but carries `Sec-WebSocket-Key` or
/// `Sec-WebSocket-Version`, or lists `upgrade` in `Connection` with no `Upgrade`
/// field at all, is a broken upgrade: `426`. Every `426` carries
/// `Upgrade: websocket` (RFC 9110 section 15.5.22), `Connection: upgrade, close`
/// and `Sec-WebSocket-Version: 13`.
///
/// An upgrade to another protocol (`Upgrade: h2c`) is plain HTTP, which may
/// ignore it (RFC 9110 section 7.8). A plain request may carry a body announced
/// by `Content-Length`: it is [`RequestKind::Http`], and the caller reads the
/// body (see `request_body`). A plain request with `Transfer-Encoding` is
/// refused: `411 Length Required` when `chunked` is the final coding (chunked
/// bodies are not decoded; RFC 9112 section 6.3 lets a server ask for a
/// `Content-Length` instead), `400` otherwise (RFC 9112 section 6.3: without
/// `chunked` last the length cannot be known). An HTTP/1.1 plain request without
/// `Host`, or any with more than one, is `400` (RFC 9112 section 3.2). A plain request with an
/// asterisk-form target that is not `OPTIONS`, or an authority-form target
/// that is not `CONNECT`, is `400` (RFC 9112 sections 3.2.3 and 3.2.4).
/// Everything else is [`RequestKind::Http`].
pub fn classify(head: &RequestHead) -> Result<RequestKind, Refusal> {
    let body = request_body(head)?;
    let fields = Fields::gather(head);
    if !fields.upgrade_websocket {
        return classify_plain(head, &fields, body);
    }
    if head.method() != "GET" {
        return Err(Refusal::method_not_allowed(
            "WebSocket upgrade requires GET",
        ));
    }
    if head.version_minor() < 1 {
        return Err(Refusal::bad_request("WebSocket upgrade requires HTTP/1.1"));
    }
    if !matches!(
        head.target_form(),
        TargetForm::Origin | TargetForm::Absolute
    ) {
        return Err(Refusal::bad_request(
            "WebSocket upgrade requires an origin-form or absolute-form target",
        ));
    }
    if body != RequestBody::Empty {
        return Err(Refusal::bad_request(
            "WebSocket upgrade must not have a body",
        ));
    }
    match fields.hosts {
        0 => return Err(Refusal::bad_request("missing Host")),
        1 => {}
        _ => return Err(Refusal::bad_request("duplicate Host")),
    }
    if !fields.connection_upgrade {
        return Err(Refusal::bad_request("missing Connection: upgrade"));
    }
    let key = match (fields.key, fields.keys) {
        (None, _) => return Err(Refusal::bad_request("missing Sec-WebSocket-Key")),
        (Some(key), 1) => key,
        (Some(_), _) => return Err(Refusal::bad_request("duplicate Sec-WebSocket-Key")),
    };
    let Some(key) = WebSocketKey::parse(key) else {
        return Err(Refusal::bad_request("invalid Sec-WebSocket-Key"));
    };
    match fields.version {
        Some(b"13") => Ok(RequestKind::WebSocket { key }),
        Some(_) => Err(Refusal::upgrade_required(
            "unsupported Sec-WebSocket-Version",
        )),
        None => Err(Refusal::upgrade_required("missing Sec-WebSocket-Version")),
    }
}

/// The non-upgrade half of [`classify`].
fn classify_plain(
    head: &RequestHead,
    fields: &Fields<'_>,
    body: RequestBody,
) -> Result<RequestKind, Refusal> {
    let broken_upgrade = head.method() == "GET"
        && (fields.key.is_some()
            || fields.version.is_some()
            || (fields.connection_upgrade && !fields.upgrade));
    if broken_upgrade {
        return Err(Refusal::upgrade_required("expected a WebSocket upgrade"));
    }
    if body == RequestBody::Encoded {
        return Err(refuse_transfer_coding(head));
    }
    // RFC 9112 section 3.2: an HTTP/1.1 request without Host, or any request with
    // more than one, is 400.
    match fields.hosts {
        0 if head.version_minor() >= 1 => return Err(Refusal::bad_request("missing Host")),
        0 | 1 => {}
        _ => return Err(Refusal::bad_request("duplicate Host")),
    }
    match (head.target_form(), head.method()) {
        (TargetForm::Asterisk, method) if method != "OPTIONS" => Err(Refusal::bad_request(
            "asterisk-form target is only for OPTIONS",
        )),
        (TargetForm::Authority, method) if method != "CONNECT" => Err(Refusal::bad_request(
            "authority-form target is only for CONNECT",
        )),
        _ => Ok(RequestKind::Http),
    }
}

/// The refusal of a plain request with `Transfer-Encoding` (see [`classify`]).
fn refuse_transfer_coding(head: &RequestHead) -> Refusal {
    let last = head
        .header_values("transfer-encoding")
        .flat_map(list_items)
        .last();
    match last {
        Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => Refusal::new(
            411,
            "chunked request bodies are not supported: send Content-Length",
        ),
        _ => Refusal::bad_request("Transfer-Encoding without chunked as the final coding"),
    }
}

/// What [`classify`] needs from the header fields, gathered in one pass.
#[derive(Default)]
struct Fields<'a> {
    /// Some `Upgrade` field is present.
    upgrade: bool,
    /// Some `Upgrade` field lists `websocket`.
    upgrade_websocket: bool,
    /// Some `Connection` field lists `upgrade`.
    connection_upgrade: bool,
    /// Number of `Host` fields (saturating).
    hosts: u8,
    /// The first `Sec-WebSocket-Key` value.
    key: Option<&'a [u8]>,
    /// Number of `Sec-WebSocket-Key` fields (saturating).
    keys: u8,
    /// The first `Sec-WebSocket-Version` value.
    version: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    fn gather(head: &'a RequestHead) -> Self {
        let mut fields = Self::default();
        for (name, value) in head.raw_headers() {
            // The length test first keeps the common, irrelevant fields cheap.
            let is = |wanted: &[u8]| name.eq_ignore_ascii_case(wanted);
            match name.len() {
                4 if is(b"host") => fields.hosts = fields.hosts.saturating_add(1),
                7 if is(b"upgrade") => {
                    fields.upgrade = true;
                    fields.upgrade_websocket |= has_token(value, "websocket");
                }
                10 if is(b"connection") => {
                    fields.connection_upgrade |= has_token(value, "upgrade");
                }
                17 if is(b"sec-websocket-key") => {
                    fields.keys = fields.keys.saturating_add(1);
                    fields.key.get_or_insert(value);
                }
                21 if is(b"sec-websocket-version") => {
                    fields.version.get_or_insert(value);
                }
                _ => {}
            }
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::super::HandshakeLimits;
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A head from a request line and header lines.
    fn head(request_line: &str, headers: &[&str]) -> RequestHead {
        let mut text = format!("{request_line}\r\n");
        for line in headers {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        RequestHead::from_bytes(text.as_bytes(), &HandshakeLimits::default()).unwrap()
    }

    /// The standard upgrade headers, with `drop` removed and `add` appended.
    fn upgrade_with(drop: &str, add: &[&'static str]) -> Vec<&'static str> {
        let mut headers = vec![
            "Host: example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ];
        headers.retain(|h| drop.is_empty() || !h.starts_with(drop));
        headers.extend_from_slice(add);
        headers
    }

    fn refusal(request_line: &str, headers: &[&str]) -> Refusal {
        classify(&head(request_line, headers)).unwrap_err()
    }

    #[test]
    fn valid_upgrade_carries_the_key() {
        let kind = classify(&head("GET /chat HTTP/1.1", &upgrade_with("", &[]))).unwrap();
        let RequestKind::WebSocket { key } = kind else {
            panic!("not an upgrade: {kind:?}");
        };
        assert_eq!(key.as_str(), KEY);
        assert_eq!(&*key, KEY.as_bytes());
        assert_eq!(&key.accept(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn tokens_are_case_insensitive_lists() {
        let headers = [
            "Host: example.com",
            "upgrade: h2c, WebSocket",
            "connection: keep-alive, UPGRADE",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
        ];
        assert!(matches!(
            classify(&head("GET / HTTP/1.1", &headers)),
            Ok(RequestKind::WebSocket { .. })
        ));
    }

    #[test]
    fn upgrade_must_be_get() {
        let r = refusal("POST / HTTP/1.1", &upgrade_with("", &[]));
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, [("Allow", "GET".to_owned())]);
    }

    #[test]
    fn upgrade_needs_http_1_1() {
        assert_eq!(
            refusal("GET / HTTP/1.0", &upgrade_with("", &[])).status,
            400
        );
    }

    #[test]
    fn upgrade_needs_one_host() {
        let r = refusal("GET / HTTP/1.1", &upgrade_with("Host", &[]));
        assert_eq!((r.status, &*r.reason), (400, "missing Host"));
        let r = refusal("GET / HTTP/1.1", &upgrade_with("", &["Host: b"]));
        assert_eq!((r.status, &*r.reason), (400, "duplicate Host"));
    }

    #[test]
    fn upgrade_needs_connection_upgrade() {
        let r = refusal("GET / HTTP/1.1", &upgrade_with("Connection", &[]));
        assert_eq!(r.status, 400);
        let r = refusal(
            "GET / HTTP/1.1",
            &upgrade_with("Connection", &["Connection: keep-alive, upgrades"]),
        );
        assert_eq!(r.status, 400);
    }

    #[test]
    fn upgrade_needs_a_valid_key() {
        let r = refusal("GET / HTTP/1.1", &upgrade_with("Sec-WebSocket-Key", &[]));
        assert_eq!((r.status, &*r.reason), (400, "missing Sec-WebSocket-Key"));
        for bad in [
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZWU=",
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "Sec-WebSocket-Key: ",
        ] {
            let r = refusal("GET / HTTP/1.1", &upgrade_with("Sec-WebSocket-Key", &[bad]));
            assert_eq!(
                (r.status, &*r.reason),
                (400, "invalid Sec-WebSocket-Key"),
                "{bad}"
            );
        }
        let r = refusal(
            "GET / HTTP/1.1",
            &upgrade_with("", &["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]),
        );
        assert_eq!(r.status, 400);
    }

    #[test]
    fn wrong_or_missing_version_is_426() {
        for headers in [
            upgrade_with("Sec-WebSocket-Version", &[]),
            upgrade_with("Sec-WebSocket-Version", &["Sec-WebSocket-Version: 8"]),
            upgrade_with("Sec-WebSocket-Version", &["Sec-WebSocket-Version: 14"]),
            upgrade_with("Sec-WebSocket-Version", &["Sec-WebSocket-Version: abc"]),
        ] {
            let r = refusal("GET / HTTP/1.1", &headers);
            assert_eq!(r.status, 426);
            assert!(
                r.headers
                    .contains(&("Sec-WebSocket-Version", "13".to_owned()))
            );
            assert!(r.headers.contains(&("Upgrade", "websocket".to_owned())));
        }
    }

    #[test]
    fn broken_upgrades_are_426() {
        for headers in [
            &["Host: a", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="][..],
            &["Host: a", "Sec-WebSocket-Version: 13"],
            &["Host: a", "Connection: Upgrade"],
        ] {
            let r = refusal("GET / HTTP/1.1", headers);
            assert_eq!(r.status, 426, "{headers:?}");
            assert!(r.headers.contains(&("Upgrade", "websocket".to_owned())));
            assert!(
                r.headers
                    .contains(&("Sec-WebSocket-Version", "13".to_owned()))
            );
        }
    }

    #[test]
    fn plain_requests_need_one_host_from_http_1_1_on() {
        for (line, headers, reason) in [
            ("GET / HTTP/1.1", &[][..], "missing Host"),
            (
                "GET / HTTP/1.1",
                &["Host: a", "Host: b"][..],
                "duplicate Host",
            ),
            (
                "GET / HTTP/1.0",
                &["Host: a", "Host: a"][..],
                "duplicate Host",
            ),
        ] {
            let r = refusal(line, headers);
            assert_eq!((r.status, &*r.reason), (400, reason), "{line} {headers:?}");
        }
    }

    #[test]
    fn plain_requests_are_http() {
        for (line, headers) in [
            ("GET /index.html HTTP/1.1", &["Host: a"][..]),
            ("GET / HTTP/1.0", &[]),
            ("POST /api HTTP/1.1", &["Host: a", "Connection: upgrade"]),
            (
                "GET / HTTP/1.1",
                &[
                    "Host: a",
                    "Connection: Upgrade, HTTP2-Settings",
                    "Upgrade: h2c",
                ],
            ),
        ] {
            assert_eq!(
                classify(&head(line, headers)),
                Ok(RequestKind::Http),
                "{line} {headers:?}"
            );
        }
    }

    #[test]
    fn absolute_form_upgrade_is_accepted() {
        for line in [
            "GET ws://example.com:9001/chat?room=a HTTP/1.1",
            "GET WSS://example.com:9001/chat?room=a HTTP/1.1",
            "GET http://example.com:9001/chat?room=a HTTP/1.1",
            "GET HTTPS://example.com:9001/chat?room=a HTTP/1.1",
        ] {
            let h = head(line, &upgrade_with("", &[]));
            assert!(
                matches!(classify(&h), Ok(RequestKind::WebSocket { .. })),
                "{line}"
            );
            assert_eq!(h.path(), "/chat");
            assert_eq!(h.query(), Some("room=a"));
            // The Host field (example.com) gives way to the target's authority.
            assert_eq!(h.authority(), Some("example.com:9001"));
        }
    }

    #[test]
    fn other_target_forms_on_an_upgrade_are_400() {
        for line in ["GET * HTTP/1.1", "GET example.com:9001 HTTP/1.1"] {
            let r = refusal(line, &upgrade_with("", &[]));
            assert_eq!(r.status, 400, "{line}");
            assert!(r.reason.contains("origin-form or absolute-form"), "{r}");
        }
    }

    #[test]
    fn asterisk_and_authority_forms_only_with_their_methods() {
        let plain = ["Host: a"];
        assert_eq!(
            classify(&head("OPTIONS * HTTP/1.1", &plain)),
            Ok(RequestKind::Http)
        );
        assert_eq!(
            classify(&head("CONNECT a:443 HTTP/1.1", &plain)),
            Ok(RequestKind::Http)
        );
        let r = refusal("GET * HTTP/1.1", &plain);
        assert_eq!(
            (r.status, &*r.reason),
            (400, "asterisk-form target is only for OPTIONS")
        );
        let r = refusal("GET a:443 HTTP/1.1", &plain);
        assert_eq!(
            (r.status, &*r.reason),
            (400, "authority-form target is only for CONNECT")
        );
    }

    #[test]
    fn an_upgrade_with_a_body_is_400() {
        for body in ["Content-Length: 14", "Transfer-Encoding: chunked"] {
            let r = refusal("GET / HTTP/1.1", &upgrade_with("", &[body]));
            assert_eq!(
                (r.status, &*r.reason),
                (400, "WebSocket upgrade must not have a body"),
                "{body}"
            );
        }
        let h = head("GET / HTTP/1.1", &upgrade_with("", &["Content-Length: 0"]));
        assert!(matches!(classify(&h), Ok(RequestKind::WebSocket { .. })));
    }

    #[test]
    fn a_plain_request_with_a_length_is_http_and_a_transfer_coding_is_refused() {
        for body in ["Content-Length: 1", "Content-Length: 0"] {
            let h = head("POST /api HTTP/1.1", &["Host: a", body]);
            assert_eq!(classify(&h), Ok(RequestKind::Http), "{body}");
        }
        for (coding, status) in [
            ("chunked", 411),
            ("gzip, Chunked", 411),
            ("gzip", 400),
            ("chunked, gzip", 400),
        ] {
            let field = format!("Transfer-Encoding: {coding}");
            let r = refusal("POST /api HTTP/1.1", &["Host: a", &field]);
            assert_eq!(r.status, status, "{coding}: {r}");
        }
    }

    #[test]
    fn ambiguous_framing_is_400_for_every_request() {
        for line in ["GET / HTTP/1.1", "POST / HTTP/1.1"] {
            let r = refusal(line, &upgrade_with("", &["Content-Length: 1, 1"]));
            assert_eq!((r.status, &*r.reason), (400, "invalid Content-Length"));
            let r = refusal(line, &["Host: a", "Content-Length: 1", "Content-Length: 1"]);
            assert_eq!((r.status, &*r.reason), (400, "duplicate Content-Length"));
        }
    }

    #[test]
    fn key_parse_is_strict() {
        assert!(WebSocketKey::parse(KEY.as_bytes()).is_some());
        assert!(WebSocketKey::parse(b"").is_none());
        assert!(WebSocketKey::parse(b"AAAAAAAAAAAAAAAAAAAAAA==").is_some());
        assert!(WebSocketKey::parse(b"AAAAAAAAAAAAAAAAAAAAAAA=").is_none());
        assert_eq!(
            format!("{}", WebSocketKey::parse(KEY.as_bytes()).unwrap()),
            KEY
        );
    }
}
