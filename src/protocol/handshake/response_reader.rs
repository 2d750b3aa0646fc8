//! Collecting the server's response head on the client side.

use super::client::HandshakeError;
use super::scan::{OVERLAP, find_head_end};

/// Collects an HTTP response head from bytes as they arrive, for
/// [`ClientHandshake::validate`](super::ClientHandshake::validate).
///
/// Unlike the server's [`HeadReader`](super::HeadReader) it always copies: the
/// client reads one head per connection, so simplicity wins. Each push scans
/// only its new bytes (plus three of overlap), and at most `max_bytes` are kept.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    max_bytes: usize,
    buf: Vec<u8>,
    complete: bool,
}

impl Default for ResponseReader {
    /// A reader allowing 8192 bytes of head.
    fn default() -> Self {
        Self::new(8192)
    }
}

impl ResponseReader {
    /// A reader allowing a head of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            buf: Vec::new(),
            complete: false,
        }
    }

    /// Feeds newly received bytes. `Ok(None)`: need more. `Ok(Some(used))`:
    /// the head is complete (see [`head`](Self::head)) and the first `used`
    /// bytes of this call's `bytes` belonged to it; the rest are WebSocket
    /// frames for the caller. Once complete, further pushes use nothing.
    /// `Err(TooLarge)` when the head outgrows `max_bytes`.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<usize>, HandshakeError> {
        if self.complete {
            return Ok(Some(0));
        }
        let old = self.buf.len();
        let take = bytes.len().min(self.max_bytes.saturating_sub(old));
        self.buf
            .extend_from_slice(bytes.get(..take).unwrap_or_default());
        match find_head_end(&self.buf, old.saturating_sub(OVERLAP)) {
            Some(end) => {
                self.buf.truncate(end);
                self.complete = true;
                Ok(Some(end.saturating_sub(old)))
            }
            None if take < bytes.len() => Err(HandshakeError::TooLarge),
            None => Ok(None),
        }
    }

    /// The complete head, once [`push`](Self::push) has returned `Some`.
    pub fn head(&self) -> Option<&[u8]> {
        self.complete.then_some(&self.buf[..])
    }

    /// Bytes held so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_a_split_head_and_reports_used() {
        let mut reader = ResponseReader::default();
        assert_eq!(reader.push(b"HTTP/1.1 101 OK\r\n\r"), Ok(None));
        assert_eq!(reader.head(), None);
        assert_eq!(reader.push(b"\nframe"), Ok(Some(1)));
        assert_eq!(reader.head(), Some(&b"HTTP/1.1 101 OK\r\n\r\n"[..]));
        assert_eq!(reader.push(b"more"), Ok(Some(0)));
    }

    #[test]
    fn limit_is_enforced() {
        let mut reader = ResponseReader::new(8);
        assert_eq!(reader.push(b"HTTP/1.1"), Ok(None));
        assert_eq!(reader.push(b" "), Err(HandshakeError::TooLarge));
        assert_eq!(
            ResponseReader::new(4).push(b"HTTP/1.1"),
            Err(HandshakeError::TooLarge)
        );
    }
}
