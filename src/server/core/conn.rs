//! One connection's state machine, without I/O: bytes in, handler calls and bytes out.
//!
//! ```text
//! Handshake --101--> Open --we send Close--> Closing --peer's Close--> Finishing --> Done
//!   |  ^               |  \--peer's Close / protocol error---------->  Finishing
//!   |  |               \--EOF, idle timeout---------------------------------------> Done
//!   |  +--bytes-- KeepAlive <--HTTP response (keep-alive)-- Body <--HTTP head + body--+
//!   \--HTTP response (close), refusal--> Finishing;  timeout, EOF --> Done
//! ```
//!
//! Plain HTTP (`conn/http.rs`): a request's body is read whole (`Body`), the
//! response written, and a kept-alive connection waits (`KeepAlive`, no buffer) for
//! the next request head.
//!
//! The reactor feeds received bytes to [`Connection::receive`], writes out what the
//! connection queued (the reactor's cork buffer, then the outbox), and drops the socket
//! at `Done`. In `Finishing` it writes what is left, shuts down its side of the TCP
//! connection and waits (bounded by `close_timeout`) for the peer's EOF, so the last
//! frame is never lost to a reset.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::protocol::close::CloseFrame;
use crate::protocol::frame::OpCode;
use crate::protocol::handshake::{
    HandshakeLimits, HeadReader, Refusal, RequestHead, RequestKind, classify, write_accept_response,
};
use crate::protocol::{CloseCode, Decoder, DecoderConfig, Event, Role};
use crate::server::admission::{self, rate::Verdict};
use crate::server::config::ServerConfig;
use crate::server::conn_api::Conn;
use crate::server::core::conn::state::ConnState;
use crate::server::core::outbox::Delivery;
use crate::server::core::reactor_state::ReactorState;
use crate::server::core::timer::{TICK, Tick};
use crate::server::handler::{Accepted, CloseInfo, Handler, Message, Outcome, Request, Service};
use crate::server::metrics::counters::RefusalReason;
use crate::server::stats::Stats;

/// What a connection needs from its reactor while it is served.
pub(crate) struct Env<'a, S> {
    pub service: &'a S,
    pub config: &'a ServerConfig,
    pub reactor: &'a mut ReactorState,
}

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase<H> {
    /// Reading the HTTP request head (boxed: only connections in their handshake pay
    /// for it).
    Handshake(Box<HeadReader>),
    /// Reading the body of a plain HTTP request (see `conn/http.rs`).
    Body(Box<http::BodyReader>),
    /// A kept-alive HTTP connection between requests: holds nothing, waits (bounded
    /// by `keep_alive_timeout`) for the next request's first byte.
    KeepAlive,
    /// Waiting for the answer the service deferred to another thread (see
    /// `conn/pending.rs`): an upgrade's or a plain HTTP request's.
    Pending(Box<pending::Deferred>),
    /// Upgraded: frames go to the handler.
    Open { decoder: Decoder, handler: H },
    /// We sent a close frame; reading (and discarding) until the peer's close frame.
    Closing { decoder: Decoder },
    /// Nothing more to read or say: write what is queued, then end the connection.
    /// With `linger` (HTTP responses, protocol errors), shut down our side first and
    /// wait for the peer's EOF, so unread bytes cannot turn our last words into a
    /// reset; after a completed close handshake the peer has nothing more to send, so
    /// the socket is closed as soon as it is written.
    Finishing { linger: bool },
    /// Drop the socket now.
    Done,
}

/// A connection: its handler and protocol state, and what is queued for it.
#[derive(Debug)]
pub(crate) struct Connection<H> {
    pub state: ConnState,
    pub phase: Phase<H>,
    /// A partial frame header or control frame left over from the last read (at most
    /// 131 bytes; `None` almost always).
    pending: Option<Box<[u8]>>,
    /// When the current phase's fixed deadline passes (handshake, closing, finishing).
    deadline: Tick,
}

/// Converts a duration to the ticks to add to the current tick for a deadline at least
/// `duration` away: rounded up, plus one for the part of the current tick already gone
/// (the current tick is rounded down, so without it a timeout could fire up to a tick
/// early).
pub(crate) fn ticks(duration: std::time::Duration) -> Tick {
    duration.as_millis().div_ceil(TICK.as_millis()) as Tick + 1
}

