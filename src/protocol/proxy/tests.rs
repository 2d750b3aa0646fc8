use std::net::SocketAddr;

use proptest::prelude::*;

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A version 2 header: command byte, family byte, address bytes, TLVs.
fn v2(ver_cmd: u8, family: u8, addrs: &[u8], tlvs: &[u8]) -> Vec<u8> {
    let mut out = v2::SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(family);
    out.extend_from_slice(&((addrs.len() + tlvs.len()) as u16).to_be_bytes());
    out.extend_from_slice(addrs);
    out.extend_from_slice(tlvs);
    out
}

fn v2_tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut addrs = Vec::new();
    addrs.extend_from_slice(&src);
    addrs.extend_from_slice(&dst);
    addrs.extend_from_slice(&sport.to_be_bytes());
    addrs.extend_from_slice(&dport.to_be_bytes());
    v2(0x21, 0x11, &addrs, tlvs)
}

#[test]
fn v1_tcp4_and_tcp6() {
    let line = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET /";
    let (header, used) = parse(line).unwrap().unwrap();
    assert_eq!(used, line.len() - 5);
    assert_eq!(header.version, 1);
    assert_eq!(header.command, ProxyCommand::Proxy);
    assert_eq!(header.source, Some(addr("192.0.2.1:56324")));
    assert_eq!(header.destination, Some(addr("198.51.100.1:443")));

    let line = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
    let (header, used) = parse(line).unwrap().unwrap();
    assert_eq!(used, line.len());
    assert_eq!(header.source, Some(addr("[2001:db8::1]:1")));
}

#[test]
fn v1_unknown_keeps_the_peer() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    ] {
        let (header, used) = parse(line).unwrap().unwrap();
        assert_eq!(
            (header.command, header.source, used),
            (ProxyCommand::Local, None, line.len())
        );
    }
}

#[test]
fn v1_malformed() {
    for line in [
        &b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n"[..],
        b"PROXY TCP4 192.0.2.1  198.51.100.1 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
        b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 65536\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 -2\r\n",
        b"PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\rX",
        b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2 3\r\n",
        // A bare LF before the CRLF, even after UNKNOWN (found by the fuzzer: cut
        // before the CR, the reader refused what the whole line was accepted as).
        b"PROXY UNKNOWN 24\n\0\r\n",
    ] {
        assert_eq!(parse(line), Err(ProxyError::MalformedV1), "{line:?}");
    }
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(MAX_V1_LEN, b'x');
    assert_eq!(parse(&long), Err(ProxyError::TooLong));
}

#[test]
fn no_header_is_told_at_the_first_byte() {
    assert_eq!(parse(b"G"), Err(ProxyError::Missing));
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
    assert_eq!(
        parse(b"\x16\x03\x01"),
        Err(ProxyError::Missing),
        "a TLS ClientHello"
    );
    assert_eq!(parse(b"PROXY"), Ok(None));
    assert_eq!(parse(b"\r\n\r\n\0"), Ok(None));
    assert_eq!(parse(b""), Ok(None));
}

#[test]
fn v2_tcp4_with_tlvs() {
    // ALPN "h2", authority "example.com", an AWS VPC endpoint id.
    let mut tlvs = vec![0x01, 0, 2, b'h', b'2', 0x02, 0, 11];
    tlvs.extend_from_slice(b"example.com");
    tlvs.extend_from_slice(&[0xEA, 0, 4, 1, b'v', b'p', b'c']);
    let mut bytes = v2_tcp4([203, 0, 113, 7], [10, 0, 0, 1], 40000, 443, &tlvs);
    let len = bytes.len();
    bytes.extend_from_slice(b"GET /");
    let (header, used) = parse(&bytes).unwrap().unwrap();
    assert_eq!(used, len);
    assert_eq!(header.version, 2);
    assert_eq!(header.source, Some(addr("203.0.113.7:40000")));
    assert_eq!(header.destination, Some(addr("10.0.0.1:443")));
    let tlvs: Vec<_> = header.tlvs().collect();
    assert_eq!(
        tlvs,
        [
            (0x01, &b"h2"[..]),
            (0x02, b"example.com"),
            (0xEA, b"\x01vpc")
        ]
    );
}

