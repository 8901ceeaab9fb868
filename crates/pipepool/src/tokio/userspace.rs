//! The copy through memory: a buffer filled by `poll_read` and drained by
//! `poll_write`, for types that cannot be spliced, for `zero_copy(false)`,
//! after the kernel refused a splice, and for a burst that found the pipe
//! pool at its bound.

use std::cell::RefCell;
use std::io;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::copy::write_zero;
use crate::sync::thread_local;
use crate::sync::PipeMut;

/// Most bytes of spare buffers a thread keeps (16 buffers of the default
/// 64 KiB). Counted in bytes, not buffers: with a large `buffer_size` a few
/// spares would otherwise hold a lot of memory per thread. A buffer larger
/// than this is never kept.
const SPARE_BYTES_PER_THREAD: usize = 1 << 20;

thread_local! {
    /// Storage given back by the buffers of this thread's copies, for the
    /// next burst of any copy that runs here. A buffer gives its storage
    /// back whenever it is empty and its reader has nothing, and when it is
    /// dropped: an idle connection holds no buffer, and a new burst or a new
    /// connection takes a spare one instead of allocating and zeroing anew.
    static SPARES: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Storage of `size` bytes: a spare one of this thread, or a new one.
fn take_storage(size: usize) -> Box<[u8]> {
    let spare = SPARES.try_with(|spares| {
        let mut spares = spares.try_borrow_mut().ok()?;
        let i = spares.iter().rposition(|b| b.len() == size)?;
        Some(spares.swap_remove(i))
    });
    spare
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0; size].into_boxed_slice())
}

/// Keeps `data` for this thread's next [`take_storage`], unless the thread
/// has enough spares (or is exiting): then it is freed. `data[..used]` may
/// hold bytes of the connection that used it: they are zeroed before the
/// storage is kept, so that no reader of another connection can see them
/// (a buffer is handed to `poll_read` as initialized memory, which any
/// `AsyncRead` may read), and the rest of `data` is zero already.
fn give_storage(mut data: Box<[u8]>, used: usize) {
    let _ = SPARES.try_with(|spares| {
        if let Ok(mut spares) = spares.try_borrow_mut() {
            let held: usize = spares.iter().map(|b| b.len()).sum();
            if held + data.len() <= SPARE_BYTES_PER_THREAD {
                data[..used].fill(0);
                spares.push(data);
            }
        }
    });
}

/// A byte buffer with a read end and a write end.
///
/// Invariant: `start <= end <= data.len()`; `data[start..end]` are bytes
/// read from the source and not yet written. The storage is taken on the
/// first read (from the thread's spares, else allocated) and given back
/// while empty and idle, and on drop, so an idle direction costs no buffer
/// memory. The bytes of `data` outside `start..end` are zero or stale
/// bytes of this same copy, never another copy's (spares are zeroed as far
/// as they were used), and are never written anywhere.
#[derive(Debug)]
pub(super) struct Buffer {
    /// The storage; empty until the first read (or after `release`).
    data: Box<[u8]>,
    /// How far into `data` bytes were ever read since it was taken: the
    /// part to zero before the storage goes to the thread's spares.
    used: usize,
    /// How large `data` is made when allocated.
    size: usize,
    /// First byte not yet written.
    start: usize,
    /// One past the last byte read.
    end: usize,
}

impl Buffer {
    /// A buffer of `size` bytes (`size > 0`), not allocated yet.
    pub(super) fn new(size: usize) -> Buffer {
        debug_assert!(size > 0);
        Buffer {
            data: Box::default(),
            used: 0,
            size,
            start: 0,
            end: 0,
        }
    }

