//! Whole-payload and streaming validation against `std::str::from_utf8`.

use proptest::prelude::*;

use super::{InvalidUtf8, Utf8Stream, validate};

/// The index of the first byte after which `bytes[..=i]` can no longer become valid
/// UTF-8, by std's definition (`error_len() == Some(_)`), or `None` if it never fails.
fn first_failure(bytes: &[u8]) -> Option<usize> {
    let err = std::str::from_utf8(bytes).err()?;
    err.error_len()?;
    (err.valid_up_to()..bytes.len())
        .find(|&i| std::str::from_utf8(&bytes[..=i]).is_err_and(|e| e.error_len().is_some()))
}

/// Feeds `bytes` cut at `cuts` (sorted, within bounds) and checks that the stream fails
/// on exactly the piece holding the first failing byte, and otherwise that `finish`
/// agrees with std.
fn check_split(bytes: &[u8], cuts: &[usize]) {
    let fail_at = first_failure(bytes);
    let mut stream = Utf8Stream::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let result = stream.feed(&bytes[start..end]);
        let should_fail = fail_at.is_some_and(|i| i < end);
        assert_eq!(
            result.is_err(),
            should_fail,
            "{bytes:02x?} cut at {cuts:?}: piece {start}..{end} (first failure {fail_at:?})"
        );
        if should_fail {
            return;
        }
        start = end;
    }
    assert_eq!(
        stream.finish().is_ok(),
        std::str::from_utf8(bytes).is_ok(),
        "{bytes:02x?} cut at {cuts:?}: finish"
    );
}

/// Every way to cut `bytes` into `pieces` pieces (empty pieces included).
fn all_splits(bytes: &[u8], pieces: usize) {
    fn recurse(bytes: &[u8], cuts: &mut Vec<usize>, from: usize, left: usize) {
        if left == 0 {
            check_split(bytes, cuts);
            return;
        }
        for cut in from..=bytes.len() {
            cuts.push(cut);
            recurse(bytes, cuts, cut, left - 1);
            cuts.pop();
        }
    }
    recurse(bytes, &mut Vec::new(), 0, pieces - 1);
}

/// Feeds `bytes` one byte at a time and returns the index of the byte that failed.
fn byte_at_a_time(bytes: &[u8]) -> Result<(), usize> {
    let mut stream = Utf8Stream::new();
    for (i, b) in bytes.iter().enumerate() {
        stream
            .feed(std::slice::from_ref(b))
            .map_err(|InvalidUtf8| i)?;
    }
    stream.finish().map_err(|InvalidUtf8| bytes.len())
}

const MIXED: &str =
    "ascii, Ελληνικά, 中文字符, emoji 😀🎉, edges \u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}";

#[test]
fn validate_accepts_valid_and_rejects_invalid() {
    assert_eq!(validate(b""), Ok(""));
    assert_eq!(validate(MIXED.as_bytes()), Ok(MIXED));
    for bad in [
        &b"\xc0\x80"[..],
        b"a\xff",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xe2\x82",
    ] {
        assert_eq!(validate(bad), Err(InvalidUtf8), "{bad:02x?}");
    }
}

#[test]
fn validate_checks_what_follows_a_long_ascii_run() {
    for ascii_len in [63, 64, 65, 128, 200] {
        let mut bytes = vec![b'x'; ascii_len];
        bytes.extend_from_slice("é😀".as_bytes());
        assert_eq!(validate(&bytes).map(str::len), Ok(bytes.len()));
        check_split(&bytes, &[ascii_len + 1]);
        for bad in [&b"\xff"[..], b"\xed\xa0\x80", b"\xc3"] {
            let mut invalid = bytes.clone();
            invalid.truncate(ascii_len);
            invalid.extend_from_slice(bad);
            assert_eq!(
                validate(&invalid),
                Err(InvalidUtf8),
                "{ascii_len} + {bad:02x?}"
            );
            check_split(&invalid, &[]);
            check_split(&invalid, &[ascii_len]);
        }
    }
}

