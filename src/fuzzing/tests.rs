//! Every committed corpus input, replayed through its harness: what the fuzzer once
//! found interesting keeps being checked by `cargo test`, without the fuzzer.

use std::panic::AssertUnwindSafe;
use std::path::Path;

use crate::protocol::Role;

/// Runs `harness` on every file in `fuzz/corpus/<target>/`; there must be some.
fn replay(target: &str, harness: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus of {target} at {}: {e}", dir.display()));
    let mut inputs = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| harness(&bytes)));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for {target} in {}", dir.display());
}

#[test]
fn frame_server_corpus() {
    replay("frame_server", |data| super::frames(Role::Server, data));
}

#[test]
fn frame_client_corpus() {
    replay("frame_client", |data| super::frames(Role::Client, data));
}

#[test]
fn request_head_corpus() {
    replay("request_head", super::request_head);
}

#[test]
fn response_head_corpus() {
    replay("response_head", super::response_head);
}

#[test]
fn connection_corpus() {
    replay("connection", super::connection);
}

#[test]
fn inflate_corpus() {
    replay("inflate", super::inflate);
}

#[test]
fn proxy_header_corpus() {
    replay("proxy_header", super::proxy_header);
}
