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

/// Blocks of this many bytes or more are mapped on their own by glibc's allocator (its
/// default mmap threshold, 128 KiB, before anything raised it).
const MAPPED_BLOCK: usize = 128 << 10;

/// Empties `v` and gives its memory back: a vector of [`MAPPED_BLOCK`] bytes or more is
/// shrunk to room for one element with `realloc`, any other is freed.
///
/// Why not free the large one too: glibc maps such a block on its own, and freeing a
/// mapped block raises its mmap threshold to the block's size and its trim threshold
/// to twice that, for good; from then on every thread arena keeps that much freed
/// memory resident, which `malloc_trim` does not give back (measured: a reactor's
/// 1.8 MB connection table, freed after a crowd of 19,000 connections, left the server
/// 3.6 MiB larger after each later crowd; docs/reliability.md). `realloc` shrinks a
/// mapped block with `mremap`, which unmaps the pages and changes no threshold. Off
/// glibc this is an ordinary shrink.
pub(crate) fn release_vec<T>(v: &mut Vec<T>) {
    v.clear();
    if v.capacity().saturating_mul(size_of::<T>()) >= MAPPED_BLOCK {
        v.shrink_to(1);
    } else {
        *v = Vec::new();
    }
}
