//! x86_64 paths: SSE2 (16 bytes a step) and AVX2 (32 bytes a step).
//!
//! Both first mask the few bytes up to a vector-aligned address (long buffers only),
//! then run an unrolled loop of four vectors, then single vectors, then finish the last
//! bytes a word at a time.

use core::arch::x86_64::{
    __m128i, __m256i, _mm_loadu_si128, _mm_set1_epi32, _mm_storeu_si128, _mm_xor_si128,
    _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
};

use super::scalar::{xor_bytes, xor_words};
use super::{MaskFn, rotated_key};

/// The AVX2 path, if this CPU has AVX2.
pub(super) fn avx2() -> Option<MaskFn> {
    is_x86_feature_detected!("avx2").then_some(avx2_entry as MaskFn)
}

/// The SSE2 path, if this CPU has SSE2 (every x86_64 CPU does).
pub(super) fn sse2() -> Option<MaskFn> {
    is_x86_feature_detected!("sse2").then_some(sse2_entry as MaskFn)
}

/// Only ever handed out by [`avx2`], after AVX2 was detected.
fn avx2_entry(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // SAFETY: this function is reachable only through `avx2()`, which returns it only
    // when the CPU supports AVX2.
    unsafe { mask_avx2(buf, key, offset) }
}

/// Only ever handed out by [`sse2`], after SSE2 was detected.
fn sse2_entry(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // SAFETY: this function is reachable only through `sse2()`, which returns it only
    // when the CPU supports SSE2.
    unsafe { mask_sse2(buf, key, offset) }
}

/// # Safety
///
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn mask_avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let head_len = aligned_head_len(buf, 32);
    let (head, body) = buf.split_at_mut(head_len);
    xor_bytes(head, rotated_key(key, offset));

    // Vectors are multiples of 4 bytes long, so the key phase is `k` from here on.
    let k = rotated_key(key, offset.wrapping_add(head_len));
    let kv = _mm256_set1_epi32(i32::from_ne_bytes(k));
    let mut blocks = body.chunks_exact_mut(128);
    for block in &mut blocks {
        let p = block.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `block` is 128 bytes, four `__m256i`, valid for reads and writes;
        // the unaligned load and store have no alignment requirement.
        unsafe {
            let a = _mm256_loadu_si256(p);
            let b = _mm256_loadu_si256(p.add(1));
            let c = _mm256_loadu_si256(p.add(2));
            let d = _mm256_loadu_si256(p.add(3));
            _mm256_storeu_si256(p, _mm256_xor_si256(a, kv));
            _mm256_storeu_si256(p.add(1), _mm256_xor_si256(b, kv));
            _mm256_storeu_si256(p.add(2), _mm256_xor_si256(c, kv));
            _mm256_storeu_si256(p.add(3), _mm256_xor_si256(d, kv));
        }
    }
    let mut vectors = blocks.into_remainder().chunks_exact_mut(32);
    for v in &mut vectors {
        let p = v.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `v` is 32 bytes, one `__m256i`, valid for reads and writes; unaligned
        // access is allowed.
        unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), kv)) };
    }
    let tail = vectors.into_remainder();
    if tail.len() >= 16 {
        let (half, rest) = tail.split_at_mut(16);
        let p = half.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `half` is 16 bytes, one `__m128i`, valid for reads and writes;
        // unaligned access is allowed. AVX2 implies SSE2.
        unsafe {
            let kv = _mm_set1_epi32(i32::from_ne_bytes(k));
            _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), kv));
        }
        xor_words(rest, k);
    } else {
        xor_words(tail, k);
    }
}

/// # Safety
///
/// The CPU must support SSE2.
#[target_feature(enable = "sse2")]
unsafe fn mask_sse2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let head_len = aligned_head_len(buf, 16);
    let (head, body) = buf.split_at_mut(head_len);
    xor_bytes(head, rotated_key(key, offset));

    let k = rotated_key(key, offset.wrapping_add(head_len));
    let kv = _mm_set1_epi32(i32::from_ne_bytes(k));
    let mut blocks = body.chunks_exact_mut(64);
    for block in &mut blocks {
        let p = block.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `block` is 64 bytes, four `__m128i`, valid for reads and writes;
        // the unaligned load and store have no alignment requirement.
        unsafe {
            let a = _mm_loadu_si128(p);
            let b = _mm_loadu_si128(p.add(1));
            let c = _mm_loadu_si128(p.add(2));
            let d = _mm_loadu_si128(p.add(3));
            _mm_storeu_si128(p, _mm_xor_si128(a, kv));
            _mm_storeu_si128(p.add(1), _mm_xor_si128(b, kv));
            _mm_storeu_si128(p.add(2), _mm_xor_si128(c, kv));
            _mm_storeu_si128(p.add(3), _mm_xor_si128(d, kv));
        }
    }
    let mut vectors = blocks.into_remainder().chunks_exact_mut(16);
    for v in &mut vectors {
        let p = v.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `v` is 16 bytes, one `__m128i`, valid for reads and writes; unaligned
        // access is allowed.
        unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), kv)) };
    }
    xor_words(vectors.into_remainder(), k);
}

/// How many bytes to mask one at a time before `buf` reaches an `align`-byte boundary.
///
/// Short buffers skip this: an unaligned vector costs less than up to `align - 1`
/// single bytes.
fn aligned_head_len(buf: &[u8], align: usize) -> usize {
    if buf.len() < 256 {
        0
    } else {
        buf.as_ptr().align_offset(align).min(buf.len())
    }
}
