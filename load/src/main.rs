//! `wavecore-load`: see `wavecore-load --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = match wavecore_load::Config::parse(std::env::args().skip(1)) {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
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
