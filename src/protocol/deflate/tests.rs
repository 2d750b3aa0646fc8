//! permessage-deflate without sockets: parameter and negotiation tables, the examples
//! of RFC 7692 section 7.2.3 through the decoder, a decompression bomb, invalid data,
//! and where inflate state lives.

use super::*;
use crate::protocol::deflate::negotiate::Negotiated;
use crate::protocol::frame::{OpCode, RSV1, encode_frame};
use crate::protocol::{CloseCode, Decoder, DecoderConfig, Event, ProtocolError, Role};

fn parse(element: &str) -> Result<DeflateParams, ParamsError> {
    DeflateParams::parse(element)
}

#[test]
fn parameters_parse_per_section_7_1() {
    let none = DeflateParams::default();
    assert_eq!(parse("permessage-deflate"), Ok(none));
    assert_eq!(
        parse(" Permessage-Deflate ; "),
        Err(ParamsError::UnknownParameter)
    );
    assert_eq!(
        parse("permessage-deflate; client_max_window_bits"),
        Ok(DeflateParams {
            client_max_window_bits: Some(None),
            ..none
        })
    );
    assert_eq!(
        parse(
            "permessage-deflate;server_no_context_takeover;client_no_context_takeover;server_max_window_bits=10;client_max_window_bits=\"9\""
        ),
        Ok(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(Some(9)),
        })
    );
    let refused = [
        ("x-webkit-deflate-frame", ParamsError::OtherExtension),
        ("permessage-deflate; foo", ParamsError::UnknownParameter),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            ParamsError::DuplicateParameter,
        ),
        (
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            ParamsError::DuplicateParameter,
        ),
        (
            "permessage-deflate; server_max_window_bits",
            ParamsError::InvalidValue,
        ),
        (
            "permessage-deflate; server_max_window_bits=7",
            ParamsError::InvalidValue,
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            ParamsError::InvalidValue,
        ),
        (
            "permessage-deflate; server_max_window_bits=010",
            ParamsError::InvalidValue,
        ),
        (
            "permessage-deflate; client_max_window_bits=\"10",
            ParamsError::InvalidValue,
        ),
        (
            "permessage-deflate; client_max_window_bits=",
            ParamsError::InvalidValue,
        ),
        (
            "permessage-deflate; server_no_context_takeover=1",
            ParamsError::InvalidValue,
        ),
    ];
    for (element, error) in refused {
        assert_eq!(parse(element), Err(error), "{element}");
    }
}

#[test]
fn parameters_print_as_they_parse() {
    for element in [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=15",
    ] {
        assert_eq!(parse(element).unwrap().to_string(), element);
    }
}

/// Offers, the server's policy, the answer after `permessage-deflate;
/// server_no_context_takeover` (`None`: declined), the negotiated server and client
/// windows, and whether the client resets its context.
type Row<'a> = (
    &'a [&'a str],
    &'a DeflateConfig,
    Option<&'a str>,
    u8,
    u8,
    bool,
);

