//! Interop tests: independent WebSocket clients (Python `websockets`, Node `ws`, headless
//! Chromium) run as subprocesses against an in-process wavecore server that implements
//! the contract of `tests/interop/README.md`.
//!
//! The clients are installed by `bash .ci/install-interop.sh`. When one is missing the
//! test is skipped with a note on stderr, unless `CI` is set: then it fails.

mod interop_server;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wavecore::Server;

/// How long a client may run before it is killed (each client bounds its own checks
/// well below this; this only guards against a hang).
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// How long to wait for the server's reactors to stop after the shutdown request.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "run `bash .ci/install-interop.sh` from the repository root";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn venv() -> PathBuf {
    std::env::var_os("WAVECORE_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/wavecore-interop-venv"))
}

fn chromium() -> PathBuf {
    std::env::var_os("WAVECORE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether `program args` runs and exits 0.
fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// What is missing for a client, or `None` if it can run.
fn missing_python() -> Option<String> {
    let python = venv().join("bin/python");
    if !python.exists() {
        return Some(format!("no Python venv at {}", venv().display()));
    }
    if !runs(&python, &["-c", "import websockets"]) {
        return Some(format!(
            "`websockets` is not importable by {}",
            python.display()
        ));
    }
    None
}

fn missing_node(modules: &[&str]) -> Option<String> {
    if !runs(Path::new("node"), &["--version"]) {
        return Some("`node` is not on PATH".into());
    }
    let node_modules = repo().join("tests/interop/node/node_modules");
    modules
        .iter()
        .map(|module| node_modules.join(module))
        .find(|path| !path.exists())
        .map(|path| format!("{} is missing", path.display()))
}

fn missing_browser() -> Option<String> {
    missing_node(&["playwright-core"]).or_else(|| {
        let chromium = chromium();
        (!chromium.exists()).then(|| format!("no Chromium at {}", chromium.display()))
    })
}

/// Whether the test should go on: `true` if nothing is missing; `false` (after a note on
/// stderr) if something is and `CI` is unset. Panics if something is missing under CI.
fn client_available(client: &str, missing: Option<String>) -> bool {
    let Some(what) = missing else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!(
            "{client} interop client unavailable under CI: {what}; \
             the CI must {INSTALL_HINT} before `cargo test`"
        );
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {client} interop test: {what} ({INSTALL_HINT})"
    );
    false
}

/// The interop server, shut down (bounded in time) when dropped.
struct Running(Option<Server>);

impl Running {
    fn start() -> Self {
        Self(Some(interop_server::start()))
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

/// Reads a pipe to the end on a thread; the text arrives on the returned channel.
fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// Kills the client and everything it started (its own process group).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

/// Waits for the client, killing it (and its process group) once `CLIENT_LIMIT` passed.
/// Returns its status, or `None` if it had to be killed.
fn wait_bounded(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + CLIENT_LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(child);
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one client against a fresh server, prints its output, and asserts it exited 0.
fn run_client(client: &str, program: &Path, script: &str, url: impl Fn(u16) -> String) {
    let server = Running::start();
    let url = url(server.port());
    let command = format!("{} {script} {url}", program.display());
    println!("== {client}: {command}");
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(program)
            .arg(repo().join(script))
            .arg(&url)
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start `{command}`: {e}"))
    };
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child);
    // A grandchild that outlived the client could hold a pipe open: read for a while only.
    let grace = Duration::from_secs(5);
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let stderr = stderr.recv_timeout(grace).unwrap_or_default();
    print!("{stdout}");
    if !stderr.is_empty() {
        eprint!("{stderr}");
    }
    drop(server);

    let failures: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    match status {
        None => panic!(
            "{client} client was killed after {CLIENT_LIMIT:?} (`{command}`); failed checks: {failures:#?}"
        ),
        Some(status) => assert!(
            status.success(),
            "{client} client exited with {status} (`{command}`); failed checks: {failures:#?}"
        ),
    }
}

#[test]
fn python_websockets_client() {
    if !client_available("Python websockets", missing_python()) {
        return;
    }
    run_client(
        "Python websockets",
        &venv().join("bin/python"),
        "tests/interop/python/client_test.py",
        |port| format!("ws://127.0.0.1:{port}"),
    );
}

#[test]
fn node_ws_client() {
    if !client_available("Node ws", missing_node(&["ws"])) {
        return;
    }
    run_client(
        "Node ws",
        Path::new("node"),
        "tests/interop/node/client_test.mjs",
        |port| format!("ws://127.0.0.1:{port}"),
    );
}

#[test]
fn chromium_browser_page() {
    if !client_available("Chromium", missing_browser()) {
        return;
    }
    run_client(
        "Chromium",
        Path::new("node"),
        "tests/interop/browser/run_chromium.mjs",
        |port| format!("http://127.0.0.1:{port}"),
    );
}
