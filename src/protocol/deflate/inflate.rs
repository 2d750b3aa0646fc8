//! Bounded streaming decompression of one message (RFC 7692 section 7.2.2).
//!
//! Compressed bytes are inflated as they arrive, frame piece by frame piece, into the
//! message's buffer, which never grows past the caller's limit plus one byte: a
//! decompression bomb is stopped at the limit, whatever size it claims or would reach.

use flate2::{Decompress, FlushDecompress, Status};

use crate::protocol::error::ProtocolError;

/// The four bytes a sender removes from the end of a compressed message and a
/// receiver appends before inflating (RFC 7692 sections 7.2.1 and 7.2.2): the end of
/// an empty stored block, as a sync flush leaves it.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The first growth step of a message's buffer; it then doubles, up to the limit + 1.
const FIRST_STEP: usize = 4 << 10;

/// Raw DEFLATE decompression (RFC 1951) of a message stream.
///
/// Memory (estimated, not measured): several KiB of state (zlib's is about 7 KiB)
/// plus the window (2^`window_bits` bytes, allocated by
/// the library on first use).
pub struct Inflater {
    raw: Decompress,
    /// A final block (BFINAL) ended the stream; what follows it in the message is
    /// ignored, and the stream restarts with the next message.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("total_in", &self.raw.total_in())
            .field("ended", &self.ended)
            .finish()
    }
}

impl Inflater {
    /// An inflater for a peer compressing with windows of up to 2^`window_bits` bytes.
    /// The library's smallest inflate window is 9 bits: 8 is inflated with 9, which
    /// accepts every stream an 8-bit window can produce.
    pub fn new(window_bits: u8) -> Self {
        Self {
            raw: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            ended: false,
        }
    }

    /// Inflates `input` (the next compressed bytes of the message, any split),
    /// appending to `out`, the message's inflated payload. `check` sees every newly
    /// inflated piece in order (UTF-8 validation, failing fast).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooLarge`] (1009) as soon as `out` would pass `limit`
    /// bytes (it holds at most `limit + 1`); [`ProtocolError::InvalidCompressedData`]
    /// (1007) for data that is not valid DEFLATE; whatever `check` returns.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let mut pos = 0;
        while !self.ended {
            grow(out, limit);
            let (in_before, out_before) = (self.raw.total_in(), out.len());
            let status = self
                .raw
                .decompress_vec(&input[pos..], out, FlushDecompress::None);
            let Ok(status) = status else {
                // The same call may have filled the room past the limit before it
                // found the bad data (a block header needs no room): the size came
                // first in the stream, as a split input would have shown.
                check(&out[out_before..out.len().min(limit)])?;
                return Err(if out.len() > limit {
                    ProtocolError::MessageTooLarge
                } else {
                    ProtocolError::InvalidCompressedData
                });
            };
            let used = (self.raw.total_in() - in_before) as usize;
            pos += used;
            // What lies within the limit is checked first, so the outcome does not
            // depend on how the input was split.
            check(&out[out_before..out.len().min(limit)])?;
            if out.len() > limit {
                return Err(ProtocolError::MessageTooLarge);
            }
            match status {
                Status::StreamEnd => self.ended = true,
                // Nothing more can happen with this input (and room was there).
                Status::BufError => break,
                Status::Ok if pos == input.len() && out.len() < out.capacity() => break,
                Status::Ok if used == 0 && out.len() == out_before => break,
                Status::Ok => {}
            }
        }
        Ok(())
    }

    /// Ends the message: inflates the `TAIL` (section 7.2.2), so the last block's
    /// bytes come out. Errors as [`Inflater::inflate`].
    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
        check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        self.inflate(&TAIL, out, limit, check)?;
        if self.ended {
            // A final block ended the stream: the next message starts a new one.
            self.reset();
        }
        Ok(())
    }

    /// Forgets the stream and its window (for the next message, without context
    /// takeover), keeping the allocations.
    pub fn reset(&mut self) {
        self.raw.reset(false);
        self.ended = false;
    }
}

/// Makes room in `out` for more output without ever reserving past `limit + 1` bytes:
/// doubling from [`FIRST_STEP`], so a long message costs few copies.
fn grow(out: &mut Vec<u8>, limit: usize) {
    if out.len() < out.capacity() {
        return;
    }
    let cap = limit.saturating_add(1).max(out.len() + 1);
    let target = (out.capacity() * 2).max(out.len() + FIRST_STEP).min(cap);
    out.reserve_exact(target - out.len());
}
