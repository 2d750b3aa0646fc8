//! `Sec-WebSocket-Accept` and the `101 Switching Protocols` response.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use super::response::{put_header, put_status_line};

/// The GUID RFC 6455 appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Length of a `Sec-WebSocket-Accept` value: base64 of a 20-byte SHA-1.
pub const ACCEPT_KEY_LEN: usize = 28;

/// `base64(sha1(key + GUID))` as ASCII bytes, without allocating.
pub fn accept_key_bytes(key: &[u8]) -> [u8; ACCEPT_KEY_LEN] {
    let mut hasher = Sha1::new();
    hasher.update(key);
    hasher.update(WEBSOCKET_GUID.as_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; ACCEPT_KEY_LEN];
    // 20 bytes encode to exactly 28 base64 characters, so this cannot fail.
    let _ = STANDARD.encode_slice(digest, &mut out);
    out
}

/// `base64(sha1(key + GUID))`: the `Sec-WebSocket-Accept` value for `key`.
pub fn accept_key(key: &[u8]) -> String {
    accept_key_bytes(key)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// Appends the `101 Switching Protocols` response accepting the upgrade whose
/// `Sec-WebSocket-Key` was `key`: `Upgrade: websocket`, `Connection: Upgrade`,
/// `Sec-WebSocket-Accept`, `Sec-WebSocket-Protocol` when `protocol` is chosen,
/// then `extra_headers`.
///
/// CR and LF in header names and values are dropped.
pub fn write_accept_response(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    extra_headers: &[(&str, &str)],
) {
    out.reserve(160);
    put_status_line(out, 101);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(&accept_key_bytes(key));
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        put_header(out, "Sec-WebSocket-Protocol", protocol.as_bytes());
    }
    for (name, value) in extra_headers {
        put_header(out, name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            &accept_key_bytes(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn accept_response_layout() {
        let mut out = Vec::new();
        write_accept_response(
            &mut out,
            b"dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            &[("X-Server", "wavecore")],
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 101 Switching Protocols\r\n\
               Upgrade: websocket\r\n\
               Connection: Upgrade\r\n\
               Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
               Sec-WebSocket-Protocol: chat\r\n\
               X-Server: wavecore\r\n\
               \r\n"[..]
        );
    }

    #[test]
    fn accept_response_without_protocol() {
        let mut out = Vec::new();
        write_accept_response(&mut out, b"dGhlIHNhbXBsZSBub25jZQ==", None, &[]);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(text.ends_with("xOo=\r\n\r\n"));
    }
}
