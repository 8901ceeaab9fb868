//! Baseline TCP relays for `bench/compare.sh`: the data paths a Rust user
//! would otherwise pick, each as small as a proxy can be (accept, connect
//! the upstream, relay both ways until both directions have ended).
//!
//! ```text
//! relays --mode realm --listen 127.0.0.1:A --upstream 127.0.0.1:B
//! relays --mode tokio --buf 8192  --listen ... --upstream ...
//! relays --mode tokio --buf 65536 --listen ... --upstream ...
//! ```
//!
//! - `realm`: `realm_io::bidi_zero_copy`, realm's own zero-copy path: two
//!   fresh pipes per connection (`pipe2` + close, 64 KiB: realm_io's
//!   default pipe size), splice in and out. On EOF from one side it shuts
//!   down the write half of the other and keeps relaying the other way
//!   (realm_io's default "graceful" shutdown), so a client's half-close
//!   still gets its reply.
//! - `tokio`: `tokio::io::copy_bidirectional_with_sizes` with `--buf` bytes
//!   each way (8192 is what `copy_bidirectional` uses): userspace copies.
//!
//! - `kaload`: not a relay but a load: `--conns C` keep-alive connections
//!   to `--target`, each sending `--size` bytes and reading them back
//!   (an echo upstream), over and over for `--secs` seconds; prints
//!   `{"requests":R,"secs":S,"conns":C,"size":N}`.
//!
//! The relays set TCP_NODELAY on both sockets (as spliced does) and run on a
//! tokio multi-thread runtime with `--threads` workers (default 1, as
//! `spliced run --worker-threads 1`).

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Mode {
    Realm,
    Tokio(usize),
    KaLoad,
}

struct Args {
    mode: Mode,
    conns: usize,
    size: usize,
    secs: f64,
    listen: SocketAddr,
    upstream: SocketAddr,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let mut mode = None;
    let mut buf = 8192usize;
    let (mut listen, mut upstream, mut threads) = (None, None, 1usize);
    let (mut conns, mut size, mut secs) = (1usize, 1024usize, 2.0f64);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--mode" => mode = Some(value()?),
            "--buf" => buf = value()?.parse().map_err(|e| format!("--buf: {e}"))?,
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--conns" => conns = value()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--size" => size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--secs" => secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--target" => upstream = Some(value()?.parse().map_err(|e| format!("--target: {e}"))?),
            "--listen" => listen = Some(value()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--upstream" => {
                upstream = Some(value()?.parse().map_err(|e| format!("--upstream: {e}"))?)
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let mode = match mode.as_deref() {
        Some("realm") => Mode::Realm,
        Some("tokio") if buf > 0 => Mode::Tokio(buf),
        Some("tokio") => return Err("--buf must be at least 1".into()),
        Some("kaload") if conns > 0 && size > 0 && secs > 0.0 => Mode::KaLoad,
        Some("kaload") => return Err("--conns, --size and --secs must be above 0".into()),
        Some(m) => return Err(format!("unknown --mode `{m}` (realm, tokio or kaload)")),
        None => return Err("--mode realm|tokio|kaload is required".into()),
    };
    if matches!(mode, Mode::KaLoad) && listen.is_none() {
        listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    Ok(Args {
        mode,
        conns,
        size,
        secs,
        listen: listen.ok_or("--listen ADDR is required")?,
        upstream: upstream.ok_or("--upstream (or --target) ADDR is required")?,
        threads: threads.max(1),
    })
}

async fn relay(mode: Mode, mut client: TcpStream, upstream: SocketAddr) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream).await?;
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    match mode {
        Mode::Realm => realm_io::bidi_zero_copy(&mut client, &mut up).await?,
        Mode::Tokio(n) => {
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, n, n).await?
        }
        Mode::KaLoad => unreachable!("kaload does not relay"),
    };
    Ok(())
}

/// One keep-alive connection: request, echo, request, ... until `until`.
async fn ping_pong(
    target: SocketAddr,
    size: usize,
    until: tokio::time::Instant,
) -> std::io::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    let req: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut back = vec![0u8; size];
    let mut n = 0u64;
    while tokio::time::Instant::now() < until {
        s.write_all(&req).await?;
        s.read_exact(&mut back).await?;
        if back != req {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "echo differs",
            ));
        }
        n += 1;
    }
    Ok(n)
}

async fn kaload(args: &Args) -> std::io::Result<()> {
    let start = tokio::time::Instant::now();
    let until = start + std::time::Duration::from_secs_f64(args.secs);
    let tasks: Vec<_> = (0..args.conns)
        .map(|_| tokio::spawn(ping_pong(args.upstream, args.size, until)))
        .collect();
    let mut requests = 0u64;
    for t in tasks {
        requests += t.await.map_err(std::io::Error::other)??;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"requests\":{requests},\"secs\":{secs:.3},\"conns\":{},\"size\":{}}}",
        args.conns, args.size
    );
    Ok(())
}

async fn serve(args: Args) -> std::io::Result<()> {
    if matches!(args.mode, Mode::KaLoad) {
        return kaload(&args).await;
    }
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: keep serving (the benchmark sees it).
                eprintln!("relays: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let (mode, upstream) = (args.mode, args.upstream);
        tokio::spawn(async move {
            if let Err(e) = relay(mode, client, upstream).await {
                eprintln!("relays: connection: {e}");
            }
        });
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relays: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relays: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relays: {e}");
            ExitCode::FAILURE
        }
    }
}
