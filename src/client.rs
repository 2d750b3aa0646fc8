//! A small blocking WebSocket client on a std [`TcpStream`], for tests, tools and
//! examples (not for production traffic: no proxy, no redirects). It speaks `ws://`
//! and `wss://` (TLS through rustls: the Mozilla roots of `webpki-roots` by
//! default, or a [`rustls::ClientConfig`] of your own with
//! [`Client::connect_tls`]; see [`tls_config`]). The one extension it speaks is
//! permessage-deflate (RFC 7692), when asked with [`Client::connect_deflate`].
//!
//! ```no_run
//! use wavecore::client::{Client, ClientMessage};
//!
//! let mut client = Client::connect("ws://127.0.0.1:9001/echo")?;
//! client.send_text("hello")?;
//! assert_eq!(client.recv()?, ClientMessage::Text("hello".into()));
//! client.close(1000, "bye")?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Every frame is masked with a fresh key from [`MaskRng`], a xorshift64* generator
//! seeded from the OS entropy source. RFC 6455 asks for keys an intermediary cannot
//! predict; a PRNG seeded per connection from the OS is what common clients use, and
//! keeps masking free of a system call per frame.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::protocol::close::encode_close_payload;
use crate::protocol::deflate::{ClientNegotiated, check_response, client_offer, pool};
use crate::protocol::frame::{RSV1, encode_frame};
use crate::protocol::handshake::{ClientHandshake, ResponseReader};
use crate::protocol::{CloseCode, Decoder, DecoderConfig, Event, OpCode, Role};

/// A message (or control frame) received by a [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping (already answered with a pong by [`Client::recv`]).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame: its code and reason, or `None` when it carried no code. The
    /// client answers it (once) before returning it.
    Close(Option<(u16, String)>),
}

/// A xorshift64* pseudo-random generator for masking keys, seeded from the OS.
///
/// Not a cryptographic generator: masking only has to keep a client's bytes
/// unpredictable to the intermediaries it may confuse, not secret.
#[derive(Debug, Clone)]
pub struct MaskRng(u64);

