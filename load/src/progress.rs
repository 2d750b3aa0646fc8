//! Live progress on stderr: an indicatif bar when stderr is a terminal, else (with
//! `--progress`) a plain line once a second. Nothing goes to stdout, so `--json`
//! output stays one object.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Bar, prefix and numbers while connections open.
const CONNECTING: &str = "{prefix:>10} [{wide_bar}] {pos}/{len} connections";
/// Bar, prefix and the window's numbers (in the message) while measuring.
const MEASURING: &str = "{prefix:>10} [{wide_bar}] {msg}";

/// How often the bar moves during the window (the rate is still taken per second).
const BAR_INTERVAL: Duration = Duration::from_millis(250);

/// Where progress goes.
pub enum Progress {
    /// Nowhere.
    Off,
    /// One line, rewritten in place once a second (stderr is not a terminal).
    Line,
    /// A live bar.
    Bar(ProgressBar),
}

/// One reading in the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Time since the window opened.
    pub elapsed: Duration,
    /// Messages (or deliveries) per second since the window opened.
    pub rate: f64,
    /// Connections open.
    pub open: usize,
    /// Errors so far.
    pub errors: u64,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    /// A bar when stderr is a terminal, starting with `connections` to open; a line
    /// when `forced` and it is not.
    pub fn new(forced: bool, connections: usize) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(connections as u64);
            bar.set_style(style(CONNECTING));
            bar.set_prefix("connecting");
            Progress::Bar(bar)
        } else if forced {
            Progress::Line
        } else {
            Progress::Off
        }
    }

    /// How long the main thread may sleep between readings in the window.
    pub fn interval(&self) -> Duration {
        match self {
            Progress::Bar(_) => BAR_INTERVAL,
            Progress::Off | Progress::Line => Duration::from_secs(1),
        }
    }

    /// While connections open: `open` are past their handshake.
    pub fn connecting(&self, open: usize) {
        if let Progress::Bar(bar) = self {
            bar.set_position(open as u64);
        }
    }

    /// The workload has started; the window of `duration` opens after `warmup`.
    pub fn started(&self, warmup: Duration, duration: Duration) {
        if let Progress::Bar(bar) = self {
            // The style first: a redraw between these calls with the connecting style
            // would show the window's length in milliseconds as "0/4000 connections".
            bar.set_style(style(MEASURING));
            bar.set_prefix("warm-up");
            bar.set_message(format!("{:.1}s before the window", warmup.as_secs_f64()));
            bar.set_length(duration.as_millis() as u64);
            bar.set_position(0);
        }
    }

    /// A reading in the window of `duration`.
    pub fn measuring(&self, s: &Sample, duration: Duration) {
        match self {
            Progress::Off => {}
            Progress::Line => {
                eprint!(
                    "\r{:>5.1}s  {:>10.0} msg/s  conns {:>6}  errors {:<6}",
                    s.elapsed.as_secs_f64(),
                    s.rate,
                    s.open,
                    s.errors,
                );
                let _ = std::io::stderr().flush();
            }
            Progress::Bar(bar) => {
                bar.set_prefix("measuring");
                bar.set_message(format!(
                    "{:.1}/{:.1}s  {:.0} msg/s  conns {}  errors {}",
                    s.elapsed.as_secs_f64(),
                    duration.as_secs_f64(),
                    s.rate,
                    s.open,
                    s.errors,
                ));
                bar.set_position(s.elapsed.as_millis() as u64);
            }
        }
    }

    /// The window has closed (or the run gave up): ends the line, or clears the bar,
    /// so that what is printed next starts on a line of its own (the summary repeats
    /// the bar's figures).
    pub fn finish(&self) {
        match self {
            Progress::Off => {}
            Progress::Line => eprintln!(),
            Progress::Bar(bar) => bar.finish_and_clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for template in [CONNECTING, MEASURING] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn off_and_line_keep_the_once_a_second_pace() {
        assert_eq!(Progress::Off.interval(), Duration::from_secs(1));
        assert_eq!(Progress::Line.interval(), Duration::from_secs(1));
        let bar = Progress::Bar(ProgressBar::hidden());
        assert!(bar.interval() < Duration::from_secs(1));
    }
}
