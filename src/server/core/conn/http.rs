//! Plain HTTP on the WebSocket port, as one connection lives it: the request body
//! (`Content-Length`, read whole up to `max_http_body_size`), `Expect: 100-continue`,
//! `HEAD`, and keep-alive.
//!
//! ```text
//! Handshake --head, no body / body all here--> respond --keep-alive--> KeepAlive
//!     |  \--head, body still arriving--> Body --last body byte--> respond   |
//!     |                                                        \--close--> Finishing
//!     +<------------------- first byte of the next request ---------------+
//! ```
//!
//! A body that arrived with its head (the usual case for small ones) is handed to the
//! service straight from the read buffer; only a body split across reads is copied
//! into a buffer of exactly its length. A kept-alive connection holds no buffer
//! between requests. Pipelined requests are answered in order; when the responses
//! the client has not read pass `max_backpressure`, the next response closes the
//! connection (`Connection: close`), so a client that never reads cannot grow the
//! server's memory.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::protocol::handshake::{
    HandshakeLimits, HeadReader, Refusal, RequestBody, RequestHead, has_token, request_body,
};
use crate::server::core::conn::{Connection, Env, Phase, report, ticks};
use crate::server::handler::{Handler, Request, Service};
use crate::server::http::HttpResponse;
use crate::server::stats::Stats;

/// A plain HTTP request whose body is still arriving.
#[derive(Debug)]
pub(crate) struct BodyReader {
    head: RequestHead,
    body: Vec<u8>,
    /// The `Content-Length`.
    length: usize,
}

/// What a server answers to `Expect: 100-continue` before reading the body
/// (RFC 9110 section 10.1.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl<H: Handler> Connection<H> {
    /// A plain HTTP request `head` arrived and `rest` followed it: answers it, or
    /// starts reading its body. Returns how many bytes of `rest` were its body.
    pub(super) fn http_request<S: Service<Handler = H>>(
        &mut self,
        head: RequestHead,
        rest: &[u8],
        env: &mut Env<'_, S>,
    ) -> usize {
        let length = match request_body(&head) {
            Ok(RequestBody::Empty) => 0,
            Ok(RequestBody::Length(n)) => n,
            // `classify` refuses both before a plain request gets here.
            Ok(RequestBody::Encoded) | Err(_) => {
                self.refuse(&Refusal::new(411, "send a Content-Length"), env);
                return 0;
            }
        };
        let limit = env.config.max_http_body_size;
        let Some(length) = usize::try_from(length).ok().filter(|&n| n <= limit) else {
            let reason = format!("request body over the limit of {limit} bytes");
            self.refuse(&Refusal::content_too_large(reason), env);
            return 0;
        };
        if rest.len() >= length {
            self.respond(&head, &rest[..length], env);
            return length;
        }
        if rest.is_empty() && expects_continue(&head) {
            env.reactor.cork.extend_from_slice(CONTINUE);
        }
        let mut body = Vec::with_capacity(length);
        body.extend_from_slice(rest);
        self.phase = Phase::Body(Box::new(BodyReader { head, body, length }));
        rest.len()
    }

    /// Body bytes arrived; answers the request once they are all here. Returns how
    /// many bytes of `data` belonged to the body.
    pub(super) fn receive_body<S: Service<Handler = H>>(
        &mut self,
        data: &[u8],
        env: &mut Env<'_, S>,
    ) -> usize {
        let Phase::Body(reader) = &mut self.phase else {
            return 0;
        };
        let take = (reader.length - reader.body.len()).min(data.len());
        reader.body.extend_from_slice(&data[..take]);
        if reader.body.len() == reader.length {
            let Phase::Body(reader) = std::mem::replace(&mut self.phase, Phase::Done) else {
                unreachable!("matched above");
            };
            self.respond(&reader.head, &reader.body, env);
        }
        take
    }

    /// The first byte of a kept-alive connection's next request arrived: read a head
    /// again, complete within `handshake_timeout` like the first.
    pub(super) fn next_request<S>(&mut self, env: &mut Env<'_, S>) {
        let limits = HandshakeLimits {
            max_header_bytes: env.config.max_handshake_bytes,
            max_headers: env.config.max_headers,
        };
        self.phase = Phase::Handshake(Box::new(HeadReader::new(limits)));
        self.deadline = env.reactor.now + ticks(env.config.handshake_timeout);
    }

    /// Calls `Service::http` and writes its response; then keeps the connection
    /// alive for the next request or finishes it.
    fn respond<S: Service<Handler = H>>(
        &mut self,
        head: &RequestHead,
        body: &[u8],
        env: &mut Env<'_, S>,
    ) {
        Stats::bump(&env.reactor.stats.http_requests);
        let request = Request::new(head, body, self.state.peer, &env.reactor.server);
        let mut response = match catch_unwind(AssertUnwindSafe(|| env.service.http(&request))) {
            Ok(response) => response,
            Err(panic) => {
                report::service_panic(env.reactor, &self.state, "http", &*panic);
                HttpResponse::new(500, "internal error\n")
            }
        };
        if let Some(decide) = response.take_deferred() {
            return self.defer_http(head, body, decide, env);
        }
        self.write_response(head, response, env);
    }

    /// Writes `response` to the request `head`; then keeps the connection alive for
    /// the next request or finishes it.
    pub(super) fn write_response<S>(
        &mut self,
        head: &RequestHead,
        response: HttpResponse,
        env: &mut Env<'_, S>,
    ) {
        let unread = env.reactor.cork.len() + self.state.outbox.len();
        let keep_alive =
            wants_keep_alive(head) && !response.closes() && unread <= env.config.max_backpressure;
        response.write(&mut env.reactor.cork, head.method() == "HEAD", keep_alive);
        if keep_alive {
            self.phase = Phase::KeepAlive;
            self.deadline = env.reactor.now + ticks(env.config.keep_alive_timeout);
        } else {
            self.finish(env);
        }
    }
}

/// Whether the client lets the connection persist after this request: HTTP/1.1
/// without `Connection: close` (RFC 9112 section 9.3). HTTP/1.0 connections close.
fn wants_keep_alive(head: &RequestHead) -> bool {
    head.version_minor() >= 1
        && !head
            .header_values("connection")
            .any(|value| has_token(value, "close"))
}

/// Whether an HTTP/1.1 client waits for `100 Continue` before sending the body.
fn expects_continue(head: &RequestHead) -> bool {
    head.version_minor() >= 1
        && head
            .header("expect")
            .is_some_and(|value| value.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
}

#[cfg(test)]
mod tests;
