//! pipepool as a user writes it: an explicit pool shared by spawned tasks,
//! an `OwnedPipe` moved into one, and one `CopyOptions` with one `Progress`
//! shared by several spawned relays over real loopback sockets.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pipepool::tokio::{copy_bidirectional_with, CopyOptions, Progress};
use pipepool::{Method, PipePool, PoolConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The byte at `i` of a test stream (any pattern a wrong offset breaks).
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A connected pair of loopback TCP streams.
async fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let (client, accepted) = tokio::join!(
        TcpStream::connect(listener.local_addr()?),
        listener.accept()
    );
    Ok((client?, accepted?.0))
}

/// `get_owned()` gives a `Send + 'static` pipe: it moves into a spawned
/// task, carries bytes there, and goes back to the pool that lent it when
/// the task drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_pipe_moves_into_a_spawned_task() -> io::Result<()> {
    let pool = PipePool::new(PoolConfig::builder().max_pipes(4).config()?);
    let mut pipe = pool.get_owned()?;
    let task = tokio::spawn(async move {
        let sent = b"through an owned pipe";
        let written = pipe.write(sent)?;
        assert_eq!(written, sent.len());
        let mut back = vec![0u8; sent.len()];
        let read = pipe.read(&mut back)?;
        assert_eq!(&back[..read], sent);
        assert!(pipe.is_empty());
        Ok::<_, io::Error>(read)
        // `pipe` drops here, in the task: given back, empty.
    });
    assert_eq!(task.await.expect("task panicked")?, 21);
    let stats = pool.stats();
    assert_eq!(stats.created, 1, "{stats:?}");
    assert_eq!(stats.in_use, 0, "the task gave the pipe back: {stats:?}");
    assert_eq!(stats.closed_dirty, 0, "it was empty: {stats:?}");
    Ok(())
}

/// One `CopyOptions` (an `Arc` of it) with an explicit pool and one
/// `Progress` drives several spawned relays at once; every relay's
/// `BidiReport` and the shared `Progress` add up to the bytes sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_copy_options_shared_by_spawned_relays() -> io::Result<()> {
    const RELAYS: usize = 4;
    const UP: usize = 300_000;
    const DOWN: usize = 120_000;

    let pool = PoolConfig::builder()
        .max_pipes(16)
        .build()
        .map_err(io::Error::from)?;
    let progress = Progress::new();
    let opts = Arc::new(
        CopyOptions::new()
            .pool(pool.clone())
            .progress(progress.clone())
            .idle_timeout(Some(Duration::from_secs(30))),
    );

    let mut tasks = Vec::new();
    for relay in 0..RELAYS {
        // client <-> (a, b: the relay) <-> server
        let (mut client, mut a) = tcp_pair().await?;
        let (mut b, mut server) = tcp_pair().await?;
        let opts = Arc::clone(&opts);
        let relay_task =
            tokio::spawn(async move { copy_bidirectional_with(&mut a, &mut b, &opts).await });
        let seed = relay as u8;
        let ends = tokio::spawn(async move {
            let up = pattern(seed, UP);
            let down = pattern(seed.wrapping_add(100), DOWN);
            let (client_side, server_side) = tokio::join!(
                async {
                    client.write_all(&up).await?;
                    client.shutdown().await?;
                    let mut got = Vec::new();
                    client.read_to_end(&mut got).await?;
                    Ok::<_, io::Error>(got)
                },
                async {
                    server.write_all(&down).await?;
                    server.shutdown().await?;
                    let mut got = Vec::new();
                    server.read_to_end(&mut got).await?;
                    Ok::<_, io::Error>(got)
                }
            );
            assert!(client_side? == down, "relay {seed}: client got other bytes");
            assert!(server_side? == up, "relay {seed}: server got other bytes");
            Ok::<_, io::Error>(())
        });
        tasks.push((relay_task, ends));
    }

    for (relay_task, ends) in tasks {
        ends.await.expect("end task panicked")?;
        let report = relay_task
            .await
            .expect("relay panicked")
            .map_err(io::Error::from)?;
        assert_eq!(report.a_to_b.bytes, UP as u64);
        assert_eq!(report.b_to_a.bytes, DOWN as u64);
        // Loopback TCP to loopback TCP: spliced through the explicit pool.
        assert_eq!(report.a_to_b.method, Method::Splice);
        assert_eq!(report.b_to_a.method, Method::Splice);
    }

    assert_eq!(progress.a_to_b(), (RELAYS * UP) as u64);
    assert_eq!(progress.b_to_a(), (RELAYS * DOWN) as u64);
    // Every byte is counted under the method that moved it. Most are
    // spliced; the last bytes of a direction, when they arrive together
    // with the peer's FIN after the direction had drained, are read through
    // the buffer to see the end of file without an extra call (counted as
    // Userspace; see the tokio module's docs), so the split is not exact.
    for (total, by_splice, by_user) in [
        (
            RELAYS * UP,
            progress.a_to_b_by(Method::Splice),
            progress.a_to_b_by(Method::Userspace),
        ),
        (
            RELAYS * DOWN,
            progress.b_to_a_by(Method::Splice),
            progress.b_to_a_by(Method::Userspace),
        ),
    ] {
        assert_eq!(by_splice + by_user, total as u64);
        assert!(
            by_splice >= total as u64 * 3 / 4,
            "mostly spliced: {by_splice} of {total}"
        );
    }

    let stats = pool.stats();
    assert!(
        stats.created >= 1,
        "the relays used the explicit pool: {stats:?}"
    );
    assert_eq!(stats.in_use, 0, "every pipe given back: {stats:?}");
    Ok(())
}

