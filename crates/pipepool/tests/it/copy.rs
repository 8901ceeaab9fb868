//! `copy` correctness for every fd-pair kind, on the zero-copy path and on
//! the forced buffered path: SHA-256 of what went in equals SHA-256 of what
//! came out, at sizes 0, 1, 4095, 65536, 1 MiB + 1 and 64 MiB.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::thread;

use pipepool::{Copier, CopyError, Method, PipePool, PoolConfig};
use sha2::{Digest, Sha256};

use crate::util;

const SIZES: &[usize] = &[0, 1, 4095, 65536, (1 << 20) + 1, 64 << 20];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Socket,
    File,
    Pipe,
}

/// Deterministic, position-dependent bytes (so a dropped, repeated or
/// reordered chunk changes the hash).
fn data(len: usize, seed: u8) -> Vec<u8> {
    util::pattern_of(seed.into(), len)
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    (a, b)
}

/// The source end: an fd to copy from, and a feeder thread (for sockets and
/// pipes) that writes `payload` into its other end, then closes it.
fn source(
    kind: Kind,
    payload: &[u8],
    nonblocking: bool,
) -> (OwnedFd, Option<thread::JoinHandle<()>>) {
    match kind {
        Kind::File => {
            let mut f = tempfile::tempfile().unwrap();
            f.write_all(payload).unwrap();
            f.rewind().unwrap();
            (f.into(), None)
        }
        Kind::Socket => {
            let (mut feed, src) = tcp_pair();
            src.set_nonblocking(nonblocking).unwrap();
            let payload = payload.to_vec();
            // Errors are left to the hash check: a copy with a limit closes
            // the source before the feeder is done.
            let t = thread::spawn(move || {
                let _ = feed.write_all(&payload);
                let _ = feed.shutdown(Shutdown::Write);
            });
            (src.into(), Some(t))
        }
        Kind::Pipe => {
            let (src, mut feed) = io::pipe().unwrap();
            let payload = payload.to_vec();
            let t = thread::spawn(move || {
                let _ = feed.write_all(&payload);
            });
            (src.into(), Some(t))
        }
    }
}

/// The destination end: an fd to copy into, and a way to get the SHA-256
/// of what arrived once the copy is done and the fd closed.
enum Sink {
    File(File),
    Reader(thread::JoinHandle<[u8; 32]>),
}

fn sink(kind: Kind, nonblocking: bool) -> (OwnedFd, Sink) {
    fn hash_all(mut r: impl Read) -> [u8; 32] {
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        sha(&all)
    }
    match kind {
        Kind::File => {
            let f = tempfile::tempfile().unwrap();
            (f.try_clone().unwrap().into(), Sink::File(f))
        }
        Kind::Socket => {
            let (dst, drain) = tcp_pair();
            dst.set_nonblocking(nonblocking).unwrap();
            (
                dst.into(),
                Sink::Reader(thread::spawn(move || hash_all(drain))),
            )
        }
        Kind::Pipe => {
            let (drain, dst) = io::pipe().unwrap();
            (
                dst.into(),
                Sink::Reader(thread::spawn(move || hash_all(drain))),
            )
        }
    }
}

impl Sink {
    /// Closes the destination fd (EOF for the reader) and hashes what came.
    fn finish(self, dst: OwnedFd) -> [u8; 32] {
        drop(dst);
        match self {
            Sink::File(mut f) => {
                f.rewind().unwrap();
                let mut all = Vec::new();
                f.read_to_end(&mut all).unwrap();
                sha(&all)
            }
            Sink::Reader(t) => t.join().unwrap(),
        }
    }
}

/// The method the zero-copy path must pick for a pair.
fn expected_method(src: Kind, dst: Kind) -> Method {
    match (src, dst) {
        (Kind::File, Kind::File) => Method::CopyFileRange,
        (Kind::File, _) => Method::Sendfile,
        _ => Method::Splice,
    }
}

