//! The channels protocol's messages (JSON text frames; docs/channels.md): encoding
//! what the server sends, parsing what a client sends. No I/O.

use bytes::Bytes;
use serde_json::Value;

use crate::protocol::OpCode;
use crate::server::channels::{ChannelError, MAX_CHANNEL_NAME, Position, Recovery, Subscribed};
use crate::server::encode::encode_shared;

/// The text frame of a channel message, encoded once and shared by every subscriber
/// and the history:
/// `{"type":"message","channel":C,"epoch":"E","offset":N,"data":D}`.
pub(crate) fn message_frame(channel: &str, epoch: u64, offset: u64, data: &str) -> Bytes {
    let mut json = Vec::with_capacity(data.len() + channel.len() + 80);
    json.extend_from_slice(b"{\"type\":\"message\",\"channel\":");
    push_string(&mut json, channel);
    push_position(&mut json, Position { epoch, offset });
    json.extend_from_slice(b",\"data\":");
    push_string(&mut json, data);
    json.push(b'}');
    encode_shared(OpCode::Text, &json)
}

/// An epoch as the protocol writes it: 16 lowercase hex digits (a JSON number cannot
/// hold 64 bits exactly in a browser).
pub fn epoch_text(epoch: u64) -> String {
    format!("{epoch:016x}")
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn push_position(out: &mut Vec<u8>, position: Position) {
    out.extend_from_slice(b",\"epoch\":\"");
    out.extend_from_slice(epoch_text(position.epoch).as_bytes());
    out.extend_from_slice(b"\",\"offset\":");
    out.extend_from_slice(position.offset.to_string().as_bytes());
}

/// What a client asks (see docs/channels.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Subscribe {
        channel: String,
        since: Option<Position>,
    },
    Unsubscribe {
        channel: String,
    },
    Publish {
        channel: String,
        data: String,
        id: Option<Value>,
    },
}

/// Why a client's message was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadRequest {
    /// Not JSON at all: the connection is closed with 1007.
    NotJson,
    /// JSON, but not a request this protocol knows (an error reply; the connection
    /// stays): the text says what is wrong, `id` is the request's if it had one.
    Invalid { error: String, id: Option<Value> },
}

/// Parses one text message of a client.
pub(crate) fn parse(text: &str) -> Result<Request, BadRequest> {
    let value: Value = serde_json::from_str(text).map_err(|_| BadRequest::NotJson)?;
    let id = value.get("id").cloned();
    let invalid = |error: &str| BadRequest::Invalid {
        error: error.to_owned(),
        id: id.clone(),
    };
    let Value::Object(fields) = &value else {
        return Err(invalid("a request is a JSON object"));
    };
    let channel = match fields.get("channel") {
        Some(Value::String(name)) if !name.is_empty() && name.len() <= MAX_CHANNEL_NAME => {
            name.clone()
        }
        Some(Value::String(_)) => {
            return Err(invalid(ChannelError::InvalidName.to_string().as_str()));
        }
        _ => return Err(invalid("\"channel\" (a string) is missing")),
    };
    match fields.get("type").and_then(Value::as_str) {
        Some("subscribe") => {
            let since = match fields.get("since") {
                None | Some(Value::Null) => None,
                Some(since) => Some(parse_position(since).ok_or_else(|| {
                    invalid("\"since\" must be {\"epoch\": 16 hex digits, \"offset\": a number}")
                })?),
            };
            Ok(Request::Subscribe { channel, since })
        }
        Some("unsubscribe") => Ok(Request::Unsubscribe { channel }),
        Some("publish") => match fields.get("data") {
            Some(Value::String(data)) => Ok(Request::Publish {
                channel,
                data: data.clone(),
                id,
            }),
            _ => Err(invalid("\"data\" (a string) is missing")),
        },
        _ => Err(invalid(
            "\"type\" must be \"subscribe\", \"unsubscribe\" or \"publish\"",
        )),
    }
}

