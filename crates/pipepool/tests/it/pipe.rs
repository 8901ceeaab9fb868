//! `Pipe` against the kernel: flags, real capacity, exact byte count, and
//! splicing through real sockets.
//!
//! These tests count no fds (a pipe is identified by its inode in
//! `/proc/self/fd`), so they run in parallel.

use crate::util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

use pipepool::{Pipe, PoolConfig};

const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u32 = 0o2000000;

fn assert_common_flags(pipe: &Pipe) {
    let (r, w) = pipe.raw_fds();
    for fd in [r, w] {
        assert!(
            util::is_cloexec(fd),
            "fd {fd}: FD_CLOEXEC not set (F_GETFD)"
        );
        assert!(
            util::is_nonblocking(fd),
            "fd {fd}: O_NONBLOCK not set (F_GETFL)"
        );
        let flags = util::fdinfo_flags(fd);
        assert_ne!(
            flags & O_NONBLOCK,
            0,
            "fd {fd}: fdinfo flags {flags:o} lack O_NONBLOCK"
        );
        assert_ne!(
            flags & O_CLOEXEC,
            0,
            "fd {fd}: fdinfo flags {flags:o} lack O_CLOEXEC"
        );
    }
    // raw_fds is (read end, write end).
    assert_eq!(
        util::fdinfo_flags(r) & O_ACCMODE,
        0,
        "first fd is not the read end"
    );
    assert_eq!(
        util::fdinfo_flags(w) & O_ACCMODE,
        O_WRONLY,
        "second fd is not the write end"
    );
}

#[test]
fn both_ends_are_cloexec_and_nonblocking() {
    assert_common_flags(&Pipe::with_size(64 * 1024).unwrap());
    assert_common_flags(&Pipe::new().unwrap());
    let pool = PoolConfig::builder().max_pipes(2).build().unwrap();
    assert_common_flags(&pool.get().unwrap());
}

#[test]
fn capacity_is_the_size_the_kernel_set() {
    let page = util::page_size();
    for (asked, expected) in [
        (1, page),
        (page, page),
        (65_536, 65_536),
        (100_000, 131_072),
        (1 << 20, 1 << 20),
        // Past pipe-max-size: granted with CAP_SYS_RESOURCE, else EPERM
        // and the pipe keeps its real (default) size.
        (1 << 20 | 1, 2 << 20),
    ] {
        let pipe = Pipe::with_size(asked).unwrap();
        let (r, w) = pipe.raw_fds();
        assert_eq!(
            pipe.capacity(),
            util::pipe_size(w),
            "asked {asked}: capacity() != F_GETPIPE_SZ"
        );
        assert_eq!(util::pipe_size(r), util::pipe_size(w));
        if pipe.got_requested_size() {
            assert_eq!(pipe.capacity(), expected, "asked {asked}");
        } else {
            let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(
                asked > max,
                "asked {asked} (<= pipe-max-size {max}) was refused"
            );
            assert!(pipe.capacity() < asked);
        }
        assert!(pipe.is_empty());
        assert_eq!(pipe.kernel_len().unwrap(), 0);
    }
    let pool = PoolConfig::builder()
        .max_pipes(1)
        .pipe_size(100_000)
        .build()
        .unwrap();
    let pipe = pool.get().unwrap();
    assert_eq!(pipe.capacity(), 131_072);
    assert_eq!(util::pipe_size(pipe.raw_fds().1), 131_072);
    assert_eq!(pool.stats().capacity_bytes, 131_072);
}

fn assert_len(pipe: &Pipe, expected: usize) {
    assert_eq!(pipe.len(), expected, "len()");
    assert_eq!(
        pipe.kernel_len().unwrap(),
        expected,
        "kernel_len() (FIONREAD)"
    );
    assert_eq!(pipe.is_empty(), expected == 0);
}