#[test]
fn v2_tcp6_and_local() {
    let mut addrs = Vec::new();
    addrs.extend_from_slice(
        &"2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    addrs.extend_from_slice(&[0; 16]);
    addrs.extend_from_slice(&[0x1F, 0x90, 0, 80]);
    let (header, _) = parse(&v2(0x21, 0x21, &addrs, &[])).unwrap().unwrap();
    assert_eq!(header.source, Some(addr("[2001:db8::7]:8080")));

    // LOCAL with addresses: they are the proxy's own, ignored.
    let (header, used) = parse(&v2(0x20, 0x21, &addrs, &[])).unwrap().unwrap();
    assert_eq!(
        (header.command, header.source, used),
        (ProxyCommand::Local, None, 16 + 36)
    );
    // LOCAL, UNSPEC, no address at all (a health check).
    let (header, used) = parse(&v2(0x20, 0x00, &[], &[])).unwrap().unwrap();
    assert_eq!(
        (header.command, header.source, used),
        (ProxyCommand::Local, None, 16)
    );
}

#[test]
fn v2_malformed() {
    let good = v2_tcp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, &[]);
    let mut bad_version = good.clone();
    bad_version[12] = 0x11;
    assert_eq!(
        parse(&bad_version[..13]),
        Err(ProxyError::MalformedV2),
        "told at byte 13"
    );
    let mut bad_command = good.clone();
    bad_command[12] = 0x22;
    assert_eq!(parse(&bad_command), Err(ProxyError::MalformedV2));
    let mut bad_family = good.clone();
    bad_family[13] = 0x41;
    assert_eq!(parse(&bad_family), Err(ProxyError::MalformedV2));
    // A length too short for the IPv4 addresses.
    assert_eq!(
        parse(&v2(0x21, 0x11, &[1, 2, 3], &[])),
        Err(ProxyError::MalformedV2)
    );
    // A TLV running past the header.
    let broken = v2_tcp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, &[0x02, 0, 9, b'x']);
    assert_eq!(parse(&broken), Err(ProxyError::MalformedV2));
    // Too long to be accepted.
    let mut long = v2::SIGNATURE.to_vec();
    long.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    assert_eq!(parse(&long), Err(ProxyError::TooLong));
}

#[test]
fn the_reader_takes_a_header_over_several_reads() {
    let mut bytes = v2_tcp4([9, 9, 9, 9], [5, 6, 7, 8], 7, 8, &[0x04, 0, 1, 0]);
    let len = bytes.len();
    bytes.extend_from_slice(b"rest");
    let mut reader = ProxyReader::default();
    assert_eq!(reader.push(&bytes[..5]), Ok(None));
    assert_eq!(reader.push(&bytes[5..20]), Ok(None));
    let (header, used) = reader.push(&bytes[20..]).unwrap().unwrap();
    assert_eq!(&bytes[20 + used..], b"rest");
    assert_eq!(20 + used, len);
    assert_eq!(header.source, Some(addr("9.9.9.9:7")));
}

proptest! {
    /// However the bytes are split over reads, the reader decides the same as one parse.
    #[test]
    fn splitting_never_changes_the_answer(
        src in any::<[u8; 4]>(), sport in any::<u16>(), v1_form in any::<bool>(),
        cuts in proptest::collection::vec(1usize..40, 0..6),
    ) {
        let mut bytes = if v1_form {
            let [a, b, c, d] = src;
            format!("PROXY TCP4 {a}.{b}.{c}.{d} 10.0.0.1 {sport} 443\r\n").into_bytes()
        } else {
            v2_tcp4(src, [10, 0, 0, 1], sport, 443, &[])
        };
        let len = bytes.len();
        bytes.extend_from_slice(b"after");
        let expected = SocketAddr::new(std::net::Ipv4Addr::from(src).into(), sport);
        let mut reader = ProxyReader::default();
        let mut at: usize = 0;
        let mut found = None;
        for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let end = at.saturating_add(cut).min(bytes.len());
            if let Some((header, used)) = reader.push(&bytes[at..end]).unwrap() {
                found = Some((header, at + used));
                break;
            }
            at = end;
        }
        let (header, end) = found.expect("a complete header");
        prop_assert_eq!(end, len);
        prop_assert_eq!(header.source, Some(expected));
    }

    /// Arbitrary bytes never panic and never claim more bytes than given.
    #[test]
    fn arbitrary_bytes_are_answered(prefix in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = if prefix { v2::SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
        bytes.extend_from_slice(&tail);
        if let Ok(Some((_, used))) = parse(&bytes) {
            prop_assert!(used <= bytes.len());
        }
        let mut reader = ProxyReader::default();
        for chunk in bytes.chunks(7) {
            match reader.push(chunk) {
                Ok(None) => {}
                Ok(Some((_, used))) => { prop_assert!(used <= chunk.len()); break; }
                Err(_) => break,
            }
        }
    }
}
