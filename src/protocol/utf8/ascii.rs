//! A fast scan over leading ASCII, the common case for text messages.

/// High bit of every byte in a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The length of a run of ASCII at the start of `bytes`, at most 63 bytes short of the
/// longest one (the full validator checks the rest): AVX-512 or AVX2 where the CPU has
/// them (chosen once), else [`prefix_len_portable`].
pub(super) fn prefix_len(bytes: &[u8]) -> usize {
    (best())(bytes)
}

/// A prefix scanner.
type ScanFn = fn(&[u8]) -> usize;

/// The fastest scanner this CPU can run, chosen on first use.
fn best() -> ScanFn {
    static BEST: std::sync::OnceLock<ScanFn> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if let Some(scan) = x86::best() {
            return scan;
        }
        prefix_len_portable
    })
}

/// [`prefix_len`] without explicit SIMD: each 64-byte block is eight `u64` words ORed
/// together and tested once; LLVM turns this into a few vector loads and one compare.
/// Stopping at a 64-byte block keeps the waste on non-ASCII text small.
pub(super) fn prefix_len_portable(bytes: &[u8]) -> usize {
    let mut len = 0;
    for block in bytes.chunks_exact(64) {
        let any_high = block
            .chunks_exact(8)
            .map(|w| {
                let Ok(w) = <[u8; 8]>::try_from(w) else {
                    unreachable!("chunks_exact(8) yields 8-byte chunks");
                };
                u64::from_ne_bytes(w)
            })
            .fold(0, |acc, w| acc | w);
        if any_high & HIGH_BITS != 0 {
            break;
        }
        len += 64;
    }
    len
}

/// Wide-vector scans: four vectors loaded and ORed per step, one test per step.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{ScanFn, prefix_len_portable};

    /// The widest scanner this CPU supports, if any.
    pub(super) fn best() -> Option<ScanFn> {
        paths().into_iter().find_map(|(_, scan)| scan)
    }

    /// The wide scanners, widest first, each `None` where this CPU cannot run it.
    pub(super) fn paths() -> [(&'static str, Option<ScanFn>); 2] {
        let avx512: Option<ScanFn> = (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw"))
        .then_some(|bytes| {
            // SAFETY: handed out only after the CPU was found to support AVX-512F and
            // AVX-512BW (just above).
            unsafe { prefix_len_avx512(bytes) }
        });
        let avx2: Option<ScanFn> = is_x86_feature_detected!("avx2").then_some(|bytes| {
            // SAFETY: handed out only after the CPU was found to support AVX2 (just
            // above).
            unsafe { prefix_len_avx2(bytes) }
        });
        [("avx512bw", avx512), ("avx2", avx2)]
    }

    /// 256 bytes a step in four 64-byte vectors from the first 64-byte-aligned address
    /// on, so no load straddles two cache lines (unaligned, the same loop runs at about
    /// half the speed on a 64 KiB buffer), then 64-byte blocks.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn prefix_len_avx512(bytes: &[u8]) -> usize {
        let head = bytes.as_ptr().align_offset(64);
        if bytes.len() < head + 256 || !super::is_ascii_short(&bytes[..head]) {
            return prefix_len_portable(bytes);
        }
        let mut len = head;
        while len + 256 <= bytes.len() {
            // SAFETY: `len + 256 <= bytes.len()`, so the four 64-byte loads are inside
            // `bytes`; `bytes.as_ptr() + len` is 64-byte aligned (`head` aligned it and
            // every step is a multiple of 64).
            let high = unsafe {
                let p = bytes.as_ptr().add(len);
                let a = _mm512_load_si512(p.cast());
                let b = _mm512_load_si512(p.add(64).cast());
                let c = _mm512_load_si512(p.add(128).cast());
                let d = _mm512_load_si512(p.add(192).cast());
                let all = _mm512_or_si512(_mm512_or_si512(a, b), _mm512_or_si512(c, d));
                _mm512_movepi8_mask(all)
            };
            if high != 0 {
                break;
            }
            len += 256;
        }
        len + prefix_len_portable(&bytes[len..])
    }

    /// 128 bytes a step in four 32-byte vectors.
    #[target_feature(enable = "avx2")]
    unsafe fn prefix_len_avx2(bytes: &[u8]) -> usize {
        let mut len = 0;
        while len + 128 <= bytes.len() {
            // SAFETY: `len + 128 <= bytes.len()`, so all four unaligned 32-byte loads
            // are inside `bytes`.
            let high = unsafe {
                let p = bytes.as_ptr().add(len);
                let a = _mm256_loadu_si256(p.cast());
                let b = _mm256_loadu_si256(p.add(32).cast());
                let c = _mm256_loadu_si256(p.add(64).cast());
                let d = _mm256_loadu_si256(p.add(96).cast());
                let all = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
                _mm256_movemask_epi8(all)
            };
            if high != 0 {
                break;
            }
            len += 128;
        }
        len + prefix_len_portable(&bytes[len..])
    }

    #[cfg(test)]
    mod tests {
        use crate::protocol::simd_testing;

        #[test]
        fn wide_scans_find_nearly_all_of_the_ascii_prefix() {
            for (name, scan) in super::paths() {
                match scan {
                    Some(scan) => check_scan(name, scan),
                    None => simd_testing::missing("utf8 ascii scan", name),
                }
            }
        }

        fn check_scan(name: &str, scan: super::ScanFn) {
            let buffer = vec![b'a'; 2200];
            for start in [0, 1, 17, 63] {
                for len in [0, 63, 64, 200, 511, 512, 700, 1100, 2100] {
                    for bad in [
                        None,
                        Some(0),
                        Some(63),
                        Some(64),
                        Some(130),
                        Some(255),
                        Some(256),
                        Some(600),
                        Some(1500),
                    ] {
                        let mut slice = buffer[start..start + len].to_vec();
                        let mut owned = vec![0u8; start];
                        if let Some(i) = bad.filter(|&i| i < len) {
                            slice[i] = 0xc3;
                        }
                        // Place the slice at the same misalignment as `start`.
                        owned.extend_from_slice(&slice);
                        let slice = &owned[start..];
                        let longest = slice.iter().position(|&b| b >= 0x80).unwrap_or(len);
                        let found = scan(slice);
                        assert!(
                            found <= longest && found + 63 >= longest,
                            "{name}: start {start}, len {len}, bad {bad:?}: {found} of {longest}"
                        );
                    }
                }
            }
        }
    }
}

