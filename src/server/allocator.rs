//! Handing freed memory back to the operating system.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena and returns
//! pages to the system only from the top of a heap, so after a crowd of connections
//! leaves, most of the memory their buffers used stays resident although nothing
//! uses it (measured: 19,000 connections with traffic left a server at 5.9 MiB from
//! a 3.4 MiB start, while its live heap was back at its start). `malloc_trim(0)`
//! gives back the free pages of every arena. Other allocators (musl's, jemalloc,
//! mimalloc) return memory by themselves or have no such call: there this does
//! nothing.
//!
//! What `malloc_trim` cannot give back (measured with a walk of the reactor arenas
//! after a 19,000-connection soak; docs/reliability.md): chunks parked in a thread's
//! tcache, which glibc counts as in use (~100 small chunks per reactor, one to a page:
//! 150–190 KiB each), and the top chunk of a thread's arena, which only a large `free`
//! in that arena shrinks, and only above glibc's trim threshold (raised, process-wide,
//! by every large buffer freed). The reactor frees its cork after the trim for that
//! reason. Only process-wide settings reach the rest (`GLIBC_TUNABLES`, `mallopt`, or
//! another global allocator): an application's choice, not a library's.

/// Asks the C allocator to return the memory it holds free to the system; returns
/// whether it gave anything back (always `false` off glibc).
///
/// Costs a walk over every arena, each locked in turn (other threads allocating
/// meanwhile wait): call it rarely, when a reactor has just gone idle after a crowd
/// (`Core::release_idle_memory`), never per connection or per message.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only the allocator's own
    // free lists, under the allocator's own locks; any thread may call it at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Off glibc: nothing to do (see the module docs).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() -> bool {
    false
}
