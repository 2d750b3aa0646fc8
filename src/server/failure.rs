//! What the server reports when its own code fails: a reactor that stopped, and the
//! panic message behind it.

use std::any::Any;
use std::fmt;
use std::io;

/// A reactor thread that stopped before a shutdown asked it to: a panic in the server's
/// own code outside any one connection, or its event source (epoll) failing.
///
/// Its connections are closed (with 1011 where a close frame can still be written), its
/// listening socket is closed so the kernel sends new connections to the other
/// reactors, and the other reactors go on. Reported by [`crate::ServerHandle::failures`],
/// by [`crate::Server::join`], and as an `error` event on the `tracing` facade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactorFailure {
    /// The reactor's index (its thread is named `wavecore-reactor-{index}`).
    pub reactor: usize,
    /// What happened: the panic message, or the event source's error.
    pub cause: String,
}

impl fmt::Display for ReactorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wavecore reactor {} failed: {}",
            self.reactor, self.cause
        )
    }
}

impl std::error::Error for ReactorFailure {}

impl From<ReactorFailure> for io::Error {
    fn from(failure: ReactorFailure) -> Self {
        io::Error::other(failure)
    }
}

/// The message a panic was raised with (`"unknown panic"` for a payload that is not a
/// string).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_recovered() {
        let caught = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(&*caught), "formatted 42");
        let caught = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*caught), "static");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(&*caught), "unknown panic");
    }

    #[test]
    fn a_failure_says_which_reactor_and_why() {
        let failure = ReactorFailure {
            reactor: 1,
            cause: "epoll_wait: bad file descriptor".into(),
        };
        assert_eq!(
            failure.to_string(),
            "wavecore reactor 1 failed: epoll_wait: bad file descriptor"
        );
        let io: io::Error = failure.into();
        assert!(io.to_string().contains("reactor 1"));
    }
}