impl<H: Handler> Connection<H> {
    /// A connection just accepted at tick `now`.
    pub fn new(state: ConnState, config: &ServerConfig, now: Tick) -> Self {
        let limits = HandshakeLimits {
            max_header_bytes: config.max_handshake_bytes,
            max_headers: config.max_headers,
        };
        Self {
            state,
            phase: Phase::Handshake(Box::new(HeadReader::new(limits))),
            pending: None,
            deadline: now + ticks(config.handshake_timeout),
        }
    }

    /// Drops a connection just accepted, before anything was read: it is done.
    pub fn abandon(&mut self) {
        self.phase = Phase::Done;
    }

    /// Whether the socket should be dropped now.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Whether the connection only waits to write what is queued and end.
    pub fn is_finishing(&self) -> bool {
        matches!(self.phase, Phase::Finishing { .. })
    }

    /// Whether a finishing connection waits for the peer's EOF before closing.
    pub fn lingers(&self) -> bool {
        matches!(self.phase, Phase::Finishing { linger: true })
    }

    /// Whether the WebSocket is open (handler live).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// How many bytes [`Connection::take_pending`] would copy out.
    pub fn pending_len(&self) -> usize {
        self.pending.as_ref().map_or(0, |pending| pending.len())
    }

    /// Copies the bytes left over from the last read to the front of `buf`; returns how
    /// many, so the next read goes after them.
    pub fn take_pending(&mut self, buf: &mut [u8]) -> usize {
        let Some(pending) = self.pending.take() else {
            return 0;
        };
        buf[..pending.len()].copy_from_slice(&pending);
        pending.len()
    }

