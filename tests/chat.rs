//! End to end: the chat demo (`examples/chat`) as a person uses it, the real binary
//! driven in headless Chromium by `tests/interop/browser/chat_e2e.mjs`: two rooms,
//! presence, a multi-byte line at the limit and past it, a refused room, Ctrl-C
//! (SIGINT: pages get 1001 and the process exits 0) and reconnecting after a restart.
//!
//! Skipped with a note when Chromium or the Node packages are missing, unless `CI` is
//! set: then it fails (install with `bash .ci/install-interop.sh`).

mod clients;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the script may run before it is killed (it gives up by itself at 100 s).
const LIMIT: Duration = Duration::from_secs(150);

/// Builds the chat example with the profile and target directory this test was built
/// with (a no-op when `cargo test` has just built it) and returns its path.
fn chat_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/chat-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    // No `-p`: the same packages as `cargo test` at the root, so the same features and
    // nothing rebuilt.
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--example",
            "chat",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(clients::repo())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --example chat: {status}");
    profile_dir.join("examples/chat")
}

#[test]
fn chat_in_chromium() {
    if !clients::client_available("Chromium (chat)", clients::missing_browser()) {
        return;
    }
    let chat = chat_binary();
    clients::run_client(
        "chat in Chromium",
        Path::new("node"),
        "tests/interop/browser/chat_e2e.mjs",
        &[chat],
        LIMIT,
    );
}
