//! `soak --shutdown`: the server is told to stop (SIGTERM) while the load is on, and
//! every healthy connection must get Close 1001 after every message it was owed.
//!
//! The server runs in this test process with `shutdown_on_signals`, so the soak's
//! `SIGTERM` to this process stops the server gracefully (signal-hook catches it); the
//! test is alone in its binary so no other test sees the signal.

mod common;

use wavecore::Server;

#[test]
fn a_shutdown_under_load_closes_every_healthy_connection_with_1001_after_what_it_was_owed() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(2)
        .shutdown_on_signals(true)
        .start(common::route)
        .expect("server starts");
    let cfg = wavecore_load::Config {
        shutdown: true,
        server_pid: Some(std::process::id()),
        ..common::soak(server.local_addr())
    };
    let report = wavecore_load::soak::run(&cfg).expect("the soak runs");
    common::assert_healthy(&report);
    let summary = report.summary();
    assert_eq!(
        report.broadcast.tally.closed_1001,
        (cfg.connections + cfg.publishers) as u64,
        "{summary}"
    );
    assert_eq!(report.echo.tally.closed_1001, cfg.echo as u64, "{summary}");
    server.join().expect("the server stopped cleanly");
}
