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
    while i < bytes.len() {
        let rest = bytes.get(i..)?;
        let lf = i + rest.iter().position(|&b| b == b'\n')?;
        match (bytes.get(lf + 1), bytes.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
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
