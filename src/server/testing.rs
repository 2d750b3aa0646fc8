//! Test doubles shared by the runtime's unit tests.

use std::io::{self, IoSlice, Write};

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
