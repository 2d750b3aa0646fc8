//! The channels protocol served whole: [`ChannelsService`] accepts upgrades and
//! serves the browser client; [`ChannelsHandler`] (or [`serve_message`] inside an
//! application's own handler) answers each client message.

use std::sync::Arc;

use crate::protocol::CloseCode;
use crate::server::channels::protocol::{self, BadRequest, Request as ChannelRequest};
use crate::server::conn_api::Conn;
use crate::server::handler::{Handler, Message, Request, Service, Upgrade};
use crate::server::http::HttpResponse;

/// The browser client (dependency-free JavaScript; docs/channels.md): a
/// `WavecoreChannels` class that reconnects with backoff and resumes every channel
/// from its last position.
pub const CLIENT_JS: &str = include_str!("client.js");

/// The path [`ChannelsService`] serves [`CLIENT_JS`] at.
pub const CLIENT_JS_PATH: &str = "/wavecore-channels.js";

/// What a client asks to do with a channel, for a policy
/// ([`ChannelsHandler::allowing`], [`ChannelsService::allow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Subscribe to the channel named.
    Subscribe(&'a str),
    /// Publish to the channel named.
    Publish(&'a str),
}

/// A policy: whether a connection may do an [`Action`].
pub type Policy = Arc<dyn Fn(Action<'_>) -> bool + Send + Sync>;

/// Answers one client message of the channels protocol on `conn` (see
/// docs/channels.md): subscribe (with recovery), unsubscribe, publish, every channel
/// allowed. A request that is JSON but not a valid one gets an `error` reply and the
/// connection stays open; text that is not JSON closes it with 1007 (Invalid Payload
/// Data), and a binary message with 1003 (Unsupported Data).
pub fn serve_message(conn: &mut Conn<'_>, message: Message<'_>) {
    serve_message_with(conn, message, &|_| true);
}

/// [`serve_message`] under a policy: a subscribe or publish that `allow` refuses gets
/// `{"type":"error","error":"not allowed",...}` and changes nothing.
pub fn serve_message_with(
    conn: &mut Conn<'_>,
    message: Message<'_>,
    allow: &dyn Fn(Action<'_>) -> bool,
) {
    let Message::Text(text) = message else {
        conn.close(
            CloseCode::UNSUPPORTED_DATA,
            "the channels protocol speaks JSON text",
        );
        return;
    };
    let request = match protocol::parse(text) {
        Ok(request) => request,
        Err(BadRequest::NotJson) => {
            conn.close(CloseCode::INVALID_PAYLOAD, "not JSON");
            return;
        }
        Err(BadRequest::Invalid { error, id }) => {
            conn.send_text(&protocol::error(&error, None, id.as_ref()));
            return;
        }
    };
    let (action, id) = match &request {
        ChannelRequest::Subscribe { channel, .. } => (Some(Action::Subscribe(channel)), None),
        ChannelRequest::Publish { channel, id, .. } => {
            (Some(Action::Publish(channel)), id.as_ref())
        }
        ChannelRequest::Unsubscribe { .. } => (None, None),
    };
    if let Some(action) = action
        && !allow(action)
    {
        let (Action::Subscribe(channel) | Action::Publish(channel)) = action;
        conn.send_text(&protocol::error(NOT_ALLOWED, Some(channel), id));
        return;
    }
    match request {
        ChannelRequest::Subscribe { channel, since } => {
            let reply = match conn.subscribe_channel(&channel, since) {
                Ok(subscribed) => protocol::subscribed(&channel, &subscribed),
                Err(e) => protocol::error(&e.to_string(), Some(&channel), None),
            };
            conn.send_text(&reply);
        }
        ChannelRequest::Unsubscribe { channel } => {
            conn.unsubscribe_channel(&channel);
            conn.send_text(&protocol::unsubscribed(&channel));
        }
        ChannelRequest::Publish { channel, data, id } => {
            if conn.is_deferring_channels() {
                // Answered from the engine's thread once Redis has.
                let handle = conn.handle();
                let later = channel.clone();
                let later_id = id.clone();
                if let Some(result) = conn.publish_channel_with(&channel, &data, move |result| {
                    handle.send_text(&reply(result, &later, later_id.as_ref()));
                }) {
                    conn.send_text(&reply(result, &channel, id.as_ref()));
                }
                return;
            }
            let result = conn.publish_channel(&channel, &data);
            conn.send_text(&reply(result, &channel, id.as_ref()));
        }
    }
}

/// The answer to a publish.
fn reply(
    result: Result<crate::channels::Position, crate::channels::ChannelError>,
    channel: &str,
    id: Option<&serde_json::Value>,
) -> String {
    match result {
        Ok(position) => protocol::published(channel, position, id),
        Err(e) => protocol::error(&e.to_string(), Some(channel), id),
    }
}

/// The error a refused subscribe or publish gets.
const NOT_ALLOWED: &str = "not allowed";

/// A connection speaking the channels protocol: every message goes to
/// [`serve_message_with`] under its policy (every channel allowed by default).
#[derive(Default)]
pub struct ChannelsHandler {
    allow: Option<Policy>,
}

impl std::fmt::Debug for ChannelsHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelsHandler")
            .field("policy", &self.allow.is_some())
            .finish()
    }
}

impl ChannelsHandler {
    /// A connection allowed every subscribe and publish.
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection allowed only what `allow` allows: decide it in your own
    /// [`Service::upgrade`] from the request (its cookie, say) and return
    /// `Upgrade::accept(ChannelsHandler::allowing(...))`.
    pub fn allowing(allow: impl Fn(Action<'_>) -> bool + Send + Sync + 'static) -> Self {
        Self {
            allow: Some(Arc::new(allow)),
        }
    }
}

impl Handler for ChannelsHandler {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match &self.allow {
            Some(allow) => serve_message_with(conn, message, &**allow),
            None => serve_message(conn, message),
        }
    }
}

type Fallback = Arc<dyn Fn(&Request<'_>) -> HttpResponse + Send + Sync>;

/// A [`Service`] for the channels protocol: accepts every WebSocket upgrade with a
/// [`ChannelsHandler`], answers `GET /wavecore-channels.js` with [`CLIENT_JS`], and
/// every other HTTP request with its fallback (404 unless set).
#[derive(Clone, Default)]
pub struct ChannelsService {
    fallback: Option<Fallback>,
    allow: Option<Policy>,
}

impl std::fmt::Debug for ChannelsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelsService")
            .field("fallback", &self.fallback.is_some())
            .field("policy", &self.allow.is_some())
            .finish()
    }
}

