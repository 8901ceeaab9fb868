//! `pool-floor`: what a pipepool get + put costs when called from another
//! crate, the way every user builds it (no LTO; cross-crate inlining only
//! where `#[inline]` allows), beside the floor any pool has to beat: a
//! bare thread-local `Vec` of boxed pipes, pop + push, nothing else.
//!
//! Cases (one line each, `name ns_per_op`):
//! - `pipepool_get_put`: `PipePool::get` + drop of the guard, one thread
//!   (the thread-cache hit path).
//! - `bare_vec_pop_push`: the same on a `thread_local! RefCell<Vec<Box<Pipe>>>`.
//! - `pipepool_get_put_parallel2` / `bare_vec_pop_push_parallel2`: two
//!   threads at once, started by a `Barrier`; wall time divided by the
//!   operations of both threads (what Go's `RunParallel` benchmarks report
//!   as ns/op).
//!
//! Each case runs `BATCHES` batches of `ITERS` get + put pairs, alternated
//! with the bare baseline's batches, and reports the median batch; the
//! `ratio_` lines are the median of the per-pair ratios pool / bare, which
//! a slow spell of the shared machine does not skew. `bench/pool_floor.sh`
//! runs this binary pinned and interleaved with Go's `BenchmarkSplicePipe`,
//! several times, and prints min / median / max and the ratios.
//!
//! Usage: `pool-floor [ITERS]` (default 2,000,000 per batch).

// The bare pool holds boxed pipes, as the real pool does (it moves a
// pointer, not the pipe, on every get and put): the same work, minus the
// pool.
#![allow(clippy::vec_box)]

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use pipepool::{Pipe, PipePool, PoolConfig};

const BATCHES: usize = 9;

thread_local! {
    static BARE: RefCell<Vec<Box<Pipe>>> = const { RefCell::new(Vec::new()) };
}

/// One get + put on the bare baseline.
#[inline(never)]
fn bare_get_put() {
    let pipe = BARE
        .with(|v| v.borrow_mut().pop())
        .expect("a pipe in the bare pool");
    black_box(&pipe);
    BARE.with(|v| v.borrow_mut().push(pipe));
}

/// One get + put on the pool.
#[inline(never)]
fn pool_get_put(pool: &PipePool) {
    let pipe = pool.get().expect("a pipe from the pool");
    black_box(&pipe);
    drop(pipe);
}

/// Fills this thread's bare pool with one pipe.
fn bare_warm() {
    let pipe = Box::new(Pipe::with_size(64 * 1024).expect("pipe2"));
    BARE.with(|v| v.borrow_mut().push(pipe));
}

/// ns per call of `f` over one batch of `iters` calls.
fn batch_ns(iters: u64, f: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// ns per call (wall time / calls of both threads) of one batch of
/// `iters` calls of `f` on each of two threads started together.
fn parallel_batch_ns(iters: u64, warm: &(impl Fn() + Sync), f: &(impl Fn() + Sync)) -> f64 {
    let barrier = Barrier::new(3);
    let elapsed = thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                warm();
                barrier.wait();
                for _ in 0..iters {
                    f();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    elapsed.as_nanos() as f64 / (2 * iters) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `BATCHES` batches of the baseline and of the pool, alternated (baseline,
/// pool, baseline, pool, ...) so that a slow spell of the shared machine
/// falls on both alike. Returns the median batch of each and the median of
/// the per-pair ratios pool / baseline.
fn paired(mut base: impl FnMut() -> f64, mut ours: impl FnMut() -> f64) -> (f64, f64, f64) {
    let (mut b, mut o) = (Vec::new(), Vec::new());
    for _ in 0..BATCHES {
        b.push(base());
        o.push(ours());
    }
    let ratios = b.iter().zip(&o).map(|(b, o)| o / b).collect();
    (median(b), median(o), median(ratios))
}

fn main() {
    let iters: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ITERS must be a number"))
        .unwrap_or(2_000_000);
    let pool = PoolConfig::builder()
        .max_pipes(64)
        .pipe_size(64 * 1024)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .expect("pool config");

    bare_warm();
    drop(pool.get().expect("a first pipe"));
    let warm_pool = || drop(pool.get().expect("a first pipe"));

    let (bare, ours, ratio) = paired(
        || batch_ns(iters, &mut bare_get_put),
        || batch_ns(iters, &mut || pool_get_put(&pool)),
    );
    let pool_op = || pool_get_put(&pool);
    let (bare2, ours2, ratio2) = paired(
        || parallel_batch_ns(iters, &bare_warm, &bare_get_put),
        || parallel_batch_ns(iters, &warm_pool, &pool_op),
    );
    println!("bare_vec_pop_push {bare:.3}");
    println!("pipepool_get_put {ours:.3}");
    println!("ratio_pipepool_over_bare {ratio:.3}");
    println!("bare_vec_pop_push_parallel2 {bare2:.3}");
    println!("pipepool_get_put_parallel2 {ours2:.3}");
    println!("ratio_pipepool_over_bare_parallel2 {ratio2:.3}");
    let s = pool.stats();
    assert!(
        s.gets_local > s.created,
        "the pool bench did not run on the thread-cache hit path: {s:?}"
    );
}
