//! An owned, parsed HTTP/1.x request head.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::limits::HandshakeLimits;
use super::refusal::Refusal;
use super::target::{TargetForm, split_target};
use super::tokens::str_items;

/// Header slots kept on the stack while parsing; more need a heap buffer.
const STACK_HEADERS: usize = 64;

/// A byte range of [`RequestHead::raw`], kept in 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The span of `range`, a range of the part of the head that starts at `self`.
    fn within(self, range: Range<usize>) -> Self {
        // Ranges of a part lie inside it, and the head's length fits in u32.
        let at = |i: usize| self.start + u32::try_from(i).unwrap_or(0);
        Self {
            start: at(range.start),
            end: at(range.end),
        }
    }

    fn is_empty(self) -> bool {
        self.start >= self.end
    }
}

/// Where each part of a head lies in its bytes: the result of parsing, before
/// the bytes are owned.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    method: Span,
    target: Span,
    form: TargetForm,
    authority: Option<Span>,
    path: Span,
    query: Option<Span>,
    version_minor: u8,
    headers: Vec<(Span, Span)>,
}

/// An owned, parsed HTTP request head.
///
/// The head's bytes are stored once; the method, target and header fields are
/// ranges into them. Header values are bytes (HTTP allows non-UTF-8 in them);
/// [`header_str`](Self::header_str) gives text where the value is UTF-8.
#[derive(Debug, Clone)]
pub struct RequestHead {
    raw: Vec<u8>,
    layout: Layout,
}

impl RequestHead {
    /// Parses one complete head, `bytes` ending with its blank line.
    ///
    /// Over-long heads and too many header fields give `431`; anything
    /// httparse rejects, a head that does not end where `bytes` does, or a
    /// request target that fits none of the forms of RFC 9112 section 3.2, `400`.
    pub(crate) fn parse(bytes: &[u8], limits: &HandshakeLimits) -> Result<Layout, Refusal> {
        if bytes.len() > limits.max_header_bytes || u32::try_from(bytes.len()).is_err() {
            return Err(Refusal::too_large("request head too large"));
        }
        // A field line takes at least three bytes (`a:\n`), so more slots than
        // that could never fill; the cap keeps a huge limit from allocating.
        let slots_needed = limits.max_headers.min(bytes.len() / 3 + 1);
        if slots_needed <= STACK_HEADERS {
            let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
            parse_into(bytes, &mut slots[..slots_needed])
        } else {
            let mut slots = Vec::with_capacity(slots_needed);
            parse_into(bytes, &mut slots.spare_capacity_mut()[..slots_needed])
        }
    }

    /// Joins the bytes a [`Layout`] was parsed from with the layout.
    pub(crate) fn from_parts(raw: Vec<u8>, layout: Layout) -> Self {
        Self { raw, layout }
    }

    /// Parses a complete head (convenience for tests and tools; servers use
    /// [`HeadReader`](super::HeadReader)). `bytes` must be exactly the head. Hidden:
    /// its limits and refusal types are the crate's own (`wavecore::internals`).
    #[doc(hidden)]
    pub fn from_bytes(bytes: &[u8], limits: &HandshakeLimits) -> Result<Self, Refusal> {
        let layout = Self::parse(bytes, limits)?;
        Ok(Self::from_parts(bytes.to_vec(), layout))
    }

    /// The head exactly as received, blank line included.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The request method, such as `GET`.
    pub fn method(&self) -> &str {
        self.text(self.layout.method)
    }

    /// The request target exactly as sent: `/chat?room=a`, or in absolute-form
    /// `ws://example.com/chat?room=a`.
    pub fn target(&self) -> &str {
        self.text(self.layout.target)
    }

    /// The form of the request target (RFC 9112 section 3.2).
    pub fn target_form(&self) -> TargetForm {
        self.layout.form
    }

    /// The path of the target, without the query, whatever its form: `/chat` for
    /// both `/chat?room=a` and `ws://example.com/chat?room=a`. An absolute-form
    /// target with an empty path (`ws://example.com`) gives `/` (RFC 9112 section
    /// 3.2.2); asterisk-form gives `*`, authority-form `""`.
    pub fn path(&self) -> &str {
        let path = self.layout.path;
        if path.is_empty() && self.layout.form == TargetForm::Absolute {
            return "/";
        }
        self.text(path)
    }

    /// The query after the first `?` of the target, if there is a `?`, as sent
    /// (still percent-encoded); [`query_param`](Self::query_param) decodes it.
    pub fn query(&self) -> Option<&str> {
        self.layout.query.map(|span| self.text(span))
    }

