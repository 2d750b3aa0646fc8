//! What to run: the workload, its shape and the target (see [`crate::cli`] for the
//! command line that fills it in).

use std::net::SocketAddr;
use std::time::Duration;

use crate::payload::{BROADCAST_HEADER, ECHO_HEADER};

/// The workload. The doc comment of each variant is its entry in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each of --connections connections keeps --in-flight messages of --size bytes in
    /// flight and checks every echo (length, connection, order, content); latency: the
    /// round trip
    Echo,
    /// --publishers publishers send numbered, timestamped messages to /broadcast (at --rate
    /// msgs/s each, or as fast as --window allows) and each of --connections subscribers
    /// checks every publisher's order (gaps count as lost, repeats as out of order);
    /// latency: from the send time in the payload to delivery
    Broadcast,
    /// Opens --connections connections and holds them idle for --duration seconds; with
    /// --server-pid, reports the server's memory per connection: on average (all of its
    /// growth over the open connections), and at the margin (the growth from the first
    /// half of the connections to all of them, over the second half, which leaves out
    /// what the server spends once, however many connect)
    Connect,
    /// All at once against a server like examples/broadcast, for --duration seconds:
    /// --connections broadcast subscribers and --publishers publishers (checked for
    /// loss and order), --echo echo connections (every reply checked), --slow slow
    /// consumers on /broadcast that never read, and --churn connections per second
    /// opened and closed; with --server-pid, the server's memory before, at its
    /// highest, and after the clients left
    Soak,
}

/// A complete run description.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The workload.
    pub mode: Mode,
    /// The server's address.
    pub addr: SocketAddr,
    /// The `Host` header value (the address as given).
    pub host: String,
    /// The request path (`/` for echo and connect, `/broadcast` for broadcast).
    pub path: String,
    /// Connections (subscribers in broadcast mode).
    pub connections: usize,
    /// Messages in flight per connection (echo).
    pub in_flight: usize,
    /// Payload size in bytes.
    pub size: usize,
    /// Binary messages instead of text.
    pub binary: bool,
    /// Length of the measured window.
    pub duration: Duration,
    /// Time the workload runs before the window opens.
    pub warmup: Duration,
    /// Event-loop threads.
    pub threads: usize,
    /// Publishing connections (broadcast).
    pub publishers: usize,
    /// Messages per second per publisher; 0 publishes as fast as the window allows.
    pub rate: f64,
    /// Messages per publisher whose deliveries may be outstanding (rate 0).
    pub window: usize,
    /// Plain TCP: no handshake and no framing; messages are `size` raw bytes.
    pub raw: bool,
    /// Cross-node broadcast: the publishers connect to this server, the subscribers to
    /// `addr`; the two servers share the topic through a bridge (Redis, say).
    pub publish_to: Option<Target>,
    /// The server process whose CPU time and memory are reported.
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of the text summary.
    pub json: bool,
    /// Show progress on stderr even when it is not a terminal (a bar is always shown
    /// on a terminal).
    pub progress: bool,
    /// Soak: echo connections beside the broadcast subscribers.
    pub echo: usize,
    /// Soak: slow consumers (subscribers that never read).
    pub slow: usize,
    /// Soak: connections opened and closed per second.
    pub churn: usize,
    /// Stop reading once a connection is open (the soak's slow consumers).
    pub stall: bool,
    /// Soak: end with a graceful shutdown of the server (`SIGTERM` to `server_pid`)
    /// under load, and check that every healthy connection gets Close 1001 after every
    /// message it was owed (see [`crate::shutdown`]).
    pub shutdown: bool,
    /// Send the shutdown's signal to this process at the end of this run's window (the
    /// soak sets it on its broadcast part).
    pub signal_pid: Option<u32>,
    /// Offer permessage-deflate (RFC 7692) and, where the server accepts it, send
    /// messages compressed and inflate compressed ones.
    pub deflate: bool,
    /// Payload filler is JSON text (records with varying numbers) instead of the
    /// alphabet repeated, so compression ratios are realistic.
    pub json_payload: bool,
    /// `wss://`: TLS on every connection (the publishers' too).
    pub tls: Option<crate::tls::TlsTarget>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Echo,
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            host: "127.0.0.1:9001".into(),
            path: "/".into(),
            connections: 1,
            in_flight: 1,
            size: 32,
            binary: false,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            threads: 1,
            publishers: 1,
            rate: 0.0,
            window: 32,
            raw: false,
            publish_to: None,
            server_pid: None,
            json: false,
            progress: false,
            echo: 0,
            slow: 0,
            churn: 0,
            stall: false,
            shutdown: false,
            signal_pid: None,
            deflate: false,
            json_payload: false,
            tls: None,
        }
    }
}

impl Config {
    /// Whether connections open in two halves, with the server's memory measured after
    /// each (connect mode with a server to measure): the first half, then, once the
    /// server has been idle as long as it will be at the end, the rest.
    pub fn staged(&self) -> bool {
        self.mode == Mode::Connect && self.server_pid.is_some()
    }

    /// Publishing connections: `publishers` in broadcast mode, none otherwise.
    pub fn publishing(&self) -> usize {
        if matches!(self.mode, Mode::Broadcast | Mode::Soak) {
            self.publishers
        } else {
            0
        }
    }

    /// Where the publishers connect: `publish_to` (cross-node broadcast), else `addr`.
    pub fn publisher_target(&self) -> (SocketAddr, &str) {
        match &self.publish_to {
            Some(target) => (target.addr, &target.host),
            None => (self.addr, &self.host),
        }
    }

    /// The target as a URL, for reports: `ws://host:port/path`, `wss://...`, or
    /// `tcp://host:port` for a raw run.
    pub fn url(&self) -> String {
        if self.raw {
            return format!("tcp://{}", self.host);
        }
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host, self.path)
    }

    /// Checks that the settings fit together.
    pub fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err(
                "--duration must be more than 0 seconds: the window is what is \
                        measured"
                    .into(),
            );
        }
        let min = match self.mode {
            Mode::Echo => ECHO_HEADER,
            Mode::Broadcast | Mode::Soak => BROADCAST_HEADER,
            Mode::Connect => 0,
        };
        if self.size < min {
            return Err(format!("--size must be at least {min} in this mode"));
        }
        if self.threads == 0 || self.in_flight == 0 || self.publishers == 0 || self.window == 0 {
            return Err(
                "--threads, --in-flight, --publishers and --window must be positive".into(),
            );
        }
        if self.mode == Mode::Soak && self.raw {
            return Err("--raw does not apply to a soak".into());
        }
        if self.mode == Mode::Broadcast && self.raw && self.publishers != 1 {
            // A raw fan-out server forwards whatever bytes it reads, so messages of two
            // publishers could interleave mid-message.
            return Err("--raw broadcast supports exactly one publisher".into());
        }
        if self.tls.is_some() && (self.raw || self.publish_to.is_some()) {
            return Err("wss:// does not apply to --raw or --publish-to".into());
        }
        if self.publish_to.is_some() && (self.mode != Mode::Broadcast || self.raw) {
            return Err("--publish-to is for broadcast mode over WebSocket".into());
        }
        Ok(())
    }
}

/// Another server, for cross-node broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its address.
    pub addr: SocketAddr,
    /// The `Host` header value (the address as given).
    pub host: String,
}
