//! `pool/*`: the cost of taking a pipe and giving it back.
//!
//! - `pool/get_put` (one thread): a `PipePool` get + put, against a fresh
//!   pipe per use (`Pipe::with_size(1 MiB)` + drop = `pipe2` +
//!   `F_SETPIPE_SZ` + 2 x `close`) and against a `Mutex<Vec<Pipe>>` pool.
//! - `pool/get_put_parallel` (2 threads, started together by a `Barrier`,
//!   `iter_custom`): the time reported per iteration is the wall time of
//!   the slowest thread divided by the gets + puts of all threads, i.e. the
//!   aggregate cost per operation.
//!
//! Run: `cargo bench -p pipepool --bench pool` (`-- --quick` for a smoke
//! run). Targets (issue 2): <= 5 ns per get+put on both; >= 1,000x faster
//! than a fresh pipe; >= 3x faster than the mutex pool.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pipepool::{Pipe, PipePool, PoolConfig, DEFAULT_PIPE_SIZE};

const THREADS: usize = 2;

fn pool() -> PipePool {
    PoolConfig::builder()
        .max_pipes(64)
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// The baseline pool: one mutex around a free list, the same put rule.
struct MutexPool {
    free: Mutex<Vec<Pipe>>,
}

impl MutexPool {
    fn new() -> MutexPool {
        MutexPool {
            free: Mutex::new(Vec::new()),
        }
    }

    fn get(&self) -> Pipe {
        let pipe = self.free.lock().unwrap().pop();
        match pipe {
            Some(pipe) => pipe,
            None => Pipe::with_size(DEFAULT_PIPE_SIZE).unwrap(),
        }
    }

    fn put(&self, pipe: Pipe) {
        if pipe.is_empty() {
            self.free.lock().unwrap().push(pipe);
        }
    }
}

fn get_put(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool/get_put");

    let pool = pool();
    drop(pool.get().unwrap());
    g.bench_function("pipepool", |b| {
        b.iter(|| {
            let pipe = pool.get().unwrap();
            black_box(&pipe);
        })
    });

    let mutex = MutexPool::new();
    mutex.put(mutex.get());
    g.bench_function("mutex_vec", |b| {
        b.iter(|| {
            let pipe = mutex.get();
            mutex.put(black_box(pipe));
        })
    });

    g.bench_function("fresh_pipe", |b| {
        b.iter(|| black_box(Pipe::with_size(DEFAULT_PIPE_SIZE).unwrap()))
    });
    g.finish();
}

/// Runs `op` `iters / THREADS` times on each of `THREADS` threads started
/// together; returns the slowest thread's time scaled to `iters` ops.
fn parallel(iters: u64, op: impl Fn() + Sync) -> Duration {
    let per_thread = iters.div_ceil(THREADS as u64);
    let barrier = Barrier::new(THREADS);
    let times: Vec<Duration> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    op(); // warm this thread's cache outside the timing
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..per_thread {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let slowest = times.into_iter().max().unwrap();
    // per_thread * THREADS may exceed iters by rounding: scale back.
    slowest.mul_f64(iters as f64 / (per_thread * THREADS as u64) as f64)
}

fn get_put_parallel(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool/get_put_parallel");

    let pool = pool();
    g.bench_with_input(BenchmarkId::new("pipepool", THREADS), &THREADS, |b, _| {
        b.iter_custom(|iters| {
            parallel(iters, || {
                let pipe = pool.get().unwrap();
                black_box(&pipe);
            })
        })
    });

    let mutex = MutexPool::new();
    g.bench_with_input(BenchmarkId::new("mutex_vec", THREADS), &THREADS, |b, _| {
        b.iter_custom(|iters| {
            parallel(iters, || {
                let pipe = mutex.get();
                mutex.put(black_box(pipe));
            })
        })
    });
    g.finish();
}

criterion_group!(benches, get_put, get_put_parallel);
criterion_main!(benches);
