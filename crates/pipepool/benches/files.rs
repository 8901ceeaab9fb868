//! `files/*`: file <-> socket with the async API.
//!
//! - `files/file_to_tcp/{pipepool_sendfile, tokio_io_copy,
//!   spawn_blocking_std_copy}/{64KiB,1MiB,64MiB[,1GiB]}`: a file in the
//!   page cache (written just before, so warm) sent to a loopback TCP
//!   socket by `pipepool::tokio::sendfile`, by `tokio::io::copy` from a
//!   `tokio::fs::File`, and by `std::io::copy` on tokio's blocking pool.
//!   1 GiB only with `PIPEPOOL_BENCH_1GIB=1` (it writes a 1 GiB file).
//! - `files/tcp_to_file/{pipepool_copy_to_file, tokio_io_copy}/{1MiB,64MiB}`:
//!   a loopback TCP socket fed by a thread, into a file.
//!
//! Besides criterion's throughput, every case records the CPU time of the
//! whole process minus that of the helper thread (the sink that drains the
//! socket, or the feeder that fills it; it does the same work for every
//! variant), and prints CPU seconds per GB at the end; the table is also
//! written to `target/files-cpu.txt`.
//!
//! Run: `cargo bench -p pipepool --features tokio --bench files` (pin with
//! `taskset -c 0`); a smoke run:
//! `cargo bench -p pipepool --features tokio --bench files -- --warm-up-time 0.1 --measurement-time 0.2 1MiB`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pipepool::tokio::CopyOptions;
use tokio::io::AsyncSeekExt;

fn sizes() -> Vec<(usize, &'static str)> {
    let mut sizes = vec![(64 << 10, "64KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB")];
    if std::env::var_os("PIPEPOOL_BENCH_1GIB").is_some_and(|v| v == "1") {
        sizes.push((1 << 30, "1GiB"));
    }
    sizes
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

fn cpu(clock: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(clock);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A helper thread's CPU time in nanoseconds, as it last published it.
type HelperCpu = Arc<AtomicU64>;

fn publish(cell: &AtomicU64) {
    let t = cpu(rustix::time::ClockId::ThreadCPUTime);
    cell.store(t.as_nanos() as u64, Ordering::Relaxed);
}

/// A thread that drains `sock`, reporting each round's byte count.
fn sink(mut sock: TcpStream) -> (mpsc::Receiver<()>, HelperCpu, mpsc::SyncSender<usize>) {
    let helper = HelperCpu::default();
    let (done_tx, done_rx) = mpsc::sync_channel(16);
    let (want_tx, want_rx) = mpsc::sync_channel::<usize>(16);
    let h = Arc::clone(&helper);
    thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(mut want) = want_rx.recv() {
            while want > 0 {
                let n = sock.read(&mut buf[..want.min(1 << 20)]).unwrap();
                assert!(n > 0, "sink: early end of file");
                want -= n;
            }
            publish(&h);
            done_tx.send(()).unwrap();
        }
    });
    (done_rx, helper, want_tx)
}

/// A thread that writes `n` bytes into `sock` each time it is told to.
fn feeder(mut sock: TcpStream) -> (mpsc::SyncSender<usize>, HelperCpu, mpsc::Receiver<()>) {
    let helper = HelperCpu::default();
    let (go, rx) = mpsc::sync_channel::<usize>(16);
    let (done_tx, done_rx) = mpsc::sync_channel(16);
    let h = Arc::clone(&helper);
    thread::spawn(move || {
        let chunk = vec![0x5au8; 1 << 20];
        while let Ok(mut n) = rx.recv() {
            while n > 0 {
                let k = n.min(chunk.len());
                sock.write_all(&chunk[..k]).unwrap();
                n -= k;
            }
            publish(&h);
            done_tx.send(()).unwrap();
        }
    });
    (go, helper, done_rx)
}

#[derive(Clone, Copy, Debug)]
enum Out {
    Sendfile,
    TokioCopy,
    BlockingStdCopy,
}

#[derive(Clone, Copy, Debug)]
enum In {
    CopyToFile,
    TokioCopy,
}

/// CPU seconds per GB, per case: filled while benchmarking.
static CPU: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn cli_sets(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

fn group<'c>(
    c: &'c mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    if !cli_sets("--warm-up-time") {
        group.warm_up_time(Duration::from_millis(500));
    }
    if !cli_sets("--measurement-time") {
        group.measurement_time(Duration::from_secs(3));
    }
    group
}

fn record(key: String, cpu_total: Duration, bytes: u64) {
    if bytes > 0 {
        CPU.lock()
            .unwrap()
            .push((key, cpu_total.as_secs_f64() / (bytes as f64 / 1e9)));
    }
}

