//! What a user implements ([`Service`], [`Handler`]) and what a callback gets to act on
//! its connection with ([`Conn`]).
//!
//! A [`Service`] is shared by every reactor thread. For each upgrade request it decides:
//! accept, creating the connection's [`Handler`] (and choosing a subprotocol), or refuse
//! with an HTTP status. Requests that are not upgrades go to [`Service::http`].
//!
//! A [`Handler`] is the state of one connection. It lives on the reactor thread that
//! accepted the connection and is called there, so it needs neither `Send` nor locks.
//!
//! ```no_run
//! use wavecore::{Conn, Handler, Message, Server};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
//!         conn.send(message);
//!     }
//! }
//!
//! Server::builder()
//!     .bind("127.0.0.1:9001")
//!     .run(wavecore::accept_all(|| Echo))
//!     .unwrap();
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Deref;

use crate::protocol::CloseCode;
use crate::protocol::deflate::DeflateParams;
use crate::protocol::handshake::{Refusal, RequestHead};
use crate::server::ServerHandle;
use crate::server::http::HttpResponse;

pub use crate::server::conn_api::{Conn, ConnId, SendStatus};
pub use crate::server::conn_handle::{ConnHandle, HandleStatus};
pub use crate::server::pending::{PendingResponse, PendingUpgrade, TooLate};

/// A complete data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, valid UTF-8.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The opcode of the (single) frame that carries this message.
    pub(crate) fn opcode(&self) -> crate::protocol::OpCode {
        match self {
            Message::Text(_) => crate::protocol::OpCode::Text,
            Message::Binary(_) => crate::protocol::OpCode::Binary,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(text: &'a str) -> Self {
        Message::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Message::Binary(bytes)
    }
}

/// How a connection ended, as told to [`Handler::on_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseInfo<'a> {
    /// The close code: the peer's (1005 if its close frame had none), the one we sent
    /// (protocol errors 1002/1007/1009, backpressure 1008, shutdown 1001, handler panic
    /// 1011, or the code given to [`Conn::close`]), or 1006 when the TCP connection ended
    /// without a close frame (EOF, reset, idle timeout).
    pub code: CloseCode,
    /// The reason that came with the code (may be empty).
    pub reason: &'a str,
    /// Whether the peer sent the close frame (`false`: we did, or none was sent).
    pub by_peer: bool,
}

/// One connection's state and callbacks. Every method but `on_message` has a default
/// that does nothing.
///
/// Callbacks run on the connection's reactor thread; they should not block. A panic in
/// a callback closes this connection with 1011 and leaves every other one untouched.
pub trait Handler: 'static {
    /// The handshake completed; the connection is open.
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// A complete message arrived. The payload is borrowed from the reactor's read
    /// buffer when it arrived whole (no copy), else from the reassembly buffer.
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>);

    /// A ping arrived. The pong has already been queued.
    fn on_ping(&mut self, conn: &mut Conn<'_>, payload: &[u8]) {
        let _ = (conn, payload);
    }

    /// A pong arrived (an answer to [`Conn::ping`] or to an automatic ping).
    fn on_pong(&mut self, conn: &mut Conn<'_>, payload: &[u8]) {
        let _ = (conn, payload);
    }

    /// A frame from the peer passed the connection's message rate and was dropped
    /// (under [`crate::admission::RatePolicy::Drop`]; see [`crate::admission::MessageRate`]): a data message
    /// that never reached `on_message`, or a ping or pong. Called once per frame.
    fn on_rate_limited(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The bytes buffered for this connection fell back under `max_backpressure`
    /// after a send returned [`SendStatus::Backpressure`] or [`SendStatus::Dropped`].
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The connection left the open state. Called once; nothing can be sent any more.
    fn on_close(&mut self, close: CloseInfo<'_>) {
        let _ = close;
    }
}

