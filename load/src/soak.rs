//! The soak: the loads users bring, at once, for a long time. Healthy broadcast
//! subscribers checked for loss, echo connections checked for every reply, slow
//! consumers that never read, and churn (connections opened and closed every second),
//! all against one server, with its memory sampled before, during and after.
//!
//! Each part is an ordinary run of this crate's other modes ([`crate::run()`]) on its
//! own thread, so every message is checked exactly as in those modes.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{Config, Mode};
use crate::metrics::{self, ServerCounters};
use crate::procfs;
use crate::report::Report;

/// How long the server gets, after every client left, before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);

/// What a soak measured.
#[derive(Debug)]
pub struct SoakReport {
    /// The settings it ran with.
    pub cfg: Config,
    /// The healthy broadcast subscribers and publishers.
    pub broadcast: Report,
    /// The echo connections.
    pub echo: Report,
    /// The slow consumers (idle, never reading).
    pub slow: Report,
    /// Connections opened and closed by the churn, and how many of its rounds failed.
    pub churned: u64,
    /// Churn rounds with an error.
    pub churn_errors: u64,
    /// How long the churn ran.
    pub churn_time: Duration,
    /// Server RSS in KiB before any connection, at its highest while loaded, and after
    /// every client left (and `SETTLE` passed).
    pub rss: Option<(u64, u64, u64)>,
    /// Server file descriptors a second before the window closed, every part still
    /// running: fewer than the connections the client held means the server closed
    /// slow consumers (its backpressure policy).
    pub server_fds: Option<usize>,
    /// The server's own counters from its `/metrics` (a wavecore server that serves
    /// them, like `examples/broadcast`), read with the descriptors.
    pub server_counters: Option<ServerCounters>,
}

/// The parts of a soak, as runs of the other modes.
fn parts(cfg: &Config) -> (Config, Config, Config, Config) {
    let base = Config {
        progress: false,
        json: false,
        server_pid: None,
        ..cfg.clone()
    };
    let broadcast = Config {
        mode: Mode::Broadcast,
        path: "/broadcast".into(),
        connections: cfg.connections,
        // The shutdown's signal goes out when its window closes; the echo part sends
        // on until the server closes its connections too.
        signal_pid: cfg.server_pid.filter(|_| cfg.shutdown),
        ..base.clone()
    };
    let echo = Config {
        mode: Mode::Echo,
        path: "/".into(),
        connections: cfg.echo,
        in_flight: 1,
        size: cfg.size.max(crate::payload::ECHO_HEADER),
        publishers: 1,
        ..base.clone()
    };
    let slow = Config {
        mode: Mode::Connect,
        path: "/broadcast".into(),
        connections: cfg.slow,
        stall: true,
        publishers: 1,
        // Held past the end of the others, so they are still open when counted.
        duration: cfg.duration + Duration::from_secs(2),
        shutdown: false,
        ..base.clone()
    };
    let churn = Config {
        mode: Mode::Connect,
        path: "/broadcast".into(),
        connections: cfg.churn,
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        threads: 1,
        publishers: 1,
        shutdown: false,
        ..base
    };
    (broadcast, echo, slow, churn)
}

/// Runs the soak `cfg` describes (`cfg.mode` is [`Mode::Soak`]).
pub fn run(cfg: &Config) -> Result<SoakReport, String> {
    cfg.validate()?;
    let (broadcast, echo, slow, churn) = parts(cfg);
    let rss_before = cfg.server_pid.and_then(procfs::rss_kib);
    let done = Arc::new(AtomicBool::new(false));
    let rss_peak = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
    let sampler = cfg.server_pid.map(|pid| {
        let (done, peak) = (done.clone(), rss_peak.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = procfs::rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(500));
            }
        })
    });
    // The slow consumers first, so every broadcast of the run is theirs to refuse.
    let slow = spawn_part("soak-slow", slow)?;
    thread::sleep(Duration::from_millis(500));
    let echo = spawn_part("soak-echo", echo)?;
    let broadcast = spawn_part("soak-broadcast", broadcast)?;
    let mut churn_until = Instant::now() + cfg.warmup + cfg.duration;
    if cfg.shutdown {
        // Done before the signal: connections refused by a stopping server are not
        // the churn's failures.
        churn_until -= Duration::from_secs(2).min(cfg.duration);
    }
    let churner = thread::Builder::new()
        .name("soak-churn".into())
        .spawn(move || churn_until_deadline(&churn, churn_until))
        .map_err(|e| format!("spawn: {e}"))?;
    // The server's descriptors a second before the window closes, every part still on.
    let count_at = churn_until.checked_sub(Duration::from_secs(1));
    if let Some(at) = count_at {
        thread::sleep(at.saturating_duration_since(Instant::now()));
    }
    let server_fds = cfg.server_pid.and_then(procfs::open_fds);
    let server_counters = metrics::scrape(cfg.addr, &cfg.host);
    let broadcast = join_part(broadcast)?;
    let echo = join_part(echo)?;
    let (churned, churn_errors, churn_time) = churner
        .join()
        .map_err(|_| "the churn thread panicked".to_string())?;
    let slow = join_part(slow)?;
    thread::sleep(SETTLE);
    done.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        let _ = sampler.join();
    }
    let rss_after = cfg.server_pid.and_then(procfs::rss_kib);
    let rss = rss_before
        .zip(rss_after)
        .map(|(before, after)| (before, rss_peak.load(Ordering::Relaxed), after));
    Ok(SoakReport {
        cfg: cfg.clone(),
        broadcast,
        echo,
        slow,
        churned,
        churn_errors,
        churn_time,
        rss,
        server_fds,
        server_counters,
    })
}

type Part = thread::JoinHandle<Result<Report, String>>;

