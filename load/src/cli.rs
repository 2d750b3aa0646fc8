//! The command line, `wavecore-load MODE [ADDR] [options]`: parsed by clap and turned
//! into a [`Config`]. The `--help` text is the doc comments below.

use std::net::ToSocketAddrs;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, Mode, Target};

/// Shown after the options in `--help`.
const AFTER_HELP: &str = "\
Rates count one direction: an echo is one message, a broadcast one delivery per subscriber;
MB/s is payload received. Latency is reported in microseconds (p50, p99, p99.9, max).
Exit status: 0; 1 when any error was counted; 2 when the run could not start (bad
arguments, or no connection opened: refused, or no handshake answer within 10 s, said at
once with the first error); 130 when interrupted (Ctrl-C prints the partial summary first;
a second Ctrl-C exits at once).

Examples:
  wavecore-load echo 127.0.0.1:9001 -c 100 -p 1 -s 32 -d 10
  wavecore-load broadcast 127.0.0.1:9001 -c 1000 --publishers 4 --rate 100 -s 64
  wavecore-load broadcast 127.0.0.1:9001 -c 1000 --rate 200 -s 1024 --json-payload --deflate
  wavecore-load broadcast 127.0.0.1:9001 --publish-to 127.0.0.1:9002 -c 1000 --rate 1000
  wavecore-load connect 127.0.0.1:9001 -c 10000 -d 5 --server-pid 1234 --json
  wavecore-load echo wss://localhost:9443 --tls-ca cert.pem -c 100 -s 32 -d 10
  wavecore-load soak 127.0.0.1:9001 -c 12000 --publishers 4 --rate 20 --echo 4000 \\
      --slow 1000 --churn 100 -t 2 -d 600 --server-pid 1234";

/// Load generator for WebSocket servers: echo, broadcast and idle-connection workloads,
/// every payload checked.
#[derive(Debug, Parser)]
#[command(name = "wavecore-load", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The workload
    #[arg(value_enum, value_name = "MODE")]
    pub mode: Mode,

    /// The server, as host:port[/path] (host:port is also sent as the Host header), or
    /// a ws:// or wss:// URL (wss: TLS on every connection; a path is the request path)
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:9001")]
    pub addr: String,

    /// wss://: trust the certificates in this PEM file (a CA, or the server's own
    /// self-signed certificate) instead of the Mozilla roots
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// wss://: accept any server certificate (benchmarks against a self-signed server;
    /// never against a server you do not run)
    #[arg(long)]
    pub tls_insecure: bool,

    /// Connections; in broadcast mode, subscribers
    #[arg(short = 'c', long, value_name = "N", default_value_t = 1)]
    pub connections: usize,

    /// Echo: messages in flight per connection
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1)]
    pub in_flight: usize,

    /// Payload size in bytes (echo: at least 24; broadcast: at least 32)
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 32)]
    pub size: usize,

    /// Send binary messages instead of text
    #[arg(long)]
    pub binary: bool,

    /// Measured window in seconds, fractions allowed (connect: how long connections are held)
    #[arg(short = 'd', long, value_name = "SECS", default_value = "10", value_parser = seconds)]
    pub duration: Duration,

    /// Seconds the workload runs before the window opens
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = seconds)]
    pub warmup: Duration,

    /// Event-loop threads, each with its share of the connections
    #[arg(short = 't', long, value_name = "N", default_value_t = 1)]
    pub threads: usize,

    /// Broadcast: publishing connections (besides the subscribers)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub publishers: usize,

    /// Broadcast: messages per second per publisher (msgs/s); 0 sends as fast as --window allows
    #[arg(long, value_name = "MSGS_PER_S", default_value_t = 0.0)]
    pub rate: f64,

    /// Broadcast at --rate 0: messages per publisher not yet delivered to every subscriber
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub window: usize,

    /// Request path [default: / (echo, connect), /broadcast (broadcast)]
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// Plain TCP peer: no handshake, no framing; a message is --size raw bytes
    /// (broadcast needs exactly one publisher)
    #[arg(long)]
    pub raw: bool,

    /// Broadcast across servers: the publishers connect to this server (host:port), the
    /// subscribers to ADDR; the servers must share the topic through a bridge (e.g.
    /// `broadcast --redis URL`). The workload starts 250 ms after the last connection
    /// opened, so the subscribers' server has subscribed on the broker
    #[arg(long, value_name = "ADDR")]
    pub publish_to: Option<String>,

    /// Report this process's CPU seconds (and microseconds per message) over the window,
    /// and its resident memory (KiB) before and after
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Print one JSON object on stdout instead of the text summary
    #[arg(long)]
    pub json: bool,

    /// Show progress on stderr even when it is not a terminal, as a line rewritten once a
    /// second (on a terminal a live bar is always shown)
    #[arg(long)]
    pub progress: bool,

    /// Soak: echo connections (one message in flight each) beside the subscribers
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub echo: usize,

    /// Soak: slow consumers, subscribers on /broadcast that never read
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub slow: usize,

    /// Soak: connections per second opened on /broadcast, held a second and closed
    #[arg(long, value_name = "N_PER_S", default_value_t = 0)]
    pub churn: usize,

    /// Soak: end with SIGTERM to --server-pid under load; every healthy connection
    /// must then get Close 1001 after every message it was owed
    #[arg(long)]
    pub shutdown: bool,
    /// Offer permessage-deflate (RFC 7692, as browsers do); where the server accepts
    /// it, messages are sent compressed and compressed ones inflated
    #[arg(long)]
    pub deflate: bool,

    /// Payload filler is JSON text (records with varying numbers), which compresses
    /// like real JSON, instead of the alphabet repeated
    #[arg(long)]
    pub json_payload: bool,
}

