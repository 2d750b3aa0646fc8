//! Comma-separated header value lists (RFC 9110 section 5.6.1).

/// The trimmed, non-empty elements of a comma-separated header value.
///
/// Quoted strings are not special-cased: none of the lists the handshake reads
/// (`Connection`, `Upgrade`, `Sec-WebSocket-Protocol`) may contain them.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// Whether the list `value` holds `token`, compared ASCII case-insensitively.
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    list_items(value).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// The trimmed, non-empty elements of a comma-separated list, as text.
pub(crate) fn str_items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|item| item.trim_matches([' ', '\t']))
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_case_insensitive() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"  UPGRADE\t", "upgrade"));
        assert!(!has_token(b"upgrades, keep-alive", "upgrade"));
        assert!(!has_token(b"", "upgrade"));
    }

    #[test]
    fn empty_items_are_skipped() {
        let items: Vec<&[u8]> = list_items(b" a,, b ,").collect();
        assert_eq!(items, [&b"a"[..], &b"b"[..]]);
        let items: Vec<&str> = str_items(" chat ,\tsuperchat,").collect();
        assert_eq!(items, ["chat", "superchat"]);
    }
}
