//! What wavecore tells the `tracing` facade, seen by a test subscriber installed for
//! this test binary: the server's start at `info`, a handler panic at `error` with its
//! message and connection id, a refused upgrade and a protocol close at `debug` with
//! the reason, and nothing at all for a connection's ordinary messages.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use wavecore::{Conn, ConnId, Handler, Message, Request, Service, Upgrade};

/// One event as the test subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    fields: HashMap<String, String>,
}

impl Seen {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// Records every event, at every level.
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
}

/// The events seen so far by this binary's global subscriber.
fn seen() -> Vec<Seen> {
    static EVENTS: OnceLock<Arc<Mutex<Vec<Seen>>>> = OnceLock::new();
    EVENTS
        .get_or_init(|| {
            let events = Arc::new(Mutex::new(Vec::new()));
            let subscriber = tracing_subscriber::registry().with(Recorder(events.clone()));
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            events
        })
        .lock()
        .unwrap()
        .clone()
}

/// The id and peer address of each connection opened (ids restart at 1 with each
/// server, so the peer tells this test's connection apart).
type Ids = Arc<Mutex<Vec<(ConnId, SocketAddr)>>>;

/// Echoes; panics on "boom"; records its connection.
struct Panicky {
    ids: Ids,
}

impl Handler for Panicky {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.ids.lock().unwrap().push((conn.id(), conn.peer_addr()));
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message == Message::Text("boom") {
            panic!("boom: the handler's own bug");
        }
        conn.send(message);
    }
}

struct App {
    ids: Ids,
}

impl Service for App {
    type Handler = Panicky;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Panicky> {
        if request.path() == "/private" {
            return Upgrade::refuse(403, "members only");
        }
        Upgrade::accept(Panicky {
            ids: self.ids.clone(),
        })
    }
}

fn start() -> (TestServer, Ids) {
    seen();
    let ids = Arc::default();
    let server = TestServer::start(
        builder(),
        App {
            ids: Arc::clone(&ids),
        },
    );
    (server, ids)
}

/// The events about the connection `(id, peer)`.
fn about((id, peer): (ConnId, SocketAddr)) -> Vec<Seen> {
    let (id, peer) = (id.0.to_string(), peer.to_string());
    seen()
        .into_iter()
        .filter(|e| e.field("conn") == id && e.field("peer") == peer)
        .collect()
}

#[test]
fn the_start_is_one_info_line_and_the_configuration_a_debug_event() {
    let (server, _) = start();
    let address = server.addr.to_string();
    let start = seen()
        .into_iter()
        .find(|e| {
            e.field("address") == address && e.field("message") == "wavecore server listening"
        })
        .expect("a start event");
    assert_eq!(start.level, Level::INFO);
    assert_eq!(start.field("reactors"), "1");
    // The suite runs on either backend (WAVECORE_BACKEND).
    let backend = match wavecore::Backend::from_env() {
        Some(wavecore::Backend::IoUring) => "io_uring",
        _ => "epoll (mio)",
    };
    assert_eq!(start.field("backend"), backend);
    assert_eq!(start.field("tls"), "false");
    // One short line: the full configuration is a debug event of its own.
    assert_eq!(start.field("max_connections"), "");
    let config = seen()
        .into_iter()
        .find(|e| {
            e.field("address") == address && e.field("message") == "wavecore server configuration"
        })
        .expect("a configuration event");
    assert_eq!(config.level, Level::DEBUG);
    assert!(
        config.field("config").contains("max_connections: 100000"),
        "{config:?}"
    );
}

#[test]
fn a_handler_panic_is_an_error_event_with_its_message_and_connection() {
    let (server, ids) = start();
    let mut ws = ws_connect(server.addr);
    ws.send(tungstenite::Message::text("boom")).unwrap();
    assert_eq!(ws_read_close(&mut ws).0, 1011);
    let id = ids.lock().unwrap()[0];
    let events = about(id);
    let panic = events
        .iter()
        .find(|e| e.level == Level::ERROR)
        .unwrap_or_else(|| panic!("no error event for {id:?}: {events:?}"));
    assert!(
        panic
            .field("message")
            .contains("boom: the handler's own bug"),
        "{panic:?}"
    );
    assert_eq!(panic.field("callback"), "on_message");
}

#[test]
fn a_refused_upgrade_is_a_debug_event_with_the_reason() {
    let (server, _) = start();
    let reply = http_exchange(server.addr, &upgrade_request("/private", &[], ""));
    assert_eq!(reply.status, 403);
    let refusal = seen()
        .into_iter()
        .find(|e| e.field("message") == "request refused: 403 members only")
        .expect("a refusal event");
    assert_eq!(refusal.level, Level::DEBUG);
    assert_eq!(refusal.field("reason"), "service");
    assert_eq!(refusal.field("status"), "403");
}

#[test]
fn a_protocol_close_is_a_debug_event_with_the_reason() {
    let (server, ids) = start();
    let mut stream = raw_upgrade(server.addr);
    // An unmasked client frame: 1002.
    use std::io::Write;
    stream
        .write_all(&encode_frame(true, OP_TEXT, b"x", false))
        .unwrap();
    assert_eq!(read_frame(&mut stream).unwrap().close_code(), 1002);
    let id = ids.lock().unwrap()[0];
    let events = about(id);
    assert!(
        events.iter().any(|e| e.level == Level::DEBUG
            && e.field("code") == "1002"
            && e.field("message").contains("client frame not masked")),
        "{events:?}"
    );
}

#[test]
fn ordinary_messages_and_a_normal_close_log_nothing() {
    let (server, ids) = start();
    let mut ws = ws_connect(server.addr);
    for i in 0..200 {
        let text = format!("message {i}");
        ws.send(tungstenite::Message::text(text.clone())).unwrap();
        assert_eq!(ws_read_data(&mut ws).into_text().unwrap(), text);
    }
    ws.close(None).unwrap();
    let _ = ws_read_close(&mut ws);
    assert!(wait_until(|| server.handle.connections() == 0));
    let id = ids.lock().unwrap()[0];
    assert_eq!(about(id).len(), 0, "{:?}", about(id));
}
