//! Model tests of channels without sockets: the engine and the reactors' subscriber
//! registries, driven through random interleavings of publishes from several
//! reactors, inbox deliveries, reconnects with positions, and history trimming. The
//! model reactors deliver exactly as `core/delivery.rs` does (runs of one channel's
//! messages to the subscribers of the run's first offset, unless a subscriber lags).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::engine::Engine;
use super::memory::MemoryEngine;
use super::subs::{ChannelSub, ChannelSubs};
use super::{ChannelRules, History, Position, Recovery};
use crate::server::pubsub::Publish;

const CHANNELS: [&str; 2] = ["h:room", "plain"];
const KEEP: usize = 5;

/// The offset a channel message frame carries.
fn offset_of(frame: &Bytes) -> u64 {
    let text = std::str::from_utf8(&frame[2..]).unwrap();
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    json["offset"].as_u64().unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Publish { reactor: usize, channel: usize },
    Drain { reactor: usize },
    Connect { client: usize },
    Disconnect { client: usize },
    Advance { secs: u64 },
}

fn step(reactors: usize, clients: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..reactors, 0..CHANNELS.len())
            .prop_map(|(reactor, channel)| Step::Publish { reactor, channel }),
        4 => (0..reactors).prop_map(|reactor| Step::Drain { reactor }),
        2 => (0..clients).prop_map(|client| Step::Connect { client }),
        2 => (0..clients).prop_map(|client| Step::Disconnect { client }),
        1 => (1..4u64).prop_map(|secs| Step::Advance { secs }),
    ]
}

struct Client {
    reactor: usize,
    key: usize,
    channel: usize,
    sub: Option<ChannelSub>,
    /// The position of the last message received.
    position: Option<Position>,
    /// The offset the next message must have.
    next: u64,
    received: u64,
}

struct Reactor {
    inbox: Vec<Publish>,
    subs: ChannelSubs,
}

struct Model {
    engine: MemoryEngine,
    reactors: Vec<Reactor>,
    clients: Vec<Client>,
    now: Arc<Mutex<Instant>>,
    age: Option<Duration>,
}

impl Model {
    fn new(reactors: usize, clients: usize, age: Option<Duration>) -> Self {
        let mut rules = ChannelRules::default();
        let mut history = History::last(KEEP);
        history.max_age = age;
        rules.add("h:*", history);
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = now.clone();
        Self {
            engine: MemoryEngine::with_clock(
                rules,
                1 << 20,
                Box::new(move || *clock.lock().unwrap()),
            ),
            reactors: (0..reactors)
                .map(|_| Reactor {
                    inbox: Vec::new(),
                    subs: ChannelSubs::default(),
                })
                .collect(),
            clients: (0..clients)
                .map(|i| Client {
                    reactor: i % reactors,
                    key: i,
                    channel: i % CHANNELS.len(),
                    sub: None,
                    position: None,
                    next: 0,
                    received: 0,
                })
                .collect(),
            now,
            age,
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Publish { reactor, channel } => {
                // Published from a callback on `reactor`, in a turn that began by
                // taking its inbox half the time (the model's choice by offset parity).
                if self
                    .engine
                    .position(CHANNELS[channel])
                    .is_some_and(|p| p.offset % 2 == 0)
                {
                    self.drain(reactor);
                }
                let reactors = &mut self.reactors;
                let position = self
                    .engine
                    .publish(CHANNELS[channel], "x", &mut |publish| {
                        for r in reactors.iter_mut() {
                            r.inbox.push(publish.clone());
                        }
                    })
                    .unwrap();
                assert!(position.offset >= 1);
            }
            Step::Drain { reactor } => self.drain(reactor),
            Step::Connect { client } => self.connect(client),
            Step::Disconnect { client } => {
                let c = &mut self.clients[client];
                if let Some(sub) = c.sub.take() {
                    self.reactors[c.reactor].subs.unsubscribe(sub);
                }
            }
            Step::Advance { secs } => *self.now.lock().unwrap() += Duration::from_secs(secs),
        }
    }

