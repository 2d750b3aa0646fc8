//! Plain HTTP on the WebSocket port: the response type of [`crate::Service::http`].

use std::sync::{Arc, Mutex};

use crate::protocol::handshake::{
    closing_fields, has_token, is_upgrade_field, write_http_head, write_http_response,
};
use crate::server::pending::PendingResponse;

/// A complete HTTP response.
///
/// The connection stays open for the client's next request (HTTP/1.1 keep-alive)
/// unless the request asked `Connection: close`, the request was HTTP/1.0, the
/// response carries `Connection: close` itself or `Upgrade`, or responses the
/// client has not read pile up past `max_backpressure`; then it goes out with
/// `Connection: close` and the connection ends after it. A `426 Upgrade Required`
/// always goes out with `Upgrade` (RFC 9110 section 15.5.22): `Upgrade: websocket`
/// is added if the headers lack one, `Connection` is then `upgrade, close`, and the
/// connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added; a `Connection`
    /// given here is sent as well, so leave it out).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Set by [`HttpResponse::defer`]: the answer comes later.
    later: Option<Later>,
}

/// The deferral an [`HttpResponse::defer`] carries: taken (once) by the reactor.
/// Clones share it; two responses are equal only if neither defers or both share one.
#[derive(Clone)]
struct Later(Arc<Mutex<Option<DecideLater>>>);

type DecideLater = Box<dyn FnOnce(PendingResponse) + Send>;

impl PartialEq for Later {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Later {}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Later")
    }
}

impl HttpResponse {
    /// A response with a status and body, no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            later: None,
        }
    }

    /// Answers later, off the reactor: `decide` is called at once, on the reactor,
    /// with a [`PendingResponse`] (owned and `Send`, body included), must return
    /// quickly, and whoever holds the pending response answers it from any thread
    /// with [`PendingResponse::respond`] (a login that writes a session to Redis, a
    /// health check that asks a dependency).
    ///
    /// The bounds and endings are those of [`crate::Upgrade::defer`]: the request
    /// counts against [`max_pending_requests`](crate::ServerConfig::max_pending_requests)
    /// (past it: `503` with `Retry-After: 1`, `decide` dropped uncalled), and no
    /// answer within `handshake_timeout` of the request's start, a client that
    /// leaves, or a shutdown answers `503` (the client gone: nothing) and makes the
    /// completion [`crate::TooLate`]. Keep-alive holds: requests the client pipelined
    /// behind this one are read and answered after it, in order. The status, headers
    /// and body of the value returned here are not sent.
    pub fn defer(decide: impl FnOnce(PendingResponse) + Send + 'static) -> Self {
        let mut response = Self::new(500, Vec::new());
        response.later = Some(Later(Arc::new(Mutex::new(Some(Box::new(decide))))));
        response
    }

    /// Whether this response was made by [`HttpResponse::defer`].
    pub fn is_deferred(&self) -> bool {
        self.later.is_some()
    }

    /// Takes the deferral out (the first caller among clones gets it).
    pub(crate) fn take_deferred(&mut self) -> Option<DecideLater> {
        let later = self.later.take()?;
        let mut slot = later.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.take()
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

    /// Whether this response ends its connection whatever the request asked: a
    /// `426`, an `Upgrade` header, or a `Connection` header listing `close`.
    pub(crate) fn closes(&self) -> bool {
        self.status == 426
            || self.headers.iter().any(|(name, value)| {
                is_upgrade_field(name)
                    || (name.eq_ignore_ascii_case("connection")
                        && has_token(value.as_bytes(), "close"))
            })
    }

    /// Appends the response's bytes to `out`: only its head (with the body's
    /// `Content-Length`) when `head_only` (a `HEAD` request); `Connection: close`
    /// unless `keep_alive` (then no `Connection` field: HTTP/1.1 connections
    /// persist by default, RFC 9112 section 9.3).
    pub(crate) fn write(&self, out: &mut Vec<u8>, head_only: bool, keep_alive: bool) {
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if !keep_alive {
            let has_upgrade = headers.iter().any(|(name, _)| is_upgrade_field(name));
            headers.extend_from_slice(closing_fields(self.status, has_upgrade));
        }
        if head_only {
            write_http_head(out, self.status, &headers, self.body.len());
        } else {
            write_http_response(out, self.status, &headers, &self.body);
        }
    }
}