impl MaskRng {
    /// A generator seeded from the OS entropy source (or the clock should that fail).
    pub fn from_os() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15);
            seed = nanos.to_le_bytes();
        }
        Self::with_seed(u64::from_le_bytes(seed))
    }

    /// A generator with a fixed seed (zero is replaced, as xorshift needs a non-zero state).
    pub fn with_seed(seed: u64) -> Self {
        Self(if seed == 0 {
            0x2545_F491_4F6C_DD1D
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A fresh 4-byte masking key.
    pub fn mask_key(&mut self) -> [u8; 4] {
        ((self.next_u64() >> 32) as u32).to_ne_bytes()
    }
}

/// A `ws://` or `wss://` URL split into what the handshake needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `host:port` to connect to and to send as `Host`.
    pub authority: String,
    /// The path and query, `/` when the URL has none.
    pub path: String,
    /// Whether the URL is `wss://` (TLS, RFC 6455 §3).
    pub secure: bool,
}

impl WsUrl {
    /// Parses `ws://host[:port][/path]` or `wss://host[:port][/path]` (the scheme in
    /// any case, RFC 3986 section 3.1); the port defaults to 80 (`ws`) or 443 (`wss`).
    ///
    /// # Errors
    ///
    /// `InvalidData` for another scheme or a URL without a host.
    pub fn parse(url: &str) -> io::Result<Self> {
        let scheme = |prefix: &str| {
            url.get(..prefix.len())
                .filter(|scheme| scheme.eq_ignore_ascii_case(prefix))
                .map(|_| &url[prefix.len()..])
        };
        let (rest, secure) = match (scheme("ws://"), scheme("wss://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return Err(invalid("only ws:// and wss:// URLs are supported")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(invalid("URL has no host"));
        }
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            authority,
            path,
            secure,
        })
    }

    /// The host, without the port or an IPv6 address's brackets: the name a
    /// `wss://` certificate must be valid for (and the SNI sent).
    pub fn host(&self) -> &str {
        let host = match self.authority.rfind(':') {
            Some(i) => &self.authority[..i],
            None => &self.authority,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A client TLS configuration trusting `roots`, with ALPN `http/1.1` (and rustls'
/// safe defaults, the `ring` provider).
pub fn tls_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(crate::server::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client TLS configuration trusting the certificates in the PEM file at `path`
/// (a CA, or a self-signed server certificate), and nothing else.
///
/// # Errors
///
/// An I/O error if the file cannot be read; `InvalidData` if it holds no usable
/// certificate.
pub fn tls_config_trusting_pem_file(path: impl AsRef<Path>) -> io::Result<Arc<ClientConfig>> {
    let path = path.as_ref();
    let mut roots = RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(&format!("{}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| invalid(&format!("{}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| invalid(&format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(invalid(&format!("{}: no certificate", path.display())));
    }
    Ok(tls_config(roots))
}

/// The configuration `wss://` URLs get by default: the Mozilla root store
/// (`webpki-roots`), built once (later calls share it).
pub fn default_tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            tls_config(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        })
        .clone()
}

/// The client's byte stream: TCP, or TLS over TCP.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// A connected, blocking WebSocket client.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    decoder: Decoder,
    rng: MaskRng,
    protocol: Option<String>,
    /// Received bytes not yet decoded live in `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    close_sent: bool,
    /// permessage-deflate, if the server accepted the offer.
    deflate: Option<ClientNegotiated>,
    /// Compressed payload of the message being sent (reused).
    scratch: Vec<u8>,
}

/// Messages shorter than this go out uncompressed even with permessage-deflate.
const MIN_COMPRESSED: usize = 32;

fn invalid(message: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message.to_owned())
}

impl Client {
    /// Connects to a `ws://` or `wss://` URL and completes the opening handshake
    /// (for `wss://`, the TLS handshake first, trusting the Mozilla roots).
    ///
    /// # Errors
    ///
    /// Connection and I/O errors (a failed connect names the address: `connect
    /// 127.0.0.1:9001: Connection refused (os error 111)`); `InvalidData` when the URL
    /// or the server's handshake response is not valid, or the server's certificate is
    /// not trusted.
    pub fn connect(url: &str) -> io::Result<Self> {
        Self::connect_with(url, &[])
    }

    /// Connects offering `protocols` as subprotocols; see [`protocol`](Self::protocol).
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect_with(url: &str, protocols: &[&str]) -> io::Result<Self> {
        Self::open(url, protocols, false, None)
    }

    /// Connects to a `wss://` URL with TLS configured by `config` (roots of your own,
    /// see [`tls_config`] and [`tls_config_trusting_pem_file`]), offering
    /// `protocols`.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`]; `InvalidInput` for a `ws://` URL or a host that is
    /// not a valid DNS name or IP address.
    pub fn connect_tls(
        url: &str,
        protocols: &[&str],
        config: Arc<ClientConfig>,
    ) -> io::Result<Self> {
        if !WsUrl::parse(url)?.secure {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "connect_tls needs a wss:// URL",
            ));
        }
        Self::open(url, protocols, false, Some(config))
    }

    /// Connects offering `protocols` and permessage-deflate (RFC 7692) as
    /// `permessage-deflate; client_max_window_bits`, as browsers do. Whether the server
    /// accepted it: [`deflate`](Self::deflate). Messages of 32 bytes or more are then
    /// sent compressed (each on its own, no context takeover), and compressed messages
    /// from the server are inflated.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`], and `InvalidData` when the server's
    /// `Sec-WebSocket-Extensions` answer breaks RFC 7692 section 7.1.
    pub fn connect_deflate(url: &str, protocols: &[&str]) -> io::Result<Self> {
        Self::open(url, protocols, true, None)
    }

    fn open(
        url: &str,
        protocols: &[&str],
        deflate: bool,
        tls: Option<Arc<ClientConfig>>,
    ) -> io::Result<Self> {
        let url = WsUrl::parse(url)?;
        // The error names the address: `connect 127.0.0.1:9001: Connection refused`.
        let tcp = TcpStream::connect(&url.authority)
            .map_err(|e| io::Error::new(e.kind(), format!("connect {}: {e}", url.authority)))?;
        tcp.set_nodelay(true)?;
        let mut stream = if url.secure {
            let name = ServerName::try_from(url.host().to_owned()).map_err(|e| {
                io::Error::new(
                    ErrorKind::InvalidInput,
                    format!("TLS name {}: {e}", url.host()),
                )
            })?;
            let config = tls.unwrap_or_else(default_tls_config);
            let tls = ClientConnection::new(config, name)
                .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e.to_string()))?;
            Stream::Tls(Box::new(StreamOwned::new(tls, tcp)))
        } else {
            Stream::Plain(tcp)
        };
        let offer = client_offer();
        let offer_text = offer.to_string();
        let extensions: &[(&str, &str)] = if deflate {
            &[("Sec-WebSocket-Extensions", &offer_text)]
        } else {
            &[]
        };
        let (handshake, request) =
            ClientHandshake::new(&url.authority, &url.path, protocols, extensions);
        stream.write_all(&request)?;
        let mut reader = ResponseReader::default();
        let mut buf = vec![0u8; 16 << 10];
        let (used, got) = loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed during the handshake",
                ));
            }
            match reader.push(&buf[..n]) {
                Ok(Some(used)) => break (used, n),
                Ok(None) => {}
                Err(e) => return Err(invalid(&e.to_string())),
            }
        };
        let head = reader.head().expect("a complete head");
        let protocol = handshake
            .validate(head)
            .map_err(|e| invalid(&e.to_string()))?;
        let answers =
            ClientHandshake::response_extensions(head).map_err(|e| invalid(&e.to_string()))?;
        let negotiated = match answers.as_slice() {
            [] => None,
            [answer] if deflate => Some(
                check_response(&offer, answer)
                    .map_err(|e| invalid(&format!("server's permessage-deflate answer: {e}")))?,
            ),
            _ => return Err(invalid("server chose extensions not offered")),
        };
        Ok(Self {
            stream,
            decoder: Decoder::new(DecoderConfig {
                role: Role::Client,
                max_frame_size: 64 << 20,
                max_message_size: 64 << 20,
                inflate: negotiated.map(|n| n.inflate),
                ..DecoderConfig::default()
            }),
            rng: MaskRng::from_os(),
            protocol,
            buf,
            start: used,
            end: got,
            out: Vec::new(),
            close_sent: false,
            deflate: negotiated,
            scratch: Vec::new(),
        })
    }

    /// What permessage-deflate negotiation settled, if the server accepted the offer
    /// of [`Client::connect_deflate`].
    pub fn deflate(&self) -> Option<ClientNegotiated> {
        self.deflate
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The underlying TCP stream (for timeouts and the like; under TLS, writing to
    /// it directly would corrupt the session).
    pub fn stream(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Whether the connection runs over TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Sends one masked frame.
    fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.out.clear();
        let key = self.rng.mask_key();
        encode_frame(&mut self.out, fin, opcode, payload, Some(key));
        self.stream.write_all(&self.out)
    }

    /// Sends a whole message as one frame, compressed if permessage-deflate was
    /// negotiated and it is long enough to be worth it.
    fn send_message(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        let Some(negotiated) = self.deflate else {
            return self.send_frame(true, opcode, payload);
        };
        self.scratch.clear();
        if payload.len() < MIN_COMPRESSED
            || !pool::compress(1, negotiated.client_window_bits, payload, &mut self.scratch)
        {
            return self.send_frame(true, opcode, payload);
        }
        self.out.clear();
        let key = self.rng.mask_key();
        encode_frame(&mut self.out, true, opcode, &self.scratch, Some(key));
        self.out[0] |= RSV1 << 4;
        self.stream.write_all(&self.out)
    }

    /// Sends a text message as one frame.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send_message(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message as one frame.
    pub fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.send_message(OpCode::Binary, data)
    }

    /// Sends a message split into frames of at most `fragment` bytes (at least one
    /// frame, even when empty). Text may be split inside a character; the receiver
    /// validates the reassembled message.
    pub fn send_fragmented(&mut self, text: bool, data: &[u8], fragment: usize) -> io::Result<()> {
        let fragment = fragment.max(1);
        let mut chunks = data.chunks(fragment).peekable();
        let mut opcode = if text { OpCode::Text } else { OpCode::Binary };
        if chunks.peek().is_none() {
            return self.send_frame(true, opcode, &[]);
        }
        while let Some(chunk) = chunks.next() {
            let fin = chunks.peek().is_none();
            self.send_frame(fin, opcode, chunk)?;
            opcode = OpCode::Continuation;
        }
        Ok(())
    }

    /// Sends a ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.len() > 125 {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "ping payload over 125 bytes",
            ));
        }
        self.send_frame(true, OpCode::Ping, payload)
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes). Keep
    /// calling [`recv`](Self::recv) to read the server's close if you want it.
    pub fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        let mut payload = [0u8; 125];
        let n = encode_close_payload(CloseCode(code), reason, &mut payload);
        self.send_frame(true, OpCode::Close, &payload[..n])
    }

    /// Receives the next message or control frame, answering pings and closes.
    ///
    /// A protocol violation by the server fails the connection with the matching
    /// close code and returns `InvalidData`; end of stream returns `UnexpectedEof`.
    pub fn recv(&mut self) -> io::Result<ClientMessage> {
        loop {
            let (used, result) = self.decoder.decode(&mut self.buf[self.start..self.end]);
            let message = match result {
                Ok(Some(event)) => Some(owned(event)),
                Ok(None) => None,
                Err(e) => {
                    let code = e.close_code().0;
                    let _ = self.close(code, "");
                    return Err(invalid(&format!("protocol error from server: {e:?}")));
                }
            };
            self.start += used;
            if let Some(message) = message {
                match &message {
                    ClientMessage::Ping(payload) => {
                        let payload = payload.clone();
                        self.send_frame(true, OpCode::Pong, &payload)?;
                    }
                    ClientMessage::Close(info) => {
                        let code = info.as_ref().map_or(1000, |(c, _)| *c);
                        self.close(code, "")?;
                        // The close handshake is complete: TLS ends with close_notify.
                        if let Stream::Tls(tls) = &mut self.stream {
                            tls.conn.send_close_notify();
                            let _ = tls.flush();
                        }
                    }
                    _ => {}
                }
                return Ok(message);
            }
            self.fill()?;
        }
    }

    /// Moves undecoded bytes to the front of the buffer and reads more.
    fn fill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        self.end += n;
        Ok(())
    }
}

