//! The example programs (`examples/`), built for a test that runs them as a person
//! would.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the example `name` with the profile and target directory this test was
/// built with (a no-op when `cargo test` has just built it) and returns its path.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/TEST-HASH
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
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build --example {name}: {status}");
    profile_dir.join("examples").join(name)
}
