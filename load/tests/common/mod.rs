//! What the soak tests share: the server a soak expects (`/broadcast` subscribes each
//! connection to one topic and publishes what it receives there; any other path
//! echoes) and a soak's settings.

#![allow(dead_code)] // Each test crate uses a different part.

use std::net::SocketAddr;
use std::time::Duration;

use wavecore::{Conn, Handler, Message, Request, Upgrade};
use wavecore_load::soak::SoakReport;
use wavecore_load::{Config, Mode};

/// A connection of the soak's server.
pub enum Route {
    /// On `/broadcast`: subscribed to "room", publishes there.
    Room,
    /// Anywhere else: echoes.
    Echo,
}

impl Handler for Route {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Route::Room = self {
            conn.subscribe("room");
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match self {
            Route::Room => {
                conn.publish("room", message);
            }
            Route::Echo => {
                conn.send(message);
            }
        }
    }
}

/// The soak server's service.
pub fn route(request: &Request<'_>) -> Upgrade<Route> {
    if request.path() == "/broadcast" {
        Upgrade::accept(Route::Room)
    } else {
        Upgrade::accept(Route::Echo)
    }
}

/// A short soak against `addr`: 100 subscribers, 2 publishers at 200 messages/s each,
/// 20 echo connections, for 2 seconds; no slow consumers, no churn.
pub fn soak(addr: SocketAddr) -> Config {
    Config {
        mode: Mode::Soak,
        addr,
        host: addr.to_string(),
        path: "/broadcast".into(),
        connections: 100,
        publishers: 2,
        rate: 200.0,
        echo: 20,
        size: 64,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(200),
        threads: 2,
        ..Config::default()
    }
}

/// What every soak test requires of the healthy parts: no error, nothing lost, and
/// something delivered (or the checks would hold vacuously).
pub fn assert_healthy(report: &SoakReport) {
    let summary = report.summary();
    assert_eq!(report.errors(), 0, "{summary}");
    assert_eq!(report.broadcast.tally.lost, 0, "{summary}");
    assert!(report.broadcast.tally.messages > 0, "{summary}");
}
