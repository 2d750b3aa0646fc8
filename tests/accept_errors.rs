//! Running out of file descriptors (`EMFILE`) while connections wait to be accepted:
//! the reactor pauses accepting for a tick after each failure instead of spinning on a
//! listener that stays ready, keeps serving the connections it has, and accepts the
//! waiting ones once descriptors are free again. On whichever backend
//! `WAVECORE_BACKEND` names (the suite runs on both).
//!
//! A test binary of its own: it lowers this process's open-files limit.

mod common;

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{OP_TEXT, TestServer, read_frame, write_frame};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors open in this process now.
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

#[test]
fn emfile_pauses_accepting_and_recovers() {
    // One test, not two: both change the process's limit, so they must not overlap.
    // The listening socket shared by the reactors, then one per reactor (on io_uring
    // that is a multishot accept rather than a poll and plain accepts).
    for reuse_port in [false, true] {
        emfile_on(reuse_port);
    }
}

fn emfile_on(reuse_port: bool) {
    // The limit is lowered before the server starts: a multishot accept of io_uring
    // did not heed a limit lowered after its ring was made (Linux 6.18), and kept
    // accepting past it.
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open_descriptors() + 32),
            maximum: limit.maximum,
        },
    )
    .expect("lowering the open-files limit");
    let closes = common::Closes::default();
    let builder = common::builder().reuse_port(reuse_port);
    let server = TestServer::start(builder, common::echo_service(&closes));
    let mut served = common::raw_upgrade(server.addr);
    // Every descriptor left taken by placeholders, then one freed for a client: its
    // connection waits in the listen queue and the server's accept has none to take.
    // (A descriptor the server frees meanwhile lets that accept through: then the
    // placeholders take the rest again and another client waits.)
    let mut placeholders = Vec::new();
    let mut accepted_meanwhile = Vec::new();
    let mut waiting = None;
    for _ in 0..10 {
        while let Ok(file) = std::fs::File::open("/dev/null") {
            placeholders.push(file);
        }
        placeholders.pop();
        accepted_meanwhile.extend(waiting.take());
        waiting = Some(TcpStream::connect(server.addr).expect("connect (queued)"));
        if common::wait_until_within(Duration::from_secs(1), || {
            server.handle.stats().accept_errors > 0
        }) {
            break;
        }
    }
    let mut waiting = waiting.unwrap();
    assert!(
        server.handle.stats().accept_errors > 0,
        "no accept failed with the descriptors used up"
    );
    // The connection it holds is served meanwhile.
    write_frame(&mut served, true, OP_TEXT, b"still served");
    assert_eq!(read_frame(&mut served).unwrap().payload, b"still served");
    // About one failed accept per 100 ms tick while the descriptors stay used up
    // (a spinning reactor makes one per loop turn: hundreds of thousands a second).
    let (before, started) = (server.handle.stats().accept_errors, Instant::now());
    thread::sleep(Duration::from_millis(500));
    let failed = server.handle.stats().accept_errors - before;
    let ticks = started.elapsed().as_millis() as u64 / 100 + 2;
    assert!(
        failed <= 4 * ticks,
        "{failed} failed accepts in {ticks} ticks: the reactor spins on the listener"
    );
    // Descriptors free again: the waiting connection is accepted and served.
    drop(placeholders);
    drop(accepted_meanwhile);
    setrlimit(Resource::Nofile, limit).expect("restoring the open-files limit");
    waiting
        .set_read_timeout(Some(common::IO_TIMEOUT))
        .expect("timeout");
    common::upgrade_on(&mut waiting);
    write_frame(&mut waiting, true, OP_TEXT, b"accepted after the pause");
    assert_eq!(
        read_frame(&mut waiting).unwrap().payload,
        b"accepted after the pause"
    );
    server.check_health();
}
