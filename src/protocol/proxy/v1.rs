//! Version 1: one line of text (spec §2.1), e.g.
//! `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{MAX_V1_LEN, ProxyCommand, ProxyError, ProxyHeader};

pub(super) const PREFIX: &[u8] = b"PROXY ";

pub(super) fn parse(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &bytes[..bytes.len().min(MAX_V1_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if bytes.len() >= MAX_V1_LEN {
            Err(ProxyError::TooLong)
        } else if window.contains(&b'\n') {
            Err(ProxyError::MalformedV1)
        } else {
            Ok(None)
        };
    };
    // A bare LF before the CRLF is malformed, whether or not the CR has arrived yet
    // (the same answer however the header is cut into reads).
    if window[..cr].contains(&b'\n') {
        return Err(ProxyError::MalformedV1);
    }
    match bytes.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::MalformedV1),
    }
    let line =
        std::str::from_utf8(&bytes[PREFIX.len()..cr]).map_err(|_| ProxyError::MalformedV1)?;
    let header = fields(line).ok_or(ProxyError::MalformedV1)?;
    Ok(Some((header, cr + 2)))
}

/// The fields after `PROXY `: `UNKNOWN` (anything may follow) or a protocol, two
/// addresses and two ports separated by single spaces.
fn fields(line: &str) -> Option<ProxyHeader> {
    let local = |_| ProxyHeader {
        version: 1,
        command: ProxyCommand::Local,
        source: None,
        destination: None,
        tlv_bytes: Vec::new(),
    };
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Some(local(()));
    }
    let mut parts = line.split(' ');
    let protocol = parts.next()?;
    let (src, dst, sport, dport) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (src, dst): (IpAddr, IpAddr) = match protocol {
        "TCP4" => (
            src.parse::<Ipv4Addr>().ok()?.into(),
            dst.parse::<Ipv4Addr>().ok()?.into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>().ok()?.into(),
            dst.parse::<Ipv6Addr>().ok()?.into(),
        ),
        _ => return None,
    };
    Some(ProxyHeader {
        version: 1,
        command: ProxyCommand::Proxy,
        source: Some(SocketAddr::new(src, port(sport)?)),
        destination: Some(SocketAddr::new(dst, port(dport)?)),
        tlv_bytes: Vec::new(),
    })
}

/// A port: 1 to 5 decimal digits, at most 65535.
fn port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