/// An HTTP request seen by [`Service::upgrade`] or [`Service::http`]: the parsed head
/// (path, query, headers, Origin, offered subprotocols and extensions; all of
/// [`RequestHead`] through `Deref`), the body of a plain HTTP request, the peer's
/// address, and the server it arrived at.
#[derive(Debug)]
pub struct Request<'a> {
    head: &'a RequestHead,
    body: &'a [u8],
    peer: SocketAddr,
    server: &'a ServerHandle,
}

impl<'a> Request<'a> {
    pub(crate) fn new(
        head: &'a RequestHead,
        body: &'a [u8],
        peer: SocketAddr,
        server: &'a ServerHandle,
    ) -> Self {
        Self {
            head,
            body,
            peer,
            server,
        }
    }

    /// The request body: the `Content-Length` bytes after the head, read whole
    /// (at most [`crate::ServerConfig::max_http_body_size`]). Empty for an upgrade
    /// (which may not have one) and for a request without a body.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The server this request arrived at: its counters
    /// ([`ServerHandle::metrics_text`], [`ServerHandle::stats`]), `publish`, and so on.
    pub fn server(&self) -> &'a ServerHandle {
        self.server
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The parsed request head.
    pub fn head(&self) -> &'a RequestHead {
        self.head
    }

    /// The client's valid `permessage-deflate` offers (RFC 7692 section 7.1), in
    /// its order of preference; offers with unknown, duplicated or invalid parameters
    /// are left out (the server would decline them). With
    /// [`crate::ServerConfig::permessage_deflate`] on, the first of these is accepted
    /// unless the upgrade says [`Upgrade::without_compression`].
    pub fn deflate_offers(&self) -> impl Iterator<Item = DeflateParams> + 'a {
        self.head
            .extensions()
            .filter_map(|element| DeflateParams::parse(element).ok())
    }
}

impl Deref for Request<'_> {
    type Target = RequestHead;

    fn deref(&self) -> &RequestHead {
        self.head
    }
}

/// The answer to an upgrade request: accept with a handler, refuse, or decide later
/// ([`Upgrade::defer`]).
pub struct Upgrade<H> {
    pub(crate) outcome: Outcome<H>,
}

/// What an [`Upgrade`] says.
pub(crate) enum Outcome<H> {
    Accept(Accepted<H>),
    Refuse(Refusal),
    /// Decide later: called once, on the reactor, with the pending upgrade (unless
    /// too many wait already: then the client gets 503 and this is dropped).
    Defer(Box<dyn FnOnce(PendingUpgrade<H>) + Send>),
}

impl<H> std::fmt::Debug for Upgrade<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Accept(accepted) => f
                .debug_struct("Accept")
                .field("protocol", &accepted.protocol)
                .field("headers", &accepted.headers)
                .field("compression", &accepted.compression)
                .finish_non_exhaustive(),
            Outcome::Refuse(refusal) => f.debug_tuple("Refuse").field(refusal).finish(),
            Outcome::Defer(_) => f.write_str("Defer"),
        }
    }
}

/// An accepted upgrade: the handler and what goes into the 101 response.
#[derive(Debug)]
pub(crate) struct Accepted<H> {
    pub handler: H,
    pub protocol: Option<String>,
    pub headers: Vec<(String, String)>,
    /// permessage-deflate may be negotiated (if the server has it on).
    pub compression: bool,
}

impl<H> Upgrade<H> {
    /// Accepts the connection; `handler` receives its callbacks.
    pub fn accept(handler: H) -> Self {
        Self {
            outcome: Outcome::Accept(Accepted {
                handler,
                protocol: None,
                headers: Vec::new(),
                compression: true,
            }),
        }
    }

