//! Peer servers that wavecore is benchmarked against, side by side.
//!
//! This crate holds only what the binaries in `src/bin/` share: command-line
//! parsing, runtime construction and a few constants. It is a workspace member
//! that the default `cargo test` does not build, and it is never published.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod args;

use std::net::SocketAddr;

pub use args::{Args, Mode};

/// Address every peer binds when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9001";

/// Request path on which the WebSocket peers broadcast instead of echoing.
pub const BROADCAST_PATH: &str = "/broadcast";

/// Largest message (and frame) the WebSocket peers accept: 64 MiB.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Slots in the shared broadcast channel; a subscriber further behind than
/// this skips the messages it missed.
pub const BROADCAST_CAPACITY: usize = 4096;

/// Builds the tokio runtime the WebSocket peers run on: `current_thread` for one
/// thread, a multi-thread runtime with `threads` workers otherwise.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()
    }
}

/// Prints the line the benchmark harness waits for once a listener is bound.
pub fn announce(addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // The harness reads this line; a broken stdout is not worth dying over.
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Parses the process arguments, or prints usage and exits on a bad command line
/// (which includes `--tls-cert`/`--tls-key`: see [`args_or_exit_tls`]).
pub fn args_or_exit(program: &str, allow_mode: bool) -> Args {
    let args = parse_or_exit(program, allow_mode);
    if args.tls.is_some() {
        eprintln!("{program}: does not serve TLS");
        std::process::exit(2);
    }
    args
}

/// [`args_or_exit`] for a peer that serves TLS when given `--tls-cert` and
/// `--tls-key`.
pub fn args_or_exit_tls(program: &str) -> Args {
    parse_or_exit(program, false)
}

fn parse_or_exit(program: &str, allow_mode: bool) -> Args {
    match Args::parse(std::env::args().skip(1), allow_mode) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{program}: {msg}");
            eprintln!("{}", args::usage(program, allow_mode));
            std::process::exit(2);
        }
    }
}
