//! Deflate and inflate state shared by every connection of a thread (a reactor is one
//! thread), so that no connection holds any between messages.
//!
//! Without context takeover a compressor or inflater carries nothing from one message
//! to the next, so one per thread serves all: a compressor per window size (a message
//! is compressed whole within one call), and a few inflaters lent to connections while
//! a compressed message is being received and handed back when it ends.

use std::cell::RefCell;

use super::compress::Compressor;
use super::inflate::Inflater;

/// Inflaters kept for reuse per thread (more are made when more connections are in
/// the middle of a compressed message at once, and dropped when handed back).
const KEEP_INFLATERS: usize = 4;

thread_local! {
    /// Boxed as decoders hold them: lending one out moves a pointer, not the state.
    #[allow(clippy::vec_box)]
    static INFLATERS: RefCell<Vec<Box<Inflater>>> = const { RefCell::new(Vec::new()) };
    /// Compressors by (level, window bits).
    static COMPRESSORS: RefCell<Vec<(u8, u8, Compressor)>> = const { RefCell::new(Vec::new()) };
}

/// Lends an inflater with a 32 KiB window (which inflates what any smaller window
/// made), fresh or reset.
pub fn take_inflater() -> Box<Inflater> {
    INFLATERS
        .try_with(|pool| pool.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Box::new(Inflater::new(15)))
}

/// Hands back an inflater from [`take_inflater`]: reset, and kept for the next message
/// unless enough are kept already.
pub fn give_back(mut inflater: Box<Inflater>) {
    inflater.reset();
    let _ = INFLATERS.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut()
            && pool.len() < KEEP_INFLATERS
        {
            pool.push(inflater);
        }
    });
}

/// Compresses the message `input` into `out` (see [`Compressor::compress`]) with this
/// thread's compressor for `level` and `window_bits`, made on first use.
pub fn compress(level: u8, window_bits: u8, input: &[u8], out: &mut Vec<u8>) -> bool {
    let shared = COMPRESSORS.try_with(|pool| {
        let mut pool = pool.try_borrow_mut().ok()?;
        let i = match pool
            .iter()
            .position(|(l, w, _)| (*l, *w) == (level, window_bits))
        {
            Some(i) => i,
            None => {
                pool.push((level, window_bits, Compressor::new(level, window_bits)));
                pool.len() - 1
            }
        };
        Some(pool[i].2.compress(input, out))
    });
    match shared {
        Ok(Some(done)) => done,
        // The thread is ending (or the pool is busy): one of its own.
        _ => Compressor::new(level, window_bits).compress(input, out),
    }
}
