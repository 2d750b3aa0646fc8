//! A fast scan over leading ASCII, the common case for text messages.

/// High bit of every byte in a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The length of the longest run of ASCII at the start of `bytes`, rounded down to a
/// multiple of 64.
///
/// Each 64-byte block is eight `u64` words ORed together and tested once; LLVM turns
/// this into a few vector loads and one compare. Stopping at a 64-byte block keeps the
/// waste on non-ASCII text small.
pub(super) fn prefix_len(bytes: &[u8]) -> usize {
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
    use super::{is_ascii_short, prefix_len};

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
        assert_eq!(prefix_len(&bytes), 256);
        bytes[130] = 0xc3;
        assert_eq!(prefix_len(&bytes), 128);
        bytes[0] = 0x80;
        assert_eq!(prefix_len(&bytes), 0);
        assert_eq!(prefix_len(&bytes[..63]), 0);
    }
}
