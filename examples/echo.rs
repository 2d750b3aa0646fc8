//! Echoes every text and binary message on every path.
//!
//! ```text
//! cargo run --release --example echo -- [ADDR] [--tls-cert FILE --tls-key FILE]
//!     [--workers N] [--backend epoll|io_uring|auto]
//! ```
//!
//! `--help` lists every option and its default. `ADDR` defaults to 127.0.0.1:9001 (a
//! port alone listens on 127.0.0.1; `--addr` and `--port` also work). With
//! `--tls-cert` and `--tls-key` (PEM files; README.md shows how to make a self-signed
//! pair) it serves `wss://` instead. `WORKERS` and `WAVECORE_BACKEND` set `--workers`
//! and `--backend` from the environment.
//!
//! Sized for conformance suites and load tests: 64 MiB messages, 20,000 connections
//! (the open-files limit on our machines), one reactor per core unless `--workers`.
//! permessage-deflate (RFC 7692) is on with its defaults: a client that offers it
//! (Autobahn's sections 12 and 13, browsers) gets compressed echoes; one that does
//! not (the load generator by default) is unaffected.
//!
//! Logs go to stdout (`RUST_LOG`, default `info`); Ctrl-C or `SIGTERM` stops
//! gracefully: every client gets close 1001 after what was queued for it.

use std::process::ExitCode;

use clap::Parser;
use wavecore::{Conn, DeflateConfig, Handler, Message, Server};

#[path = "common/cli.rs"]
mod cli;

/// Echoes every text and binary message on every path: the server the conformance
/// suites and the load generator run against. Logs go to stdout (RUST_LOG, default
/// info); Ctrl-C or SIGTERM stops gracefully.
#[derive(Debug, Parser)]
#[command(name = "echo")]
struct Cli {
    #[command(flatten)]
    server: cli::ServerArgs,
}

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging();
    let builder = Server::builder()
        .shutdown_on_signals(true)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .max_backpressure(128 << 20)
        .max_connections(20_000)
        .permessage_deflate(DeflateConfig::default());
    let server = match args
        .server
        .apply(builder)
        .start(wavecore::accept_all(|| Echo))
    {
        Ok(server) => server,
        Err(e) => return cli::fail("echo", &e, &args.server),
    };
    tracing::info!(
        "echo server on {}://{}",
        args.server.ws_scheme(),
        server.local_addr()
    );
    match server.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("echo: {failure}");
            ExitCode::FAILURE
        }
    }
}
