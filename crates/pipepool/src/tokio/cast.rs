//! Runtime type detection for the tokio glue: is this `AsyncRead` /
//! `AsyncWrite` one of tokio's sockets, and if so, which one?
//!
//! [`crate::tokio`] takes any `R: AsyncRead + Unpin + ?Sized` (tokio's exact
//! bounds, no `'static`), and must find out whether `R` is a socket it can
//! splice. [`std::any::Any`] cannot help without `'static`, so the type is
//! compared with [`typeid::of`], which gives a `TypeId` for any type by
//! erasing its lifetimes to `'static`, and the reference is then cast. This
//! module is the only place in the crate with `unsafe` code, and that code
//! is exactly those casts.
//!
//! Why the casts are sound:
//! - For a type without lifetime parameters (`TcpStream`, `OwnedReadHalf`,
//!   ...), `typeid::of::<T>() == TypeId::of::<U>()` means `T` *is* `U`: no
//!   other type erases to `U`.
//! - For `tcp::ReadHalf<'x>` and the other borrowed halves, an equal id only
//!   says `T` is `ReadHalf<'x>` for *some* `'x`. Given `&'b T`, well-formedness
//!   gives `'x: 'b`, and the halves are covariant in their lifetime (checked
//!   at compile time by [`covariant`] below), so `&'b ReadHalf<'x>` may be
//!   seen as `&'b ReadHalf<'b>`. The cast produces exactly that type, never
//!   one with a longer lifetime, and only the `&'b` socket inside is used.
//! - [`FdIo<'x>`](super::FdIo), pipepool's own adapter for any
//!   [`ReadyFd`](super::ReadyFd), is detected the same way (covariant too,
//!   also checked by [`covariant`]), and copied out as an `FdIo<'b>`.
#![allow(unsafe_code)]

use std::any::TypeId;

use tokio::net::{tcp, unix, TcpStream, UnixStream};

use super::fd_io::FdIo;

/// A tokio socket found behind a generic reader or writer, borrowed for as
/// long as the reader or writer is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Socket<'a> {
    /// A TCP stream (or the stream a TCP half belongs to).
    Tcp(&'a TcpStream),
    /// A Unix stream socket (or the stream a Unix half belongs to).
    Unix(&'a UnixStream),
    /// Any [`ReadyFd`](super::ReadyFd), wrapped by the user in an
    /// [`FdIo`]: pipepool's own adapter, a reader and a writer.
    Fd(FdIo<'a>),
}

/// Reinterprets `t` as a `U`.
///
/// # Safety
/// `T` must be `U` up to lifetimes, and every lifetime in `U` must be no
/// longer than the matching lifetime in `T` (with `U` covariant in it).
#[inline(always)]
unsafe fn cast_ref<T: ?Sized, U>(t: &T) -> &U {
    // SAFETY: the caller guarantees that `T` and `U` are the same type up to
    // lifetimes, with `U`'s no longer than `T`'s: same layout, same validity,
    // and the result does not outlive the borrow of `t`. Casting a possibly
    // wide `*const T` to a thin `*const U` keeps the data address.
    unsafe { &*(t as *const T).cast::<U>() }
}

/// Whether `T` erases to the `'static` type `U`.
#[inline(always)]
fn is<T: ?Sized, U: ?Sized + 'static>() -> bool {
    typeid::of::<T>() == TypeId::of::<U>()
}

/// The socket `t` is, when `T` is a whole stream (a reader and a writer
/// alike): `TcpStream`, `UnixStream`, a `&mut` to one, or a `Box` of one;
/// or an [`FdIo`] (the user's way in for any other fd).
fn stream<T: ?Sized>(t: &T) -> Option<Socket<'_>> {
    if is::<T, FdIo<'static>>() {
        // SAFETY: `T` is `FdIo<'x>` with `'x: 'b` (the borrow of `t`);
        // `FdIo` is covariant in its lifetime (see [`covariant`]), so
        // reading it as `FdIo<'b>` shortens the lifetime only.
        let fd = unsafe { cast_ref::<T, FdIo<'_>>(t) };
        return Some(Socket::Fd(*fd));
    }
    if is::<T, TcpStream>() {
        // SAFETY: `TcpStream` has no lifetime parameter, so `T` is `TcpStream`.
        return Some(Socket::Tcp(unsafe { cast_ref::<T, TcpStream>(t) }));
    }
    if is::<T, UnixStream>() {
        // SAFETY: `UnixStream` has no lifetime parameter, so `T` is `UnixStream`.
        return Some(Socket::Unix(unsafe { cast_ref::<T, UnixStream>(t) }));
    }
    if is::<T, &'static mut TcpStream>() {
        // SAFETY: `T` is `&'x mut TcpStream` with `'x: 'b` (the borrow of
        // `t`); `&mut` is covariant in its lifetime, so reading
        // `&'b &'x mut TcpStream` as `&'b &'b mut TcpStream` shortens the
        // lifetime only, and only a shared reborrow of the stream is made.
        let r = unsafe { cast_ref::<T, &mut TcpStream>(t) };
        return Some(Socket::Tcp(r));
    }
    if is::<T, &'static mut UnixStream>() {
        // SAFETY: as for `&mut TcpStream` just above.
        let r = unsafe { cast_ref::<T, &mut UnixStream>(t) };
        return Some(Socket::Unix(r));
    }
    if is::<T, Box<TcpStream>>() {
        // SAFETY: `Box<TcpStream>` has no lifetime parameter, so `T` is it.
        let b = unsafe { cast_ref::<T, Box<TcpStream>>(t) };
        return Some(Socket::Tcp(b));
    }
    if is::<T, Box<UnixStream>>() {
        // SAFETY: `Box<UnixStream>` has no lifetime parameter, so `T` is it.
        let b = unsafe { cast_ref::<T, Box<UnixStream>>(t) };
        return Some(Socket::Unix(b));
    }
    None
}

