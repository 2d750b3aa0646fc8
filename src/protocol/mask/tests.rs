//! Every masking path against the byte-by-byte reference.

use proptest::prelude::*;

use super::{MaskFn, apply_mask, apply_mask_reference, apply_mask_scalar, simd_paths};

/// Every path this CPU can run, by name; reports (and skips) the ones it cannot.
fn paths() -> Vec<(&'static str, MaskFn)> {
    let mut all: Vec<(&'static str, MaskFn)> =
        vec![("dispatched", apply_mask), ("scalar", apply_mask_scalar)];
    for (name, f) in simd_paths() {
        match f {
            Some(f) => all.push((name, f)),
            None => crate::protocol::simd_testing::missing("mask", name),
        }
    }
    all
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Masks `data[start..]` with `f` and with the reference; both must agree, and nothing
/// before `start` may change.
fn check(name: &str, f: MaskFn, data: &[u8], start: usize, key: [u8; 4], offset: usize) {
    let mut expected = data.to_vec();
    apply_mask_reference(&mut expected[start..], key, offset);
    let mut got = data.to_vec();
    f(&mut got[start..], key, offset);
    assert_eq!(
        got,
        expected,
        "{name}: len {} start {start} key {key:02x?} offset {offset}",
        data.len() - start
    );
}

#[test]
fn reference_matches_definition() {
    let mut buf = [0u8; 9];
    apply_mask_reference(&mut buf, [1, 2, 3, 4], 2);
    assert_eq!(buf, [3, 4, 1, 2, 3, 4, 1, 2, 3]);
}

#[test]
fn masking_twice_restores_the_payload() {
    let data = pseudo_random(300, 7);
    for (name, f) in paths() {
        let mut buf = data.clone();
        f(&mut buf, [0xde, 0xad, 0xbe, 0xef], 1);
        assert_ne!(buf, data, "{name}");
        f(&mut buf, [0xde, 0xad, 0xbe, 0xef], 1);
        assert_eq!(buf, data, "{name}");
    }
}

#[test]
fn every_length_and_offset_matches_reference() {
    let paths = paths();
    for len in 0..=1024 {
        let data = pseudo_random(len, len as u64 + 1);
        let key_bytes = pseudo_random(4, len as u64 * 31 + 5);
        let key = [key_bytes[0], key_bytes[1], key_bytes[2], key_bytes[3]];
        for offset in 0..4 {
            for &(name, f) in &paths {
                check(name, f, &data, 0, key, offset);
            }
        }
    }
}

#[test]
fn unaligned_starts_match_reference() {
    let paths = paths();
    let data = pseudo_random(64 + 1024, 99);
    for start in 1..64 {
        for len in [
            0, 1, 3, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200, 1024,
        ] {
            for offset in [0, 1, 2, 3, 5, 1 << 20] {
                for &(name, f) in &paths {
                    check(
                        name,
                        f,
                        &data[..start + len],
                        start,
                        [9, 0x80, 0xff, 0x31],
                        offset,
                    );
                }
            }
        }
    }
}

#[test]
fn piecewise_unmasking_matches_whole() {
    let data = pseudo_random(1000, 3);
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut whole = data.clone();
    apply_mask_reference(&mut whole, key, 0);
    for (name, f) in paths() {
        let mut pieces = data.clone();
        let mut done = 0;
        for cut in [1, 6, 7, 70, 333, 334, 999, 1000] {
            f(&mut pieces[done..cut], key, done);
            done = cut;
        }
        assert_eq!(pieces, whole, "{name}");
    }
}

proptest! {
    #[test]
    fn random_inputs_match_reference(
        data in proptest::collection::vec(any::<u8>(), 0..=1100),
        start in 0usize..64,
        key in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        let start = start.min(data.len());
        for (name, f) in paths() {
            check(name, f, &data, start, key, offset);
        }
    }
}
