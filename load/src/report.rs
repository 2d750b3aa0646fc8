//! The result of a run, as a text summary or one JSON object.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{Config, Mode};
use crate::tally::Tally;

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The settings it ran with.
    pub cfg: Config,
    /// Time to open every connection.
    pub setup: Duration,
    /// Length of the measured window (shorter when interrupted).
    pub measured: Duration,
    /// Whether Ctrl-C ended the run early: the figures cover part of the window.
    pub interrupted: bool,
    /// Connections open when the window closed.
    pub established: usize,
    /// Counts and latencies of all threads together.
    pub tally: Tally,
    /// Server CPU seconds (user + system) spent in the window.
    pub server_cpu: Option<f64>,
    /// Server RSS in KiB before any connection was opened.
    pub rss_before: Option<u64>,
    /// A staged run ([`Config::staged`]): connections open after the first half, and
    /// the server's RSS in KiB then.
    pub halfway: Option<(usize, u64)>,
    /// Server RSS in KiB when the window closed.
    pub rss_after: Option<u64>,
}

impl Report {
    /// Messages (echo) or deliveries (broadcast) per second in the window.
    pub fn rate(&self) -> f64 {
        self.tally.messages as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Payload megabytes (10^6) received per second.
    pub fn mb_per_s(&self) -> f64 {
        self.tally.bytes as f64 / 1e6 / self.measured.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in microseconds.
    pub fn latency_us(&self, quantile: f64) -> f64 {
        self.tally.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Server CPU microseconds per message (or per delivery).
    pub fn cpu_us_per_msg(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.tally.messages > 0).then(|| cpu * 1e6 / self.tally.messages as f64)
    }

    /// Server bytes per open connection: its RSS growth over the connections open at
    /// the end.
    pub fn bytes_per_conn(&self) -> Option<f64> {
        let (before, after) = self.rss_before.zip(self.rss_after)?;
        (self.established > 0)
            .then(|| (after as f64 - before as f64) * 1024.0 / self.established as f64)
    }

    /// A staged run: server bytes per connection at the margin, the RSS growth from
    /// the first half to the end over the connections opened in between (what the
    /// server spends once, whatever the number of connections, is not in it).
    pub fn marginal_bytes_per_conn(&self) -> Option<f64> {
        let (open, halfway) = self.halfway?;
        let after = self.rss_after?;
        (self.established > open)
            .then(|| (after as f64 - halfway as f64) * 1024.0 / (self.established - open) as f64)
    }

    fn mode(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Echo => "echo",
            Mode::Broadcast => "broadcast",
            Mode::Connect => "connect",
            Mode::Soak => "soak",
        }
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let c = &self.cfg;
        let mut s = String::new();
        if self.interrupted {
            let _ = writeln!(
                s,
                "interrupted (Ctrl-C): the figures below cover {:.2}s of the {:.2}s window",
                self.measured.as_secs_f64(),
                c.duration.as_secs_f64()
            );
        }
        let _ = writeln!(
            s,
            "{} {}{}{} | {} connections ({} open) | {} B {} | setup {:.2}s, window {:.2}s",
            self.mode(),
            c.url(),
            if c.raw { " (raw TCP)" } else { "" },
            c.publish_to
                .as_ref()
                .map_or(String::new(), |t| format!(" (publishers on {})", t.host)),
            c.connections,
            self.established,
            c.size,
            if c.binary { "binary" } else { "text" },
            self.setup.as_secs_f64(),
            self.measured.as_secs_f64(),
        );
        if c.mode != Mode::Connect {
            let what = if c.mode == Mode::Echo {
                "messages"
            } else {
                "deliveries"
            };
            let _ = writeln!(
                s,
                "  {what}: {} ({:.0}/s, {:.2} MB/s)",
                self.tally.messages,
                self.rate(),
                self.mb_per_s()
            );
            let _ = writeln!(
                s,
                "  latency us: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                self.latency_us(0.5),
                self.latency_us(0.99),
                self.latency_us(0.999),
                self.tally.latency.max() as f64 / 1000.0
            );
        }
        if c.deflate {
            let _ = writeln!(
                s,
                "  permessage-deflate: offered; negotiated on {} of {} connections{}",
                self.tally.deflate_negotiated,
                c.connections + c.publishing(),
                if self.tally.deflate_negotiated == 0 {
                    " (messages went uncompressed)"
                } else {
                    ""
                }
            );
        }
        let _ = write!(s, "  errors: {}", self.tally.errors);
        if c.mode == Mode::Broadcast {
            let _ = write!(
                s,
                " (lost {}, out of order {})",
                self.tally.lost, self.tally.out_of_order
            );
        }
        if let Some(e) = &self.tally.first_error {
            let _ = write!(s, "; first: {e}");
        }
        s.push('\n');
        if let Some(cpu) = self.server_cpu {
            let _ = write!(s, "  server CPU: {cpu:.2}s");
            if let Some(per) = self.cpu_us_per_msg() {
                let _ = write!(s, " ({per:.2} us per message)");
            }
            s.push('\n');
        }
        if let (Some(before), Some(after)) = (self.rss_before, self.rss_after) {
            let _ = write!(
                s,
                "  server RSS: {before} KiB before, {after} KiB at the end"
            );
            if let Some(per) = self.bytes_per_conn() {
                let _ = write!(s, " ({per:.0} B per open connection)");
            }
            s.push('\n');
        }
        if let (Some((open, halfway)), Some(after)) = (self.halfway, self.rss_after) {
            let _ = write!(
                s,
                "  at the margin: {halfway} KiB with {open} open, {after} KiB with {}",
                self.established
            );
            if let Some(per) = self.marginal_bytes_per_conn() {
                let _ = write!(s, " ({per:.0} B per connection in between)");
            }
            s.push('\n');
        }
        s
    }

    /// One JSON object (numbers unquoted; missing measurements are `null`).
    pub fn json(&self) -> String {
        let c = &self.cfg;
        let opt = |v: Option<f64>| v.map_or("null".to_owned(), |v| format!("{v:.4}"));
        let opt_u = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
        let first_error = self
            .tally
            .first_error
            .as_deref()
            .map_or("null".to_owned(), |e| format!("\"{}\"", json_escape(e)));
        let lat = |q| format!("{:.2}", self.latency_us(q));
        format!(
            concat!(
                "{{\"mode\":\"{}\",\"addr\":\"{}\",\"url\":\"{}\",\"publish_to\":{},\"raw\":{},",
                "\"interrupted\":{},\"deflate_offered\":{},\"deflate_negotiated\":{},",
                "\"connections\":{},",
                "\"established\":{},\"in_flight\":{},\"size\":{},\"binary\":{},",
                "\"publishers\":{},\"rate\":{},\"setup_s\":{:.3},\"duration_s\":{:.3},",
                "\"messages\":{},\"msgs_per_s\":{:.1},\"mb_per_s\":{:.3},",
                "\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},",
                "\"errors\":{},\"lost\":{},\"out_of_order\":{},\"first_error\":{},",
                "\"server_cpu_s\":{},\"server_cpu_us_per_msg\":{},",
                "\"server_rss_kib_before\":{},\"server_rss_kib\":{},",
                "\"bytes_per_conn\":{},\"halfway_established\":{},",
                "\"server_rss_kib_halfway\":{},\"marginal_bytes_per_conn\":{}}}"
            ),
            self.mode(),
            c.host,
            json_escape(&c.url()),
            c.publish_to
                .as_ref()
                .map_or("null".to_owned(), |t| format!("\"{}\"", t.host)),
            c.raw,
            self.interrupted,
            c.deflate,
            self.tally.deflate_negotiated,
            c.connections,
            self.established,
            c.in_flight,
            c.size,
            c.binary,
            if c.mode == Mode::Broadcast {
                c.publishers
            } else {
                0
            },
            c.rate,
            self.setup.as_secs_f64(),
            self.measured.as_secs_f64(),
            self.tally.messages,
            self.rate(),
            self.mb_per_s(),
            lat(0.5),
            lat(0.99),
            lat(0.999),
            self.tally.latency.max() as f64 / 1000.0,
            self.tally.errors,
            self.tally.lost,
            self.tally.out_of_order,
            first_error,
            opt(self.server_cpu),
            opt(self.cpu_us_per_msg()),
            opt_u(self.rss_before),
            opt_u(self.rss_after),
            opt(self.bytes_per_conn()),
            opt_u(self.halfway.map(|(open, _)| open as u64)),
            opt_u(self.halfway.map(|(_, rss)| rss)),
            opt(self.marginal_bytes_per_conn()),
        )
    }
}

/// `text` escaped for the inside of a JSON string.
fn json_escape(text: &str) -> String {
    text.chars()
        .flat_map(|ch| match ch {
            '"' | '\\' => vec!['\\', ch],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}
