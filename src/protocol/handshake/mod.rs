//! The HTTP/1.1 opening handshake (RFC 6455 section 4), server and client side.
//!
//! No I/O happens here: bytes go in, parsed heads, decisions and response bytes
//! come out.
//!
//! # Server side
//!
//! 1. Feed received bytes to a [`HeadReader`] until it yields a [`RequestHead`]
//!    and the number of bytes of that push that belonged to the head; whatever
//!    follows (early WebSocket frames or an HTTP body) stays with the caller.
//! 2. [`classify`] the head: a valid WebSocket upgrade ([`RequestKind::WebSocket`]
//!    with the client's [`WebSocketKey`]), plain HTTP ([`RequestKind::Http`]) or a
//!    [`Refusal`] to [`write`](Refusal::write) before closing.
//! 3. Answer an upgrade with [`write_accept_response`], or a plain request with
//!    [`write_http_response`].
//!
//! The work is bounded: a head longer than [`HandshakeLimits::max_header_bytes`]
//! or with more than [`HandshakeLimits::max_headers`] header fields is refused with
//! `431 Request Header Fields Too Large` (RFC 6585), and the cost of reading a head
//! is linear in its length however it is split across pushes.
//!
//! # Client side
//!
//! [`ClientHandshake::new`] builds the upgrade request with a fresh random key;
//! a [`ResponseReader`] collects the server's response head, and
//! [`ClientHandshake::validate`] checks it and returns the negotiated subprotocol.
//!
//! # Example
//!
//! ```
//! use wavecore::internals::handshake::{
//!     ClientHandshake, HandshakeLimits, HeadReader, RequestKind, ResponseReader, classify,
//!     write_accept_response,
//! };
//!
//! let (client, request) = ClientHandshake::new("example.com", "/chat", &["chat"], &[]);
//!
//! // Server: the request may arrive in any number of pieces.
//! let mut reader = HeadReader::new(HandshakeLimits::default());
//! let (head, used) = reader.push(&request)?.expect("whole head received");
//! assert_eq!(used, request.len());
//! let mut response = Vec::new();
//! match classify(&head)? {
//!     RequestKind::WebSocket { key } => {
//!         let protocol = head.protocols().find(|p| *p == "chat");
//!         write_accept_response(&mut response, &key, protocol, &[]);
//!     }
//!     RequestKind::Http => unreachable!("this is an upgrade"),
//! }
//!
//! // Client.
//! let mut response_reader = ResponseReader::default();
//! assert_eq!(response_reader.push(&response)?, Some(response.len()));
//! let protocol = client.validate(response_reader.head().unwrap_or_default())?;
//! assert_eq!(protocol.as_deref(), Some("chat"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod accept;
mod body;
mod classify;
mod client;
mod limits;
mod reader;
mod refusal;
mod request;
mod response;
mod response_reader;
mod scan;
mod target;
mod tokens;

pub use accept::{accept_key, accept_key_bytes, write_accept_response};
pub use body::{RequestBody, request_body};
pub use classify::{RequestKind, WebSocketKey, classify};
pub use client::{ClientHandshake, HandshakeError};
pub use limits::HandshakeLimits;
pub use reader::HeadReader;
pub use refusal::Refusal;
pub use request::RequestHead;
pub use response::write_http_response;
pub(crate) use response::{closing_fields, is_upgrade_field, write_http_head};
pub use response_reader::ResponseReader;
pub use target::TargetForm;
pub(crate) use tokens::has_token;