#[test]
fn the_server_answers_the_first_acceptable_offer() {
    let default = DeflateConfig::default();
    let takeover = DeflateConfig {
        client_context_takeover: true,
        client_max_window_bits: 10,
        server_max_window_bits: 12,
        ..default
    };
    let base = "permessage-deflate; server_no_context_takeover";
    let table: &[Row<'_>] = &[
        (&[], &default, None, 0, 0, false),
        (&["x-webkit-deflate-frame"], &default, None, 0, 0, false),
        (
            &["permessage-deflate"],
            &default,
            Some("; client_no_context_takeover"),
            15,
            15,
            true,
        ),
        (
            &["permessage-deflate; client_max_window_bits"],
            &default,
            Some("; client_no_context_takeover"),
            15,
            15,
            true,
        ),
        (
            &["permessage-deflate; server_max_window_bits=8"],
            &default,
            Some("; client_no_context_takeover; server_max_window_bits=8"),
            8,
            15,
            true,
        ),
        (
            &["permessage-deflate; client_max_window_bits=9"],
            &default,
            Some("; client_no_context_takeover; client_max_window_bits=9"),
            15,
            9,
            true,
        ),
        // Invalid offers are skipped, never the connection; the next one wins.
        (
            &[
                "permessage-deflate; bogus",
                "permessage-deflate; server_max_window_bits=9",
                "permessage-deflate",
            ],
            &default,
            Some("; client_no_context_takeover; server_max_window_bits=9"),
            9,
            15,
            true,
        ),
        (
            &["permessage-deflate; server_max_window_bits=99"],
            &default,
            None,
            0,
            0,
            false,
        ),
        // With client context takeover allowed, the client keeps it unless it gives it up.
        (
            &["permessage-deflate"],
            &takeover,
            Some("; server_max_window_bits=12"),
            12,
            15,
            false,
        ),
        (
            &["permessage-deflate; client_max_window_bits"],
            &takeover,
            Some("; server_max_window_bits=12; client_max_window_bits=10"),
            12,
            10,
            false,
        ),
        (
            &["permessage-deflate; client_no_context_takeover; server_max_window_bits=14"],
            &takeover,
            Some("; client_no_context_takeover; server_max_window_bits=12"),
            12,
            15,
            true,
        ),
    ];
    for &(offers, config, answer, server_bits, client_bits, client_reset) in table {
        let got = config.accept(offers.iter().copied());
        match answer {
            None => assert_eq!(got, None, "{offers:?}"),
            Some(rest) => {
                let (negotiated, response) = got.unwrap_or_else(|| panic!("{offers:?}"));
                assert_eq!(response.to_string(), format!("{base}{rest}"), "{offers:?}");
                assert_eq!(
                    negotiated,
                    Negotiated {
                        server_window_bits: server_bits,
                        client_no_context_takeover: client_reset,
                        client_window_bits: client_bits,
                    },
                    "{offers:?}"
                );
            }
        }
    }
}

#[test]
fn the_client_checks_the_answer() {
    let offer = client_offer();
    assert_eq!(
        offer.to_string(),
        "permessage-deflate; client_max_window_bits"
    );
    let ok = check_response(
        &offer,
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
    )
    .unwrap();
    assert_eq!(ok.client_window_bits, 10);
    assert_eq!(
        ok.inflate,
        InflateParams {
            no_context_takeover: true,
            window_bits: 15
        }
    );
    let ok = check_response(&offer, "permessage-deflate; server_max_window_bits=9").unwrap();
    assert_eq!(
        ok.inflate,
        InflateParams {
            no_context_takeover: false,
            window_bits: 9
        }
    );
    for bad in [
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; bogus",
        "x-other",
    ] {
        assert!(check_response(&offer, bad).is_err(), "{bad}");
    }
    let strict = DeflateParams {
        server_no_context_takeover: true,
        server_max_window_bits: Some(10),
        ..DeflateParams::default()
    };
    for bad in [
        "permessage-deflate; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10",
    ] {
        assert!(check_response(&strict, bad).is_err(), "{bad}");
    }
}

fn client_decoder(takeover: bool, max_message_size: usize) -> Decoder {
    Decoder::new(DecoderConfig {
        role: Role::Client,
        max_message_size,
        inflate: Some(InflateParams {
            no_context_takeover: !takeover,
            window_bits: 15,
        }),
        ..DecoderConfig::default()
    })
}

/// Decodes server frames `wire` until each message or the first error.
fn messages(decoder: &mut Decoder, wire: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut wire = wire.to_vec();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        let (used, result) = decoder.decode(&mut wire[pos..]);
        pos += used;
        match result? {
            Some(Event::Text(text)) => out.push(text.as_bytes().to_vec()),
            Some(Event::Binary(bytes)) => out.push(bytes.to_vec()),
            Some(other) => panic!("unexpected {other:?}"),
            None => return Ok(out),
        }
    }
}