/// Parses a number of seconds, fractions allowed.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

impl Cli {
    /// The run these arguments describe: resolves the address, fills in the
    /// mode-dependent path and checks that the settings fit together.
    pub fn into_config(mut self) -> Result<Config, String> {
        let mut url_path = None;
        let mut tls = None;
        if self.addr.contains("://") {
            let url = wavecore::client::WsUrl::parse(&self.addr)
                .map_err(|e| format!("{}: {e}", self.addr))?;
            if url.secure {
                tls = Some(crate::tls::TlsTarget::new(
                    url.host(),
                    self.tls_ca.as_deref(),
                    self.tls_insecure,
                )?);
            }
            url_path = (url.path != "/").then_some(url.path);
            self.addr = url.authority;
        } else {
            if self.tls_ca.is_some() || self.tls_insecure {
                return Err("--tls-ca and --tls-insecure need a wss:// URL".into());
            }
            // host:port/path, without a scheme: ws://.
            if let Some(slash) = self.addr.find('/') {
                url_path = Some(self.addr[slash..].to_owned());
                self.addr.truncate(slash);
            }
        }
        let addr = self
            .addr
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "{}: {e} (give host:port, host:port/path, or a ws:// or wss:// URL)",
                    self.addr
                )
            })?
            .next()
            .ok_or_else(|| format!("{}: no address", self.addr))?;
        let default_path = match self.mode {
            Mode::Broadcast | Mode::Soak => "/broadcast",
            Mode::Echo | Mode::Connect => "/",
        };
        let publish_to = match self.publish_to {
            None => None,
            Some(host) => {
                let addr = host
                    .to_socket_addrs()
                    .map_err(|e| format!("{host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host}: no address"))?;
                Some(Target { addr, host })
            }
        };
        let cfg = Config {
            mode: self.mode,
            addr,
            host: self.addr,
            path: self
                .path
                .or(url_path)
                .unwrap_or_else(|| default_path.into()),
            connections: self.connections,
            in_flight: self.in_flight,
            size: self.size,
            binary: self.binary,
            duration: self.duration,
            warmup: self.warmup,
            threads: self.threads,
            publishers: self.publishers,
            rate: self.rate,
            window: self.window,
            raw: self.raw,
            publish_to,
            server_pid: self.server_pid,
            json: self.json,
            progress: self.progress,
            echo: self.echo,
            slow: self.slow,
            churn: self.churn,
            stall: false,
            shutdown: self.shutdown,
            signal_pid: None,
            deflate: self.deflate,
            json_payload: self.json_payload,
            tls,
        };
        // A soak's parts may be empty (no subscribers, only echo connections, say),
        // the whole run may not.
        let any = match cfg.mode {
            Mode::Soak => cfg.connections + cfg.echo + cfg.slow + cfg.churn,
            _ => cfg.connections,
        };
        if any == 0 {
            return Err(match cfg.mode {
                Mode::Soak => "a soak needs connections: -c, --echo, --slow or --churn",
                _ => "--connections must be at least 1: a run with no connection measures nothing",
            }
            .into());
        }
        if cfg.shutdown && (cfg.mode != Mode::Soak || cfg.server_pid.is_none()) {
            return Err("--shutdown is for a soak with --server-pid".into());
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests;
