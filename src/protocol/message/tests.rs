use super::*;
use crate::protocol::close::CloseCode;
use crate::protocol::frame::encode_frame;
use crate::protocol::owned_event::OwnedEvent as Owned;
use proptest::prelude::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some(KEY));
    out
}

fn config() -> DecoderConfig {
    DecoderConfig::default()
}

/// Feeds `wire` in the given chunk sizes the way a connection does (keeping unconsumed
/// bytes in front of the next read) and collects events until the first error.
fn feed(
    config: DecoderConfig,
    wire: &[u8],
    chunks: &[usize],
) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut decoder = Decoder::new(config);
    let mut events = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while offset < wire.len() {
        let n = sizes
            .next()
            .unwrap_or(wire.len())
            .max(1)
            .min(wire.len() - offset);
        pending.extend_from_slice(&wire[offset..offset + n]);
        offset += n;
        let mut pos = 0;
        loop {
            let (used, result) = decoder.decode(&mut pending[pos..]);
            pos += used;
            match result {
                Ok(Some(event)) => events.push(event.into()),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
        pending.drain(..pos);
        assert!(pending.len() <= 131, "kept {} bytes", pending.len());
    }
    assert!(!decoder.is_mid_message() || pending.is_empty() || offset == wire.len());
    (events, None)
}

fn whole(wire: &[u8]) -> (Vec<Owned>, Option<ProtocolError>) {
    feed(config(), wire, &[wire.len()])
}

#[test]
fn whole_message_is_borrowed_from_the_input() {
    let mut wire = frame(true, OpCode::Text, b"Hello");
    let base = wire.as_ptr() as usize;
    let mut decoder = Decoder::new(config());
    let (used, event) = decoder.decode(&mut wire);
    assert_eq!(used, 11);
    let Some(Event::Text(text)) = event.unwrap() else {
        panic!("not text")
    };
    assert_eq!(text, "Hello");
    assert_eq!(
        text.as_ptr() as usize,
        base + 6,
        "payload must not be copied"
    );
    assert!(!decoder.is_mid_message());
}

#[test]
fn rfc_fragmented_hello_with_interleaved_ping() {
    let mut wire = frame(false, OpCode::Text, b"Hel");
    wire.extend(frame(true, OpCode::Ping, b"Hello"));
    wire.extend(frame(true, OpCode::Continuation, b"lo"));
    let (events, err) = whole(&wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [Owned::Ping(b"Hello".to_vec()), Owned::Text("Hello".into())]
    );
}

#[test]
fn every_split_gives_the_same_events() {
    let mut wire = frame(true, OpCode::Binary, &[7u8; 300]);
    wire.extend(frame(false, OpCode::Text, "κόσ".as_bytes()));
    wire.extend(frame(true, OpCode::Pong, b"p"));
    wire.extend(frame(false, OpCode::Continuation, "με".as_bytes()));
    wire.extend(frame(true, OpCode::Continuation, b""));
    wire.extend(frame(true, OpCode::Close, b"\x03\xe8bye"));
    let expected = vec![
        Owned::Binary(vec![7; 300]),
        Owned::Pong(b"p".to_vec()),
        Owned::Text("κόσμε".into()),
        Owned::Close(Some((1000, "bye".into()))),
    ];
    for size in 1..=wire.len() {
        assert_eq!(
            feed(config(), &wire, &[size]),
            (expected.clone(), None),
            "chunks of {size}"
        );
    }
}

#[test]
fn idle_decoder_holds_no_buffer() {
    let mut decoder = Decoder::new(config());
    let mut wire = frame(false, OpCode::Binary, b"ab");
    wire.extend(frame(true, OpCode::Continuation, b"cd"));
    let len = wire.len();
    let (used, event) = decoder.decode(&mut wire);
    assert_eq!(used, len);
    assert_eq!(event, Ok(Some(Event::Binary(b"abcd"))));
    decoder.release();
    assert!(decoder.message.is_none());
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn continuation_without_start_is_1002() {
    let (_, err) = whole(&frame(true, OpCode::Continuation, b"x"));
    assert_eq!(err, Some(ProtocolError::UnexpectedContinuation));
    assert_eq!(err.unwrap().close_code(), CloseCode::PROTOCOL_ERROR);
}

#[test]
fn new_message_while_one_is_open_is_1002() {
    let mut wire = frame(false, OpCode::Text, b"a");
    wire.extend(frame(true, OpCode::Binary, b"b"));
    assert_eq!(whole(&wire).1, Some(ProtocolError::ExpectedContinuation));
}

#[test]
fn frame_and_message_limits_are_1009() {
    let small = DecoderConfig {
        max_frame_size: 10,
        max_message_size: 15,
        ..config()
    };
    assert_eq!(
        feed(small, &frame(true, OpCode::Binary, &[0; 11]), &[100]).1,
        Some(ProtocolError::FrameTooLarge)
    );
    let mut wire = frame(false, OpCode::Binary, &[0; 10]);
    wire.extend(frame(true, OpCode::Continuation, &[0; 6]));
    let (events, err) = feed(small, &wire, &[100]);
    assert!(events.is_empty());
    assert_eq!(err, Some(ProtocolError::MessageTooLarge));
    assert_eq!(err.unwrap().close_code(), CloseCode::MESSAGE_TOO_BIG);
    // The limit is checked from the header alone: no payload has to arrive first.
    let header_only = &frame(true, OpCode::Binary, &[0; 11])[..6];
    assert_eq!(
        feed(small, header_only, &[6]).1,
        Some(ProtocolError::FrameTooLarge)
    );
}

#[test]
fn invalid_utf8_is_1007_whole_and_fragmented() {
    let (_, err) = whole(&frame(true, OpCode::Text, b"\xce\xba\xed\xa0\x80"));
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
    let mut wire = frame(false, OpCode::Text, b"\xce");
    wire.extend(frame(true, OpCode::Continuation, b"\xba\xff"));
    assert_eq!(whole(&wire).1, Some(ProtocolError::InvalidUtf8));
    // Truncated at the end of the message.
    let mut wire = frame(false, OpCode::Text, b"ok");
    wire.extend(frame(true, OpCode::Continuation, b"\xce"));
    assert_eq!(whole(&wire).1, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn invalid_utf8_fails_fast_before_the_frame_ends() {
    let mut payload = b"valid \xf4\x90".to_vec();
    payload.extend([b'a'; 1000]);
    let wire = frame(true, OpCode::Text, &payload);
    // Only the header and the first 10 payload bytes have arrived.
    let (events, err) = feed(config(), &wire[..8 + 10], &[18]);
    assert!(events.is_empty());
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn binary_is_not_utf8_checked() {
    let (events, err) = whole(&frame(true, OpCode::Binary, b"\xff\xfe"));
    assert_eq!((events, err), (vec![Owned::Binary(vec![0xff, 0xfe])], None));
}

#[test]
fn close_payload_rules() {
    assert_eq!(
        whole(&frame(true, OpCode::Close, b"")).0,
        [Owned::Close(None)]
    );
    assert_eq!(
        whole(&frame(true, OpCode::Close, b"\x03")).1,
        Some(ProtocolError::InvalidClosePayload)
    );
    assert_eq!(
        whole(&frame(true, OpCode::Close, b"\x03\xed")).1,
        Some(ProtocolError::InvalidCloseCode(1005))
    );
    assert_eq!(
        whole(&frame(true, OpCode::Close, b"\x03\xe8\xff")).1,
        Some(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn header_errors_surface() {
    let mut unmasked = Vec::new();
    encode_frame(&mut unmasked, true, OpCode::Text, b"hi", None);
    assert_eq!(whole(&unmasked).1, Some(ProtocolError::UnmaskedFrame));
    let client = DecoderConfig {
        role: Role::Client,
        ..config()
    };
    assert_eq!(
        feed(client, &unmasked, &[100]).0,
        [Owned::Text("hi".into())]
    );
}

#[test]
fn events_before_an_error_are_delivered() {
    let mut wire = frame(true, OpCode::Text, b"first");
    wire.extend([0x83, 0x80, 0, 0, 0, 0]);
    let (events, err) = whole(&wire);
    assert_eq!(events, [Owned::Text("first".into())]);
    assert_eq!(err, Some(ProtocolError::ReservedOpcode(3)));
}

/// A message for the round-trip property: kind, payload, how to fragment it.
#[derive(Debug, Clone)]
struct Plan {
    text: bool,
    payload: Vec<u8>,
    fragments: Vec<usize>,
    ping_after_first: bool,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        any::<bool>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            ".{0,80}".prop_map(String::into_bytes),
        ],
        proptest::collection::vec(1usize..50, 0..4),
        any::<bool>(),
    )
        .prop_map(|(text, payload, fragments, ping_after_first)| {
            let text = text && std::str::from_utf8(&payload).is_ok();
            Plan {
                text,
                payload,
                fragments,
                ping_after_first,
            }
        })
}

/// The opcode of a plan's fragment: text or binary first, continuation after.
fn fragment_opcode(plan: &Plan, first: bool) -> OpCode {
    if !first {
        OpCode::Continuation
    } else if plan.text {
        OpCode::Text
    } else {
        OpCode::Binary
    }
}

fn encode_plan(plan: &Plan, wire: &mut Vec<u8>) {
    let mut rest = &plan.payload[..];
    let mut first = true;
    for &size in &plan.fragments {
        if size >= rest.len() {
            break;
        }
        let opcode = fragment_opcode(plan, first);
        wire.extend(frame(false, opcode, &rest[..size]));
        if first && plan.ping_after_first {
            wire.extend(frame(true, OpCode::Ping, b"ping"));
        }
        first = false;
        rest = &rest[size..];
    }
    let opcode = fragment_opcode(plan, first);
    wire.extend(frame(true, opcode, rest));
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(plans in proptest::collection::vec(plan(), 1..6), chunks in proptest::collection::vec(1usize..64, 1..5)) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for plan in &plans {
            encode_plan(plan, &mut wire);
            let fragmented = plan.fragments.iter().any(|&s| s < plan.payload.len());
            if fragmented && plan.ping_after_first && plan.fragments[0] < plan.payload.len() {
                expected.push(Owned::Ping(b"ping".to_vec()));
            }
            expected.push(if plan.text {
                Owned::Text(String::from_utf8(plan.payload.clone()).unwrap())
            } else {
                Owned::Binary(plan.payload.clone())
            });
        }
        prop_assert_eq!(feed(config(), &wire, &chunks), (expected, None));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), chunks in proptest::collection::vec(1usize..40, 1..4)) {
        let _ = feed(config(), &bytes, &chunks);
        let client = DecoderConfig { role: Role::Client, max_frame_size: 100, max_message_size: 150, ..config() };
        let _ = feed(client, &bytes, &chunks);
    }
}
