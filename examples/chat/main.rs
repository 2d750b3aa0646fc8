//! The wavecore demo: chat rooms with chosen names, who is online, join and leave
//! notices and timestamps, served with its web page on one port.
//!
//! ```text
//! cargo run --release --example chat -- [ADDR] [--redis URL] [--tls-cert FILE --tls-key FILE]
//!     [--workers N] [--backend epoll|io_uring|auto]
//! ```
//!
//! `--help` lists every option and its default. `ADDR` defaults to 127.0.0.1:9001 (a
//! port alone listens on 127.0.0.1; `--addr` and `--port` also work); Ctrl-C stops
//! it. With `--tls-cert` and `--tls-key` (PEM files; README.md shows how to make a
//! self-signed pair) the page is served over `https://` and connects with `wss://`.
//!
//! With `--redis redis://127.0.0.1:6379`, rooms are shared with every other chat
//! server on that Redis (two processes on two ports, behind a load balancer or not):
//! lines and join/leave notices cross; the member list in a welcome is the local
//! server's (presence is kept per process).
//!
//! Open `http://127.0.0.1:9001/` in a few tabs (`/?room=NAME` for another room). The
//! page logs in with the name it is given (`POST /login`), then connects to
//! `/chat/ROOM` and sends each line as a text message.
//!
//! * **Sessions, off the reactor** (`auth.rs`). The login issues a session in a
//!   cookie, kept in memory (or in Redis with `--redis`); the upgrade is decided by
//!   looking the cookie up on a worker thread (`Upgrade::defer`), so a slow session
//!   store stalls no one; without a valid session it is refused with 401 (the page
//!   logs in first, and logs in again by itself after a restart that forgot the
//!   sessions). A name is one person's while their session lasts; their tabs share
//!   it. A logout closes the person's other tabs through their connections' handles
//!   (close code 4001).
//! * **Rooms are channels: nothing is missed.** A line is published once to the
//!   channel `room:ROOM` (encoded once; the same bytes reach every member on every
//!   reactor, and no handler runs for them), which keeps the room's last
//!   [`HISTORY`] lines and numbers each (an offset, in an epoch). The page remembers
//!   the position of the last line it showed and reconnects with it
//!   (`/chat/ROOM?since=EPOCH:OFFSET`): a tab that lost its connection is sent every
//!   line it missed, once, in order. When the history cannot give them back (the
//!   server restarted: its history was in memory), the page is told so and says
//!   plainly that earlier lines are gone. With `--redis`, the rooms' channels live in
//!   Redis Streams (`RedisChannels`): every chat server on that Redis shares their
//!   order and history, so a tab moved to another server, or through a restart of
//!   either, misses nothing.
//! * **Presence.** [`Rooms`] keeps who is in which room, under a mutex taken on join
//!   and leave only, never per message. Joins and leaves go out on the room's topic,
//!   numbered by one counter under that mutex; a newcomer subscribes first, then gets
//!   the member list and the current number in its welcome, and the page skips the
//!   events that number already counts.
//! * **Refusals a person can read.** A browser sees neither the status nor the body of
//!   a refused upgrade (it reports 1006), so a bad room is accepted and closed at once
//!   with 1008 and the reason, which the page shows. A name someone else is logged in
//!   with is refused at the login, with the reason.
//! * **Limits.** A line is at most [`MAX_LINE`] bytes of UTF-8 (not characters); the
//!   page counts bytes before sending, and the server closes with 1009 past it.
//! * **Graceful stop.** Ctrl-C or SIGTERM: every page gets Close 1001 and reconnects
//!   (with backoff) when the server is back (`ServerBuilder::shutdown_on_signals`).
//! * **Compression.** permessage-deflate (RFC 7692) is on: every browser offers it, and
//!   a line published to a room is compressed once for all its members (lines under
//!   64 bytes go out as they are).
//! * **Operations.** `/metrics` serves the server's counters to Prometheus;
//!   `RUST_LOG=debug` shows refusals and protocol closes.
//!
//! What the server sends, one JSON object per text message (`at`: milliseconds since
//! the Unix epoch, the server's clock; `seq`: the presence counter):
//!
//! ```text
//! {"type":"welcome","you":7,"name":"Ana","room":"lobby","limit":4096,"seq":12,"at":..,
//!  "members":[{"id":3,"name":"Bo"},{"id":7,"name":"Ana"}]}
//! {"type":"join","seq":13,"id":9,"name":"Cy","at":..}      (and "leave", the same)
//! {"type":"message","id":3,"name":"Bo","text":"hi","at":..}
//! {"type":"message","channel":"room:red","epoch":"..","offset":41,"data":"{..line..}"}
//!                                             (a line from the room's channel: `data`
//!                                              holds the line above as JSON text)
//! {"type":"gap","reason":"..."}                (earlier lines could not be recovered)
//! {"type":"error","reason":"empty lines are not sent"}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use std::process::ExitCode;