    fn connect(&mut self, client: usize) {
        let c = &mut self.clients[client];
        if c.sub.is_some() {
            return;
        }
        let name = CHANNELS[c.channel];
        let before = self.engine.position(name);
        let mut replayed = Vec::new();
        let subscribed = self
            .engine
            .subscribe(name, c.position, usize::MAX, &mut |frame| {
                replayed.push(offset_of(frame))
            })
            .unwrap();
        let last = subscribed.position.offset;
        match (c.position, subscribed.recovery) {
            (None, recovery) => {
                assert_eq!(recovery, Recovery::NotAsked);
                assert!(replayed.is_empty());
            }
            (Some(since), Recovery::Recovered) => {
                // Everything after the position, once, in order, up to the live switch.
                let expected: Vec<u64> = (since.offset + 1..=last).collect();
                assert_eq!(replayed, expected);
                c.received += replayed.len() as u64;
            }
            (Some(since), Recovery::TooOld) => {
                assert!(replayed.is_empty());
                let missed = last - since.offset;
                assert!(missed > 0, "recovery failed with nothing missed");
                let keep = if name == "plain" { 0 } else { KEEP };
                if self.age.is_none() {
                    assert!(missed as usize > keep, "history still held the gap");
                }
            }
            (Some(since), Recovery::EpochChanged) => {
                assert_ne!(Some(since.epoch), before.map(|p| p.epoch));
            }
            (Some(_), Recovery::NotAsked) => panic!("position ignored"),
            (Some(_), Recovery::TooMany) => panic!("no replay limit here"),
        }
        if name == "plain"
            && let Some(since) = c.position
        {
            // No history: recovered only when nothing was missed.
            assert_eq!(
                subscribed.recovery == Recovery::Recovered,
                since.offset == last
            );
        }
        c.position = Some(subscribed.position);
        c.next = last + 1;
        c.sub = Some(self.reactors[c.reactor].subs.subscribe(
            name,
            c.key,
            subscribed.position.offset,
            subscribed.position.epoch,
        ));
    }

    /// Delivers a reactor's inbox as `core/delivery.rs` does.
    fn drain(&mut self, reactor: usize) {
        let inbox = std::mem::take(&mut self.reactors[reactor].inbox);
        let mut rest = &inbox[..];
        let mut targets = Vec::new();
        while let Some(first) = rest.first() {
            let name = first.topic.as_deref().unwrap();
            let subs = &mut self.reactors[reactor].subs;
            let run = if subs.lagging(name, first.epoch, first.offset) {
                1
            } else {
                rest.iter()
                    .take_while(|p| p.topic == first.topic && p.epoch == first.epoch)
                    .count()
            };
            targets.clear();
            subs.subscribers_into(name, first.epoch, first.offset, &mut targets);
            for publish in &rest[..run] {
                assert_eq!(offset_of(&publish.frame), publish.offset);
                for &key in &targets {
                    let c = &mut self.clients[key];
                    assert_eq!(publish.offset, c.next, "client {key}: a gap or a duplicate");
                    c.next += 1;
                    c.received += 1;
                    c.position = Some(Position {
                        epoch: c.position.unwrap().epoch,
                        offset: publish.offset,
                    });
                }
            }
            rest = &rest[run..];
        }
    }

