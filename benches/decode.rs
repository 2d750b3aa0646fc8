//! Decoding a buffer of 10,000 small masked text frames: header decode, in-place unmask
//! and UTF-8 check, as a server does for each read. Reported as frames per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wavecore::internals::frame::encode_frame;
use wavecore::internals::{Decoder, DecoderConfig, Event, OpCode};

const FRAMES: usize = 10_000;

fn wire(payload_len: usize) -> Vec<u8> {
    let text: Vec<u8> = (0..payload_len).map(|i| b'a' + (i % 26) as u8).collect();
    let mut wire = Vec::with_capacity(FRAMES * (payload_len + 14));
    for i in 0..FRAMES {
        let key = (i as u32).wrapping_mul(0x9E37_79B9).to_le_bytes();
        encode_frame(&mut wire, true, OpCode::Text, &text, Some(key));
    }
    wire
}

/// Decodes every frame in `buf`, returning the total payload length seen.
fn decode_all(decoder: &mut Decoder, buf: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut total = 0;
    loop {
        let (used, event) = decoder.decode(&mut buf[pos..]);
        pos += used;
        match event {
            Ok(Some(Event::Text(text))) => total += text.len(),
            Ok(Some(_)) => unreachable!("only text frames"),
            Ok(None) => return total,
            Err(e) => panic!("{e}"),
        }
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for payload_len in [32usize, 128] {
        let original = wire(payload_len);
        let mut buf = original.clone();
        let mut decoder = Decoder::new(DecoderConfig::default());
        group.bench_function(format!("10k_masked_text_{payload_len}B"), |b| {
            b.iter(|| {
                // Unmasking is in place, so restore the masked bytes each round; the copy
                // is measured separately below and subtracted in docs/benchmarks.md.
                buf.copy_from_slice(&original);
                black_box(decode_all(&mut decoder, black_box(&mut buf)))
            })
        });
        group.bench_function(format!("10k_masked_text_{payload_len}B_copy_only"), |b| {
            b.iter(|| {
                buf.copy_from_slice(&original);
                black_box(&mut buf);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
