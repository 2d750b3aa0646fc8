//! A whole run: spread connections over threads, wait for them, open the window,
//! measure the server, collect the tallies.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::{Config, Mode};
use crate::procfs;
use crate::report::Report;
use crate::role::Role;
use crate::shared::{Shared, Window};
use crate::tally::Tally;
use crate::worker::{self, Spec};

/// Runs the workload `cfg` describes and reports on it.
pub fn run(cfg: &Config) -> Result<Report, String> {
    cfg.validate()?;
    let cfg = Arc::new(cfg.clone());
    let publishers = if cfg.mode == Mode::Broadcast {
        cfg.publishers
    } else {
        0
    };
    let shared = Arc::new(Shared::new(publishers));
    let progress = cfg.progress || std::io::stderr().is_terminal();
    let rss_before = cfg.server_pid.and_then(procfs::rss_kib);

    let mut per_thread: Vec<Vec<Spec>> = (0..cfg.threads).map(|_| Vec::new()).collect();
    for index in 0..cfg.connections {
        let role = match cfg.mode {
            Mode::Echo => Role::Echo {
                id: index as u32,
                next_send: 0,
                next_recv: 0,
                sent_at: Default::default(),
            },
            Mode::Broadcast => Role::Subscriber {
                next: vec![0; publishers],
            },
            Mode::Connect => Role::Idle,
        };
        per_thread[index % cfg.threads].push(Spec { index, role });
    }
    for p in 0..publishers {
        let role = Role::Publisher {
            index: p as u32,
            seq: 0,
            due: None,
        };
        let index = cfg.connections + p;
        per_thread[p % cfg.threads].push(Spec { index, role });
    }
    let threads: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(i, specs)| {
            let (cfg, shared) = (cfg.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || worker::run(&cfg, &shared, specs))
                .map_err(|e| format!("spawn: {e}"))
        })
        .collect::<Result<_, _>>()?;

    // Wait for every connection to open (or fail).
    let setup_start = Instant::now();
    let setup_limit = Duration::from_secs(30 + (cfg.connections / 1000) as u64);
    while shared.ready.load(Ordering::SeqCst) < cfg.threads {
        if setup_start.elapsed() > setup_limit {
            shared.abort.store(true, Ordering::SeqCst);
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let setup = setup_start.elapsed();
    let go = Instant::now();
    let window = Window {
        go,
        from: go + cfg.warmup,
        to: go + cfg.warmup + cfg.duration,
    };
    let _ = shared.window.set(window);

    sleep_until(window.from);
    let cpu_start = cfg.server_pid.and_then(procfs::cpu_seconds);
    let received_start = shared.received.load(Ordering::Relaxed);
    let mut last = (Instant::now(), received_start);
    while Instant::now() < window.to && !shared.abort.load(Ordering::Relaxed) {
        sleep_until((last.0 + Duration::from_secs(1)).min(window.to));
        let now = Instant::now();
        let received = shared.received.load(Ordering::Relaxed);
        if progress {
            let rate = (received - last.1) as f64 / (now - last.0).as_secs_f64();
            eprint!(
                "\r{:>5.1}s  {:>10.0} msg/s  conns {:>6}  errors {:<6}",
                (now - window.from).as_secs_f64(),
                rate,
                shared.established.load(Ordering::Relaxed),
                shared.errors.load(Ordering::Relaxed),
            );
            let _ = std::io::stderr().flush();
        }
        // Always move on, or the loop would spin on the clock for the whole window,
        // stealing the CPU the load threads share with this one.
        last = (now, received);
    }
    let measured = Instant::now().min(window.to) - window.from.min(Instant::now());
    let cpu_end = cfg.server_pid.and_then(procfs::cpu_seconds);
    let rss_after = cfg.server_pid.and_then(procfs::rss_kib);
    let established = shared.established.load(Ordering::Relaxed);
    if progress {
        eprintln!();
    }
    let mut tally = Tally::default();
    for thread in threads {
        match thread.join() {
            Ok(t) => tally.merge(t),
            Err(_) => tally.error(|| "a load thread panicked".into()),
        }
    }
    Ok(Report {
        cfg: (*cfg).clone(),
        setup,
        measured: if cfg.mode == Mode::Connect {
            cfg.duration
        } else {
            measured
        },
        established,
        tally,
        server_cpu: cpu_start.zip(cpu_end).map(|(a, b)| b - a),
        rss_before,
        rss_after,
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