    /// The query's `name=value` pairs in order, decoded as a browser's form and
    /// `URLSearchParams` encode them (`application/x-www-form-urlencoded`): split on
    /// `&`, `+` is a space, `%XX` escapes decoded. A malformed escape (`%zz`, a
    /// lone `%`) stays as it is; bytes that are not UTF-8 after decoding become
    /// U+FFFD. A pair without `=` has an empty value. Empty when there is no query.
    ///
    /// Borrowed from the head where nothing needed decoding.
    pub fn query_params(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
        form_urlencoded::parse(self.query().unwrap_or("").as_bytes())
    }

    /// The decoded value of the first query parameter called `name` (compared after
    /// decoding, case-sensitive), or `None` if there is none; decoding as in
    /// [`query_params`](Self::query_params). For `/chat?foo=1&name=J%C3%BCrgen`,
    /// `query_param("name")` is `Some("Jürgen")`; for `?name=` it is `Some("")`.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query_params()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The authority the request is for (RFC 9110 section 7.2), `host[:port]`.
    ///
    /// For an absolute-form or authority-form target this is the target's
    /// authority, and the `Host` field is ignored, as RFC 9112 section 3.2.2
    /// requires of a server (the field must still be present, once, on a
    /// WebSocket upgrade; [`classify`](super::classify()) checks that). For an
    /// origin-form or asterisk-form target it is the value of the first `Host`
    /// field, if any and UTF-8. Not checked against this server's own names or
    /// addresses.
    pub fn authority(&self) -> Option<&str> {
        match self.layout.authority {
            Some(span) => Some(self.text(span)),
            None => self.header_str("host"),
        }
    }

    /// The minor HTTP version: 1 for `HTTP/1.1`, 0 for `HTTP/1.0`.
    pub fn version_minor(&self) -> u8 {
        self.layout.version_minor
    }

    /// The value of the first header field named `name` (ASCII
    /// case-insensitive), without surrounding whitespace.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_values(name).next()
    }

    /// The first `name` header's value if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The values of every header field named `name`, in order.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.raw_headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// Every header field as (name, value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.layout
            .headers
            .iter()
            .map(|&(name, value)| (self.text(name), self.bytes(value)))
    }

    /// Every header field as raw (name, value) bytes, in order.
    pub(crate) fn raw_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.layout
            .headers
            .iter()
            .map(|&(name, value)| (self.bytes(name), self.bytes(value)))
    }

    /// The number of header fields.
    pub fn header_count(&self) -> usize {
        self.layout.headers.len()
    }

    /// The `Origin` header, if present and UTF-8.
    pub fn origin(&self) -> Option<&str> {
        self.header_str("origin")
    }

    /// The subprotocols the client offers: the comma-separated, trimmed tokens
    /// of every `Sec-WebSocket-Protocol` field, in order.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.list("sec-websocket-protocol")
    }

    /// The extensions the client offers: the comma-separated, trimmed entries of
    /// every `Sec-WebSocket-Extensions` field, parameters included
    /// (`permessage-deflate; client_max_window_bits`).
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        self.list("sec-websocket-extensions")
    }

    /// The comma-separated items of every UTF-8 `name` field.
    fn list<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a str> {
        self.header_values(name)
            .filter_map(|value| std::str::from_utf8(value).ok())
            .flat_map(str_items)
    }

    fn bytes(&self, span: Span) -> &[u8] {
        self.raw.get(span.range()).unwrap_or_default()
    }

    /// Text httparse already checked; `""` if that ever failed to hold.
    fn text(&self, span: Span) -> &str {
        std::str::from_utf8(self.bytes(span)).unwrap_or_default()
    }
}

/// Runs httparse over `bytes` with `slots` as header storage.
fn parse_into<'b>(
    bytes: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Layout, Refusal> {
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(bytes, slots) {
        Ok(httparse::Status::Complete(len)) if len == bytes.len() => {}
        Ok(_) => return Err(Refusal::bad_request("malformed request head")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::too_large("too many header fields"));
        }
        Err(error) => return Err(Refusal::bad_request(malformed_reason(error))),
    }
    let base = bytes.as_ptr() as usize;
    let span = |part: &[u8]| {
        let start = (part.as_ptr() as usize).wrapping_sub(base);
        // Parts lie inside `bytes`, whose length fits in u32 (checked by the
        // caller), so these conversions cannot fail.
        Span {
            start: u32::try_from(start).unwrap_or(0),
            end: u32::try_from(start + part.len()).unwrap_or(0),
        }
    };
    let method = span(request.method.unwrap_or_default().as_bytes());
    let target_bytes = request.path.unwrap_or_default().as_bytes();
    let target = span(target_bytes);
    let parts = split_target(target_bytes)?;
    let headers = request
        .headers
        .iter()
        .map(|h| (span(h.name.as_bytes()), span(h.value)))
        .collect();
    Ok(Layout {
        method,
        target,
        form: parts.form,
        authority: parts.authority.map(|range| target.within(range)),
        path: target.within(parts.path),
        query: parts.query.map(|range| target.within(range)),
        version_minor: request.version.unwrap_or(0),
        headers,
    })
}

