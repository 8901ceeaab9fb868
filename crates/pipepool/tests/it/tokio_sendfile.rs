//! `pipepool::tokio::sendfile`: real files on tmpfs (`/dev/shm`) and on the
//! disk filesystem of the temp dir, sizes from 0 bytes to beyond 4 GiB
//! (sparse files), ranges, a slow reader that forces `EAGAIN`, a file
//! truncated during the send, the peer closing mid-file, the fallback, and
//! cancellation.

#![cfg(feature = "tokio")]

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use pipepool::tokio::{sendfile, sendfile_with, CopyOptions, Progress};
use pipepool::Method;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

use crate::util::net::{within, Pairs};
use crate::util::pattern;

/// A temp file with `data`, in `dir` (`/dev/shm`: tmpfs; the temp dir:
/// the disk).
fn file_in(dir: &Path, data: &[u8]) -> File {
    let mut f = tempfile::tempfile_in(dir).expect("tempfile");
    f.write_all(data).expect("write");
    f
}

fn dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = vec![std::env::temp_dir()];
    if Path::new("/dev/shm").is_dir() {
        dirs.push("/dev/shm".into());
    }
    dirs
}

/// Sends `file[offset..offset+len]` over a unix socket pair and returns
/// (what the send reported, what the peer received).
async fn send_and_read(file: &File, offset: u64, len: u64) -> (pipepool::Transfer, Vec<u8>) {
    let (socket, mut peer) = UnixStream::pair().unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.map(|_| got)
    });
    let sent = within(60, "sendfile", sendfile(file, &socket, offset, len))
        .await
        .expect("sendfile");
    drop(socket);
    (sent, reader.await.unwrap().unwrap())
}

#[tokio::test]
async fn ranges_on_tmpfs_and_disk() {
    for dir in dirs() {
        for size in [0usize, 1, 4096, 65_536 + 3, 3 << 20] {
            let data = pattern(size);
            let file = file_in(&dir, &data);
            let ranges = [
                (0, u64::MAX),
                (0, size as u64),
                (1, 10),
                (size as u64 / 2, 70_000),
                (size as u64, 5),     // at the end: nothing
                (size as u64 + 9, 5), // past the end: nothing
                (0, 0),
            ];
            for (offset, len) in ranges {
                let (sent, got) = send_and_read(&file, offset, len).await;
                let start = (offset as usize).min(size);
                let end = (offset.saturating_add(len)).min(size as u64) as usize;
                let end = end.max(start);
                assert_eq!(
                    got,
                    &data[start..end],
                    "{dir:?} size {size} range {offset}+{len}"
                );
                assert_eq!(sent.bytes, got.len() as u64);
                assert_eq!(
                    sent.method,
                    Method::Sendfile,
                    "{dir:?} size {size} {offset}+{len}"
                );
            }
        }
    }
}

/// Offsets past 2 GiB and 4 GiB (32-bit truncation would read the wrong
/// place), and one send of more than 2 GiB (more than one `sendfile` call:
/// the kernel caps a call at 0x7ffff000 bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_2_and_4_gib() {
    for dir in dirs() {
        let file = tempfile::tempfile_in(&dir).unwrap();
        let big = (4u64 << 30) + 8192;
        file.set_len(big).unwrap();
        let marks = [(1u64 << 31) - 10, (1u64 << 32) - 7, (1u64 << 32) + 100];
        for (i, &at) in marks.iter().enumerate() {
            file.write_all_at(&crate::util::pattern_of(i as u64, 64), at)
                .unwrap();
        }
        for (i, &at) in marks.iter().enumerate() {
            let (sent, got) = send_and_read(&file, at, 64).await;
            assert_eq!(sent.bytes, 64);
            assert_eq!(
                got,
                crate::util::pattern_of(i as u64, 64),
                "{dir:?} at {at}"
            );
        }
        // The tail past 4 GiB, to the end of the file.
        let (sent, got) = send_and_read(&file, big - 4000, u64::MAX).await;
        assert_eq!((sent.bytes, got.len()), (4000, 4000));

        // 2 GiB + 1 MiB in one send, counted by a reader that discards.
        let total = (2u64 << 30) + (1 << 20);
        let (socket, mut peer) = UnixStream::pair().unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 20];
            let mut n = 0u64;
            loop {
                match peer.read(&mut buf).await.unwrap() {
                    0 => return n,
                    k => n += k as u64,
                }
            }
        });
        let sent = within(
            120,
            "2 GiB sendfile",
            sendfile(&file, &socket, 1 << 30, total),
        )
        .await
        .unwrap();
        drop(socket);
        assert_eq!(sent.bytes, total);
        assert_eq!(reader.await.unwrap(), total);
        if dir != std::env::temp_dir() {
            break; // once is enough for the big send
        }
    }
}

/// A reader that takes small bites with pauses: the socket fills, the send
/// waits for writability (`EAGAIN`) many times, and every byte arrives in
/// order.
#[tokio::test]
async fn slow_reader_forces_eagain() {
    let data = pattern(4 << 20);
    let file = file_in(&std::env::temp_dir(), &data);
    let (socket, mut peer) = UnixStream::pair().unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 32 * 1024];
        loop {
            match peer.read(&mut buf).await.unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
            if got.len() % (256 * 1024) < 32 * 1024 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let progress = Progress::new();
    let opts = CopyOptions::new().progress(progress.clone());
    let sent = within(
        60,
        "slow sendfile",
        sendfile_with(&file, &socket, 0, u64::MAX, &opts),
    )
    .await
    .unwrap();
    drop(socket);
    assert_eq!(sent.bytes, data.len() as u64);
    assert_eq!(progress.a_to_b_by(Method::Sendfile), data.len() as u64);
    assert_eq!(reader.await.unwrap(), data);
}

