//! A model test of broadcast delivery without sockets (issue 10's crash was a range of
//! the turn batch outliving its turn).
//!
//! The real parts: topics, the grouping of publishes into runs, the turn batch and its
//! holders, each subscriber's `ConnState` (backpressure policy) and `Outbox`, control
//! frames queued by timers and sends, and seals. The test plays the reactor: it
//! interleaves publishes from several publishers to several topics (small frames that
//! are batched and large ones that are not), deliveries, writes to sockets that take
//! an arbitrary number of bytes (or none), pings queued by timers, the subscriber's
//! own sends, and ends of turns, in any order proptest picks. Every subscriber must
//! receive exactly the frames meant for it, whole and in order, and nothing may panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::next_run;
use crate::protocol::frame::OpCode;
use crate::server::config::{BackpressurePolicy, ServerConfig};
use crate::server::conn_api::ConnId;
use crate::server::core::batch::TurnBatch;
use crate::server::core::conn::state::ConnState;
use crate::server::core::outbox::Delivery;
use crate::server::encode::encode_into;
use crate::server::handler::Message;
use crate::server::pubsub::{Publish, Topics};
use crate::server::stats::Stats;
use crate::server::testing::Limited;

const TOPICS: [&str; 2] = ["a", "b"];

/// One step of the reactor's life, as far as delivery is concerned.
#[derive(Debug, Clone)]
enum Step {
    /// A publisher publishes a message of `len` payload bytes to a topic.
    Publish {
        publisher: usize,
        topic: usize,
        len: usize,
    },
    /// The publishes made so far are delivered (a publisher's callback returned, or
    /// another reactor's publishes arrived).
    Deliver,
    /// A subscriber's socket becomes writable and takes up to `budget` bytes.
    Write { subscriber: usize, budget: usize },
    /// A subscriber's timer queues a ping, then it is written.
    Timer { subscriber: usize, budget: usize },
    /// A subscriber is served (it sent something) and answers into the cork.
    Answer { subscriber: usize, budget: usize },
    /// The turn ends: every subscriber delivered to is written, then the batch seals.
    EndTurn { budget: usize },
}

fn step(subscribers: usize, publishers: usize) -> impl Strategy<Value = Step> {
    let budget = prop_oneof![Just(0), 1..64usize, 64..2048usize, Just(usize::MAX)];
    let len = prop_oneof![0..200usize, 4000..6000usize];
    prop_oneof![
        6 => (0..publishers, 0..TOPICS.len(), len).prop_map(|(publisher, topic, len)| {
            Step::Publish { publisher, topic, len }
        }),
        3 => Just(Step::Deliver),
        3 => (0..subscribers, budget.clone())
            .prop_map(|(subscriber, budget)| Step::Write { subscriber, budget }),
        1 => (0..subscribers, budget.clone())
            .prop_map(|(subscriber, budget)| Step::Timer { subscriber, budget }),
        1 => (0..subscribers, budget.clone())
            .prop_map(|(subscriber, budget)| Step::Answer { subscriber, budget }),
        2 => budget.prop_map(|budget| Step::EndTurn { budget }),
    ]
}

/// A subscriber: its connection state, its socket, and what it must receive.
struct Subscriber {
    core: ConnState,
    socket: Limited,
    /// Every frame queued for it, in order.
    expected: Vec<Bytes>,
}

/// The reactor's share of the model.
struct Model {
    topics: Topics,
    batch: TurnBatch,
    subscribers: Vec<Subscriber>,
    pending: Vec<Publish>,
    dirty: Vec<usize>,
    cork: Vec<u8>,
    sequence: Vec<usize>,
    config: ServerConfig,
    stats: Stats,
}

