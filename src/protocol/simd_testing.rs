//! What a test does about a SIMD path this CPU cannot run: say so, or fail where the
//! path is expected.
//!
//! A test that skips a path passes, and libtest hides what a passing test prints with
//! `eprintln!`; so the note goes straight to the process's stderr. Under CI (`CI` set)
//! the paths every CI machine is expected to run fail the test instead of skipping:
//! on x86_64, SSE2 (part of the architecture) and AVX2 (every x86_64 server CPU since
//! 2013). `WAVECORE_EXPECT_SIMD` overrides that list (comma-separated path names,
//! empty for none), e.g. on a CI machine known to lack AVX2.

use std::io::Write;

/// The paths expected on a CI machine of this architecture.
const EXPECTED_IN_CI: &[&str] = if cfg!(target_arch = "x86_64") {
    &["sse2", "avx2"]
} else if cfg!(target_arch = "aarch64") {
    &["neon"]
} else {
    &[]
};

/// Whether this run requires `path`: named in `WAVECORE_EXPECT_SIMD`, or (without it)
/// expected on CI machines while `CI` is set.
fn expected(path: &str) -> bool {
    match std::env::var("WAVECORE_EXPECT_SIMD") {
        Ok(list) => list.split(',').any(|p| p.trim() == path),
        Err(_) => std::env::var_os("CI").is_some() && EXPECTED_IN_CI.contains(&path),
    }
}

/// `test` cannot check `path` on this CPU: panics if the path is expected here,
/// otherwise notes the skip on stderr (uncaptured).
pub(crate) fn missing(test: &str, path: &str) {
    assert!(
        !expected(path),
        "{test}: this CPU lacks {path}, which this run expects (CI, or \
         WAVECORE_EXPECT_SIMD); the {path} path went untested"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: this CPU lacks {path}, so its {path} path is not tested here"
    );
}
