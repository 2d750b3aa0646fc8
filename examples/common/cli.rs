//! The command line the examples share, parsed by clap: where to listen, TLS, reactors
//! and backend ([`ServerArgs`]), the Redis bridge ([`BridgeArgs`], broadcast and chat
//! only), and what a person reads when the server cannot start ([`fail`]).
//!
//! Each example's `Cli` flattens these groups, so an option added here reaches every
//! example that takes the group, with its `--help` line.

#![allow(dead_code, reason = "each example uses part of it")]

use std::io::{self, ErrorKind, IsTerminal};
use std::net::ToSocketAddrs;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use wavecore::{Backend, ServerBuilder};

/// Where the server listens, how it runs, and its TLS certificate.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where to listen: host:port (127.0.0.1:9001, 0.0.0.0:9001, [::1]:9001) or a
    /// port alone (on 127.0.0.1) [default: 127.0.0.1:9001]
    #[arg(value_name = "ADDR", value_parser = listen_addr)]
    addr_arg: Option<String>,

    /// Where to listen, as ADDR [default: 127.0.0.1:9001]
    #[arg(long = "addr", value_name = "ADDR", value_parser = listen_addr, conflicts_with = "addr_arg")]
    addr_opt: Option<String>,

    /// Listen on this port of 127.0.0.1 (or of ADDR's host)
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,

    /// Serve TLS (wss://, https://) with this PEM certificate chain (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Reactor threads [default: one per core]
    #[arg(long, env = "WORKERS", value_name = "N")]
    pub workers: Option<NonZeroUsize>,

    /// The event source the reactors run on: auto is io_uring where the kernel allows
    /// it, else epoll
    #[arg(
        long,
        env = "WAVECORE_BACKEND",
        value_enum,
        ignore_case = true,
        default_value = "epoll"
    )]
    pub backend: BackendArg,

    #[command(flatten)]
    pub admission: AdmissionArgs,
}

/// Admission control (docs/guide.md, the security section): all off unless given.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Admission control (all off unless given)")]
pub struct AdmissionArgs {
    /// Most connections open at once from one client address (an IPv6 /64 counts as
    /// one); past it, 429 with Retry-After
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<u32>,

    /// New connections per second from one client address (a burst of as many); past
    /// it, 429 with Retry-After
    #[arg(long, value_name = "N")]
    pub max_connection_rate_per_ip: Option<f64>,

    /// Messages (control frames included) per second per connection, with a burst of
    /// as many; past it the connection is closed with 1008
    #[arg(long, value_name = "N")]
    pub message_rate: Option<f64>,

    /// Only pages of this origin may open WebSockets (repeatable; exact, like
    /// https://example.com, or a pattern, like *.example.com); others get 403
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,

    /// Read the PROXY protocol header (v1 or v2) that a load balancer sends first, from
    /// the --trusted-proxy networks only
    #[arg(long, requires = "trusted_proxies")]
    pub proxy_protocol: bool,

    /// A network the load balancer or reverse proxy connects from, such as
    /// 10.0.0.0/8 (repeatable): only these may send a PROXY header or forwarding
    /// headers
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = clap::value_parser!(wavecore::admission::Cidr))]
    pub trusted_proxies: Vec<wavecore::admission::Cidr>,

    /// Take the client's address from Forwarded / X-Forwarded-For sent by a
    /// --trusted-proxy
    #[arg(long)]
    pub forwarded_headers: bool,
}

impl AdmissionArgs {
    /// `builder` with the admission settings given.
    pub fn apply(&self, mut builder: ServerBuilder) -> ServerBuilder {
        if let Some(max) = self.max_connections_per_ip {
            builder = builder.max_connections_per_address(max);
        }
        if let Some(rate) = self.max_connection_rate_per_ip {
            builder =
                builder.connection_rate_per_address(wavecore::admission::Rate::per_second(rate));
        }
        if let Some(rate) = self.message_rate {
            builder = builder.message_rate(wavecore::admission::MessageRate::messages(rate));
        }
        for origin in &self.allowed_origins {
            builder = builder.allow_origin(origin);
        }
        for network in &self.trusted_proxies {
            builder = builder.trusted_proxy(*network);
        }
        builder
            .proxy_protocol(self.proxy_protocol)
            .forwarded_headers(self.forwarded_headers)
    }
}

