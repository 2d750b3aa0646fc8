//! TLS (`wss://`, `https://`) over real sockets, with certificates made at test time:
//! echo and broadcast through the library's client, the close handshake followed by
//! close_notify, EOF without close_notify (1006), the handshake timeout during the TLS
//! handshake, bad input (garbage, a truncated ClientHello, an oversized record,
//! plaintext HTTP) answered with a prompt close while the server goes on serving,
//! HTTP over TLS, ALPN (`h2` alone refused), replacing the certificate while the
//! server runs, clear errors for unusable certificate files and configurations (never
//! plaintext on the TLS port), a client's close_notify answered, refusals over
//! capacity (bad input and stalled handshakes end promptly), and a reader that never
//! reads closed at `max_backpressure`.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use wavecore::client::{Client, ClientMessage, tls_config_trusting_pem_file};
use wavecore::rustls::pki_types::ServerName;
use wavecore::rustls::{ClientConfig, ClientConnection, StreamOwned};
use wavecore::{Conn, Handler, Message, SendStatus};

/// A self-signed certificate for `localhost` and its key, as PEM files in the
/// temporary directory (removed when dropped).
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let stem = format!(
            "wavecore-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir();
        let files = Self {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        files
    }

    /// A client configuration trusting this certificate only.
    fn client_config(&self) -> Arc<ClientConfig> {
        tls_config_trusting_pem_file(&self.cert).unwrap()
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert);
        let _ = std::fs::remove_file(&self.key);
    }
}

fn tls_server(certs: &CertFiles, builder: wavecore::ServerBuilder) -> (TestServer, Closes) {
    let closes = Closes::default();
    let server = TestServer::start(
        builder.tls_pem_files(&certs.cert, &certs.key),
        echo_service(&closes),
    );
    (server, closes)
}

/// A TLS server for one connection (`builder`'s other settings kept) whose close
/// timeout is an hour, so a refusal that waited for it would show; with its one
/// connection open (returned, to hold it).
fn full_tls_server(certs: &CertFiles, builder: wavecore::ServerBuilder) -> (TestServer, Client) {
    let (server, _) = tls_server(
        certs,
        builder
            .max_connections(1)
            .close_timeout(Duration::from_secs(3600)),
    );
    let first = connect(certs, server.addr);
    assert!(wait_until(|| server.handle.stats().open_connections == 1));
    (server, first)
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("wss://localhost:{}{path}", addr.port())
}

fn connect(certs: &CertFiles, addr: SocketAddr) -> Client {
    let client = Client::connect_tls(&url(addr, "/"), &[], certs.client_config()).unwrap();
    client.stream().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client
}

/// A rustls stream to the server (TLS only, no WebSocket yet).
fn tls_stream(certs: &CertFiles, addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = tcp(addr);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(certs.client_config(), name).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Upgrades a TLS stream to a WebSocket and reads the 101 response head.
fn upgrade(stream: &mut StreamOwned<ClientConnection, TcpStream>) {
    let request = upgrade_request("/", &[], "");
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "EOF in the response head"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Reads one server frame (unmasked, payload under 64 KiB) from a TLS stream:
/// (opcode, payload).
fn read_tls_frame(stream: &mut StreamOwned<ClientConnection, TcpStream>) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).unwrap();
            u16::from_be_bytes(ext) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

/// Reads whatever the server sends until it closes; returns the bytes and whether
/// the connection ended (EOF or reset) rather than timing out.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => return (got, false),
            Err(_) => return (got, true),
        }
    }
}

/// The server still serves a good client: a wss echo round trip.
fn assert_serves(certs: &CertFiles, addr: SocketAddr) {
    let mut client = connect(certs, addr);
    client.send_text("still here").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Text("still here".into())
    );
}

#[test]
fn wss_echo_of_small_and_large_messages() {
    let certs = CertFiles::new();
    let (server, _) = tls_server(&certs, builder());
    let mut client = connect(&certs, server.addr);
    assert!(client.is_tls());
    for i in 0..100 {
        let text = format!("message {i}");
        client.send_text(&text).unwrap();
        assert_eq!(client.recv().unwrap(), ClientMessage::Text(text));
    }
    // Over one TLS record (16 KiB), and over many.
    for len in [16 << 10, (16 << 10) + 1, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        client.send_binary(&data).unwrap();
        assert_eq!(client.recv().unwrap(), ClientMessage::Binary(data));
    }
    client.close(1000, "bye").unwrap();
    assert!(matches!(
        client.recv().unwrap(),
        ClientMessage::Close(Some((1000, _)))
    ));
}