    /// Chooses the subprotocol for the 101 response (`Sec-WebSocket-Protocol`). It must
    /// be one the client offered (`request.protocols()`, compared exactly): a client
    /// fails a handshake that names another (RFC 6455 section 4.1), so the server
    /// answers `500` instead and logs the mistake at `error`.
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        if let Outcome::Accept(accepted) = &mut self.outcome {
            accepted.protocol = Some(protocol.into());
        }
        self
    }

    /// Declines permessage-deflate for this connection, whatever the client offered
    /// and the server's [`crate::ServerConfig::permessage_deflate`] says: its messages
    /// go out and must come in uncompressed (RSV1 then fails the connection with 1002).
    pub fn without_compression(mut self) -> Self {
        if let Outcome::Accept(accepted) = &mut self.outcome {
            accepted.compression = false;
        }
        self
    }

    /// Adds a header to the 101 response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Outcome::Accept(accepted) = &mut self.outcome {
            accepted.headers.push((name.into(), value.into()));
        }
        self
    }

    /// Refuses the upgrade with an HTTP status (e.g. 403, 404) and a short reason sent as
    /// the response body.
    pub fn refuse(status: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            outcome: Outcome::Refuse(Refusal::new(status, reason)),
        }
    }

    /// Decides later, off the reactor: `decide` is called at once, on the reactor,
    /// with a [`PendingUpgrade`] (owned and `Send`: hand it to a worker thread, a
    /// pool, a Redis client's callback) and must return quickly; whoever holds the
    /// pending upgrade then completes it from any thread with
    /// [`PendingUpgrade::accept`] or [`PendingUpgrade::refuse`].
    ///
    /// Meanwhile the reactor serves every other connection. The waiting connection
    /// counts against `max_connections` and
    /// [`max_pending_requests`](crate::ServerConfig::max_pending_requests): past that
    /// bound the client is answered `503` with `Retry-After: 1` and `decide` is
    /// dropped uncalled. If no answer comes within `handshake_timeout` (counted from
    /// the connection's accept), the client is answered `503` and the completion
    /// learns [`crate::TooLate`]; the same if the client leaves (its slot is freed at
    /// once) or the server shuts down. Compression (RFC 7692) is negotiated at the
    /// completion from the offer the request carried.
    ///
    /// ```no_run
    /// use wavecore::{Conn, Handler, Message, Request, Server, Upgrade};
    ///
    /// struct Session { user: String }
    ///
    /// impl Handler for Session {
    ///     fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
    ///         conn.send(message);
    ///     }
    /// }
    ///
    /// /// A slow lookup (Redis, a database, an identity provider).
    /// fn user_of(cookie: Option<String>) -> Option<String> {
    ///     cookie.map(|c| c.trim_start_matches("session=").to_owned())
    /// }
    ///
    /// Server::builder()
    ///     .bind("127.0.0.1:9001")
    ///     .run(|request: &Request<'_>| {
    ///         let cookie = request.header_str("cookie").map(str::to_owned);
    ///         Upgrade::defer(move |pending| {
    ///             std::thread::spawn(move || match user_of(cookie) {
    ///                 Some(user) => {
    ///                     let _ = pending.accept(Session { user });
    ///                 }
    ///                 None => {
    ///                     let _ = pending.refuse(401, "log in first");
    ///                 }
    ///             });
    ///         })
    ///     })
    ///     .unwrap();
    /// ```
    pub fn defer(decide: impl FnOnce(PendingUpgrade<H>) + Send + 'static) -> Self {
        Self {
            outcome: Outcome::Defer(Box::new(decide)),
        }
    }
}

