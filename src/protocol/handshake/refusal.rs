//! An HTTP error response that refuses a request.

use std::borrow::Cow;
use std::fmt;

use super::response::{closing_fields, is_upgrade_field, put_decimal, put_header, put_status_line};

/// A refused request: the HTTP error the server sends before closing.
///
/// [`write`](Refusal::write) renders it as a complete `text/plain` response with
/// `Connection: close` (`Connection: upgrade, close` when it carries `Upgrade`)
/// and the short reason as its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status code, such as 400.
    pub status: u16,
    /// A short, human-readable reason, sent as the body.
    pub reason: Cow<'static, str>,
    /// Extra response headers, such as `Sec-WebSocket-Version: 13` on a 426.
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    /// A refusal with `status`, `reason` and no extra headers.
    pub fn new(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header; returns `self` for chaining.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// `400 Bad Request`.
    pub fn bad_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(400, reason)
    }

    /// `426 Upgrade Required` with `Upgrade: websocket` (which RFC 9110 section
    /// 15.5.22 requires on a 426; [`write`](Self::write) adds
    /// `Connection: upgrade, close` for it) and `Sec-WebSocket-Version: 13`, the
    /// answer to a WebSocket version this server does not speak (RFC 6455
    /// section 4.4) or to a request that looks like a broken upgrade.
    pub fn upgrade_required(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(426, reason)
            .with_header("Upgrade", "websocket")
            .with_header("Sec-WebSocket-Version", "13")
    }

    /// `403 Forbidden`, such as for a disallowed `Origin`.
    pub fn forbidden(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(403, reason)
    }

    /// `404 Not Found`.
    pub fn not_found(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(404, reason)
    }

    /// `405 Method Not Allowed` with `Allow: GET`.
    pub fn method_not_allowed(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(405, reason).with_header("Allow", "GET")
    }

    /// `413 Content Too Large` (RFC 9110 section 15.5.14), such as for a request
    /// body where none is accepted.
    pub fn content_too_large(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(413, reason)
    }

    /// `431 Request Header Fields Too Large` (RFC 6585).
    pub fn too_large(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(431, reason)
    }

    /// `503 Service Unavailable`, such as when at the connection limit.
    pub fn service_unavailable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(503, reason)
    }

    /// Appends the complete response: status line, `Content-Type: text/plain;
    /// charset=utf-8`, `Content-Length`, `Connection: close`, the extra headers,
    /// the blank line and the reason as body.
    ///
    /// When the extra headers hold `Upgrade`, `Connection` is `upgrade, close`
    /// (RFC 9110 section 7.8); a `426` without `Upgrade` (such as one a
    /// [`Service`](crate::Service) made) gets `Upgrade: websocket` too, since RFC
    /// 9110 section 15.5.22 requires it and WebSocket is the one upgrade offered.
    pub fn write(&self, out: &mut Vec<u8>) {
        let body = self.reason.as_bytes();
        out.reserve(128 + body.len());
        put_status_line(out, self.status);
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
        put_decimal(out, body.len());
        out.extend_from_slice(b"\r\n");
        let has_upgrade = self.headers.iter().any(|(name, _)| is_upgrade_field(name));
        for (name, value) in closing_fields(self.status, has_upgrade) {
            put_header(out, name, value.as_bytes());
        }
        for (name, value) in &self.headers {
            put_header(out, name, value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_a_complete_closing_response() {
        let mut out = Vec::new();
        Refusal::bad_request("missing Host").write(&mut out);
        assert_eq!(
            out,
            &b"HTTP/1.1 400 Bad Request\r\n\
               Content-Type: text/plain; charset=utf-8\r\n\
               Content-Length: 12\r\n\
               Connection: close\r\n\
               \r\n\
               missing Host"[..]
        );
    }

    #[test]
    fn upgrade_required_names_the_version_and_the_upgrade() {
        let mut out = Vec::new();
        Refusal::upgrade_required("x").write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("\r\nUpgrade: websocket\r\n"));
        assert!(text.contains("\r\nConnection: upgrade, close\r\n"));
        assert_eq!(text.matches("Upgrade:").count(), 1);
        assert_eq!(text.matches("Connection:").count(), 1);
        assert!(text.ends_with("\r\n\r\nx"));
    }

    #[test]
    fn any_426_carries_upgrade() {
        let mut out = Vec::new();
        Refusal::new(426, "use a WebSocket").write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nUpgrade: websocket\r\nConnection: upgrade, close\r\n"));
    }

    #[test]
    fn helpers_pick_their_status() {
        assert_eq!(Refusal::forbidden("o").status, 403);
        assert_eq!(Refusal::not_found("p").status, 404);
        assert_eq!(Refusal::service_unavailable("busy").status, 503);
        assert_eq!(Refusal::too_large("big").status, 431);
        assert_eq!(Refusal::content_too_large("body").status, 413);
        let r = Refusal::method_not_allowed("m");
        assert_eq!(
            (r.status, r.headers),
            (405, vec![("Allow", "GET".to_owned())])
        );
        assert_eq!(Refusal::new(418, "teapot").to_string(), "418 teapot");
    }
}
