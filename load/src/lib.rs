//! # wavecore-load
//!
//! A load generator for WebSocket servers (and plain TCP echo/fan-out servers): many
//! connections per thread on one mio poll each, framing by wavecore's protocol module
//! (client role, every frame masked), latency in HdrHistogram histograms ([`hist`]),
//! every payload checked.
//!
//! * [`Config`]: what to run; [`Cli`] parses it from the command line.
//! * [`run()`]: runs it and returns a [`Report`].
//!
//! Workloads: `echo` (numbered payloads, echoes checked for content and order),
//! `broadcast` (publishers send numbered, timestamped payloads; every subscriber
//! checks each publisher's order), `connect` (idle connections, for memory) and `soak`
//! (all of them at once, with slow consumers and churn, for minutes: [`soak`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod cli;
pub mod config;
pub mod conn;
pub mod hist;
pub mod interrupt;
pub mod metrics;
pub mod payload;
pub mod plan;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod role;
pub mod run;
pub mod shared;
pub mod shutdown;
pub mod slots;
pub mod soak;
pub mod tally;
pub mod tls;
pub mod worker;

pub use cli::Cli;
pub use config::{Config, Mode, Target};
pub use report::Report;
pub use run::run;