#[test]
fn rfc_7692_section_7_2_3_examples_inflate() {
    let hello = b"Hello".to_vec();
    let examples: &[&[u8]] = &[
        // 7.2.3.1: a message compressed with no context takeover.
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        // 7.2.3.1: the same, in two fragments.
        &[
            0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
        ],
        // 7.2.3.3: a stored (uncompressed) DEFLATE block.
        &[
            0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ],
        // 7.2.3.5: two DEFLATE blocks in one message.
        &[
            0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
            0x00,
        ],
        // 7.2.3.6: a block with BFINAL set.
        &[0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
    ];
    for wire in examples {
        let mut decoder = client_decoder(false, 1024);
        assert_eq!(
            messages(&mut decoder, wire),
            Ok(vec![hello.clone()]),
            "{wire:x?}"
        );
        // Twice on one decoder: without context takeover each stands alone.
        let twice = [*wire, *wire].concat();
        assert_eq!(
            messages(&mut decoder, &twice),
            Ok(vec![hello.clone(); 2]),
            "{wire:x?}"
        );
    }
    // 7.2.3.2: the second "Hello" refers back into the first (context takeover).
    let wire = [
        0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, // first
        0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00, // second
    ];
    let mut decoder = client_decoder(true, 1024);
    assert_eq!(messages(&mut decoder, &wire), Ok(vec![hello.clone(); 2]));
    // Without context takeover the back reference points at nothing: 1007.
    let mut decoder = client_decoder(false, 1024);
    let error = messages(&mut decoder, &wire).unwrap_err();
    assert_eq!(error, ProtocolError::InvalidCompressedData);
    assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
}

#[test]
fn compression_matches_section_7_2_3_1_and_round_trips() {
    let mut out = Vec::new();
    assert!(Compressor::new(6, 15).compress(b"Hello", &mut out));
    assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    // Section 7.2.3.6: an empty message compresses to one 0x00 byte.
    out.clear();
    assert!(Compressor::new(1, 15).compress(b"", &mut out));
    assert_eq!(out, [0x00]);
    // Each message stands alone (the context is reset), at every window size.
    let text: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("{{\"n\":{}}}", i % 97).into_bytes())
        .collect();
    for bits in 8..=15 {
        let mut compressor = Compressor::new(1, bits);
        for _ in 0..2 {
            let mut out = Vec::new();
            assert!(compressor.compress(&text, &mut out));
            // Small windows find fewer matches: only 15 bits reach back a whole period.
            let most = if bits == 15 {
                text.len() / 4
            } else {
                text.len()
            };
            assert!(out.len() < most, "{bits} bits: {} bytes", out.len());
            let mut wire = Vec::new();
            encode_frame(&mut wire, true, OpCode::Binary, &out, None);
            wire[0] |= RSV1 << 4;
            let mut decoder = client_decoder(false, 1 << 20);
            assert_eq!(messages(&mut decoder, &wire), Ok(vec![text.clone()]));
        }
    }
}

/// A server frame carrying `payload` compressed, RSV1 set.
fn compressed_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(Compressor::new(9, 15).compress(payload, &mut out));
    let mut wire = Vec::new();
    encode_frame(&mut wire, true, opcode, &out, None);
    wire[0] |= RSV1 << 4;
    wire
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let limit = 1 << 20;
    let wire = compressed_frame(OpCode::Binary, &vec![0u8; 64 << 20]);
    assert!(
        wire.len() < 128 << 10,
        "a few KiB on the wire: {}",
        wire.len()
    );
    let mut decoder = client_decoder(false, limit);
    let mut input = wire.clone();
    let (_, result) = decoder.decode(&mut input);
    assert_eq!(result.unwrap_err(), ProtocolError::MessageTooLarge);
    assert_eq!(
        ProtocolError::MessageTooLarge.close_code(),
        CloseCode::MESSAGE_TOO_BIG
    );
    // What it held when it stopped: at most the limit and one byte, never 64 MiB.
    assert!(
        decoder.buffered_capacity() <= limit + 1,
        "{}",
        decoder.buffered_capacity()
    );
}