#[test]
fn a_large_reply_to_a_reader_that_waits_arrives_whole() {
    // The server's writes block (the client reads nothing for a while), so
    // ciphertext waits in the session and is written as the socket takes it.
    let certs = CertFiles::new();
    let (server, _) = tls_server(&certs, builder());
    let mut client = connect(&certs, server.addr);
    let data: Vec<u8> = (0..(8 << 20)).map(|i| (i % 253) as u8).collect();
    client.send_binary(&data).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(client.recv().unwrap(), ClientMessage::Binary(data));
}

/// Subscribes to "news" when opened; any message is published to "news".
struct Subscriber;

impl Handler for Subscriber {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.subscribe("news");
        assert_eq!(conn.send(Message::Text("subscribed")), SendStatus::Success);
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.publish("news", message);
    }
}

#[test]
fn wss_broadcast_reaches_every_subscriber_in_order() {
    let certs = CertFiles::new();
    let server = TestServer::start(
        builder().workers(2).tls_pem_files(&certs.cert, &certs.key),
        wavecore::accept_all(|| Subscriber),
    );
    let mut clients: Vec<Client> = (0..20).map(|_| connect(&certs, server.addr)).collect();
    for client in &mut clients {
        assert_eq!(
            client.recv().unwrap(),
            ClientMessage::Text("subscribed".into())
        );
    }
    for i in 0..50 {
        server
            .handle
            .publish("news", Message::Text(&format!("outside {i}")));
    }
    clients[0].send_text("from a subscriber").unwrap();
    for client in &mut clients {
        for i in 0..50 {
            assert_eq!(
                client.recv().unwrap(),
                ClientMessage::Text(format!("outside {i}"))
            );
        }
        assert_eq!(
            client.recv().unwrap(),
            ClientMessage::Text("from a subscriber".into())
        );
    }
}

#[test]
fn close_notify_follows_the_close_frame() {
    let certs = CertFiles::new();
    let (server, closes) = tls_server(&certs, builder());
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    upgrade(&mut stream);
    stream
        .write_all(&encode_frame(
            true,
            OP_CLOSE,
            &close_payload(1000, "done"),
            true,
        ))
        .unwrap();
    let (opcode, payload) = read_tls_frame(&mut stream);
    assert_eq!(
        (opcode, &payload[..2]),
        (OP_CLOSE, &1000u16.to_be_bytes()[..])
    );
    // rustls reads Ok(0) only after a close_notify; a bare TCP EOF is an error.
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(wait_closes(&closes, 1), [(1000, "done".to_owned(), true)]);
}

#[test]
fn a_server_initiated_close_ends_with_close_notify() {
    struct CloseAtOnce;
    impl Handler for CloseAtOnce {
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            conn.close(wavecore::CloseCode(4000), "go");
        }
        fn on_message(&mut self, _: &mut Conn<'_>, _: Message<'_>) {}
    }
    let certs = CertFiles::new();
    let server = TestServer::start(
        builder().tls_pem_files(&certs.cert, &certs.key),
        wavecore::accept_all(|| CloseAtOnce),
    );
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    upgrade(&mut stream);
    let (opcode, payload) = read_tls_frame(&mut stream);
    assert_eq!(
        (opcode, &payload[..2]),
        (OP_CLOSE, &4000u16.to_be_bytes()[..])
    );
    stream
        .write_all(&encode_frame(
            true,
            OP_CLOSE,
            &close_payload(4000, ""),
            true,
        ))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        stream.read_to_end(&mut rest).unwrap(),
        0,
        "close_notify, then EOF"
    );
    assert!(rest.is_empty());
}

#[test]
fn eof_without_close_notify_is_an_abnormal_closure() {
    let certs = CertFiles::new();
    let (server, closes) = tls_server(&certs, builder());
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    upgrade(&mut stream);
    stream.sock.shutdown(Shutdown::Both).unwrap();
    assert_eq!(wait_closes(&closes, 1), [(1006, String::new(), false)]);
    assert!(wait_until(|| server.handle.connections() == 0));
}

