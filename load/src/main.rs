//! `wavecore-load`: see `wavecore-load --help`.

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
    if cfg.mode == wavecore_load::Mode::Soak {
        return soak(&cfg);
    }
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

/// The soak mode: several runs at once (see `wavecore_load::soak`).
fn soak(cfg: &wavecore_load::Config) -> ExitCode {
    match wavecore_load::soak::run(cfg) {
        Ok(report) => {
            print!("{}", report.summary());
            if report.errors() > 0 {
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
