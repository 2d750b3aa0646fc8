//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's specification
//! "The PROXY protocol, Versions 1 & 2" defines it: the header a load balancer (HAProxy,
//! nginx `proxy_protocol`, AWS NLB, GCP) sends before the client's bytes, naming the
//! client's address. Without I/O: bytes in, a [`ProxyHeader`] and its length out.
//!
//! [`parse`] answers as soon as the bytes decide: `Ok(None)` while what arrived is a
//! prefix of a valid header, an error as soon as it cannot become one (so a client
//! that sends no header at all is told at its first byte), and the header with the
//! number of bytes it took once it is complete. A version 2 header longer than
//! [`MAX_V2_LEN`] bytes is refused.

mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;

/// The longest version 1 header, CRLF included (spec §2.1: 107 bytes).
pub const MAX_V1_LEN: usize = 107;

/// The longest version 2 header accepted, the 16-byte fixed part included: room for
/// both IPv6 addresses and 2 KiB of TLVs (AWS and GCP send well under 300 bytes).
/// The format allows up to 65,551; a longer header is refused with
/// [`ProxyError::TooLong`].
pub const MAX_V2_LEN: usize = 16 + 36 + 2048;

/// What a complete PROXY header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// `PROXY`: the connection was relayed for a client; `LOCAL`: the proxy made it
    /// itself (a health check), and the addresses are the proxy's own (spec §2.2).
    pub command: ProxyCommand,
    /// The client's address and port (`None` for `LOCAL`, `UNKNOWN`, and address
    /// families other than TCP over IPv4 and IPv6, which a server keeps the TCP peer
    /// for).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy.
    pub destination: Option<SocketAddr>,
    /// Version 2 only: the TLVs' bytes (type, 16-bit big-endian length, value, ...),
    /// validated (every length fits); empty for version 1. [`ProxyHeader::tlvs`] walks
    /// them.
    pub tlv_bytes: Vec<u8>,
}

/// A version 2 header's command (spec §2.2; version 1's `UNKNOWN` maps to `Local`
/// semantics too: keep the connection's own address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyCommand {
    /// The proxy speaks for itself (health checks): use the TCP peer's address.
    Local,
    /// The proxy relays a client: `source` is the client.
    Proxy,
}

impl ProxyHeader {
    /// The TLVs of a version 2 header, as `(type, value)` pairs, in order: e.g.
    /// `0x01` ALPN, `0x02` authority (SNI), `0x05` unique id, `0x20` SSL, `0xEA` AWS
    /// VPC endpoint (spec §2.2.1 onwards).
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "only the tests read TLVs: applications are not handed the PROXY header"
        )
    )]
    pub fn tlvs(&self) -> impl Iterator<Item = (u8, &[u8])> {
        v2::Tlvs(&self.tlv_bytes)
    }
}

/// Why bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The bytes start neither with `PROXY ` nor with the version 2 signature: no
    /// header was sent (a client talking directly, or a proxy not configured to send
    /// one).
    Missing,
    /// A version 1 header that breaks the grammar of spec §2.1 (protocol, addresses,
    /// ports, spacing, CRLF).
    MalformedV1,
    /// A version 2 header with an unknown version or command, a length too short for
    /// its address family, or a TLV whose length runs past the header.
    MalformedV2,
    /// Longer than [`MAX_V1_LEN`] (version 1, no CRLF by then) or [`MAX_V2_LEN`].
    TooLong,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no PROXY protocol header",
            Self::MalformedV1 => "malformed PROXY protocol v1 header",
            Self::MalformedV2 => "malformed PROXY protocol v2 header",
            Self::TooLong => "PROXY protocol header too long",
        })
    }
}

impl std::error::Error for ProxyError {}

/// Parses a PROXY header (either version) from the start of `bytes`: `Ok(None)` while
/// more bytes are needed, `Ok(Some((header, used)))` once it is complete (`used`: its
/// length; what follows belongs to the client), an error as soon as `bytes` cannot
/// start a valid header.
///
/// # Errors
///
/// [`ProxyError`]: no header, a malformed one, or one too long.
pub fn parse(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = bytes.len();
    if n == 0 {
        return Ok(None);
    }
    if v2::SIGNATURE.starts_with(&bytes[..n.min(v2::SIGNATURE.len())]) {
        return v2::parse(bytes);
    }
    if v1::PREFIX.starts_with(&bytes[..n.min(v1::PREFIX.len())]) {
        return v1::parse(bytes);
    }
    Err(ProxyError::Missing)
}

/// Collects a PROXY header that may arrive over several reads: bounded by
/// [`MAX_V2_LEN`], and holding no buffer when it arrives whole in the first read.
#[derive(Debug, Default)]
pub struct ProxyReader {
    partial: Vec<u8>,
}

impl ProxyReader {
    /// Takes the next bytes read: `Ok(None)` while the header is incomplete (they are
    /// kept), else the header and how many bytes of `data` it used (the rest is the
    /// client's).
    ///
    /// # Errors
    ///
    /// As [`parse`].
    pub fn push(&mut self, data: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
        if self.partial.is_empty() {
            let parsed = parse(data)?;
            if parsed.is_none() {
                self.partial.extend_from_slice(data);
            }
            return Ok(parsed);
        }
        let before = self.partial.len();
        // Never more than one header's worth: the rest is the client's.
        let take = data.len().min(MAX_V2_LEN + 1 - before.min(MAX_V2_LEN));
        self.partial.extend_from_slice(&data[..take]);
        match parse(&self.partial)? {
            None if self.partial.len() > MAX_V2_LEN => Err(ProxyError::TooLong),
            None => Ok(None),
            Some((header, used)) => {
                self.partial = Vec::new();
                Ok(Some((header, used - before)))
            }
        }
    }
}
