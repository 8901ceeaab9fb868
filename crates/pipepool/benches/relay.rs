//! `relay/*`: an in-process TCP relay over loopback,
//! `client -> relay -> sink`, with 1, 4 and 64 concurrent streams moving
//! 64 KiB, 1 MiB and 64 MiB per round:
//!
//! - `pipepool`: `pipepool::tokio::copy_bidirectional` (a pipe per burst,
//!   given back whenever it is empty);
//! - `tokio_8k`: `tokio::io::copy_bidirectional` (8 KiB buffers);
//! - `tokio_64k`: `tokio::io::copy_bidirectional_with_sizes`, 64 KiB.
//!
//! Connections are set up once per case and reused: each round, every
//! client writes the round's bytes and waits for the sink's one-byte ack
//! (which comes back through the relay), so a round is pure relaying, and
//! the relays sit idle between rounds as real ones do. The client and the
//! sink run on a tokio runtime with 2 worker threads; the relays on one of
//! their own with a single worker thread (`relay-worker`), like a proxy
//! pinned to one core. On a machine with 2 CPUs or more, the relay thread is
//! pinned to the first CPU this process may use and every other thread
//! (client, sink, main) to the second, as `taskset -c 0` / `-c 1` would pin
//! a proxy and its load: the relay then has a core to itself and its numbers
//! do not swing with the scheduler's placement. `RELAY_PIN=0` turns the
//! pinning off.
//!
//! `RELAY_CC=NAME` runs every connection of the bench (client, relay, sink)
//! with TCP congestion control `NAME` (set on the listeners and on each
//! socket before it connects, so that none of them ever runs the system's
//! default). Unset, the system default applies
//! (`sysctl net.ipv4.tcp_congestion_control`). It matters on loopback:
//! with `bbr` the kernel paces every socket with hrtimers, which costs every
//! variant alike (see BENCHMARKS.md, section 3).
//!
//! Besides criterion's throughput, every case records the CPU time of the
//! relay's thread (utime + stime from `/proc/self/task/*/stat`) and of the
//! whole process (`getrusage(RUSAGE_SELF)`), and prints CPU seconds per GB
//! relayed for both at the end; the table is also written to
//! `target/relay-cpu.txt`. The client and the sink do the same work in every
//! variant (the client writes each byte from memory; the sink discards
//! without copying, `recv(MSG_TRUNC)`), so differences between variants are
//! the relay's.
//!
//! Run: `cargo bench -p pipepool --features tokio --bench relay`
//! (one case: append a filter such as `-- 'relay/64/pipepool/1MiB'`); with
//! repetitions and their spread: `bench/copy_relay.sh`.

#![allow(missing_docs)] // `criterion_group!` generates an undocumented `fn benches`

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pipepool::tokio::{copy_bidirectional_with, CopyOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const SIZES: &[(u64, &str)] = &[(64 << 10, "64KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB")];
const STREAMS: &[usize] = &[1, 4, 64];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Pipepool,
    Tokio8k,
    Tokio64k,
}

const VARIANTS: &[Variant] = &[Variant::Pipepool, Variant::Tokio8k, Variant::Tokio64k];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Pipepool => "pipepool",
            Variant::Tokio8k => "tokio_8k",
            Variant::Tokio64k => "tokio_64k",
        }
    }

    /// Relays one connection until both directions are done.
    async fn relay(self, mut a: TcpStream, mut b: TcpStream) {
        let res = match self {
            Variant::Pipepool => {
                let opts = CopyOptions::new();
                copy_bidirectional_with(&mut a, &mut b, &opts)
                    .await
                    .map(|r| (r.a_to_b.bytes, r.b_to_a.bytes))
                    .map_err(|e| e.into_error())
            }
            Variant::Tokio8k => tokio::io::copy_bidirectional(&mut a, &mut b).await,
            Variant::Tokio64k => {
                tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, 64 << 10, 64 << 10).await
            }
        };
        res.expect("relay");
    }
}

/// User + system CPU time of the whole process.
fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given,
    // which points to enough space; it is read only after success.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// User + system CPU time of the relay runtime's threads (named
/// `relay-worker`), from `/proc/self/task/*/stat` (clock ticks).
fn relay_cpu() -> Duration {
    let tick = 1.0 / rustix::param::clock_ticks_per_second() as f64;
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // comm is in parentheses and may hold spaces: split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(relay-worker") {
            continue;
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat are the 12th and 13th after the comm.
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        total += ticks as f64 * tick;
    }
    Duration::from_secs_f64(total)
}

