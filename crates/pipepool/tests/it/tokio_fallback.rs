//! Which path a copy takes, and that every path delivers: types that cannot
//! be spliced (`tokio::io::duplex`, a socket and a duplex) take the userspace
//! copy; `UnixStream`s, the split halves of TCP and Unix streams, and
//! `&mut`s to and `Box`es of whole streams are spliced; a destination the kernel refuses to splice into (a real
//! `EINVAL`) falls back without losing a byte. (The source side of that
//! fallback is covered by a unit test in `src/tokio/direction.rs`, with an
//! injected `EINVAL`: no socket refuses `splice` reads on current kernels.) Also the idle timeout, the bounded work per poll, and
//! that the futures are `Send`.

#![cfg(feature = "tokio")]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, copy_with, CopyOptions};
use pipepool::{Method, PoolConfig, PoolStats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

use crate::util::net::{recv_stream, send_stream, tcp_pair, within};

const LEN: u64 = 3 << 20;

/// Sends `LEN` bytes of stream 0 into `w`, then shuts it down.
fn feed<W: AsyncWrite + Unpin + Send + 'static>(mut w: W) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        send_stream(&mut w, 0, LEN).await.unwrap();
        w.shutdown().await.unwrap();
    })
}

/// Reads stream 0 from `r` to end of file; returns the byte count.
fn drain<R: AsyncRead + Unpin + Send + 'static>(mut r: R) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move { recv_stream(&mut r, 0).await.unwrap() })
}

/// `client <-> a | relay | b <-> server` where every link is a
/// `tokio::io::duplex`: the userspace path, both ways.
async fn duplex_streams_take_the_userspace_copy() {
    let (client, a) = tokio::io::duplex(64 << 10);
    let (b, server) = tokio::io::duplex(16 << 10);
    let stats = relay_both_ways(a, b, client, server, Method::Userspace).await;
    assert_eq!(stats.created, 0, "no pipe for types that cannot be spliced");
}

/// A socket on one side and a duplex on the other: userspace.
async fn socket_to_duplex_takes_the_userspace_copy() {
    let pool = PoolConfig::builder().build().unwrap();
    let (client, mut a) = tcp_pair().await;
    let (mut b, server) = tokio::io::duplex(16 << 10);
    let sent = feed(client);
    let got = drain(server);
    let opts = CopyOptions::new().pool(pool.clone());
    let done = within(60, "copy", copy_with(&mut a, &mut b, &opts))
        .await
        .unwrap();
    assert_eq!((done.bytes, done.method), (LEN, Method::Userspace));
    sent.await.unwrap();
    drop(b);
    assert_eq!(got.await.unwrap(), LEN);
    assert_eq!(pool.stats().created, 0);
}

/// Relays `a` <-> `b` with `copy_bidirectional_with` while `client` (the
/// far end of `a`) and `server` (the far end of `b`) each send `LEN` bytes
/// and read to end of file; checks that both directions took `method` and
/// that every byte arrived. Returns the pool's statistics afterwards.
async fn relay_both_ways<A, B, C, S>(
    mut a: A,
    mut b: B,
    client: C,
    server: S,
    method: Method,
) -> PoolStats
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let pool = PoolConfig::builder().build().unwrap();
    let (client_r, client_w) = tokio::io::split(client);
    let (server_r, server_w) = tokio::io::split(server);
    let (up, down) = (feed(client_w), feed(server_w));
    let (got_server, got_client) = (drain(server_r), drain(client_r));
    let opts = CopyOptions::new().pool(pool.clone());
    let report = within(60, "relay", copy_bidirectional_with(&mut a, &mut b, &opts))
        .await
        .unwrap();
    assert_eq!((report.a_to_b.bytes, report.b_to_a.bytes), (LEN, LEN));
    assert_eq!(
        (report.a_to_b.method, report.b_to_a.method),
        (method, method)
    );
    up.await.unwrap();
    down.await.unwrap();
    // `copy_bidirectional` shut both far ends' read sides down at end of
    // file: the drains end without `a` and `b` being dropped.
    assert_eq!(got_server.await.unwrap(), LEN);
    assert_eq!(got_client.await.unwrap(), LEN);
    pool.stats()
}

/// Both directions spliced, and the pool got every pipe back clean.
fn assert_pipes_back_clean(stats: PoolStats) {
    assert!(stats.created > 0);
    assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
}

/// `UnixStream`s through `copy_bidirectional_with`: spliced both ways.
async fn unix_streams_are_spliced() {
    let (client, a) = UnixStream::pair().unwrap();
    let (b, server) = UnixStream::pair().unwrap();
    assert_pipes_back_clean(relay_both_ways(a, b, client, server, Method::Splice).await);
}

/// `&mut TcpStream` (what `copy_bidirectional(&mut a, &mut b)` passes when
/// `a` and `b` are themselves `&mut TcpStream`) and `Box<TcpStream>` are
/// spliced too.
async fn references_and_boxes_are_spliced() {
    let (client, mut a) = tcp_pair().await;
    let (b, server) = tcp_pair().await;
    let stats = relay_both_ways(&mut a, Box::new(b), client, server, Method::Splice).await;
    assert_pipes_back_clean(stats);
}

