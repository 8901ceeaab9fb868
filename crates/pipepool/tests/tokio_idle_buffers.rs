// A binary of its own: its counting global allocator counts every heap
// byte of the process, which any test running alongside would disturb.
// (Other tests: tests/it/.)
//! An idle connection holds no buffer either: 1,000 open, idle connections
//! relayed through `copy_bidirectional_with` in userspace mode
//! (`zero_copy(false)`, 64 KiB buffers), after a byte went each way on each,
//! hold a few KiB of heap apiece (the tasks and sockets), not their two
//! buffers (128 KiB apiece). The heap is counted by a counting global
//! allocator in this test binary. Both runtimes.

#![cfg(feature = "tokio")]

#[path = "it/util/mod.rs"]
mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;

use pipepool::tokio::CopyOptions;

use util::net::{hang_up, one_byte_each_way, spawn_relays};

/// Bytes allocated and not yet freed, by anyone in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting [`LIVE`].
struct Counting;

// SAFETY: every call is forwarded to `System` with the caller's own
// arguments, so `System`'s guarantees are this allocator's; the counter
// has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s
        // contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: `ptr` came from this allocator (so from `System`) with
        // this `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 1000;

/// Heap per idle connection the test allows: the relay task, the two
/// sockets' registrations, the test's own handles; not a 64 KiB buffer.
const MAX_HEAP_PER_CONNECTION: isize = 16 << 10;

async fn idle_userspace_connections() {
    let before = LIVE.load(Relaxed);
    let opts = CopyOptions::new().zero_copy(false);
    let (mut peers, relays) = spawn_relays(CONNECTIONS, &opts).await;
    // One byte each way on every connection: each direction fills its
    // buffer once, writes it out, then finds nothing more to read.
    one_byte_each_way(&mut peers).await;
    // Let every relay run until it waits for its sockets again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_connection = (LIVE.load(Relaxed) - before) / CONNECTIONS as isize;
    assert!(
        per_connection <= MAX_HEAP_PER_CONNECTION,
        "{CONNECTIONS} idle userspace connections hold {per_connection} bytes of heap each"
    );

    hang_up(peers, relays).await;
}

#[test]
fn idle_userspace_connections_hold_no_buffer_multi_thread() {
    let _serial = util::fd_lock();
    util::raise_nofile(4 * CONNECTIONS as u64 + 1024);
    util::net::runtime(true).block_on(idle_userspace_connections());
}

#[test]
fn idle_userspace_connections_hold_no_buffer_current_thread() {
    let _serial = util::fd_lock();
    util::raise_nofile(4 * CONNECTIONS as u64 + 1024);
    util::net::runtime(false).block_on(idle_userspace_connections());
}
