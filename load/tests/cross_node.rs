//! Cross-node broadcast (`--publish-to`): publishers on one in-process wavecore server,
//! subscribers on another, the topic shared through a real Redis (the bridge). Every
//! subscriber must see every publisher's messages in order, none lost.
//!
//! Redis: `WAVECORE_REDIS_URL` (`.ci/run` sets it), else a `redis-server` started
//! here; without either the test skips with a message (fails under CI).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wavecore::bridge::RedisBridge;
use wavecore::{Conn, Handler, Message, Server};
use wavecore_load::{Config, Mode, Target};

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

/// A redis-server of this test's own, killed when dropped.
struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Redis to use, and the process to stop after, if this test started one.
fn redis() -> Option<(String, Option<OwnRedis>)> {
    if let Ok(url) = std::env::var("WAVECORE_REDIS_URL") {
        return Some((url, None));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let started = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = started else {
        panic!("no WAVECORE_REDIS_URL and no redis-server: apt-get install redis-server");
    };
    let own = OwnRedis(child);
    let up = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "redis-server did not start");
    Some((format!("redis://127.0.0.1:{port}"), Some(own)))
}

fn server(url: &str) -> Server {
    let prefix = format!("wavecore-load-test-{}:", std::process::id());
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(2)
        .max_backpressure(64 << 20)
        .bridge(RedisBridge::new(url).unwrap().channel_prefix(prefix))
        .start(wavecore::accept_all(|| Room))
        .expect("server starts")
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn publishers_on_one_server_reach_subscribers_on_another() {
    let Some((url, _own)) = redis() else {
        return;
    };
    let subscribers = server(&url);
    let publishers = server(&url);
    let addr = subscribers.local_addr();
    let cfg = Config {
        mode: Mode::Broadcast,
        addr,
        host: addr.to_string(),
        path: "/broadcast".into(),
        publish_to: Some(Target {
            addr: publishers.local_addr(),
            host: publishers.local_addr().to_string(),
        }),
        connections: 50,
        publishers: 2,
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
    assert_eq!(report.established, 50 + 2);
    assert!(t.messages > 50, "{}", report.summary());
    assert!(report.summary().contains("publishers on"));
    let bridged = subscribers.handle().stats().bridge.expect("a bridge");
    assert!(bridged.messages_in > 0 && bridged.lost == 0, "{bridged:?}");
    for server in [subscribers, publishers] {
        server.handle().shutdown();
        server.join().expect("clean stop");
    }
}
