//! Writing HTTP/1.1 response heads and plain responses.

/// The standard reason phrase for `status`, or `""` for a code this module does
/// not know (an empty reason phrase is valid HTTP/1.1).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends a complete HTTP/1.1 response: status line with the standard reason
/// phrase, `headers`, a `Content-Length` for `body`, the blank line and `body`.
///
/// Carriage returns and line feeds in header names and values are dropped so a
/// value can never start a new header line. A status outside `100..=999` is
/// written as 500.
pub fn write_http_response(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    out.reserve(64 + body.len());
    write_http_head(out, status, headers, body.len());
    out.extend_from_slice(body);
}

/// Appends the head of the response [`write_http_response`] would write for a body
/// of `content_length` bytes, without the body: the answer to a `HEAD` request
/// (RFC 9110 section 9.3.2).
pub(crate) fn write_http_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    content_length: usize,
) {
    put_status_line(out, status);
    for (name, value) in headers {
        put_header(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"Content-Length: ");
    put_decimal(out, content_length);
    out.extend_from_slice(b"\r\n\r\n");
}

/// The fields that end a connection after a response with `status` whose other
/// fields hold `Upgrade` or not: `Connection: close`, or `Connection: upgrade, close`
/// when there is an `Upgrade` (RFC 9110 section 7.8: a sender of `Upgrade` must
/// list `upgrade` in `Connection`). A `426 Upgrade Required` must carry `Upgrade`
/// (RFC 9110 section 15.5.22); for one without, `Upgrade: websocket` comes first.
pub(crate) fn closing_fields(
    status: u16,
    has_upgrade: bool,
) -> &'static [(&'static str, &'static str)] {
    match (status, has_upgrade) {
        (426, false) => &[("Upgrade", "websocket"), ("Connection", "upgrade, close")],
        (_, true) => &[("Connection", "upgrade, close")],
        _ => &[("Connection", "close")],
    }
}

/// Whether `name` is `Upgrade`, ASCII case-insensitively.
pub(crate) fn is_upgrade_field(name: &str) -> bool {
    name.eq_ignore_ascii_case("upgrade")
}

/// Appends `HTTP/1.1 <status> <reason>\r\n`.
pub(crate) fn put_status_line(out: &mut Vec<u8>, status: u16) {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    put_decimal(out, usize::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`, dropping any CR or LF from name and value.
pub(crate) fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    put_clean(out, name.as_bytes());
    out.extend_from_slice(b": ");
    put_clean(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Appends `bytes` without its CR and LF bytes.
fn put_clean(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(bytes.iter().filter(|&&b| b != b'\r' && b != b'\n'));
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Appends the decimal digits of `n`.
pub(crate) fn put_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_has_length_and_body() {
        let mut out = Vec::new();
        write_http_response(&mut out, 200, &[("Content-Type", "text/plain")], b"hello");
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn header_injection_is_neutralised() {
        let mut out = Vec::new();
        write_http_response(&mut out, 404, &[("X-A", "b\r\nSet-Cookie: evil")], b"");
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\nX-A: bSet-Cookie: evil\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn odd_statuses_do_not_break_the_status_line() {
        let mut out = Vec::new();
        put_status_line(&mut out, 599);
        assert_eq!(out, b"HTTP/1.1 599 \r\n");
        out.clear();
        put_status_line(&mut out, 7);
        assert_eq!(out, b"HTTP/1.1 500 Internal Server Error\r\n");
    }

    #[test]
    fn closing_fields_name_upgrade_when_there_is_one() {
        let close = ("Connection", "close");
        let upgrade_close = ("Connection", "upgrade, close");
        assert_eq!(closing_fields(404, false), [close]);
        assert_eq!(closing_fields(400, true), [upgrade_close]);
        assert_eq!(closing_fields(426, true), [upgrade_close]);
        assert_eq!(
            closing_fields(426, false),
            [("Upgrade", "websocket"), upgrade_close]
        );
    }

    #[test]
    fn decimals() {
        for n in [0usize, 7, 10, 431, 8192, usize::MAX] {
            let mut out = Vec::new();
            put_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
