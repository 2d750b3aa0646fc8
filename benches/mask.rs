//! Unmasking throughput: every path against a plain copy of the same size.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wavecore::internals::mask::{
    MaskFn, apply_mask, apply_mask_reference, apply_mask_scalar, simd_paths,
};

const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1024, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn unmask(c: &mut Criterion) {
    let mut paths: Vec<(&str, MaskFn)> = vec![
        ("apply_mask", apply_mask),
        ("scalar_u64", apply_mask_scalar),
        ("reference", apply_mask_reference),
    ];
    for (name, f) in simd_paths() {
        match f {
            Some(f) => paths.push((name, f)),
            None => eprintln!("skipping {name}: not supported by this CPU"),
        }
    }

    let mut group = c.benchmark_group("unmask");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for &(name, f) in &paths {
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| f(black_box(&mut buf), black_box(KEY), black_box(0)));
            });
        }
        let src = buf.clone();
        group.bench_function(BenchmarkId::new("memcpy", label), |b| {
            b.iter(|| black_box(&mut buf[..]).copy_from_slice(black_box(&src)));
        });
    }
    group.finish();
}

criterion_group!(benches, unmask);
criterion_main!(benches);
