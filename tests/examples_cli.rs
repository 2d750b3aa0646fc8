//! The examples' command line as a person meets it (`examples/common/cli.rs`): `--help`
//! lists every option with its default and environment variable, unknown options and
//! backends are refused with exit status 2, a server that cannot start says what and
//! where and exits 1, and the start line is short and has no colour codes when the
//! output is not a terminal. The real binaries, built for the test.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long an example may run before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(60);

/// Kills the example when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs example `name` with `args` and `env` to its end (killed after [`LIMIT`]): its
/// exit status, stdout and stderr.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(common::examples::binary(name))
        .args(args)
        .env_remove("WAVECORE_BACKEND")
        .env_remove("WORKERS")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        let _ = tx.send((out, err));
    });
    let mut child = Running(child);
    let (out, err) = rx
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{name} {args:?} still running after {LIMIT:?}"));
    let code = child.0.wait().expect("wait").code().unwrap_or(-1);
    (code, out, err)
}

#[test]
fn help_lists_every_option_with_its_default() {
    for name in ["echo", "broadcast", "chat"] {
        let (code, out, err) = run(name, &["--help"], &[]);
        assert_eq!(code, 0, "{name} --help: {err}");
        for option in [
            "[ADDR]",
            "[default: 127.0.0.1:9001]",
            "--addr <ADDR>",
            "--port <PORT>",
            "--tls-cert <FILE>",
            "--tls-key <FILE>",
            "--workers <N>",
            "[env: WORKERS=]",
            "--backend <BACKEND>",
            "[env: WAVECORE_BACKEND=]",
            "[default: epoll]",
        ] {
            assert!(out.contains(option), "{name} --help lacks {option}:\n{out}");
        }
        assert_eq!(out.contains("--redis <URL>"), name != "echo", "{out}");
    }
    for name in ["echo", "broadcast", "chat", "stream"] {
        let (code, out, err) = run(name, &["--help"], &[]);
        assert_eq!(code, 0, "{name} --help: {err}");
        for option in [
            "--max-connections-per-ip <N>",
            "--max-connection-rate-per-ip <N>",
            "--message-rate <N>",
            "--allowed-origin <ORIGIN>",
            "--proxy-protocol",
            "--trusted-proxy <CIDR>",
            "--forwarded-headers",
        ] {
            assert!(out.contains(option), "{name} --help lacks {option}:\n{out}");
        }
    }
}

#[test]
fn admission_flags_are_checked_and_take_effect() {
    // A network that is not one, and PROXY protocol with no one to trust: refused.
    let (code, _, err) = run("echo", &["--trusted-proxy", "10.0.0/8"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--trusted-proxy"), "{err}");
    let (code, _, err) = run("echo", &["--proxy-protocol"], &[]);
    assert_eq!(code, 2, "{err}");
    // One connection per address: the second from 127.0.0.1 is refused with 429.
    let mut child = Running(
        Command::new(common::examples::binary("echo"))
            .args([
                "--port",
                "0",
                "--workers",
                "1",
                "--max-connections-per-ip",
                "1",
            ])
            .env_remove("WAVECORE_BACKEND")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the echo line").unwrap();
        if let Some(at) = line.find("echo server on ws://") {
            break line[at + "echo server on ws://".len()..].trim().to_owned();
        }
    };
    let upgrade = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let status = |stream: &mut std::net::TcpStream| {
        use std::io::Write;
        stream.write_all(upgrade.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head[9..12]).into_owned()
    };
    let mut first = std::net::TcpStream::connect(&addr).unwrap();
    first.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(status(&mut first), "101");
    let mut second = std::net::TcpStream::connect(&addr).unwrap();
    second.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(status(&mut second), "429");
}

#[test]
fn unknown_options_and_backends_are_refused_with_the_usage() {
    let (code, _, err) = run("echo", &["--redis", "redis://127.0.0.1:6379"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--redis'"), "{err}");
    assert!(err.contains("Usage: echo"), "{err}");
    let (code, _, err) = run("echo", &["not-an-address"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an address to listen on"), "{err}");
    let (code, _, err) = run("broadcast", &[], &[("WAVECORE_BACKEND", "kqueue")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'kqueue'") && err.contains("io_uring"),
        "{err}"
    );
}

#[test]
fn an_address_in_use_is_said_with_the_address_and_what_to_do() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run("echo", &[&addr], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("echo: cannot start: listen on {addr}:")),
        "{err}"
    );
    assert!(err.contains("--addr or --port"), "the hint: {err}");
    assert!(!err.contains("Os {"), "no debug output: {err}");
}

#[test]
fn a_missing_certificate_is_said_with_its_path() {
    let (code, _, err) = run(
        "chat",
        &[
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/wavecore-cert.pem",
            "--tls-key",
            "/nonexistent/wavecore-key.pem",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("chat: cannot start: TLS certificate /nonexistent/wavecore-cert.pem"),
        "{err}"
    );
    assert!(err.contains("README.md"), "the hint: {err}");
}

#[test]
fn the_start_line_is_short_and_plain_off_a_terminal() {
    let mut child = Running(
        Command::new(common::examples::binary("echo"))
            .args(["--port", "0", "--workers", "1"])
            .env_remove("WAVECORE_BACKEND")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start echo"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let start = rx.recv_timeout(LIMIT).expect("a start line");
    assert!(start.contains("wavecore server listening"), "{start}");
    assert!(start.contains("address=127.0.0.1:"), "{start}");
    assert!(start.contains("backend=\"epoll"), "{start}");
    assert!(start.contains("tls=false reactors=1"), "{start}");
    assert!(
        !start.contains('\x1b'),
        "colour codes off a terminal: {start:?}"
    );
    assert!(
        !start.contains("max_message_size"),
        "the configuration is for debug: {start}"
    );
    let next = rx.recv_timeout(LIMIT).expect("the echo line");
    assert!(next.contains("echo server on ws://127.0.0.1:"), "{next}");
}