/// The CPUs to pin to: (relay, everything else), when pinning is on and the
/// process may use at least two CPUs.
fn pin_cpus() -> Option<(usize, usize)> {
    if std::env::var_os("RELAY_PIN").is_some_and(|v| v == "0") {
        return None;
    }
    let allowed = rustix::thread::sched_getaffinity(None).ok()?;
    let mut cpus = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c));
    Some((cpus.next()?, cpus.next()?))
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).expect("sched_setaffinity");
}

/// `RELAY_CC`, the congestion control every socket of the bench gets.
fn congestion() -> Option<String> {
    std::env::var("RELAY_CC").ok().filter(|v| !v.is_empty())
}

/// Sets `RELAY_CC` on `sock` (a listener or a socket about to connect).
fn set_cc(sock: impl std::os::fd::AsFd) {
    if let Some(cc) = congestion() {
        rustix::net::sockopt::set_tcp_congestion(sock, &cc)
            .unwrap_or_else(|e| panic!("RELAY_CC={cc}: setsockopt(TCP_CONGESTION): {e}"));
    }
}

/// A listener on a loopback port, with `RELAY_CC`.
async fn listen() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    set_cc(&listener);
    listener
}

/// Connects to `addr` with `RELAY_CC` and `TCP_NODELAY`.
async fn connect(addr: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    set_cc(&sock);
    let s = sock.connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// (case, relay CPU s/GB, whole-process CPU s/GB): filled while
/// benchmarking.
static CPU: Mutex<Vec<(String, f64, f64)>> = Mutex::new(Vec::new());

/// Discards up to `max` bytes from `s` without copying them
/// (`recv(MSG_TRUNC)`, which TCP supports): the sink costs the same, and
/// little, whatever the relay. `Ok(0)` at end of file.
async fn discard(s: &TcpStream, max: usize) -> std::io::Result<usize> {
    use rustix::net::RecvFlags;
    let mut scratch = vec![0u8; max];
    loop {
        s.readable().await?;
        let res = s.try_io(tokio::io::Interest::READABLE, || {
            rustix::net::recv(s, &mut scratch[..], RecvFlags::TRUNC | RecvFlags::DONTWAIT)
                .map(|(n, _)| n)
                .map_err(std::io::Error::from)
        });
        match res {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// A sink: reads the round size (an 8-byte header), then for each round
/// discards that many bytes and answers one byte, until end of file.
async fn sink(listener: TcpListener) {
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let size = s.read_u64().await.unwrap();
            loop {
                let mut left = size;
                while left > 0 {
                    match discard(&s, left.min(1 << 20) as usize).await.unwrap() {
                        0 => return, // the client is gone
                        n => left -= n as u64,
                    }
                }
                s.write_all(b"k").await.unwrap();
            }
        });
    }
}

/// A relay listener: for each connection, a connection to the sink and a
/// relay task.
async fn relay(listener: TcpListener, sink: SocketAddr, variant: Variant) {
    loop {
        let (a, _) = listener.accept().await.unwrap();
        let b = connect(sink).await;
        a.set_nodelay(true).unwrap();
        tokio::spawn(variant.relay(a, b));
    }
}

/// `streams` client connections through one relay, each a task that runs
/// rounds when told to.
struct Fleet {
    /// One per client: how many rounds to run next.
    go: Vec<mpsc::UnboundedSender<u64>>,
    /// A message per client when its rounds are done.
    done: mpsc::UnboundedReceiver<()>,
}

impl Fleet {
    async fn new(relay: SocketAddr, streams: usize, size: u64) -> Fleet {
        static DATA: [u8; 1 << 20] = [0x5a; 1 << 20];
        let (done_tx, done) = mpsc::unbounded_channel();
        let mut go = Vec::with_capacity(streams);
        for _ in 0..streams {
            let mut s = connect(relay).await;
            s.write_u64(size).await.unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                while let Some(rounds) = rx.recv().await {
                    for _ in 0..rounds {
                        let mut left = size;
                        while left > 0 {
                            let n = DATA.len().min(left as usize);
                            s.write_all(&DATA[..n]).await.unwrap();
                            left -= n as u64;
                        }
                        let mut ack = [0u8; 1];
                        s.read_exact(&mut ack).await.unwrap();
                    }
                    done_tx.send(()).unwrap();
                }
            });
            go.push(tx);
        }
        Fleet { go, done }
    }

    /// Every client runs `rounds` rounds; returns when all are done.
    async fn run(&mut self, rounds: u64) {
        for tx in &self.go {
            tx.send(rounds).unwrap();
        }
        for _ in 0..self.go.len() {
            self.done.recv().await.unwrap();
        }
    }
}

