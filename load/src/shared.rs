//! State the event-loop threads and the main thread share.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// When the workload starts and when its measured window opens and closes.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Workloads start sending.
    pub go: Instant,
    /// Measuring starts (after the warm-up).
    pub from: Instant,
    /// Measuring ends; threads stop.
    pub to: Instant,
}

/// Counters and signals shared by all threads.
#[derive(Debug)]
pub struct Shared {
    /// The run's time origin; broadcast timestamps count nanoseconds from it.
    pub epoch: Instant,
    /// Threads whose connections are all open (or failed).
    pub ready: AtomicUsize,
    /// A staged run ([`crate::config::Config::staged`]): threads whose connections of
    /// the first half are all open (or failed).
    pub halfway: AtomicUsize,
    /// A staged run: set by the main thread when the second half may open.
    pub second_half: AtomicBool,
    /// Connections past their handshake.
    pub established: AtomicUsize,
    /// Set by the main thread once every thread is ready.
    pub window: OnceLock<Window>,
    /// Set to end the run early (every connection failed, or the caller gave up).
    pub abort: AtomicBool,
    /// Messages (echo) or deliveries (broadcast) received so far, for progress.
    pub received: AtomicU64,
    /// Errors so far, for progress.
    pub errors: AtomicU64,
    /// Per publisher: deliveries seen (or known lost) by all subscribers together,
    /// which paces publishers that run without a fixed rate.
    pub delivered: Vec<AtomicU64>,
    /// Per publisher: the highest sequence number any subscriber has received, plus
    /// one (the soak's shutdown floor, [`crate::shutdown`]).
    pub max_seen: Vec<AtomicU64>,
}

impl Shared {
    /// Fresh state for `publishers` publishers.
    pub fn new(publishers: usize) -> Self {
        Self {
            epoch: Instant::now(),
            ready: AtomicUsize::new(0),
            halfway: AtomicUsize::new(0),
            second_half: AtomicBool::new(false),
            established: AtomicUsize::new(0),
            window: OnceLock::new(),
            abort: AtomicBool::new(false),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            delivered: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            max_seen: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Nanoseconds since [`epoch`](Self::epoch).
    pub fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Counts an error.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}
