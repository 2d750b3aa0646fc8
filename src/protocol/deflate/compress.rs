//! Compression of one message (RFC 7692 section 7.2.1), without context takeover.

use flate2::{Compress, Compression, FlushCompress};

use super::inflate::TAIL;

/// Raw DEFLATE compression (RFC 1951) of whole messages, each on its own: the context
/// is reset after every message, so any connection can share the output.
///
/// Memory (the library's buffers at the default memory level, estimated from their
/// sizes, not measured): about 2^(`window_bits` + 2) bytes of window and chains plus
/// 192 KiB (a 128 KiB hash table and a 64 KiB symbol buffer, whatever the window), so
/// about 320 KiB at 15 bits and 194 KiB at 9; kept per thread and window size by
/// [`super::pool`], never per connection.
///
/// Cost: the reset after every message clears the library's hash table (128 KiB at
/// every level, window and memory level), about 4 µs on the project's machine, more
/// than compressing 1 KiB of JSON at level 1 takes (docs/benchmarks.md section 4).
pub struct Compressor {
    raw: Compress,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("total_in", &self.raw.total_in())
            .finish()
    }
}

impl Compressor {
    /// A compressor at `level` (0 to 9, clamped) whose matches reach at most
    /// 2^`window_bits` bytes back.
    ///
    /// The library's smallest deflate window is 9 bits; for 8 it compresses with 9,
    /// whose matches never reach more than 250 bytes back (the window less the 262
    /// bytes of lookahead zlib reserves), so the stream fits a 256-byte window (the
    /// same choice zlib made before 1.2.9 and Node.js makes today).
    pub fn new(level: u8, window_bits: u8) -> Self {
        Self {
            raw: Compress::new_with_window_bits(
                Compression::new(u32::from(level.min(9))),
                false,
                window_bits.clamp(9, 15),
            ),
        }
    }

    /// Appends the compressed payload of the message `input` to `out`: DEFLATE with a
    /// sync flush, the trailing `00 00 ff ff` removed (section 7.2.1). Then resets.
    ///
    /// Returns `false`, `out` unchanged, if the library reported an error (the caller
    /// sends the message uncompressed).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let in_start = self.raw.total_in();
        let ok = loop {
            let consumed = (self.raw.total_in() - in_start) as usize;
            out.reserve((input.len() - consumed) / 2 + 64);
            if self
                .raw
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .is_err()
            {
                break false;
            }
            let consumed = (self.raw.total_in() - in_start) as usize;
            // A sync flush is complete once it returns with room left in the output.
            if consumed == input.len() && out.len() < out.capacity() {
                break out[start..].ends_with(&TAIL);
            }
        };
        self.raw.reset();
        if ok {
            out.truncate(out.len() - TAIL.len());
        } else {
            out.truncate(start);
        }
        ok
    }
}
