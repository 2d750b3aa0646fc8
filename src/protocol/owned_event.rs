//! An owned copy of a decoder [`Event`], for tests and fuzz harnesses that collect
//! events and compare two decodings.

use crate::protocol::Event;

/// An owned copy of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnedEvent {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close frame's code and reason, if it carried a code.
    Close(Option<(u16, String)>),
}

impl From<Event<'_>> for OwnedEvent {
    fn from(event: Event<'_>) -> Self {
        match event {
            Event::Text(t) => OwnedEvent::Text(t.to_owned()),
            Event::Binary(b) => OwnedEvent::Binary(b.to_vec()),
            Event::Ping(p) => OwnedEvent::Ping(p.to_vec()),
            Event::Pong(p) => OwnedEvent::Pong(p.to_vec()),
            Event::Close(c) => OwnedEvent::Close(c.map(|c| (c.code.0, c.reason.to_owned()))),
        }
    }
}