use auth::{Auth, MemoryStore, RedisStore, Store};
use clap::Parser;
use wavecore::bridge::RedisBridge;
use wavecore::channels::{ChannelError, History, Position, RedisChannels};
use wavecore::{
    CloseCode, CloseInfo, Conn, ConnId, DeflateConfig, Handler, HttpResponse, Message, Request,
    Server, ServerHandle, Service, Upgrade,
};

mod auth;
#[path = "../common/cli.rs"]
mod cli;

const PAGE: &str = include_str!("page.html");

/// The wavecore demo: chat rooms with presence, served with their web page on one
/// port (open http://ADDR/ in a few browser tabs). Ctrl-C or SIGTERM stops gracefully.
#[derive(Debug, Parser)]
#[command(name = "chat")]
struct Cli {
    #[command(flatten)]
    server: cli::ServerArgs,
    #[command(flatten)]
    bridge: cli::BridgeArgs,
}

/// Longest chat line, in bytes of UTF-8: the server's `max_message_size` (past it the
/// connection is closed with 1009) and the page's limit (sent in the welcome).
const MAX_LINE: usize = 4096;

/// Longest name, in characters.
const MAX_NAME: usize = 24;

/// Longest room name, in characters (ASCII letters, digits, `-`, `_`).
const MAX_ROOM: usize = 32;

/// What a page is told when the lines it missed cannot be given back.
const GAP: &str = r#"{"type":"gap","reason":"earlier lines are gone (the server restarted, or they are too old or too many to replay); what follows is live"}"#;

/// Lines a room's channel keeps for pages that reconnect.
const HISTORY: usize = 500;

/// Who is in which room. Shared by the service and every member.
#[derive(Default)]
struct Rooms {
    /// Set once the server started; presence events are published through it, since
    /// `on_close` has no `Conn` to publish with.
    server: OnceLock<ServerHandle>,
    presence: Mutex<Presence>,
}

#[derive(Default)]
struct Presence {
    /// Numbers every join and leave, in every room, in the order they happened.
    seq: u64,
    rooms: HashMap<String, BTreeMap<ConnId, String>>,
}

