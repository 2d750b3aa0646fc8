//! The subscribing thread: one Pub/Sub connection, subscribed to the channels of the
//! topics this server has subscribers for, handing what arrives to the server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use ::redis::{PubSub, RedisError, RedisResult};
use bytes::Bytes;

use crate::server::bridge::redis::{PING_AFTER, POLL, RedisBridge};
use crate::server::bridge::{Backoff, BridgeLink, Direction};

/// Runs until the bridge is stopped.
pub(super) fn run(config: &RedisBridge, link: &BridgeLink) {
    let mut backoff = Backoff::new(config.retry_min, config.retry_max, !link.node_id());
    let mut subscribed = HashSet::new();
    while !link.is_stopped() {
        let mut con = match config.connect() {
            Ok(con) => con,
            Err(error) => {
                let delay = backoff.next_delay();
                link.connect_failed(Direction::Subscribe, &error, delay);
                if !link.sleep(delay) {
                    return;
                }
                continue;
            }
        };
        let mut pubsub = con.as_pubsub();
        subscribed.clear();
        let topics = link.interest();
        if let Err(error) = change(config, &mut pubsub, &topics, true) {
            // Connected, then failed at once: count it as a failed attempt.
            let delay = backoff.next_delay();
            link.connect_failed(Direction::Subscribe, &error, delay);
            drop(pubsub);
            if !link.sleep(delay) {
                return;
            }
            continue;
        }
        subscribed.extend(topics);
        link.set_subscribed(subscribed.len());
        if let Err(error) = pubsub.set_read_timeout(Some(POLL)) {
            link.disconnected(Direction::Subscribe, &error);
            continue;
        }
        backoff.reset();
        link.connected(Direction::Subscribe);
        if let Some(error) = listen(config, link, &mut pubsub, &mut subscribed) {
            link.disconnected(Direction::Subscribe, &error);
        }
    }
}

/// Receives until the bridge stops (`None`) or the connection fails.
fn listen(
    config: &RedisBridge,
    link: &BridgeLink,
    pubsub: &mut PubSub<'_>,
    subscribed: &mut HashSet<Arc<str>>,
) -> Option<RedisError> {
    let mut heard = Instant::now();
    loop {
        if link.is_stopped() {
            return None;
        }
        if link.interest_changed() {
            let (add, remove) = link.reconcile(subscribed);
            if let Err(error) = change(config, pubsub, &add, true) {
                return Some(error);
            }
            if let Err(error) = change(config, pubsub, &remove, false) {
                return Some(error);
            }
            subscribed.extend(add);
            for topic in &remove {
                subscribed.remove(topic);
            }
            link.set_subscribed(subscribed.len());
        }
        match pubsub.get_message() {
            Ok(message) => {
                heard = Instant::now();
                let channel = message.get_channel_name();
                if let Some(topic) = channel.strip_prefix(config.prefix.as_str()) {
                    let envelope = Bytes::copy_from_slice(message.get_payload_bytes());
                    link.receive(topic, envelope);
                }
            }
            Err(error) if error.is_timeout() => {
                if heard.elapsed() >= PING_AFTER {
                    if let Err(error) = ping(config, pubsub) {
                        return Some(error);
                    }
                    heard = Instant::now();
                }
            }
            Err(error) => return Some(error),
        }
    }
}

/// Subscribes to (or unsubscribes from) the channels of `topics`, in one command,
/// waiting up to `io_timeout` for Redis to answer; then reads wait [`POLL`] again.
fn change(
    config: &RedisBridge,
    pubsub: &mut PubSub<'_>,
    topics: &[Arc<str>],
    subscribe: bool,
) -> RedisResult<()> {
    if topics.is_empty() {
        return Ok(());
    }
    let channels: Vec<String> = topics
        .iter()
        .map(|topic| format!("{}{topic}", config.prefix))
        .collect();
    pubsub.set_read_timeout(Some(config.io_timeout))?;
    if subscribe {
        pubsub.subscribe(channels)?;
    } else {
        pubsub.unsubscribe(channels)?;
    }
    pubsub.set_read_timeout(Some(POLL))
}

/// Asks Redis for a pong, waiting up to `io_timeout`.
fn ping(config: &RedisBridge, pubsub: &mut PubSub<'_>) -> RedisResult<()> {
    pubsub.set_read_timeout(Some(config.io_timeout))?;
    pubsub.ping::<::redis::Value>()?;
    pubsub.set_read_timeout(Some(POLL))
}
