//! Plain HTTP on the WebSocket port: the response type of [`crate::Service::http`].

use crate::protocol::handshake::write_http_response;
use crate::protocol::handshake::{closing_fields, is_upgrade_field};

/// A complete HTTP response. The connection is closed after it is written
/// (`Connection: close`); there is no keep-alive. A `426 Upgrade Required` always
/// goes out with `Upgrade` (RFC 9110 section 15.5.22): `Upgrade: websocket` is added
/// if the headers lack one, and `Connection` is then `upgrade, close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added; a `Connection`
    /// given here is sent as well, so leave it out).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a status and body, no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200, body).with_header("Content-Type", "text/html; charset=utf-8")
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200, body).with_header("Content-Type", "text/plain; charset=utf-8")
    }

    /// 404 with a short plain-text body.
    pub fn not_found() -> Self {
        Self::new(404, "not found\n").with_header("Content-Type", "text/plain; charset=utf-8")
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends the response's bytes to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let has_upgrade = headers.iter().any(|(name, _)| is_upgrade_field(name));
        headers.extend_from_slice(closing_fields(self.status, has_upgrade));
        write_http_response(out, self.status, &headers, &self.body);
    }
}
