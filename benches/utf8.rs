//! UTF-8 validation throughput: whole-payload, streaming and std, on ASCII and mixed text.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wavecore::internals::utf8::{Utf8Stream, validate};

/// `len` bytes of valid UTF-8 made by repeating `pattern`, cut on a char boundary and
/// padded with ASCII.
fn text(pattern: &str, len: usize) -> Vec<u8> {
    let mut s = String::with_capacity(len);
    while s.len() + pattern.len() <= len {
        s.push_str(pattern);
    }
    for c in pattern.chars() {
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    while s.len() < len {
        s.push(' ');
    }
    s.into_bytes()
}

fn validation(c: &mut Criterion) {
    let kinds = [
        (
            "ascii",
            "The quick brown fox jumps over the lazy dog; 0123456789. ",
        ),
        (
            "mixed",
            "Γειά σου κόσμε, 你好世界, こんにちは 😀🎉🚀 — naïve café. ",
        ),
    ];
    let mut group = c.benchmark_group("utf8");
    for (kind, pattern) in kinds {
        for (size, label) in [(1024, "1KiB"), (64 << 10, "64KiB")] {
            let data = text(pattern, size);
            assert!(std::str::from_utf8(&data).is_ok());
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(format!("validate/{kind}"), label), |b| {
                b.iter(|| validate(black_box(&data)).is_ok());
            });
            group.bench_function(BenchmarkId::new(format!("stream/{kind}"), label), |b| {
                b.iter(|| {
                    let mut stream = Utf8Stream::new();
                    stream.feed(black_box(&data)).is_ok() && stream.finish().is_ok()
                });
            });
            group.bench_function(BenchmarkId::new(format!("std/{kind}"), label), |b| {
                b.iter(|| std::str::from_utf8(black_box(&data)).is_ok());
            });
        }
    }
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
