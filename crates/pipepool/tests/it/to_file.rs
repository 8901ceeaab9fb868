//! Socket -> file: the sync [`pipepool::ToFile`] and the async
//! `pipepool::tokio::copy_to_file` / `copy_to_file_tee`, into real files on
//! tmpfs and on the disk, at offsets past 2 GiB, with a limit, a second
//! destination (`tee`), a slow sender and a slow second reader, TCP urgent
//! data, the fallback for a file that refuses splice, and cancellation.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;

use crate::util::pattern;
use pipepool::{Method, PoolConfig, ToFile};

fn dirs() -> Vec<PathBuf> {
    let mut dirs = vec![std::env::temp_dir()];
    if Path::new("/dev/shm").is_dir() {
        dirs.push("/dev/shm".into());
    }
    dirs
}

fn read_at(file: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

/// A thread that writes `data` into one end of a socket pair, in pieces,
/// and closes it; the other end is returned.
fn sender(data: Vec<u8>, piece: usize) -> (UnixStream, thread::JoinHandle<()>) {
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let t = thread::spawn(move || {
        for chunk in data.chunks(piece) {
            tx.write_all(chunk).unwrap();
        }
    });
    (rx, t)
}

#[test]
fn sync_into_files_at_offsets() {
    for dir in dirs() {
        for (size, offset) in [
            (0usize, 0u64),
            (1, 7),
            (3 << 20, 4096),
            (100_000, (1 << 31) + 3),
        ] {
            let data = pattern(size);
            let (rx, t) = sender(data.clone(), 50_000);
            let file = tempfile::tempfile_in(&dir).unwrap();
            let got = ToFile::new().copy(&rx, &file, offset, u64::MAX).unwrap();
            t.join().unwrap();
            assert_eq!(got.bytes, size as u64, "{dir:?}");
            assert_eq!(got.method, Method::Splice);
            let len = if size == 0 { 0 } else { offset + size as u64 };
            assert_eq!(file.metadata().unwrap().len(), len);
            assert_eq!(read_at(&file, offset, size), data, "{dir:?} at {offset}");
        }
    }
}

/// A limit stops the copy there; what follows stays in the socket.
#[test]
fn sync_limit_leaves_the_rest() {
    let data = pattern(500_000);
    let (mut rx, t) = sender(data.clone(), 500_000);
    let file = tempfile::tempfile().unwrap();
    let got = ToFile::new().copy(&rx, &file, 0, 123_456).unwrap();
    assert_eq!(got.bytes, 123_456);
    assert_eq!(read_at(&file, 0, 123_456), &data[..123_456]);
    let mut rest = Vec::new();
    rx.read_to_end(&mut rest).unwrap();
    t.join().unwrap();
    assert_eq!(rest, &data[123_456..]);
}

/// `tee`: the file and a second socket get the same bytes, the second one
/// read slowly (it fills, and the copy waits for it).
#[test]
fn sync_tee_into_a_socket() {
    let data = pattern(6 << 20);
    let (rx, t) = sender(data.clone(), 100_000);
    let (tee_tx, mut tee_rx) = UnixStream::pair().unwrap();
    let slow = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match tee_rx.read(&mut buf).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
            thread::sleep(std::time::Duration::from_micros(200));
        }
    });
    let file = tempfile::tempfile().unwrap();
    let pool = PoolConfig::builder().build().unwrap();
    let got = ToFile::new()
        .pool(pool.clone())
        .tee(tee_tx.as_fd())
        .copy(&rx, &file, 10, u64::MAX)
        .unwrap();
    drop(tee_tx);
    t.join().unwrap();
    assert_eq!((got.bytes, got.method), (data.len() as u64, Method::Splice));
    assert_eq!(read_at(&file, 10, data.len()), data);
    assert_eq!(slow.join().unwrap(), data);
    // Both pipes went back to the pool empty.
    assert_eq!(pool.stats().closed_dirty, 0);
}

/// A file opened `O_APPEND` refuses splice (`EINVAL`): the copy goes
/// through memory and says so, with the tee still served.
#[test]
fn append_file_falls_back() {
    let data = pattern(2 << 20);
    let (rx, t) = sender(data.clone(), 70_000);
    let path = tempfile::NamedTempFile::new().unwrap();
    let file = OpenOptions::new().append(true).open(path.path()).unwrap();
    let (tee_tx, mut tee_rx) = UnixStream::pair().unwrap();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        tee_rx.read_to_end(&mut got).unwrap();
        got
    });
    let got = ToFile::new()
        .tee(tee_tx.as_fd())
        .copy(&rx, &file, 0, u64::MAX)
        .unwrap();
    drop(tee_tx);
    t.join().unwrap();
    assert_eq!(
        (got.bytes, got.method),
        (data.len() as u64, Method::Userspace)
    );
    assert_eq!(std::fs::read(path.path()).unwrap(), data);
    assert_eq!(reader.join().unwrap(), data);
}

/// `zero_copy(false)` goes through memory.
#[test]
fn sync_forced_userspace() {
    let data = pattern(300_000);
    let (rx, t) = sender(data.clone(), 30_000);
    let file = tempfile::tempfile().unwrap();
    let got = ToFile::new()
        .zero_copy(false)
        .copy(&rx, &file, 5, u64::MAX)
        .unwrap();
    t.join().unwrap();
    assert_eq!((got.bytes, got.method), (300_000, Method::Userspace));
    assert_eq!(read_at(&file, 5, data.len()), data);
}

