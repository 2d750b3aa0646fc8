//! The `wavecore-load` binary as a person runs it: what it prints and the exit status
//! it ends with when nothing could be measured (settings that measure nothing, a
//! refused connection, a server that never answers the handshake), when it ran
//! (`host:port/path` without a scheme, `--deflate` saying what was negotiated), and
//! when Ctrl-C ends it early (the partial summary, status 130).
//!
//! Every child is bounded: one that outlives [`LIMIT`] is killed and the test fails
//! (a run that should have failed at once and waited out its hour-long window).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wavecore::{Conn, DeflateConfig, Handler, Message, Server};

/// How long a child may run before the test gives up on it.
const LIMIT: Duration = Duration::from_secs(60);

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

/// An echo server on a port of its own, with permessage-deflate.
fn echo_server() -> Server {
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .permessage_deflate(DeflateConfig::default())
        .start(wavecore::accept_all(|| Echo))
        .expect("server starts")
}

fn load(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wavecore-load"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `wavecore-load args...` to its end (killed after [`LIMIT`]): its exit
/// status, stdout and stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = load(args).spawn().expect("start wavecore-load");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let readers = thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        (out, err)
    });
    let code = finish_status(child);
    let (stdout, stderr) = readers.join().expect("readers");
    (code, stdout, stderr)
}

#[test]
fn settings_that_measure_nothing_are_refused_with_a_reason() {
    let (code, _, stderr) = run(&["echo", "127.0.0.1:9", "-c", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--connections must be at least 1"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["echo", "127.0.0.1:9", "-d", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--duration must be more than 0"),
        "{stderr}"
    );
}

#[test]
fn a_refused_connection_fails_the_run_at_once() {
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (code, stdout, stderr) = run(&["echo", &addr, "-c", "2", "-d", "3600"]);
    assert_eq!(code, 2, "stdout {stdout}\nstderr {stderr}");
    assert!(
        stderr.contains(&format!("no connection opened to ws://{addr}/ (2 tried")),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(stdout.is_empty(), "no summary of nothing: {stdout}");
}

#[test]
fn a_server_that_never_answers_the_handshake_fails_the_run() {
    // Accepts and holds every connection, answers nothing (a TLS port addressed with
    // ws:// waits for a ClientHello the same way).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let (code, stdout, stderr) = run(&["echo", &addr, "-c", "3", "-d", "3600"]);
    assert_eq!(code, 2, "stdout {stdout}\nstderr {stderr}");
    assert!(stderr.contains("no connection opened"), "{stderr}");
    assert!(stderr.contains("no handshake answer"), "{stderr}");
    assert!(stderr.contains("wss://"), "the hint names TLS: {stderr}");
}

#[test]
fn an_address_with_a_path_and_no_scheme_runs_and_says_where() {
    let server = echo_server();
    let target = format!("{}/echo", server.local_addr());
    let (code, stdout, stderr) = run(&["echo", &target, "-d", "0.3", "--warmup", "0"]);
    assert_eq!(code, 0, "stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.starts_with(&format!("echo ws://{target} |")),
        "{stdout}"
    );
}

#[test]
fn deflate_says_whether_it_was_negotiated() {
    let server = echo_server();
    let addr = server.local_addr().to_string();
    let args = [
        "echo",
        &addr,
        "-c",
        "2",
        "-d",
        "0.3",
        "--warmup",
        "0",
        "--deflate",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "stdout {stdout}\nstderr {stderr}");
    assert!(
        stdout.contains("permessage-deflate: offered; negotiated on 2 of 2 connections"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&[&args[..], &["--json"]].concat());
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("\"deflate_offered\":true,\"deflate_negotiated\":2"),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_prints_the_partial_summary_and_exits_130() {
    let server = echo_server();
    let addr = server.local_addr().to_string();
    let mut child = load(&["echo", &addr, "-d", "3600", "--warmup", "0", "--progress"])
        .spawn()
        .expect("start wavecore-load");
    // The progress line appears once the window is open (once a second).
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("msg/s") {
        let mut chunk = Vec::new();
        match stderr.read_until(b'\r', &mut chunk) {
            Ok(0) | Err(_) => panic!("stderr ended: {}", String::from_utf8_lossy(&seen)),
            Ok(_) => seen.extend_from_slice(&chunk),
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.stderr = None;
    thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = stderr.read_to_end(&mut rest);
    });
    let (tx, rx) = mpsc::channel();
    let mut stdout = child.stdout.take().expect("stdout");
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let code = finish_status(child);
    let stdout = rx.recv_timeout(LIMIT).expect("stdout");
    assert_eq!(code, 130, "{stdout}");
    assert!(stdout.starts_with("interrupted (Ctrl-C)"), "{stdout}");
    assert!(stdout.contains("messages: "), "{stdout}");
}

/// The exit status of `child`, killed after [`LIMIT`].
fn finish_status(mut child: Child) -> i32 {
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(status) => status.expect("wait").code().unwrap_or(-1),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("wavecore-load was still running after {LIMIT:?}");
        }
    }
}
