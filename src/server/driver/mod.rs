//! Drivers: the event sources that feed a reactor core (`core/`) and carry out its
//! decisions with system calls. Each owns its sockets and its event loop; everything
//! above the system call is the core's, shared by every driver.
//!
//! * [`epoll`]: readiness through mio (epoll on Linux, kqueue elsewhere).

pub(crate) mod epoll;
