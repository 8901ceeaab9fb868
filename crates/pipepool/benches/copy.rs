//! `copy/*`: pipepool's zero-copy `copy_n` against `std::io::copy` and
//! against pipepool's own buffered fallback, over loopback TCP and from a
//! socket into a file, at 64 KiB, 1 MiB and 64 MiB per copy.
//!
//! Besides criterion's throughput, every case records the CPU time the
//! copying thread spent (`getrusage(RUSAGE_THREAD)`), and prints CPU
//! seconds per GB at the end; the table is also written to
//! `target/copy-cpu.txt`. A feeder thread writes into the source socket and
//! a sink thread drains the destination; their CPU is the same for every
//! variant and is not counted.
//!
//! Run: `cargo bench -p pipepool --bench copy` (pin with `taskset -c 0`);
//! with repetitions and their spread: `bench/copy_relay.sh`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pipepool::{Copier, PoolConfig};

const SIZES: &[(usize, &str)] = &[(64 << 10, "64KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB")];

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    /// pipepool::Copier (splice through a pooled pipe).
    ZeroCopy,
    /// pipepool::Copier with zero_copy(false): 64 KiB read/write.
    Buffered,
    /// std::io::copy (8 KiB buffer for these fd kinds).
    Std,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::ZeroCopy => "pipepool",
            Variant::Buffered => "pipepool_buffered",
            Variant::Std => "std_io_copy",
        }
    }
}

/// CPU seconds per GB, per (case, variant): filled while benchmarking.
static CPU: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

/// A source socket with a feeder thread that writes `size` bytes each time
/// it is told to.
struct Feeder {
    src: TcpStream,
    go: mpsc::SyncSender<usize>,
}

fn feeder() -> Feeder {
    let (mut feed, src) = tcp_pair();
    let (go, rx) = mpsc::sync_channel::<usize>(1024);
    thread::spawn(move || {
        let chunk = vec![0x5au8; 1 << 20];
        while let Ok(mut n) = rx.recv() {
            while n > 0 {
                let k = n.min(chunk.len());
                feed.write_all(&chunk[..k]).unwrap();
                n -= k;
            }
        }
    });
    Feeder { src, go }
}

/// Whether the command line sets criterion's option `flag`
/// (`--warm-up-time 1` or `--warm-up-time=1`). Criterion lets a group's
/// `warm_up_time` / `measurement_time` win over the command line, so the
/// defaults of this file apply only when it does not.
fn cli_sets(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

fn run(c: &mut Criterion, group_name: &str, to_file: bool) {
    let pool = PoolConfig::builder().build().unwrap();
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    // A group's own times would override the command line's: set them only
    // when it gives none (bench/copy_relay.sh passes both).
    if !cli_sets("--warm-up-time") {
        group.warm_up_time(Duration::from_millis(500));
    }
    if !cli_sets("--measurement-time") {
        group.measurement_time(Duration::from_secs(3));
    }
    for &(size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for variant in [Variant::ZeroCopy, Variant::Buffered, Variant::Std] {
            let f = feeder();
            // Destination: a TCP socket drained by a sink thread, or a file
            // rewound before each copy.
            let (dst_sock, file) = if to_file {
                (None, Some(tempfile::tempfile().unwrap()))
            } else {
                let (dst, mut drain) = tcp_pair();
                thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 20];
                    while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
                });
                (Some(dst), None)
            };
            let mut cpu_total = Duration::ZERO;
            let mut bytes_total = 0u64;
            group.bench_function(BenchmarkId::new(variant.name(), label), |b| {
                b.iter_custom(|iters| {
                    let mut wall = Duration::ZERO;
                    for _ in 0..iters {
                        if let Some(file) = &file {
                            use std::io::Seek;
                            (&*file).rewind().unwrap();
                        }
                        let dst = match (&dst_sock, &file) {
                            (Some(s), _) => s.as_fd(),
                            (_, Some(f)) => f.as_fd(),
                            _ => unreachable!(),
                        };
                        f.go.send(size).unwrap();
                        let cpu0 = thread_cpu();
                        let t0 = Instant::now();
                        let n = match variant {
                            Variant::ZeroCopy | Variant::Buffered => {
                                Copier::new()
                                    .pool(pool.clone())
                                    .zero_copy(matches!(variant, Variant::ZeroCopy))
                                    .limit(size as u64)
                                    .copy(&f.src, dst)
                                    .unwrap()
                                    .bytes
                            }
                            Variant::Std => {
                                let mut w = std::fs::File::from(dst.try_clone_to_owned().unwrap());
                                std::io::copy(&mut (&f.src).take(size as u64), &mut w).unwrap()
                            }
                        };
                        wall += t0.elapsed();
                        cpu_total += thread_cpu() - cpu0;
                        bytes_total += n;
                        assert_eq!(n, size as u64);
                    }
                    wall
                })
            });
            let per_gb = cpu_total.as_secs_f64() / (bytes_total as f64 / 1e9);
            let key = format!("{group_name}/{}/{label}", variant.name());
            CPU.lock().unwrap().push((key, per_gb));
        }
    }
    group.finish();
}

fn tcp_to_tcp(c: &mut Criterion) {
    run(c, "copy/tcp_to_tcp", false);
}

fn tcp_to_file(c: &mut Criterion) {
    run(c, "copy/tcp_to_file", true);
}

fn report(_: &mut Criterion) {
    let rows = CPU.lock().unwrap();
    let mut out = String::from("case\tcpu_s_per_gb\n");
    for (k, v) in rows.iter() {
        out += &format!("{k}\t{v:.3}\n");
    }
    println!("\nCPU seconds per GB of the copying thread:\n{out}");
    // Benches run in the package's directory: the workspace's target/ is
    // two levels up.
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into());
    let _ = std::fs::write(format!("{dir}/copy-cpu.txt"), out);
}

criterion_group!(benches, tcp_to_tcp, tcp_to_file, report);
criterion_main!(benches);
