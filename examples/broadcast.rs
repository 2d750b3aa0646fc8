//! Broadcast: every message received on `/broadcast` is published to every connection
//! on `/broadcast` (the sender included); any other path echoes. Plain HTTP `GET
//! /metrics` serves the server's Prometheus metrics (the soak reads them).
//!
//! ```text
//! cargo run --release --example broadcast -- [ADDR] [--redis URL] [--tls-cert FILE --tls-key FILE]
//!     [--workers N] [--backend epoll|io_uring|auto]
//! ```
//!
//! `--help` lists every option and its default. `ADDR` defaults to 127.0.0.1:9001 (a
//! port alone listens on 127.0.0.1; `--addr` and `--port` also work). With
//! `--tls-cert` and `--tls-key` (PEM files) it serves `wss://` (and `https://` for
//! `/metrics`). `WORKERS` and `WAVECORE_BACKEND` set `--workers` and `--backend` from
//! the environment.
//!
//! With `--redis redis://127.0.0.1:6379`, `/broadcast` is shared with every other
//! broadcast server on that Redis: start two on two ports and a message sent to one
//! reaches the `/broadcast` connections of both.
//!
//! One reactor per core unless `--workers`; room for 20,000 connections.
//! permessage-deflate (RFC 7692) is on for clients that offer it: a published message
//! is compressed once and the same bytes go to every subscriber that negotiated it.
//!
//! Logs go to stdout (`RUST_LOG`, default `info`); Ctrl-C or `SIGTERM` stops
//! gracefully: every client gets close 1001 after what was queued for it.

use std::process::ExitCode;

use clap::Parser;
use wavecore::bridge::RedisBridge;
use wavecore::{
    Conn, DeflateConfig, Handler, HttpResponse, Message, Request, Server, Service, Upgrade,
};

#[path = "common/cli.rs"]
mod cli;

const TOPIC: &str = "broadcast";

/// Broadcast: every message received on /broadcast goes to every connection on
/// /broadcast (the sender included); any other path echoes; GET /metrics serves the
/// Prometheus metrics. Logs go to stdout (RUST_LOG, default info); Ctrl-C or SIGTERM
/// stops gracefully.
#[derive(Debug, Parser)]
#[command(name = "broadcast")]
struct Cli {
    #[command(flatten)]
    server: cli::ServerArgs,
    #[command(flatten)]
    bridge: cli::BridgeArgs,
}

/// A connection on `/broadcast`: subscribes on open, publishes what it receives.
struct Subscriber;

impl Handler for Subscriber {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.subscribe(TOPIC);
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.publish(TOPIC, message);
    }
}

/// Any other path: echo.
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

/// The two handlers behind one type, chosen by path at the upgrade.
enum Route {
    Broadcast(Subscriber),
    Echo(Echo),
}

impl Handler for Route {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        match self {
            Route::Broadcast(h) => h.on_open(conn),
            Route::Echo(h) => h.on_open(conn),
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match self {
            Route::Broadcast(h) => h.on_message(conn, message),
            Route::Echo(h) => h.on_message(conn, message),
        }
    }
}

/// Upgrades by path; plain HTTP: the metrics.
struct Routes;

impl Service for Routes {
    type Handler = Route;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Route> {
        if request.path() == "/broadcast" {
            Upgrade::accept(Route::Broadcast(Subscriber))
        } else {
            Upgrade::accept(Route::Echo(Echo))
        }
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/metrics" => HttpResponse::metrics(request),
            _ => HttpResponse::not_found(),
        }
    }
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging();
    let mut builder = Server::builder()
        .shutdown_on_signals(true)
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .max_connections(20_000)
        .permessage_deflate(DeflateConfig::default());
    if let Some(url) = &args.bridge.redis {
        match RedisBridge::new(url) {
            Ok(bridge) => builder = builder.bridge(bridge),
            Err(e) => return cli::fail("broadcast", &e, &args.server),
        }
    }
    let server = match args.server.apply(builder).start(Routes) {
        Ok(server) => server,
        Err(e) => return cli::fail("broadcast", &e, &args.server),
    };
    tracing::info!(
        "broadcast server on {}://{}/broadcast",
        args.server.ws_scheme(),
        server.local_addr()
    );
    match server.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("broadcast: {failure}");
            ExitCode::FAILURE
        }
    }
}