/// A file served over a spawned connection with `sendfile` (a range, the
/// way an HTTP server answers `Range`), and an upload written into a file
/// at an offset with one read feeding a second client (`tee`), all with
/// one shared `CopyOptions` and `Progress`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_file_range_and_fills_a_file_from_an_upload() -> io::Result<()> {
    use std::io::Write;

    let data = pattern(9, 2 << 20);
    let mut file = tempfile::tempfile()?;
    file.write_all(&data)?;
    let file = Arc::new(file);
    let progress = Progress::new();
    let opts = Arc::new(CopyOptions::new().progress(progress.clone()));

    // Download: bytes 1000..=1_500_999 of the file.
    let (server_side, mut client) = tcp_pair().await?;
    let send = tokio::spawn({
        let (file, opts) = (Arc::clone(&file), Arc::clone(&opts));
        async move { pipepool::tokio::sendfile_with(&*file, &server_side, 1000, 1_500_000, &opts).await }
    });
    let mut got = vec![0u8; 1_500_000];
    client.read_exact(&mut got).await?;
    let sent = send.await.expect("task")?;
    assert_eq!((sent.bytes, sent.method), (1_500_000, Method::Sendfile));
    assert_eq!(got, &data[1000..1_501_000]);
    assert_eq!(progress.a_to_b_by(Method::Sendfile), 1_500_000);

    // Upload into a cache file at offset 4096, answering a second client
    // from the same read.
    let (mut uploader, upload_side) = tcp_pair().await?;
    let (tee_side, mut second) = tcp_pair().await?;
    let cache = tempfile::tempfile()?;
    let upload = data.clone();
    tokio::spawn(async move { uploader.write_all(&upload).await });
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        second.read_to_end(&mut got).await.map(|_| got)
    });
    let filled = pipepool::tokio::copy_to_file_tee(
        &upload_side,
        &cache,
        4096,
        data.len() as u64,
        &tee_side,
        &opts,
    )
    .await?;
    drop(tee_side);
    assert_eq!(filled.bytes, data.len() as u64);
    assert_eq!(reader.await.expect("task")?, data);
    let mut stored = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(&cache, &mut stored, 4096)?;
    assert_eq!(stored, data);
    Ok(())
}

/// A user's own fd type: a connection with a name for the logs. It tells
/// pipepool its fd and readiness through `ReadyFd` (forwarding to the tokio
/// socket inside), and `FdIo` makes it something the copies splice.
struct Named {
    name: &'static str,
    socket: tokio::net::UnixStream,
}

impl std::os::fd::AsFd for Named {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl pipepool::tokio::ReadyFd for Named {
    fn poll_fd_ready(
        &self,
        cx: &mut std::task::Context<'_>,
        interest: tokio::io::Interest,
    ) -> std::task::Poll<io::Result<()>> {
        self.socket.poll_fd_ready(cx, interest)
    }

    fn try_fd_io(
        &self,
        interest: tokio::io::Interest,
        op: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        self.socket.try_fd_io(interest, op)
    }
}

/// The user's type, moved into a spawned relay, is spliced to a TCP
/// socket after a prefix (bytes the user had read from it first), with
/// exact counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_fd_type_spliced_after_a_prefix() -> io::Result<()> {
    let (mut user_peer, user_side) = tokio::net::UnixStream::pair()?;
    let (mut client, server_side) = tcp_pair().await?;
    let named = Named {
        name: "tunnel-1",
        socket: user_side,
    };
    let data = pattern(9, 700_000);
    let relay = tokio::spawn(async move {
        let opts = CopyOptions::new();
        let mut server_side = server_side;
        let report = pipepool::tokio::copy_bidirectional_with_prefix(
            &mut pipepool::tokio::FdIo::new(&named),
            &mut server_side,
            b"read-ahead ",
            b"",
            &opts,
        )
        .await?;
        Ok::<_, io::Error>((named.name, report))
    });
    let (mut r, mut w) = user_peer.split();
    let send = async {
        w.write_all(&data).await?;
        w.shutdown().await
    };
    let receive = async {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await?;
        client.shutdown().await?;
        Ok::<_, io::Error>(got)
    };
    let (sent, got) = tokio::join!(send, receive);
    sent?;
    let got = got?;
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).await?;
    let (name, report) = relay.await.expect("relay task")?;
    assert_eq!(name, "tunnel-1");
    assert_eq!(&got[..11], b"read-ahead ");
    assert!(got[11..] == data[..]);
    assert_eq!(report.a_to_b.bytes, 11 + data.len() as u64);
    assert_eq!(
        (report.a_to_b.method, report.b_to_a.bytes),
        (Method::Splice, 0)
    );
    Ok(())
}
