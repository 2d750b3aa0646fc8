//! Test doubles shared by the runtime's unit tests, and faults they can inject into the
//! server's own code (compiled into test builds only).

use std::io::{self, IoSlice, Write};

use crate::server::pubsub::Publish;

/// A text message with this payload makes the server's own code panic while it reads
/// it (outside any handler callback).
pub(crate) const PANIC_ON_READ: &str = "wavecore-test: panic while reading";

/// A published message with this payload makes the server's own code panic while it
/// delivers it, once per subscriber.
pub(crate) const PANIC_ON_DELIVERY: &str = "wavecore-test: panic while delivering";

/// A publish to this topic from a `ServerHandle` makes a reactor panic outside any
/// connection: the reactor fails.
pub(crate) const PANIC_IN_REACTOR: &str = "wavecore-test: reactor panic";

/// Panics if `text` asks for [`PANIC_ON_READ`].
pub(crate) fn on_read(text: &str) {
    if text == PANIC_ON_READ {
        panic!("injected fault: {PANIC_ON_READ}");
    }
}

/// Panics if `publish` asks for [`PANIC_ON_DELIVERY`].
pub(crate) fn on_delivery(publish: &Publish) {
    if publish.frame.ends_with(PANIC_ON_DELIVERY.as_bytes()) {
        panic!("injected fault: {PANIC_ON_DELIVERY}");
    }
}

/// Panics if one of `publishes` asks for [`PANIC_IN_REACTOR`].
pub(crate) fn on_inbox(publishes: &[Publish]) {
    if publishes
        .iter()
        .any(|p| p.topic.as_deref() == Some(PANIC_IN_REACTOR))
    {
        panic!("injected fault: {PANIC_IN_REACTOR}");
    }
}

/// A socket that takes at most `budget` more bytes, then would block (`budget` 0: every
/// write is `WouldBlock`). Records what it took and how many calls it saw.
#[derive(Debug, Default)]
pub(crate) struct Limited {
    pub taken: Vec<u8>,
    pub budget: usize,
    pub calls: usize,
}

impl Limited {
    /// A socket that takes `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.calls += 1;
        if self.budget == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(self.budget);
            self.taken.extend_from_slice(&buf[..take]);
            self.budget -= take;
            n += take;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
