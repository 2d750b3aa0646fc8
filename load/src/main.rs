//! `wavecore-load`: see `wavecore-load --help`.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use wavecore_load::Cli;

fn main() -> ExitCode {
    // Usage errors and --help exit here (status 2 and 0).
    let cfg = match Cli::parse().into_config() {
        Ok(cfg) => cfg,
        Err(message) => {
            Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, message)
                .exit();
        }
    };
    match wavecore_load::run(&cfg) {
        Ok(report) => {
            if cfg.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.summary());
            }
            if report.tally.errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("wavecore-load: {message}");
            ExitCode::from(2)
        }
    }
}