/// The server's application: decides upgrades and answers plain HTTP requests.
///
/// Shared by every reactor thread, so it must be `Send + Sync`. A closure
/// `Fn(&Request) -> Upgrade<H>` is a `Service` too, and [`accept_all`] makes one that
/// accepts everything.
///
/// [`upgrade`](Service::upgrade) sees only requests that passed the RFC 6455 checks
/// (RFC 6455 section 4.2.1; otherwise the server answered 400, 405, 426 or 431 itself).
/// What it returns goes out as the `101 Switching Protocols` response, or as an HTTP
/// refusal: the status and the reason as a `text/plain` body, then the TCP connection
/// is closed. A browser's script sees neither (its `WebSocket` reports close code
/// 1006); to tell a page why, accept and close at once with a code and reason instead
/// (the chat demo does so with 1008).
///
/// # Example: routing by path, checking Origin, choosing a subprotocol, refusing
///
/// One `Handler` type serves every route, so each route is a variant.
///
/// ```no_run
/// use wavecore::{CloseCode, Conn, Handler, HttpResponse, Message, Request, Server};
/// use wavecore::{Service, Upgrade};
///
/// enum Session {
///     Echo,
///     Prices,
/// }
///
/// impl Handler for Session {
///     fn on_open(&mut self, conn: &mut Conn<'_>) {
///         if let Session::Prices = self {
///             conn.subscribe("prices"); // fed by ServerHandle::publish from another thread
///         }
///     }
///
///     fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
///         match self {
///             Session::Echo => {
///                 conn.send(message);
///             }
///             Session::Prices => conn.close(CloseCode::POLICY_VIOLATION, "the feed is read-only"),
///         }
///     }
/// }
///
/// struct App {
///     /// The site whose pages may connect, e.g. "https://example.com".
///     origin: &'static str,
/// }
///
/// impl Service for App {
///     type Handler = Session;
///
///     fn upgrade(&self, request: &Request<'_>) -> Upgrade<Session> {
///         // Browsers always send Origin, and a page of any other site could open a
///         // WebSocket to this server with the user's cookies (cross-site WebSocket
///         // hijacking): refuse other origins. Clients that are not browsers may send
///         // none.
///         if request.origin().is_some_and(|origin| origin != self.origin) {
///             return Upgrade::refuse(403, "origin not allowed");
///         }
///         match request.path() {
///             "/echo" => Upgrade::accept(Session::Echo),
///             "/prices" => {
///                 // The client lists the subprotocols it speaks, preferred first; pick
///                 // the first one we speak too (RFC 6455 section 4.2.2).
///                 let Some(protocol) =
///                     request.protocols().find(|p| matches!(*p, "prices.v2" | "prices.v1"))
///                 else {
///                     return Upgrade::refuse(400, "offer the subprotocol prices.v2 or prices.v1");
///                 };
///                 let protocol = protocol.to_owned();
///                 Upgrade::accept(Session::Prices).with_protocol(protocol)
///             }
///             _ => Upgrade::refuse(404, "no WebSocket endpoint here"),
///         }
///     }
///
///     fn http(&self, request: &Request<'_>) -> HttpResponse {
///         match request.path() {
///             "/health" => HttpResponse::text("ok\n"),
///             _ => HttpResponse::not_found(),
///         }
///     }
/// }
///
/// fn main() -> std::io::Result<()> {
///     Server::builder()
///         .bind("127.0.0.1:9001")
///         .run(App { origin: "https://example.com" })
/// }
/// ```
pub trait Service: Send + Sync + 'static {
    /// The per-connection handler this service creates.
    type Handler: Handler;

    /// Decides a valid WebSocket upgrade request (the protocol checks have passed).
    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Self::Handler>;

    /// Answers a request that is not a WebSocket upgrade. The default is 404.
    ///
    /// A body announced with `Content-Length` is read whole first and handed over as
    /// [`Request::body`]; one larger than
    /// [`max_http_body_size`](crate::ServerConfig::max_http_body_size) is refused with
    /// 413 before this is called, and a chunked one with 411 (see
    /// [`classify`](crate::protocol::handshake::classify())). A `HEAD` request is
    /// answered with the head of the response this returns, without its body. The
    /// connection is kept alive for the next request (HTTP/1.1, unless the request
    /// or the response says `Connection: close`). A panic here is answered 500,
    /// logged at `error` and counted in `handler_panics`.
    fn http(&self, request: &Request<'_>) -> HttpResponse {
        let _ = request;
        HttpResponse::not_found()
    }
}

impl<F, H> Service for F
where
    F: Fn(&Request<'_>) -> Upgrade<H> + Send + Sync + 'static,
    H: Handler,
{
    type Handler = H;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<H> {
        self(request)
    }
}

/// A service that accepts every upgrade on every path, making each connection's
/// handler with `make`. Plain HTTP requests get 404.
pub fn accept_all<H, F>(make: F) -> impl Service<Handler = H>
where
    H: Handler,
    F: Fn() -> H + Send + Sync + 'static,
{
    move |_: &Request<'_>| Upgrade::accept(make())
}
