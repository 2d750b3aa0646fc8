//! A whole run: spread connections over threads, wait for them, open the window,
//! measure the server, collect the tallies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, Mode};
use crate::interrupt;
use crate::plan;
use crate::procfs;
use crate::progress::{Progress, Sample};
use crate::report::Report;
use crate::shared::{Shared, Window};
use crate::slots::Spec;
use crate::tally::Tally;
use crate::worker;

/// Cross-node broadcast: the pause between the last connection opening and the first
/// publish.
const BRIDGE_SETTLE: Duration = Duration::from_millis(250);

/// How long the run waits for its first connection to open before it gives up (a
/// server that accepts but never answers the handshake: a TLS port addressed with
/// ws://, say).
const FIRST_OPEN_LIMIT: Duration = Duration::from_secs(10);

/// Runs the workload `cfg` describes and reports on it.
///
/// # Errors
///
/// The settings do not fit together, a thread could not start, or none of the
/// connections opened (refused, or no handshake answer within 10 s): then the message
/// says what the first connection ran into and what to check.
pub fn run(cfg: &Config) -> Result<Report, String> {
    cfg.validate()?;
    let cfg = Arc::new(cfg.clone());
    let shared = Arc::new(Shared::new(cfg.publishing()));
    let progress = Progress::new(cfg.progress, cfg.connections + cfg.publishing());
    let rss_before = cfg.server_pid.and_then(procfs::rss_kib);
    let threads = spawn(&cfg, &shared, plan::per_thread(&cfg))?;
    let (first_half, halfway) = if cfg.staged() {
        wait_halfway(&cfg, &shared, &progress)
    } else {
        (Duration::ZERO, None)
    };
    let setup = first_half + wait_ready(&cfg, &shared, &progress);
    // (A soak's part may have no connection at all: nothing to fail.)
    if shared.established.load(Ordering::SeqCst) == 0 && cfg.connections + cfg.publishing() > 0 {
        shared.abort.store(true, Ordering::SeqCst);
        progress.finish();
        let tally = collect(threads);
        return Err(nothing_opened(&cfg, &tally, setup));
    }
    if cfg.publish_to.is_some() {
        // Cross-node: the subscribers' server subscribes on the broker when its first
        // subscriber arrives; give it that long before anything is published.
        std::thread::sleep(BRIDGE_SETTLE);
    }
    let window = open_window(&cfg, &shared);
    progress.started(cfg.warmup, cfg.duration);
    let end = measure(&cfg, &shared, window, &progress);
    if let Some(pid) = cfg.signal_pid {
        let floor = shared
            .max_seen
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect();
        if let Err(e) = crate::shutdown::begin(floor, pid) {
            shared.abort.store(true, Ordering::SeqCst);
            let _ = collect(threads);
            return Err(e);
        }
    }
    let tally = collect(threads);
    let interrupted = interrupt::requested();
    Ok(Report {
        cfg: (*cfg).clone(),
        setup,
        measured: if cfg.mode == Mode::Connect && !interrupted {
            cfg.duration
        } else {
            end.measured
        },
        interrupted,
        established: end.established,
        tally,
        server_cpu: end.server_cpu,
        rss_before,
        halfway,
        rss_after: end.rss_after,
    })
}

/// Starts one load thread per list of connections.
fn spawn(
    cfg: &Arc<Config>,
    shared: &Arc<Shared>,
    per_thread: Vec<Vec<Spec>>,
) -> Result<Vec<JoinHandle<Tally>>, String> {
    per_thread
        .into_iter()
        .enumerate()
        .map(|(i, specs)| {
            let (cfg, shared) = (cfg.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || worker::run(&cfg, &shared, specs))
                .map_err(|e| format!("spawn: {e}"))
        })
        .collect()
}