/// Copies a borrowed event into an owned message.
fn owned(event: Event<'_>) -> ClientMessage {
    match event {
        Event::Text(text) => ClientMessage::Text(text.to_owned()),
        Event::Binary(data) => ClientMessage::Binary(data.to_vec()),
        Event::Ping(data) => ClientMessage::Ping(data.to_vec()),
        Event::Pong(data) => ClientMessage::Pong(data.to_vec()),
        Event::Close(frame) => ClientMessage::Close(frame.map(|f| (f.code.0, f.reason.to_owned()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(u.authority, "127.0.0.1:9001");
        assert_eq!(u.path, "/echo?x=1");
        assert_eq!(WsUrl::parse("WS://127.0.0.1:9001/echo?x=1").unwrap(), u);
        let u = WsUrl::parse("ws://localhost").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("localhost:80", "/")
        );
        let u = WsUrl::parse("ws://[::1]?q").unwrap();
        assert_eq!((u.authority.as_str(), u.path.as_str()), ("[::1]:80", "/?q"));
        let u = WsUrl::parse("wss://example.com/x").unwrap();
        assert_eq!((u.authority.as_str(), u.secure), ("example.com:443", true));
        assert_eq!(u.host(), "example.com");
        assert_eq!(WsUrl::parse("wss://[::1]:9/").unwrap().host(), "::1");
        assert!(WsUrl::parse("http://x").is_err());
        assert!(WsUrl::parse("ws:///x").is_err());
    }

    #[test]
    fn mask_keys_vary() {
        let mut rng = MaskRng::with_seed(0);
        let keys: Vec<[u8; 4]> = (0..64).map(|_| rng.mask_key()).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }
}
