//! `wavecore-load`: see `wavecore-load --help`.
#![forbid(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use wavecore_load::{Cli, interrupt};

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
    if let Err(e) = interrupt::install() {
        eprintln!("wavecore-load: cannot catch Ctrl-C: {e}");
        return ExitCode::from(2);
    }
    // What to print, and the errors counted.
    let outcome = if cfg.mode == wavecore_load::Mode::Soak {
        wavecore_load::soak::run(&cfg).map(|report| (report.summary(), report.errors()))
    } else {
        wavecore_load::run(&cfg).map(|report| {
            let text = if cfg.json {
                format!("{}\n", report.json())
            } else {
                report.summary()
            };
            (text, report.tally.errors)
        })
    };
    match outcome {
        Ok((text, errors)) => {
            print!("{text}");
            if interrupt::requested() {
                ExitCode::from(interrupt::EXIT_STATUS)
            } else if errors > 0 {
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
