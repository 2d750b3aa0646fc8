//! The soak's graceful-shutdown check (`soak --shutdown`): at the end of the window
//! the server gets `SIGTERM`, the healthy connections go on until the server closes
//! them, and each must end with Close 1001 after every message it was owed.
//!
//! What a subscriber is owed: every message that any subscriber had received before
//! the signal was sent was published by the server before it was told to stop, so
//! every healthy subscriber must receive it, and everything before it (no gaps),
//! before its 1001. [`begin`] takes that floor, per publisher, from the highest
//! sequence number any subscriber had seen, then sends the signal.
//!
//! The soak's parts are separate runs in one process, so the state is process-wide.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// How long connections may take, after the window, to be closed by the server.
pub const DRAIN: Duration = Duration::from_secs(60);

/// Per publisher, the sequence number every subscriber must have received, plus one
/// (0: nothing owed); set once the signal is sent.
static FLOOR: OnceLock<Vec<u64>> = OnceLock::new();

/// Records the floor (per publisher, the highest sequence number seen by any
/// subscriber, plus one) and sends `SIGTERM` to `pid`.
///
/// # Errors
///
/// The `kill` command could not be run or failed (no such process, say).
pub fn begin(floor: Vec<u64>, pid: u32) -> Result<(), String> {
    let _ = FLOOR.set(floor);
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    if !status.success() {
        return Err(format!("kill -TERM {pid}: {status}"));
    }
    Ok(())
}

/// Whether the server has been told to shut down.
pub fn begun() -> bool {
    FLOOR.get().is_some()
}

/// What a subscriber that received up to `next[p] - 1` from each publisher `p` is
/// missing below the floor.
pub fn missing(next: &[u64]) -> u64 {
    FLOOR.get().map_or(0, |floor| {
        floor
            .iter()
            .enumerate()
            .map(|(p, &owed)| owed.saturating_sub(next.get(p).copied().unwrap_or(0)))
            .sum()
    })
}
