//! TCP urgent data (`MSG_OOB`) through the real binary: a client sends
//! 200 KB, one urgent byte, 300 KB and half-closes; the upstream answers
//! the same way (urgent byte last before its FIN on the second round).
//! With `copy = "splice"` as with `copy = "userspace"`, each side must
//! receive every in-band byte in order and no urgent byte inline (a splice
//! stops at the urgent mark: the proxy used to report a clean end of file
//! there and drop the rest).

use crate::util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use crate::util::{connect, random_bytes, ConfigFile, Proc};
use socket2::SockRef;

/// The urgent byte.
const URGENT: u8 = 0xAB;

/// Sends `before`, one urgent byte, `after`, then half-closes.
fn send_with_urgent(s: &TcpStream, before: &[u8], after: &[u8]) {
    let mut w = s;
    w.write_all(before).unwrap();
    let sent = SockRef::from(s).send_out_of_band(&[URGENT]).unwrap();
    assert_eq!(sent, 1);
    w.write_all(after).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
}

/// The bytes of one direction: (before the urgent byte, after it).
fn plan(seed: u64, last_before_fin: bool) -> (Vec<u8>, Vec<u8>) {
    let before = random_bytes(seed, 200_000);
    let after = if last_before_fin {
        Vec::new()
    } else {
        random_bytes(seed + 1, 300_000)
    };
    (before, after)
}

/// An upstream that, on each connection, sends its plan while it reads the
/// client's bytes to the end, and reports what it received.
fn upstream(last_before_fin: bool) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let tx = tx.clone();
            thread::spawn(move || {
                let w = s.try_clone().unwrap();
                let writer = thread::spawn(move || {
                    let (before, after) = plan(100, last_before_fin);
                    send_with_urgent(&w, &before, &after);
                });
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                writer.join().unwrap();
                tx.send(got).unwrap();
            });
        }
    });
    (addr, rx)
}

#[test]
fn urgent_bytes_do_not_cut_the_stream_short() {
    for last_before_fin in [false, true] {
        let (upstream, seen) = upstream(last_before_fin);
        let config = ConfigFile::new(&format!(
            "[[listener]]\nname = \"zero-copy\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\ncopy = \"splice\"\n\
             [[listener]]\nname = \"buffered\"\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{upstream}\"]\ncopy = \"userspace\"\n"
        ));
        let mut proc = Proc::spawn(&["run", "--config", config.arg()]);
        for proxy in proc.listen_addrs(2) {
            let ctx = format!("{proxy} (urgent byte last before FIN: {last_before_fin})");
            let mut s = connect(proxy);
            let w = s.try_clone().unwrap();
            let (before, after) = plan(1, last_before_fin);
            let sent_up = [&before[..], &after[..]].concat();
            let writer = thread::spawn(move || send_with_urgent(&w, &before, &after));
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            writer.join().unwrap();

            let (b, a) = plan(100, last_before_fin);
            let sent_down = [&b[..], &a[..]].concat();
            assert_eq!(got.len(), sent_down.len(), "{ctx}: bytes to the client");
            assert!(got == sent_down, "{ctx}: in-band bytes to the client");
            let up = seen.recv_timeout(util::WAIT).expect("upstream report");
            assert_eq!(up.len(), sent_up.len(), "{ctx}: bytes to the upstream");
            assert!(up == sent_up, "{ctx}: in-band bytes to the upstream");
        }
    }
}
