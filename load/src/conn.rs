//! One non-blocking client connection: connect, handshake, framing and buffering.

use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mio::net::TcpStream;
use socket2::{Domain, Socket, Type};
use wavecore::client::MaskRng;
use wavecore::internals::deflate::{check_response, client_offer, pool};
use wavecore::internals::frame::{RSV1, encode_frame};
use wavecore::internals::handshake::{ClientHandshake, ResponseReader};
use wavecore::internals::{Decoder, DecoderConfig, Event, OpCode, Role};
use wavecore::rustls::ClientConnection;

use crate::tls::TlsTarget;

thread_local! {
    /// The thread's buffer for plaintext out of TLS connections (one TLS record).
    static PLAINTEXT: RefCell<Vec<u8>> = RefCell::new(vec![0; 16 << 10]);
}

/// Where a connection stands.
enum State {
    /// The handshake request is out (or queued); the response is being read.
    Handshaking(Box<(ClientHandshake, ResponseReader)>),
    /// Messages flow.
    Open,
}

/// The sending half of a connection: what callbacks write to.
pub struct Out {
    buf: Vec<u8>,
    pos: usize,
    rng: MaskRng,
    raw: bool,
    binary: bool,
    /// permessage-deflate negotiated: the client window (bits) to compress with.
    deflate: Option<u8>,
    /// Compressed payload of the message being queued (reused).
    scratch: Vec<u8>,
}

impl Out {
    /// Queues one data message (a masked frame, or the raw bytes with `--raw`).
    pub fn message(&mut self, payload: &[u8]) {
        if self.raw {
            self.buf.extend_from_slice(payload);
        } else {
            let opcode = if self.binary {
                OpCode::Binary
            } else {
                OpCode::Text
            };
            if let Some(bits) = self.deflate {
                self.scratch.clear();
                if pool::compress(1, bits, payload, &mut self.scratch) {
                    let start = self.buf.len();
                    let key = self.rng.mask_key();
                    encode_frame(&mut self.buf, true, opcode, &self.scratch, Some(key));
                    self.buf[start] |= RSV1 << 4;
                    return;
                }
            }
            self.frame(opcode, payload);
        }
    }

    /// Queues one final frame, masked with a fresh key (data or control).
    fn frame(&mut self, opcode: OpCode, payload: &[u8]) {
        encode_frame(
            &mut self.buf,
            true,
            opcode,
            payload,
            Some(self.rng.mask_key()),
        );
    }

    /// Bytes queued but not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// What a connection reports to its workload.
pub enum Input<'a> {
    /// The connection is ready for messages (handshake done).
    Opened,
    /// One data message.
    Message(&'a [u8]),
    /// The server's close frame, with its code (1005 when it carried none). Returning
    /// `Ok` accepts it as the connection's end: the close is answered and the
    /// connection ends with [`Flow::Closed`]; an `Err` makes it an error.
    Closed(u16),
}

/// Whether a connection goes on after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// It is open.
    Open,
    /// The server closed it and the role accepted that (see [`Input::Closed`]); the
    /// close has been answered.
    Closed,
    /// The server ended the TCP connection (EOF) without a close frame read first:
    /// an error, except for a slow consumer being checked at the end of a soak.
    Eof,
}

/// A client connection on a mio stream.
pub struct Conn {
    /// The socket, registered with the thread's poll.
    pub stream: TcpStream,
    state: State,
    decoder: Decoder,
    /// Undecoded bytes carried over between reads.
    inbuf: Vec<u8>,
    /// Message size in raw mode (messages are split by length).
    raw_size: Option<usize>,
    /// The sending half.
    pub out: Out,
    /// The server's close was accepted (see [`Input::Closed`]).
    closed: bool,
    /// Read on until `EAGAIN` rather than stopping at a short read, so an EOF queued
    /// behind the data is seen without another readiness event (which none will
    /// announce). Off by default: one read per event is what the load costs.
    pub read_to_eagain: bool,
    /// `wss://`: the TLS state between the socket and the framing.
    tls: Option<Box<ClientConnection>>,
    /// Our close_notify is queued (after the answer to the server's close).
    close_notify_sent: bool,
}

