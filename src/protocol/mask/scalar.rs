//! Portable masking: the byte-by-byte reference and a word-at-a-time path.

use super::rotated_key;

/// The byte-by-byte reference every faster path is tested against.
///
/// Deliberately naive: one byte, one key lookup per step. `inline(never)` keeps it
/// from being specialised into callers; see `benches/mask.rs` for what LLVM makes of it.
#[inline(never)]
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[offset.wrapping_add(i) & 3];
    }
}

/// Masks a `u64` at a time with the key repeated twice; no SIMD, no `unsafe`.
///
/// The few bytes before the first 8-byte-aligned address and after the last whole word
/// are done one at a time.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let head_len = buf.as_ptr().align_offset(8).min(buf.len());
    let (head, body) = buf.split_at_mut(head_len);
    xor_bytes(head, rotated_key(key, offset));
    xor_words(body, rotated_key(key, offset.wrapping_add(head_len)));
}

/// XORs `buf` with `key` repeated, starting at `key[0]`, a `u64` at a time (unaligned
/// loads are fine; [`apply_mask_scalar`] aligns first, vector paths' tails need not).
#[inline]
pub(super) fn xor_words(buf: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        let Ok(w) = <&mut [u8; 8]>::try_from(chunk) else {
            unreachable!("chunks_exact_mut(8) yields 8-byte chunks");
        };
        *w = (u64::from_ne_bytes(*w) ^ word).to_ne_bytes();
    }
    // Whole words keep the key phase, so the rest starts at `key[0]` again.
    xor_bytes(words.into_remainder(), key);
}

/// XORs `buf` with `key` repeated, starting at `key[0]`, a byte at a time. For heads and
/// tails (< 32 bytes).
#[inline]
pub(super) fn xor_bytes(buf: &mut [u8], key: [u8; 4]) {
    for (byte, k) in buf.iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}
