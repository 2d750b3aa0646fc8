//! Configuring and starting a server.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::protocol::deflate::DeflateConfig;
use crate::server::admission::{AdmissionConfig, AllowedOrigins, Cidr, MessageRate, Rate};
use crate::server::bridge::{Bridge, BridgeLink, BridgeShared};
use crate::server::channels::redis::RedisEngines;
use crate::server::config::{Backend, BackpressurePolicy, ServerConfig};
use crate::server::driver;
use crate::server::driver::listener;
use crate::server::failure::{ReactorFailure, panic_message};
use crate::server::handle::ServerHandle;
use crate::server::handler::Service;
use crate::server::pubsub::Interest;
use crate::server::shared::{Remote, Shared};
use crate::server::signals::{self, SignalGuard};
use crate::server::stats::Stats;

/// Builds a [`Server`]. Every setting has a documented default ([`ServerConfig`]).
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    addr: String,
    config: ServerConfig,
    /// `WAVECORE_BACKEND`'s value when it names no backend: `start` refuses it unless
    /// [`backend`](Self::backend) or [`config`](Self::config) chose one.
    bad_env_backend: Option<String>,
    bridge: Option<Arc<dyn Bridge>>,
    tls: Option<TlsSource>,
    channels: crate::server::channels::ChannelRules,
    channel_engine: Option<crate::channels::RedisChannels>,
}

/// Where a TLS server's configuration comes from.
#[derive(Debug, Clone)]
enum TlsSource {
    Config(Arc<rustls::ServerConfig>),
    PemFiles(PathBuf, PathBuf),
}

/// A running server: reactor threads and a handle to them.
#[derive(Debug)]
pub struct Server {
    handle: ServerHandle,
    threads: Vec<JoinHandle<Result<(), ReactorFailure>>>,
    /// With `shutdown_on_signals`: tells the signal thread when the server stopped.
    signals: Option<SignalGuard>,
    /// The bridge and its transport's threads, stopped once the reactors have.
    bridge: Option<(Arc<BridgeShared>, Vec<JoinHandle<()>>)>,
    /// The Redis channel engine and its threads, stopped once the reactors have.
    channel_reader: Option<(Arc<RedisEngines>, Vec<JoinHandle<()>>)>,
}

impl Server {
    /// A builder with default settings, bound to `127.0.0.1:9001` unless told otherwise.
    /// The backend is [`Backend::Epoll`] unless the `WAVECORE_BACKEND` environment
    /// variable names another (`epoll`, `io_uring`, `auto`; see
    /// [`Backend::from_env`]): an operator's switch, and how the test suite runs on
    /// each backend. [`ServerBuilder::backend`] overrides both. Set to anything else
    /// (`kqueue`), it makes [`ServerBuilder::start`] fail rather than silently run on
    /// epoll, unless `backend` chose one.
    pub fn builder() -> ServerBuilder {
        let (backend, bad_env_backend) = match Backend::env_setting() {
            Ok(backend) => (backend.unwrap_or_default(), None),
            Err(value) => (Backend::default(), Some(value)),
        };
        ServerBuilder {
            addr: "127.0.0.1:9001".into(),
            bad_env_backend,
            config: ServerConfig {
                backend,
                ..ServerConfig::default()
            },
            bridge: None,
            tls: None,
            channels: Default::default(),
            channel_engine: None,
        }
    }

    /// A handle to query, publish to, and shut down the server from any thread.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Blocks until every reactor has stopped (after [`ServerHandle::shutdown`]), then
    /// stops the bridge, if any (it sends what it has buffered if it is connected,
    /// within its I/O timeout) and waits for its threads.
    ///
    /// # Errors
    ///
    /// The first [`ReactorFailure`] if any reactor stopped before a shutdown asked it
    /// to (all of them are on [`ServerHandle::failures`]); converts into `io::Error`.
    pub fn join(self) -> Result<(), ReactorFailure> {
        let mut first = None;
        for (reactor, thread) in self.threads.into_iter().enumerate() {
            let outcome = thread.join().unwrap_or_else(|panic| {
                Err(ReactorFailure {
                    reactor,
                    cause: panic_message(&*panic),
                })
            });
            if let Err(failure) = outcome {
                first.get_or_insert(failure);
            }
        }
        if let Some((bridge, threads)) = self.bridge {
            bridge.stop();
            for thread in threads {
                let _ = thread.join();
            }
        }
        if let Some((engine, threads)) = self.channel_reader {
            engine.stop();
            for thread in threads {
                let _ = thread.join();
            }
        }
        if let Some(signals) = &self.signals {
            signals.server_stopped();
        }
        tracing::info!(address = %self.handle.local_addr(), "wavecore server stopped");
        first.map_or(Ok(()), Err)
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )*
    };
}