    /// Delivers everything: every subscribed client is at its channel's last offset.
    fn settle(&mut self) {
        for reactor in 0..self.reactors.len() {
            self.drain(reactor);
        }
        for c in &self.clients {
            if c.sub.is_some() {
                let last = self.engine.position(CHANNELS[c.channel]).unwrap();
                assert_eq!(c.next, last.offset + 1);
                assert_eq!(c.position, Some(last));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_subscriber_gets_each_message_once_in_order(
        steps in proptest::collection::vec(step(3, 6), 1..120),
    ) {
        let mut model = Model::new(3, 6, None);
        for step in steps {
            model.run(step);
        }
        model.settle();
    }

    #[test]
    fn age_bounds_only_ever_fail_recovery_openly(
        steps in proptest::collection::vec(step(2, 4), 1..120),
    ) {
        let mut model = Model::new(2, 4, Some(Duration::from_secs(4)));
        for step in steps {
            model.run(step);
        }
        model.settle();
    }
}

#[test]
fn a_position_from_another_epoch_or_too_old_fails_recovery() {
    let model = Model::new(1, 1, None);
    let mut sink = |_: Publish| {};
    let mut last = Position::default();
    for _ in 0..(KEEP + 3) {
        last = model.engine.publish("h:a", "x", &mut sink).unwrap();
    }
    let mut none = |_: &Bytes| panic!("nothing to replay");
    let other_epoch = Position {
        epoch: last.epoch ^ 1,
        offset: 1,
    };
    let failed = model
        .engine
        .subscribe("h:a", Some(other_epoch), usize::MAX, &mut none)
        .unwrap();
    assert_eq!(failed.recovery, Recovery::EpochChanged);
    assert_eq!(failed.position, last);
    let too_old = Position {
        epoch: last.epoch,
        offset: 1,
    };
    let failed = model
        .engine
        .subscribe("h:a", Some(too_old), usize::MAX, &mut none)
        .unwrap();
    assert_eq!(failed.recovery, Recovery::TooOld);
    let mut replayed = 0;
    let oldest_kept = Position {
        epoch: last.epoch,
        offset: last.offset - KEEP as u64,
    };
    let ok = model
        .engine
        .subscribe("h:a", Some(oldest_kept), usize::MAX, &mut |_| replayed += 1)
        .unwrap();
    assert_eq!((ok.recovery, replayed), (Recovery::Recovered, KEEP));
    let stats = model.engine.stats();
    assert_eq!((stats.channels, stats.history_messages), (1, KEEP));
    // A replay that would not fit in the connection's queue is not made.
    let bytes = stats.history_bytes;
    let failed = model
        .engine
        .subscribe("h:a", Some(oldest_kept), bytes - 1, &mut none)
        .unwrap();
    assert_eq!(failed.recovery, Recovery::TooMany);
    assert_eq!(failed.position, last);
    let mut replayed = 0;
    let ok = model
        .engine
        .subscribe("h:a", Some(oldest_kept), bytes, &mut |_| replayed += 1)
        .unwrap();
    assert_eq!((ok.recovery, replayed), (Recovery::Recovered, KEEP));
}

#[test]
fn history_rules_pick_the_first_matching_pattern() {
    let mut rules = ChannelRules::default();
    rules.add("chat:vip", History::last(1));
    rules.add("chat:*", History::last(100));
    rules.add("*", History::last(7));
    assert_eq!(rules.history_of("chat:vip").max_messages, 1);
    assert_eq!(rules.history_of("chat:lobby").max_messages, 100);
    assert_eq!(rules.history_of("news").max_messages, 7);
    assert_eq!(ChannelRules::default().history_of("x"), History::default());
}

#[test]
fn the_channel_count_is_bounded() {
    let rules = ChannelRules {
        max_channels: 2,
        ..ChannelRules::default()
    };
    let engine = MemoryEngine::new(rules, 1 << 10);
    let mut sink = |_: Publish| {};
    engine.publish("a", "x", &mut sink).unwrap();
    engine.subscribe("b", None, 0, &mut |_| {}).unwrap();
    assert_eq!(
        engine.publish("c", "x", &mut sink),
        Err(super::ChannelError::TooManyChannels { limit: 2 })
    );
    assert_eq!(engine.publish("a", "y", &mut sink).unwrap().offset, 2);
}
