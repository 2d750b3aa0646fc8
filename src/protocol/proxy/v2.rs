//! Version 2: a 16-byte binary prefix (signature, version and command, family and
//! protocol, length), the addresses, then TLVs (spec §2.2).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{MAX_V2_LEN, ProxyCommand, ProxyError, ProxyHeader};

/// The 12 bytes every version 2 header starts with.
pub(super) const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

pub(super) fn parse(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if bytes.len() < 16 {
        // The version and command byte can be checked as soon as it is here.
        if let Some(&ver_cmd) = bytes.get(12) {
            check_ver_cmd(ver_cmd)?;
        }
        return Ok(None);
    }
    let command = check_ver_cmd(bytes[12])?;
    let family = bytes[13];
    let len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let total = 16 + len;
    if total > MAX_V2_LEN {
        return Err(ProxyError::TooLong);
    }
    let Some(body) = bytes.get(16..total) else {
        return Ok(None);
    };
    let (addrs, used) = match family {
        // TCP or UDP over IPv4 (0x11, 0x12).
        0x11 | 0x12 => {
            let b = body.get(..12).ok_or(ProxyError::MalformedV2)?;
            let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
            let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
            let src = SocketAddr::new(ip(0).into(), port(8));
            let dst = SocketAddr::new(ip(4).into(), port(10));
            (Some((src, dst)), 12)
        }
        // TCP or UDP over IPv6 (0x21, 0x22).
        0x21 | 0x22 => {
            let b = body.get(..36).ok_or(ProxyError::MalformedV2)?;
            let ip = |i: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b[i..i + 16]);
                Ipv6Addr::from(octets)
            };
            let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
            let src = SocketAddr::new(ip(0).into(), port(32));
            let dst = SocketAddr::new(ip(16).into(), port(34));
            (Some((src, dst)), 36)
        }
        // UNSPEC: no address (LOCAL, or a family the receiver must ignore).
        0x00 => (None, 0),
        // Unix sockets (0x31, 0x32): 216 bytes of paths, no IP address to use.
        0x31 | 0x32 => {
            body.get(..216).ok_or(ProxyError::MalformedV2)?;
            (None, 216)
        }
        _ => return Err(ProxyError::MalformedV2),
    };
    let tlv_bytes = &body[used..];
    if !Tlvs::valid(tlv_bytes) {
        return Err(ProxyError::MalformedV2);
    }
    // A LOCAL header's addresses (if any) are the proxy's own: ignored (spec §2.2).
    let addrs = addrs.filter(|_| command == ProxyCommand::Proxy);
    let header = ProxyHeader {
        version: 2,
        command,
        source: addrs.map(|(src, _)| src),
        destination: addrs.map(|(_, dst)| dst),
        tlv_bytes: tlv_bytes.to_vec(),
    };
    Ok(Some((header, total)))
}

/// The 13th byte: version 2 in the high nibble, the command in the low one.
fn check_ver_cmd(byte: u8) -> Result<ProxyCommand, ProxyError> {
    match byte {
        0x20 => Ok(ProxyCommand::Local),
        0x21 => Ok(ProxyCommand::Proxy),
        _ => Err(ProxyError::MalformedV2),
    }
}

/// Walks TLVs: type (1 byte), length (2 bytes, big-endian), value.
pub(super) struct Tlvs<'a>(pub &'a [u8]);

impl Tlvs<'_> {
    /// Whether `bytes` is a sequence of whole TLVs.
    fn valid(mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let Some(&[_, hi, lo]) = bytes.get(..3) else {
                return false;
            };
            let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
            let Some(rest) = bytes.get(end..) else {
                return false;
            };
            bytes = rest;
        }
        true
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let &[kind, hi, lo] = self.0.get(..3)? else {
            return None;
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        let value = self.0.get(3..end)?;
        self.0 = &self.0[end..];
        Some((kind, value))
    }
}
