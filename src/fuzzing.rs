//! Fuzz harnesses: what each target under `fuzz/fuzz_targets/` runs, and what its
//! seed corpus is replayed through by `cargo test`.
//!
//! Compiled for the unit tests and with the `fuzzing` feature (which `fuzz/` turns
//! on); not part of the public API. Each harness takes arbitrary bytes, never panics
//! on its own account, and checks properties that must hold for any input, so that a
//! broken one is a crash the fuzzer reports:
//!
//! * [`frames`]: the frame decoder in either role, fed whole and cut into reads,
//!   must produce the same events; text must be UTF-8, control payloads at most 125
//!   bytes, messages within the limit, and leftover bytes at most a partial header.
//! * [`request_head`]: the request head reader and [`classify`](crate::protocol::handshake::classify);
//!   whole and cut input agree, and every refusal writes a well-formed response.
//! * [`response_head`]: the client's response reader and handshake check.
//! * [`connection`]: one connection's state machine with an echoing handler: the
//!   bytes it writes are one HTTP response and, after a 101, valid unmasked server
//!   frames with nothing after a close frame.
//! * [`inflate`]: permessage-deflate's receive path: arbitrary compressed payloads,
//!   whole and in reads, within the limit, failing with 1007 or 1009 only; and a
//!   compress-then-inflate round trip.
//! * [`proxy_header`]: the PROXY protocol reader (v1 and v2): whole and cut input
//!   agree, and a header never claims bytes it was not given.
//!
//! Every input starts with two bytes: how to cut the rest into reads (`0`: one
//! read; `n`: reads of `n` bytes) and a set of option bits each harness reads its own
//! way (small limits, timers, a ready-made upgrade request).

mod connection;
mod frames;
mod heads;
mod inflate;
mod proxy;
#[cfg(test)]
mod tests;

pub use connection::connection;
pub use frames::frames;
pub use heads::{request_head, response_head};
pub use inflate::inflate;
pub use proxy::proxy_header;

/// A fuzz input: option bits and a stream cut into reads.
#[derive(Debug, Clone, Copy)]
struct Input<'a> {
    options: u8,
    step: usize,
    stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits off the two leading bytes; `None` for inputs shorter than that.
    fn parse(data: &'a [u8]) -> Option<Self> {
        let (&[step, options], stream) = data.split_first_chunk::<2>()?;
        Some(Self {
            options,
            step: usize::from(step),
            stream,
        })
    }

    /// Whether option bit `bit` is set.
    fn option(&self, bit: u8) -> bool {
        self.options & (1 << bit) != 0
    }

    /// The stream as the reads it arrives in.
    fn reads(&self) -> Vec<&'a [u8]> {
        match self.step {
            0 => vec![self.stream],
            step => self.stream.chunks(step).collect(),
        }
    }
}
