//! The metrics over real sockets: counters move as connections and messages do, and
//! `/metrics` parses as Prometheus text 0.0.4 and as OpenMetrics 1.0 with Python's
//! `prometheus_client` parsers (`tests/metrics/exposition.py`, from the interop venv:
//! `bash .ci/install-interop.sh`; skipped with a note when it is missing, unless `CI`
//! is set).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use wavecore::{Conn, Handler, HttpResponse, Message, Request, Service, Upgrade};

/// Subscribes to `room` on open; `pub:TEXT` publishes TEXT to the room, anything else
/// is echoed.
struct Member;

impl Handler for Member {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.subscribe("room");
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match message {
            Message::Text(text) if text.starts_with("pub:") => {
                conn.publish("room", Message::Text(&text[4..]));
            }
            message => {
                conn.send(message);
            }
        }
    }
}

struct Room;

impl Service for Room {
    type Handler = Member;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Member> {
        match request.path() {
            "/private" => Upgrade::refuse(403, "members only"),
            _ => Upgrade::accept(Member),
        }
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/metrics" => HttpResponse::metrics(request),
            _ => HttpResponse::not_found(),
        }
    }
}

/// The value of the sample `name` (with its labels, e.g. `x{code="1000"}`) in
/// Prometheus text, 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[test]
fn counters_move_with_connections_and_messages() {
    let server = TestServer::start(builder().workers(2), Room);
    let before = server.handle.metrics_text();
    assert_eq!(sample(&before, "wavecore_reactors"), 2.0);
    assert_eq!(sample(&before, "wavecore_connections_open"), 0.0);

    let mut a = ws_connect(server.addr);
    let mut b = ws_connect(server.addr);
    for text in ["one", "two", "three"] {
        a.send(tungstenite::Message::text(text)).unwrap();
        assert_eq!(ws_read_data(&mut a).into_text().unwrap(), text);
    }
    b.send(tungstenite::Message::text("pub:hello")).unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(ws_read_data(ws).into_text().unwrap(), "hello");
    }
    let reply = http_exchange(server.addr, &upgrade_request("/private", &[], ""));
    assert_eq!(reply.status, 403);
    a.close(None).unwrap();
    let _ = ws_read_close(&mut a);
    assert!(wait_until(|| server.handle.connections() == 1));

    let after = server.handle.metrics_text();
    let moved = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(moved("wavecore_connections_accepted_total"), 3.0);
    assert_eq!(sample(&after, "wavecore_connections_open"), 1.0);
    assert_eq!(moved("wavecore_messages_received_total"), 4.0);
    assert_eq!(moved("wavecore_message_received_bytes_total"), 20.0);
    assert_eq!(moved("wavecore_messages_sent_total"), 3.0);
    assert_eq!(moved("wavecore_message_sent_bytes_total"), 11.0);
    assert_eq!(moved("wavecore_publishes_total"), 1.0);
    assert_eq!(moved("wavecore_deliveries_total"), 2.0);
    assert_eq!(
        moved("wavecore_connections_closed_total{code=\"1005\"}"),
        1.0,
        "a close frame without a code: 1005\n{after}"
    );
    assert_eq!(
        moved("wavecore_handshake_refusals_total{reason=\"service\"}"),
        1.0
    );
    assert_eq!(sample(&after, "wavecore_topics"), 1.0);
    let turns: f64 = (0..2)
        .map(|r| {
            sample(
                &after,
                &format!("wavecore_turn_duration_seconds_count{{reactor=\"{r}\"}}"),
            )
        })
        .sum();
    assert!(turns > 0.0, "{after}");
    assert_eq!(server.handle.stats().messages_received, 4);
}

fn venv_python() -> PathBuf {
    std::env::var_os("WAVECORE_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/wavecore-interop-venv"))
        .join("bin/python")
}

/// Fails the test unless Python's `prometheus_client` can run (the test is
/// `#[ignore]`d: `--include-ignored` runs it).
fn python_ready(python: &Path) {
    let ready = Command::new(python)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|status| status.success());
    if !ready {
        let note = format!(
            "{} cannot import prometheus_client: run `bash .ci/install-interop.sh`",
            python.display()
        );
        panic!("{note}");
    }
}

#[test]
#[ignore = "needs Python prometheus_client: bash .ci/install-interop.sh, then --include-ignored"]
fn metrics_parse_as_prometheus_and_openmetrics_text_over_keep_alive() {
    let python = venv_python();
    python_ready(&python);
    let server = TestServer::start(builder(), Room);
    let mut ws = ws_connect(server.addr);
    ws.send(tungstenite::Message::text("ping")).unwrap();
    ws_read_data(&mut ws);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metrics/exposition.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(server.addr.to_string())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the parsers refused the exposition:\n{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut formats: HashMap<&str, HashMap<&str, f64>> = HashMap::new();
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("reused True"),
        "two scrapes, one connection"
    );
    assert_eq!(
        lines.next(),
        Some("type P text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        lines.next(),
        Some("type O application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    for line in lines {
        let (tag, rest) = line.split_once(' ').unwrap();
        let (name, value) = rest.rsplit_once(' ').unwrap();
        formats
            .entry(tag)
            .or_default()
            .insert(name, value.parse().unwrap());
    }
    for tag in ["P", "O"] {
        let samples = &formats[tag];
        assert_eq!(samples["wavecore_messages_received_total{}"], 1.0, "{tag}");
        assert_eq!(samples["wavecore_connections_open{}"], 1.0, "{tag}");
        assert_eq!(
            samples["wavecore_connections_closed_total{code=1000}"], 0.0,
            "{tag}"
        );
        assert!(samples["wavecore_turn_duration_seconds_count{reactor=0}"] > 0.0);
        assert!(samples.contains_key("wavecore_turn_duration_seconds_bucket{le=+Inf,reactor=0}"));
    }
    assert_eq!(
        formats["P"].len(),
        formats["O"].len(),
        "both formats carry the same samples"
    );
    assert_eq!(server.handle.stats().accepted, 2, "one WebSocket, one HTTP");
}
