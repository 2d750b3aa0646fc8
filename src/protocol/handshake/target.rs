//! The request target and its four forms (RFC 9112 section 3.2).

use std::ops::Range;

use super::refusal::Refusal;

/// The form of a request target (RFC 9112 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query`: the usual form (section 3.2.1).
    Origin,
    /// `ws://host:port/path?query`, with an `http`, `https`, `ws` or `wss` scheme
    /// (section 3.2.2). The target's authority replaces the `Host` field.
    Absolute,
    /// `host:port`, only for `CONNECT` (section 3.2.3).
    Authority,
    /// `*`, only for a server-wide `OPTIONS` (section 3.2.4).
    Asterisk,
}

/// Where the parts of a target lie, as byte ranges of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetParts {
    pub form: TargetForm,
    /// The authority (absolute-form and authority-form only).
    pub authority: Option<Range<usize>>,
    /// The path; empty for authority-form, and for an absolute-form target without
    /// one (which means `/`).
    pub path: Range<usize>,
    /// What follows the first `?`, if there is one.
    pub query: Option<Range<usize>>,
}

/// The schemes accepted in absolute-form, compared ASCII case-insensitively.
const SCHEMES: [&[u8]; 4] = [b"http", b"https", b"ws", b"wss"];

/// Splits a request target into its form and parts.
///
/// Refuses with `400` a target that fits no form, an absolute-form target whose
/// scheme is not one of `http`, `https`, `ws`, `wss` or that has no host, one with
/// userinfo (`user@host`, an error per RFC 9110 section 4.2.4), and any target
/// carrying a fragment (`#`, which no request target may hold).
pub(crate) fn split_target(target: &[u8]) -> Result<TargetParts, Refusal> {
    if target.contains(&b'#') {
        return Err(Refusal::bad_request("invalid request target: fragment"));
    }
    match target {
        b"*" => Ok(TargetParts {
            form: TargetForm::Asterisk,
            authority: None,
            path: 0..1,
            query: None,
        }),
        [b'/', ..] => Ok(path_and_query(target, TargetForm::Origin, None, 0)),
        _ => match scheme_end(target) {
            Some(colon) if target[colon..].starts_with(b"://") => absolute(target, colon),
            _ if target.contains(&b':') && is_authority(target) => Ok(TargetParts {
                form: TargetForm::Authority,
                authority: Some(0..target.len()),
                path: target.len()..target.len(),
                query: None,
            }),
            Some(colon) if is_ours(&target[..colon]) => Err(Refusal::bad_request(
                "invalid request target: absolute-form without authority",
            )),
            Some(_) => Err(Refusal::bad_request(
                "invalid request target: unsupported scheme",
            )),
            None => Err(Refusal::bad_request("invalid request target")),
        },
    }
}

/// An absolute-form target whose scheme ends at `colon` (followed by `//`).
fn absolute(target: &[u8], colon: usize) -> Result<TargetParts, Refusal> {
    if !is_ours(&target[..colon]) {
        return Err(Refusal::bad_request(
            "invalid request target: unsupported scheme",
        ));
    }
    let start = colon + 3;
    let end = target[start..]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(target.len(), |i| start + i);
    let authority = &target[start..end];
    if authority.contains(&b'@') {
        return Err(Refusal::bad_request(
            "invalid request target: userinfo not allowed",
        ));
    }
    if !is_authority(authority) {
        return Err(Refusal::bad_request(
            "invalid request target: invalid authority",
        ));
    }
    Ok(path_and_query(
        target,
        TargetForm::Absolute,
        Some(start..end),
        end,
    ))
}

/// The parts of a target whose path starts at `path_start`.
fn path_and_query(
    target: &[u8],
    form: TargetForm,
    authority: Option<Range<usize>>,
    path_start: usize,
) -> TargetParts {
    let path_end = target[path_start..]
        .iter()
        .position(|&b| b == b'?')
        .map_or(target.len(), |i| path_start + i);
    TargetParts {
        form,
        authority,
        path: path_start..path_end,
        query: (path_end < target.len()).then(|| path_end + 1..target.len()),
    }
}

/// Where the scheme of `target` ends (the index of its `:`), if it starts with one:
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"` (RFC 3986 section 3.1).
/// (`host:port` starts like one too; the caller tells them apart.)
fn scheme_end(target: &[u8]) -> Option<usize> {
    let colon = target.iter().position(|&b| b == b':')?;
    let (first, rest) = target[..colon].split_first()?;
    let valid = first.is_ascii_alphabetic()
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(colon)
}