impl ChannelsService {
    /// The service, with 404 for HTTP requests other than the client's path.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers HTTP requests other than the client's path with `fallback` (a page
    /// that loads the client, say).
    pub fn fallback(
        mut self,
        fallback: impl Fn(&Request<'_>) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// Allows every connection only what `allow` allows (the same for all; for a
    /// policy per connection, see [`ChannelsHandler::allowing`]).
    pub fn allow(mut self, allow: impl Fn(Action<'_>) -> bool + Send + Sync + 'static) -> Self {
        self.allow = Some(Arc::new(allow));
        self
    }
}

/// The client script as an HTTP response.
pub(crate) fn client_response() -> HttpResponse {
    HttpResponse::new(200, CLIENT_JS)
        .with_header("Content-Type", "text/javascript; charset=utf-8")
        .with_header("Cache-Control", "no-cache")
}

impl Service for ChannelsService {
    type Handler = ChannelsHandler;

    fn upgrade(&self, _: &Request<'_>) -> Upgrade<ChannelsHandler> {
        Upgrade::accept(ChannelsHandler {
            allow: self.allow.clone(),
        })
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        if request.path() == CLIENT_JS_PATH {
            return client_response();
        }
        match &self.fallback {
            Some(fallback) => fallback(request),
            None => HttpResponse::not_found(),
        }
    }
}