fn file_to_tcp(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = group(c, "files/file_to_tcp");
    for (size, label) in sizes() {
        let mut file = tempfile::tempfile().unwrap();
        let chunk = vec![0xa5u8; 1 << 20];
        for _ in 0..size.div_ceil(chunk.len()) {
            file.write_all(&chunk[..size.min(chunk.len())]).unwrap();
        }
        group.throughput(Throughput::Bytes(size as u64));
        for variant in [Out::Sendfile, Out::TokioCopy, Out::BlockingStdCopy] {
            let (out, drain) = tcp_pair();
            let (done, helper, want) = sink(drain);
            // Every server that sends files sets it; without it the last
            // small segment of a round waits for a delayed ACK (40 ms).
            out.set_nodelay(true).unwrap();
            out.set_nonblocking(true).unwrap();
            let mut out = rt
                .block_on(async { tokio::net::TcpStream::from_std(out) })
                .unwrap();
            let name = match variant {
                Out::Sendfile => "pipepool_sendfile",
                Out::TokioCopy => "tokio_io_copy",
                Out::BlockingStdCopy => "spawn_blocking_std_copy",
            };
            let (mut cpu_total, mut bytes) = (Duration::ZERO, 0u64);
            let opts = CopyOptions::new();
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter_custom(|iters| {
                    let mut wall = Duration::ZERO;
                    for _ in 0..iters {
                        want.send(size).unwrap();
                        let h0 = helper.load(Ordering::Relaxed);
                        let p0 = cpu(rustix::time::ClockId::ProcessCPUTime);
                        let t0 = Instant::now();
                        let n = rt.block_on(async {
                            match variant {
                                Out::Sendfile => {
                                    pipepool::tokio::sendfile_with(
                                        &file,
                                        &out,
                                        0,
                                        size as u64,
                                        &opts,
                                    )
                                    .await
                                    .unwrap()
                                    .bytes
                                }
                                Out::TokioCopy => {
                                    let mut f =
                                        tokio::fs::File::from_std(file.try_clone().unwrap());
                                    f.rewind().await.unwrap();
                                    tokio::io::copy(&mut f, &mut out).await.unwrap()
                                }
                                Out::BlockingStdCopy => {
                                    // A blocking dup of the socket (the flag
                                    // is shared: restored after), so that
                                    // std's copy uses its own sendfile path.
                                    let mut f = file.try_clone().unwrap();
                                    let mut s =
                                        TcpStream::from(out.as_fd().try_clone_to_owned().unwrap());
                                    s.set_nonblocking(false).unwrap();
                                    let n = tokio::task::spawn_blocking(move || {
                                        f.rewind().unwrap();
                                        let n = std::io::copy(&mut f, &mut s).unwrap();
                                        s.set_nonblocking(true).unwrap();
                                        n
                                    })
                                    .await
                                    .unwrap();
                                    n
                                }
                            }
                        });
                        done.recv().unwrap();
                        wall += t0.elapsed();
                        let helper_cpu = Duration::from_nanos(helper.load(Ordering::Relaxed) - h0);
                        cpu_total += (cpu(rustix::time::ClockId::ProcessCPUTime) - p0)
                            .saturating_sub(helper_cpu);
                        bytes += n;
                        assert_eq!(n, size as u64);
                    }
                    wall
                })
            });
            record(
                format!("files/file_to_tcp/{name}/{label}"),
                cpu_total,
                bytes,
            );
        }
    }
    group.finish();
}

fn tcp_to_file(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = group(c, "files/tcp_to_file");
    for (size, label) in [(1usize << 20, "1MiB"), (64 << 20, "64MiB")] {
        group.throughput(Throughput::Bytes(size as u64));
        for variant in [In::CopyToFile, In::TokioCopy] {
            let (feed, src) = tcp_pair();
            let (go, helper, fed) = feeder(feed);
            let mut src = rt
                .block_on(async { tokio::net::TcpStream::from_std(src) })
                .unwrap();
            let file = tempfile::tempfile().unwrap();
            let name = match variant {
                In::CopyToFile => "pipepool_copy_to_file",
                In::TokioCopy => "tokio_io_copy",
            };
            let (mut cpu_total, mut bytes) = (Duration::ZERO, 0u64);
            let opts = CopyOptions::new();
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter_custom(|iters| {
                    let mut wall = Duration::ZERO;
                    for _ in 0..iters {
                        go.send(size).unwrap();
                        let h0 = helper.load(Ordering::Relaxed);
                        let p0 = cpu(rustix::time::ClockId::ProcessCPUTime);
                        let t0 = Instant::now();
                        let n = rt.block_on(async {
                            match variant {
                                In::CopyToFile => {
                                    pipepool::tokio::copy_to_file(
                                        &src,
                                        &file,
                                        0,
                                        size as u64,
                                        &opts,
                                    )
                                    .await
                                    .unwrap()
                                    .bytes
                                }
                                In::TokioCopy => {
                                    use tokio::io::AsyncReadExt;
                                    let mut f =
                                        tokio::fs::File::from_std(file.try_clone().unwrap());
                                    f.rewind().await.unwrap();
                                    let n =
                                        tokio::io::copy(&mut (&mut src).take(size as u64), &mut f)
                                            .await
                                            .unwrap();
                                    n
                                }
                            }
                        });
                        wall += t0.elapsed();
                        fed.recv().unwrap();
                        let helper_cpu = Duration::from_nanos(helper.load(Ordering::Relaxed) - h0);
                        cpu_total += (cpu(rustix::time::ClockId::ProcessCPUTime) - p0)
                            .saturating_sub(helper_cpu);
                        bytes += n;
                        assert_eq!(n, size as u64);
                    }
                    wall
                })
            });
            record(
                format!("files/tcp_to_file/{name}/{label}"),
                cpu_total,
                bytes,
            );
        }
    }
    group.finish();
}

fn report(_: &mut Criterion) {
    let rows = CPU.lock().unwrap();
    let mut out = String::from("case\tcpu_s_per_gb\n");
    for (k, v) in rows.iter() {
        out += &format!("{k}\t{v:.3}\n");
    }
    println!("\nCPU seconds per GB (process minus the sink/feeder thread):\n{out}");
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into());
    let _ = std::fs::write(format!("{dir}/files-cpu.txt"), out);
}

criterion_group!(benches, file_to_tcp, tcp_to_file, report);
criterion_main!(benches);