/// Whether `scheme` is one this server answers in absolute-form.
fn is_ours(scheme: &[u8]) -> bool {
    SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s))
}

/// Whether `authority` is `host [ ":" port ]` (RFC 3986 section 3.2) with a non-empty host (a bracketed
/// IP literal or a name without `:`), no userinfo, and a port of digits only.
fn is_authority(authority: &[u8]) -> bool {
    if authority.iter().any(|&b| matches!(b, b'@' | b'/' | b'?')) {
        return false;
    }
    let (host, port) = if authority.first() == Some(&b'[') {
        match authority.iter().position(|&b| b == b']') {
            Some(close) => authority.split_at(close + 1),
            None => return false,
        }
    } else {
        match authority.iter().rposition(|&b| b == b':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, &[][..]),
        }
    };
    let host_ok = match host {
        [b'[', inner @ .., b']'] => !inner.is_empty() && !inner.contains(&b'['),
        _ => !host.is_empty() && !host.contains(&b':') && !host.contains(&b']'),
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form, authority, path and query of `target` as text.
    fn parts(target: &str) -> (TargetForm, Option<&str>, &str, Option<&str>) {
        let p = split_target(target.as_bytes()).unwrap();
        let text = |r: Range<usize>| &target[r];
        (
            p.form,
            p.authority.map(text),
            text(p.path),
            p.query.map(text),
        )
    }

    fn reason(target: &str) -> String {
        let refusal = split_target(target.as_bytes()).unwrap_err();
        assert_eq!(refusal.status, 400, "{target}");
        refusal.reason.into_owned()
    }

    #[test]
    fn origin_form() {
        use TargetForm::Origin;
        assert_eq!(parts("/chat?x=1"), (Origin, None, "/chat", Some("x=1")));
        assert_eq!(parts("/"), (Origin, None, "/", None));
        assert_eq!(parts("/a?"), (Origin, None, "/a", Some("")));
        assert_eq!(parts("//x?a?b"), (Origin, None, "//x", Some("a?b")));
    }

    #[test]
    fn absolute_form_for_each_scheme_any_case() {
        use TargetForm::Absolute;
        for scheme in ["ws", "wss", "http", "https", "WS", "Wss", "HTTP", "hTTpS"] {
            let target = format!("{scheme}://host:9001/chat?room=a");
            assert_eq!(
                parts(&target),
                (Absolute, Some("host:9001"), "/chat", Some("room=a")),
            );
        }
        assert_eq!(parts("ws://host"), (Absolute, Some("host"), "", None));
        assert_eq!(
            parts("ws://host?q"),
            (Absolute, Some("host"), "", Some("q"))
        );
        assert_eq!(
            parts("ws://[::1]:9001/"),
            (Absolute, Some("[::1]:9001"), "/", None)
        );
        assert_eq!(parts("ws://h:/"), (Absolute, Some("h:"), "/", None));
    }

    #[test]
    fn asterisk_and_authority_forms() {
        assert_eq!(parts("*"), (TargetForm::Asterisk, None, "*", None));
        assert_eq!(
            parts("example.com:443"),
            (TargetForm::Authority, Some("example.com:443"), "", None)
        );
        assert_eq!(
            parts("[::1]:443"),
            (TargetForm::Authority, Some("[::1]:443"), "", None)
        );
    }

    #[test]
    fn bad_targets_are_400_with_a_reason() {
        assert!(reason("ftp://host/x").contains("unsupported scheme"));
        assert!(reason("mailto:someone").contains("unsupported scheme"));
        assert!(reason("ws:/chat").contains("without authority"));
        assert!(reason("http:host").contains("without authority"));
        assert!(reason("ws://user@host/").contains("userinfo"));
        assert!(reason("ws://u:p@host/").contains("userinfo"));
        for bad in [
            "ws:///chat",
            "ws://:80/",
            "ws://h:x/",
            "ws://[::1/",
            "ws://a:b:1/",
        ] {
            assert!(reason(bad).contains("invalid authority"), "{bad}");
        }
        assert!(reason("/a#frag").contains("fragment"));
        assert_eq!(reason("**"), "invalid request target");
        assert_eq!(reason("localhost"), "invalid request target");
        assert_eq!(
            reason("a:b:c"),
            "invalid request target: unsupported scheme"
        );
    }
}