fn parse_position(value: &Value) -> Option<Position> {
    let epoch = value.get("epoch")?.as_str()?;
    if epoch.len() != 16 {
        return None;
    }
    Some(Position {
        epoch: u64::from_str_radix(epoch, 16).ok()?,
        offset: value.get("offset")?.as_u64()?,
    })
}

/// `{"type":"subscribed","channel":C,"epoch":E,"offset":N,"recovered":B,"replayed":K}`
/// (`recovered` and `reason` only when the client gave a position).
pub(crate) fn subscribed(channel: &str, subscribed: &Subscribed) -> String {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"type\":\"subscribed\",\"channel\":");
    push_string(&mut out, channel);
    push_position(&mut out, subscribed.position);
    match subscribed.recovery {
        Recovery::NotAsked => {}
        Recovery::Recovered => {
            out.extend_from_slice(b",\"recovered\":true,\"replayed\":");
            out.extend_from_slice(subscribed.replayed.to_string().as_bytes());
        }
        Recovery::TooOld => out.extend_from_slice(b",\"recovered\":false,\"reason\":\"too_old\""),
        Recovery::TooMany => out.extend_from_slice(b",\"recovered\":false,\"reason\":\"too_many\""),
        Recovery::EpochChanged => {
            out.extend_from_slice(b",\"recovered\":false,\"reason\":\"epoch_changed\"")
        }
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// `{"type":"published","channel":C,"epoch":E,"offset":N,"id":I}`.
pub(crate) fn published(channel: &str, position: Position, id: Option<&Value>) -> String {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"type\":\"published\",\"channel\":");
    push_string(&mut out, channel);
    push_position(&mut out, position);
    push_id(&mut out, id);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// `{"type":"unsubscribed","channel":C}`.
pub(crate) fn unsubscribed(channel: &str) -> String {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"{\"type\":\"unsubscribed\",\"channel\":");
    push_string(&mut out, channel);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// `{"type":"error","error":T,"channel":C,"id":I}` (`channel`, `id` when known).
pub(crate) fn error(error: &str, channel: Option<&str>, id: Option<&Value>) -> String {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"type\":\"error\",\"error\":");
    push_string(&mut out, error);
    if let Some(channel) = channel {
        out.extend_from_slice(b",\"channel\":");
        push_string(&mut out, channel);
    }
    push_id(&mut out, id);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

fn push_id(out: &mut Vec<u8>, id: Option<&Value>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        let _ = serde_json::to_writer(&mut *out, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_frame_is_json_with_its_position() {
        let frame = message_frame("room \"1\"", 0xab, 7, "hi\n");
        let json: Value = serde_json::from_slice(&frame[2..]).unwrap();
        assert_eq!(json["type"], "message");
        assert_eq!(json["channel"], "room \"1\"");
        assert_eq!(json["epoch"], "00000000000000ab");
        assert_eq!(json["offset"], 7);
        assert_eq!(json["data"], "hi\n");
    }

    #[test]
    fn parses_requests_and_says_what_is_wrong() {
        assert_eq!(
            parse(
                r#"{"type":"subscribe","channel":"a","since":{"epoch":"00000000000000ff","offset":3}}"#
            ),
            Ok(Request::Subscribe {
                channel: "a".into(),
                since: Some(Position {
                    epoch: 255,
                    offset: 3
                })
            })
        );
        assert_eq!(
            parse(r#"{"type":"subscribe","channel":"a"}"#),
            Ok(Request::Subscribe {
                channel: "a".into(),
                since: None
            })
        );
        assert!(matches!(
            parse(r#"{"type":"publish","channel":"a","data":"x","id":4}"#),
            Ok(Request::Publish { id: Some(_), .. })
        ));
        assert_eq!(parse("{nope"), Err(BadRequest::NotJson));
        for bad in [
            r#"[1]"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","channel":""}"#,
            r#"{"type":"subscribe","channel":"a","since":{"epoch":"xyz","offset":1}}"#,
            r#"{"type":"publish","channel":"a"}"#,
            r#"{"type":"dance","channel":"a"}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(BadRequest::Invalid { .. })),
                "{bad}"
            );
        }
    }
}
