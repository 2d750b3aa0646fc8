//! The HTTP/1.1 opening handshake (RFC 6455 section 4).
//!
//! PLACEHOLDER: being written.
