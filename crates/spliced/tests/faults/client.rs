//! The clients: connect, send the header, then play their side of the
//! plan, checking every byte they receive.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::faults_common::{down_stream, up_stream, Checker, Producer, Rng};
use crate::plan::{Mode, Plan};
use crate::upstream::write_stream;
use crate::CONN_TIMEOUT;

/// What a client saw.
#[derive(Debug, Clone)]
pub(crate) struct ClientRecord {
    pub(crate) plan: Plan,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) sent: u64,
    pub(crate) sent_sha: [u8; 32],
    pub(crate) received: u64,
    pub(crate) recv_sha: [u8; 32],
    pub(crate) bad: u64,
    pub(crate) first_bad: Option<u64>,
    /// Sent everything, then read exactly what was due and a clean EOF.
    pub(crate) complete: bool,
    pub(crate) hung: bool,
    pub(crate) error: Option<String>,
}

/// Runs one client; `gate`: connect, then wait for the go.
pub(crate) async fn client(
    proxy: SocketAddr,
    plan: Plan,
    gate: Option<watch::Receiver<bool>>,
) -> ClientRecord {
    let start = Instant::now();
    let mut rx = Checker::new(down_stream(plan.id), plan.expect_down());
    let mut tx = Producer::new(up_stream(plan.id));
    let mut rng = Rng::new(plan.seed);
    let result = tokio::time::timeout(CONN_TIMEOUT, async {
        let mut s = connect(proxy, plan.mode == Mode::SlowClient).await?;
        // The header at once: a burst of connects can overflow the
        // proxy's SYN queue, and a connection answered with a SYN cookie
        // exists on the proxy's side only once data arrives.
        s.write_all(&plan.encode()).await?;
        if let Some(mut gate) = gate {
            let _ = gate.wait_for(|&go| go).await;
        }
        exchange(&mut s, &plan, &mut rx, &mut tx, &mut rng).await
    })
    .await;
    let (complete, hung, error) = match result {
        Ok(Ok(eof)) => {
            let complete = eof && tx.sent == u64::from(plan.size) && rx.got == plan.expect_down();
            (complete, false, None)
        }
        Ok(Err(e)) => (false, false, Some(e.to_string())),
        Err(_) => (false, true, Some("timed out".into())),
    };
    ClientRecord {
        plan,
        start,
        end: Instant::now(),
        sent: tx.sent,
        sent_sha: tx.sha(),
        received: rx.got,
        recv_sha: rx.sha(),
        bad: rx.bad,
        first_bad: rx.first_bad,
        complete: complete && !plan.mode.resets(),
        hung,
        error,
    }
}

/// The client side of `plan`. `Ok(true)`: everything was sent and the
/// answer ended with a clean EOF.
async fn exchange(
    s: &mut TcpStream,
    plan: &Plan,
    rx: &mut Checker,
    tx: &mut Producer,
    rng: &mut Rng,
) -> io::Result<bool> {
    let chunk_max = [97, 4096, 64 << 10][rng.below(3) as usize];
    let mut read_rng = Rng::new(rng.next_u64());
    let slow = plan.mode == Mode::SlowClient;
    let mut buf = vec![0u8; 64 << 10];
    match plan.mode {
        Mode::ClientReset => {
            {
                let (mut r, mut w) = s.split();
                let send = async {
                    write_stream(&mut w, tx, u64::from(plan.cut), chunk_max, rng).await?;
                    tokio::time::sleep(Duration::from_millis(rng.below(20))).await;
                    Ok::<_, io::Error>(())
                };
                let read = receive(&mut r, rx, &mut buf, None);
                // Whichever ends first (normally the sender), then reset.
                tokio::select! {
                    _ = send => {}
                    _ = read => {}
                }
            }
            socket2::SockRef::from(&*s).set_linger(Some(Duration::ZERO))?;
            Ok(false) // the socket is closed (reset) when dropped
        }
        Mode::HalfClose => {
            write_stream(s, tx, u64::from(plan.size), chunk_max, rng).await?;
            s.shutdown().await?;
            receive(s, rx, &mut buf, None).await?;
            Ok(true)
        }
        _ => {
            let (mut r, mut w) = s.split();
            let send = async {
                write_stream(&mut w, tx, u64::from(plan.size), chunk_max, rng).await?;
                w.shutdown().await
            };
            let pauses = slow.then_some(&mut read_rng);
            let (sent, read) = tokio::join!(send, receive(&mut r, rx, &mut buf, pauses));
            sent?;
            read?;
            Ok(true)
        }
    }
}

/// Reads to EOF; with `pauses`, in small pieces with sleeps in between.
async fn receive<R: AsyncRead + Unpin>(
    r: &mut R,
    rx: &mut Checker,
    buf: &mut [u8],
    mut pauses: Option<&mut Rng>,
) -> io::Result<()> {
    loop {
        let want = match pauses.as_deref_mut() {
            Some(rng) => rng.range(1024, 16384) as usize,
            None => buf.len(),
        };
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok(());
        }
        rx.take(&buf[..n]);
        if let Some(rng) = pauses.as_deref_mut() {
            tokio::time::sleep(Duration::from_millis(rng.range(1, 3))).await;
        }
    }
}

/// Connects to the proxy. A slow reader also makes the proxy's side small:
/// a small receive buffer and a small MSS (the proxy's send buffer is
/// sized from the MSS), so that what the reader has not taken yet backs up
/// into the proxy's pipe instead of vanishing into socket buffers.
async fn connect(proxy: SocketAddr, slow_reader: bool) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if slow_reader {
        socket.set_recv_buffer_size(16 << 10)?;
        socket2::SockRef::from(&socket).set_tcp_mss(1024)?;
    }
    socket.connect(proxy).await
}