#[test]
fn fails_fast_at_the_first_hopeless_byte() {
    // (input, index of the byte after which it can no longer become valid)
    let cases: &[(&[u8], usize)] = &[
        (b"\xc0", 0),             // overlong lead, invalid alone
        (b"\xc1", 0),             // overlong lead, invalid alone
        (b"\xf5", 0),             // would be above U+10FFFF
        (b"\xff", 0),             // never valid
        (b"\x80", 0),             // continuation without a lead
        (b"ab\xbf", 2),           // continuation without a lead, after ASCII
        (b"\xf4\x90", 1),         // above U+10FFFF
        (b"\xed\xa0", 1),         // UTF-16 surrogate
        (b"\xe0\x80", 1),         // overlong 3-byte form
        (b"\xe0\x9f", 1),         // overlong 3-byte form
        (b"\xf0\x80", 1),         // overlong 4-byte form
        (b"\xf0\x8f", 1),         // overlong 4-byte form
        (b"\xc2\x41", 1),         // lead then ASCII
        (b"\xe2\x82\x41", 2),     // cut short by ASCII
        (b"\xf0\x9f\x98\xc3", 3), // cut short by another lead
        (b"\xc3\xa9\x80", 2),     // stray continuation after a whole code point
    ];
    for &(bytes, at) in cases {
        assert_eq!(first_failure(bytes), Some(at), "oracle on {bytes:02x?}");
        assert_eq!(byte_at_a_time(bytes), Err(at), "{bytes:02x?}");
        for pieces in 1..=3 {
            all_splits(bytes, pieces);
        }
        // The same bytes after valid text, and with more text after them.
        let mut framed = b"ok \xce\xb1 ".to_vec();
        framed.extend_from_slice(bytes);
        framed.extend_from_slice("tail €".as_bytes());
        all_splits(&framed, 2);
        all_splits(&framed, 3);
    }
}

#[test]
fn valid_edges_are_accepted() {
    for s in [
        "\u{7F}", "\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}",
    ] {
        assert_eq!(byte_at_a_time(s.as_bytes()), Ok(()), "{s:?}");
    }
    for s in ["\u{10000}", "\u{10FFFF}", "\u{FEFF}"] {
        assert_eq!(byte_at_a_time(s.as_bytes()), Ok(()), "{s:?}");
    }
}

#[test]
fn multibyte_chars_split_across_two_three_and_four_pieces() {
    for c in ["é", "€", "中", "😀", "\u{10FFFF}", "\u{800}"] {
        let text = format!("a{c}b");
        for pieces in 2..=4 {
            all_splits(text.as_bytes(), pieces);
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    assert_eq!(byte_at_a_time(MIXED.as_bytes()), Ok(()));
    let mut bad = MIXED.as_bytes().to_vec();
    bad.insert(20, 0xf8);
    assert_eq!(byte_at_a_time(&bad), Err(20));
}

#[test]
fn finish_fails_on_a_pending_partial_code_point() {
    for cut_short in [&b"\xc3"[..], b"\xe2\x82", b"\xf0\x9f\x98", b"abc\xf4\x8f"] {
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.feed(cut_short), Ok(()), "{cut_short:02x?}");
        assert_eq!(stream.finish(), Err(InvalidUtf8), "{cut_short:02x?}");
        // `finish` leaves the stream ready for the next message.
        assert_eq!(stream.feed(b"next"), Ok(()));
        assert_eq!(stream.finish(), Ok(()));
    }
}

#[test]
fn reset_drops_the_carried_bytes() {
    let mut stream = Utf8Stream::default();
    stream.feed(b"\xe2\x82").unwrap();
    stream.reset();
    assert_eq!(stream.feed(b"plain"), Ok(()));
    assert_eq!(stream.finish(), Ok(()));
}

#[test]
fn empty_pieces_are_harmless() {
    let mut stream = Utf8Stream::new();
    for piece in [&b""[..], b"\xf0", b"", b"\x9f", b"", b"\x98\x80", b""] {
        assert_eq!(stream.feed(piece), Ok(()));
    }
    assert_eq!(stream.finish(), Ok(()));
}

/// Byte strings near valid UTF-8 (where the interesting cases are) and arbitrary ones.
fn near_utf8() -> impl Strategy<Value = Vec<u8>> {
    let valid = any::<String>().prop_map(String::into_bytes);
    let mutated =
        (any::<String>(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(s, at, byte)| {
            let mut bytes = s.into_bytes();
            if bytes.is_empty() {
                bytes.push(byte);
            } else {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        });
    let truncated = (any::<String>(), any::<prop::sample::Index>()).prop_map(|(s, at)| {
        let bytes = s.into_bytes();
        let end = at.index(bytes.len() + 1);
        bytes[..end].to_vec()
    });
    let tricky = prop::collection::vec(
        prop::sample::select(vec![
            0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0,
            0xf4, 0xf5,
        ]),
        0..12,
    );
    prop_oneof![
        valid,
        mutated,
        truncated,
        tricky,
        prop::collection::vec(any::<u8>(), 0..64)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_split_agrees_with_std(
        bytes in near_utf8(),
        raw_cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        check_split(&bytes, &cuts);
    }

    #[test]
    fn prefixes_of_valid_text_never_fail(s in any::<String>(), at in any::<prop::sample::Index>()) {
        let bytes = s.as_bytes();
        let end = at.index(bytes.len() + 1);
        let mut stream = Utf8Stream::new();
        for b in &bytes[..end] {
            prop_assert_eq!(stream.feed(std::slice::from_ref(b)), Ok(()));
        }
        let mut whole = Utf8Stream::new();
        prop_assert_eq!(whole.feed(&bytes[..end]), Ok(()));
        prop_assert_eq!(
            whole.finish().is_ok(),
            std::str::from_utf8(&bytes[..end]).is_ok()
        );
    }
}