/// The file shrinks while the send waits on a full socket: the send ends
/// with a short count equal to what the peer got, and does not hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_truncated_during_send() {
    for dir in dirs() {
        let size = 32usize << 20;
        let data = pattern(size);
        let file = file_in(&dir, &data);
        let (socket, mut peer) = UnixStream::pair().unwrap();
        let progress = Progress::new();
        let opts = CopyOptions::new().progress(progress.clone());
        let truncater = file.try_clone().unwrap();
        let send = tokio::spawn(async move {
            let r = sendfile_with(&file, &socket, 0, u64::MAX, &opts).await;
            drop(socket);
            r
        });
        // Let the socket fill, then cut the file to 1 MiB.
        within(10, "first bytes", async {
            while progress.a_to_b() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        truncater.set_len(1 << 20).unwrap();
        let mut got = Vec::new();
        within(30, "read after truncation", peer.read_to_end(&mut got))
            .await
            .unwrap();
        let sent = within(30, "truncated send", send).await.unwrap().unwrap();
        assert_eq!(sent.bytes, got.len() as u64, "{dir:?}");
        assert!(got.len() < size, "{dir:?}: the whole file was sent");
        assert_eq!(got, &data[..got.len()], "{dir:?}");
        assert_eq!(progress.a_to_b(), sent.bytes);
    }
}

/// The peer reads a little and closes: the send fails (`EPIPE` or
/// `ECONNRESET`) and reports the bytes it sent, as `Progress` does.
#[tokio::test]
async fn peer_closes_mid_file() {
    let data = pattern(16 << 20);
    let file = file_in(&std::env::temp_dir(), &data);
    let pairs = Pairs::new();
    let (socket, mut peer) = pairs.pair().await;
    let progress = Progress::new();
    let opts = CopyOptions::new().progress(progress.clone());
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 100_000];
        peer.read_exact(&mut buf).await.unwrap();
        buf
    });
    let err = within(
        30,
        "send to a closed peer",
        sendfile_with(&file, &socket, 0, u64::MAX, &opts),
    )
    .await
    .expect_err("the peer closed");
    assert_eq!(reader.await.unwrap(), &data[..100_000]);
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    assert!(err.transfer().bytes >= 100_000 && err.transfer().bytes < data.len() as u64);
    assert_eq!(err.transfer().bytes, progress.a_to_b());
    assert_eq!(err.transfer().method, Method::Sendfile);
}

/// Dropping the send mid-file loses no counted byte: the peer gets exactly
/// what `Progress` counted, and it is the file's prefix.
#[tokio::test]
async fn cancellation_loses_no_counted_byte() {
    let data = pattern(16 << 20);
    let file = file_in(&std::env::temp_dir(), &data);
    let (socket, mut peer) = UnixStream::pair().unwrap();
    let progress = Progress::new();
    let opts = CopyOptions::new().progress(progress.clone());
    // Nobody reads: the socket fills and the send waits, then is dropped.
    let cut = tokio::time::timeout(
        Duration::from_millis(200),
        sendfile_with(&file, &socket, 0, u64::MAX, &opts),
    )
    .await;
    assert!(cut.is_err(), "the send should still be waiting");
    drop(socket);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).await.unwrap();
    assert!(!got.is_empty());
    assert_eq!(got.len() as u64, progress.a_to_b());
    assert_eq!(got, &data[..got.len()]);
}

/// `zero_copy(false)` takes the `pread`/`write` path and says so; a
/// `tokio::fs::File` works as the source; a procfs file (size 0) is sent
/// whole.
#[tokio::test]
async fn fallback_tokio_file_and_procfs() {
    let data = pattern(300_000);
    let file = file_in(&std::env::temp_dir(), &data);
    let (socket, mut peer) = UnixStream::pair().unwrap();
    let opts = CopyOptions::new().zero_copy(false).buffer_size(4096);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.map(|_| got)
    });
    let sent = sendfile_with(&file, &socket, 10, 200_000, &opts)
        .await
        .unwrap();
    drop(socket);
    assert_eq!((sent.bytes, sent.method), (200_000, Method::Userspace));
    assert_eq!(reader.await.unwrap().unwrap(), &data[10..200_010]);

    let tokio_file = tokio::fs::File::from_std(file.try_clone().unwrap());
    let (sent, _) = {
        let (socket, mut peer) = UnixStream::pair().unwrap();
        let sent = sendfile(&tokio_file, &socket, 0, 1000).await.unwrap();
        drop(socket);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, &data[..1000]);
        (sent, got)
    };
    assert_eq!(sent.method, Method::Sendfile);

    let proc = File::open("/proc/version").unwrap();
    let expected = std::fs::read("/proc/version").unwrap();
    let (sent, got) = send_and_read(&proc, 0, u64::MAX).await;
    assert_eq!(got, expected);
    assert_eq!(sent.bytes, expected.len() as u64);
}
