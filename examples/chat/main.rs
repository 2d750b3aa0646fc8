//! A chat server: serves its web page over HTTP on the same port and relays messages
//! between the browsers in the same room.
//!
//! ```text
//! cargo run --release --example chat -- [ADDR] [--redis URL]     # default 127.0.0.1:9001
//! ```
//!
//! With `--redis redis://127.0.0.1:6379`, rooms are shared with every other chat
//! server on that Redis (two processes on two ports, behind a load balancer or not).
//!
//! Open `http://127.0.0.1:9001/` in a few browser tabs. Rooms are topics: the page at
//! `/` joins room `lobby`; `/?room=NAME` joins room NAME (the WebSocket connects to
//! `/chat/NAME`). Each message is published once to the room's topic and shared by every
//! member, on every reactor.

use wavecore::{
    Conn, Handler, HttpResponse, Message, RedisBridge, Request, Server, Service, Upgrade,
};

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
            _ => HttpResponse::not_found(),
        }
    }
}

/// The command line: `[ADDR] [--redis URL]`.
fn args() -> std::io::Result<(String, Option<String>)> {
    let (mut addr, mut redis) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--redis" {
            let url = args.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "--redis needs a URL")
            })?;
            redis = Some(url);
        } else {
            addr = Some(arg);
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:9001".into()), redis))
}

fn main() -> std::io::Result<()> {
    let (addr, redis) = args()?;
    let mut builder = Server::builder().bind(addr).max_message_size(MAX_LINE);
    if let Some(url) = redis {
        builder = builder.bridge(RedisBridge::new(&url)?.channel_prefix("chat:"));
    }
    let server = builder.start(Chat)?;
    println!(
        "chat on http://{}/ (open it in a few browser tabs)",
        server.local_addr()
    );
    server.join()?;
    Ok(())
}
