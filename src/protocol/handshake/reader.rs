//! Reading a request head incrementally, with bounded work and memory.

use std::mem;

use super::limits::HandshakeLimits;
use super::refusal::Refusal;
use super::request::RequestHead;
use super::scan::{OVERLAP, find_head_end};

/// First buffer size when a head arrives in pieces (capped by the limit).
const INITIAL_CAPACITY: usize = 1024;

/// Reads one HTTP request head from bytes as they arrive.
///
/// Each [`push`](Self::push) looks only at its new bytes (plus three bytes of
/// overlap) for the blank line that ends the head, and the head is parsed once
/// when complete, so a head delivered one byte at a time costs time linear in
/// its length. When the reader holds nothing and one push carries the whole
/// head, it is parsed straight from the caller's slice, never copied into the
/// reader. The reader holds at most
/// [`max_header_bytes`](HandshakeLimits::max_header_bytes) and releases its
/// buffer as soon as it yields a head or a refusal, so an idle reader owns no
/// heap memory.
///
/// After a head or a refusal the reader is empty again and could read the next
/// head on a kept-alive connection.
#[derive(Debug, Clone, Default)]
pub struct HeadReader {
    limits: HandshakeLimits,
    buf: Vec<u8>,
}

impl HeadReader {
    /// A reader enforcing `limits`.
    pub fn new(limits: HandshakeLimits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
        }
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> HandshakeLimits {
        self.limits
    }

