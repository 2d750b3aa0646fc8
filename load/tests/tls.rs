//! `wss://` runs against an in-process wavecore TLS server with a certificate made
//! at test time: echo payloads come back intact (trusting the certificate, and with
//! verification off), broadcasts reach every subscriber in order, and idle
//! connections are held.

use std::sync::Arc;
use std::time::Duration;

use wavecore::rustls::RootCertStore;
use wavecore::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use wavecore::{Conn, Handler, Message, Server};
use wavecore_load::tls::TlsTarget;
use wavecore_load::{Config, Mode};

/// Echoes, or on `/broadcast` subscribes to one topic and publishes what it receives.
struct Echo {
    room: bool,
}

impl Handler for Echo {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.room {
            conn.subscribe("room");
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if self.room {
            conn.publish("room", message);
        } else {
            conn.send(message);
        }
    }
}

struct Routes;

impl wavecore::Service for Routes {
    type Handler = Echo;

    fn upgrade(&self, request: &wavecore::Request<'_>) -> wavecore::Upgrade<Echo> {
        wavecore::Upgrade::accept(Echo {
            room: request.path() == "/broadcast",
        })
    }
}

/// A TLS echo server for `localhost` and a target that trusts its certificate.
fn start() -> (Server, TlsTarget) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = wavecore::tls::server_config(vec![cert.clone()], key).unwrap();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .max_backpressure(64 << 20)
        .tls(config)
        .start(Routes)
        .expect("server starts");
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let target = TlsTarget {
        config: wavecore::client::tls_config(roots),
        name: ServerName::try_from("localhost").unwrap(),
    };
    (server, target)
}

fn config(server: &Server, tls: TlsTarget) -> Config {
    let addr = server.local_addr();
    Config {
        mode: Mode::Echo,
        addr,
        host: format!("localhost:{}", addr.port()),
        connections: 10,
        in_flight: 2,
        size: 64,
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(200),
        threads: 2,
        tls: Some(tls),
        ..Config::default()
    }
}

#[test]
fn wss_echo_payloads_come_back_intact() {
    let (server, trusted) = start();
    let insecure = TlsTarget::new("localhost", None, true).unwrap();
    for (tls, size) in [(trusted, 64), (insecure, 20_000)] {
        let cfg = Config {
            size,
            ..config(&server, tls)
        };
        let report = wavecore_load::run(&cfg).unwrap();
        assert_eq!(report.tally.errors, 0, "{}", report.summary());
        assert_eq!(report.established, 10);
        assert!(report.tally.messages > 0, "{}", report.summary());
        assert_eq!(report.tally.bytes, report.tally.messages * size as u64);
    }
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn wss_broadcast_reaches_every_subscriber_in_order() {
    let (server, trusted) = start();
    let cfg = Config {
        mode: Mode::Broadcast,
        path: "/broadcast".into(),
        connections: 20,
        publishers: 2,
        window: 8,
        ..config(&server, trusted)
    };
    let report = wavecore_load::run(&cfg).unwrap();
    let t = &report.tally;
    assert_eq!(t.errors, 0, "{}", report.summary());
    assert_eq!((t.lost, t.out_of_order), (0, 0), "{}", report.summary());
    assert_eq!(report.established, 22);
    assert!(t.messages > 0, "{}", report.summary());
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn wss_idle_connections_are_held() {
    let (server, trusted) = start();
    let cfg = Config {
        mode: Mode::Connect,
        connections: 50,
        server_pid: Some(std::process::id()),
        ..config(&server, trusted)
    };
    let report = wavecore_load::run(&cfg).unwrap();
    assert_eq!(report.tally.errors, 0, "{}", report.summary());
    assert_eq!(report.established, 50);
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn wss_urls_on_the_command_line() {
    use clap::Parser;
    let cli = wavecore_load::Cli::try_parse_from([
        "wavecore-load",
        "echo",
        "wss://localhost:9443/chat?room=1",
        "--tls-insecure",
    ])
    .unwrap();
    let cfg = cli.into_config().unwrap();
    assert!(cfg.tls.is_some());
    assert_eq!(cfg.host, "localhost:9443");
    assert_eq!(cfg.path, "/chat?room=1");
    let _ = Arc::clone(&cfg.tls.unwrap().config);
    let cli = wavecore_load::Cli::try_parse_from([
        "wavecore-load",
        "echo",
        "127.0.0.1:1",
        "--tls-insecure",
    ])
    .unwrap();
    assert!(cli.into_config().is_err(), "--tls-insecure needs wss://");
}
