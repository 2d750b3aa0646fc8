//! The interop server: the contract of `tests/interop/README.md` as a [`Service`] and
//! [`Handler`], started in-process on `127.0.0.1:0`.

use wavecore::{
    CloseCode, Conn, DeflateConfig, Handler, HttpResponse, Message, Request, Server, Service,
    Upgrade,
};

/// The browser test page, served at `GET /interop.html`.
const INTEROP_HTML: &str = include_str!("../interop/browser/interop.html");

/// The subprotocols the server knows; it selects the first of these the client offers.
const PROTOCOLS: [&str; 2] = ["wavecore.v2", "wavecore.v1"];

/// The topic every `/broadcast` connection subscribes and publishes to.
const BROADCAST: &str = "broadcast";

/// Decides upgrades and serves the page and `/health`.
pub struct InteropService;

/// One connection: echoes, or on `/broadcast` publishes to every `/broadcast` connection.
pub struct InteropHandler {
    broadcast: bool,
}

/// `close:<code>:<reason>` as a code and reason; `None` for any other text.
fn close_command(text: &str) -> Option<(u16, &str)> {
    let rest = text.strip_prefix("close:")?;
    let (code, reason) = rest.split_once(':')?;
    Some((code.parse().ok()?, reason))
}

impl Handler for InteropHandler {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.broadcast {
            conn.subscribe(BROADCAST);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if let Message::Text(text) = message
            && let Some((code, reason)) = close_command(text)
        {
            conn.close(CloseCode(code), reason);
            return;
        }
        if self.broadcast {
            conn.publish(BROADCAST, message);
        } else {
            conn.send(message);
        }
    }
}

impl Service for InteropService {
    type Handler = InteropHandler;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<InteropHandler> {
        if request.path() == "/forbidden" {
            return Upgrade::refuse(403, "forbidden");
        }
        let handler = InteropHandler {
            broadcast: request.path() == "/broadcast",
        };
        let chosen = request
            .protocols()
            .find(|offered| PROTOCOLS.contains(offered));
        match chosen {
            Some(protocol) => Upgrade::accept(handler).with_protocol(protocol),
            None => Upgrade::accept(handler),
        }
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match (request.method(), request.path()) {
            ("GET", "/interop.html") => HttpResponse::html(INTEROP_HTML),
            ("GET", "/health") => HttpResponse::text("ok"),
            _ => HttpResponse::not_found(),
        }
    }
}

/// Starts the interop server on a free port of 127.0.0.1.
pub fn start() -> Server {
    builder()
        .start(InteropService)
        .expect("start the interop server")
}

/// The interop server over TLS, with the certificate and key in the PEM files `cert`
/// and `key`.
pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Server {
    builder()
        .tls_pem_files(cert, key)
        .start(InteropService)
        .expect("start the interop server over TLS")
}

fn builder() -> wavecore::ServerBuilder {
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(2)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .max_backpressure(128 << 20)
        .permessage_deflate(DeflateConfig::default())
}
