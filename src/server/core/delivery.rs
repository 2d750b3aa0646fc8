//! Broadcast delivery on one reactor: publishes reach this reactor's subscribers, a
//! run of small frames to the same audience in one pass over them.
//!
//! The frames a publisher sends in one read (or that arrive together from another
//! reactor) are usually for the same topic. They are copied end to end into the turn
//! batch and each subscriber is visited once for the whole run, getting one range
//! (see `batch.rs` and `outbox.rs`), instead of once per message.
//!
//! With permessage-deflate, a publish also carries its message compressed once (see
//! `pubsub.rs`); the run's compressed frames are laid in the batch beside the plain
//! ones, and each subscriber gets one or the other, by what it negotiated.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::server::core::batch::TurnBatch;
use crate::server::core::outbox::Delivery;
use crate::server::core::{Core, Transport};
use crate::server::handler::Service;
use crate::server::pubsub::Publish;

impl<S: Service, IO> Core<S, IO> {
    /// Delivers `publishes`, in order, to this reactor's subscribers.
    pub(super) fn deliver_local<T: Transport<IO>>(&mut self, publishes: &[Publish], t: &mut T) {
        let mut rest = publishes;
        while let Some(first) = rest.first() {
            let lagging = first.offset != 0
                && first.topic.as_ref().is_some_and(|topic| {
                    self.reactor
                        .channels
                        .lagging(topic, first.epoch, first.offset)
                });
            let (run, batched) = if lagging {
                // A subscriber that joined with a position (or in another epoch) skips
                // this one: it goes alone, to those it is for (`channels/subs.rs`).
                // The run is not measured: measuring it for each message alone would
                // cost the whole inbox each time.
                (1, self.reactor.batch.takes(first.frame.len(), 0))
            } else {
                next_run(rest, &self.reactor.batch)
            };
            let (group, later) = rest.split_at(run);
            self.deliver_group(group, batched, t);
            rest = later;
        }
    }

    /// Delivers publishes to one audience: small frames (`batched`), or one large one.
    fn deliver_group<T: Transport<IO>>(&mut self, group: &[Publish], batched: bool, t: &mut T) {
        let first = &group[0];
        self.targets.clear();
        match &first.topic {
            Some(topic) if first.offset != 0 => self.reactor.channels.subscribers_into(
                topic,
                first.epoch,
                first.offset,
                &mut self.targets,
            ),
            Some(topic) => self
                .reactor
                .topics
                .subscribers_into(topic, &mut self.targets),
            None => self.targets.extend(self.conns.iter().map(|(k, _)| k)),
        }
        if self.targets.is_empty() {
            return;
        }
        self.frames.clear();
        self.deflated_frames.clear();
        // The compressed frames of the run, where there are any: each publish's own,
        // or its plain frame when it has none (an uncompressed message is fine on a
        // connection that negotiated compression).
        let needs = group
            .iter()
            .filter_map(|publish| publish.deflated.as_ref().map(|d| d.needs))
            .max();
        let (delivery, deflated) = if batched {
            for publish in group {
                self.frames.push(self.reactor.batch.append(&publish.frame));
            }
            if needs.is_some() {
                for publish in group {
                    let frame = publish
                        .deflated
                        .as_ref()
                        .map_or(&publish.frame, |d| &d.frame);
                    self.deflated_frames.push(self.reactor.batch.append(frame));
                }
            }
            let deflated = needs.map(|_| Delivery::batched(&self.deflated_frames));
            (Delivery::batched(&self.frames), deflated)
        } else {
            debug_assert_eq!(group.len(), 1);
            let deflated = first.deflated.as_ref().map(|d| Delivery::Shared(&d.frame));
            (Delivery::Shared(&first.frame), deflated)
        };
        let needs = needs.unwrap_or(u8::MAX);
        // A panic while delivering to one subscriber fails that subscriber only: the
        // loop resumes after it, so the others still get the message.
        let mut next = 0;
        let mut failed = Vec::new();
        let mut delivered = 0u64;
        while next < self.targets.len() {
            let mut at = next;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut env = env!(self);
                for (i, &key) in self.targets.iter().enumerate().skip(next) {
                    at = i;
                    let Some(entry) = self.conns.get_mut(key) else {
                        continue;
                    };
                    if first.exclude.is_some_and(|id| id == entry.conn.state.id) {
                        continue;
                    }
                    #[cfg(test)]
                    group.iter().for_each(crate::server::testing::on_delivery);
                    let delivery = match deflated {
                        Some(deflated)
                            if entry.conn.state.deflate_window.is_some_and(|w| w >= needs) =>
                        {
                            deflated
                        }
                        _ => delivery,
                    };
                    entry.conn.deliver(delivery, &mut env);
                    delivered += 1;
                    if batched {
                        // Whatever becomes of the connection, the seal must find its
                        // ranges.
                        env.reactor
                            .batch
                            .hold(key, &mut entry.conn.state.batch_holder);
                    }
                    if !entry.conn.state.dirty {
                        entry.conn.state.dirty = true;
                        self.dirty.push(key);
                    }
                }
            }));
            let Err(panic) = outcome else {
                break;
            };
            failed.push((self.targets[at], panic));
            next = at + 1;
        }
        self.reactor
            .counters
            .deliveries
            .add(delivered * group.len() as u64);
        for (key, panic) in failed {
            self.fail_internal(key, &*panic, t);
        }
    }
}

/// How many of `publishes` (at least one) go out in one pass over the subscribers, and
/// whether through the turn `batch`: consecutive small frames to the same audience
/// (topic and excluded connection) while the batch takes them, else one frame alone.
pub(crate) fn next_run(publishes: &[Publish], batch: &TurnBatch) -> (usize, bool) {
    let Some(first) = publishes.first() else {
        return (0, false);
    };
    if !batch.takes(first.frame.len(), 0) {
        return (1, false);
    }
    let mut pending = first.frame.len();
    let mut run = 1;
    while let Some(next) = publishes.get(run)
        && next.topic == first.topic
        && next.exclude == first.exclude
        && (next.offset == 0) == (first.offset == 0)
        && next.epoch == first.epoch
        && batch.takes(next.frame.len(), pending)
    {
        pending += next.frame.len();
        run += 1;
    }
    (run, true)
}

#[cfg(test)]
mod tests;