/// `copy_with` between split halves (owned and borrowed, TCP and Unix, and
/// TCP to Unix): spliced, every byte delivered.
async fn split_halves_are_spliced() {
    let pool = PoolConfig::builder().build().unwrap();
    let opts = CopyOptions::new().pool(pool.clone());

    // tcp::OwnedReadHalf -> tcp::OwnedWriteHalf
    let (client, a) = tcp_pair().await;
    let (b, server) = tcp_pair().await;
    let (sent, got) = (feed(client), drain(server));
    let (mut a_r, _a_w) = a.into_split();
    let (_b_r, mut b_w) = b.into_split();
    let done = within(60, "owned tcp halves", copy_with(&mut a_r, &mut b_w, &opts))
        .await
        .unwrap();
    assert_eq!((done.bytes, done.method), (LEN, Method::Splice));
    sent.await.unwrap();
    drop(b_w); // an owned write half shuts the socket down when dropped
    assert_eq!(got.await.unwrap(), LEN);

    // tcp::ReadHalf<'_> -> tcp::WriteHalf<'_>
    let (client, mut a) = tcp_pair().await;
    let (mut b, server) = tcp_pair().await;
    let (sent, got) = (feed(client), drain(server));
    {
        let (mut a_r, _) = a.split();
        let (_, mut b_w) = b.split();
        let done = within(
            60,
            "borrowed tcp halves",
            copy_with(&mut a_r, &mut b_w, &opts),
        )
        .await
        .unwrap();
        assert_eq!((done.bytes, done.method), (LEN, Method::Splice));
    }
    sent.await.unwrap();
    drop((a, b));
    assert_eq!(got.await.unwrap(), LEN);

    // unix::ReadHalf<'_> -> unix::OwnedWriteHalf
    let (client, mut a) = UnixStream::pair().unwrap();
    let (b, server) = UnixStream::pair().unwrap();
    let (sent, got) = (feed(client), drain(server));
    {
        let (mut a_r, _) = a.split();
        let (_b_r, mut b_w) = b.into_split();
        let done = within(60, "unix halves", copy_with(&mut a_r, &mut b_w, &opts))
            .await
            .unwrap();
        assert_eq!((done.bytes, done.method), (LEN, Method::Splice));
    }
    sent.await.unwrap();
    assert_eq!(got.await.unwrap(), LEN);

    // tcp::OwnedReadHalf -> unix::WriteHalf<'_>
    let (client, a) = tcp_pair().await;
    let (mut b, server) = UnixStream::pair().unwrap();
    let (sent, got) = (feed(client), drain(server));
    {
        let (mut a_r, _a_w) = a.into_split();
        let (_, mut b_w) = b.split();
        let done = within(60, "tcp to unix", copy_with(&mut a_r, &mut b_w, &opts))
            .await
            .unwrap();
        assert_eq!((done.bytes, done.method), (LEN, Method::Splice));
    }
    sent.await.unwrap();
    drop(b);
    assert_eq!(got.await.unwrap(), LEN);

    let stats = pool.stats();
    assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
}

/// The destination refuses the first splice with a real `EINVAL` (the
/// kernel refuses to splice into a file opened `O_APPEND`, and a socket can
/// be given that flag while `send` ignores it), with bytes already in the
/// pipe: they move to the buffer and arrive all the same, and so does
/// everything after them.
async fn destination_refusing_splice_loses_nothing() {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let pool = PoolConfig::builder().build().unwrap();
    let (client, mut a) = tcp_pair().await;
    let (mut b, server) = tcp_pair().await;
    fcntl_setfl(&b, fcntl_getfl(&b).unwrap() | OFlags::APPEND).unwrap();
    let (sent, got) = (feed(client), drain(server));
    let opts = CopyOptions::new().pool(pool.clone());
    let done = within(60, "copy", copy_with(&mut a, &mut b, &opts))
        .await
        .unwrap();
    assert_eq!((done.bytes, done.method), (LEN, Method::Userspace));
    sent.await.unwrap();
    drop(b);
    assert_eq!(got.await.unwrap(), LEN);
    let stats = pool.stats();
    assert_eq!(
        stats.created, 1,
        "the first burst went into a pipe: {stats:?}"
    );
    assert_eq!((stats.in_use, stats.closed_dirty), (0, 0), "{stats:?}");
}

/// `zero_copy(false)` between sockets: userspace, no pipe taken.
async fn zero_copy_off_takes_no_pipe() {
    let pool = PoolConfig::builder().build().unwrap();
    let (client, mut a) = tcp_pair().await;
    let (mut b, server) = tcp_pair().await;
    let (sent, got) = (feed(client), drain(server));
    let opts = CopyOptions::new()
        .pool(pool.clone())
        .zero_copy(false)
        .buffer_size(4096);
    let done = within(60, "copy", copy_with(&mut a, &mut b, &opts))
        .await
        .unwrap();
    assert_eq!((done.bytes, done.method), (LEN, Method::Userspace));
    sent.await.unwrap();
    drop(b);
    assert_eq!(got.await.unwrap(), LEN);
    assert_eq!(pool.stats().created, 0);
}

