//! What to run: the workload, its shape and the target, parsed from the command line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::payload::{BROADCAST_HEADER, ECHO_HEADER};

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every connection sends messages and checks the echoes.
    Echo,
    /// Subscribers receive what publishers send through the server.
    Broadcast,
    /// Connections are opened and held idle.
    Connect,
}

/// A complete run description.
#[derive(Debug, Clone)]
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
    /// The server process whose CPU time and memory are reported.
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of the text summary.
    pub json: bool,
    /// Print a progress line every second (default: when stderr is a terminal).
    pub progress: bool,
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
            server_pid: None,
            json: false,
            progress: false,
        }
    }
}

/// Command-line help.
pub const USAGE: &str = "\
wavecore-load MODE [ADDR] [options]

MODE: echo | broadcast | connect          ADDR: host:port (default 127.0.0.1:9001)

  -c, --connections N   connections, or subscribers in broadcast mode (default 1)
  -p, --in-flight N     echo: messages in flight per connection (default 1)
  -s, --size BYTES      payload size (echo: default 32, >= 24; broadcast: 32, >= 32)
      --binary          binary messages (default text)
  -d, --duration SECS   measured window (default 10; connect: hold time)
      --warmup SECS     run before measuring (default 1)
  -t, --threads N       event-loop threads (default 1)
      --publishers N    broadcast: publishing connections (default 1)
      --rate R          broadcast: msgs/s per publisher, 0 = as fast as the window allows
      --window N        broadcast: undelivered messages allowed per publisher (default 32)
      --path PATH       request path (default / or /broadcast)
      --raw             plain TCP peer: no handshake, no framing
      --server-pid PID  report that process's CPU time and RSS
      --json            one JSON object on stdout
      --progress        force the per-second progress line (default: stderr is a tty)
";

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
}

fn seconds(flag: &str, v: Option<String>) -> Result<Duration, String> {
    let secs: f64 = value(flag, v)?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag}: bad duration"))
}

impl Config {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut cfg = Config::default();
        let mut mode = None;
        let mut addr = None;
        let mut path = None;
        let mut size = None;
        let mut args = args.into_iter().flat_map(|a| {
            if a.starts_with("--") {
                if let Some((flag, v)) = a.split_once('=') {
                    return vec![flag.to_owned(), v.to_owned()];
                }
            }
            vec![a]
        });
        while let Some(arg) = args.next() {
            let flag = arg.as_str();
            match flag {
                "-c" | "--connections" => cfg.connections = value(flag, args.next())?,
                "-p" | "--in-flight" => cfg.in_flight = value(flag, args.next())?,
                "-s" | "--size" => size = Some(value(flag, args.next())?),
                "--binary" => cfg.binary = true,
                "-d" | "--duration" => cfg.duration = seconds(flag, args.next())?,
                "--warmup" => cfg.warmup = seconds(flag, args.next())?,
                "-t" | "--threads" => cfg.threads = value(flag, args.next())?,
                "--publishers" => cfg.publishers = value(flag, args.next())?,
                "--rate" => cfg.rate = value(flag, args.next())?,
                "--window" => cfg.window = value(flag, args.next())?,
                "--path" => path = Some(value::<String>(flag, args.next())?),
                "--raw" => cfg.raw = true,
                "--server-pid" => cfg.server_pid = Some(value(flag, args.next())?),
                "--json" => cfg.json = true,
                "--progress" => cfg.progress = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                _ if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
                "echo" if mode.is_none() => mode = Some(Mode::Echo),
                "broadcast" if mode.is_none() => mode = Some(Mode::Broadcast),
                "connect" if mode.is_none() => mode = Some(Mode::Connect),
                _ if mode.is_some() && addr.is_none() => addr = Some(flag.to_owned()),
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        cfg.mode = mode.ok_or("missing MODE (echo, broadcast or connect)")?;
        if let Some(addr) = addr {
            cfg.host = addr;
        }
        cfg.addr = cfg
            .host
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", cfg.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", cfg.host))?;
        let default_path = if cfg.mode == Mode::Broadcast {
            "/broadcast"
        } else {
            "/"
        };
        cfg.path = path.unwrap_or_else(|| default_path.into());
        cfg.size = size.unwrap_or(32);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that the settings fit together.
    pub fn validate(&self) -> Result<(), String> {
        let min = match self.mode {
            Mode::Echo => ECHO_HEADER,
            Mode::Broadcast => BROADCAST_HEADER,
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
        if self.mode == Mode::Broadcast && self.raw && self.publishers != 1 {
            // A raw fan-out server forwards whatever bytes it reads, so messages of two
            // publishers could interleave mid-message.
            return Err("--raw broadcast supports exactly one publisher".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Config, String> {
        Config::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_a_full_line() {
        let c = parse("echo 127.0.0.1:9100 -c 100 -p 4 -s 64 --binary -d 2.5 --warmup=0 --json")
            .unwrap();
        assert_eq!(c.mode, Mode::Echo);
        assert_eq!(c.addr.port(), 9100);
        assert_eq!((c.connections, c.in_flight, c.size), (100, 4, 64));
        assert!(c.binary && c.json && !c.raw);
        assert_eq!(c.duration, Duration::from_millis(2500));
        assert_eq!(c.warmup, Duration::ZERO);
        assert_eq!(c.path, "/");
        assert_eq!(parse("broadcast").unwrap().path, "/broadcast");
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(parse("").is_err());
        assert!(parse("echo -s 8").is_err());
        assert!(parse("echo --bogus").is_err());
        assert!(parse("broadcast --raw --publishers 2").is_err());
        assert!(parse("echo -c").is_err());
    }
}
