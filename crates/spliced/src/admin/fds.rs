//! Passing file descriptors over a Unix stream socket: `sendmsg(2)` /
//! `recvmsg(2)` with `SCM_RIGHTS` ancillary data (through rustix, so no
//! `unsafe`). See unix(7).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// The most descriptors one message carries (the kernel's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// `sendmsg(socket, bytes, SCM_RIGHTS(fds))` — sends a prefix of `bytes`
/// with `fds` attached (duplicated into the receiver); returns how many
/// bytes went. The rest is for plain writes.
///
/// # Errors
/// As `sendmsg(2)` (`EAGAIN` on a non-blocking socket that is full);
/// `InvalidInput` for more than [`MAX_FDS`] fds or no byte to carry them.
pub(crate) fn send_with_fds(
    socket: impl AsFd,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS || (bytes.is_empty() && !fds.is_empty()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot pass {} fds in one message", fds.len()),
        ));
    }
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(
            "no room for the fds in the control buffer",
        ));
    }
    Ok(rustix::net::sendmsg(
        socket,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// `recvmsg(socket, buf, SCM_RIGHTS)` — reads into `buf` and takes the
/// descriptors that came with those bytes (close-on-exec). Returns the
/// byte count (0 at end of stream) and the descriptors.
///
/// # Errors
/// As `recvmsg(2)`; `InvalidData` if the sender passed more descriptors
/// than [`MAX_FDS`] (the kernel then truncates them).
pub(crate) fn recv_with_fds(
    socket: impl AsFd,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = m {
            fds.extend(passed);
        }
    }
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the descriptors passed did not fit (truncated)",
        ));
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;

    #[test]
    fn passes_the_same_socket_across() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sent = send_with_fds(&a, b"hello", &[listener.as_fd()]).unwrap();
        assert_eq!(sent, 5);
        let mut buf = [0; 16];
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"hello"[..], 1));
        let got = std::net::TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(got.local_addr().unwrap(), listener.local_addr().unwrap());
        drop(a);
        assert_eq!(b.read(&mut buf).unwrap(), 0);
    }
}
