//! Incoming bytes to messages: frame decoding, unmasking, fragment reassembly, UTF-8
//! checks and limits.
//!
//! A [`Decoder`] is fed the bytes a connection received and hands back [`Event`]s one at
//! a time. A data message that arrives whole (one final frame, entirely in the input)
//! is unmasked in place and handed out as a slice of the caller's buffer: no copy, no
//! allocation. Only fragmented or partially received messages are copied, into a
//! per-message buffer that is released once the message has been delivered.
//!
//! With permessage-deflate negotiated ([`DecoderConfig::inflate`]), a message whose
//! first frame has RSV1 set is inflated as its frames arrive, all fragments as one
//! DEFLATE stream, into that buffer: `max_message_size` bounds the inflated size and is
//! enforced while inflating, and text is UTF-8-checked on the inflated bytes.

use super::close::{CloseFrame, parse_close_payload};
use super::deflate::{InflateParams, Inflater, pool};
use super::error::ProtocolError;
use super::frame::{OpCode, RSV1, Role, decode_header};
use super::mask::apply_mask;
use super::utf8::{self, Utf8Stream};

/// Limits and settings of a [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Which side decodes. Servers require masked frames; clients unmasked ones.
    pub role: Role,
    /// The largest frame payload accepted; larger fails with 1009. Default 16 MiB.
    /// Values above 4 GiB - 1 act as 4 GiB - 1.
    pub max_frame_size: usize,
    /// The largest message accepted (all fragments together); larger fails with 1009.
    /// Default 16 MiB. Values above 4 GiB - 1 act as 4 GiB - 1.
    pub max_message_size: usize,
    /// RSV bits defined by negotiated extensions. Default 0 (none).
    pub allowed_rsv: u8,
    /// permessage-deflate (RFC 7692), when negotiated: RSV1 on a message's first frame
    /// then marks it compressed, and it is inflated. Default `None`.
    pub inflate: Option<InflateParams>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            role: Role::Server,
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            allowed_rsv: 0,
            inflate: None,
        }
    }
}

/// Something the peer sent, borrowed from the input or from the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message (valid UTF-8).
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping with its payload (at most 125 bytes).
    Ping(&'a [u8]),
    /// A pong with its payload (at most 125 bytes).
    Pong(&'a [u8]),
    /// A close frame: its code and reason, or `None` when it carried no code.
    Close(Option<CloseFrame<'a>>),
}

/// A data message whose fragments or pieces are being collected.
#[derive(Debug)]
struct OpenMessage {
    text: bool,
    /// RSV1 was set on the first frame: `payload` holds inflated bytes.
    compressed: bool,
    /// Compressed bytes received so far (compressed messages only).
    compressed_len: u64,
    payload: Vec<u8>,
    utf8: Utf8Stream,
    /// The frame whose payload is still arriving, if any.
    frame: Option<OpenFrame>,
}

/// A data frame whose header was read but whose payload is still arriving.
#[derive(Debug, Clone, Copy)]
struct OpenFrame {
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    mask_offset: usize,
}

/// What one decoding step found; holds positions, never borrows.
enum Step {
    /// More input is needed before anything else can happen.
    NeedMore,
    /// `used` bytes were consumed without completing an event.
    Consumed(usize),
    /// A whole data message sits in the input at `start..end`, unmasked and checked.
    Whole {
        text: bool,
        start: usize,
        end: usize,
    },
    /// The open message was completed by consuming `used` bytes.
    Assembled { used: usize },
    /// A control frame sits in the input at `start..end`, unmasked.
    Control {
        opcode: OpCode,
        start: usize,
        end: usize,
    },
}

/// [`DecoderConfig`] packed small, since every connection holds one.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_size: u32,
    max_message_size: u32,
    role: Role,
    allowed_rsv: u8,
    inflate: Option<InflateParams>,
}

impl From<DecoderConfig> for Limits {
    fn from(config: DecoderConfig) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            max_frame_size: clamp(config.max_frame_size),
            max_message_size: clamp(config.max_message_size),
            role: config.role,
            allowed_rsv: config.allowed_rsv,
            inflate: config.inflate,
        }
    }
}

/// At most this much is reserved up front for a message still arriving; the buffer
/// grows past it as bytes come, so a peer cannot make us reserve memory it never sends.
const MAX_RESERVE: usize = 256 << 10;