/// Whether the command line sets criterion's option `flag`
/// (`--warm-up-time 1` or `--warm-up-time=1`). Criterion lets a group's
/// `warm_up_time` / `measurement_time` win over the command line, so the
/// defaults of this file apply only when it does not.
fn cli_sets(flag: &str) -> bool {
    std::env::args().any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

fn bench_relay(c: &mut Criterion) {
    match congestion() {
        Some(cc) => println!("congestion control: {cc} (RELAY_CC)"),
        None => println!("congestion control: the system default"),
    }
    let pins = pin_cpus();
    match pins {
        Some((relay, load)) => {
            println!("pinning: relay thread on CPU {relay}, client, sink and main on CPU {load}");
            pin_to(load);
        }
        None => println!("pinning: off"),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            if let Some((_, load)) = pins {
                pin_to(load);
            }
        })
        .enable_all()
        .build()
        .unwrap();
    let sink_addr = rt.block_on(async {
        let listener = listen().await;
        let addr = listener.local_addr().unwrap();
        tokio::spawn(sink(listener));
        addr
    });
    // The relays run on a runtime of their own, one worker thread, like a
    // proxy pinned to one core; their CPU is measured apart from the
    // client's and the sink's.
    let relay_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay-worker")
        .on_thread_start(move || {
            if let Some((relay, _)) = pins {
                pin_to(relay);
            }
        })
        .enable_all()
        .build()
        .unwrap();
    let relays: Vec<(Variant, SocketAddr)> = VARIANTS
        .iter()
        .map(|&v| {
            relay_rt.block_on(async {
                let listener = listen().await;
                let addr = listener.local_addr().unwrap();
                tokio::spawn(relay(listener, sink_addr, v));
                (v, addr)
            })
        })
        .collect();

    for &streams in STREAMS {
        let mut group = c.benchmark_group(format!("relay/{streams}"));
        for &(size, label) in SIZES {
            let round_bytes = size * streams as u64;
            group.throughput(Throughput::Bytes(round_bytes));
            // Fewer, longer samples for the big rounds (up to 4 GiB each).
            // The command line's times win (bench/copy_relay.sh passes both).
            let big = round_bytes >= 256 << 20;
            group.sample_size(10);
            if !cli_sets("--warm-up-time") {
                group.warm_up_time(Duration::from_millis(if big { 100 } else { 500 }));
            }
            if !cli_sets("--measurement-time") {
                group.measurement_time(Duration::from_secs(if big { 10 } else { 3 }));
            }
            for &(variant, addr) in &relays {
                let id = BenchmarkId::new(variant.name(), label);
                let mut cpu = Duration::ZERO;
                let mut cpu_relay = Duration::ZERO;
                let mut bytes = 0u64;
                let mut fleet = None;
                group.bench_function(id, |b| {
                    // Set up on first use, so a filtered-out case costs nothing.
                    let fleet =
                        fleet.get_or_insert_with(|| rt.block_on(Fleet::new(addr, streams, size)));
                    b.iter_custom(|rounds| {
                        let (cpu0, relay0) = (process_cpu(), relay_cpu());
                        let t0 = Instant::now();
                        rt.block_on(fleet.run(rounds));
                        let wall = t0.elapsed();
                        cpu += process_cpu() - cpu0;
                        cpu_relay += relay_cpu().saturating_sub(relay0);
                        bytes += rounds * round_bytes;
                        wall
                    })
                });
                if bytes > 0 {
                    let gb = bytes as f64 / 1e9;
                    let key = format!("relay/{streams}/{}/{label}", variant.name());
                    let row = (key, cpu_relay.as_secs_f64() / gb, cpu.as_secs_f64() / gb);
                    CPU.lock().unwrap().push(row);
                }
                // Dropping the fleet ends its clients; the relays and sink
                // tasks follow at end of file.
                drop(fleet);
            }
        }
        group.finish();
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    relay_rt.shutdown_timeout(Duration::from_secs(5));
}

/// Prints the CPU table and writes it to `target/relay-cpu.txt`.
fn report(_: &mut Criterion) {
    let rows = CPU.lock().unwrap();
    if rows.is_empty() {
        return;
    }
    let mut out = String::from("case\tcpu_s_per_gb\tprocess_cpu_s_per_gb\n");
    for (k, relay, all) in rows.iter() {
        out += &format!("{k}\t{relay:.3}\t{all:.3}\n");
    }
    println!(
        "\nCPU seconds per GB relayed (the relay's thread; the whole process: client, relay, sink):\n{out}"
    );
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into());
    let _ = std::fs::write(format!("{dir}/relay-cpu.txt"), out);
}

criterion_group!(benches, bench_relay, report);
criterion_main!(benches);
