//! Server-side opening handshake cost: read the head, classify it, compute the
//! accept key and write the 101 response, for a typical browser request.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wavecore::internals::handshake::{
    HandshakeLimits, HeadReader, RequestKind, accept_key_bytes, classify, write_accept_response,
};

/// What a current desktop browser sends when opening a WebSocket.
const BROWSER_REQUEST: &[u8] = b"GET /chat?room=lobby HTTP/1.1\r\n\
Host: ws.example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://www.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Cookie: session=4f9c2a7e1b3d5f60; theme=dark\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
\r\n";

/// One full server handshake over `chunks`; returns the response length.
fn handshake<'a>(chunks: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) -> usize {
    let mut reader = HeadReader::new(HandshakeLimits::default());
    for chunk in chunks {
        let Ok(Some((head, _used))) = reader.push(chunk) else {
            continue;
        };
        let Ok(RequestKind::WebSocket { key }) = classify(&head) else {
            return 0;
        };
        let protocol = head.protocols().find(|p| *p == "chat");
        out.clear();
        write_accept_response(out, &key, protocol, &[]);
        return out.len();
    }
    0
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    let mut out = Vec::with_capacity(256);
    assert!(handshake(std::iter::once(BROWSER_REQUEST), &mut out) > 0);
    let chunk = BROWSER_REQUEST.len().div_ceil(8);
    assert!(handshake(BROWSER_REQUEST.chunks(chunk), &mut out) > 0);

    group.bench_function("browser_one_push", |b| {
        b.iter(|| handshake(std::iter::once(black_box(BROWSER_REQUEST)), &mut out))
    });
    group.bench_function("browser_8_chunks", |b| {
        b.iter(|| handshake(black_box(BROWSER_REQUEST).chunks(chunk), &mut out))
    });
    group.finish();

    let mut parts = c.benchmark_group("handshake_parts");
    parts.bench_function("read_head", |b| {
        b.iter(|| {
            HeadReader::new(HandshakeLimits::default())
                .push(black_box(BROWSER_REQUEST))
                .map(|head| head.map(|(head, used)| head.header_count() + used))
        })
    });
    let (head, _) = HeadReader::default()
        .push(BROWSER_REQUEST)
        .ok()
        .flatten()
        .expect("the sample request is complete");
    parts.bench_function("classify", |b| {
        b.iter(|| classify(black_box(&head)).is_ok())
    });
    parts.bench_function("accept_key", |b| {
        b.iter(|| accept_key_bytes(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
    // Baseline: httparse alone over the same bytes, with nothing owned.
    parts.bench_function("httparse_only", |b| {
        b.iter(|| {
            let mut h = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Request::new(&mut h);
            r.parse(black_box(BROWSER_REQUEST)).map(|s| s.is_complete())
        })
    });
    parts.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
