//! Running independent clients (Python `websockets`, Node `ws`, headless Chromium through
//! Playwright) as subprocesses: finding them, skipping or failing when one is missing,
//! and running one to completion within a time limit. Shared by `tests/interop.rs` and
//! `tests/chat.rs`.
//!
//! The clients are installed by `bash .ci/install-interop.sh`. The tests that need
//! them are `#[ignore]`d and fail when run (`--include-ignored`) without them.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run `bash .ci/install-interop.sh` from the repository root";

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python venv with `websockets`.
pub fn venv() -> PathBuf {
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

/// What is missing for the Python client, or `None` if it can run.
pub fn missing_python() -> Option<String> {
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

/// What is missing for a Node script using `modules`, or `None` if it can run.
pub fn missing_node(modules: &[&str]) -> Option<String> {
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

/// What is missing for a Playwright script driving Chromium, or `None` if it can run.
pub fn missing_browser() -> Option<String> {
    missing_node(&["playwright-core"]).or_else(|| {
        let chromium = chromium();
        (!chromium.exists()).then(|| format!("no Chromium at {}", chromium.display()))
    })
}

/// Fails the test, saying what to install, if something it needs is missing
/// (`missing`). The tests that call this are `#[ignore]`d: `cargo test` reports them
/// as ignored rather than as passed, and `--include-ignored` (`.ci/run`) runs them, so
/// a missing client there is a failure, never a silent pass.
pub fn require_client(client: &str, missing: Option<String>) {
    if let Some(what) = missing {
        panic!("{client} client unavailable: {what}; {INSTALL_HINT} before `cargo test`");
    }
}

/// Runs `program script args...` from the repository root in its own process group,
/// killed (with everything it started) after `limit`; prints its output and asserts
/// that it exited 0, listing its `FAIL` lines otherwise. Returns its stdout.
pub fn run_client<A: AsRef<OsStr>>(
    client: &str,
    program: &Path,
    script: &str,
    args: &[A],
    limit: Duration,
) -> String {
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    let command = format!("{} {script} {}", program.display(), shown.join(" "));
    println!("== {client}: {command}");
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(program)
            .arg(repo().join(script))
            .args(args)
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
    let status = wait_bounded(&mut child, limit);
    // A grandchild that outlived the client could hold a pipe open: read for a while only.
    let grace = Duration::from_secs(5);
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let stderr = stderr.recv_timeout(grace).unwrap_or_default();
    print!("{stdout}");
    if !stderr.is_empty() {
        eprint!("{stderr}");
    }
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("FAIL"))
        .collect();
    match status {
        None => panic!(
            "{client} client was killed after {limit:?} (`{command}`); failed checks: {failures:#?}"
        ),
        Some(status) => assert!(
            status.success(),
            "{client} client exited with {status} (`{command}`); failed checks: {failures:#?}"
        ),
    }
    stdout
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

/// Waits for the client, killing it (and its process group) once `limit` passed.
/// Returns its status, or `None` if it had to be killed.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
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