fn spawn_part(name: &str, cfg: Config) -> Result<Part, String> {
    thread::Builder::new()
        .name(name.into())
        .spawn(move || crate::run(&cfg))
        .map_err(|e| format!("spawn: {e}"))
}

fn join_part(part: Part) -> Result<Report, String> {
    part.join()
        .map_err(|_| "a soak part panicked".to_string())?
}

/// Most churn rounds open at once: a round that takes longer than its second (a
/// loaded machine) overlaps the next; past this many the next round waits, and the
/// rate reported falls below `--churn`.
const CHURN_ROUNDS_IN_FLIGHT: usize = 3;

/// Starts a round every second until `until`: each opens `cfg.connections`
/// connections, holds them a second and closes them, on a thread of its own, so a
/// round's setup and teardown do not delay the next and the rate is `--churn` per
/// second. Returns the connections churned, the rounds with an error, and how long it
/// ran (until the last round ended).
fn churn_until_deadline(cfg: &Config, until: Instant) -> (u64, u64, Duration) {
    let start = Instant::now();
    let (mut churned, mut errors) = (0, 0);
    let mut rounds: Vec<thread::JoinHandle<Result<Report, String>>> = Vec::new();
    let mut tally = |round: thread::Result<Result<Report, String>>| match round {
        Ok(Ok(report)) => {
            churned += report.established as u64;
            if report.tally.errors > 0 || report.established < cfg.connections {
                errors += 1;
            }
        }
        _ => errors += 1,
    };
    let mut next = start;
    while cfg.connections > 0 && next < until {
        thread::sleep(next.saturating_duration_since(Instant::now()));
        while rounds.len() >= CHURN_ROUNDS_IN_FLIGHT {
            tally(rounds.remove(0).join());
        }
        let round = cfg.clone();
        match thread::Builder::new()
            .name("soak-churn-round".into())
            .spawn(move || crate::run(&round))
        {
            Ok(handle) => rounds.push(handle),
            Err(e) => tally(Ok(Err(e.to_string()))),
        }
        next += Duration::from_secs(1);
        while rounds.first().is_some_and(|r| r.is_finished()) {
            tally(rounds.remove(0).join());
        }
    }
    for round in rounds {
        tally(round.join());
    }
    (churned, errors, start.elapsed())
}

impl SoakReport {
    /// Errors that count against the server: anything the healthy parts saw (a lost
    /// or out-of-order delivery, a wrong or missing echo, a refused connection) and
    /// failed churn rounds. What happens to slow consumers is the server's policy.
    pub fn errors(&self) -> u64 {
        self.broadcast.tally.errors + self.echo.tally.errors + self.churn_errors
    }

    /// A human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let held = self.broadcast.established + self.echo.established + self.slow.established;
        let _ = writeln!(
            s,
            "soak {} | {:.0}s | {} connections held at the end ({} subscribers + {} publishers, {} echo, {} slow)",
            self.cfg.host,
            self.broadcast.measured.as_secs_f64(),
            held,
            self.cfg.connections,
            self.cfg.publishers,
            self.cfg.echo,
            self.cfg.slow,
        );
        let b = &self.broadcast;
        let _ = writeln!(
            s,
            "  broadcast: {} deliveries ({:.0}/s), p99 {:.1} us, lost {}, out of order {}, errors {}",
            b.tally.messages,
            b.rate(),
            b.latency_us(0.99),
            b.tally.lost,
            b.tally.out_of_order,
            b.tally.errors
        );
        let e = &self.echo;
        let _ = writeln!(
            s,
            "  echo: {} messages ({:.0}/s), p99 {:.1} us, errors {}",
            e.tally.messages,
            e.rate(),
            e.latency_us(0.99),
            e.tally.errors
        );
        let _ = write!(
            s,
            "  slow consumers: {} opened (never reading, {} B receive buffer), {} found closed by the server at the end",
            self.cfg.slow,
            crate::slots::STALLED_RECV_BUFFER,
            self.slow.tally.server_closed
        );
        if let Some(fds) = self.server_fds {
            let _ = write!(
                s,
                "; a second before the end the server held {fds} descriptors (sockets and a few others), the client {} healthy and {} slow connections, and the churn its share",
                self.broadcast.established + self.echo.established,
                self.slow.established
            );
        }
        s.push('\n');
        if let Some(c) = self.server_counters {
            let _ = writeln!(
                s,
                "  the server's counters a second before the end (/metrics): {} connections closed for backpressure (1008), {} messages dropped, {} connections dropped for no pong (idle timeout)",
                c.backpressure_closes, c.dropped_messages, c.idle_timeouts
            );
        }
        let _ = writeln!(
            s,
            "  churn: {} connections opened and closed ({:.1}/s), {} failed rounds",
            self.churned,
            self.churned as f64 / self.churn_time.as_secs_f64().max(1e-9),
            self.churn_errors
        );
        if self.cfg.shutdown {
            let _ = writeln!(
                s,
                "  shutdown (SIGTERM at the end of the window, load still on): {} subscribers and publishers and {} echo connections closed with 1001 after every message owed; lost deliveries, in the run or short at a 1001: {}",
                b.tally.closed_1001, e.tally.closed_1001, b.tally.lost
            );
        }
        if let Some((before, peak, after)) = self.rss {
            let _ = writeln!(
                s,
                "  server RSS: {before} KiB before, {peak} KiB at most, {after} KiB after the clients left ({:+.1} % of before)",
                (after as f64 - before as f64) * 100.0 / before.max(1) as f64
            );
        }
        for (part, report) in [("broadcast", b), ("echo", e)] {
            if let Some(first) = &report.tally.first_error {
                let _ = writeln!(s, "  first {part} error: {first}");
            }
        }
        s
    }
}
