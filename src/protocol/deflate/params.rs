//! One `permessage-deflate` element of a `Sec-WebSocket-Extensions` header: its
//! parameters parsed and checked (RFC 7692 section 7.1), and written back.

use std::fmt;

/// The extension's registered name (RFC 7692 section 7).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The parameters of one `permessage-deflate` offer (a client's) or response (a
/// server's), RFC 7692 section 7.1.
///
/// Window sizes are base-2 logarithms of the LZ77 sliding window in bytes: 8 (256
/// bytes) to 15 (32 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateParams {
    /// `server_no_context_takeover` (section 7.1.1.1): the server resets its
    /// compression context for every message.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover` (section 7.1.1.2): the client resets its
    /// compression context for every message.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits=N` (section 7.1.2.1): the largest window the server
    /// may compress with, 8 to 15.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits[=N]` (section 7.1.2.2): `Some(None)` when present
    /// without a value (in an offer: "the client can limit its window, choose"),
    /// `Some(Some(n))` with one, 8 to 15.
    pub client_max_window_bits: Option<Option<u8>>,
}

/// Why an extension element is not a usable `permessage-deflate` offer or response.
/// An offer with such an element is declined, never the connection (RFC 7692
/// section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    /// Another extension (its name is not `permessage-deflate`).
    OtherExtension,
    /// A parameter RFC 7692 does not define.
    UnknownParameter,
    /// A parameter given twice.
    DuplicateParameter,
    /// A parameter value that is missing, not allowed, or out of range (window
    /// sizes must be decimal integers 8 to 15 without leading zeros).
    InvalidValue,
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OtherExtension => "not permessage-deflate",
            Self::UnknownParameter => "unknown permessage-deflate parameter",
            Self::DuplicateParameter => "duplicated permessage-deflate parameter",
            Self::InvalidValue => "invalid permessage-deflate parameter value",
        })
    }
}

impl std::error::Error for ParamsError {}

impl DeflateParams {
    /// Parses one extension element, e.g. `permessage-deflate; client_max_window_bits`
    /// (one comma-separated item of `Sec-WebSocket-Extensions`, as
    /// [`RequestHead::extensions`](crate::protocol::handshake::RequestHead::extensions)
    /// yields them). Names compare ASCII case-insensitively; values may be quoted.
    ///
    /// # Errors
    ///
    /// [`ParamsError`] when the element is another extension or its parameters break
    /// RFC 7692 section 7.1 (unknown, duplicated, or with an invalid value).
    pub fn parse(element: &str) -> Result<Self, ParamsError> {
        let mut parts = element.split(';');
        let name = trim(parts.next().unwrap_or_default());
        if !name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) {
            return Err(ParamsError::OtherExtension);
        }
        let mut params = Self::default();
        for part in parts {
            let (key, value) = match part.split_once('=') {
                Some((key, value)) => (trim(key), Some(unquote(trim(value))?)),
                None => (trim(part), None),
            };
            let flag = |set: &mut bool| {
                if value.is_some() {
                    return Err(ParamsError::InvalidValue);
                }
                if std::mem::replace(set, true) {
                    return Err(ParamsError::DuplicateParameter);
                }
                Ok(())
            };
            if key.eq_ignore_ascii_case("server_no_context_takeover") {
                flag(&mut params.server_no_context_takeover)?;
            } else if key.eq_ignore_ascii_case("client_no_context_takeover") {
                flag(&mut params.client_no_context_takeover)?;
            } else if key.eq_ignore_ascii_case("server_max_window_bits") {
                if params.server_max_window_bits.is_some() {
                    return Err(ParamsError::DuplicateParameter);
                }
                let value = value.ok_or(ParamsError::InvalidValue)?;
                params.server_max_window_bits = Some(window_bits(value)?);
            } else if key.eq_ignore_ascii_case("client_max_window_bits") {
                if params.client_max_window_bits.is_some() {
                    return Err(ParamsError::DuplicateParameter);
                }
                params.client_max_window_bits = Some(value.map(window_bits).transpose()?);
            } else {
                return Err(ParamsError::UnknownParameter);
            }
        }
        Ok(params)
    }
}

/// Writes the element as it goes on the wire:
/// `permessage-deflate; server_no_context_takeover; client_max_window_bits=10`.
impl fmt::Display for DeflateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PERMESSAGE_DEFLATE)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        match self.client_max_window_bits {
            Some(Some(bits)) => write!(f, "; client_max_window_bits={bits}"),
            Some(None) => f.write_str("; client_max_window_bits"),
            None => Ok(()),
        }
    }
}

fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// A token or a quoted string's content (RFC 7692 section 7.1: values may be quoted;
/// after unquoting they must still be tokens, so a backslash is never valid).
fn unquote(value: &str) -> Result<&str, ParamsError> {
    let inner = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or(ParamsError::InvalidValue)?,
        None => value,
    };
    if inner.is_empty() || inner.contains(['"', '\\', ' ', '\t']) {
        return Err(ParamsError::InvalidValue);
    }
    Ok(inner)
}

/// A window size: a decimal 8 to 15 without leading zeros (RFC 7692 section 7.1.2).
fn window_bits(value: &str) -> Result<u8, ParamsError> {
    match value.as_bytes() {
        [d @ b'8'..=b'9'] => Ok(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Ok(10 + d - b'0'),
        _ => Err(ParamsError::InvalidValue),
    }
}
