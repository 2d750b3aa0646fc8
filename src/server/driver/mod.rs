//! Drivers: the event sources that feed a reactor core (`core/`) and carry out its
//! decisions with system calls. The turn loop is written once ([`reactor`]), over a
//! [`reactor::Backend`] that says only how bytes move and how a turn waits;
//! everything above the system call is the core's, shared by every backend.
//!
//! * [`epoll`]: readiness through mio (epoll on Linux, kqueue elsewhere).
//! * [`uring`]: completions through io_uring (Linux).

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::server::config::{Backend, ServerConfig};
use crate::server::core::Core;
use crate::server::failure::ReactorFailure;
use crate::server::handler::Service;
use crate::server::shared::{Shared, Wake};

mod accept_pause;
pub(crate) mod epoll;
pub(crate) mod listener;
#[cfg(test)]
mod memory;
pub(crate) mod reactor;

pub(crate) use accept_pause::AcceptPause;
#[cfg(target_os = "linux")]
pub(crate) mod uring;

/// One reactor's event source, made on the starting thread (so that its failure
/// fails the start) and moved to the reactor's thread.
pub(crate) enum Source {
    /// An epoll instance.
    Epoll(mio::Poll),
    /// What an io_uring reactor needs from the starting thread (its eventfd).
    #[cfg(target_os = "linux")]
    IoUring(uring::Parts),
}

/// The backend `asked` resolves to: `Auto` becomes io_uring if a ring can be made
/// here (probed with `config`'s buffer sizes), else epoll.
///
/// # Errors
///
/// None today: an explicit `IoUring` is checked when the sources are made.
pub(crate) fn resolve(asked: Backend, config: &ServerConfig) -> Backend {
    match asked {
        Backend::Auto => {
            #[cfg(target_os = "linux")]
            match uring::probe(config) {
                Ok(()) => return Backend::IoUring,
                Err(error) => {
                    tracing::info!(%error, "io_uring unavailable: running on epoll");
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = config;
            Backend::Epoll
        }
        other => other,
    }
}

/// A reactor's event source for `backend` (resolved: not `Auto`) and the waker other
/// threads rouse it with.
///
/// # Errors
///
/// What creating the epoll instance or the io_uring instance returned; io_uring
/// off Linux is `Unsupported`.
pub(crate) fn new_source(
    backend: Backend,
    config: &ServerConfig,
) -> io::Result<(Source, Box<dyn Wake>)> {
    match backend {
        Backend::IoUring => {
            #[cfg(target_os = "linux")]
            {
                let (parts, waker) = uring::new_parts(config)?;
                Ok((Source::IoUring(parts), waker))
            }
            #[cfg(not(target_os = "linux"))]
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring is Linux only",
            ))
        }
        _ => {
            let _ = config;
            let (poll, waker) = epoll::new_poll()?;
            Ok((Source::Epoll(poll), waker))
        }
    }
}

/// Starts reactor `index` on its own thread (handlers need not be `Send`, so the
/// driver is built there).
///
/// # Errors
///
/// Registering the listener, or spawning the thread, failed.
pub(crate) fn spawn<S: Service>(
    index: usize,
    source: Source,
    listener: TcpListener,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
) -> io::Result<JoinHandle<Result<(), ReactorFailure>>> {
    let thread = std::thread::Builder::new().name(format!("wavecore-reactor-{index}"));
    match source {
        Source::Epoll(poll) => {
            let listener = epoll::register_listener(&poll, listener)?;
            thread.spawn(move || {
                let backend = epoll::Epoll::new(poll, listener, &config);
                let core = Core::new(index, service, config, shared, Instant::now());
                reactor::Reactor::new(core, backend).run_reported()
            })
        }
        #[cfg(target_os = "linux")]
        Source::IoUring(parts) => {
            thread.spawn(move || uring::run(index, parts, listener, service, config, shared))
        }
    }
}
