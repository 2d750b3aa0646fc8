//! Broadcast mode against a small in-process wavecore topic server: every
//! subscriber must see every publisher's messages, in order, with none lost. It
//! asserts counts and order, never rates: a slow machine delivers fewer messages,
//! not wrong ones.

use std::time::Duration;

use wavecore::{Conn, Handler, Message, Server};
use wavecore_load::{Config, Mode};

/// Subscribes every connection to one topic and publishes what it receives there.
struct Room;

impl Handler for Room {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.subscribe("room");
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.publish("room", message);
    }
}

#[test]
fn every_subscriber_sees_every_message_in_order() {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(2)
        .max_backpressure(64 << 20)
        .start(wavecore::accept_all(|| Room))
        .expect("server starts");
    let addr = server.local_addr();
    for (publishers, rate) in [(3, 0.0), (2, 500.0)] {
        let cfg = Config {
            mode: Mode::Broadcast,
            addr,
            host: addr.to_string(),
            path: "/broadcast".into(),
            connections: 50,
            publishers,
            rate,
            window: 8,
            size: 64,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            threads: 2,
            ..Config::default()
        };
        let report = wavecore_load::run(&cfg).unwrap();
        let t = &report.tally;
        assert_eq!(t.errors, 0, "{}", report.summary());
        assert_eq!((t.lost, t.out_of_order), (0, 0), "{}", report.summary());
        assert_eq!(report.established, 50 + publishers);
        // Something was delivered, or the checks above would hold vacuously.
        assert!(t.messages > 0, "{}", report.summary());
        if rate > 0.0 {
            // The pacer never runs ahead of its rate: a publisher sends at most
            // rate x (time since the workload started) + 1 messages, so a subscriber
            // cannot receive more, however fast or slow the machine is. (How close the
            // count comes to the rate is a benchmark's business, not a test's.)
            let sending = (cfg.warmup + cfg.duration).as_secs_f64();
            let most_sent = (rate * sending).floor() as u64 + 1;
            let most = publishers as u64 * most_sent * cfg.connections as u64;
            assert!(
                t.messages <= most,
                "{} > {most}: {}",
                t.messages,
                report.summary()
            );
        }
    }
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}
