//! A whole run: spread connections over threads, wait for them, open the window,
//! measure the server, collect the tallies.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, Mode};
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

/// Runs the workload `cfg` describes and reports on it.
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
    Ok(Report {
        cfg: (*cfg).clone(),
        setup,
        measured: if cfg.mode == Mode::Connect {
            cfg.duration
        } else {
            end.measured
        },
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
/// too long; returns how long it took.
fn wait_ready(cfg: &Config, shared: &Shared, progress: &Progress) -> Duration {
    let setup_start = Instant::now();
    let setup_limit = Duration::from_secs(30 + (cfg.connections / 1000) as u64);
    while shared.ready.load(Ordering::SeqCst) < cfg.threads {
        progress.connecting(shared.established.load(Ordering::Relaxed));
        if setup_start.elapsed() > setup_limit {
            shared.abort.store(true, Ordering::SeqCst);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    setup_start.elapsed()
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
    std::thread::sleep(cfg.warmup + cfg.duration);
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
    // Readings from the newest one at least a second old onwards: the rate is taken
    // over that second (or since the window opened).
    let mut readings = VecDeque::from([(Instant::now(), shared.received.load(Ordering::Relaxed))]);
    let mut woke = readings[0].0;
    while Instant::now() < window.to && !shared.abort.load(Ordering::Relaxed) {
        sleep_until((woke + progress.interval()).min(window.to));
        let now = Instant::now();
        // Always move on, or the loop would spin on the clock for the whole window,
        // stealing the CPU the load threads share with this one.
        woke = now;
        let received = shared.received.load(Ordering::Relaxed);
        readings.push_back((now, received));
        while now - readings[1].0 >= Duration::from_secs(1) {
            readings.pop_front();
        }
        let (since, before) = readings[0];
        let sample = Sample {
            elapsed: now - window.from,
            rate: (received - before) as f64 / (now - since).as_secs_f64(),
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

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