fn run_case(
    pool: &PipePool,
    src_kind: Kind,
    dst_kind: Kind,
    size: usize,
    zero_copy: bool,
    nonblocking: bool,
) {
    let payload = data(size, size as u8);
    let (src, feeder) = source(src_kind, &payload, nonblocking);
    let (dst, sink) = sink(dst_kind, nonblocking);
    let t = Copier::new()
        .pool(pool.clone())
        .zero_copy(zero_copy)
        .copy(&src, &dst)
        .unwrap_or_else(|e| panic!("{src_kind:?} -> {dst_kind:?}, {size} bytes: {e}"));
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    let got = sink.finish(dst);
    let what = format!("{src_kind:?} -> {dst_kind:?}, {size} bytes, zero_copy={zero_copy}");
    assert_eq!(t.bytes, size as u64, "{what}: byte count");
    assert_eq!(got, sha(&payload), "{what}: SHA-256 differs");
    let want = if zero_copy {
        expected_method(src_kind, dst_kind)
    } else {
        Method::Userspace
    };
    // An empty file source is reported by the method that saw the EOF.
    if size > 0 || src_kind != Kind::File {
        assert_eq!(t.method, want, "{what}: method");
    }
}

fn all_pairs(zero_copy: bool, nonblocking: bool) {
    // No reclaim during the run: the count of pipes created below is about
    // reuse, and on a slow machine the 27 cases (up to 64 MiB each, in a
    // debug build) can leave a pipe idle past the default 10 s.
    let pool = PoolConfig::builder()
        .max_pipes(8)
        .idle_timeout(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let kinds = [Kind::Socket, Kind::File, Kind::Pipe];
    for &s in &kinds {
        for &d in &kinds {
            for &size in SIZES {
                run_case(&pool, s, d, size, zero_copy, nonblocking);
            }
        }
    }
    let st = pool.stats();
    assert_eq!(st.in_use, 0, "{st:?}");
    assert_eq!(st.closed_dirty, 0, "{st:?}");
    if zero_copy {
        // socket->socket and socket->file went through pooled pipes, reused.
        assert!(st.created >= 1 && st.created <= 2, "{st:?}");
    } else {
        assert_eq!(
            st.created, 0,
            "the forced fallback must not touch the pool: {st:?}"
        );
    }
}

#[test]
fn every_pair_zero_copy() {
    all_pairs(true, false);
}

#[test]
fn every_pair_forced_fallback() {
    all_pairs(false, false);
}

#[test]
fn every_pair_nonblocking_sockets() {
    all_pairs(true, true);
}

#[test]
fn copy_n_stops_at_the_limit_and_leaves_the_rest() {
    let pool = PoolConfig::builder().build().unwrap();
    for zero_copy in [true, false] {
        for kind in [Kind::Socket, Kind::File, Kind::Pipe] {
            let payload = data(300_000, 3);
            let (src, feeder) = source(kind, &payload, false);
            let (dst, sink) = sink(Kind::File, false);
            let t = Copier::new()
                .pool(pool.clone())
                .zero_copy(zero_copy)
                .limit(100_001)
                .copy(&src, &dst)
                .unwrap();
            assert_eq!(t.bytes, 100_001, "{kind:?}");
            assert_eq!(sink.finish(dst), sha(&payload[..100_001]), "{kind:?}");
            // What was not copied is still there to read.
            let mut rest = Vec::new();
            File::from(src).read_to_end(&mut rest).unwrap();
            assert_eq!(rest, payload[100_001..], "{kind:?} zero_copy={zero_copy}");
            if let Some(f) = feeder {
                f.join().unwrap();
            }
        }
    }
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn free_functions_use_the_global_pool() {
    let payload = data(200_000, 9);
    let (src, feeder) = source(Kind::Socket, &payload, false);
    let (dst, sink) = sink(Kind::Socket, false);
    let before = PipePool::global().stats().gets_local
        + PipePool::global().stats().gets_shared
        + PipePool::global().stats().gets_new;
    assert_eq!(pipepool::copy(&src, &dst).unwrap(), 200_000);
    let after = PipePool::global().stats();
    assert!(
        after.gets_local + after.gets_shared + after.gets_new > before,
        "{after:?}"
    );
    feeder.unwrap().join().unwrap();
    assert_eq!(sink.finish(dst), sha(&payload));

    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&payload).unwrap();
    f.rewind().unwrap();
    let out = tempfile::tempfile().unwrap();
    assert_eq!(pipepool::copy_n(&f, &out, 10).unwrap(), 10);
}

/// A destination that refuses splice (`O_APPEND` files answer `EINVAL`):
/// the copy falls back to memory without losing the bytes already spliced
/// into the pooled pipe.
#[test]
fn destination_refusing_splice_falls_back_without_loss() {
    let pool = PoolConfig::builder().build().unwrap();
    let payload = data(3 << 20, 5);
    let (src, feeder) = source(Kind::Socket, &payload, false);
    let path = tempfile::NamedTempFile::new().unwrap();
    let dst = std::fs::OpenOptions::new()
        .append(true)
        .open(path.path())
        .unwrap();
    let t = Copier::new().pool(pool.clone()).copy(&src, &dst).unwrap();
    feeder.unwrap().join().unwrap();
    assert_eq!(t.bytes, payload.len() as u64);
    let got = std::fs::read(path.path()).unwrap();
    assert_eq!(sha(&got), sha(&payload));
    let st = pool.stats();
    assert_eq!((st.in_use, st.closed_dirty), (0, 0), "{st:?}");
}

/// A copy that fails midway reports the bytes it delivered, and the pipe
/// that still held bytes is closed, not pooled.
#[test]
fn failure_midway_reports_bytes_and_closes_the_dirty_pipe() {
    let pool = PoolConfig::builder().pipe_size(64 * 1024).build().unwrap();
    let (mut feed, src) = tcp_pair();
    let (dst, peer) = tcp_pair();
    // The destination's peer reads 100 000 bytes, then resets.
    let reader = thread::spawn(move || {
        let mut peer = peer;
        let mut buf = vec![0u8; 100_000];
        peer.read_exact(&mut buf).unwrap();
        let sock = socket_linger_zero(peer);
        drop(sock);
    });
    let feeder = thread::spawn(move || {
        // Keep sending until the copy breaks and closes `src`.
        let chunk = vec![1u8; 64 * 1024];
        while feed.write_all(&chunk).is_ok() {}
    });
    let err: CopyError = Copier::new()
        .pool(pool.clone())
        .copy(&src, &dst)
        .unwrap_err();
    reader.join().unwrap();
    assert!(err.transfer().bytes >= 100_000, "{err}");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    let io_err: io::Error = err.into();
    assert!(CopyError::from_io(&io_err).is_some());
    drop(src);
    feeder.join().unwrap();
    let st = pool.stats();
    assert_eq!(st.in_use, 0, "{st:?}");
    // The out-splice only runs with bytes in the pipe, so the error left
    // the pipe dirty: it was closed, not pooled.
    assert_eq!(st.live, st.idle, "{st:?}");
    assert_eq!(st.closed_dirty, 1, "{st:?}");
}

/// Sets `SO_LINGER {on, 0}` so that closing sends a RST.
fn socket_linger_zero(s: TcpStream) -> TcpStream {
    rustix::net::sockopt::set_socket_linger(s.as_fd(), Some(std::time::Duration::ZERO)).unwrap();
    s
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever the size, the limit, the source kind, the pipe size and
        /// the path, `copy` delivers exactly the first `min(size, limit)`
        /// bytes, in order, and leaves the pool clean.
        #[test]
        fn delivers_exactly_the_prefix(
            size in 0usize..400_000,
            limit in proptest::option::of(0u64..500_000),
            src_kind in prop_oneof![Just(Kind::Socket), Just(Kind::File), Just(Kind::Pipe)],
            dst_kind in prop_oneof![Just(Kind::Socket), Just(Kind::File), Just(Kind::Pipe)],
            pipe_pages in 1usize..64,
            zero_copy in any::<bool>(),
        ) {
            let pool = PoolConfig::builder().pipe_size(pipe_pages * 4096).build().unwrap();
            let payload = data(size, size as u8 ^ 0x55);
            let (src, feeder) = source(src_kind, &payload, false);
            let (dst, sink) = sink(dst_kind, false);
            let mut copier = Copier::new().pool(pool.clone()).zero_copy(zero_copy);
            if let Some(l) = limit {
                copier = copier.limit(l);
            }
            let t = copier.copy(&src, &dst).unwrap();
            let want = limit.map_or(size, |l| size.min(l as usize));
            // Unblock a feeder still writing past the limit.
            drop(src);
            if let Some(f) = feeder {
                f.join().unwrap();
            }
            prop_assert_eq!(t.bytes, want as u64);
            prop_assert_eq!(sink.finish(dst), sha(&payload[..want]));
            let st = pool.stats();
            prop_assert_eq!((st.in_use, st.closed_dirty), (0, 0));
        }
    }
}
