//! [`NextRead`]: how a splicing direction reads next from its source, so
//! that a TCP urgent mark never truncates or stalls it.

/// How a splicing direction makes its next read from the source socket.
///
/// A TCP socket's splice stops at the urgent mark (a byte sent with
/// `MSG_OOB`) and never moves past it: it answers `EAGAIN`, or 0 once the
/// FIN is in, as at the end of file. `read(2)` skips the urgent byte (it is
/// not inline without `SO_OOBINLINE`) and goes on. So a splice is trusted
/// to say "nothing" or "end of file" only where no mark can explain it, and
/// is otherwise followed by a read through the buffer. The checks replace
/// calls the copy makes anyway (the last read of a burst is a peek instead
/// of a splice): no system call is added where no urgent byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NextRead {
    /// `recv(MSG_PEEK)` one byte before the first splice: tokio reports a
    /// fresh socket readable before anything arrived, and an idle
    /// connection must never touch the pool.
    Probe,
    /// After a splice that did not fill the pipe: when the readiness says
    /// the peer shut down, read through the buffer (a 0 there is the end of
    /// file, and the read consumes an urgent byte left before the FIN:
    /// closing a socket with it unread would send a reset); else
    /// `recv(MSG_PEEK)` one byte (it skips an urgent byte; its `EAGAIN` is
    /// the truth, as a splice's would have been).
    Peek,
    /// Splice: the socket has data (a peek said so, the last splice filled
    /// the pipe, or a new readiness event came). A splice answering
    /// `EAGAIN` or 0 here may sit at the urgent mark: the next read goes
    /// through the buffer, with the readiness kept.
    Splice,
    /// Read through the buffer (`read(2)` moves past the urgent mark).
    Buffer,
    /// The last read found nothing and cleared the readiness: the next one
    /// answers a new readiness event.
    AfterWait,
}
