//! A chat server: serves its web page over HTTP on the same port and relays messages
//! between the browsers in the same room.
//!
//! ```text
//! cargo run --release --example chat -- [ADDR]     # default 127.0.0.1:9001
//! ```
//!
//! Open `http://127.0.0.1:9001/` in a few browser tabs. Rooms are topics: the page at
//! `/` joins room `lobby`; `/?room=NAME` joins room NAME (the WebSocket connects to
//! `/chat/NAME`). Each message is published once to the room's topic and shared by every
//! member, on every reactor.
//!
//! `/metrics` serves the server's counters to Prometheus; Ctrl-C (or `SIGTERM`) stops
//! gracefully, closing every browser with 1001; `RUST_LOG=debug` shows refusals and
//! protocol closes.

use tracing_subscriber::EnvFilter;
use wavecore::{Conn, Handler, HttpResponse, Message, Request, Server, Service, Upgrade};

const PAGE: &str = include_str!("page.html");

/// Longest accepted chat line, in bytes.
const MAX_LINE: usize = 4096;

/// One browser in one room.
struct Member {
    room: String,
    topic: String,
    name: String,
}

impl Handler for Member {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.subscribe(&self.topic);
        conn.send_text(&format!("* you are {} in {}", self.name, self.room));
        conn.publish_to_others(
            &self.topic,
            Message::Text(&format!("* {} joined", self.name)),
        );
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        let text = text.trim();
        if !text.is_empty() {
            conn.publish(
                &self.topic,
                Message::Text(&format!("{}: {}", self.name, text)),
            );
        }
    }
}

struct Chat;

impl Service for Chat {
    type Handler = Member;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Member> {
        let Some(room) = request.path().strip_prefix("/chat/") else {
            return Upgrade::refuse(404, "chat rooms live under /chat/NAME");
        };
        let valid = !room.is_empty()
            && room.len() <= 32
            && room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Upgrade::refuse(400, "room names are 1-32 letters, digits, - or _");
        }
        let name = format!("guest-{}", request.peer_addr().port());
        Upgrade::accept(Member {
            room: room.to_owned(),
            topic: format!("room:{room}"),
            name,
        })
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/" | "/index.html" => HttpResponse::html(PAGE),
            "/health" => HttpResponse::text("ok\n"),
            "/metrics" => HttpResponse::metrics(request),
            _ => HttpResponse::not_found(),
        }
    }
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let server = Server::builder()
        .bind(addr)
        .max_message_size(MAX_LINE)
        .shutdown_on_signals(true)
        .start(Chat)?;
    tracing::info!(
        "chat on http://{}/ (open it in a few browser tabs; metrics at /metrics)",
        server.local_addr()
    );
    server.join()?;
    Ok(())
}
