//! Interop tests: independent WebSocket clients (Python `websockets`, Node `ws`, headless
//! Chromium) run as subprocesses against an in-process wavecore server that implements
//! the contract of `tests/interop/README.md`.
//!
//! The Python and Node clients also run over `wss://` against the same server with
//! TLS, trusting a certificate made at test time; Chromium loads the page over
//! `https://` from that server (ignoring certificate errors) and its WebSockets go over
//! `wss://`.
//!
//! The clients are installed by `bash .ci/install-interop.sh`. The tests are
//! `#[ignore]`d, so that `cargo test` says in its summary that it did not run them:
//! `cargo test -- --include-ignored` (what `.ci/run` does) runs them, and then a
//! missing client fails the test.

mod clients;
mod interop_server;

use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use clients::{missing_browser, missing_node, missing_python, require_client, venv};
use wavecore::Server;

/// How long a client may run before it is killed (each client bounds its own checks
/// well below this; this only guards against a hang).
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// How long to wait for the server's reactors to stop after the shutdown request.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

/// The interop server, shut down (bounded in time) when dropped.
struct Running(Option<Server>);

impl Running {
    fn start() -> Self {
        Self(Some(interop_server::start()))
    }

    fn start_tls(certs: &TestCert) -> Self {
        Self(Some(interop_server::start_tls(&certs.cert, &certs.key)))
    }

    fn port(&self) -> u16 {
        self.0.as_ref().expect("server").local_addr().port()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(server) = self.0.take() else {
            return;
        };
        server.handle().shutdown();
        let (done, stopped) = mpsc::channel();
        thread::spawn(move || {
            let _ = done.send(server.join());
        });
        match stopped.recv_timeout(SHUTDOWN_LIMIT) {
            _ if thread::panicking() => {}
            Ok(Ok(())) => {}
            Ok(Err(failure)) => panic!("{failure}"),
            Err(_) => {
                panic!("the interop server did not stop within {SHUTDOWN_LIMIT:?} of shutdown")
            }
        }
    }
}

/// Runs one client against a fresh server and asserts it exited 0; returns its stdout.
fn run_client(client: &str, program: &Path, script: &str, url: impl Fn(u16) -> String) -> String {
    let server = Running::start();
    let url = url(server.port());
    let out = clients::run_client(client, program, script, &[url], CLIENT_LIMIT);
    drop(server);
    out
}

/// Asserts the browser runner reported `check` as passed (its `ok CHECK: ...` line).
fn assert_reported(out: &str, check: &str) {
    let want = format!("ok {check}: ");
    assert!(
        out.lines().any(|line| line.starts_with(&want)),
        "no `{want}...` line in the runner's output:\n{out}"
    );
}

/// A self-signed certificate for `localhost` and its key, as PEM files in the
/// temporary directory (removed when dropped).
struct TestCert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl TestCert {
    fn new(tag: &str) -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let stem =
            std::env::temp_dir().join(format!("wavecore-interop-{tag}-{}", std::process::id()));
        let this = Self {
            cert: stem.with_extension("crt"),
            key: stem.with_extension("key"),
        };
        std::fs::write(&this.cert, made.cert.pem()).unwrap();
        std::fs::write(&this.key, made.signing_key.serialize_pem()).unwrap();
        this
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert);
        let _ = std::fs::remove_file(&self.key);
    }
}

/// Runs one client over `wss://` against a fresh TLS server; the client trusts the
/// server's certificate (its second argument).
fn run_client_tls(client: &str, program: &Path, script: &str, tag: &str) {
    let certs = TestCert::new(tag);
    let server = Running::start_tls(&certs);
    let url = format!("wss://localhost:{}", server.port());
    let ca = certs.cert.display().to_string();
    clients::run_client(client, program, script, &[url, ca], CLIENT_LIMIT);
    drop(server);
}

#[test]
#[ignore = "needs Python websockets: bash .ci/install-interop.sh, then --include-ignored"]
fn python_websockets_client_over_tls() {
    require_client("Python websockets", missing_python());
    run_client_tls(
        "Python websockets (wss)",
        &venv().join("bin/python"),
        "tests/interop/python/client_test.py",
        "python",
    );
}

#[test]
#[ignore = "needs Node ws: bash .ci/install-interop.sh, then --include-ignored"]
fn node_ws_client_over_tls() {
    require_client("Node ws", missing_node(&["ws"]));
    run_client_tls(
        "Node ws (wss)",
        Path::new("node"),
        "tests/interop/node/client_test.mjs",
        "node",
    );
}

#[test]
#[ignore = "needs Python websockets: bash .ci/install-interop.sh, then --include-ignored"]
fn python_websockets_client() {
    require_client("Python websockets", missing_python());
    run_client(
        "Python websockets",
        &venv().join("bin/python"),
        "tests/interop/python/client_test.py",
        |port| format!("ws://127.0.0.1:{port}"),
    );
}

#[test]
#[ignore = "needs Node ws: bash .ci/install-interop.sh, then --include-ignored"]
fn node_ws_client() {
    require_client("Node ws", missing_node(&["ws"]));
    run_client(
        "Node ws",
        Path::new("node"),
        "tests/interop/node/client_test.mjs",
        |port| format!("ws://127.0.0.1:{port}"),
    );
}

#[test]
#[ignore = "needs Chromium and Node playwright-core: bash .ci/install-interop.sh, then --include-ignored"]
fn chromium_browser_page() {
    require_client("Chromium", missing_browser());
    let out = run_client(
        "Chromium",
        Path::new("node"),
        "tests/interop/browser/run_chromium.mjs",
        |port| format!("http://127.0.0.1:{port}"),
    );
    assert_reported(&out, "transport_ws");
}

/// The page over `https://` from the TLS server, its WebSockets over `wss://`: the
/// runner starts Chromium with `--ignore-certificate-errors` for an `https://` URL
/// and fails unless the page came over TLS and every WebSocket it opened was `wss:`.
#[test]
#[ignore = "needs Chromium and Node playwright-core: bash .ci/install-interop.sh, then --include-ignored"]
fn chromium_browser_page_over_tls() {
    require_client("Chromium", missing_browser());
    let certs = TestCert::new("chromium");
    let server = Running::start_tls(&certs);
    let url = format!("https://localhost:{}", server.port());
    let out = clients::run_client(
        "Chromium (wss)",
        Path::new("node"),
        "tests/interop/browser/run_chromium.mjs",
        &[url],
        CLIENT_LIMIT,
    );
    drop(server);
    assert_reported(&out, "transport_wss");
}