/// Turns incoming bytes into [`Event`]s. One per connection; holds no buffer while no
/// message is partially received.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Boxed so that a connection between messages pays one pointer for it.
    message: Option<Box<OpenMessage>>,
    /// The open message's buffer was handed out by the previous call; drop it next call.
    delivered: bool,
    /// The inflate state: lent by the thread's pool while a compressed message is being
    /// received (peer without context takeover), or the connection's own for its life
    /// (with context takeover).
    inflater: Option<Box<Inflater>>,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            limits: Limits::from(config),
            message: None,
            delivered: false,
            inflater: None,
        }
    }

    /// The decoder's settings.
    pub fn config(&self) -> DecoderConfig {
        DecoderConfig {
            role: self.limits.role,
            max_frame_size: self.limits.max_frame_size as usize,
            max_message_size: self.limits.max_message_size as usize,
            allowed_rsv: self.limits.allowed_rsv,
            inflate: self.limits.inflate,
        }
    }

    /// Whether a data message is partially received (its bytes are held here).
    pub fn is_mid_message(&self) -> bool {
        self.message.is_some() && !self.delivered
    }

    /// Bytes of message payload held while it is partially received.
    pub fn buffered(&self) -> usize {
        match &self.message {
            Some(m) if !self.delivered => m.payload.len(),
            _ => 0,
        }
    }

    /// Whether inflate state is held (tests: none between messages without context
    /// takeover).
    #[cfg(test)]
    pub(crate) fn holds_inflater(&self) -> bool {
        self.inflater.is_some()
    }

    /// Bytes reserved for the message in progress, delivered or not (tests: bounded).
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.payload.capacity())
    }

    /// Releases the buffer of a message delivered by the previous call, if any.
    ///
    /// [`Decoder::decode`] does this itself at its start; call this after the last
    /// `decode` of a batch so an idle connection holds no buffer.
    pub fn release(&mut self) {
        if self.delivered {
            self.message = None;
            self.delivered = false;
        }
    }

    /// Decodes from the front of `input` until one event is ready or more input is
    /// needed, unmasking in place.
    ///
    /// Returns the number of bytes consumed and the event, if any. `Ok(None)` means all
    /// bytes that could be used were; the caller keeps `input[consumed..]` (at most a
    /// partial header or a partial control frame, 131 bytes) and passes it again, with
    /// what arrives next, in front of the next call. Data-frame payload is always
    /// consumed as it arrives, so a large frame never has to sit in the caller's buffer.
    ///
    /// After an error the connection must be failed with
    /// [`ProtocolError::close_code`]; the decoder must not be used again.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> (usize, Result<Option<Event<'a>>, ProtocolError>) {
        self.release();
        let mut pos = 0;
        loop {
            let step = match self.step(&mut input[pos..]) {
                Ok(step) => step,
                Err(e) => return (pos, Err(e)),
            };
            match step {
                Step::NeedMore => return (pos, Ok(None)),
                Step::Consumed(used) => pos += used,
                Step::Whole { text, start, end } => {
                    let payload = &input[pos + start..pos + end];
                    let event = if text {
                        // SAFETY: `step` validated these bytes as UTF-8.
                        Event::Text(unsafe { std::str::from_utf8_unchecked(payload) })
                    } else {
                        Event::Binary(payload)
                    };
                    return (pos + end, Ok(Some(event)));
                }
                Step::Assembled { used } => {
                    self.delivered = true;
                    let message = self.message.as_ref().expect("an assembled message");
                    let event = if message.text {
                        // SAFETY: every piece went through `Utf8Stream::feed` and the
                        // stream was finished, so the whole payload is valid UTF-8.
                        Event::Text(unsafe { std::str::from_utf8_unchecked(&message.payload) })
                    } else {
                        Event::Binary(&message.payload)
                    };
                    return (pos + used, Ok(Some(event)));
                }
                Step::Control { opcode, start, end } => {
                    let payload = &input[pos + start..pos + end];
                    let event = match opcode {
                        OpCode::Ping => Ok(Event::Ping(payload)),
                        OpCode::Pong => Ok(Event::Pong(payload)),
                        _ => parse_close_payload(payload).map(Event::Close),
                    };
                    return (pos + end, event.map(Some));
                }
            }
        }
    }

    /// One step: finish the open frame's payload, or read the next frame header.
    fn step(&mut self, input: &mut [u8]) -> Result<Step, ProtocolError> {
        if let Some(frame) = self.message.as_ref().and_then(|m| m.frame) {
            return self.continue_frame(frame, input);
        }
        let deflate_rsv = if self.limits.inflate.is_some() {
            RSV1
        } else {
            0
        };
        let allowed_rsv = self.limits.allowed_rsv | deflate_rsv;
        let Some(header) = decode_header(input, self.limits.role, allowed_rsv)? else {
            return Ok(Step::NeedMore);
        };
        let start = header.header_len as usize;
        let compressed = header.rsv & deflate_rsv != 0;
        if compressed && header.opcode.is_control() {
            return Err(ProtocolError::CompressedControl);
        }
        if compressed && header.opcode == OpCode::Continuation {
            return Err(ProtocolError::CompressedContinuation);
        }
        if header.opcode.is_control() {
            // At most 125 bytes: wait until the whole frame is here.
            let end = start + header.payload_len as usize;
            if input.len() < end {
                return Ok(Step::NeedMore);
            }
            if let Some(key) = header.mask {
                apply_mask(&mut input[start..end], key, 0);
            }
            return Ok(Step::Control {
                opcode: header.opcode,
                start,
                end,
            });
        }
        if header.payload_len > self.limits.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge);
        }
        let len = header.payload_len as usize;
        let text = match (header.opcode, &self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(open)) => open.text,
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (opcode, None) => opcode == OpCode::Text,
        };
        let max = self.limits.max_message_size as usize;
        match &mut self.message {
            // Inflated bytes are counted as they come out; the compressed ones are
            // bounded too (twice the limit and 1 KiB: DEFLATE never needs more), so a
            // stream of empty blocks cannot go on for ever.
            Some(open) if open.compressed => {
                open.compressed_len += header.payload_len;
                if open.compressed_len > 2 * max as u64 + 1024 {
                    return Err(ProtocolError::MessageTooLarge);
                }
            }
            Some(open) if open.payload.len() + len > max => {
                return Err(ProtocolError::MessageTooLarge);
            }
            None if !compressed && len > max => return Err(ProtocolError::MessageTooLarge),
            None if compressed && header.payload_len > 2 * max as u64 + 1024 => {
                return Err(ProtocolError::MessageTooLarge);
            }
            _ => {}
        }
        let end = start + len;
        if header.fin && !compressed && self.message.is_none() && input.len() >= end {
            // The whole message is here: unmask in place and lend it out.
            let payload = &mut input[start..end];
            if let Some(key) = header.mask {
                apply_mask(payload, key, 0);
            }
            if text {
                utf8::validate(payload).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            return Ok(Step::Whole { text, start, end });
        }
        if compressed && self.inflater.is_none() {
            self.inflater = Some(match self.limits.inflate {
                Some(params) if !params.no_context_takeover => {
                    Box::new(Inflater::new(params.window_bits))
                }
                _ => pool::take_inflater(),
            });
        }
        let open = self.message.get_or_insert_with(|| {
            Box::new(OpenMessage {
                text,
                compressed,
                compressed_len: header.payload_len,
                // Inflated output grows as it comes (never to a claimed size).
                payload: Vec::with_capacity(if compressed { 0 } else { len.min(MAX_RESERVE) }),
                utf8: Utf8Stream::new(),
                frame: None,
            })
        });
        open.frame = Some(OpenFrame {
            fin: header.fin,
            mask: header.mask,
            remaining: header.payload_len,
            mask_offset: 0,
        });
        Ok(Step::Consumed(start))
    }

    /// Consumes as much of the open frame's payload as `input` holds.
    fn continue_frame(
        &mut self,
        mut frame: OpenFrame,
        input: &mut [u8],
    ) -> Result<Step, ProtocolError> {
        if frame.remaining > 0 && input.is_empty() {
            return Ok(Step::NeedMore);
        }
        let used = frame.remaining.min(input.len() as u64) as usize;
        let chunk = &mut input[..used];
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, frame.mask_offset);
        }
        frame.mask_offset = (frame.mask_offset + used) & 3;
        frame.remaining -= used as u64;
        let open = self
            .message
            .as_mut()
            .expect("an open frame belongs to an open message");
        open.frame = (frame.remaining > 0).then_some(frame);
        if open.compressed {
            let complete = frame.remaining == 0 && frame.fin;
            return self.inflate_chunk(chunk, complete).map(|()| {
                if complete {
                    Step::Assembled { used }
                } else {
                    Step::Consumed(used)
                }
            });
        }
        if open.text {
            open.utf8
                .feed(chunk)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        open.payload.extend_from_slice(chunk);
        if frame.remaining > 0 || !frame.fin {
            return Ok(Step::Consumed(used));
        }
        if open.text {
            open.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(Step::Assembled { used })
    }

    /// Inflates the next compressed bytes of the open message; when `complete`, ends
    /// the message (the inflate state goes back to the pool without context takeover).
    fn inflate_chunk(&mut self, chunk: &[u8], complete: bool) -> Result<(), ProtocolError> {
        let limit = self.limits.max_message_size as usize;
        let open = self.message.as_mut().expect("an open message");
        let inflater = self
            .inflater
            .as_mut()
            .expect("a compressed message has an inflater");
        let OpenMessage {
            text,
            payload,
            utf8,
            ..
        } = &mut **open;
        let mut check = |piece: &[u8]| {
            if *text {
                utf8.feed(piece).map_err(|_| ProtocolError::InvalidUtf8)
            } else {
                Ok(())
            }
        };
        inflater.inflate(chunk, payload, limit, &mut check)?;
        if !complete {
            return Ok(());
        }
        inflater.finish(payload, limit, &mut check)?;
        if *text {
            utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if self
            .limits
            .inflate
            .is_none_or(|params| params.no_context_takeover)
            && let Some(inflater) = self.inflater.take()
        {
            pool::give_back(inflater);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
