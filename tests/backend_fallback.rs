//! `Backend::Auto` where io_uring is forbidden: the start falls back to epoll and
//! says so, and an explicit `Backend::IoUring` fails the start with the kernel's
//! error. io_uring is forbidden the way container runtimes do it (Docker's default
//! profile): a seccomp filter that answers `io_uring_setup` with `EPERM`.
//!
//! A test binary of its own: the filter stays on the thread that installed it and
//! on every thread that thread starts (the server's probe and reactors).
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

mod common;

use std::io;

use common::{OP_TEXT, TestServer, read_frame, write_frame};
use wavecore::Backend;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Installs, on this thread, a seccomp filter that fails `io_uring_setup` with
/// `EPERM` and allows every other system call.
fn forbid_io_uring() {
    // Offsets into `struct seccomp_data`: nr at 0, arch at 4.
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let ld_w_abs = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let jeq_k = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut filter = [
        stmt(ld_w_abs, 4),
        // Another architecture's calling convention: allow (not what is tested).
        jump(jeq_k, AUDIT_ARCH, 0, 3),
        stmt(ld_w_abs, 0),
        jump(jeq_k, libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(ret_k, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(ret_k, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `program` points at `filter`, both alive for the
    // call (the kernel copies the filter).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let set = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const libc::sock_fprog,
        );
        assert_eq!(set, 0, "seccomp: {}", io::Error::last_os_error());
    }
}

#[test]
fn auto_falls_back_to_epoll_where_io_uring_is_forbidden() {
    forbid_io_uring();
    let closes = common::Closes::default();

    // Explicitly asked for, io_uring fails the start with the kernel's answer.
    let refused = common::builder()
        .backend(Backend::IoUring)
        .start(common::echo_service(&closes));
    let Err(error) = refused else {
        panic!("io_uring is forbidden: the start must fail");
    };
    assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");

    // Auto runs on epoll, and the server works.
    let server = TestServer::start(
        common::builder().backend(Backend::Auto),
        common::echo_service(&closes),
    );
    assert_eq!(server.handle.backend(), Backend::Epoll);
    let mut client = common::raw_upgrade(server.addr);
    write_frame(&mut client, true, OP_TEXT, b"on epoll");
    assert_eq!(read_frame(&mut client).unwrap().payload, b"on epoll");
}
