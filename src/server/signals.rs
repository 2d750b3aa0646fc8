//! Graceful stop on `SIGINT` and `SIGTERM` ([`ServerConfig::shutdown_on_signals`]).
//!
//! A thread (`wavecore-signals`) waits for the signals through `signal-hook`'s
//! self-pipe (the handler itself only writes a byte; everything else runs on the
//! thread). The first signal starts [`ServerHandle::shutdown`]: the reactors stop
//! accepting, queue Close 1001 behind what each connection has queued, flush, and
//! return within `shutdown_timeout`. A second signal, or any signal once the server
//! has stopped, ends the process as the signal's default action would, so an
//! impatient Ctrl-C still works and a process that outlives its server still
//! terminates on `SIGTERM`. (`signal-hook` cannot give the default disposition back,
//! so the thread stays for the life of the process; it sleeps in `read`.)
//!
//! [`ServerConfig::shutdown_on_signals`]: crate::ServerConfig::shutdown_on_signals

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::server::handle::ServerHandle;

/// The signal thread's link to its server: set once the server has stopped.
#[derive(Debug)]
pub(crate) struct SignalGuard {
    stopped: Arc<AtomicBool>,
}

impl SignalGuard {
    /// The server has stopped: a signal now takes its default action.
    pub fn server_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.server_stopped();
    }
}

/// Starts the signal thread for `server`.
///
/// # Errors
///
/// Registering the handlers or spawning the thread failed; on platforms without
/// Unix signals, `ErrorKind::Unsupported`.
#[cfg(unix)]
pub(crate) fn shutdown_on_signals(server: ServerHandle) -> io::Result<SignalGuard> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use signal_hook::low_level::{emulate_default_handler, signal_name};

    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let stopped = Arc::new(AtomicBool::new(false));
    let server_stopped = stopped.clone();
    std::thread::Builder::new()
        .name("wavecore-signals".into())
        .spawn(move || {
            let mut asked = false;
            for signal in signals.forever() {
                let name = signal_name(signal).unwrap_or("signal");
                if !asked && !server_stopped.load(Ordering::Acquire) {
                    asked = true;
                    // Logged after it is asked (see `ServerHandle::shutdown`).
                    server.shutdown();
                    tracing::info!(
                        signal = name,
                        "received {name}: stopping gracefully (another {name} ends the process now)"
                    );
                    continue;
                }
                tracing::warn!(signal = name, "received {name} again: exiting now");
                if emulate_default_handler(signal).is_err() {
                    std::process::exit(128 + signal);
                }
            }
        })?;
    Ok(SignalGuard { stopped })
}

/// Unix signals only: elsewhere this fails with `ErrorKind::Unsupported`.
#[cfg(not(unix))]
pub(crate) fn shutdown_on_signals(_server: ServerHandle) -> io::Result<SignalGuard> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "shutdown_on_signals needs Unix signals",
    ))
}
