//! Commands from other threads (`command.rs`), applied at a wake-up: deferred
//! decisions and handle calls, each for the connection it names, if it is still
//! there (same slab key and id).
//!
//! Messages sent through handles are applied a run at a time (the messages queued
//! one after another, with no other command or publish between them): grouped by
//! connection (a stable sort, so each connection's messages keep their order), and
//! each connection's small frames copied end to end into the turn batch, so they
//! leave in one range of one write at the end of the turn, as broadcast deliveries
//! do (`delivery.rs`), whatever the order in which the senders interleaved them.

use crate::server::command::{Command, Outgoing, Target};
use crate::server::core::outbox::Delivery;
use crate::server::core::{Core, Transport};
use crate::server::handler::Service;
use crate::server::pubsub::Publish;

/// The most commands a reactor's spare list keeps room for between wake-ups.
const KEEP_COMMANDS: usize = 1 << 16;

/// The most bytes a reactor's spare frame arena keeps between wake-ups.
const KEEP_ARENA: usize = 4 << 20;

impl<S: Service, IO> Core<S, IO> {
    /// Applies `commands`, delivering `publishes[.. at]` before each command queued
    /// after `at` publishes, so that both keep the order they were queued in.
    pub(super) fn apply_all<T: Transport<IO>>(
        &mut self,
        publishes: &[Publish],
        mut commands: Vec<(usize, Command)>,
        mut arena: Vec<u8>,
        t: &mut T,
    ) {
        let mut sends = std::mem::take(&mut self.sends);
        let mut delivered = 0;
        for (at, command) in commands.drain(..) {
            if at > delivered {
                self.apply_sends(&mut sends, &arena, t);
                self.deliver_local(&publishes[delivered..at], t);
                delivered = at;
            }
            match command {
                Command::Send { target, message } => sends.push((target, message)),
                other => {
                    self.apply_sends(&mut sends, &arena, t);
                    self.apply(other, t);
                }
            }
        }
        self.apply_sends(&mut sends, &arena, t);
        self.deliver_local(&publishes[delivered..], t);
        self.sends = sends;
        // Handed back to the inbox at the next wake-up, unless a burst grew it.
        if commands.capacity() <= KEEP_COMMANDS {
            self.spare_commands = commands;
        }
        if arena.capacity() <= KEEP_ARENA {
            arena.clear();
            self.spare_frames = arena;
        }
    }

    /// Applies a command other than a message (messages go through
    /// [`Core::apply_sends`], with the frame arena their ranges point into). A decision
    /// or call is served at once, as after a read.
    fn apply<T: Transport<IO>>(&mut self, command: Command, t: &mut T) {
        let target = match &command {
            Command::Decided { target, .. } | Command::Conn { target, .. } => *target,
            Command::Send { .. } => {
                debug_assert!(false, "a message outside its run");
                return;
            }
            Command::ChannelLost {
                channel,
                keep,
                code,
                reason,
            } => return self.channel_lost(channel, *keep, *code, reason, t),
        };
        if !self.holds(target) {
            // A decision's handler and link go with it: its handles learn it.
            if let Command::Decided {
                decision:
                    crate::server::command::Decision::Upgrade {
                        outcome: Ok((_, link)),
                        ..
                    },
                ..
            } = &command
            {
                link.mark_gone();
            }
            return;
        }
        let key = target.key;
        let stopping = self.stopping;
        self.contained(Some(key), t, |core, t| {
            let mut env = env!(core);
            let Some(slot) = core.conns.get_mut(key) else {
                return;
            };
            match command {
                Command::Decided { decision, .. } => {
                    slot.conn.decided(decision, stopping, &mut env);
                }
                Command::Conn { op, .. } => slot.conn.apply(op, &mut env),
                Command::Send { .. } | Command::ChannelLost { .. } => {}
            }
            core.served(key, t);
        });
    }

