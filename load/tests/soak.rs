//! The soak's slow consumers against a server that ends them: the soak must report
//! each one closed by the server, and the healthy parts untouched.

mod common;

use std::time::Duration;

use wavecore::Server;

#[test]
fn slow_consumers_the_server_ends_are_reported_closed_by_it() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        // A slow consumer reads nothing, so it never answers a ping: the server drops
        // it as idle after the pong timeout. The healthy connections answer (the load
        // generator does, as it reads), with a second to spare however busy the
        // machine; the run's 2 s leave room for one ping and its timeout.
        .ping_interval(Some(Duration::from_millis(300)))
        .pong_timeout(Duration::from_secs(1))
        .start(common::route)
        .expect("server starts");
    let cfg = wavecore_load::Config {
        slow: 10,
        server_pid: Some(std::process::id()),
        ..common::soak(server.local_addr())
    };
    let report = wavecore_load::soak::run(&cfg).expect("the soak runs");
    common::assert_healthy(&report);
    let summary = report.summary();
    assert_eq!(report.slow.tally.server_closed, 10, "{summary}");
    assert_eq!(
        server.handle().stats().idle_timeouts,
        10,
        "the server ended exactly the slow consumers: {summary}"
    );
    server.handle().shutdown();
    server.join().expect("the server stops cleanly");
}
