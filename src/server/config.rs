//! Every knob of the server, with its default.

use std::time::Duration;

use crate::protocol::deflate::DeflateConfig;
use crate::server::admission::AdmissionConfig;

/// What happens when a send would take a connection's buffered bytes past
/// [`ServerConfig::max_backpressure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackpressurePolicy {
    /// Close the connection with 1008 ("backpressure limit"). The default: a consumer
    /// too slow to keep up is cut off rather than silently losing messages.
    #[default]
    Close,
    /// Drop the new message (the send returns [`crate::SendStatus::Dropped`]) and keep
    /// the connection; [`crate::Handler::on_drain`] tells when sending works again.
    Drop,
}

/// Which event source the reactors run on ([`ServerConfig::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Readiness through epoll (mio; kqueue on other Unixes). The default.
    #[default]
    Epoll,
    /// Completions through io_uring (Linux 6.0 or later: multishot receive into a
    /// provided-buffer ring). The start fails with the kernel's error where it is
    /// missing or forbidden (old kernel, seccomp, the `io_uring_disabled` sysctl, the
    /// locked-memory limit).
    IoUring,
    /// io_uring where the kernel allows it (probed at the start), else epoll; never
    /// fails the start for that reason.
    Auto,
}

impl Backend {
    /// The backend named by the `WAVECORE_BACKEND` environment variable (`epoll`,
    /// `io_uring` or `auto`, any case), if it is set to one of them.
    pub fn from_env() -> Option<Self> {
        Self::env_setting().ok().flatten()
    }

    /// What `WAVECORE_BACKEND` says: `Ok(None)` when it is unset, `Err` with its value
    /// when that names no backend.
    pub(crate) fn env_setting() -> Result<Option<Self>, String> {
        let Ok(name) = std::env::var("WAVECORE_BACKEND") else {
            return Ok(None);
        };
        match name.to_ascii_lowercase().as_str() {
            "epoll" => Ok(Some(Backend::Epoll)),
            "io_uring" | "iouring" | "uring" => Ok(Some(Backend::IoUring)),
            "auto" => Ok(Some(Backend::Auto)),
            _ => Err(name),
        }
    }

    /// The backend's name in logs: `epoll (mio)`, `io_uring` or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll (mio)",
            Backend::IoUring => "io_uring",
            Backend::Auto => "auto",
        }
    }
}

