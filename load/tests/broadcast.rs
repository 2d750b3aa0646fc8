//! Broadcast mode against a small in-process wavecore topic server: every
//! subscriber must see every publisher's messages, in order, with none lost.

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
        assert!(t.messages > 50, "{}", report.summary());
        if rate > 0.0 {
            // 2 publishers x 500/s x 50 subscribers over one second, give or take.
            let expected = 2.0 * 500.0 * 50.0;
            let got = t.messages as f64;
            assert!((0.8 * expected..1.2 * expected).contains(&got), "{got}");
        }
    }
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}