#[test]
fn invalid_compressed_data_fails_with_1007() {
    // A reserved block type; a stored block whose length and its complement disagree;
    // a match reaching back before the message (section 7.2.3.2's second message, on
    // its own). A stream cut short is not among them: inflating stops where the data
    // does, as zlib's does.
    for payload in [
        &[0xff, 0xff, 0xff][..],
        &[0x00, 0x01, 0x00, 0x00, 0x00],
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
    ] {
        let mut wire = Vec::new();
        encode_frame(&mut wire, true, OpCode::Binary, payload, None);
        wire[0] |= RSV1 << 4;
        let mut decoder = client_decoder(false, 1024);
        let result = messages(&mut decoder, &wire);
        let error = result.expect_err(&format!("{payload:x?}"));
        assert_eq!(
            error.close_code(),
            CloseCode::INVALID_PAYLOAD,
            "{payload:x?}: {error:?}"
        );
    }
}

#[test]
fn inflated_text_is_utf8_checked_and_fails_fast() {
    let wire = compressed_frame(OpCode::Text, b"caf\xc3\xa9 ok");
    assert_eq!(
        messages(&mut client_decoder(false, 1024), &wire),
        Ok(vec!["café ok".into()])
    );
    // The first of two fragments already holds invalid UTF-8: failed before the second.
    let mut out = Vec::new();
    let mut bad = b"valid, then \xff".to_vec();
    bad.extend(std::iter::repeat_n(b'x', 5000));
    assert!(Compressor::new(0, 15).compress(&bad, &mut out));
    let mut wire = Vec::new();
    encode_frame(&mut wire, false, OpCode::Text, &out[..out.len() / 2], None);
    wire[0] |= RSV1 << 4;
    let error = messages(&mut client_decoder(false, 1 << 20), &wire).unwrap_err();
    assert_eq!(error, ProtocolError::InvalidUtf8);
}

#[test]
fn rsv1_rules_of_section_6_1() {
    // On a control frame.
    let wire = [0xc9, 0x00];
    assert_eq!(
        messages(&mut client_decoder(false, 1024), &wire),
        Err(ProtocolError::CompressedControl)
    );
    // On a continuation frame.
    let wire = [0x01, 0x01, b'a', 0xc0, 0x00];
    assert_eq!(
        messages(&mut client_decoder(false, 1024), &wire),
        Err(ProtocolError::CompressedContinuation)
    );
    // Not negotiated.
    let mut plain = Decoder::new(DecoderConfig {
        role: Role::Client,
        ..DecoderConfig::default()
    });
    let wire = compressed_frame(OpCode::Text, b"Hello");
    assert_eq!(
        messages(&mut plain, &wire),
        Err(ProtocolError::ReservedBits)
    );
    for error in [
        ProtocolError::CompressedControl,
        ProtocolError::CompressedContinuation,
        ProtocolError::ReservedBits,
    ] {
        assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR);
    }
}

#[test]
fn an_idle_decoder_holds_no_inflate_state_without_context_takeover() {
    let wire = compressed_frame(OpCode::Text, b"Hello, Hello, Hello");
    let mut decoder = client_decoder(false, 1024);
    assert!(!decoder.holds_inflater());
    // Half a message: the inflater is lent while it is in progress.
    let mut first = wire[..wire.len() - 3].to_vec();
    let (used, result) = decoder.decode(&mut first);
    assert_eq!(result, Ok(None));
    assert_eq!(used, first.len());
    assert!(decoder.holds_inflater());
    let mut rest = wire[wire.len() - 3..].to_vec();
    let (_, result) = decoder.decode(&mut rest);
    assert_eq!(result, Ok(Some(Event::Text("Hello, Hello, Hello"))));
    decoder.release();
    assert!(!decoder.holds_inflater());
    assert_eq!(decoder.buffered_capacity(), 0);
    // With context takeover it keeps its own (bounded by the window).
    let mut decoder = client_decoder(true, 1024);
    assert_eq!(
        messages(&mut decoder, &wire),
        Ok(vec![b"Hello, Hello, Hello".to_vec()])
    );
    assert!(decoder.holds_inflater());
}
