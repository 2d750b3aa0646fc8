//! UTF-8 validation for text messages, whole or arriving in pieces.
//!
//! * [`validate`]: a complete payload in one go, the fastest path.
//! * [`Utf8Stream`]: a message fed piece by piece (frames, reads) that fails as soon as
//!   the bytes so far can no longer become valid UTF-8, as RFC 6455 section 8.1 asks.

mod ascii;
mod stream;

#[cfg(test)]
mod tests;

use std::fmt;

pub use stream::Utf8Stream;

/// The bytes received so far can no longer become valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8 in a text message")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Validates a complete text payload in one go (SIMD where the CPU has it).
///
/// A leading run of ASCII is skipped 64 bytes at a time; `simdutf8::basic` checks the rest.
#[inline]
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    if bytes.len() < 64 && ascii::is_ascii_short(bytes) {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    let ascii = ascii::prefix_len(bytes);
    simdutf8::basic::from_utf8(&bytes[ascii..]).map_err(|_| InvalidUtf8)?;
    // SAFETY: `bytes[..ascii]` is ASCII and `bytes[ascii..]` was just validated; ASCII
    // ends on a character boundary, so the whole is valid UTF-8.
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}
