//! The client's address from `Forwarded` (RFC 7239) or `X-Forwarded-For`, as a chain
//! of trusted proxies reports it.
//!
//! Each proxy appends the address it received the request from, so the list reads
//! client first, nearest proxy last, and anything left of an untrusted hop may be
//! forged by the client. The walk therefore goes from the right: past every address
//! in a trusted network, to the first one that is not; that is the client. When every
//! address is trusted, the leftmost is taken. `Forwarded` wins when both are present;
//! several header lines read as one list, in order.

use std::net::{IpAddr, SocketAddr};

use crate::protocol::handshake::RequestHead;

use super::networks::{Cidr, trusted};

/// The client's address per the request's forwarding headers, if they name one (an
/// `unknown` or obfuscated identifier at the deciding hop names none). The port is the
/// one `Forwarded` gives, else 0.
pub(crate) fn client(head: &RequestHead, proxies: &[Cidr]) -> Option<SocketAddr> {
    let mut forwarded = head.header_values("forwarded").peekable();
    if forwarded.peek().is_some() {
        let elements: Vec<&[u8]> = forwarded.flat_map(|v| v.split(|&b| b == b',')).collect();
        return pick(elements.iter().rev().map(|e| forwarded_for(e)), proxies);
    }
    let hops: Vec<&[u8]> = head
        .header_values("x-forwarded-for")
        .flat_map(|v| v.split(|&b| b == b','))
        .collect();
    pick(hops.iter().rev().map(|hop| address(hop)), proxies)
}

/// Walks hops nearest first; `None` is a hop that names no usable address.
fn pick(hops: impl Iterator<Item = Option<SocketAddr>>, proxies: &[Cidr]) -> Option<SocketAddr> {
    let mut last = None;
    for hop in hops {
        let hop = hop?;
        if !trusted(proxies, hop.ip()) {
            return Some(hop);
        }
        last = Some(hop);
    }
    last
}

/// The `for=` parameter of one `Forwarded` element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::17]:4711"`).
fn forwarded_for(element: &[u8]) -> Option<SocketAddr> {
    element.split(|&b| b == b';').find_map(|pair| {
        let text = std::str::from_utf8(pair).ok()?.trim();
        let (name, value) = text.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| address(value.trim().trim_matches('"').as_bytes()))?
    })
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:80`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn address(text: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(text).ok()?.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::{HandshakeLimits, HeadReader};

    fn head(headers: &str) -> RequestHead {
        let text = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let mut reader = HeadReader::new(HandshakeLimits::default());
        reader.push(text.as_bytes()).unwrap().unwrap().0
    }

    fn proxies() -> Vec<Cidr> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]
    }

    fn client_of(headers: &str) -> Option<String> {
        client(&head(headers), &proxies()).map(|a| a.to_string())
    }

    #[test]
    fn x_forwarded_for_walks_past_trusted_hops() {
        assert_eq!(
            client_of("X-Forwarded-For: 203.0.113.9\r\n").as_deref(),
            Some("203.0.113.9:0")
        );
        // A client's forged entry left of the real one is not believed.
        assert_eq!(
            client_of("X-Forwarded-For: 1.1.1.1, 203.0.113.9, 10.0.0.2\r\n").as_deref(),
            Some("203.0.113.9:0")
        );
        assert_eq!(
            client_of("X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 10.1.1.1\r\n").as_deref(),
            Some("198.51.100.1:0")
        );
        assert_eq!(
            client_of("X-Forwarded-For: 10.0.0.3, 10.0.0.2\r\n").as_deref(),
            Some("10.0.0.3:0")
        );
        assert_eq!(client_of("X-Forwarded-For: garbage\r\n"), None);
        assert_eq!(client_of(""), None);
    }

    #[test]
    fn forwarded_wins_and_reads_quoted_ipv6() {
        assert_eq!(
            client_of(
                "X-Forwarded-For: 1.1.1.1\r\nForwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"\r\n"
            )
            .as_deref(),
            Some("192.0.2.60:0"),
            "2001:db8::/32 is a trusted proxy"
        );
        assert_eq!(
            client_of("Forwarded: For=\"[2001:db9::17]:4711\"\r\n").as_deref(),
            Some("[2001:db9::17]:4711")
        );
        assert_eq!(client_of("Forwarded: for=unknown\r\n"), None);
        assert_eq!(
            client_of("Forwarded: for=_hidden, for=198.51.100.2\r\n").as_deref(),
            Some("198.51.100.2:0")
        );
    }
}