/// The socket a reader reads from, when the reader is a whole stream (see
/// [`stream`]) or one of the read halves (owned or borrowed).
pub(crate) fn read_socket<T: ?Sized>(t: &T) -> Option<Socket<'_>> {
    if let Some(socket) = stream(t) {
        return Some(socket);
    }
    if is::<T, tcp::OwnedReadHalf>() {
        // SAFETY: no lifetime parameter, so `T` is `tcp::OwnedReadHalf`.
        let half = unsafe { cast_ref::<T, tcp::OwnedReadHalf>(t) };
        return Some(Socket::Tcp(half.as_ref()));
    }
    if is::<T, unix::OwnedReadHalf>() {
        // SAFETY: no lifetime parameter, so `T` is `unix::OwnedReadHalf`.
        let half = unsafe { cast_ref::<T, unix::OwnedReadHalf>(t) };
        return Some(Socket::Unix(half.as_ref()));
    }
    if is::<T, tcp::ReadHalf<'static>>() {
        // SAFETY: `T` is `tcp::ReadHalf<'x>` with `'x: 'b` (the borrow of
        // `t`); `ReadHalf` is covariant, so reading it as `ReadHalf<'b>`
        // shortens the lifetime only.
        let half = unsafe { cast_ref::<T, tcp::ReadHalf<'_>>(t) };
        return Some(Socket::Tcp(half.as_ref()));
    }
    if is::<T, unix::ReadHalf<'static>>() {
        // SAFETY: as for `tcp::ReadHalf` just above: `T` is
        // `unix::ReadHalf<'x>` with `'x: 'b`, covariant.
        let half = unsafe { cast_ref::<T, unix::ReadHalf<'_>>(t) };
        return Some(Socket::Unix(half.as_ref()));
    }
    None
}

/// The socket a writer writes to, when the writer is a whole stream (see
/// [`stream`]) or one of the write halves (owned or borrowed).
pub(crate) fn write_socket<T: ?Sized>(t: &T) -> Option<Socket<'_>> {
    if let Some(socket) = stream(t) {
        return Some(socket);
    }
    if is::<T, tcp::OwnedWriteHalf>() {
        // SAFETY: no lifetime parameter, so `T` is `tcp::OwnedWriteHalf`.
        let half = unsafe { cast_ref::<T, tcp::OwnedWriteHalf>(t) };
        return Some(Socket::Tcp(half.as_ref()));
    }
    if is::<T, unix::OwnedWriteHalf>() {
        // SAFETY: no lifetime parameter, so `T` is `unix::OwnedWriteHalf`.
        let half = unsafe { cast_ref::<T, unix::OwnedWriteHalf>(t) };
        return Some(Socket::Unix(half.as_ref()));
    }
    if is::<T, tcp::WriteHalf<'static>>() {
        // SAFETY: `T` is `tcp::WriteHalf<'x>` with `'x: 'b` (the borrow of
        // `t`); `WriteHalf` is covariant, so reading it as `WriteHalf<'b>`
        // shortens the lifetime only.
        let half = unsafe { cast_ref::<T, tcp::WriteHalf<'_>>(t) };
        return Some(Socket::Tcp(half.as_ref()));
    }
    if is::<T, unix::WriteHalf<'static>>() {
        // SAFETY: as for `tcp::WriteHalf` just above: `T` is
        // `unix::WriteHalf<'x>` with `'x: 'b`, covariant.
        let half = unsafe { cast_ref::<T, unix::WriteHalf<'_>>(t) };
        return Some(Socket::Unix(half.as_ref()));
    }
    None
}

