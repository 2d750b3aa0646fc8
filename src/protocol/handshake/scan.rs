//! Finding the end of an HTTP head: the first empty line.

/// Returns the length of the head in `bytes` (the index just past the empty
/// line that ends it), looking only at line feeds at or after `from`.
///
/// The empty line may be `\r\n` or, as httparse also accepts, a bare `\n`, so
/// both `\r\n\r\n` and `\n\n` end a head. A caller that scanned a prefix before
/// passes `from = old_len - 3` (saturating) so a terminator split across two
/// reads is still found; every byte is then looked at a bounded number of times.
pub(crate) fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(lf) = find_lf(bytes, i) {
        match (bytes.get(lf + 1), bytes.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

/// The index of the first `\n` at or after `from`, eight bytes at a time.
fn find_lf(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default()) ^ LFS;
        // Flags every zero byte of `word` (a `\n` in the input); the lowest flag
        // is always exact, as a borrow only runs towards higher bytes.
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|&b| b == b'\n').map(|p| offset + p)
}

/// How many already-scanned bytes to look at again when new bytes arrive.
pub(crate) const OVERLAP: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_crlf_terminator() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        assert_eq!(find_head_end(head, 0), Some(head.len() - 4));
    }

    #[test]
    fn finds_bare_lf_terminator() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\nx", 0), Some(24));
    }

    #[test]
    fn incomplete_heads_have_no_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0), None);
        assert_eq!(find_head_end(b"", 0), None);
        assert_eq!(find_head_end(b"\r", 5), None);
    }

    #[test]
    fn lf_search_agrees_with_a_byte_loop() {
        let text: Vec<u8> = (0..200u8)
            .map(|i| if i % 13 == 0 { b'\n' } else { i })
            .collect();
        for from in 0..=text.len() + 1 {
            let expected = text
                .iter()
                .skip(from)
                .position(|&b| b == b'\n')
                .map(|p| p + from);
            assert_eq!(find_lf(&text, from), expected, "from {from}");
        }
        assert_eq!(find_lf(&[0x0b, 0x0a, 0x0a, 0, 0, 0, 0, 0, 0], 0), Some(1));
        assert_eq!(find_lf(&[0x8a; 16], 0), None);
    }

    #[test]
    fn terminator_split_across_reads_is_found_with_overlap() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for split in 0..head.len() {
            let from = split.saturating_sub(OVERLAP);
            assert_eq!(
                find_head_end(&head[..split], 0),
                None,
                "no end in prefix {split}"
            );
            assert_eq!(find_head_end(head, from), Some(head.len()), "split {split}");
        }
    }
}
