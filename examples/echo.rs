//! Echoes every text and binary message on every path.
//!
//! ```text
//! cargo run --release --example echo -- [ADDR] [--tls-cert FILE --tls-key FILE]
//! ```
//!
//! `ADDR` defaults to 127.0.0.1:9001. With `--tls-cert` and `--tls-key` (PEM files;
//! README.md shows how to make a self-signed pair) it serves `wss://` instead.
//!
//! Sized for conformance suites and load tests: 64 MiB messages, 20,000 connections
//! (the open-files limit on our machines), one reactor per core (`WORKERS=n` to
//! override). permessage-deflate (RFC 7692) is on with its defaults: a client that
//! offers it (Autobahn's sections 12 and 13, browsers) gets compressed echoes; one
//! that does not (the load generator by default) is unaffected.
//!
//! Logs go to stdout (`RUST_LOG`, default `info`); Ctrl-C or `SIGTERM` stops
//! gracefully: every client gets close 1001 after what was queued for it.

use tracing_subscriber::EnvFilter;

#[path = "common/cli.rs"]
mod cli;
use wavecore::{Conn, DeflateConfig, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = cli::Args::parse()?;
    let mut builder = Server::builder()
        .bind(&args.addr)
        .shutdown_on_signals(true)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .max_backpressure(128 << 20)
        .max_connections(20_000)
        .permessage_deflate(DeflateConfig::default());
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        builder = builder.workers(workers);
    }
    // WAVECORE_BACKEND=epoll|io_uring|auto (default epoll).
    if let Some(backend) = wavecore::Backend::from_env() {
        builder = builder.backend(backend);
    }
    let server = args.tls(builder).start(wavecore::accept_all(|| Echo))?;
    tracing::info!(
        "echo server on {}://{}",
        args.ws_scheme(),
        server.local_addr()
    );
    server.join()?;
    Ok(())
}
