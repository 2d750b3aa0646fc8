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

/// Answers one client message of the channels protocol on `conn` (see
/// docs/channels.md): subscribe (with recovery), unsubscribe, publish. A request
/// that is JSON but not a valid one gets an `error` reply and the connection stays
/// open; text that is not JSON closes it with 1007 (Invalid Payload Data), and a
/// binary message with 1003 (Unsupported Data).
pub fn serve_message(conn: &mut Conn<'_>, message: Message<'_>) {
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
            let reply = match conn.publish_channel(&channel, &data) {
                Ok(position) => protocol::published(&channel, position, id.as_ref()),
                Err(e) => protocol::error(&e.to_string(), Some(&channel), id.as_ref()),
            };
            conn.send_text(&reply);
        }
    }
}

/// A connection speaking the channels protocol: every message goes to
/// [`serve_message`].
#[derive(Debug, Default)]
pub struct ChannelsHandler;

impl Handler for ChannelsHandler {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        serve_message(conn, message);
    }
}

type Fallback = Arc<dyn Fn(&Request<'_>) -> HttpResponse + Send + Sync>;

/// A [`Service`] for the channels protocol: accepts every WebSocket upgrade with a
/// [`ChannelsHandler`], answers `GET /wavecore-channels.js` with [`CLIENT_JS`], and
/// every other HTTP request with its fallback (404 unless set).
#[derive(Clone, Default)]
pub struct ChannelsService {
    fallback: Option<Fallback>,
}

impl std::fmt::Debug for ChannelsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelsService")
            .field("fallback", &self.fallback.is_some())
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
        Upgrade::accept(ChannelsHandler)
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
