//! The userspace copy's buffers are reused across connections on a thread
//! (an idle direction gives its buffer back). A reused buffer is handed to
//! the next reader's `poll_read` as initialized memory, which any
//! `AsyncRead` may look at (`initialize_unfilled`, `initialized_mut`), or
//! forward by over-advancing: it must hold none of another connection's
//! bytes.

#![cfg(feature = "tokio")]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pipepool::tokio::{copy_with, CopyOptions};
use tokio::io::{AsyncRead, ReadBuf};

/// The first connection's bytes.
fn secret(len: usize) -> Vec<u8> {
    b"SECRET!-".iter().copied().cycle().take(len).collect()
}

/// A reader that, before giving its own bytes, records every byte of the
/// buffer it was handed beyond what it filled.
struct Snoop {
    data: Vec<u8>,
    pos: usize,
    seen: Vec<u8>,
}

impl AsyncRead for Snoop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled().to_vec();
        self.seen.extend_from_slice(&unfilled);
        let n = (self.data.len() - self.pos).min(buf.remaining()).min(100);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_reused_buffer_shows_nothing_of_another_connection() {
    let opts = CopyOptions::new().zero_copy(false);
    for size in [10, 100_000] {
        // Connection 1 moves secret bytes through this thread's buffer,
        // which then goes to the thread's spares.
        let secret = secret(size);
        let mut reader: &[u8] = &secret;
        let mut sink = Vec::new();
        let done = copy_with(&mut reader, &mut sink, &opts).await.unwrap();
        assert_eq!(done.bytes, size as u64);
        assert!(sink == secret);

        // Connection 2 takes that buffer; its reader looks at all of it.
        let mut snoop = Snoop {
            data: b"public".repeat(50),
            pos: 0,
            seen: Vec::new(),
        };
        let mut out = Vec::new();
        copy_with(&mut snoop, &mut out, &opts).await.unwrap();
        assert_eq!(out, b"public".repeat(50));
        assert!(snoop.seen.len() >= 60_000, "saw {} bytes", snoop.seen.len());
        let leaked = snoop
            .seen
            .windows(8)
            .filter(|w| w == b"SECRET!-" || w.starts_with(b"SECRET"))
            .count();
        assert_eq!(leaked, 0, "another connection's bytes in the buffer");
        assert!(
            !snoop.seen.iter().any(|&b| b == b'S' || b == b'!'),
            "another connection's bytes in the buffer"
        );
    }
}
