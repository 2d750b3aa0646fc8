//! End to end: the chat demo (`examples/chat`) as a person uses it, the real binary
//! driven in headless Chromium by `tests/interop/browser/chat_e2e.mjs`: two rooms,
//! presence, a multi-byte line at the limit and past it, a refused room, Ctrl-C
//! (SIGINT: pages get 1001 and the process exits 0) and reconnecting after a restart.
//!
//! `#[ignore]`d (it needs Chromium and the Node packages: `bash
//! .ci/install-interop.sh`); `cargo test -- --include-ignored` runs it, and then a
//! missing client fails it.
//!
//! Also, with no browser: the chat with `--tls-cert` and `--tls-key` serves its page,
//! its login and its rooms over `https://` and `wss://`; and two chat servers on one
//! Redis share their sessions (no upgrade without one, a name is one person's, a
//! logout closes the person's tabs on both servers through their handles).

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

/// The chat binary on 127.0.0.1:0 with `args`; killed when dropped.
struct Chat {
    child: std::process::Child,
    port: u16,
}

impl Chat {
    fn start(args: &[&std::ffi::OsStr]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(chat_binary())
            .arg("127.0.0.1:0")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the chat");
        // "chat on http(s)://127.0.0.1:PORT/ (...)"
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, port }
    }

    fn tcp(&self) -> std::net::TcpStream {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP exchange on `stream`: sends `head` (and `body`), returns the status, the
/// `Set-Cookie` value if any, and the body (by its `Content-Length`).
fn exchange<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    head: &str,
    body: &str,
) -> (u16, Option<String>, String) {
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("a response head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head[9..12].parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let cookie = header("set-cookie").and_then(|c| c.split(';').next().map(str::to_owned));
    let length: usize = header("content-length").map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

/// `POST /login` as `name`: the status and the session cookie (`wavecore_chat=ID`).
fn login<S: std::io::Read + std::io::Write>(stream: &mut S, name: &str) -> (u16, Option<String>) {
    let body = format!("name={name}");
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (status, cookie, _) = exchange(stream, &head, &body);
    (status, cookie)
}

/// An upgrade to `/chat/ROOM` with `cookie`: the response's status.
fn upgrade<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    room: &str,
    cookie: Option<&str>,
) -> u16 {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "GET /chat/{room} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{cookie}\r\n"
    );
    exchange(stream, &head, "").0
}

/// The next frame from the server: its opcode and payload.
fn frame<S: std::io::Read>(stream: &mut S) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).expect("a frame");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).unwrap();
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).unwrap();
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0] & 0x0f, payload)
}

/// Reads frames until a text one containing `needle`.
fn text_containing<S: std::io::Read>(stream: &mut S, needle: &str) -> String {
    texts_until(stream, needle).pop().unwrap()
}

/// Reads text frames up to and including one containing `needle`.
fn texts_until<S: std::io::Read>(stream: &mut S, needle: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..100 {
        let (opcode, payload) = frame(stream);
        let text = String::from_utf8_lossy(&payload).into_owned();
        if opcode == 1 {
            let found = text.contains(needle);
            texts.push(text);
            if found {
                return texts;
            }
        }
    }
    panic!("no message containing {needle:?} in {texts:?}");
}

