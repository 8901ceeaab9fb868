//! A pool with custom limits, and what its statistics say as it is used:
//! pipes created and reused, a get refused at the bound, idle pipes closed
//! by the pool's reaper.
//!
//! ```sh
//! cargo run -p pipepool --example pool_stats
//! ```

use std::thread;
use std::time::Duration;

use pipepool::{GetError, PipePool, PoolConfig, PoolStats};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = PoolConfig::builder()
        .max_pipes(4) // at most 4 pipes (8 fds) alive at once
        .pipe_size(64 * 1024) // 64 KiB each
        .local_cap(0) // no per-thread cache: every idle pipe is in the shared pool
        .idle_timeout(Duration::from_millis(200))
        .build()?;
    print(&pool, "new pool");

    {
        let pipes = (0..4).map(|_| pool.get()).collect::<Result<Vec<_>, _>>()?;
        print(&pool, "4 pipes taken");
        match pool.get() {
            Err(GetError::Exhausted { max_pipes }) => {
                println!(
                    "a 5th get is refused at the bound of {max_pipes}: copy through memory instead"
                )
            }
            other => panic!("a 5th pipe past max_pipes: {other:?}"),
        }
        drop(pipes); // empty: back to the pool
    }
    print(&pool, "4 pipes given back");

    drop(pool.get()?); // reused, not created
    print(&pool, "1 taken and given back");

    thread::sleep(Duration::from_millis(1000)); // idle for more than idle_timeout
    print(&pool, "idle for 1 s");
    Ok(())
}

fn print(pool: &PipePool, when: &str) {
    let PoolStats {
        live,
        idle,
        in_use,
        created,
        closed_idle,
        gets_refused,
        capacity_bytes,
        ..
    } = pool.stats();
    println!(
        "{when:>24}: live {live}, idle {idle}, in use {in_use}, created {created}, \
         closed idle {closed_idle}, refused {gets_refused}, {} KiB of pipe buffers",
        capacity_bytes / 1024
    );
}
