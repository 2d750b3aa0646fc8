//! The soak's slow consumers against a server whose backpressure limit they reach:
//! the soak must report them closed by the server, and the healthy parts untouched.

mod common;

use wavecore::Server;

#[test]
fn slow_consumers_past_the_backpressure_limit_are_reported_closed_by_the_server() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        // Far below what 2 s of broadcasts (2 x 500 messages/s of 4 KiB) come to for a
        // consumer that reads nothing through a small window, once the kernel's
        // socket buffers on both sides are full.
        .max_backpressure(256 << 10)
        .start(common::route)
        .expect("server starts");
    let cfg = wavecore_load::Config {
        connections: 10,
        rate: 500.0,
        size: 4096,
        slow: 10,
        server_pid: Some(std::process::id()),
        ..common::soak(server.local_addr())
    };
    let report = wavecore_load::soak::run(&cfg).expect("the soak runs");
    let summary = report.summary();
    assert_eq!(report.errors(), 0, "{summary}");
    assert_eq!(report.broadcast.tally.lost, 0, "{summary}");
    assert!(report.broadcast.tally.messages > 0, "{summary}");
    assert_eq!(report.slow.tally.server_closed, 10, "{summary}");
    assert_eq!(
        server.handle().stats().backpressure_closes,
        10,
        "the server closed exactly the slow consumers: {summary}"
    );
    server.handle().shutdown();
    server.join().expect("the server stops cleanly");
}