/// `--backend`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Readiness through epoll (mio)
    Epoll,
    /// Completions through io_uring (Linux 6.0 or later)
    #[value(name = "io_uring", alias = "iouring", alias = "uring")]
    IoUring,
    /// io_uring where the kernel allows it, else epoll
    Auto,
}

/// The Redis bridge: topics shared with the other servers on one Redis.
#[derive(Debug, clap::Args)]
pub struct BridgeArgs {
    /// Share topics with every other server on this Redis (redis://HOST:PORT)
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

/// Parses an address to listen on: `host:port`, or a port alone (on 127.0.0.1).
fn listen_addr(text: &str) -> Result<String, String> {
    if text.parse::<u16>().is_ok() {
        return Ok(format!("127.0.0.1:{text}"));
    }
    match text.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(text.to_owned()),
        _ => Err(
            "not an address to listen on: give host:port (127.0.0.1:9001, \
                  0.0.0.0:9001, [::1]:9001) or a port (9001)"
                .into(),
        ),
    }
}

impl ServerArgs {
    /// The address to listen on, `host:port`.
    pub fn addr(&self) -> String {
        let addr = self
            .addr_opt
            .as_deref()
            .or(self.addr_arg.as_deref())
            .unwrap_or("127.0.0.1:9001");
        match self.port {
            // The host part of `addr` (IPv6 brackets kept) with the new port.
            Some(port) => match addr.rsplit_once(':') {
                Some((host, _)) => format!("{host}:{port}"),
                None => format!("127.0.0.1:{port}"),
            },
            None => addr.to_owned(),
        }
    }

    /// `builder` bound to [`addr`](Self::addr), with the reactors, backend and TLS of
    /// the command line.
    pub fn apply(&self, mut builder: ServerBuilder) -> ServerBuilder {
        builder = builder.bind(self.addr()).backend(match self.backend {
            BackendArg::Epoll => Backend::Epoll,
            BackendArg::IoUring => Backend::IoUring,
            BackendArg::Auto => Backend::Auto,
        });
        if let Some(workers) = self.workers {
            builder = builder.workers(workers.get());
        }
        builder = self.admission.apply(builder);
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => builder.tls_pem_files(cert, key),
            _ => builder,
        }
    }

    /// `ws` or `wss`, for the start line.
    pub fn ws_scheme(&self) -> &'static str {
        if self.tls_cert.is_some() { "wss" } else { "ws" }
    }

    /// `http` or `https`, for the start line.
    pub fn http_scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Logs to stdout at `RUST_LOG` (default `info`), in colour only on a terminal (a file
/// or a journal gets no escape codes).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(io::stdout().is_terminal())
        .init();
}

/// Tells a person on stderr that `program` could not start, why (`error` names the
/// address or file, except the kernel's io_uring refusals) and what to do about it;
/// returns the exit status (1).
pub fn fail(program: &str, error: &io::Error, args: &ServerArgs) -> ExitCode {
    let text = error.to_string();
    let uring = args.backend == BackendArg::IoUring
        && !text.contains("listen")
        && !text.contains("TLS")
        && !text.contains("Redis");
    if uring {
        eprintln!("{program}: cannot start on io_uring: {error}");
    } else {
        eprintln!("{program}: cannot start: {error}");
    }
    if let Some(hint) = hint(error, uring) {
        eprintln!("  {hint}");
    }
    ExitCode::FAILURE
}

/// What to do about a start error, where we know.
fn hint(error: &io::Error, uring: bool) -> Option<&'static str> {
    let text = error.to_string();
    Some(match error.kind() {
        ErrorKind::AddrInUse => {
            "is another server running there? give another address with --addr or --port"
        }
        ErrorKind::AddrNotAvailable => {
            "that address is not one of this machine's: try 127.0.0.1:PORT or 0.0.0.0:PORT"
        }
        ErrorKind::PermissionDenied if text.contains("listen on") => {
            "ports below 1024 need privileges: use a higher --port"
        }
        _ if text.contains("TLS") => {
            "--tls-cert and --tls-key take PEM files; README.md (TLS) shows how to make a \
             self-signed pair"
        }
        _ if uring => {
            "io_uring is unavailable here (old kernel, seccomp, sysctl or memlock limit): \
             use --backend epoll or --backend auto"
        }
        _ if text.contains("redis") || text.contains("Redis") => {
            "check the --redis URL (redis://HOST:PORT) and that the Redis server is running"
        }
        _ => return None,
    })
}