impl Model {
    fn new(subscriptions: &[Vec<bool>], publishers: usize, config: ServerConfig) -> Self {
        let mut topics = Topics::new(Arc::default());
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
        let subscribers = subscriptions
            .iter()
            .enumerate()
            .map(|(key, wants)| {
                for (topic, _) in TOPICS.iter().zip(wants).filter(|(_, w)| **w) {
                    topics.subscribe(topic, key);
                }
                Subscriber {
                    core: ConnState::new(key, ConnId(key as u64 + 1), peer, 0),
                    socket: Limited::default(),
                    expected: Vec::new(),
                }
            })
            .collect();
        Self {
            topics,
            batch: TurnBatch::default(),
            subscribers,
            pending: Vec::new(),
            dirty: Vec::new(),
            cork: Vec::new(),
            sequence: vec![0; publishers],
            config,
            stats: Stats::default(),
        }
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Publish {
                publisher,
                topic,
                len,
            } => {
                self.sequence[publisher] += 1;
                let mut text = format!("{publisher}:{}:", self.sequence[publisher]);
                text.extend(std::iter::repeat_n('x', len));
                let topic = Some(TOPICS[topic].into());
                self.pending
                    .push(Publish::new(topic, Message::Text(&text), None, None));
            }
            Step::Deliver => self.deliver(),
            Step::Write { subscriber, budget } => self.write(subscriber, budget),
            Step::Timer { subscriber, budget } => {
                let sub = &mut self.subscribers[subscriber];
                sub.core.queue_control(OpCode::Ping, b"", None);
                sub.expected.push(frame(OpCode::Ping, b""));
                self.write(subscriber, budget);
            }
            Step::Answer { subscriber, budget } => {
                let sub = &mut self.subscribers[subscriber];
                let payload = format!("pong {}", sub.expected.len());
                sub.core
                    .queue_control(OpCode::Pong, payload.as_bytes(), Some(&mut self.cork));
                sub.expected.push(frame(OpCode::Pong, payload.as_bytes()));
                self.write(subscriber, budget);
            }
            Step::EndTurn { budget } => self.end_turn(budget),
        }
    }

    /// What the reactor's `deliver_local` and `deliver_group` do.
    fn deliver(&mut self) {
        let publishes = std::mem::take(&mut self.pending);
        let mut rest = &publishes[..];
        while !rest.is_empty() {
            let (run, batched) = next_run(rest, &self.batch);
            let (group, later) = rest.split_at(run);
            rest = later;
            let mut targets = Vec::new();
            let topic = group[0]
                .topic
                .as_deref()
                .expect("the model publishes to topics");
            self.topics.subscribers_into(topic, &mut targets);
            if targets.is_empty() {
                continue;
            }
            let frames: Vec<_> = if batched {
                group.iter().map(|p| self.batch.append(&p.frame)).collect()
            } else {
                Vec::new()
            };
            let delivery = if batched {
                Delivery::batched(&frames)
            } else {
                Delivery::Shared(&group[0].frame)
            };
            for key in targets {
                let sub = &mut self.subscribers[key];
                let before = sub.core.outbox.len();
                sub.core.deliver(delivery, &self.config, &self.stats);
                if sub.core.outbox.len() > before {
                    sub.expected.extend(group.iter().map(|p| p.frame.clone()));
                }
                if batched {
                    self.batch.hold(key, &mut sub.core.batch_holder);
                }
                if !sub.core.dirty {
                    sub.core.dirty = true;
                    self.dirty.push(key);
                }
            }
        }
    }

    /// A flush of one subscriber: its queue, then the cork (which holds its answers).
    fn write(&mut self, key: usize, budget: usize) {
        let sub = &mut self.subscribers[key];
        sub.socket.budget = budget;
        sub.core
            .outbox
            .flush(&mut sub.socket, &mut self.cork, &self.batch)
            .expect("the test socket never fails");
        assert!(self.cork.is_empty(), "what the socket refused is queued");
    }

    /// What the reactor's `flush_dirty` does.
    fn end_turn(&mut self, budget: usize) {
        self.deliver();
        for key in std::mem::take(&mut self.dirty) {
            self.subscribers[key].core.dirty = false;
            self.write(key, budget);
        }
        let subscribers = &mut self.subscribers;
        self.batch
            .seal(|key, sealed| subscribers[key].core.settle(sealed));
        for sub in &self.subscribers {
            assert!(!sub.core.outbox.holds_batch(), "a range outlived its turn");
        }
    }

    /// Ends turns with sockets that take everything until every outbox is empty.
    fn drain(&mut self) {
        self.end_turn(usize::MAX);
        for key in 0..self.subscribers.len() {
            self.write(key, usize::MAX);
        }
        for sub in &self.subscribers {
            assert!(sub.core.outbox.is_empty());
        }
    }
}

fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut out = Vec::new();
    encode_into(&mut out, opcode, payload);
    out.into()
}

/// Whether `received` is a sequence of whole frames of `expected`, in order (some may
/// be missing: dropped by the backpressure policy).
fn whole_frames_in_order(received: &[u8], expected: &[Bytes]) -> bool {
    let mut at = 0;
    let mut frames = expected.iter();
    while at < received.len() {
        match frames.find(|f| received[at..].starts_with(f)) {
            Some(f) => at += f.len(),
            None => return false,
        }
    }
    true
}

fn scenario() -> impl Strategy<Value = (Vec<Vec<bool>>, usize, Vec<Step>)> {
    (1..5usize, 1..4usize).prop_flat_map(|(subscribers, publishers)| {
        (
            prop::collection::vec(
                prop::collection::vec(any::<bool>(), TOPICS.len()),
                subscribers,
            ),
            Just(publishers),
            prop::collection::vec(step(subscribers, publishers), 1..120),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_subscriber_gets_exactly_its_frames_in_order(
        (subscriptions, publishers, steps) in scenario()
    ) {
        let config = ServerConfig { max_backpressure: usize::MAX / 2, ..ServerConfig::default() };
        let mut model = Model::new(&subscriptions, publishers, config);
        for step in steps {
            model.run(step);
        }
        model.drain();
        for sub in &model.subscribers {
            let expected: Vec<u8> = sub.expected.iter().flat_map(|f| f.iter().copied()).collect();
            prop_assert_eq!(&sub.socket.taken, &expected);
        }
    }

    #[test]
    fn dropped_messages_never_split_a_frame(
        (subscriptions, publishers, steps) in scenario(),
        limit in 1..3000usize,
    ) {
        let config = ServerConfig {
            max_backpressure: limit,
            backpressure_policy: BackpressurePolicy::Drop,
            ..ServerConfig::default()
        };
        let mut model = Model::new(&subscriptions, publishers, config);
        for step in steps {
            model.run(step);
        }
        model.drain();
        for sub in &model.subscribers {
            prop_assert!(whole_frames_in_order(&sub.socket.taken, &sub.expected));
        }
    }
}
