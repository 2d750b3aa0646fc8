//! The publishing thread: batches from the bridge's buffer, each sent as one pipeline
//! of `PUBLISH` commands.

use std::time::Duration;

use ::redis::{Connection, Pipeline, RedisError};

use crate::server::bridge::redis::{ChannelName, Envelope, RedisBridge};
use crate::server::bridge::{Backoff, BridgeLink, Direction};

/// Most envelope bytes in one pipeline (a batch holds at least one message).
const MAX_BATCH_BYTES: usize = 256 << 10;

/// How long to wait for messages before looking again (only matters at shutdown).
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Runs until the bridge is stopped and what was buffered is sent (or, while
/// disconnected, dropped and counted).
pub(super) fn run(config: &RedisBridge, link: &BridgeLink) {
    let mut backoff = Backoff::new(config.retry_min, config.retry_max, link.node_id());
    loop {
        let mut con = match config.connect() {
            Ok(con) => con,
            Err(error) => {
                if link.is_stopped() {
                    link.abandon();
                    return;
                }
                let delay = backoff.next_delay();
                link.connect_failed(Direction::Publish, &error, delay);
                if !link.sleep(delay) {
                    link.abandon();
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        link.connected(Direction::Publish);
        match send_until_failure(config, link, &mut con) {
            None => return,
            Some(error) => link.disconnected(Direction::Publish, &error),
        }
    }
}

/// Sends batches until the bridge stops (`None`) or the connection fails.
fn send_until_failure(
    config: &RedisBridge,
    link: &BridgeLink,
    con: &mut Connection,
) -> Option<RedisError> {
    let mut batch = Vec::new();
    let mut pipe = Pipeline::with_capacity(64);
    loop {
        if !link.next_batch(&mut batch, MAX_BATCH_BYTES, IDLE_WAIT) {
            return None;
        }
        if batch.is_empty() {
            continue;
        }
        pipe.clear();
        for item in &batch {
            pipe.cmd("PUBLISH")
                .arg(ChannelName(&config.prefix, item.topic()))
                .arg(Envelope(item));
        }
        match pipe.exec(con) {
            Ok(()) => link.confirmed(&mut batch),
            Err(error) if is_connection_failure(&error) => {
                link.unconfirmed(&mut batch);
                return Some(error);
            }
            // Redis answered with an error (an ACL refusing the channel, out of
            // memory...): sending the same again would fail again.
            Err(error) => link.rejected(&mut batch, &error),
        }
    }
}

/// Whether `error` means the connection is gone (or unusable), rather than Redis
/// refusing a command.
fn is_connection_failure(error: &RedisError) -> bool {
    error.is_io_error() || error.is_timeout() || error.is_connection_dropped()
}
