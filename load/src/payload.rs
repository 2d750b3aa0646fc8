//! Message payloads that carry their own identity, so every delivery can be checked.
//!
//! A payload is ASCII (valid as text or binary): a header of fixed-width lower-case
//! hex fields, then filler bytes that depend only on their position. Echo payloads
//! carry the connection id and sequence number ([`ECHO_HEADER`] bytes); broadcast
//! payloads add the send time ([`BROADCAST_HEADER`] bytes).

/// Header length of an echo payload: connection id (8 hex) and sequence (16 hex).
pub const ECHO_HEADER: usize = 24;
/// Header length of a broadcast payload: publisher (4 hex), sequence (12), send time
/// in nanoseconds since the run's epoch (16): a 32-byte message is all header.
pub const BROADCAST_HEADER: usize = 32;

/// The filler byte at position `i` of any payload.
fn filler(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

/// A payload template of `size` bytes: filler everywhere (JSON text with `json`);
/// headers overwrite the front.
pub fn template(size: usize, json: bool) -> Vec<u8> {
    if !json {
        return (0..size).map(filler).collect();
    }
    // Records like a chat or a feed sends: repeated keys, numbers that vary.
    let mut out = String::with_capacity(size + 128);
    let mut i = 0u64;
    while out.len() < size {
        let n = i.wrapping_mul(2_654_435_761) % 100_000;
        out.push_str(&format!(
            r#"{{"id":{n},"user":"user-{}","room":"lobby","price":{}.{:02},"at":{}}},"#,
            n % 997,
            n % 1000,
            n % 100,
            1_700_000_000_000 + n * 37
        ));
        i += 1;
    }
    out.truncate(size);
    out.into_bytes()
}

/// Writes `value` as `digits` lower-case hex characters into `out`.
fn put_hex(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = out.len();
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = HEX[((value >> shift) & 0xF) as usize];
    }
}

/// Parses lower-case hex; `None` on any other byte.
fn parse_hex(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(acc << 4 | digit as u64)
    })
}

/// Fills `buf` (a copy of [`template`]) with an echo header.
pub fn put_echo(buf: &mut [u8], conn: u32, seq: u64) {
    put_hex(&mut buf[..8], conn as u64);
    put_hex(&mut buf[8..24], seq);
}

/// Whether `data` is exactly the echo payload for `conn` and `seq` built on `template`.
pub fn is_echo(data: &[u8], template: &[u8], conn: u32, seq: u64) -> bool {
    data.len() == template.len()
        && parse_hex(&data[..8]) == Some(conn as u64)
        && parse_hex(&data[8..24]) == Some(seq)
        && data[ECHO_HEADER..] == template[ECHO_HEADER..]
}

/// Fills `buf` (a copy of [`template`]) with a broadcast header.
pub fn put_broadcast(buf: &mut [u8], publisher: u32, seq: u64, sent_ns: u64) {
    put_hex(&mut buf[..4], publisher as u64);
    put_hex(&mut buf[4..16], seq);
    put_hex(&mut buf[16..32], sent_ns);
}

/// Parses a broadcast payload built on `template`: `(publisher, seq, sent_ns)`, or
/// `None` when its length, header or filler is wrong.
pub fn parse_broadcast(data: &[u8], template: &[u8]) -> Option<(u32, u64, u64)> {
    if data.len() != template.len() || data[BROADCAST_HEADER..] != template[BROADCAST_HEADER..] {
        return None;
    }
    let publisher = parse_hex(&data[..4])?;
    Some((
        u32::try_from(publisher).ok()?,
        parse_hex(&data[4..16])?,
        parse_hex(&data[16..32])?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trip() {
        let t = template(32, false);
        let mut buf = t.clone();
        put_echo(&mut buf, 7, 0x1234_5678_9abc);
        assert!(std::str::from_utf8(&buf).is_ok());
        assert!(is_echo(&buf, &t, 7, 0x1234_5678_9abc));
        assert!(!is_echo(&buf, &t, 8, 0x1234_5678_9abc));
        assert!(!is_echo(&buf, &t, 7, 0x1234_5678_9abd));
        buf[30] ^= 1;
        assert!(!is_echo(&buf, &t, 7, 0x1234_5678_9abc));
        assert!(!is_echo(&buf[..31], &t, 7, 0x1234_5678_9abc));
    }

    #[test]
    fn json_payload_compresses_like_json() {
        let t = template(1024, true);
        assert!(std::str::from_utf8(&t).is_ok() && t.len() == 1024);
        let mut out = Vec::new();
        assert!(wavecore::internals::deflate::Compressor::new(1, 15).compress(&t, &mut out));
        // Records with repeated keys and varying numbers: 2 to 8 times smaller (405
        // bytes when measured), not the hundredfold of the repeated alphabet.
        assert!(
            out.len() * 2 < t.len() && out.len() * 8 > t.len(),
            "{}",
            out.len()
        );
    }

    #[test]
    fn broadcast_round_trip() {
        let t = template(64, false);
        let mut buf = t.clone();
        put_broadcast(&mut buf, 3, 99, u64::MAX - 5);
        assert_eq!(parse_broadcast(&buf, &t), Some((3, 99, u64::MAX - 5)));
        buf[63] = b'!';
        assert_eq!(parse_broadcast(&buf, &t), None);
    }
}
