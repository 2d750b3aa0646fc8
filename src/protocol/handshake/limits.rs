//! Bounds on the work and memory one request head may cost.

/// Limits applied while reading a request head.
///
/// Exceeding either limit refuses the request with
/// `431 Request Header Fields Too Large`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Most bytes the whole head may take, request line and the blank line that
    /// ends it included. Default 8192.
    pub max_header_bytes: usize,
    /// Most header fields the head may carry. Default 64.
    pub max_headers: usize,
}

impl HandshakeLimits {
    /// The default head size limit in bytes.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 8192;
    /// The default limit on the number of header fields.
    pub const DEFAULT_MAX_HEADERS: usize = 64;
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
        }
    }
}