    /// Feeds newly received bytes.
    ///
    /// `Ok(None)`: the head is not complete yet; every byte was kept. `Ok(Some((head,
    /// used)))`: the head is complete and the first `used` bytes of *this call's*
    /// `bytes` belonged to it; the rest (early WebSocket frames or an HTTP body)
    /// stay with the caller. `Err`: the response to send before closing: `431`
    /// once the head outgrows a limit, `400` when it is malformed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, Refusal> {
        let max = self.limits.max_header_bytes;
        if self.buf.is_empty() {
            return self.push_fresh(bytes, max);
        }
        let old = self.buf.len();
        let take = bytes.len().min(max.saturating_sub(old));
        self.buf
            .extend_from_slice(bytes.get(..take).unwrap_or_default());
        match find_head_end(&self.buf, old.saturating_sub(OVERLAP)) {
            Some(end) => {
                let mut raw = mem::take(&mut self.buf);
                raw.truncate(end);
                let layout = RequestHead::parse(&raw, &self.limits)?;
                Ok(Some((
                    RequestHead::from_parts(raw, layout),
                    end.saturating_sub(old),
                )))
            }
            None if take < bytes.len() => {
                self.buf = Vec::new();
                Err(Refusal::too_large("request head too large"))
            }
            None => Ok(None),
        }
    }

    /// [`push`](Self::push) when nothing is held: parse in place if possible.
    fn push_fresh(
        &mut self,
        bytes: &[u8],
        max: usize,
    ) -> Result<Option<(RequestHead, usize)>, Refusal> {
        let window = bytes.get(..max).unwrap_or(bytes);
        if let Some(end) = find_head_end(window, 0) {
            let head = window.get(..end).unwrap_or_default();
            let layout = RequestHead::parse(head, &self.limits)?;
            return Ok(Some((RequestHead::from_parts(head.to_vec(), layout), end)));
        }
        if bytes.len() > max {
            return Err(Refusal::too_large("request head too large"));
        }
        if !bytes.is_empty() {
            self.buf
                .reserve_exact(bytes.len().max(INITIAL_CAPACITY.min(max)));
            self.buf.extend_from_slice(bytes);
        }
        Ok(None)
    }

    /// Bytes held from an incomplete head; 0 when the reader keeps nothing.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes the reader owns; 0 when idle.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UPGRADE: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn with_tail(tail: &[u8]) -> Vec<u8> {
        [UPGRADE, tail].concat()
    }

    #[test]
    fn whole_head_in_one_push_is_not_buffered() {
        let mut reader = HeadReader::default();
        let input = with_tail(b"\x81\x85frame");
        let (head, used) = reader.push(&input).unwrap().unwrap();
        assert_eq!(used, UPGRADE.len());
        assert_eq!(&input[used..], b"\x81\x85frame");
        assert_eq!(head.raw(), UPGRADE);
        assert_eq!(head.path(), "/chat");
        assert_eq!((reader.buffered(), reader.capacity()), (0, 0));
    }

    #[test]
    fn byte_at_a_time_matches_one_push() {
        let input = with_tail(b"tail");
        let (whole, _) = HeadReader::default().push(&input).unwrap().unwrap();
        let mut reader = HeadReader::default();
        for (i, byte) in input.iter().enumerate() {
            match reader.push(std::slice::from_ref(byte)).unwrap() {
                None => assert_eq!(reader.buffered(), i + 1),
                Some((head, used)) => {
                    assert_eq!(i + 1, UPGRADE.len());
                    assert_eq!(used, 1);
                    assert_eq!(head.raw(), whole.raw());
                    assert_eq!(
                        head.headers().collect::<Vec<_>>(),
                        whole.headers().collect::<Vec<_>>()
                    );
                    assert_eq!((reader.buffered(), reader.capacity()), (0, 0));
                    return;
                }
            }
        }
        panic!("head never completed");
    }

    #[test]
    fn split_pushes_report_used_of_the_last_push() {
        let input = with_tail(b"leftover");
        for split in 1..UPGRADE.len() {
            let mut reader = HeadReader::default();
            assert!(reader.push(&input[..split]).unwrap().is_none());
            let (head, used) = reader.push(&input[split..]).unwrap().unwrap();
            assert_eq!(head.raw(), UPGRADE);
            assert_eq!(&input[split + used..], b"leftover");
        }
    }

    #[test]
    fn exceeding_the_byte_limit_is_431_as_soon_as_held() {
        let limits = HandshakeLimits {
            max_header_bytes: 32,
            ..HandshakeLimits::default()
        };
        let mut reader = HeadReader::new(limits);
        assert!(reader.push(&[b'a'; 20]).unwrap().is_none());
        assert!(reader.push(&[b'a'; 12]).unwrap().is_none());
        assert_eq!(reader.buffered(), 32);
        assert_eq!(reader.push(b"a").unwrap_err().status, 431);
        assert_eq!((reader.buffered(), reader.capacity()), (0, 0));
        // In one push, too.
        assert_eq!(reader.push(&[b'a'; 33]).unwrap_err().status, 431);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn head_of_exactly_the_limit_is_accepted() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for chunk in [head.len(), 1, 5] {
            let mut reader = HeadReader::new(HandshakeLimits {
                max_header_bytes: head.len(),
                ..HandshakeLimits::default()
            });
            let mut result = None;
            for piece in head.chunks(chunk) {
                result = reader.push(piece).unwrap();
            }
            assert_eq!(result.unwrap().0.raw(), head);
        }
    }

    #[test]
    fn near_limit_head_byte_at_a_time() {
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..60 {
            text.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(110)));
        }
        text.push_str("\r\n");
        assert!(text.len() > 7000 && text.len() <= 8192);
        let mut reader = HeadReader::default();
        let (last, rest) = text.as_bytes().split_last().unwrap();
        for byte in rest {
            assert!(reader.push(std::slice::from_ref(byte)).unwrap().is_none());
        }
        let (head, used) = reader.push(&[*last]).unwrap().unwrap();
        assert_eq!((head.header_count(), used), (60, 1));
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut reader = HeadReader::new(HandshakeLimits {
            max_headers: 3,
            ..HandshakeLimits::default()
        });
        assert_eq!(reader.push(UPGRADE).unwrap_err().status, 431);
    }

    #[test]
    fn malformed_complete_head_is_400_and_releases_buffer() {
        let mut reader = HeadReader::default();
        assert!(
            reader
                .push(b"GET / HTTP/1.1\r\nBad Header")
                .unwrap()
                .is_none()
        );
        assert_eq!(reader.push(b": x\r\n\r\n").unwrap_err().status, 400);
        assert_eq!((reader.buffered(), reader.capacity()), (0, 0));
    }

    #[test]
    fn empty_pushes_change_nothing() {
        let mut reader = HeadReader::default();
        assert!(reader.push(b"").unwrap().is_none());
        assert_eq!(reader.capacity(), 0);
        assert!(reader.push(b"GET").unwrap().is_none());
        assert!(reader.push(b"").unwrap().is_none());
        assert_eq!(reader.buffered(), 3);
    }

    #[test]
    fn reader_reads_the_next_head_after_one() {
        let mut reader = HeadReader::default();
        let (_, used) = reader.push(UPGRADE).unwrap().unwrap();
        assert_eq!(used, UPGRADE.len());
        let (head, _) = reader.push(b"GET /2 HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.path(), "/2");
    }

    /// Outcome of feeding `chunks` in turn: the head's bytes and its total
    /// length, `None` while incomplete, or the refusal status.
    fn feed<'a>(
        limits: HandshakeLimits,
        chunks: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<(Vec<u8>, usize)>, u16> {
        let mut reader = HeadReader::new(limits);
        let mut before = 0;
        for chunk in chunks {
            match reader.push(chunk) {
                Ok(None) => before += chunk.len(),
                Ok(Some((head, used))) => {
                    assert!(used <= chunk.len());
                    assert_eq!(reader.buffered(), 0);
                    return Ok(Some((head.raw().to_vec(), before + used)));
                }
                Err(refusal) => return Err(refusal.status),
            }
        }
        Ok(None)
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_splitting_changes_nothing(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            chunk in 1usize..50,
            max in 0usize..700,
            max_headers in 0usize..8,
        ) {
            let limits = HandshakeLimits { max_header_bytes: max, max_headers };
            let whole = feed(limits, std::iter::once(&bytes[..]));
            let pieces = feed(limits, bytes.chunks(chunk));
            prop_assert_eq!(&whole, &pieces);
            if let Ok(Some((raw, used))) = whole {
                prop_assert_eq!(&raw[..], &bytes[..used]);
                let head = RequestHead::from_bytes(&raw, &limits).unwrap();
                let _ = super::super::classify(&head);
            }
        }

        #[test]
        fn header_like_input_never_panics(
            lines in proptest::collection::vec(
                "(Upgrade|Connection|Host|Sec-WebSocket-Key|Sec-WebSocket-Version|Sec-WebSocket-Protocol|X)[:]? ?[ -~]{0,30}",
                0..10,
            ),
            method in "(GET|POST|get|G)",
            version in "HTTP/1\\.[01]",
        ) {
            let mut text = format!("{method} /p?q {version}\r\n");
            for line in &lines {
                text.push_str(line);
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            let mut reader = HeadReader::default();
            if let Ok(Some((head, used))) = reader.push(text.as_bytes()) {
                prop_assert_eq!(used, text.len());
                let _ = super::super::classify(&head);
                let _: Vec<_> = head.protocols().chain(head.extensions()).collect();
            }
        }
    }
}
