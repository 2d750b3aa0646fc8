//! aarch64 path: NEON, 16 bytes a step.
//!
//! NEON is part of the aarch64 baseline this module is compiled for
//! (`target_feature = "neon"`), so there is nothing to detect at run time.

use core::arch::aarch64::{vdupq_n_u32, veorq_u8, vld1q_u8, vreinterpretq_u8_u32, vst1q_u8};

use super::scalar::xor_words;
use super::{MaskFn, rotated_key};

/// The NEON path; always present when this module is compiled.
pub(super) fn neon() -> Option<MaskFn> {
    Some(mask_neon as MaskFn)
}

fn mask_neon(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let k = rotated_key(key, offset);
    let mut vectors = buf.chunks_exact_mut(16);
    // SAFETY: NEON is enabled for the whole build (see the module's cfg). Each `v` is 16
    // bytes valid for reads and writes, and `vld1q_u8`/`vst1q_u8` need only byte alignment.
    unsafe {
        let kv = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_ne_bytes(k)));
        for v in &mut vectors {
            vst1q_u8(v.as_mut_ptr(), veorq_u8(vld1q_u8(v.as_ptr()), kv));
        }
    }
    // 16-byte steps keep the key phase.
    xor_words(vectors.into_remainder(), k);
}
