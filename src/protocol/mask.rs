//! Masking and unmasking of payloads (RFC 6455 section 5.3).
//!
//! Every payload a client sends is XORed with a 4-byte key; the server undoes it in
//! place. [`apply_mask`] picks the fastest path this CPU can run once, on first use:
//!
//! * x86_64: AVX2 (32 bytes a step) or SSE2 (16 bytes a step), chosen at run time;
//! * aarch64: NEON (16 bytes a step);
//! * elsewhere: [`apply_mask_scalar`], a `u64` at a time.
//!
//! [`apply_mask_reference`] is the byte-by-byte definition the others are tested against.

mod scalar;
mod select;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

pub use scalar::{apply_mask_reference, apply_mask_scalar};
#[doc(hidden)]
pub use select::simd_paths;

/// The shape of every masking routine: `(buffer, key, offset)`, see [`apply_mask`].
pub type MaskFn = fn(&mut [u8], [u8; 4], usize);

/// XORs `buf` in place with the masking `key`, starting at byte `offset % 4` of the key.
///
/// Masking and unmasking are the same operation. `offset` lets a payload that arrives in
/// pieces be unmasked piece by piece: pass the number of payload bytes already unmasked.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < SMALL {
        // Small payloads, the common case: a few unaligned word XORs inline beat the
        // indirect call and the vector paths' set-up.
        scalar::xor_words(buf, rotated_key(key, offset));
    } else {
        (select::best())(buf, key, offset);
    }
}

/// Below this length [`apply_mask`] XORs words inline instead of dispatching.
const SMALL: usize = 64;

/// The key as seen from payload byte `offset`: byte `i` masks payload bytes `4n + i`.
#[inline]
fn rotated_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let o = offset & 3;
    [key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3]]
}
