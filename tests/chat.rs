//! End to end: the chat demo (`examples/chat`) as a person uses it, the real binary
//! driven in headless Chromium by `tests/interop/browser/chat_e2e.mjs`: two rooms,
//! presence, a multi-byte line at the limit and past it, a refused room, Ctrl-C
//! (SIGINT: pages get 1001 and the process exits 0) and reconnecting after a restart.
//!
//! `#[ignore]`d (it needs Chromium and the Node packages: `bash
//! .ci/install-interop.sh`); `cargo test -- --include-ignored` runs it, and then a
//! missing client fails it.
//!
//! Also, with no browser: the chat with `--tls-cert` and `--tls-key` serves its page
//! over `https://` and its rooms over `wss://`.

mod clients;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the script may run before it is killed (it gives up by itself at 100 s).
const LIMIT: Duration = Duration::from_secs(150);

/// The chat binary, built for this test (see [`common::examples::binary`]).
fn chat_binary() -> PathBuf {
    common::examples::binary("chat")
}

#[test]
#[ignore = "needs Chromium and Node playwright-core: bash .ci/install-interop.sh, then --include-ignored"]
fn chat_in_chromium() {
    clients::require_client("Chromium (chat)", clients::missing_browser());
    let chat = chat_binary();
    clients::run_client(
        "chat in Chromium",
        Path::new("node"),
        "tests/interop/browser/chat_e2e.mjs",
        &[chat],
        LIMIT,
    );
}

/// The chat binary with a certificate made at test time: the page over `https://`,
/// a room over `wss://`; killed when dropped.
#[test]
fn chat_over_tls_serves_the_page_and_the_rooms() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Child, Stdio};

    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let stem = std::env::temp_dir().join(format!("wavecore-chat-tls-{}", std::process::id()));
    let (cert, key) = (stem.with_extension("crt"), stem.with_extension("key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut chat = Killed(
        Command::new(chat_binary())
            .arg("127.0.0.1:0")
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the chat"),
    );
    // "chat on https://127.0.0.1:PORT/ (...)"
    let mut line = String::new();
    BufReader::new(chat.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no https address in {line:?}"));
    let config = wavecore::client::tls_config_trusting_pem_file(&cert).unwrap();

    // The page, over https.
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = wavecore::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = wavecore::rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut stream = wavecore::rustls::StreamOwned::new(tls, tcp);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = Vec::new();
    let _ = stream.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page:.200}");
    assert!(page.contains("new WebSocket"), "the chat page");

    // A room, over wss.
    let url = format!("wss://localhost:{port}/chat/lobby?name=alice");
    let mut client = wavecore::client::Client::connect_tls(&url, &[], config).unwrap();
    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.send_text("hello over TLS").unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("hello over TLS")) {
        match client.recv().unwrap() {
            wavecore::client::ClientMessage::Text(text) => seen.push(text),
            other => panic!("unexpected {other:?} after {seen:?}"),
        }
    }
    drop(chat);
    let _ = std::fs::remove_file(&cert);
    let _ = std::fs::remove_file(&key);
}