impl ServerBuilder {
    /// The address to listen on, e.g. `"0.0.0.0:9001"`; port 0 picks a free port.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Shares this server's topics with other servers through `bridge` (for example
    /// a [`crate::bridge::RedisBridge`]): topic publishes made here also go to the other
    /// servers, and theirs are published here. See [`crate::server::bridge`]. The
    /// server starts whether or not the broker is reachable; the bridge connects (and
    /// reconnects) on its own threads.
    pub fn bridge(mut self, bridge: impl Bridge) -> Self {
        self.bridge = Some(Arc::new(bridge));
        self
    }

    /// Turns permessage-deflate (RFC 7692) on with `config` (off by default); for
    /// the defaults, `.permessage_deflate(DeflateConfig::default())`. See
    /// [`ServerConfig::permessage_deflate`] and [`DeflateConfig`].
    pub fn permessage_deflate(mut self, config: DeflateConfig) -> Self {
        self.config.permessage_deflate = Some(config);
        self
    }

    /// Serves TLS (`wss://`, `https://`) with `config` on every connection: the
    /// WebSocket upgrade and plain HTTP run over TLS on the same port, a plaintext
    /// request gets a TLS alert and a close. SNI and certificate choice are the
    /// config's (its `cert_resolver`); set `alpn_protocols` to `[b"http/1.1"]`
    /// ([`crate::server::tls::ALPN_HTTP_1_1`]) to offer ALPN, as
    /// [`crate::server::tls::server_config`] does. The handshake timeout
    /// ([`ServerConfig::handshake_timeout`]) covers the TLS handshake and the
    /// HTTP upgrade together. Replace the configuration while the server runs
    /// with [`ServerHandle::set_tls_config`].
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(TlsSource::Config(config));
        self
    }

    /// Serves TLS (see [`ServerBuilder::tls`]) with the certificate chain in the PEM
    /// file `cert` and the private key in the PEM file `key`, read when the server
    /// starts (see [`crate::server::tls::server_config_from_pem_files`]).
    /// [`ServerBuilder::start`] fails with `InvalidData` (naming the file) if they do
    /// not hold a usable certificate and key.
    pub fn tls_pem_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some(TlsSource::PemFiles(cert.into(), key.into()));
        self
    }

    /// Keeps the history `history` for channels whose name matches `pattern` (a name,
    /// or a prefix followed by `*`, or `*`); the first pattern added that matches a
    /// channel decides, and a channel that matches none keeps no history. See
    /// [`crate::channels`].
    pub fn channel_history(
        mut self,
        pattern: impl Into<String>,
        history: crate::channels::History,
    ) -> Self {
        self.channels.add(pattern, history);
        self
    }

    /// The most channels the server holds (default
    /// [`crate::channels::DEFAULT_MAX_CHANNELS`]): a publish or subscribe that would
    /// create one more fails with [`crate::channels::ChannelError::TooManyChannels`].
    /// Channels are kept while the server runs, so this bounds what clients free to
    /// name channels can make it hold.
    pub fn max_channels(mut self, max: usize) -> Self {
        self.channels.max_channels = max;
        self
    }

    /// The largest data one channel publish may carry, in bytes (default: the
    /// server's `max_message_size`); past it the publish fails with
    /// [`crate::channels::ChannelError::TooLarge`] and nothing is stored or sent. A
    /// server whose handlers wrap what clients send (a chat line in a JSON envelope)
    /// sets it above `max_message_size`.
    pub fn max_channel_data_size(mut self, bytes: usize) -> Self {
        self.channels.max_data_size = Some(bytes);
        self
    }

    /// Keeps channels in Redis Streams ([`crate::channels::RedisChannels`]) instead of
    /// this server's memory: every server on the same Redis (and key prefix) shares
    /// each channel's order, offsets, epoch and history, and a client may recover on
    /// any of them. The server starts whether or not Redis is reachable; while it is
    /// not, channel publishes and subscribes fail with
    /// [`crate::channels::ChannelError::Unavailable`] and everything resumes by itself.
    /// [`Self::channel_history`] and [`Self::max_channels`] apply as before (history
    /// by count; see [`crate::channels::RedisChannels`]). With
    /// [`crate::channels::RedisChannels::cluster`], [`Self::start`] reads the
    /// cluster's slot layout and fails (`NotConnected`, `InvalidData`) if it cannot.
    pub fn channel_engine(mut self, engine: crate::channels::RedisChannels) -> Self {
        self.channel_engine = Some(engine);
        self
    }

    /// Replaces every setting at once.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self.bad_env_backend = None;
        self
    }

    /// The event source (default epoll, or what `WAVECORE_BACKEND` names). See
    /// [`ServerConfig::backend`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.config.backend = backend;
        self.bad_env_backend = None;
        self
    }

    setters! {
        /// Reactor threads (default: available cores). See [`ServerConfig::workers`].
        workers: usize;
        /// See [`ServerConfig::max_message_size`].
        max_message_size: usize;
        /// See [`ServerConfig::max_frame_size`].
        max_frame_size: usize;
        /// See [`ServerConfig::max_handshake_bytes`].
        max_handshake_bytes: usize;
        /// See [`ServerConfig::max_headers`].
        max_headers: usize;
        /// See [`ServerConfig::handshake_timeout`].
        handshake_timeout: Duration;
        /// See [`ServerConfig::ping_interval`].
        ping_interval: Option<Duration>;
        /// See [`ServerConfig::pong_timeout`].
        pong_timeout: Duration;
        /// See [`ServerConfig::close_timeout`].
        close_timeout: Duration;
        /// See [`ServerConfig::max_connections`].
        max_connections: usize;
        /// See [`ServerConfig::max_pending_requests`].
        max_pending_requests: usize;
        /// See [`ServerConfig::max_backpressure`].
        max_backpressure: usize;
        /// See [`ServerConfig::backpressure_policy`].
        backpressure_policy: BackpressurePolicy;
        /// See [`ServerConfig::high_water_mark`].
        high_water_mark: usize;
        /// See [`ServerConfig::shutdown_timeout`].
        shutdown_timeout: Duration;
        /// See [`ServerConfig::max_http_body_size`].
        max_http_body_size: usize;
        /// See [`ServerConfig::keep_alive_timeout`].
        keep_alive_timeout: Duration;
        /// Stop gracefully on `SIGINT`/`SIGTERM` (default false). See
        /// [`ServerConfig::shutdown_on_signals`].
        shutdown_on_signals: bool;
        /// See [`ServerConfig::read_buffer_size`].
        read_buffer_size: usize;
        /// Lets other servers share the port (default false). See
        /// [`ServerConfig::reuse_port`].
        reuse_port: bool;
        /// io_uring submission queue entries per reactor (default 4,096). See
        /// [`ServerConfig::io_uring_sq_entries`].
        io_uring_sq_entries: u32;
        /// io_uring provided buffers per reactor (default 256, a power of two). See
        /// [`ServerConfig::io_uring_provided_buffers`].
        io_uring_provided_buffers: u16;
    }

    /// Binds and starts the reactor threads; returns at once.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `WAVECORE_BACKEND` names no backend and none was chosen
    /// ([`Server::builder`]); `ErrorKind::AddrInUse` if something already listens on the address (unless it
    /// and this server both set [`reuse_port`](Self::reuse_port)); any other error
    /// from resolving the address, binding, or creating the polls and threads; with
    /// [`ServerBuilder::tls_pem_files`], `NotFound` or `InvalidData` (naming the file)
    /// when the certificate or key cannot be read or used; with
    /// [`ServerBuilder::tls`], `InvalidInput` when rustls cannot start a connection
    /// with the configuration (a `max_fragment_size` out of range, say). The message
    /// names what failed: `listen on 127.0.0.1:9001: Address already in use (os error
    /// 98)`, the file of a certificate (the kind is the underlying error's); an
    /// io_uring failure is the kernel's error as it is (`raw_os_error` kept).
    pub fn start<S: Service>(self, service: S) -> io::Result<Server> {
        if let Some(value) = &self.bad_env_backend {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WAVECORE_BACKEND={value}: not a backend (epoll, io_uring or auto)"),
            ));
        }
        let workers = self.config.workers.max(1);
        let tls = match &self.tls {
            None => None,
            Some(TlsSource::Config(config)) => Some(config.clone()),
            Some(TlsSource::PemFiles(cert, key)) => {
                Some(crate::server::tls::server_config_from_pem_files(cert, key)?)
            }
        };
        if let Some(config) = &tls {
            crate::server::tls::Acceptor::check(config).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("TLS configuration unusable: {e}"),
                )
            })?;
        }
        let named =
            |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
        let addr = self
            .addr
            .to_socket_addrs()
            .map_err(named(format!("listen address {}", self.addr)))?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("listen address {}: no address to bind", self.addr),
                )
            })?;
        let (local_addr, listeners) = listener::bind(addr, workers, self.config.reuse_port)
            .map_err(named(format!("listen on {addr}")))?;
        let backend = driver::resolve(self.config.backend, &self.config);
        let mut sources = Vec::with_capacity(workers);
        let mut remotes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (source, waker) = driver::new_source(backend, &self.config)?;
            remotes.push(Remote::new(waker));
            sources.push(source);
        }
        let bridge = self
            .bridge
            .as_ref()
            .map(|bridge| Arc::new(BridgeShared::new(bridge.limits())));
        let channel_data_limit = self
            .channels
            .max_data_size
            .unwrap_or(self.config.max_message_size);
        let redis_engine = match self.channel_engine.clone() {
            Some(config) => Some(Arc::new(RedisEngines::new(
                config,
                self.channels.clone(),
                channel_data_limit,
            )?)),
            None => None,
        };
        let shared = Arc::new(Shared {
            local_addr,
            stats: Arc::new(Stats::default()),
            topic_counts: Arc::new(Interest::new(bridge.clone())),
            remotes,
            bridge: bridge.clone(),
            failures: Mutex::new(Vec::new()),
            counters: (0..workers).map(|_| Arc::default()).collect(),
            settled: Default::default(),
            backend,
            deflate: self.config.permessage_deflate,
            tls: tls.map(|config| Arc::new(crate::server::tls::Acceptor::new(config))),
            config: Arc::new(self.config.clone()),
            handler_type: std::any::TypeId::of::<S::Handler>(),
            channels: match &redis_engine {
                Some(engine) => engine.clone(),
                None => Arc::new(crate::server::channels::memory::MemoryEngine::new(
                    self.channels.clone(),
                    channel_data_limit,
                )),
            },
            addresses: self.config.admission.table(),
        });
        let signals = if self.config.shutdown_on_signals {
            Some(signals::shutdown_on_signals(ServerHandle::new(
                shared.clone(),
            ))?)
        } else {
            None
        };
        let service = Arc::new(service);
        let config = shared.config.clone();
        let mut threads = Vec::with_capacity(workers);
        for (index, (source, listener)) in sources.into_iter().zip(listeners).enumerate() {
            let (service, config, shared) = (service.clone(), config.clone(), shared.clone());
            threads.push(driver::spawn(
                index, source, listener, service, config, shared,
            )?);
        }
        let handle = ServerHandle::new(shared.clone());
        let bridge = match (self.bridge, bridge) {
            (Some(transport), Some(core)) => {
                core.attach(Arc::downgrade(&shared));
                match transport.start(BridgeLink::new(core.clone())) {
                    Ok(threads) => Some((core, threads)),
                    Err(e) => {
                        handle.shutdown();
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        let channel_reader = match redis_engine {
            Some(engine) => match engine.start(&Arc::downgrade(&shared)) {
                Ok(threads) => Some((engine, threads)),
                Err(e) => {
                    handle.shutdown();
                    return Err(e);
                }
            },
            None => None,
        };
        log_start(local_addr, workers, backend, &config, shared.tls.is_some());
        Ok(Server {
            handle,
            threads,
            signals,
            bridge,
            channel_reader,
        })
    }

    /// Binds, starts, and blocks until the server is shut down.
    ///
    /// # Errors
    ///
    /// Binding errors (e.g. `AddrInUse`), or a reactor's failure once every reactor
    /// has stopped (see [`Server::join`]).
    pub fn run<S: Service>(self, service: S) -> io::Result<()> {
        Ok(self.start(service)?.join()?)
    }
}

/// Admission control (see [`crate::server::admission`] and [`AdmissionConfig`]): every
/// setting is off until set.
impl ServerBuilder {
    /// Replaces every admission setting at once.
    pub fn admission(mut self, admission: AdmissionConfig) -> Self {
        self.config.admission = admission;
        self
    }

    /// Most connections open at once from one client address; past it, `429` with
    /// `Retry-After`. See [`AdmissionConfig::max_connections_per_address`].
    pub fn max_connections_per_address(mut self, max: u32) -> Self {
        self.config.admission.max_connections_per_address = Some(max);
        self
    }

    /// New connections per client address per second, with a burst (e.g.
    /// `Rate::per_second(10.0)`); past it, `429` with `Retry-After`. See
    /// [`AdmissionConfig::connection_rate_per_address`].
    pub fn connection_rate_per_address(mut self, rate: Rate) -> Self {
        self.config.admission.connection_rate_per_address = Some(rate);
        self
    }

    /// Most client addresses the per-address limits remember (default 65,536). See
    /// [`AdmissionConfig::address_table_capacity`].
    pub fn address_table_capacity(mut self, capacity: usize) -> Self {
        self.config.admission.address_table_capacity = capacity;
        self
    }

    /// The IPv6 prefix that counts as one client address (default 64). See
    /// [`AdmissionConfig::ipv6_prefix`].
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.config.admission.ipv6_prefix = bits;
        self
    }

    /// Messages and bytes per connection per second (e.g.
    /// `MessageRate::messages(50.0)`); past it, close 1008 or drop. See
    /// [`AdmissionConfig::message_rate`].
    pub fn message_rate(mut self, rate: MessageRate) -> Self {
        self.config.admission.message_rate = Some(rate);
        self
    }

    /// Most topics one connection may subscribe to. See
    /// [`AdmissionConfig::max_subscriptions_per_connection`].
    pub fn max_subscriptions_per_connection(mut self, max: usize) -> Self {
        self.config.admission.max_subscriptions_per_connection = Some(max);
        self
    }

    /// Sets the origins allowed to upgrade; others get `403`. See
    /// [`AdmissionConfig::allowed_origins`] and [`AllowedOrigins`].
    pub fn allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.config.admission.allowed_origins = Some(origins);
        self
    }

    /// Allows one more origin pattern (`https://app.example.com`,
    /// `https://*.example.com`); the first call turns the origin check on. See
    /// [`AllowedOrigins`].
    pub fn allow_origin(mut self, pattern: &str) -> Self {
        let origins = self
            .config
            .admission
            .allowed_origins
            .take()
            .unwrap_or_default();
        self.config.admission.allowed_origins = Some(origins.allow(pattern));
        self
    }

    /// Reads a PROXY protocol header (v1 or v2) from connections whose peer is a
    /// trusted proxy ([`ServerBuilder::trusted_proxy`]). See
    /// [`AdmissionConfig::proxy_protocol`].
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.config.admission.proxy_protocol = on;
        self
    }

    /// Trusts one more proxy network (e.g. `"10.0.0.0/8".parse()?`) to name the
    /// client: PROXY headers and forwarding headers. See
    /// [`AdmissionConfig::trusted_proxies`].
    pub fn trusted_proxy(mut self, network: Cidr) -> Self {
        self.config.admission.trusted_proxies.push(network);
        self
    }

    /// Reads the client's address from `Forwarded` / `X-Forwarded-For` sent by a
    /// trusted proxy. See [`AdmissionConfig::forwarded_headers`].
    pub fn forwarded_headers(mut self, on: bool) -> Self {
        self.config.admission.forwarded_headers = on;
        self
    }
}

/// What a server logs when it starts: one short line at `info` (where, on which
/// backend, TLS or not, how many reactors), and its whole configuration at `debug`.
fn log_start(addr: SocketAddr, workers: usize, backend: Backend, config: &ServerConfig, tls: bool) {
    tracing::info!(
        address = %addr,
        backend = backend.name(),
        tls,
        reactors = workers,
        "wavecore server listening"
    );
    tracing::debug!(address = %addr, ?config, "wavecore server configuration");
}