/// Whether a short slice (a small message) is all ASCII: its words ORed together, the
/// few bytes after the last whole word one by one. No set-up, no call.
#[inline]
pub(super) fn is_ascii_short(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        let Ok(w) = <[u8; 8]>::try_from(w) else {
            unreachable!("chunks_exact(8) yields 8-byte chunks");
        };
        acc |= u64::from_ne_bytes(w);
    }
    let tail = words.remainder().iter().fold(0u8, |acc, &b| acc | b);
    acc & HIGH_BITS == 0 && tail < 0x80
}

#[cfg(test)]
mod tests {
    use super::{is_ascii_short, prefix_len, prefix_len_portable};

    #[test]
    fn short_ascii_check_sees_every_byte() {
        for len in 0..64 {
            let mut bytes = vec![b'a'; len];
            assert!(is_ascii_short(&bytes));
            for i in 0..len {
                bytes[i] = 0x80;
                assert!(!is_ascii_short(&bytes), "len {len}, byte {i}");
                bytes[i] = b'a';
            }
        }
    }

    #[test]
    fn stops_at_the_block_holding_the_first_non_ascii_byte() {
        let mut bytes = vec![b'a'; 300];
        assert_eq!(prefix_len_portable(&bytes), 256);
        bytes[130] = 0xc3;
        assert_eq!(prefix_len_portable(&bytes), 128);
        assert!((67..=130).contains(&prefix_len(&bytes)));
        bytes[0] = 0x80;
        assert_eq!(prefix_len_portable(&bytes), 0);
        assert_eq!(prefix_len(&bytes), 0);
        assert_eq!(prefix_len(&bytes[..63]), 0);
    }
}