    /// Keeps `bytes` (a partial frame) for the next read.
    fn keep(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.pending = Some(bytes.into());
        }
    }

    /// Sends `response` (an HTTP refusal made before reading anything) and ends. Over
    /// TLS (`tls`) the response waits for the TLS handshake, which
    /// `handshake_timeout` bounds as it does any other: the connection ends at the
    /// earlier of the two timeouts.
    pub fn finish_with(
        &mut self,
        response: bytes::Bytes,
        config: &ServerConfig,
        now: Tick,
        tls: bool,
    ) {
        self.state.outbox.push(response);
        self.phase = Phase::Finishing { linger: true };
        let timeout = if tls {
            config.close_timeout.min(config.handshake_timeout)
        } else {
            config.close_timeout
        };
        self.deadline = now + ticks(timeout);
    }

    /// Handles bytes received (after any pending bytes, already in front of them).
    pub fn receive<S: Service<Handler = H>>(&mut self, data: &mut [u8], env: &mut Env<'_, S>) {
        self.state.last_seen = env.reactor.now;
        self.state.ping_outstanding = false;
        let mut pos = 0;
        loop {
            let rest = &mut data[pos..];
            match &mut self.phase {
                Phase::Handshake(reader) => match reader.push(rest) {
                    Ok(None) => return,
                    Ok(Some((head, used))) => {
                        pos += used;
                        pos += self.upgrade(head, &data[pos..], env);
                    }
                    Err(refusal) => return self.refuse(&refusal, env),
                },
                Phase::Body(_) => {
                    pos += self.receive_body(rest, env);
                    if matches!(self.phase, Phase::Body(_)) {
                        return;
                    }
                }
                Phase::KeepAlive if rest.is_empty() => return,
                Phase::KeepAlive => self.next_request(env),
                Phase::Pending(deferred) => {
                    deferred.hold(rest);
                    return;
                }
                Phase::Open { .. } => {
                    pos += self.receive_frames(rest, env);
                    if self.is_open() {
                        return;
                    }
                }
                Phase::Closing { .. } => {
                    self.receive_while_closing(rest, env);
                    return;
                }
                Phase::Finishing { .. } | Phase::Done => return,
            }
        }
    }

    /// The peer ended its side of the TCP connection.
    pub fn eof<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        if self.is_open() {
            self.leave_open(CloseCode::ABNORMAL, "", false, env);
        }
        self.phase = match self.phase {
            // A client that half-closed after its request still gets the response.
            Phase::KeepAlive if self.owes_bytes(env) => {
                self.deadline = env.reactor.now + ticks(env.config.close_timeout);
                Phase::Finishing { linger: false }
            }
            _ => Phase::Done,
        };
    }

    /// The peer closed its side cleanly and still reads (a TLS close_notify, RFC 8446
    /// §6.1): as [`Connection::eof`], except that the connection first writes what is
    /// queued and its own close_notify, then ends without waiting for the peer's EOF
    /// (bounded by `close_timeout`).
    pub fn peer_closed<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        self.eof(env);
        if self.is_done() {
            self.phase = Phase::Finishing { linger: false };
            self.deadline = env.reactor.now + ticks(env.config.close_timeout);
        }
    }

    /// The transport under the connection failed in a way the peer can still be
    /// told about (a TLS alert is queued): the handler hears 1006 (Abnormal Closure,
    /// RFC 6455 §7.1.5: no close frame can follow) and the connection writes what is
    /// queued, then ends, waiting (bounded) for the peer's EOF.
    pub fn fail_transport<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        if self.is_open() {
            self.leave_open(CloseCode::ABNORMAL, "", false, env);
        }
        self.finish(env);
    }

    /// The server's own code failed while serving this connection: the handler hears
    /// 1011 (Internal Error, RFC 6455 §7.4.1) and the connection is done.
    pub fn fail<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        if self.is_open() {
            self.leave_open(CloseCode::INTERNAL_ERROR, "internal error", false, env);
        }
        self.phase = Phase::Done;
    }

    /// The server shuts down: close open connections with 1001, drop the rest.
    pub fn shut_down<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        match self.phase {
            Phase::Open { .. } => {
                self.state
                    .start_close(CloseCode::GOING_AWAY, "server shutting down", None);
                self.after_callbacks(env);
            }
            Phase::Handshake(_) | Phase::Body(_) => self.phase = Phase::Done,
            Phase::Pending(_) => self.give_up_waiting("server shutting down", env),
            Phase::KeepAlive if self.owes_bytes(env) => {
                self.phase = Phase::Finishing { linger: false };
            }
            Phase::KeepAlive => self.phase = Phase::Done,
            _ => {}
        }
    }

    /// The socket took everything queued; tell the handler if it was waiting for that.
    pub fn drained<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        if self.state.needs_drain && self.state.outbox.len() < env.config.max_backpressure {
            self.state.needs_drain = false;
            self.call(env, |handler, conn| handler.on_drain(conn));
        }
    }

    /// Broadcast frames for this connection, which is not being served right now.
    /// Applies the backpressure policy.
    pub fn deliver<S: Service<Handler = H>>(
        &mut self,
        delivery: Delivery<'_>,
        env: &mut Env<'_, S>,
    ) {
        if !self.is_open() {
            return;
        }
        self.state.deliver(delivery, env.config, &env.reactor.stats);
        if self.state.closing.is_some() {
            self.after_callbacks(env);
        }
    }

    /// The tick at which [`Connection::on_timer`] has something to do, if any.
    pub fn next_due(&self, config: &ServerConfig) -> Option<Tick> {
        match &self.phase {
            Phase::Handshake(_)
            | Phase::Body(_)
            | Phase::Pending(_)
            | Phase::KeepAlive
            | Phase::Closing { .. }
            | Phase::Finishing { .. } => Some(self.deadline),
            Phase::Open { .. } => {
                let interval = config.ping_interval?;
                Some(if self.state.ping_outstanding {
                    self.deadline
                } else {
                    self.state.last_seen + ticks(interval)
                })
            }
            Phase::Done => None,
        }
    }

    /// Time passed: handshake, close and idle timeouts, and automatic pings.
    pub fn on_timer<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        let now = env.reactor.now;
        match &self.phase {
            Phase::Handshake(_) | Phase::Body(_) if now >= self.deadline => {
                Stats::bump(&env.reactor.stats.handshake_timeouts);
                self.phase = Phase::Done;
            }
            Phase::KeepAlive if now >= self.deadline => {
                Stats::bump(&env.reactor.stats.http_idle_timeouts);
                self.phase = Phase::Done;
            }
            Phase::Pending(_) if now >= self.deadline => {
                Stats::bump(&env.reactor.stats.handshake_timeouts);
                self.give_up_waiting("no answer in time", env);
            }
            Phase::Closing { .. } | Phase::Finishing { .. } if now >= self.deadline => {
                self.phase = Phase::Done;
            }
            Phase::Open { .. } => {
                let Some(interval) = env.config.ping_interval else {
                    return;
                };
                if self.state.ping_outstanding {
                    if now < self.deadline {
                        return;
                    }
                    if std::mem::take(&mut self.state.wrote_since_ping) {
                        // Still reading what was queued before the ping (a large
                        // message to a slow link): alive; it gets another
                        // `pong_timeout` to reach the ping and answer it.
                        self.deadline = now + ticks(env.config.pong_timeout);
                        return;
                    }
                    Stats::bump(&env.reactor.stats.idle_timeouts);
                    self.leave_open(CloseCode::ABNORMAL, "idle timeout", false, env);
                } else if now >= self.state.last_seen + ticks(interval) {
                    self.state.queue_control(OpCode::Ping, b"", None);
                    self.state.ping_outstanding = true;
                    self.state.wrote_since_ping = false;
                    self.deadline = now + ticks(env.config.pong_timeout);
                }
            }
            _ => {}
        }
    }

    /// A complete request head arrived, `rest` the bytes after it: answer it. Returns
    /// how many bytes of `rest` it took (a plain request's body).
    fn upgrade<S: Service<Handler = H>>(
        &mut self,
        head: RequestHead,
        rest: &[u8],
        env: &mut Env<'_, S>,
    ) -> usize {
        let kind = classify(&head);
        let upgrade = matches!(kind, Ok(RequestKind::WebSocket { .. }));
        if let Err((refusal, reason)) =
            admission::at_head(&head, &mut self.state, &env.config.admission, upgrade)
        {
            self.refuse_for(&refusal, reason, env);
            return 0;
        }
        let key = match kind {
            Err(refusal) => {
                self.refuse(&refusal, env);
                return 0;
            }
            Ok(RequestKind::Http) => return self.http_request(head, rest, env),
            Ok(RequestKind::WebSocket { key }) => key,
        };
        let request = Request::new(&head, &[], self.state.peer, &env.reactor.server);
        let upgrade = catch_unwind(AssertUnwindSafe(|| env.service.upgrade(&request)));
        let accepted = match upgrade {
            Ok(upgrade) => match upgrade.outcome {
                Outcome::Accept(accepted) => accepted,
                Outcome::Refuse(refusal) => {
                    self.refuse_for(&refusal, RefusalReason::Service, env);
                    return 0;
                }
                Outcome::Defer(decide) => {
                    self.defer_upgrade(head, decide, env);
                    return 0;
                }
            },
            Err(panic) => {
                report::service_panic(env.reactor, &self.state, "upgrade", &*panic);
                self.refuse_for(
                    &Refusal::new(500, "internal error"),
                    RefusalReason::Service,
                    env,
                );
                return 0;
            }
        };
        self.accept_upgrade(&head, &key, accepted, env);
        0
    }

    /// Answers an accepted upgrade (`key`: its `Sec-WebSocket-Key`) with `101`, with
    /// permessage-deflate negotiated from the offers in `head`, and opens the
    /// connection: `on_open` runs.
    fn accept_upgrade<S: Service<Handler = H>>(
        &mut self,
        head: &RequestHead,
        key: &[u8],
        accepted: Accepted<H>,
        env: &mut Env<'_, S>,
    ) {
        if let Some(protocol) = accepted.protocol.as_deref()
            && !head.protocols().any(|offered| offered == protocol)
        {
            report::unoffered_protocol(&self.state, protocol);
            self.refuse_for(
                &Refusal::new(500, "internal error"),
                RefusalReason::Service,
                env,
            );
            return;
        }
        let deflate = match &env.config.permessage_deflate {
            Some(config) if accepted.compression => config.accept(head.extensions()),
            _ => None,
        };
        let extension = deflate.map(|(_, response)| response.to_string());
        let mut headers: Vec<(&str, &str)> = accepted
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if let Some(extension) = &extension {
            headers.push(("Sec-WebSocket-Extensions", extension));
        }
        write_accept_response(
            &mut env.reactor.cork,
            key,
            accepted.protocol.as_deref(),
            &headers,
        );
        self.state.protocol = accepted.protocol.map(String::into_boxed_str);
        self.state.deflate_window = deflate.map(|(negotiated, _)| negotiated.server_window_bits);
        let decoder = Decoder::new(DecoderConfig {
            role: Role::Server,
            max_frame_size: env.config.max_frame_size,
            max_message_size: env.config.max_message_size,
            allowed_rsv: 0,
            inflate: deflate.map(|(negotiated, _)| negotiated.inflate_params()),
        });
        self.phase = Phase::Open {
            decoder,
            handler: accepted.handler,
        };
        env.reactor
            .stats
            .open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.call(env, |handler, conn| handler.on_open(conn));
        self.after_callbacks(env);
    }

    /// Refuses a request that failed the server's own checks.
    fn refuse<S>(&mut self, refusal: &Refusal, env: &mut Env<'_, S>) {
        self.refuse_for(refusal, RefusalReason::of_status(refusal.status), env);
    }

    /// Sends `refusal` and ends the connection.
    fn refuse_for<S>(&mut self, refusal: &Refusal, reason: RefusalReason, env: &mut Env<'_, S>) {
        Stats::bump(&env.reactor.stats.handshake_refusals);
        env.reactor.counters.refused(reason);
        report::refusal(&self.state, refusal, reason);
        refusal.write(&mut env.reactor.cork);
        self.finish(env);
    }

    /// Whether bytes for this connection wait to be written (this turn's or queued).
    fn owes_bytes<S>(&self, env: &Env<'_, S>) -> bool {
        !self.state.outbox.is_empty() || !env.reactor.cork.is_empty()
    }

    fn finish<S>(&mut self, env: &mut Env<'_, S>) {
        self.phase = Phase::Finishing { linger: true };
        self.deadline = env.reactor.now + ticks(env.config.close_timeout);
    }

    /// Decodes frames and calls the handler; returns the bytes consumed.
    fn receive_frames<S: Service<Handler = H>>(
        &mut self,
        data: &mut [u8],
        env: &mut Env<'_, S>,
    ) -> usize {
        let Phase::Open { decoder, handler } = &mut self.phase else {
            return 0;
        };
        let mut pos = 0;
        loop {
            let (used, result) = decoder.decode(&mut data[pos..]);
            pos += used;
            let mut conn = Conn {
                state: &mut self.state,
                reactor: env.reactor,
                config: env.config,
            };
            let event = match result {
                Ok(Some(event)) => event,
                Ok(None) => {
                    decoder.release();
                    self.keep(&data[pos..]);
                    return data.len();
                }
                Err(error) => {
                    Stats::bump(&env.reactor.stats.protocol_errors);
                    let code = error.close_code();
                    report::protocol_close(&self.state, code, error.reason());
                    self.state
                        .start_close(code, error.reason(), Some(&mut env.reactor.cork));
                    self.leave_open(code, error.reason(), false, env);
                    self.phase = Phase::Finishing { linger: true };
                    return data.len();
                }
            };
            #[cfg(test)]
            if let Event::Text(text) = &event {
                crate::server::testing::on_read(text);
            }
            let verdict = admission::rate::check(&mut conn, &event);
            if verdict == Verdict::Close {
                conn.close(CloseCode::POLICY_VIOLATION, admission::rate::CLOSE_REASON);
                self.after_callbacks(env);
                return pos;
            }
            let (callback, outcome) = match event {
                _ if verdict == Verdict::Drop => (
                    "on_rate_limited",
                    guarded(|| handler.on_rate_limited(&mut conn)),
                ),
                Event::Text(text) => {
                    conn.reactor.counters.received(text.len());
                    let message = Message::Text(text);
                    (
                        "on_message",
                        guarded(|| handler.on_message(&mut conn, message)),
                    )
                }
                Event::Binary(bytes) => {
                    conn.reactor.counters.received(bytes.len());
                    let message = Message::Binary(bytes);
                    (
                        "on_message",
                        guarded(|| handler.on_message(&mut conn, message)),
                    )
                }
                Event::Ping(payload) => {
                    conn.state
                        .queue_control(OpCode::Pong, payload, Some(&mut conn.reactor.cork));
                    ("on_ping", guarded(|| handler.on_ping(&mut conn, payload)))
                }
                Event::Pong(payload) => {
                    ("on_pong", guarded(|| handler.on_pong(&mut conn, payload)))
                }
                Event::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(CloseFrame { code, reason }) => (code, reason.to_owned()),
                        None => (CloseCode::NO_STATUS, String::new()),
                    };
                    // Answer with the same code (or an empty close for "no status").
                    self.state
                        .start_close(code, "", Some(&mut env.reactor.cork));
                    self.leave_open(code, &reason, true, env);
                    self.phase = Phase::Finishing { linger: false };
                    return data.len();
                }
            };
            if let Err(panic) = outcome {
                report::handler_panic(env.reactor, &self.state, callback, &*panic);
                self.state.start_close(
                    CloseCode::INTERNAL_ERROR,
                    "internal error",
                    Some(&mut env.reactor.cork),
                );
            }
            if self.state.closing.is_some() {
                self.after_callbacks(env);
                return pos;
            }
        }
    }

    /// After our close frame: look for the peer's, discard everything else.
    fn receive_while_closing<S: Service<Handler = H>>(
        &mut self,
        data: &mut [u8],
        env: &mut Env<'_, S>,
    ) {
        let Phase::Closing { decoder } = &mut self.phase else {
            return;
        };
        let mut pos = 0;
        loop {
            let (used, result) = decoder.decode(&mut data[pos..]);
            pos += used;
            match result {
                Ok(Some(Event::Close(_))) => {
                    self.phase = Phase::Finishing { linger: false };
                    return;
                }
                Err(_) => return self.finish(env),
                Ok(Some(_)) => {}
                Ok(None) => {
                    decoder.release();
                    self.keep(&data[pos..]);
                    return;
                }
            }
        }
    }

    /// Runs a handler callback with this connection, catching a panic (close 1011).
    fn call<S: Service<Handler = H>>(
        &mut self,
        env: &mut Env<'_, S>,
        callback: impl FnOnce(&mut H, &mut Conn<'_>),
    ) {
        let Phase::Open { handler, .. } = &mut self.phase else {
            return;
        };
        let mut conn = Conn {
            state: &mut self.state,
            reactor: env.reactor,
            config: env.config,
        };
        if let Err(panic) = guarded(|| callback(handler, &mut conn)) {
            report::handler_panic(env.reactor, &self.state, "a callback", &*panic);
            self.state.start_close(
                CloseCode::INTERNAL_ERROR,
                "internal error",
                Some(&mut env.reactor.cork),
            );
        }
    }

    /// If a close frame went out while open, leave the open state.
    fn after_callbacks<S: Service<Handler = H>>(&mut self, env: &mut Env<'_, S>) {
        if !self.is_open() {
            return;
        }
        if let Some(sent) = self.state.closing.as_deref() {
            let (code, reason) = (sent.0, sent.1.clone());
            // We started the handshake: keep decoding to find the peer's answer.
            if let Some(decoder) = self.leave_open(code, &reason, false, env) {
                self.phase = Phase::Closing { decoder };
            }
        }
    }

    /// Leaves the open state (for `Done` until the caller says otherwise): unsubscribes,
    /// tells the handler, drops it. Returns the decoder, which may read on.
    fn leave_open<S: Service<Handler = H>>(
        &mut self,
        code: CloseCode,
        reason: &str,
        by_peer: bool,
        env: &mut Env<'_, S>,
    ) -> Option<Decoder> {
        let previous = std::mem::replace(&mut self.phase, Phase::Done);
        let Phase::Open {
            mut handler,
            decoder,
        } = previous
        else {
            self.phase = previous;
            return None;
        };
        self.state.forget_handles();
        for sub in self.state.subscriptions.drain(..) {
            env.reactor.topics.unsubscribe(sub);
        }
        self.state.subscriptions = Vec::new();
        for sub in std::mem::take(&mut self.state.channel_subs) {
            env.reactor.channels.unsubscribe(sub);
        }
        env.reactor
            .stats
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        env.reactor.counters.closed(code);
        let info = CloseInfo {
            code,
            reason,
            by_peer,
        };
        // The handler is the application's to the end: a panic in its `Drop` is a
        // handler panic too.
        if let Err(panic) = guarded(move || {
            handler.on_close(info);
            drop(handler);
        }) {
            report::handler_panic(env.reactor, &self.state, "on_close", &*panic);
        }
        self.deadline = env.reactor.now + ticks(env.config.close_timeout);
        Some(decoder)
    }
}

/// Runs `f`, catching a panic.
fn guarded(f: impl FnOnce()) -> Result<(), Box<dyn Any + Send>> {
    catch_unwind(AssertUnwindSafe(f))
}

mod handle_ops;
mod http;
pub(crate) mod pending;
mod report;
pub(crate) mod state;

#[cfg(test)]
mod tests;