/// Waits for every connection to open (or fail), or aborts the run when that takes
/// too long (or none opened within [`FIRST_OPEN_LIMIT`], or Ctrl-C); returns how
/// long it took.
fn wait_ready(cfg: &Config, shared: &Shared, progress: &Progress) -> Duration {
    let setup_start = Instant::now();
    let setup_limit = Duration::from_secs(30 + (cfg.connections / 1000) as u64);
    while shared.ready.load(Ordering::SeqCst) < cfg.threads {
        let open = shared.established.load(Ordering::Relaxed);
        progress.connecting(open);
        let elapsed = setup_start.elapsed();
        if elapsed > setup_limit
            || (open == 0 && elapsed > FIRST_OPEN_LIMIT)
            || interrupt::requested()
        {
            shared.abort.store(true, Ordering::SeqCst);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    setup_start.elapsed()
}

/// The error of a run in which no connection opened: where to, what the first one
/// ran into, and what to check.
fn nothing_opened(cfg: &Config, tally: &Tally, waited: Duration) -> String {
    let tried = cfg.connections + cfg.publishing();
    let mut message = format!("no connection opened to {} ({tried} tried", cfg.url());
    if interrupt::requested() {
        message.push_str(", interrupted)");
        return message;
    }
    let first = tally.first_error.as_deref().unwrap_or("");
    message.push_str(&format!(
        ", {:.1} s): {}",
        waited.as_secs_f64(),
        if first.is_empty() { "no answer" } else { first }
    ));
    let hint = if first.contains("refused") {
        "is a server listening there?"
    } else if first.contains("no handshake answer") || first.is_empty() {
        if cfg.tls.is_some() {
            "is it a TLS server?"
        } else {
            "is it a TLS server? then give a wss:// URL"
        }
    } else if cfg.tls.is_none() && first.contains("closed") {
        "a TLS server closes a plain connection so: is it one? then give a wss:// URL"
    } else {
        "is it a WebSocket server, and is the path right?"
    };
    message.push_str("\n  ");
    message.push_str(hint);
    message
}

/// A staged run: waits for the first half of the connections to open (or fail),
/// then as long as the server will be idle before its memory is measured at the end
/// (the warm-up and the window), measures it, and lets the second half open. Returns
/// how long the first half took to open, and the connections open with the server's
/// RSS in KiB at that point (`None` if the run was aborted or the server could not
/// be read).
fn wait_halfway(
    cfg: &Config,
    shared: &Shared,
    progress: &Progress,
) -> (Duration, Option<(usize, u64)>) {
    let start = Instant::now();
    let limit = Duration::from_secs(30 + (cfg.connections / 2000) as u64);
    while shared.halfway.load(Ordering::SeqCst) < cfg.threads {
        progress.connecting(shared.established.load(Ordering::Relaxed));
        if start.elapsed() > limit || shared.abort.load(Ordering::Relaxed) {
            shared.abort.store(true, Ordering::SeqCst);
            return (start.elapsed(), None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let opened = start.elapsed();
    sleep_until(Instant::now() + cfg.warmup + cfg.duration);
    let halfway = cfg.server_pid.and_then(procfs::rss_kib).map(|rss| {
        let established = shared.established.load(Ordering::Relaxed);
        (established, rss)
    });
    shared.second_half.store(true, Ordering::SeqCst);
    (opened, halfway)
}

/// Starts the workload now: the window opens after the warm-up.
fn open_window(cfg: &Config, shared: &Shared) -> Window {
    let go = Instant::now();
    let window = Window {
        go,
        from: go + cfg.warmup,
        to: go + cfg.warmup + cfg.duration,
    };
    let _ = shared.window.set(window);
    window
}

/// What the main thread measured over the window.
struct End {
    /// How long the window lasted (shorter when aborted).
    measured: Duration,
    /// Server CPU seconds spent in the window.
    server_cpu: Option<f64>,
    /// Server RSS in KiB when the window closed.
    rss_after: Option<u64>,
    /// Connections open when the window closed.
    established: usize,
}

/// Sleeps through the warm-up, then watches the window, sampling the server's CPU
/// time at both ends.
fn measure(cfg: &Config, shared: &Shared, window: Window, progress: &Progress) -> End {
    sleep_until(window.from);
    let cpu_start = cfg.server_pid.and_then(procfs::cpu_seconds);
    watch(shared, window, progress);
    let measured = Instant::now().min(window.to) - window.from.min(Instant::now());
    let cpu_end = cfg.server_pid.and_then(procfs::cpu_seconds);
    let end = End {
        measured,
        server_cpu: cpu_start.zip(cpu_end).map(|(a, b)| b - a),
        rss_after: cfg.server_pid.and_then(procfs::rss_kib),
        established: shared.established.load(Ordering::Relaxed),
    };
    progress.finish();
    end
}

/// Wakes once a second (more often for a progress bar) until the window closes or
/// the run is aborted, showing progress when asked to.
fn watch(shared: &Shared, window: Window, progress: &Progress) {
    let duration = window.to - window.from;
    // The rate shown is the window's so far, the figure the summary gives at the end
    // (a rate over the last second swings with the server's and this machine's
    // hiccups, and did not match the final number).
    let (opened, at_open) = (Instant::now(), shared.received.load(Ordering::Relaxed));
    let mut woke = opened;
    while Instant::now() < window.to && !shared.abort.load(Ordering::Relaxed) {
        sleep_until((woke + progress.interval()).min(window.to));
        if interrupt::requested() {
            shared.abort.store(true, Ordering::SeqCst);
            break;
        }
        let now = Instant::now();
        // Always move on, or the loop would spin on the clock for the whole window,
        // stealing the CPU the load threads share with this one.
        woke = now;
        let received = shared.received.load(Ordering::Relaxed);
        let sample = Sample {
            elapsed: now - window.from,
            rate: (received - at_open) as f64 / (now - opened).as_secs_f64().max(1e-9),
            open: shared.established.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
        };
        progress.measuring(&sample, duration);
    }
}

/// Joins the load threads and adds up their tallies.
fn collect(threads: Vec<JoinHandle<Tally>>) -> Tally {
    let mut tally = Tally::default();
    for thread in threads {
        match thread.join() {
            Ok(t) => tally.merge(t),
            Err(_) => tally.error(|| "a load thread panicked".into()),
        }
    }
    tally
}

/// Sleeps until `t`, or until Ctrl-C (checked every 50 ms).
fn sleep_until(t: Instant) {
    loop {
        let now = Instant::now();
        if t <= now || interrupt::requested() {
            return;
        }
        std::thread::sleep((t - now).min(Duration::from_millis(50)));
    }
}