impl Rooms {
    /// Adds `member` to its room, tells the room, and returns the member's welcome.
    /// The event is published under the lock, so every reactor's inbox gets the
    /// events in `seq` order.
    fn join(&self, member: &Member) -> String {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        presence.seq += 1;
        let seq = presence.seq;
        let room = presence.rooms.entry(member.room.clone()).or_default();
        room.insert(member.id, member.name.clone());
        let mut members = String::new();
        for (id, name) in room.iter() {
            let comma = if members.is_empty() { "" } else { "," };
            let _ = write!(members, r#"{comma}{{"id":{id},"name":{}}}"#, json(name));
        }
        self.publish_presence("join", seq, member);
        format!(
            r#"{{"type":"welcome","you":{},"name":{},"room":{},"limit":{MAX_LINE},"seq":{seq},"at":{},"members":[{members}]}}"#,
            member.id,
            json(&member.name),
            json(&member.room),
            now_ms(),
        )
    }

    /// Removes `member` from its room and tells the room.
    fn leave(&self, member: &Member) {
        let mut presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        presence.seq += 1;
        let seq = presence.seq;
        if let Some(room) = presence.rooms.get_mut(&member.room) {
            room.remove(&member.id);
            if room.is_empty() {
                presence.rooms.remove(&member.room);
            }
        }
        self.publish_presence("leave", seq, member);
    }

    fn publish_presence(&self, kind: &str, seq: u64, member: &Member) {
        let event = format!(
            r#"{{"type":"{kind}","seq":{seq},"id":{},"name":{},"at":{}}}"#,
            member.id,
            json(&member.name),
            now_ms()
        );
        if let Some(server) = self.server.get() {
            server.publish(&member.topic, Message::Text(&event));
        }
    }
}

/// One page in one room.
pub struct Member {
    rooms: Arc<Rooms>,
    id: ConnId,
    room: String,
    /// Presence (a plain topic, never replayed; across servers through the bridge).
    topic: String,
    /// The room's lines, with history.
    channel: String,
    name: String,
    /// The position of the last line the page showed, from its reconnect.
    since: Option<Position>,
}

/// A connection's handler: a member, or an upgrade to refuse with a reason once open.
pub enum Session {
    Member(Member),
    Refused(&'static str),
}

impl Handler for Session {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        match self {
            Session::Refused(reason) => conn.close(CloseCode::POLICY_VIOLATION, reason),
            Session::Member(member) => {
                member.id = conn.id();
                // Subscribe before joining: no event after the welcome's `seq` is missed.
                conn.subscribe(&member.topic);
                let welcome = member.rooms.join(member);
                conn.send_text(&welcome);
                // Behind the welcome: what the page missed, then the live lines. (With
                // Redis this waits one round trip to it, bounded by its io_timeout.)
                match conn.subscribe_channel(&member.channel, member.since) {
                    Ok(subscribed) if subscribed.recovery.failed() => {
                        conn.send_text(GAP);
                    }
                    Ok(_) => {}
                    Err(e) => conn.close(CloseCode::TRY_AGAIN_LATER, &e.to_string()),
                }
            }
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Session::Member(member) = self else {
            return;
        };
        let Message::Text(text) = message else {
            conn.close(CloseCode::UNSUPPORTED_DATA, "the chat takes text messages");
            return;
        };
        let text = text.trim();
        if text.is_empty() {
            conn.send_text(r#"{"type":"error","reason":"empty lines are not sent"}"#);
            return;
        }
        let line = format!(
            r#"{{"type":"message","id":{},"name":{},"text":{},"at":{}}}"#,
            member.id,
            json(&member.name),
            json(text),
            now_ms()
        );
        // Stored (in memory at once, in Redis on its engine's thread) and sent to the
        // room in the channel's order; a refusal (too large, Redis unreachable) is
        // told to the sender, from whichever thread learns it.
        let handle = conn.handle();
        let told = move |result: Result<Position, ChannelError>| {
            if let Err(e) = result {
                let error = format!(r#"{{"type":"error","reason":{}}}"#, json(&e.to_string()));
                handle.send_text(&error);
            }
        };
        if let Some(result) = conn.publish_channel_with(&member.channel, &line, told.clone()) {
            told(result);
        }
    }

    fn on_close(&mut self, _: CloseInfo<'_>) {
        if let Session::Member(member) = self {
            member.rooms.leave(member);
        }
    }
}

struct Chat {
    rooms: Arc<Rooms>,
    auth: Auth,
}

/// What is wrong with a name, if anything.
fn check_name(name: &str) -> Option<&'static str> {
    (name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control))
        .then_some("names are 1 to 24 characters, without control characters")
}

impl Service for Chat {
    type Handler = Session;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Session> {
        let Some(room) = request.path().strip_prefix("/chat/") else {
            return Upgrade::refuse(404, "chat rooms live under /chat/ROOM");
        };
        if self.rooms.server.get().is_none() {
            return Upgrade::refuse(503, "starting, try again");
        }
        if room.is_empty()
            || room.len() > MAX_ROOM
            || !room
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Upgrade::accept(Session::Refused(
                "room names are 1 to 32 letters (A-Z, a-z), digits, - or _",
            ));
        }
        // `?since=EPOCH:OFFSET`: the last line the page showed (16 hex digits, a
        // number); anything else is no position.
        let since = request.query_param("since").and_then(|since| {
            let (epoch, offset) = since.split_once(':')?;
            Some(Position {
                epoch: u64::from_str_radix(epoch, 16).ok()?,
                offset: offset.parse().ok()?,
            })
        });
        // The name is the session's: looked up off the reactor.
        let (rooms, room) = (self.rooms.clone(), room.to_owned());
        self.auth.upgrade(
            request,
            Box::new(move |name| {
                Session::Member(Member {
                    rooms,
                    id: ConnId(0),
                    topic: format!("room:{room}"),
                    channel: format!("room:{room}"),
                    room,
                    name,
                    since,
                })
            }),
        )
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/" | "/index.html" => HttpResponse::html(PAGE),
            "/login" => self.auth.login(request, check_name),
            "/me" => self.auth.me(request),
            "/logout" => self.auth.logout(request),
            "/health" => HttpResponse::text("ok\n"),
            "/metrics" => HttpResponse::metrics(request),
            _ => HttpResponse::not_found(),
        }
    }
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging();
    let rooms = Arc::new(Rooms::default());
    // Ctrl-C or SIGTERM: no new connections, Close 1001 to every page after what is
    // queued for it, then `join` returns. A second signal exits at once.
    let mut builder = Server::builder()
        .max_message_size(MAX_LINE)
        .permessage_deflate(DeflateConfig::default())
        .channel_history("room:*", History::last(HISTORY))
        // A line of MAX_LINE bytes in its JSON envelope: every byte escaped (a control
        // character takes 6), plus the name and the time.
        .max_channel_data_size(6 * MAX_LINE + 256)
        .shutdown_on_signals(true);
    if let Some(url) = &args.bridge.redis {
        // Presence crosses servers on the bridge's topics; the rooms' lines and their
        // history live in Redis Streams.
        match (RedisBridge::new(url), RedisChannels::new(url)) {
            (Ok(bridge), Ok(channels)) => {
                builder = builder
                    .bridge(bridge.channel_prefix("chat:"))
                    .channel_engine(channels.key_prefix("chat:ch:"));
            }
            (Err(e), _) | (_, Err(e)) => return cli::fail("chat", &e, &args.server),
        }
    }
    let store: Box<dyn Store> = match &args.bridge.redis {
        Some(url) => match RedisStore::new(url) {
            Ok(store) => Box::new(store),
            Err(e) => {
                eprintln!("chat: cannot use the Redis at {url} for sessions: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(MemoryStore::default()),
    };
    let chat = Chat {
        rooms: rooms.clone(),
        auth: Auth::new(store, args.server.tls_cert.is_some()),
    };
    let server = match args.server.apply(builder).start(chat) {
        Ok(server) => server,
        Err(e) => return cli::fail("chat", &e, &args.server),
    };
    let _ = rooms.server.set(server.handle());
    println!(
        "chat on {}://{}/ (open it in a few browser tabs; Ctrl-C stops)",
        args.server.http_scheme(),
        server.local_addr()
    );
    let outcome = server.join();
    println!("stopped");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("chat: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// `text` as a JSON string literal.
pub fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}