/// Compile-time proof that the borrowed halves are covariant in their
/// lifetime, which the casts above rely on: if tokio ever made one of them
/// invariant, these coercions would stop compiling.
#[allow(dead_code)]
fn covariant<'long: 'short, 'short>(
    a: tcp::ReadHalf<'long>,
    b: tcp::WriteHalf<'long>,
    c: unix::ReadHalf<'long>,
    d: unix::WriteHalf<'long>,
    e: FdIo<'long>,
) -> (
    tcp::ReadHalf<'short>,
    tcp::WriteHalf<'short>,
    unix::ReadHalf<'short>,
    unix::WriteHalf<'short>,
    FdIo<'short>,
) {
    (a, b, c, d, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: Option<Socket<'_>>) -> &'static str {
        match s {
            Some(Socket::Tcp(_)) => "tcp",
            Some(Socket::Unix(_)) => "unix",
            Some(Socket::Fd(_)) => "fd",
            None => "none",
        }
    }

    #[tokio::test]
    async fn detects_tokio_sockets_and_their_halves() {
        let (mut u1, u2) = UnixStream::pair().unwrap();
        assert_eq!(kind(read_socket(&u2)), "unix");
        assert_eq!(kind(write_socket(&u2)), "unix");
        {
            let (r, w) = u1.split();
            assert_eq!(kind(read_socket(&r)), "unix");
            assert_eq!(kind(write_socket(&w)), "unix");
            // A read half is not a writer and the other way round.
            assert_eq!(kind(write_socket(&r)), "none");
            assert_eq!(kind(read_socket(&w)), "none");
        }
        let (r, w) = u1.into_split();
        assert_eq!(kind(read_socket(&r)), "unix");
        assert_eq!(kind(write_socket(&w)), "unix");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut t = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert_eq!(kind(read_socket(&t)), "tcp");
        assert_eq!(kind(write_socket(&t)), "tcp");
        {
            // `&mut TcpStream` (as `copy(&mut r, ..)` with `r: &mut
            // TcpStream` passes it) and `Box<TcpStream>`.
            let r = &mut t;
            assert_eq!(kind(read_socket(&r)), "tcp");
            assert_eq!(kind(write_socket(&r)), "tcp");
        }
        let boxed = Box::new(
            TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap(),
        );
        assert_eq!(kind(read_socket(&boxed)), "tcp");
        assert_eq!(kind(write_socket(&boxed)), "tcp");
        let mut u3 = UnixStream::pair().unwrap().0;
        let r = &mut u3;
        assert_eq!(kind(read_socket(&r)), "unix");
        assert_eq!(kind(write_socket(&r)), "unix");
        let boxed = Box::new(u3);
        assert_eq!(kind(read_socket(&boxed)), "unix");
        assert_eq!(kind(write_socket(&boxed)), "unix");
        let fd = {
            let (r, w) = t.split();
            assert_eq!(kind(write_socket(&w)), "tcp");
            match read_socket(&r) {
                Some(Socket::Tcp(s)) => std::os::fd::AsRawFd::as_raw_fd(s),
                _ => panic!("a tcp::ReadHalf is a TCP socket"),
            }
        };
        assert_eq!(fd, std::os::fd::AsRawFd::as_raw_fd(&t));
        let (r, w) = t.into_split();
        assert_eq!(kind(read_socket(&r)), "tcp");
        assert_eq!(kind(write_socket(&w)), "tcp");
    }

    #[tokio::test]
    async fn detects_fd_io_by_value_and_through_mut() {
        let (tx, rx) = tokio::net::unix::pipe::pipe().unwrap();
        let mut r = FdIo::new(&rx);
        assert_eq!(kind(read_socket(&r)), "fd");
        assert_eq!(kind(write_socket(&FdIo::new(&tx))), "fd");
        // A `&mut FdIo` is not detected (as a `&mut` to a half): userspace.
        assert_eq!(kind(read_socket(&&mut r)), "none");
    }

    #[tokio::test]
    async fn other_types_are_not_sockets() {
        let (a, _b) = tokio::io::duplex(64);
        assert_eq!(kind(read_socket(&a)), "none");
        assert_eq!(kind(write_socket(&a)), "none");
        let bytes: &[u8] = b"abc";
        assert_eq!(kind(read_socket(&bytes)), "none");
        assert_eq!(kind(write_socket(&Vec::<u8>::new())), "none");
        // A shared reference to a socket is no reader: not detected.
        let (u1, _u2) = UnixStream::pair().unwrap();
        assert_eq!(kind(read_socket(&&u1)), "none");
        // Nor a `&mut` to a half, or a box of one (not detected: userspace).
        let (mut r, _w) = u1.into_split();
        assert_eq!(kind(read_socket(&&mut r)), "none");
        let u1 = r.reunite(_w).unwrap();
        // Unsized types are never sockets.
        let dyn_reader: &dyn tokio::io::AsyncRead = &u1;
        assert_eq!(kind(read_socket(dyn_reader)), "none");
    }
}
