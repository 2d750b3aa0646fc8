//! Streaming UTF-8 validation for text messages that arrive in pieces.
//!
//! PLACEHOLDER: a simple std-based version; the simdutf8 one is being written.

/// The bytes received so far can no longer become valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a complete text payload in one go.
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    std::str::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

/// Validates a text message fed in pieces of any size, failing as soon as the bytes
/// received so far can no longer be the start of valid UTF-8.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    partial: [u8; 4],
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
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut all = self.partial[..self.partial_len as usize].to_vec();
        all.extend_from_slice(bytes);
        match std::str::from_utf8(&all) {
            Ok(_) => {
                self.partial_len = 0;
                Ok(())
            }
            Err(e) if e.error_len().is_none() => {
                let rest = &all[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the message: fails if it stops in the middle of a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let clean = self.partial_len == 0;
        self.partial_len = 0;
        if clean { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Forgets any carried bytes, ready for a new message.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}