/// The server's limits and settings. Build one with [`crate::Server::builder`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Reactor threads. They share the accepts: by default every reactor polls one
    /// listening socket and whichever is free accepts; with `reuse_port`, each has its
    /// own socket and the kernel spreads connections over them. Default: the number of
    /// available cores.
    pub workers: usize,
    /// Largest message accepted (all fragments together); past it the connection is
    /// closed with 1009. Default 16 MiB.
    pub max_message_size: usize,
    /// Largest single frame accepted; past it, 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// Largest request head (request line and headers); past it, 431. Default 8 KiB.
    pub max_handshake_bytes: usize,
    /// Most request headers; past it, 431. Default 64.
    pub max_headers: usize,
    /// Time allowed from accept to a complete request head; then the TCP connection is
    /// dropped (slowloris protection). Default 10 s.
    pub handshake_timeout: Duration,
    /// After this long with nothing received, the server sends a ping. `None` disables
    /// automatic pings and the idle close. Default 30 s.
    pub ping_interval: Option<Duration>,
    /// After an automatic ping, the time allowed for anything (a pong or any frame) to
    /// arrive before the connection is dropped; the handler sees 1006 "idle timeout".
    /// A peer still reading what was queued before the ping (a large message over a
    /// slow link: the ping waits behind it) is not idle: each `pong_timeout` in which
    /// its socket took some of those bytes gives it another. Default 30 s.
    pub pong_timeout: Duration,
    /// After sending a close frame, the time allowed for the peer's close frame before
    /// the TCP connection is dropped. Also bounds how long an HTTP response may take to
    /// be written. Default 5 s.
    pub close_timeout: Duration,
    /// Most open connections (all reactors together). Past it, new connections get
    /// `503 Service Unavailable` before any upgrade. Default 100,000.
    pub max_connections: usize,
    /// Most requests (upgrades and plain HTTP requests, all reactors together)
    /// waiting for an answer the service deferred ([`crate::Upgrade::defer`],
    /// [`crate::HttpResponse::defer`]). Past it, a request whose service defers is
    /// answered `503 Service Unavailable` with `Retry-After: 1` (counted under the
    /// refusal reason `pending`). Each waiting request also holds its connection,
    /// which counts against `max_connections`. Default 4,096.
    pub max_pending_requests: usize,
    /// Most bytes buffered for one connection because its socket would not take them.
    /// Default 1 MiB.
    pub max_backpressure: usize,
    /// What happens when a send would pass `max_backpressure`. Default: close (1008).
    pub backpressure_policy: BackpressurePolicy,
    /// Read-side flow control, in bytes: while more than this many bytes wait in a
    /// connection's outbox (its peer is not reading them), the server stops reading
    /// from that connection, so TCP slows the peer's sending down instead of the
    /// server buffering its replies; reading resumes once the outbox is down to half of
    /// it. A client that sends but never reads then costs at most this much plus what
    /// one read buffer of its input produces, instead of growing to
    /// `max_backpressure` and being closed. While paused, the peer's frames (pongs and
    /// close frames too) wait in TCP's buffers; a hang-up is still noticed at once.
    /// Set it at or above `max_backpressure` to turn read-side flow control off.
    /// Default 256 KiB.
    pub high_water_mark: usize,
    /// Largest request body (`Content-Length`) a plain HTTP request may carry; it is
    /// read whole and handed to [`crate::Service::http`] as [`crate::Request::body`].
    /// Past it the request is answered `413 Content Too Large` and the connection
    /// closed. Chunked bodies (no `Content-Length`) are refused with `411 Length
    /// Required`. Default 64 KiB.
    pub max_http_body_size: usize,
    /// How long a kept-alive HTTP connection may wait, after a response, for the
    /// first byte of its next request; then it is closed
    /// (`stats().http_idle_timeouts`). Once a request begins, it must be complete
    /// within `handshake_timeout`, like the first. Default 5 s.
    pub keep_alive_timeout: Duration,
    /// Stop gracefully on `SIGINT` or `SIGTERM` (Unix): stop accepting, close every
    /// connection with 1001 after what is queued for it, and end within
    /// `shutdown_timeout`, as [`crate::ServerHandle::shutdown`] does. A second signal
    /// ends the process at once, as the signal's default action would. Default false
    /// (a library does not take the process's signals unless asked).
    pub shutdown_on_signals: bool,
    /// How long a graceful shutdown waits for connections to finish their close
    /// handshake and flush, before dropping them. Default 5 s.
    pub shutdown_timeout: Duration,
    /// Size of each reactor's read buffer. Default 64 KiB.
    pub read_buffer_size: usize,
    /// Whether other sockets may listen on the same address and port (`SO_REUSEPORT`,
    /// Unix only). Default false: starting a server on an address something already
    /// listens on fails with `ErrorKind::AddrInUse`, so a second copy of a server can
    /// never start silently and take a share of the clients.
    ///
    /// When true, each reactor binds its own `SO_REUSEPORT` socket, and any other
    /// server of the same user that also sets it may join the port; the kernel then
    /// spreads new connections over all of them. This is for zero-downtime restarts:
    /// start the new server beside the old one, then shut the old one down. A server
    /// without it on the same address fails with `AddrInUse`, and makes one with it
    /// fail too.
    pub reuse_port: bool,
    /// The event source: epoll, io_uring, or io_uring where available. Default
    /// [`Backend::Epoll`]. [`crate::ServerHandle::backend`] says which one runs.
    pub backend: Backend,
    /// io_uring only: submission queue entries of each reactor's ring (default 4,096;
    /// the completion queue gets twice as many). A fuller submission queue is
    /// submitted early, and completions past the completion queue's length wait in
    /// the kernel for the next turn (counted in
    /// [`crate::StatsSnapshot::cq_overflows`]): neither loses anything, both cost a
    /// system call. Rounded up to a power of two by the kernel; at most 32,768.
    pub io_uring_sq_entries: u32,
    /// io_uring only: provided buffers in each reactor's buffer ring (default 256,
    /// a power of two, at most 32,768), each `read_buffer_size` bytes (clamped to
    /// 4 KiB..=64 KiB) plus 256 bytes of headroom. Every connection's receives share
    /// them; a receive is given one for the turn it is handled in. They are lent to
    /// the kernel as the load asks: 32 at first (all of them if fewer), twice as many
    /// each time a receive finds none left, up to this count; after a burst, those
    /// no longer needed are taken back at the reactor's next wake-ups (timers wake it
    /// while connections are open), their pages given back to the system, even with
    /// nothing arriving. When the lent ones run
    /// out a receive ends with `ENOBUFS` and is armed again
    /// ([`crate::StatsSnapshot::recv_buffers_exhausted`]; a few are the ring growing).
    /// The ring's memory, `count × (size + 256)` bytes per reactor (16 MiB by
    /// default), is mapped at start and becomes resident as the kernel fills the
    /// buffers: one page of each buffer lent while reads are small (128 KiB with 32
    /// lent, 1 MiB with 256), up to all of their bytes after large reads.
    pub io_uring_provided_buffers: u16,
    /// permessage-deflate (RFC 7692): `None` (the default) declines every offer;
    /// `Some` accepts the first valid offer a client makes (browsers always offer it)
    /// with this policy, unless [`crate::Upgrade::without_compression`] says no for
    /// that connection. Clients that offer nothing are unaffected.
    ///
    /// What it costs: no compression state per connection between messages (the
    /// server never uses context takeover, and by default asks the client not to
    /// either); per reactor thread, one compressor per window size in use (about
    /// 320 KiB at 15 bits, estimated) and a few inflaters (about 40 KiB each, estimated). A published message
    /// is compressed once, on the publisher's thread, and shared by every subscriber
    /// that negotiated compression. See docs/architecture.md.
    pub permessage_deflate: Option<DeflateConfig>,
    /// Per-client limits, allowed origins and the client's address behind a proxy
    /// (see [`crate::server::admission`]). Default: all off.
    pub admission: AdmissionConfig,
}

impl ServerConfig {
    /// The one `max_backpressure` rule, for every way bytes reach a connection (its
    /// own sends, deliveries, sends through a handle): whether `size` more bytes,
    /// behind `buffered` bytes not yet taken by the peer, pass the limit. A message
    /// always goes into an empty queue, however large.
    pub(crate) fn passes_backpressure(&self, buffered: usize, size: usize) -> bool {
        buffered > 0 && buffered + size > self.max_backpressure
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            max_handshake_bytes: 8 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            max_connections: 100_000,
            max_pending_requests: 4096,
            max_backpressure: 1 << 20,
            backpressure_policy: BackpressurePolicy::Close,
            high_water_mark: 256 << 10,
            max_http_body_size: 64 << 10,
            keep_alive_timeout: Duration::from_secs(5),
            shutdown_on_signals: false,
            shutdown_timeout: Duration::from_secs(5),
            read_buffer_size: 64 << 10,
            reuse_port: false,
            backend: Backend::Epoll,
            io_uring_sq_entries: 4096,
            io_uring_provided_buffers: 256,
            permessage_deflate: None,
            admission: AdmissionConfig::default(),
        }
    }
}
