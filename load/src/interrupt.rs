//! Ctrl-C during a run: the first `SIGINT` ends the run early, and the partial results
//! are reported (the summary says so, and the exit status is 130); a second one exits
//! at once with status 130.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first `SIGINT`.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The exit status of an interrupted run (128 + SIGINT, as shells report it).
pub const EXIT_STATUS: u8 = 130;

/// Catches `SIGINT` for the rest of the process (call once, before the run).
///
/// # Errors
///
/// The handler could not be installed.
pub fn install() -> io::Result<()> {
    use signal_hook::consts::SIGINT;
    // The exit first: it fires only once the flag is already set (a second Ctrl-C).
    signal_hook::flag::register_conditional_shutdown(SIGINT, EXIT_STATUS.into(), &REQUESTED)?;
    signal_hook::flag::register(SIGINT, &REQUESTED)?;
    Ok(())
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
