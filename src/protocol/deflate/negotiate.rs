//! Negotiation (RFC 7692 section 7.1): the server's choice among a client's offers,
//! and the client's check of the server's response.

use super::params::{DeflateParams, ParamsError};

/// A server's permessage-deflate policy ([`crate::ServerConfig::permessage_deflate`]).
///
/// The server always answers `server_no_context_takeover`: it compresses every message
/// on its own, so a broadcast is compressed once for every subscriber and a connection
/// keeps no compression state (see docs/architecture.md, "permessage-deflate").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Messages with fewer payload bytes than this go out uncompressed (RSV1 clear):
    /// for tiny messages compression costs CPU and saves nothing. Every compressed
    /// message also pays a fixed cost, whatever its size (the compressor's reset, a
    /// few microseconds: docs/benchmarks.md section 4). Default 64 bytes.
    pub min_message_size: usize,
    /// The largest LZ77 window the server compresses with, as a base-2 logarithm of
    /// bytes, 8 (256 B) to 15 (32 KiB); a client's smaller `server_max_window_bits`
    /// wins. Values outside 8 to 15 are clamped. Default 15.
    pub server_max_window_bits: u8,
    /// The window the server asks the client to compress with at most (8 to 15,
    /// clamped), answered as `client_max_window_bits` when the client's offer allows it
    /// (RFC 7692 section 7.1.2.2: only then). Bounds the inflate state a connection
    /// keeps between messages under client context takeover. Default 15.
    pub client_max_window_bits: u8,
    /// Whether the client may keep its compression context from message to message
    /// (context takeover, better ratios for similar messages). Default false: the
    /// server answers `client_no_context_takeover` and a connection holds no inflate
    /// state between messages. When true (and the client does not offer
    /// `client_no_context_takeover` itself), each such connection keeps an inflater
    /// for its life: about 2^`client_max_window_bits` bytes of window plus about 7 KiB
    /// of state once its first compressed message arrived.
    pub client_context_takeover: bool,
    /// The compression level, 0 (stored, no compression) to 9 (smallest, slowest).
    /// Default 1: JSON and text compress well at a fraction of level 6's CPU.
    pub level: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            min_message_size: 64,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            client_context_takeover: false,
            level: 1,
        }
    }
}

/// How the peer compresses the messages a [`crate::protocol::Decoder`] inflates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateParams {
    /// The peer resets its context for every message: the decoder borrows inflate
    /// state from a per-thread pool while a compressed message is being received and
    /// holds none between messages. When false the decoder keeps an inflater for the
    /// connection's life (bounded by `window_bits`).
    pub no_context_takeover: bool,
    /// The peer's largest window, 8 to 15 (base-2 logarithm of bytes).
    pub window_bits: u8,
}

/// What a server's negotiation settled for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The window the server compresses with at most (8 to 15): the smaller of its
    /// configured window and the client's `server_max_window_bits`.
    pub server_window_bits: u8,
    /// The client resets its context for every message.
    pub client_no_context_takeover: bool,
    /// The window the client compresses with at most (8 to 15).
    pub client_window_bits: u8,
}

impl Negotiated {
    /// How the server inflates this connection's messages.
    pub fn inflate_params(&self) -> InflateParams {
        InflateParams {
            no_context_takeover: self.client_no_context_takeover,
            window_bits: self.client_window_bits,
        }
    }
}

impl DeflateConfig {
    /// Chooses among a client's extension elements (every comma-separated item of its
    /// `Sec-WebSocket-Extensions` headers, in order): the first valid
    /// `permessage-deflate` offer wins (RFC 7692 section 5.1). Offers with unknown,
    /// duplicated or invalid parameters are skipped, as are other extensions.
    ///
    /// Returns what was settled and the response element to send back, or `None` when
    /// no offer was acceptable (the connection then goes on without compression).
    pub(crate) fn accept<'a>(
        &self,
        elements: impl IntoIterator<Item = &'a str>,
    ) -> Option<(Negotiated, DeflateParams)> {
        elements
            .into_iter()
            .filter_map(|element| DeflateParams::parse(element).ok())
            .map(|offer| self.answer(&offer))
            .next()
    }

    /// The answer to one valid offer. Every valid offer can be accepted: the server
    /// can compress with any window from 8 to 15 and always resets its context.
    pub(crate) fn answer(&self, offer: &DeflateParams) -> (Negotiated, DeflateParams) {
        let own = self.server_max_window_bits.clamp(8, 15);
        let server_window_bits = offer.server_max_window_bits.map_or(own, |n| n.min(own));
        let client_no_context_takeover =
            !self.client_context_takeover || offer.client_no_context_takeover;
        let (client_window_bits, client_answer) = match offer.client_max_window_bits {
            // Section 7.1.2.2: without the parameter in the offer, the answer must not
            // have it; the client may use a 32 KiB window.
            None => (15, None),
            Some(offered) => {
                let offered = offered.unwrap_or(15);
                let bits = offered.min(self.client_max_window_bits.clamp(8, 15));
                (bits, (bits < 15).then_some(Some(bits)))
            }
        };
        let response = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover,
            server_max_window_bits: (offer.server_max_window_bits.is_some()
                || server_window_bits < 15)
                .then_some(server_window_bits),
            client_max_window_bits: client_answer,
        };
        let negotiated = Negotiated {
            server_window_bits,
            client_no_context_takeover,
            client_window_bits,
        };
        (negotiated, response)
    }
}

/// The offer [`crate::client::Client`] makes: `permessage-deflate;
/// client_max_window_bits` (what browsers send: any server window, and the server may
/// limit the client's).
pub fn client_offer() -> DeflateParams {
    DeflateParams {
        client_max_window_bits: Some(None),
        ..DeflateParams::default()
    }
}

/// What a client settled from a server's response to its `offer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNegotiated {
    /// The window the client compresses with at most (8 to 15).
    pub client_window_bits: u8,
    /// How the client inflates the server's messages.
    pub inflate: InflateParams,
}

/// Checks a server's response element against the client's `offer` (RFC 7692
/// sections 7.1.1 and 7.1.2): the client must then fail the connection on any error.
///
/// # Errors
///
/// [`ParamsError`] when the response cannot be parsed, or answers
/// `client_max_window_bits` without a value or without an offer of it, or answers a
/// `server_max_window_bits` larger than offered.
pub fn check_response(
    offer: &DeflateParams,
    response: &str,
) -> Result<ClientNegotiated, ParamsError> {
    let response = DeflateParams::parse(response)?;
    let client_window_bits = match (
        response.client_max_window_bits,
        offer.client_max_window_bits,
    ) {
        (None, offered) => offered.flatten().unwrap_or(15),
        (Some(None), _) | (Some(Some(_)), None) => return Err(ParamsError::InvalidValue),
        (Some(Some(bits)), Some(offered)) if bits > offered.unwrap_or(15) => {
            return Err(ParamsError::InvalidValue);
        }
        (Some(Some(bits)), Some(_)) => bits,
    };
    let server_window_bits = match (
        response.server_max_window_bits,
        offer.server_max_window_bits,
    ) {
        (Some(bits), Some(offered)) if bits > offered => return Err(ParamsError::InvalidValue),
        (Some(bits), _) => bits,
        (None, Some(_)) => return Err(ParamsError::InvalidValue),
        (None, None) => 15,
    };
    if offer.server_no_context_takeover && !response.server_no_context_takeover {
        return Err(ParamsError::InvalidValue);
    }
    Ok(ClientNegotiated {
        client_window_bits,
        inflate: InflateParams {
            no_context_takeover: response.server_no_context_takeover,
            window_bits: server_window_bits,
        },
    })
}