#[test]
fn close_notify_without_a_close_frame_is_an_abnormal_closure() {
    let certs = CertFiles::new();
    let (server, closes) = tls_server(&certs, builder());
    let mut stream = tls_stream(&certs, server.addr);
    upgrade(&mut stream);
    stream.conn.send_close_notify();
    stream.flush().unwrap();
    assert_eq!(wait_closes(&closes, 1), [(1006, String::new(), false)]);
    assert!(wait_until(|| server.handle.connections() == 0));
}

/// The first bytes of a real ClientHello to the server (captured from rustls).
fn client_hello(certs: &CertFiles) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(certs.client_config(), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

/// Sends half a ClientHello to `addr`, then nothing: asserts the server closes the
/// connection without a word.
fn assert_half_a_client_hello_is_cut(certs: &CertFiles, addr: SocketAddr) {
    let hello = client_hello(certs);
    let mut stream = tcp(addr);
    stream.write_all(&hello[..hello.len() / 2]).unwrap();
    let (got, closed) = read_until_closed(&mut stream);
    assert!(closed, "the server closed the stalled handshake");
    assert!(
        got.is_empty(),
        "nothing to say to half a ClientHello: {got:?}"
    );
}

#[test]
fn a_client_stalling_in_the_tls_handshake_is_cut_by_the_handshake_timeout() {
    let certs = CertFiles::new();
    let (server, _) = tls_server(
        &certs,
        builder().handshake_timeout(Duration::from_millis(300)),
    );
    // A truncated ClientHello, then nothing.
    assert_half_a_client_hello_is_cut(&certs, server.addr);
    // A complete ClientHello and then nothing (the handshake never finishes).
    let mut stream = tcp(server.addr);
    stream.write_all(&client_hello(&certs)).unwrap();
    let (got, closed) = read_until_closed(&mut stream);
    assert!(closed, "the server closed the unfinished handshake");
    assert_eq!(
        got.first(),
        Some(&0x16),
        "it had answered with its ServerHello"
    );
    assert!(wait_until(|| server.handle.stats().handshake_timeouts == 2));
    assert_serves(&certs, server.addr);
}

/// Sends `bytes` on a fresh connection; the server answers with a TLS alert record
/// (content type 21) or nothing, and closes at once (well within the handshake
/// timeout of the test, an hour).
fn assert_refused_promptly(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = tcp(addr);
    stream.write_all(bytes).unwrap();
    let (got, closed) = read_until_closed(&mut stream);
    assert!(
        closed,
        "closed promptly after {:?}",
        &bytes[..bytes.len().min(16)]
    );
    if let Some(&first) = got.first() {
        assert_eq!(first, 0x15, "an alert record, got {got:?}");
    }
}

#[test]
fn bad_input_gets_an_alert_and_a_prompt_close_and_the_server_goes_on() {
    let certs = CertFiles::new();
    let (server, _) = tls_server(
        &certs,
        builder().handshake_timeout(Duration::from_secs(3600)),
    );
    // Plaintext HTTP to the TLS port.
    assert_refused_promptly(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    // A plaintext WebSocket upgrade.
    assert_refused_promptly(server.addr, upgrade_request("/", &[], "").as_bytes());
    // Garbage instead of a ClientHello.
    assert_refused_promptly(server.addr, &[0xde; 64]);
    // A handshake record header announcing more than the TLS maximum (2^14 + 2048).
    let mut oversized = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    oversized.extend_from_slice(&[0u8; 64]);
    assert_refused_promptly(server.addr, &oversized);
    // An application-data record before any handshake.
    assert_refused_promptly(server.addr, &[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]);
    // A truncated ClientHello and then EOF.
    let hello = client_hello(&certs);
    let mut stream = tcp(server.addr);
    stream.write_all(&hello[..10]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (_, closed) = read_until_closed(&mut stream);
    assert!(closed, "closed after a truncated ClientHello and EOF");
    assert_serves(&certs, server.addr);
    let stats = server.handle.stats();
    assert_eq!(stats.internal_errors, 0);
    // Five failed TLS handshakes, counted as refusals; EOF mid-handshake is not one.
    assert_eq!(stats.handshake_refusals, 5);
    let metrics = server.handle.metrics_text();
    assert!(
        metrics.contains("wavecore_handshake_refusals_total{reason=\"tls\"} 5\n"),
        "{metrics}"
    );
}

#[test]
fn a_record_over_the_maximum_size_after_the_handshake_ends_the_connection() {
    let certs = CertFiles::new();
    let (server, closes) = tls_server(&certs, builder());
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    upgrade(&mut stream);
    // An application-data record header announcing 65,535 bytes, raw on the socket.
    let mut record = vec![0x17, 0x03, 0x03, 0xff, 0xff];
    record.extend_from_slice(&[0u8; 256]);
    stream.sock.write_all(&record).unwrap();
    let (got, closed) = read_until_closed(&mut stream.sock);
    assert!(closed);
    // One (encrypted) alert record, and no close_notify after it (RFC 8446 §6.1).
    assert_eq!(
        record_types(&got),
        [0x17],
        "an alert before the close: {got:?}"
    );
    assert_eq!(wait_closes(&closes, 1), [(1006, String::new(), false)]);
    // A TLS failure after the handshake is a protocol error, not a refusal.
    assert!(wait_until(|| server.handle.stats().protocol_errors == 1));
    assert_eq!(server.handle.stats().handshake_refusals, 0);
    assert_serves(&certs, server.addr);
}

#[test]
fn http_over_tls_on_the_same_port() {
    let certs = CertFiles::new();
    let (server, _) = tls_server(&certs, builder());
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /anything HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn the_certificate_can_be_replaced_while_the_server_runs() {
    let first = CertFiles::new();
    let second = CertFiles::new();
    let (server, _) = tls_server(&first, builder());
    let mut old = connect(&first, server.addr);
    old.send_text("before").unwrap();
    assert_eq!(old.recv().unwrap(), ClientMessage::Text("before".into()));

    server
        .handle
        .reload_tls_pem_files(&second.cert, &second.key)
        .unwrap();
    // New connections get the new certificate...
    assert_serves(&second, server.addr);
    let refused = Client::connect_tls(&url(server.addr, "/"), &[], first.client_config());
    assert!(refused.is_err(), "the old certificate is no longer offered");
    // ...and the open one goes on, untouched.
    old.send_text("after").unwrap();
    assert_eq!(old.recv().unwrap(), ClientMessage::Text("after".into()));

    // A reload with bad files fails and keeps the running certificate.
    let missing = std::env::temp_dir().join("wavecore-no-such-file.pem");
    assert!(
        server
            .handle
            .reload_tls_pem_files(&missing, &second.key)
            .is_err()
    );
    assert_serves(&second, server.addr);
}

#[test]
fn unusable_certificate_files_are_clear_errors_from_start() {
    let certs = CertFiles::new();
    let missing = std::env::temp_dir().join("wavecore-no-such-cert.pem");
    let start = |cert: &PathBuf, key: &PathBuf| {
        builder()
            .tls_pem_files(cert, key)
            .start(wavecore::accept_all(|| Subscriber))
            .map(|_| ())
    };
    let e = start(&missing, &certs.key).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(e.to_string().contains("wavecore-no-such-cert.pem"), "{e}");
    // The key file where the certificate should be, and the other way round.
    let e = start(&certs.key, &certs.key).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    let e = start(&certs.cert, &certs.cert).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    // A key that does not belong to the certificate.
    let other = CertFiles::new();
    let e = start(&certs.cert, &other.key).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
}

#[test]
fn over_capacity_a_tls_client_gets_the_503_through_tls() {
    let certs = CertFiles::new();
    // A refusal that waited for the close timeout would show as the client's read
    // timing out instead of a 503.
    let (server, mut first) = full_tls_server(&certs, builder());
    first.send_text("one").unwrap();
    assert_eq!(first.recv().unwrap(), ClientMessage::Text("one".into()));
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(upgrade_request("/", &[], "").as_bytes())
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 503");
    assert_eq!(server.handle.stats().refused_over_capacity, 1);
}

#[test]
fn over_capacity_garbage_instead_of_a_client_hello_is_closed_at_once() {
    let certs = CertFiles::new();
    // A refusal left waiting for a handshake that failed would show as the
    // connection staying open.
    let (server, _first) = full_tls_server(&certs, builder());
    // The 503 waits for a handshake that cannot complete: only the alert goes.
    assert_refused_promptly(server.addr, &[0xde; 64]);
    assert_refused_promptly(server.addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(server.handle.stats().refused_over_capacity, 2);
}

#[test]
fn over_capacity_a_stalled_tls_handshake_is_cut_by_the_handshake_timeout() {
    let certs = CertFiles::new();
    let (server, first) = full_tls_server(
        &certs,
        builder().handshake_timeout(Duration::from_millis(300)),
    );
    // Half a ClientHello, then nothing: the 503 can never be encrypted.
    assert_half_a_client_hello_is_cut(&certs, server.addr);
    assert_eq!(server.handle.stats().refused_over_capacity, 1);
    drop(first);
}

/// A configuration rustls cannot start a connection with (a maximum fragment size
/// under its minimum).
fn unusable_config(certs: &CertFiles) -> Arc<wavecore::rustls::ServerConfig> {
    let config = wavecore::tls::server_config_from_pem_files(&certs.cert, &certs.key).unwrap();
    let mut config = (*config).clone();
    config.max_fragment_size = Some(1);
    Arc::new(config)
}

#[test]
fn a_tls_configuration_that_cannot_start_a_connection_never_serves_plaintext() {
    let certs = CertFiles::new();
    // Refused when the server starts (it served plaintext on the TLS port)...
    let e = builder()
        .tls(unusable_config(&certs))
        .start(wavecore::accept_all(|| Subscriber))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    // ...and when it replaces a running one, which stays.
    let (server, _) = tls_server(&certs, builder());
    assert!(!server.handle.set_tls_config(unusable_config(&certs)));
    assert_serves(&certs, server.addr);
    // Never a plaintext upgrade on the TLS port.
    assert_refused_promptly(server.addr, upgrade_request("/", &[], "").as_bytes());
}

/// Serves a different certificate for each of two server names (SNI, RFC 6066 §3).
#[test]
fn sni_picks_the_certificate_through_the_configs_resolver() {
    use wavecore::rustls::crypto::ring::sign::any_supported_type;
    use wavecore::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use wavecore::rustls::server::ResolvesServerCertUsingSni;
    use wavecore::rustls::sign::CertifiedKey;

    let mut resolver = ResolvesServerCertUsingSni::new();
    let mut trust = Vec::new();
    for name in ["alpha.test", "beta.test"] {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let key = any_supported_type(&key).unwrap();
        resolver
            .add(name, CertifiedKey::new(vec![made.cert.der().clone()], key))
            .unwrap();
        let mut roots = wavecore::rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        trust.push((name, wavecore::client::tls_config(roots)));
    }
    let mut config =
        wavecore::rustls::ServerConfig::builder_with_provider(wavecore::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![wavecore::tls::ALPN_HTTP_1_1.to_vec()];
    let closes = Closes::default();
    let server = TestServer::start(builder().tls(Arc::new(config)), echo_service(&closes));
    for (name, client_config) in &trust {
        // Each name's certificate, trusted alone, is the one the server presents.
        let name = ServerName::try_from(*name).unwrap();
        let conn = ClientConnection::new(client_config.clone(), name).unwrap();
        let mut stream = StreamOwned::new(conn, tcp(server.addr));
        stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        upgrade(&mut stream);
    }
    // The other name's certificate is refused.
    let name = ServerName::try_from("alpha.test").unwrap();
    let conn = ClientConnection::new(trust[1].1.clone(), name).unwrap();
    let mut stream = StreamOwned::new(conn, tcp(server.addr));
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(
        stream
            .write_all(b"x")
            .and_then(|()| stream.flush())
            .is_err()
            || {
                let mut byte = [0u8; 1];
                stream.read(&mut byte).is_err()
            }
    );
}

/// The TLS records in `bytes` (whole ones only): their content types.
fn record_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut pos = 0;
    while pos + 5 <= bytes.len() {
        let len = u16::from_be_bytes([bytes[pos + 3], bytes[pos + 4]]) as usize;
        types.push(bytes[pos]);
        pos += 5 + len;
    }
    types
}

#[test]
fn a_close_notify_from_the_client_is_answered_with_close_notify() {
    let certs = CertFiles::new();
    let (server, closes) = tls_server(&certs, builder());
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    upgrade(&mut stream);
    stream.conn.send_close_notify();
    stream.flush().unwrap();
    // rustls reads Ok(0) only after the server's close_notify (RFC 8446 §6.1: each
    // party sends one before closing its write side); a bare TCP EOF is an error.
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(wait_closes(&closes, 1), [(1006, String::new(), false)]);
    assert!(wait_until(|| server.handle.connections() == 0));
}

/// Sends 2 MiB (32 x 64 KiB) for each message it receives.
struct Flood;

impl Handler for Flood {
    fn on_message(&mut self, conn: &mut Conn<'_>, _: Message<'_>) {
        let chunk = vec![7u8; 64 << 10];
        for _ in 0..32 {
            if conn.send(Message::Binary(&chunk)) == SendStatus::Dropped {
                return;
            }
        }
    }
}

#[test]
fn a_tls_reader_that_never_reads_is_closed_at_max_backpressure() {
    let certs = CertFiles::new();
    let server = TestServer::start(
        builder()
            .tls_pem_files(&certs.cert, &certs.key)
            .max_backpressure(1 << 20)
            .close_timeout(Duration::from_millis(200)),
        wavecore::accept_all(|| Flood),
    );
    let mut stream = tls_stream(&certs, server.addr);
    stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    upgrade(&mut stream);
    stream
        .write_all(&encode_frame(true, OP_TEXT, b"go", true))
        .unwrap();
    // Never read: the 2 MiB cannot all wait for the socket.
    assert!(wait_until(|| server.handle.stats().backpressure_closes == 1));
    assert!(wait_until(|| server.handle.connections() == 0));
}

#[test]
fn a_client_offering_only_h2_is_refused_and_one_also_offering_http11_gets_it() {
    let certs = CertFiles::new();
    let (server, _) = tls_server(&certs, builder());
    let stream_offering = |protocols: &[&[u8]]| {
        let mut config = (*certs.client_config()).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let stream = StreamOwned::new(conn, tcp(server.addr));
        stream.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    };
    // RFC 7301 §3.2: no protocol in common is a no_application_protocol alert.
    let mut h2 = stream_offering(&[b"h2"]);
    let refused = h2
        .write_all(upgrade_request("/", &[], "").as_bytes())
        .and_then(|()| h2.read(&mut [0u8; 1]));
    let e = refused.expect_err("no HTTP/1.1 for a client that asked for h2 only");
    assert!(e.to_string().contains("NoApplicationProtocol"), "{e}");
    assert!(wait_until(|| server.handle.stats().handshake_refusals == 1));
    // A browser's offer: h2 first, http/1.1 too.
    let mut both = stream_offering(&[b"h2", b"http/1.1"]);
    upgrade(&mut both);
    assert_eq!(both.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

/// Echoes; reports its handle at `on_open`.
struct Handed(std::sync::mpsc::Sender<wavecore::ConnHandle>);

impl Handler for Handed {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.0.send(conn.handle());
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

#[test]
fn over_tls_a_deferred_upgrade_opens_and_a_handle_reaches_it() {
    let certs = CertFiles::new();
    let (handles, handed) = std::sync::mpsc::channel();
    let handles = std::sync::Mutex::new(handles);
    let service = move |request: &wavecore::Request<'_>| {
        let handles = handles.lock().unwrap().clone();
        let allowed = request.path() == "/";
        wavecore::Upgrade::defer(move |pending| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                if allowed {
                    let _ = pending.accept(Handed(handles));
                } else {
                    let _ = pending.refuse(403, "not here");
                }
            });
        })
    };
    let server = TestServer::start(builder().tls_pem_files(&certs.cert, &certs.key), service);
    let mut client = connect(&certs, server.addr);
    let handle = handed.recv_timeout(IO_TIMEOUT).unwrap();
    client.send_text("over tls").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Text("over tls".into())
    );
    assert_eq!(
        handle.send_text("from a thread"),
        wavecore::HandleStatus::Queued
    );
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Text("from a thread".into())
    );
    let refused = Client::connect_tls(&url(server.addr, "/other"), &[], certs.client_config());
    assert!(refused.is_err(), "a deferred refusal over TLS");
}