    /// Whether every byte read has been written.
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The bytes read and not yet written.
    pub(super) fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Marks the first `n` pending bytes written.
    pub(super) fn consume(&mut self, n: usize) {
        self.start += n.min(self.end - self.start);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether a read could add bytes now.
    pub(super) fn has_room(&self) -> bool {
        self.data.is_empty() || self.end < self.data.len()
    }

    /// How many bytes the next [`poll_fill`](Buffer::poll_fill) may read.
    pub(super) fn room(&self) -> usize {
        if self.data.is_empty() {
            self.size
        } else {
            self.data.len() - self.end
        }
    }

    /// Gives the storage back (to this thread's spares) if the buffer is
    /// empty.
    pub(super) fn release(&mut self) {
        if self.is_empty() {
            self.give_back();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Hands `data` to the thread's spares when it has the usual size (one
    /// grown by [`take_from_pipe`](Buffer::take_from_pipe) is freed).
    fn give_back(&mut self) {
        let data = mem::take(&mut self.data);
        let used = mem::take(&mut self.used);
        if data.len() == self.size {
            give_storage(data, used);
        }
    }

    /// Reads once from `reader` into the free space. `Ok(0)` is end of file
    /// (or no room, which callers avoid). `Interrupted` is retried.
    pub(super) fn poll_fill<R: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
    ) -> Poll<io::Result<usize>> {
        if self.data.is_empty() {
            self.data = take_storage(self.size);
        }
        let mut free = ReadBuf::new(&mut self.data[self.end..]);
        loop {
            match reader.as_mut().poll_read(cx, &mut free) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = free.filled().len();
        self.end += n;
        self.used = self.used.max(self.end);
        Poll::Ready(Ok(n))
    }

    /// Reads once into the free space with `read`, which returns the bytes
    /// it put at the start of the slice it is given. `Ok(0)` is end of file.
    ///
    /// # Errors
    /// `read`'s.
    pub(super) fn fill_with(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.data.is_empty() {
            self.data = take_storage(self.size);
        }
        let free = &mut self.data[self.end..];
        let n = read(free)?.min(free.len());
        self.end += n;
        self.used = self.used.max(self.end);
        Ok(n)
    }

    /// Writes once from the buffered bytes into `writer`. `Interrupted` is
    /// retried.
    ///
    /// # Errors
    /// The writer's error, or `WriteZero` when it accepted nothing.
    pub(super) fn poll_drain<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<usize>> {
        let n = loop {
            match ready!(writer
                .as_mut()
                .poll_write(cx, &self.data[self.start..self.end]))
            {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
                Ok(0) => return Poll::Ready(Err(write_zero())),
                Ok(n) => break n,
            }
        };
        // A writer claiming more than it was given is broken; do not let it
        // push `start` past `end`.
        let n = n.min(self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Poll::Ready(Ok(n))
    }

    /// Puts `bytes` in the empty buffer, as if read from the source: bytes
    /// read before the copy began (a prefix). Storage larger than the
    /// usual size is made for a longer prefix (and freed, not kept, once
    /// empty).
    pub(super) fn preload(&mut self, bytes: &[u8]) {
        debug_assert!(self.is_empty());
        if bytes.is_empty() {
            return;
        }
        if self.data.len() < bytes.len() {
            self.give_back();
            self.data = if bytes.len() <= self.size {
                take_storage(self.size)
            } else {
                vec![0; bytes.len()].into_boxed_slice()
            };
        }
        self.data[..bytes.len()].copy_from_slice(bytes);
        self.start = 0;
        self.end = bytes.len();
        self.used = self.used.max(self.end);
    }

    /// Moves every byte `pipe` holds into the buffer (growing it if needed),
    /// after the writer refused a splice: those bytes then go out through
    /// `poll_write` and none is lost.
    ///
    /// # Errors
    /// A failed `read(2)` of the pipe, which does not happen on a live pipe
    /// holding that many bytes.
    pub(super) fn take_from_pipe(&mut self, pipe: &mut impl PipeMut) -> io::Result<()> {
        let pipe = pipe.pipe_mut();
        debug_assert!(self.is_empty());
        let need = pipe.len().max(self.size);
        if self.data.len() < need {
            self.data = vec![0; need].into_boxed_slice();
        }
        self.start = 0;
        self.end = 0;
        while !pipe.is_empty() {
            let n = pipe.read(&mut self.data[self.end..])?;
            if n == 0 {
                break;
            }
            self.end += n;
        }
        self.used = self.used.max(self.end);
        Ok(())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn fill_drain_and_release() {
        let mut buf = Buffer::new(4);
        assert!(buf.is_empty() && buf.has_room());
        let mut src: &[u8] = b"abcdef";
        let n = poll_fn(|cx| buf.poll_fill(cx, Pin::new(&mut src)))
            .await
            .unwrap();
        assert_eq!(n, 4);
        assert!(!buf.has_room());
        let mut out = Vec::new();
        let n = poll_fn(|cx| buf.poll_drain(cx, Pin::new(&mut out)))
            .await
            .unwrap();
        assert_eq!((n, &out[..]), (4, &b"abcd"[..]));
        assert!(buf.is_empty() && buf.has_room());
        buf.release();
        assert!(buf.data.is_empty());
        let n = poll_fn(|cx| buf.poll_fill(cx, Pin::new(&mut src)))
            .await
            .unwrap();
        assert_eq!(n, 2);
        let n = poll_fn(|cx| buf.poll_fill(cx, Pin::new(&mut src)))
            .await
            .unwrap();
        assert_eq!(n, 0, "end of file");
    }

    #[tokio::test]
    async fn storage_is_reused_from_the_thread_spares() {
        let mut a = Buffer::new(1000);
        let mut src: &[u8] = b"xyz";
        poll_fn(|cx| a.poll_fill(cx, Pin::new(&mut src)))
            .await
            .unwrap();
        let first = a.data.as_ptr();
        // Not empty: nothing to give back.
        a.release();
        assert_eq!(a.data.as_ptr(), first);
        a.consume(3);
        a.release();
        assert!(a.data.is_empty());
        // Another buffer of the same size on this thread takes that storage,
        // and reads only fresh bytes from it.
        let mut b = Buffer::new(1000);
        let mut src: &[u8] = b"q";
        poll_fn(|cx| b.poll_fill(cx, Pin::new(&mut src)))
            .await
            .unwrap();
        assert_eq!(b.data.as_ptr(), first);
        assert_eq!(b.pending(), b"q");
        // A dropped buffer gives its storage back too; other sizes do not
        // take it.
        drop(b);
        let mut c = Buffer::new(999);
        let mut src: &[u8] = b"r";
        poll_fn(|cx| c.poll_fill(cx, Pin::new(&mut src)))
            .await
            .unwrap();
        assert_ne!(c.data.as_ptr(), first);
        let again = take_storage(1000);
        assert_eq!(again.as_ptr(), first);
    }

    #[test]
    fn spares_are_capped_in_bytes_and_zeroed() {
        let size = SPARE_BYTES_PER_THREAD / 2 + 1;
        let mut a = vec![7u8; size].into_boxed_slice();
        a[size - 1] = 9;
        give_storage(a, size - 10);
        give_storage(vec![7u8; size].into_boxed_slice(), size);
        let held: Vec<usize> = SPARES.with(|s| s.borrow().iter().map(|b| b.len()).collect());
        assert_eq!(held.iter().filter(|&&l| l == size).count(), 1, "{held:?}");
        let kept = take_storage(size);
        // Zeroed as far as it was used; the rest was never this thread's
        // to zero (zero in a real buffer, 7 and 9 here).
        assert!(kept[..size - 10].iter().all(|&b| b == 0));
        assert_eq!(kept[size - 1], 9);
    }

    #[test]
    fn preloads_a_prefix_of_any_length() {
        let mut buf = Buffer::new(4);
        buf.preload(b"");
        assert!(buf.is_empty() && buf.data.is_empty());
        buf.preload(b"ab");
        assert_eq!((buf.pending(), buf.data.len()), (&b"ab"[..], 4));
        buf.consume(2);
        buf.preload(b"longer than four");
        assert_eq!(buf.pending(), b"longer than four");
        assert!(!buf.has_room());
    }

    #[test]
    fn takes_everything_a_pipe_holds() {
        let mut pipe = crate::Pipe::with_size(4096).unwrap();
        pipe.write(&[7u8; 3000]).unwrap();
        let mut buf = Buffer::new(1024);
        buf.take_from_pipe(&mut pipe).unwrap();
        assert!(pipe.is_empty());
        assert_eq!(buf.end - buf.start, 3000);
        assert!(buf.data[..3000].iter().all(|&b| b == 7));
    }
}