#[test]
fn len_is_exact_through_writes_and_reads() {
    let mut pipe = Pipe::with_size(65_536).unwrap();
    assert_len(&pipe, 0);
    assert_eq!(pipe.write(&util::pattern(1000)).unwrap(), 1000);
    assert_len(&pipe, 1000);
    let mut buf = [0u8; 300];
    assert_eq!(pipe.read(&mut buf).unwrap(), 300);
    assert_eq!(&buf[..], &util::pattern(1000)[..300]);
    assert_len(&pipe, 700);

    // Drain, then fill to the brim with page-sized writes (a write does not
    // top up a partly used page): the pipe holds exactly its capacity, then
    // refuses.
    while !pipe.is_empty() {
        pipe.read(&mut [0u8; 512]).unwrap();
    }
    assert_len(&pipe, 0);
    let chunk = vec![7u8; util::page_size()];
    loop {
        match pipe.write(&chunk) {
            Ok(n) => assert!(n > 0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    assert_len(&pipe, pipe.capacity());

    let mut out = vec![0u8; 8192];
    let mut drained = 0;
    while !pipe.is_empty() {
        let n = pipe.read(&mut out).unwrap();
        assert!(n > 0);
        drained += n;
        assert_len(&pipe, pipe.capacity() - drained);
    }
    assert_eq!(drained, pipe.capacity());
    // Empty: read answers 0 instead of EAGAIN, and so does a 0-byte buffer.
    assert_eq!(pipe.read(&mut out).unwrap(), 0);
    pipe.write(b"abc").unwrap();
    assert_eq!(pipe.read(&mut []).unwrap(), 0);
    assert_len(&pipe, 3);
}

/// Runs a splice round trip: `data` written into `src_w`, spliced from
/// `src_r` into the pipe and out to `dst_w`, read back from `dst_r`.
fn round_trip<S, D>(
    pipe: &mut Pipe,
    data: &[u8],
    (mut src_w, src_r): (S, S),
    (dst_w, mut dst_r): (D, D),
) where
    S: Write + Send + 'static + std::os::fd::AsFd,
    D: Read + Send + 'static + std::os::fd::AsFd,
{
    let owned = data.to_vec();
    let writer = thread::spawn(move || {
        src_w.write_all(&owned).unwrap();
        // Dropping the write side is the end of file for the reader.
    });
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        dst_r.read_to_end(&mut got).unwrap();
        got
    });
    let moved = util::pump(pipe, &src_r, &dst_w);
    drop(dst_w);
    writer.join().unwrap();
    let got = reader.join().unwrap();
    assert_eq!(moved, data.len() as u64);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ after the splice round trip");
    assert_len(pipe, 0);
}

#[test]
fn splice_through_a_unix_socketpair() {
    let mut pipe = Pipe::with_size(65_536).unwrap();
    for len in [0, 1, 4095, 65_536, 1_000_003] {
        round_trip(
            &mut pipe,
            &util::pattern(len),
            UnixStream::pair().unwrap(),
            UnixStream::pair().unwrap(),
        );
    }
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    (a, b)
}

#[test]
fn splice_through_loopback_tcp() {
    let mut pipe = Pipe::with_size(1 << 20).unwrap();
    for len in [1, 65_536, 3_000_001] {
        round_trip(&mut pipe, &util::pattern(len), tcp_pair(), tcp_pair());
    }
}

#[test]
fn splice_counts_exactly_and_respects_max() {
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let (out, mut sink) = UnixStream::pair().unwrap();
    let mut pipe = Pipe::with_size(65_536).unwrap();
    tx.write_all(&util::pattern(10_000)).unwrap();

    assert_eq!(pipe.splice_from(&rx, 0).unwrap(), 0, "max 0 moves nothing");
    assert_len(&pipe, 0);
    assert_eq!(pipe.splice_from(&rx, 1234).unwrap(), 1234);
    assert_len(&pipe, 1234);
    let mut moved = 1234;
    while moved < 10_000 {
        moved += pipe.splice_from(&rx, 10_000).unwrap();
        assert_len(&pipe, moved);
    }

    assert_eq!(pipe.splice_to(&out, 0).unwrap(), 0);
    assert_eq!(pipe.splice_to(&out, 1000).unwrap(), 1000);
    assert_len(&pipe, 9000);
    // Asking for more than the pipe holds moves what it holds.
    assert_eq!(pipe.splice_to(&out, usize::MAX).unwrap(), 9000);
    assert_len(&pipe, 0);
    assert_eq!(
        pipe.splice_to(&out, usize::MAX).unwrap(),
        0,
        "an empty pipe moves nothing"
    );

    let mut got = vec![0u8; 10_000];
    sink.read_exact(&mut got).unwrap();
    assert!(got == util::pattern(10_000));

    // A non-blocking source with nothing to read: EAGAIN, nothing counted.
    rx.set_nonblocking(true).unwrap();
    let err = pipe.splice_from(&rx, 100).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert_len(&pipe, 0);
}

#[test]
fn splice_from_never_takes_more_than_capacity() {
    let (mut tx, rx) = UnixStream::pair().unwrap();
    let mut pipe = Pipe::with_size(4096).unwrap();
    let data = util::pattern(20_000);
    let writer = thread::spawn(move || tx.write_all(&data).unwrap());
    let mut total = 0;
    let mut buf = vec![0u8; 4096];
    while total < 20_000 {
        let n = match pipe.splice_from(&rx, usize::MAX) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                util::wait_readable(&rx);
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(n > 0, "end of file before all bytes were written");
        assert!(
            n <= pipe.capacity(),
            "spliced {n} into a {}-byte pipe",
            pipe.capacity()
        );
        total += n;
        assert_len(&pipe, n);
        while !pipe.is_empty() {
            pipe.read(&mut buf).unwrap();
        }
    }
    writer.join().unwrap();
}

#[test]
fn end_of_file_returns_zero() {
    let mut pipe = Pipe::with_size(65_536).unwrap();
    // Socket whose peer shut down its write side.
    let (tx, rx) = UnixStream::pair().unwrap();
    tx.shutdown(Shutdown::Write).unwrap();
    assert_eq!(pipe.splice_from(&rx, 4096).unwrap(), 0);
    // Peer closed, after some bytes: the bytes, then 0.
    let (mut tx, rx) = tcp_pair();
    tx.write_all(b"last words").unwrap();
    drop(tx);
    util::wait_readable(&rx);
    let mut moved = 0;
    loop {
        match pipe.splice_from(&rx, 4096) {
            Ok(0) => break,
            Ok(n) => moved += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => util::wait_readable(&rx),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(moved, 10);
    assert_len(&pipe, 10);
    // A pipe whose writer is gone.
    let (r, w) = rustix::pipe::pipe().unwrap();
    drop(w);
    let mut p2 = Pipe::with_size(4096).unwrap();
    assert_eq!(p2.splice_from(&r, 4096).unwrap(), 0);
    assert_len(&p2, 0);
}

#[test]
fn drop_closes_both_ends() {
    let pipe = Pipe::with_size(4096).unwrap();
    let (r, w) = pipe.raw_fds();
    let targets = [util::fd_target(r).unwrap(), util::fd_target(w).unwrap()];
    assert!(targets[0].starts_with("pipe:["), "{targets:?}");
    assert_eq!(targets[0], targets[1], "both ends are one pipe");
    drop(pipe);
    // The fd numbers may be reused by a test running alongside, but never
    // by this pipe: compare what they point to.
    for fd in [r, w] {
        assert_ne!(
            util::fd_target(fd).ok().as_ref(),
            Some(&targets[0]),
            "fd {fd} still open"
        );
    }
}

/// Issue 11: `Pipe::read` does what its doc says: at most `len()` and at
/// most `buf.len()` bytes, and `Ok(0)` (not `WouldBlock`) on an empty pipe
/// or an empty buffer.
#[test]
fn read_returns_zero_on_an_empty_pipe_and_never_more_than_it_holds() {
    let mut pipe = Pipe::with_size(64 * 1024).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(pipe.read(&mut buf).unwrap(), 0, "empty pipe");
    assert_eq!(pipe.write(b"0123456789").unwrap(), 10);
    assert_eq!(pipe.read(&mut []).unwrap(), 0, "empty buffer");
    assert_eq!(pipe.read(&mut buf[..4]).unwrap(), 4);
    assert_eq!(&buf[..4], b"0123");
    assert_eq!(pipe.len(), 6);
    assert_eq!(pipe.read(&mut buf).unwrap(), 6, "only what it holds");
    assert_eq!(&buf[..6], b"456789");
    assert!(pipe.is_empty());
    assert_eq!(pipe.kernel_len().unwrap(), 0);
    assert_eq!(pipe.read(&mut buf).unwrap(), 0, "emptied pipe");
}