/// The close code of the next close frame.
fn close_code<S: std::io::Read>(stream: &mut S) -> u16 {
    for _ in 0..100 {
        let (opcode, payload) = frame(stream);
        if opcode == 8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
    panic!("no close frame");
}

/// The chat with a certificate made at test time: the page over `https://`, a login
/// and a room over `wss://`.
#[test]
fn chat_over_tls_serves_the_page_and_the_rooms() {
    use std::io::{Read, Write};

    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let stem = std::env::temp_dir().join(format!("wavecore-chat-tls-{}", std::process::id()));
    let (cert, key) = (stem.with_extension("crt"), stem.with_extension("key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let chat = Chat::start(&[
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    let config = wavecore::client::tls_config_trusting_pem_file(&cert).unwrap();
    let tls = || {
        let name = wavecore::rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = wavecore::rustls::ClientConnection::new(config.clone(), name).unwrap();
        wavecore::rustls::StreamOwned::new(conn, chat.tcp())
    };

    // The page, over https.
    let mut stream = tls();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = Vec::new();
    let _ = stream.read_to_end(&mut page);
    let page = String::from_utf8_lossy(&page);
    assert!(page.starts_with("HTTP/1.1 200"), "{page:.200}");
    assert!(page.contains("new WebSocket"), "the chat page");

    // A login: the session cookie is marked Secure over https.
    let mut stream = tls();
    let (status, cookie) = login(&mut stream, "alice");
    assert_eq!(status, 200);
    let cookie = cookie.expect("a session cookie");

    // A room, over wss, with the session.
    let mut ws = tls();
    assert_eq!(upgrade(&mut ws, "lobby", Some(&cookie)), 101);
    text_containing(&mut ws, r#""type":"welcome""#);
    ws.write_all(&common::encode_frame(true, 1, b"hello over TLS", true))
        .unwrap();
    // The line comes through the room's channel: its data is the line's JSON.
    let line = text_containing(&mut ws, "hello over TLS");
    assert!(line.contains(r#""channel":"room:lobby""#), "{line}");
    assert!(line.contains(r#"\"name\":\"alice\""#), "{line}");
    drop(chat);
    let _ = std::fs::remove_file(&cert);
    let _ = std::fs::remove_file(&key);
}

/// Sessions decided off the reactor, in a session store: no upgrade without one (401),
/// a name is one person's, and a logout closes the person's tabs through their
/// handles. With `--redis`, two chat servers share the sessions, and a logout on one
/// closes the tabs on the other too.
#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn chat_sessions_are_shared_through_redis_and_a_logout_closes_every_tab() {
    let redis = common::redis_server::shared("chat sessions");
    let url = redis.url();
    let a = Chat::start(&["--redis".as_ref(), url.as_ref()]);
    let b = Chat::start(&["--redis".as_ref(), url.as_ref()]);
    let name = format!("zed{}", std::process::id());

    assert_eq!(
        upgrade(&mut a.tcp(), "lobby", None),
        401,
        "no session, no upgrade"
    );
    let (status, cookie) = login(&mut a.tcp(), &name);
    assert_eq!(status, 200);
    let cookie = cookie.expect("a session cookie");
    assert_eq!(
        login(&mut b.tcp(), &name).0,
        409,
        "another person cannot take the name"
    );

    // The session works on both servers: one tab on each.
    let mut on_a = a.tcp();
    let mut on_b = b.tcp();
    assert_eq!(upgrade(&mut on_a, "lobby", Some(&cookie)), 101);
    assert_eq!(upgrade(&mut on_b, "lobby", Some(&cookie)), 101);
    let welcome = text_containing(&mut on_b, r#""type":"welcome""#);
    assert!(
        welcome.contains(&format!(r#""name":"{name}""#)),
        "{welcome}"
    );

    // A logout on A closes both tabs with 4001, and the session is gone everywhere.
    let head = format!(
        "POST /logout HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(exchange(&mut a.tcp(), &head, "").0, 200);
    assert_eq!(close_code(&mut on_a), 4001);
    assert_eq!(close_code(&mut on_b), 4001);
    assert_eq!(upgrade(&mut b.tcp(), "lobby", Some(&cookie)), 401);
    assert_eq!(login(&mut b.tcp(), &name).0, 200, "the name is free again");
}

/// The `"epoch":"E","offset":N` of a channel message, as `E:N`.
fn position_of(message: &str) -> String {
    let epoch = message
        .split(r#""epoch":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an epoch");
    let offset = message
        .split(r#""offset":"#)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .expect("an offset");
    format!("{epoch}:{offset}")
}

/// With `--redis`, a room's lines and their history live in Redis Streams: a tab moved
/// to another chat server, or back to a restarted one, is sent what it missed, once,
/// in order, and nothing is reported missing.
#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn chat_rooms_keep_their_history_in_redis_across_servers_and_restarts() {
    use std::io::Write;

    let redis = common::redis_server::shared("chat history");
    let url = redis.url();
    let mut a = Chat::start(&["--redis".as_ref(), url.as_ref()]);
    let b = Chat::start(&["--redis".as_ref(), url.as_ref()]);
    let (name, room) = (
        format!("hist{}", std::process::id()),
        format!("r{}", std::process::id()),
    );
    let (_, cookie) = login(&mut a.tcp(), &name);
    let cookie = cookie.expect("a session cookie");
    let say = |ws: &mut std::net::TcpStream, text: &str| {
        ws.write_all(&common::encode_frame(true, 1, text.as_bytes(), true))
            .unwrap();
        position_of(&text_containing(ws, text))
    };

    // On A: "one", then the page's position; "two" and "three" it will miss.
    let mut on_a = a.tcp();
    assert_eq!(upgrade(&mut on_a, &room, Some(&cookie)), 101);
    let after_one = say(&mut on_a, "line one");
    say(&mut on_a, "line two");
    let after_three = say(&mut on_a, "line three");

    // The tab moves to B with the position after "one": "two" and "three" replayed.
    let mut on_b = b.tcp();
    let path = format!("{room}?since={after_one}");
    assert_eq!(upgrade(&mut on_b, &path, Some(&cookie)), 101);
    let seen = texts_until(&mut on_b, "line three");
    let lines: Vec<&String> = seen.iter().filter(|t| t.contains("line ")).collect();
    assert_eq!(lines.len(), 2, "only two and three: {seen:?}");
    assert!(lines[0].contains("line two"), "{seen:?}");
    assert!(
        !seen.iter().any(|t| t.contains("\"type\":\"gap\"")),
        "{seen:?}"
    );

    // A restarts; the tab comes back to it from after "three" while B's room goes on.
    drop(on_a);
    drop(a);
    a = Chat::start(&["--redis".as_ref(), url.as_ref()]);
    say(&mut on_b, "line four");
    let mut back = a.tcp();
    let path = format!("{room}?since={after_three}");
    assert_eq!(upgrade(&mut back, &path, Some(&cookie)), 101);
    let seen = texts_until(&mut back, "line four");
    assert!(
        !seen.iter().any(|t| t.contains("\"type\":\"gap\"")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|t| t.contains("line three")), "{seen:?}");
    say(&mut on_b, "line five");
    text_containing(&mut back, "line five");
}