/// TCP urgent data in the middle: the file gets the in-band bytes, in
/// order, as `read(2)` would give them (the urgent byte not inline).
#[test]
fn sync_tcp_urgent_byte() {
    use rustix::net::SendFlags;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (rx, _) = listener.accept().unwrap();
    let a = pattern(200_000);
    let b = crate::util::pattern_of(1, 100_000);
    let (a2, b2) = (a.clone(), b.clone());
    let t = thread::spawn(move || {
        tx.write_all(&a2).unwrap();
        rustix::net::send(&tx, b"!", SendFlags::OOB).unwrap();
        tx.write_all(&b2).unwrap();
    });
    let file = tempfile::tempfile().unwrap();
    let got = ToFile::new().copy(&rx, &file, 0, u64::MAX).unwrap();
    t.join().unwrap();
    let expected = [a, b].concat();
    assert_eq!(got.bytes, expected.len() as u64);
    assert_eq!(read_at(&file, 0, expected.len()), expected);
}

#[cfg(feature = "tokio")]
mod async_to_file {
    use super::*;
    use crate::util::net::{within, Pairs};
    use pipepool::tokio::{copy_to_file, copy_to_file_tee, CopyOptions, Progress};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn tcp_upload_into_files() {
        let pairs = Pairs::new();
        for dir in dirs() {
            let data = pattern(5 << 20);
            let (mut client, server) = pairs.pair().await;
            let upload = data.clone();
            let writer = tokio::spawn(async move {
                for chunk in upload.chunks(256 * 1024) {
                    client.write_all(chunk).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let file = tempfile::tempfile_in(&dir).unwrap();
            let progress = Progress::new();
            let opts = CopyOptions::new().progress(progress.clone());
            let at = (1u64 << 32) + 1;
            let got = within(
                60,
                "upload",
                copy_to_file(&server, &file, at, u64::MAX, &opts),
            )
            .await
            .unwrap();
            writer.await.unwrap();
            assert_eq!((got.bytes, got.method), (data.len() as u64, Method::Splice));
            assert_eq!(progress.a_to_b_by(Method::Splice), data.len() as u64);
            assert_eq!(read_at(&file, at, data.len()), data, "{dir:?}");
        }
    }

    /// One read fills the file and answers a second, slow client.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tee_to_a_slow_socket() {
        let data = pattern(8 << 20);
        let (mut client, server) = tokio::net::UnixStream::pair().unwrap();
        let (tee, mut second) = tokio::net::UnixStream::pair().unwrap();
        let upload = data.clone();
        let writer = tokio::spawn(async move { client.write_all(&upload).await.unwrap() });
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 32 * 1024];
            loop {
                match second.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
                if got.len() % (1 << 20) < 32 * 1024 {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }
        });
        let file = tempfile::tempfile().unwrap();
        let opts = CopyOptions::new();
        let got = within(
            60,
            "tee",
            copy_to_file_tee(&server, &file, 0, u64::MAX, &tee, &opts),
        )
        .await
        .unwrap();
        drop(tee);
        writer.await.unwrap();
        assert_eq!(got.bytes, data.len() as u64);
        assert_eq!(read_at(&file, 0, data.len()), data);
        assert_eq!(reader.await.unwrap(), data);
    }

    /// Dropping the copy while it waits for more loses nothing counted:
    /// the file holds exactly the counted bytes, and the rest is still in
    /// the socket.
    #[tokio::test]
    async fn cancellation_keeps_counted_bytes_in_the_file() {
        let data = pattern(3 << 20);
        let (mut client, server) = tokio::net::UnixStream::pair().unwrap();
        let first = data[..1 << 20].to_vec();
        let writer = tokio::spawn(async move {
            client.write_all(&first).await.unwrap();
            client
        });
        let file = tempfile::tempfile().unwrap();
        let progress = Progress::new();
        let opts = CopyOptions::new().progress(progress.clone());
        // Boxed, so that `drop` really drops the future.
        let mut copy = Box::pin(copy_to_file(&server, &file, 0, u64::MAX, &opts));
        within(30, "first MiB", async {
            while progress.a_to_b() < 1 << 20 {
                tokio::select! {
                    r = &mut copy => panic!("the copy ended: {r:?}"),
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        })
        .await;
        drop(copy);
        let mut client = writer.await.unwrap();
        assert_eq!(progress.a_to_b(), 1 << 20);
        assert_eq!(read_at(&file, 0, 1 << 20), &data[..1 << 20]);
        // The copy can start again where it stopped.
        let rest = data[1 << 20..].to_vec();
        let writer = tokio::spawn(async move { client.write_all(&rest).await.unwrap() });
        let got = within(
            30,
            "the rest",
            copy_to_file(&server, &file, 1 << 20, u64::MAX, &opts),
        )
        .await
        .unwrap();
        writer.await.unwrap();
        assert_eq!(got.bytes, 2 << 20);
        assert_eq!(progress.a_to_b(), 3 << 20);
        assert_eq!(read_at(&file, 0, data.len()), data);
    }

    /// The uploader resets the connection mid-way: the error carries the
    /// bytes in the file.
    #[tokio::test]
    async fn uploader_resets() {
        let pairs = Pairs::new();
        let (client, server) = pairs.pair().await;
        let data = pattern(1 << 20);
        let file = tempfile::tempfile().unwrap();
        let upload = data.clone();
        let writer = tokio::spawn(async move {
            let mut client = client;
            client.write_all(&upload).await.unwrap();
            client.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            // SO_LINGER 0: close sends a reset.
            client.set_zero_linger().unwrap();
            drop(client);
        });
        let opts = CopyOptions::new();
        let err = within(
            30,
            "reset",
            copy_to_file(&server, &file, 0, u64::MAX, &opts),
        )
        .await
        .expect_err("reset");
        writer.await.unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        assert_eq!(err.transfer().bytes, data.len() as u64);
        assert_eq!(read_at(&file, 0, data.len()), data);
    }
}
