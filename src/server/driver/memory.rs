//! A third backend, in memory, for the tests: the turn loop (`reactor.rs`) and the
//! core run unchanged over it, which is what the [`Backend`] contract promises. Its
//! peers are byte buffers and its "event source" is a script: each wait takes the
//! next step (a connection arriving, bytes from a peer, a failed accept, a wake-up
//! from another thread).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server::core::{Core, RECV_HEADROOM, Sends, Transport};
use crate::server::driver::reactor::{Backend, Event};
use crate::server::handler::Service;
use crate::server::shared::Shared;

/// One step of the script: what the next wait brings.
pub(super) enum Step {
    /// Peer `n` connects.
    Connect(usize),
    /// Peer `n` sends these bytes.
    Bytes(usize, Vec<u8>),
    /// Peer `n` closes its side.
    Eof(usize),
    /// `accept` fails with this error (`EMFILE`...).
    AcceptFails(io::Error),
    /// Another thread asks for a graceful shutdown (and wakes the reactor).
    Shutdown,
    /// Another thread wakes the reactor.
    Wake,
    /// Nothing happens: the wait lasts its whole timeout (which the loop must give).
    Idle,
}

/// What every peer received, by peer number, and what the loop asked for.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub received: Vec<Vec<u8>>,
    /// Peers whose connection the core released.
    pub released: Vec<usize>,
    /// How many waits had a timeout (the core's clock was running).
    pub timed_waits: usize,
    /// Accepting was paused, then resumed.
    pub pauses: usize,
    pub resumes: usize,
}

/// A peer's end: its number.
pub(super) struct Pipe(usize);

/// The in-memory backend (see the module docs).
pub(super) struct Memory {
    script: VecDeque<Step>,
    /// What the current wait brought.
    now: Option<Step>,
    /// Slab keys by peer number, once opened.
    keys: Vec<Option<usize>>,
    seen: Arc<Mutex<Seen>>,
    shared: Arc<Shared>,
    buf: Vec<u8>,
}

impl Memory {
    pub fn new(script: Vec<Step>, shared: Arc<Shared>, seen: Arc<Mutex<Seen>>) -> Self {
        Self {
            script: script.into(),
            now: None,
            keys: Vec::new(),
            seen,
            shared,
            buf: Vec::new(),
        }
    }

    /// The slab key of peer `peer`'s connection: `None` once released. Panics for a
    /// peer that never connected (the tests use that to fail the reactor).
    fn key_of(&self, peer: usize) -> Option<usize> {
        assert!(peer < self.keys.len(), "peer {peer} never connected");
        self.keys[peer]
    }
}

impl Transport<Pipe> for Memory {
    fn sends(&self) -> Sends {
        Sends::Now
    }

    fn write_now(
        &mut self,
        _key: usize,
        io: &mut Pipe,
        slices: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let mut seen = self.seen.lock().unwrap();
        let out = &mut seen.received[io.0];
        let before = out.len();
        for slice in slices {
            out.extend_from_slice(slice);
        }
        Ok(out.len() - before)
    }

    fn write_last(&mut self, key: usize, io: &mut Pipe, bytes: &[u8]) {
        let _ = self.write_now(key, io, &[IoSlice::new(bytes)]);
    }

    fn shutdown_write(&mut self, _io: &mut Pipe) {}

    fn pause_reading(&mut self, _key: usize, _io: &mut Pipe) {}

    fn resume_reading(&mut self, _key: usize, _io: &mut Pipe) {}

    fn release(&mut self, _key: usize, io: Pipe) {
        self.keys[io.0] = None;
        self.seen.lock().unwrap().released.push(io.0);
    }
}

impl Backend for Memory {
    type Io = Pipe;

    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout.is_some() {
            self.seen.lock().unwrap().timed_waits += 1;
        }
        self.now = self.script.pop_front();
        if matches!(self.now, None | Some(Step::Idle)) {
            // Nothing happens: the core's clock moves to the wait's deadline.
            let timeout = timeout.expect("the loop would wait for ever for nothing");
            std::thread::sleep(timeout);
            self.now = None;
        }
        Ok(())
    }

    fn next_event<S: Service>(
        &mut self,
        core: &mut Core<S, Pipe>,
    ) -> io::Result<Option<Event<Pipe>>> {
        let Some(step) = self.now.take() else {
            return Ok(None);
        };
        Ok(match step {
            Step::Connect(peer) => {
                if self.keys.len() <= peer {
                    self.keys.resize(peer + 1, None);
                    self.seen
                        .lock()
                        .unwrap()
                        .received
                        .resize(peer + 1, Vec::new());
                }
                self.keys[peer] = Some(core.vacant_key());
                let addr = SocketAddr::from(([127, 0, 0, 1], 40_000 + peer as u16));
                Some(Event::Accepted(Pipe(peer), addr))
            }
            Step::Bytes(peer, bytes) => {
                let Some(key) = self.key_of(peer) else {
                    return Ok(None);
                };
                let mut buf = std::mem::take(&mut self.buf);
                buf.clear();
                buf.resize(RECV_HEADROOM, 0);
                buf.extend_from_slice(&bytes);
                core.contained(Some(key), self, |core, this| {
                    core.received(key, &mut buf, RECV_HEADROOM);
                    core.write(key, this);
                    core.served(key, this);
                });
                self.buf = buf;
                None
            }
            Step::Eof(peer) => {
                let Some(key) = self.key_of(peer) else {
                    return Ok(None);
                };
                core.contained(Some(key), self, |core, this| {
                    core.eof(key);
                    core.served(key, this);
                });
                None
            }
            Step::AcceptFails(error) => Some(Event::AcceptFailed(error)),
            Step::Shutdown => {
                self.shared.shutdown();
                Some(Event::Woken)
            }
            Step::Wake => Some(Event::Woken),
            Step::Idle => None,
        })
    }

    fn opened<S: Service>(&mut self, _core: &mut Core<S, Pipe>, _key: usize) {}

    fn pause_accepting(&mut self) {
        self.seen.lock().unwrap().pauses += 1;
    }

    fn resume_accepting(&mut self) {
        self.seen.lock().unwrap().resumes += 1;
    }

    fn stop_accepting(&mut self) {}

    fn end_turn<S: Service>(&mut self, _core: &mut Core<S, Pipe>) -> io::Result<()> {
        Ok(())
    }

    fn failed(&mut self) {}
}

mod tests;