    /// Closes this reactor's subscribers to `channel` in an epoch other than `keep`
    /// with `code` (see [`Command::ChannelLost`]).
    fn channel_lost<T: Transport<IO>>(
        &mut self,
        channel: &str,
        keep: Option<u64>,
        code: crate::protocol::CloseCode,
        reason: &str,
        t: &mut T,
    ) {
        let mut keys = Vec::new();
        self.reactor.channels.keys_outside(channel, keep, &mut keys);
        for key in keys {
            self.contained(Some(key), t, |core, t| {
                let mut env = env!(core);
                let Some(slot) = core.conns.get_mut(key) else {
                    return;
                };
                slot.conn.apply(
                    crate::server::command::ConnOp::Close(code, reason.to_owned()),
                    &mut env,
                );
                core.served(key, t);
            });
        }
    }

    /// Applies a run of messages sent through handles (see the module docs).
    fn apply_sends<T: Transport<IO>>(
        &mut self,
        sends: &mut Vec<(Target, Outgoing)>,
        arena: &[u8],
        t: &mut T,
    ) {
        if sends.is_empty() {
            return;
        }
        sends.sort_by_key(|(target, _)| target.key);
        let mut rest = &sends[..];
        while let Some((first, _)) = rest.first() {
            let n = rest.iter().take_while(|(t, _)| t.key == first.key).count();
            let (group, later) = rest.split_at(n);
            let key = first.key;
            self.contained(Some(key), t, |core, _| core.send_group(group, arena));
            rest = later;
        }
        sends.clear();
    }

    /// Queues messages sent through handles to one connection (all with the same
    /// key; those for an earlier connection at that key are dropped): small frames
    /// into the turn batch, the rest as shared bytes, under the backpressure policy;
    /// the connection is written at the end of the turn.
    fn send_group(&mut self, group: &[(Target, Outgoing)], arena: &[u8]) {
        let Some((first, _)) = group.first() else {
            return;
        };
        let key = first.key;
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if !slot.conn.is_open() {
            return;
        }
        let id = slot.conn.state.id;
        let window = slot.conn.state.deflate_window;
        let mut env = env!(self);
        self.frames.clear();
        let mut batched = false;
        for (target, message) in group {
            if target.id != id {
                continue;
            }
            if let Some(link) = &slot.conn.state.link {
                link.taken(message.len());
            }
            // The frame, and the buffer it lives in if it has one of its own.
            let (frame, own): (&[u8], Option<&bytes::Bytes>) = match message {
                Outgoing::Arena(range) => (&arena[range.clone()], None),
                Outgoing::Own(publish) => {
                    let bytes = match &publish.deflated {
                        Some(deflated) if window.is_some_and(|w| w >= deflated.needs) => {
                            &deflated.frame
                        }
                        _ => &publish.frame,
                    };
                    (bytes, Some(bytes))
                }
            };
            env.reactor.counters.sent(payload_len(frame));
            if env.reactor.batch.takes(frame.len(), 0) {
                self.frames.push(env.reactor.batch.append(frame));
                batched = true;
            } else {
                if !self.frames.is_empty() {
                    slot.conn.deliver(Delivery::batched(&self.frames), &mut env);
                    self.frames.clear();
                }
                let own = own
                    .cloned()
                    .unwrap_or_else(|| bytes::Bytes::copy_from_slice(frame));
                slot.conn.deliver(Delivery::Shared(&own), &mut env);
            }
        }
        if !self.frames.is_empty() {
            slot.conn.deliver(Delivery::batched(&self.frames), &mut env);
        }
        if batched {
            // Whatever became of the connection, the seal must find its ranges.
            env.reactor
                .batch
                .hold(key, &mut slot.conn.state.batch_holder);
        }
        if !slot.conn.state.dirty {
            slot.conn.state.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Whether the connection `target` names is still the one at its key.
    fn holds(&self, target: Target) -> bool {
        self.conns
            .get(target.key)
            .is_some_and(|slot| slot.conn.state.id == target.id)
    }
}

/// The payload length of an encoded, unmasked data frame (the frame less its
/// header).
fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(127) => 10,
        Some(126) => 4,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}