/// The body of the 400 answering an httparse error.
fn malformed_reason(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::HeaderName => "malformed request: invalid header name",
        httparse::Error::HeaderValue => "malformed request: invalid header value",
        httparse::Error::NewLine => "malformed request: invalid line ending",
        httparse::Error::Status => "malformed request: invalid status",
        httparse::Error::Token => "malformed request: invalid request line",
        httparse::Error::Version => "malformed request: unsupported HTTP version",
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> RequestHead {
        RequestHead::from_bytes(text.as_bytes(), &HandshakeLimits::default()).unwrap()
    }

    #[test]
    fn request_line_parts() {
        let h = head("GET /chat/room?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.method(), "GET");
        assert_eq!(h.target(), "/chat/room?x=1&y=2");
        assert_eq!(h.path(), "/chat/room");
        assert_eq!(h.query(), Some("x=1&y=2"));
        assert_eq!(h.version_minor(), 1);
        let h = head("POST /a HTTP/1.0\r\n\r\n");
        assert_eq!((h.method(), h.path(), h.query()), ("POST", "/a", None));
        assert_eq!(h.version_minor(), 0);
        assert_eq!(head("GET /? HTTP/1.1\r\n\r\n").query(), Some(""));
    }

    #[test]
    fn query_params_split_and_decode() {
        let h = head("GET /chat?foo=1&name=carol HTTP/1.1\r\n\r\n");
        assert_eq!(h.query_param("name").as_deref(), Some("carol"));
        assert_eq!(h.query_param("foo").as_deref(), Some("1"));
        let pairs: Vec<_> = h.query_params().collect();
        assert_eq!(
            pairs,
            [("foo".into(), "1".into()), ("name".into(), "carol".into())]
        );
        // Percent escapes (UTF-8), `+` as a space, an escaped key; the first of two wins.
        let h = head("GET /?name=J%C3%BCrgen+M%C3%BCller&n%61me=x HTTP/1.1\r\n\r\n");
        assert_eq!(h.query_param("name").as_deref(), Some("Jürgen Müller"));
        // Nothing to decode: borrowed from the head.
        let h = head("GET /?room=lobby HTTP/1.1\r\n\r\n");
        assert!(matches!(
            h.query_param("room"),
            Some(Cow::Borrowed("lobby"))
        ));
    }

    #[test]
    fn query_params_missing_empty_and_malformed() {
        let h = head("GET /chat HTTP/1.1\r\n\r\n");
        assert_eq!(h.query_param("name"), None);
        assert_eq!(h.query_params().count(), 0);
        let h = head("GET /chat? HTTP/1.1\r\n\r\n");
        assert_eq!(h.query_param("name"), None);
        // Present but empty, and a bare key.
        let h = head("GET /chat?name=&flag HTTP/1.1\r\n\r\n");
        assert_eq!(h.query_param("name").as_deref(), Some(""));
        assert_eq!(h.query_param("flag").as_deref(), Some(""));
        // Not a prefix match.
        assert_eq!(
            head("GET /?names=a HTTP/1.1\r\n\r\n").query_param("name"),
            None
        );
        // Malformed escapes stay as sent; invalid UTF-8 becomes U+FFFD.
        let h = head("GET /?a=%zz&b=100%&c=%4&d=%FF HTTP/1.1\r\n\r\n");
        assert_eq!(h.query_param("a").as_deref(), Some("%zz"));
        assert_eq!(h.query_param("b").as_deref(), Some("100%"));
        assert_eq!(h.query_param("c").as_deref(), Some("%4"));
        assert_eq!(h.query_param("d").as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn absolute_form_gives_path_query_and_authority() {
        let h = head("GET ws://example.com:9001/chat?room=a HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.target(), "ws://example.com:9001/chat?room=a");
        assert_eq!(h.target_form(), TargetForm::Absolute);
        assert_eq!((h.path(), h.query()), ("/chat", Some("room=a")));
        assert_eq!(h.authority(), Some("example.com:9001"));
        let h = head("GET wss://example.com HTTP/1.1\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", None));
        assert_eq!(h.authority(), Some("example.com"));
        let h = head("GET HTTP://example.com?x HTTP/1.1\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", Some("x")));
    }

    #[test]
    fn other_forms_and_host() {
        let h = head("GET /a HTTP/1.1\r\nHost: example.com:80\r\n\r\n");
        assert_eq!(h.target_form(), TargetForm::Origin);
        assert_eq!(h.authority(), Some("example.com:80"));
        assert_eq!(head("GET /a HTTP/1.0\r\n\r\n").authority(), None);
        let h = head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (h.target_form(), h.path(), h.authority()),
            (TargetForm::Asterisk, "*", Some("a"))
        );
        let h = head("CONNECT b:443 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (h.target_form(), h.path(), h.authority()),
            (TargetForm::Authority, "", Some("b:443"))
        );
    }

    #[test]
    fn targets_fitting_no_form_are_400() {
        let limits = HandshakeLimits::default();
        for bad in ["ftp://a/", "ws:/chat", "ws://u@a/", "chat", "/a#b"] {
            let text = format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n");
            let err = RequestHead::from_bytes(text.as_bytes(), &limits).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert!(err.reason.starts_with("invalid request target"), "{err}");
        }
    }

    #[test]
    fn headers_are_case_insensitive_first_wins() {
        let h = head("GET / HTTP/1.1\r\nX-A:  one \r\nx-a: two\r\nOrigin: https://e.com\r\n\r\n");
        assert_eq!(h.header("X-A"), Some(&b"one"[..]));
        assert_eq!(h.header_str("x-A"), Some("one"));
        assert_eq!(h.header("missing"), None);
        assert_eq!(h.header_values("x-a").count(), 2);
        assert_eq!(h.origin(), Some("https://e.com"));
        let all: Vec<_> = h.headers().collect();
        assert_eq!(all[1], ("x-a", &b"two"[..]));
        assert_eq!(h.header_count(), 3);
    }

    #[test]
    fn non_utf8_values_are_bytes_only() {
        let h = RequestHead::from_bytes(
            b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n",
            &HandshakeLimits::default(),
        )
        .unwrap();
        assert_eq!(h.header("x"), Some(&b"caf\xe9"[..]));
        assert_eq!(h.header_str("x"), None);
    }

    #[test]
    fn protocols_and_extensions_span_all_fields() {
        let h = head(
            "GET / HTTP/1.1\r\n\
             Sec-WebSocket-Protocol: chat , superchat\r\n\
             Sec-WebSocket-Protocol: v2\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n\r\n",
        );
        assert_eq!(
            h.protocols().collect::<Vec<_>>(),
            ["chat", "superchat", "v2"]
        );
        assert_eq!(
            h.extensions().collect::<Vec<_>>(),
            ["permessage-deflate; client_max_window_bits", "x-foo"]
        );
    }

    #[test]
    fn malformed_heads_are_400() {
        let limits = HandshakeLimits::default();
        for bad in [
            &b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"\r\n\r\n",
        ] {
            let err = RequestHead::from_bytes(bad, &limits).unwrap_err();
            assert_eq!(err.status, 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn limits_give_431() {
        let limits = HandshakeLimits {
            max_header_bytes: 40,
            max_headers: 2,
        };
        let err =
            RequestHead::from_bytes(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &limits)
                .unwrap_err();
        assert_eq!(err.status, 431);
        let err = RequestHead::from_bytes(
            b"GET /a-very-long-path-indeed HTTP/1.1\r\nA: 1\r\n\r\n",
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.status, 431);
        assert!(RequestHead::from_bytes(b"GET / HTTP/1.1\r\nA: 1\r\n\r\n", &limits).is_ok());
    }

    #[test]
    fn huge_limits_do_not_allocate_hugely() {
        let limits = HandshakeLimits {
            max_header_bytes: usize::MAX,
            max_headers: usize::MAX,
        };
        let h = RequestHead::from_bytes(b"GET / HTTP/1.1\r\na:\nb:\n\n", &limits).unwrap();
        assert_eq!(h.header_count(), 2);
        let mut reader = super::super::HeadReader::new(limits);
        assert!(reader.push(b"GET / HTTP/1.1\r\n").unwrap().is_none());
        assert!(reader.push(b"\r\n").unwrap().is_some());
    }

    #[test]
    fn many_header_slots_use_the_heap() {
        let limits = HandshakeLimits {
            max_header_bytes: 1 << 16,
            max_headers: 100,
        };
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..90 {
            text.push_str(&format!("X-{i}: {i}\r\n"));
        }
        text.push_str("\r\n");
        let h = RequestHead::from_bytes(text.as_bytes(), &limits).unwrap();
        assert_eq!(h.header_count(), 90);
        assert_eq!(h.header_str("x-89"), Some("89"));
    }
}
