//! permessage-deflate per message, as a server does it for the 1 KiB JSON echo row of
//! `benches/compare.sh`: compressing a message with the thread's shared compressor
//! (compress, then reset for the next message: no context takeover), inflating one
//! with a pooled inflater, and decoding a whole masked compressed frame. The payload
//! is the load generator's (`wavecore-load --json-payload`), so the ratio printed
//! here is the one the end-to-end rows see.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wavecore::internals::deflate::pool;
use wavecore::internals::frame::{RSV1, encode_frame};
use wavecore::internals::{Decoder, DecoderConfig, Event, OpCode, Role};
use wavecore::protocol::InflateParams;
use wavecore_load::payload;

/// The echo row's payload: 1 KiB of JSON with an echo header.
fn json_1k() -> Vec<u8> {
    let mut message = payload::template(1024, true);
    payload::put_echo(&mut message, 42, 7);
    message
}

fn bench_deflate(c: &mut Criterion) {
    let message = json_1k();
    let mut compressed = Vec::new();
    assert!(pool::compress(1, 15, &message, &mut compressed));
    println!(
        "deflate: 1 KiB JSON -> {} bytes at level 1 (window 15)",
        compressed.len()
    );

    let mut group = c.benchmark_group("deflate");
    group.throughput(Throughput::Bytes(message.len() as u64));
    for window in [15u8, 10] {
        let mut out = Vec::with_capacity(2048);
        group.bench_function(format!("compress_1k_json_level1_window{window}"), |b| {
            b.iter(|| {
                out.clear();
                assert!(pool::compress(1, window, black_box(&message), &mut out));
                black_box(out.len())
            })
        });
    }
    group.bench_function("inflate_1k_json", |b| {
        b.iter(|| {
            let mut inflater = pool::take_inflater();
            let mut out = Vec::new();
            let mut ok = |_: &[u8]| Ok(());
            inflater
                .inflate(black_box(&compressed), &mut out, 1 << 20, &mut ok)
                .unwrap();
            inflater.finish(&mut out, 1 << 20, &mut ok).unwrap();
            pool::give_back(inflater);
            black_box(out)
        })
    });

    // The receive path whole: header, unmasking, inflating, UTF-8 check.
    let mut wire = Vec::new();
    encode_frame(
        &mut wire,
        true,
        OpCode::Text,
        &compressed,
        Some([0x37, 0xfa, 0x21, 0x3d]),
    );
    wire[0] |= RSV1 << 4;
    let mut buf = wire.clone();
    let mut decoder = Decoder::new(DecoderConfig {
        role: Role::Server,
        max_frame_size: 1 << 20,
        max_message_size: 1 << 20,
        allowed_rsv: 0,
        inflate: Some(InflateParams {
            no_context_takeover: true,
            window_bits: 15,
        }),
    });
    group.bench_function("decode_compressed_1k_json_frame", |b| {
        b.iter(|| {
            buf.copy_from_slice(&wire);
            let (used, event) = decoder.decode(black_box(&mut buf));
            match event {
                Ok(Some(Event::Text(text))) => assert_eq!(text.len(), message.len()),
                other => panic!("{other:?}"),
            }
            black_box(used)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_deflate);
criterion_main!(benches);
