//! Echo mode against wavecore's echo service started in this process: every
//! payload must come back intact and in order.

use std::time::Duration;

use wavecore::{Conn, Handler, Message, Server};
use wavecore_load::{Config, Mode};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

fn config(server: &Server) -> Config {
    let addr = server.local_addr();
    Config {
        mode: Mode::Echo,
        addr,
        host: addr.to_string(),
        connections: 20,
        in_flight: 2,
        size: 64,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        threads: 2,
        ..Config::default()
    }
}

fn server() -> Server {
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        .max_backpressure(64 << 20)
        .start(wavecore::accept_all(|| Echo))
        .expect("server starts")
}

#[test]
fn echo_payloads_come_back_intact() {
    let server = server();
    for binary in [false, true] {
        let cfg = Config {
            binary,
            server_pid: Some(std::process::id()),
            ..config(&server)
        };
        let report = wavecore_load::run(&cfg).unwrap();
        assert_eq!(report.tally.errors, 0, "{}", report.summary());
        assert_eq!(report.established, 20);
        assert!(report.tally.messages > 100, "{}", report.summary());
        assert_eq!(report.tally.bytes, report.tally.messages * 64);
        assert!(report.cpu_us_per_msg().is_some());
        assert!(report.json().contains("\"errors\":0"));
    }
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn large_messages_and_deep_pipelines() {
    let server = server();
    let cfg = Config {
        connections: 4,
        in_flight: 16,
        size: 100_000,
        ..config(&server)
    };
    let report = wavecore_load::run(&cfg).unwrap();
    assert_eq!(report.tally.errors, 0, "{}", report.summary());
    assert!(report.tally.messages > 0);
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn refused_connections_fail_the_run() {
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = Config {
        addr: port,
        host: port.to_string(),
        connections: 3,
        duration: Duration::from_millis(100),
        warmup: Duration::ZERO,
        ..Config::default()
    };
    // Nothing opened: the run fails at once, with the first connection's error.
    let error = wavecore_load::run(&cfg).expect_err("no connection opened");
    assert!(
        error.contains(&format!("no connection opened to ws://{port}/ (3 tried")),
        "{error}"
    );
    assert!(error.contains("Connection refused"), "{error}");
}

#[test]
fn connect_with_a_server_pid_measures_halfway_and_at_the_margin() {
    let server = server();
    let cfg = Config {
        mode: Mode::Connect,
        connections: 21,
        duration: Duration::from_millis(200),
        warmup: Duration::ZERO,
        server_pid: Some(std::process::id()),
        ..config(&server)
    };
    let report = wavecore_load::run(&cfg).unwrap();
    assert_eq!(report.tally.errors, 0, "{}", report.summary());
    assert_eq!(report.established, 21);
    // The first half (connections 0 to 9) opened alone, was measured, then the rest.
    let (open, _) = report.halfway.expect("measured halfway");
    assert_eq!(open, 10);
    assert!(report.bytes_per_conn().is_some());
    assert!(report.marginal_bytes_per_conn().is_some());
    assert!(
        report.summary().contains("at the margin"),
        "{}",
        report.summary()
    );
    assert!(report.json().contains("\"halfway_established\":10"));

    // Without a server to measure, connections open in one go.
    let report = wavecore_load::run(&Config {
        server_pid: None,
        ..cfg
    })
    .unwrap();
    assert_eq!(report.established, 21);
    assert_eq!(report.halfway, None);
    assert!(report.json().contains("\"marginal_bytes_per_conn\":null"));
}