/// Opens a non-blocking TCP connection to `addr`, from `source` when given.
pub fn open_socket(
    addr: SocketAddr,
    source: Option<Ipv4Addr>,
    recv_buffer: Option<usize>,
) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(bytes) = recv_buffer {
        // Before connecting, so the window the peer sees is small from the start.
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

impl Conn {
    /// A connection on a freshly opened `stream`; queues the handshake request
    /// (unless `raw`), to go out once the socket is writable (after the TLS handshake,
    /// with `tls`).
    pub fn new(
        stream: TcpStream,
        host: &str,
        path: &str,
        raw: Option<usize>,
        binary: bool,
        deflate: bool,
        tls: Option<&TlsTarget>,
    ) -> Self {
        let tls = tls.map(|target| {
            let mut conn = ClientConnection::new(target.config.clone(), target.name.clone())
                .expect("a client configuration rustls accepts");
            // What is queued before the handshake ends is taken whole.
            conn.set_buffer_limit(None);
            Box::new(conn)
        });
        let mut out = Out {
            buf: Vec::new(),
            pos: 0,
            rng: MaskRng::from_os(),
            raw: raw.is_some(),
            binary,
            deflate: None,
            scratch: Vec::new(),
        };
        let state = if raw.is_some() {
            State::Open
        } else {
            let offer = client_offer().to_string();
            let extensions: &[(&str, &str)] = if deflate {
                &[("Sec-WebSocket-Extensions", &offer)]
            } else {
                &[]
            };
            let (handshake, request) = ClientHandshake::new(host, path, &[], extensions);
            out.buf = request;
            State::Handshaking(Box::new((handshake, ResponseReader::default())))
        };
        Self {
            stream,
            state,
            decoder: Decoder::new(DecoderConfig {
                role: Role::Client,
                max_frame_size: 64 << 20,
                max_message_size: 64 << 20,
                ..DecoderConfig::default()
            }),
            inbuf: Vec::new(),
            raw_size: raw,
            out,
            closed: false,
            read_to_eagain: false,
            tls,
            close_notify_sent: false,
        }
    }

    /// Whether the server accepted permessage-deflate (RFC 7692) for this connection.
    pub fn deflate_negotiated(&self) -> bool {
        self.out.deflate.is_some()
    }

    /// Whether the connection is past its handshake.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Writes queued bytes until done or the socket is full (with TLS: encrypts them
    /// all, then writes the ciphertext).
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            // Ciphertext first; plaintext is encrypted only once rustls has handed
            // everything before it to the socket, so `Out::pending` still counts what
            // the socket has not taken (the publishers' flow control).
            loop {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(0) => return Err(ErrorKind::WriteZero.into()),
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
                if self.out.pos < self.out.buf.len() {
                    tls.writer().write_all(&self.out.buf[self.out.pos..])?;
                    self.out.buf.clear();
                    self.out.pos = 0;
                } else if self.closed && !self.close_notify_sent {
                    self.close_notify_sent = true;
                    tls.send_close_notify();
                } else {
                    return Ok(());
                }
            }
        }
        while self.out.pos < self.out.buf.len() {
            match self.stream.write(&self.out.buf[self.out.pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out.pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.out.buf.clear();
        self.out.pos = 0;
        Ok(())
    }

    /// Reads until the socket is empty, handing each message (and the end of the
    /// handshake, and the server's close) to `f`, then writes what is queued. An error
    /// ends the connection.
    pub fn on_readable(
        &mut self,
        scratch: &mut [u8],
        f: &mut dyn FnMut(&mut Out, Input<'_>) -> Result<(), String>,
    ) -> Result<Flow, String> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(Flow::Eof),
                Ok(n) => {
                    if self.tls.is_some() {
                        if self.decrypt(&scratch[..n], f)? {
                            return Ok(Flow::Eof);
                        }
                    } else {
                        self.ingest(&mut scratch[..n], f)?;
                    }
                    if self.closed {
                        // The answer to the close goes out if it can; the socket is
                        // dropped next either way.
                        let _ = self.flush();
                        return Ok(Flow::Closed);
                    }
                    // Readiness is edge-triggered: a short read drained the socket, and
                    // new bytes raise a new event. No second read just to see EAGAIN.
                    if n < scratch.len() && !self.read_to_eagain {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(Flow::Eof),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        self.flush().map_err(|e| format!("write: {e}"))?;
        Ok(Flow::Open)
    }

    /// Handles one chunk of ciphertext: the plaintext in it goes to
    /// [`Conn::ingest`]. Returns whether the server sent close_notify.
    fn decrypt(
        &mut self,
        mut input: &[u8],
        f: &mut dyn FnMut(&mut Out, Input<'_>) -> Result<(), String>,
    ) -> Result<bool, String> {
        let Some(mut tls) = self.tls.take() else {
            return Ok(false);
        };
        let result = PLAINTEXT.with_borrow_mut(|plain| {
            while !input.is_empty() {
                tls.read_tls(&mut input).map_err(|e| format!("TLS: {e}"))?;
                tls.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
                loop {
                    match tls.reader().read(plain) {
                        Ok(0) => return Ok(true),
                        Ok(n) => self.ingest(&mut plain[..n], f)?,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("TLS: {e}")),
                    }
                    if self.closed {
                        return Ok(false);
                    }
                }
            }
            Ok(false)
        });
        self.tls = Some(tls);
        result
    }

    /// Handles one chunk of received bytes.
    fn ingest(
        &mut self,
        mut data: &mut [u8],
        f: &mut dyn FnMut(&mut Out, Input<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if let State::Handshaking(hs) = &mut self.state {
            let (handshake, reader) = &mut **hs;
            let Some(used) = reader.push(data).map_err(|e| e.to_string())? else {
                return Ok(());
            };
            let head = reader.head().expect("complete head");
            handshake.validate(head).map_err(|e| e.to_string())?;
            let answers = ClientHandshake::response_extensions(head).map_err(|e| e.to_string())?;
            if let Some(answer) = answers.first() {
                let negotiated = check_response(&client_offer(), answer)
                    .map_err(|e| format!("permessage-deflate answer: {e}"))?;
                self.out.deflate = Some(negotiated.client_window_bits);
                self.decoder = Decoder::new(DecoderConfig {
                    inflate: Some(negotiated.inflate),
                    ..self.decoder.config()
                });
            }
            self.state = State::Open;
            f(&mut self.out, Input::Opened)?;
            data = &mut std::mem::take(&mut data)[used..];
        }
        if self.inbuf.is_empty() {
            let used = self.frames(data, f)?;
            self.inbuf.extend_from_slice(&data[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.inbuf);
            buf.extend_from_slice(data);
            let used = self.frames(&mut buf, f)?;
            buf.drain(..used);
            self.inbuf = buf;
        }
        Ok(())
    }

    /// Decodes whole messages from `input`; returns the bytes consumed.
    fn frames(
        &mut self,
        input: &mut [u8],
        f: &mut dyn FnMut(&mut Out, Input<'_>) -> Result<(), String>,
    ) -> Result<usize, String> {
        if let Some(size) = self.raw_size {
            let whole = input.len() / size * size;
            for message in input[..whole].chunks(size) {
                f(&mut self.out, Input::Message(message))?;
            }
            return Ok(whole);
        }
        let mut pos = 0;
        loop {
            let (used, result) = self.decoder.decode(&mut input[pos..]);
            pos += used;
            match result {
                Ok(None) => return Ok(pos),
                Ok(Some(Event::Text(text))) => f(&mut self.out, Input::Message(text.as_bytes()))?,
                Ok(Some(Event::Binary(data))) => f(&mut self.out, Input::Message(data))?,
                Ok(Some(Event::Ping(data))) => self.out.frame(OpCode::Pong, data),
                Ok(Some(Event::Pong(_))) => {}
                Ok(Some(Event::Close(frame))) => {
                    let code = frame.map_or(1005, |c| c.code.0);
                    f(&mut self.out, Input::Closed(code))?;
                    let answer = if code == 1005 {
                        Vec::new()
                    } else {
                        code.to_be_bytes().to_vec()
                    };
                    self.out.frame(OpCode::Close, &answer);
                    self.closed = true;
                    return Ok(pos);
                }
                Err(e) => return Err(format!("protocol error: {e:?}")),
            }
        }
    }
}
