//! [`Utf8Stream`]: validation of a message that arrives in pieces.
//!
//! Each piece is split into a body that ends on a code point boundary, checked with
//! SIMD in place, and an incomplete last code point of at most 3 bytes, which is
//! carried to the next piece. Only the carried bytes and the first few bytes of the
//! next piece are ever copied.

use simdutf8::compat;

use super::{InvalidUtf8, validate};

/// Validates a text message fed in pieces of any size, failing as soon as the bytes
/// received so far can no longer be the start of valid UTF-8.
///
/// After an error the stream is reset; a failed message should be dropped anyway.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    /// The start of a code point cut off by the end of the last piece.
    partial: [u8; 4],
    /// How many bytes of `partial` are in use: 0 to 3.
    partial_len: u8,
}

impl Utf8Stream {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Feeds the next piece of the message.
    ///
    /// Fails if the message so far can no longer become valid UTF-8, however it goes on.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let result = self.feed_inner(bytes);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Ends the message: fails if it stops in the middle of a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let clean = self.partial_len == 0;
        self.reset();
        if clean { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Forgets any carried bytes, ready for a new message.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    fn feed_inner(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            bytes = self.complete_partial(bytes)?;
        }
        let (body, tail) = bytes.split_at(incomplete_tail_start(bytes));
        validate(body)?;
        if !tail.is_empty() {
            self.carry(tail)?;
        }
        Ok(())
    }

    /// Adds the first bytes of `bytes` to the carried code point; returns the rest.
    ///
    /// If `bytes` runs out first, the code point stays carried and the rest is empty.
    fn complete_partial<'a>(&mut self, bytes: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = usize::from(self.partial_len);
        // `carry` only keeps sequences whose lead byte promises more than `have` bytes.
        let take = (width(self.partial[0]) - have).min(bytes.len());
        let (head, rest) = bytes.split_at(take);
        self.partial[have..have + take].copy_from_slice(head);
        let len = have + take;
        match prefix_state(&self.partial[..len])? {
            Prefix::Complete => self.partial_len = 0,
            Prefix::Incomplete => self.partial_len = len as u8,
        }
        Ok(rest)
    }

    /// Keeps `tail`, the start of a code point cut off by the end of a piece.
    fn carry(&mut self, tail: &[u8]) -> Result<(), InvalidUtf8> {
        match prefix_state(tail)? {
            // `incomplete_tail_start` only cuts before a sequence longer than the tail.
            Prefix::Complete => unreachable!("carried tail holds a whole code point"),
            Prefix::Incomplete => {
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }
}

/// What a short run of bytes (one code point at most) can still become.
enum Prefix {
    /// Exactly one valid code point.
    Complete,
    /// The start of a code point that more bytes could complete.
    Incomplete,
}

/// Classifies `seq`, at most one code point or the start of one; errors if more bytes
/// could never make it valid (a bad lead byte, overlong form, surrogate, > U+10FFFF).
fn prefix_state(seq: &[u8]) -> Result<Prefix, InvalidUtf8> {
    match compat::from_utf8(seq) {
        Ok(_) => Ok(Prefix::Complete),
        Err(e) if e.error_len().is_none() => Ok(Prefix::Incomplete),
        Err(_) => Err(InvalidUtf8),
    }
}

/// Where the last code point of `bytes` starts if it is cut off by the end of `bytes`;
/// `bytes.len()` if `bytes` ends on a boundary (or is invalid there anyway).
fn incomplete_tail_start(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(3) {
        let b = bytes[n - back];
        if !is_continuation(b) {
            return if width(b) > back { n - back } else { n };
        }
    }
    n
}

/// Is `b` a continuation byte (`10xxxxxx`)?
const fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// The length of the sequence `lead` starts, or 0 if no valid sequence starts with it.
const fn width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}