/// The idle timeout: a quiet connection fails with `TimedOut` (reporting
/// what moved), a half-closed one too; a slow but steady one does not.
async fn idle_timeout() {
    let pool = PoolConfig::builder().build().unwrap();
    let opts = CopyOptions::new()
        .pool(pool.clone())
        .idle_timeout(Some(Duration::from_millis(400)));

    // Some bytes, then silence, with the client's direction half-closed.
    let (mut client, mut a) = tcp_pair().await;
    let (mut b, mut server) = tcp_pair().await;
    client.write_all(b"hello").await.unwrap();
    client.shutdown().await.unwrap();
    let started = tokio::time::Instant::now();
    let err = within(60, "relay", copy_bidirectional_with(&mut a, &mut b, &opts))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!((err.a_to_b().bytes, err.b_to_a().bytes), (5, 0));
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(
        got, b"hello",
        "the half-close went through before the timeout"
    );

    // A byte every 50 ms for 2 s, twice the idle timeout of 1 s: never
    // that long without one (the margin is for a loaded machine, where a
    // test thread can stall for hundreds of milliseconds).
    let opts = opts.idle_timeout(Some(Duration::from_secs(1)));
    let (mut client, mut a) = tcp_pair().await;
    let (mut b, server) = tcp_pair().await;
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            client.write_all(b".").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.shutdown().await.unwrap();
        client
    });
    let server_done = tokio::spawn(async move {
        let mut server = server;
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        server.shutdown().await.unwrap();
        got.len()
    });
    let report = within(60, "relay", copy_bidirectional_with(&mut a, &mut b, &opts))
        .await
        .unwrap();
    assert_eq!((report.a_to_b.bytes, report.b_to_a.bytes), (40, 0));
    assert_eq!(server_done.await.unwrap(), 40);
    drop(trickle.await.unwrap());
}

/// A connection holds no pipe between exchanges (the pool's pipes are
/// given back whenever a direction's pipe is empty).
async fn an_idle_connection_holds_no_pipe() {
    let pool = PoolConfig::builder().build().unwrap();
    let opts = CopyOptions::new().pool(pool.clone());
    let (mut client, mut a) = tcp_pair().await;
    let (mut b, mut server) = tcp_pair().await;
    let relay = copy_bidirectional_with(&mut a, &mut b, &opts);
    let talk = async {
        let mut byte = [0u8; 1];
        client.write_all(b"?").await.unwrap();
        server.read_exact(&mut byte).await.unwrap();
        server.write_all(b"!").await.unwrap();
        client.read_exact(&mut byte).await.unwrap();
        assert_eq!(pool.stats().in_use, 0);
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
    };
    let (report, ()) = within(60, "relay", async { tokio::join!(relay, talk) }).await;
    assert_eq!((report.unwrap().a_to_b.bytes, pool.stats().in_use), (1, 0));
}

on_both_runtimes!(
    references_and_boxes_are_spliced,
    duplex_streams_take_the_userspace_copy,
    socket_to_duplex_takes_the_userspace_copy,
    unix_streams_are_spliced,
    split_halves_are_spliced,
    destination_refusing_splice_loses_nothing,
    zero_copy_off_takes_no_pipe,
    idle_timeout,
    an_idle_connection_holds_no_pipe,
);

/// A reader that always has `left` more zero bytes ready (never pending),
/// and a writer that takes everything at once: without a bound of its own,
/// a copy between them would finish in a single poll.
struct Endless {
    left: u64,
}

impl AsyncRead for Endless {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        buf.put_slice(&vec![0u8; n]);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

struct Sink;

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A copy that could run forever yields after a bounded amount of work
/// (asking to be polled again), so it cannot starve the tasks sharing its
/// thread.
#[test]
fn yields_after_bounded_work() {
    const TOTAL: u64 = 16 << 20;
    let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let (mut reader, mut writer) = (Endless { left: TOTAL }, Sink);
    let opts = CopyOptions::new();
    let mut copy = Box::pin(copy_with(&mut reader, &mut writer, &opts));
    let mut polls = 0;
    let done = loop {
        polls += 1;
        assert!(polls < 1000, "never finished");
        match copy.as_mut().poll(&mut cx) {
            Poll::Ready(done) => break done.unwrap(),
            Poll::Pending => assert_eq!(
                wakes.0.load(Ordering::Relaxed),
                polls,
                "yielded without a wake-up"
            ),
        }
    };
    assert_eq!(done.bytes, TOTAL);
    // At most about 1 MiB per poll.
    assert!(polls >= 16, "{polls} polls for {TOTAL} bytes");
}

/// The futures can be spawned: they are `Send` when the streams are.
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut a, mut b) = tcp_pair().await;
        let opts = CopyOptions::new();
        assert_send(&pipepool::tokio::copy(&mut a, &mut b));
        assert_send(&pipepool::tokio::copy_bidirectional(&mut a, &mut b));
        assert_send(&copy_with(&mut a, &mut b, &opts));
        assert_send(&copy_bidirectional_with(&mut a, &mut b, &opts));
    });
}
