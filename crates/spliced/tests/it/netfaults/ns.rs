//! A private network namespace per test: created with its own loopback
//! (up, at the MTU asked for), entered by the thread that runs the test
//! body (so that every socket of the test, and every child it spawns,
//! lives there), and deleted when the guard drops, also on panic.
//!
//! Faults are set on that namespace's loopback only:
//! - nftables rules keyed by TCP port (a port names a leg: the proxy's
//!   listener is the client leg, an upstream's port the upstream leg; a
//!   packet *to* the port or *from* it names the direction): random loss,
//!   blackhole, RST injection;
//! - a `tc` bandwidth limit (`htb`, one class per port, classified by
//!   nftables' `meta priority`).
//!
//! What cannot be emulated: delay and jitter. This kernel has no `netem`
//! (`tc qdisc add ... netem` answers "Specified qdisc kind is unknown").
//! The tests stand in for a long path with a bandwidth-limited link: its
//! queue builds the delay a slow path has (a 1 MiB download behind a
//! 8 Mbit/s class takes about a second, with up to the queue's length of
//! packets waiting), and with loss the retransmission timers give the
//! stalls a lossy long path gives.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// A network namespace, deleted on drop.
pub(crate) struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name (pid, test and counter), its
    /// loopback up at `mtu`, and an empty nftables table `faults` with an
    /// `output` and an `input` chain. Panics with the command's message
    /// when that fails (these tests need root, as CI runs them).
    pub(crate) fn new(tag: &str, mtu: u32) -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("spnf-{}-{tag}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        let mtu = mtu.to_string();
        run(
            "ip",
            &["-n", &ns.name, "link", "set", "lo", "mtu", &mtu, "up"],
        );
        ns.nft(
            "add table inet faults\n\
             add chain inet faults output { type filter hook output priority 0; }\n\
             add chain inet faults input { type filter hook input priority 0; }\n",
        );
        ns
    }

    /// Runs `body` on a thread inside this namespace and returns its
    /// result; a panic of `body` is raised again here (after which the
    /// guard deletes the namespace).
    pub(crate) fn run<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        thread::scope(|s| {
            let worker = s.spawn(|| {
                let file = File::open(&path).expect("open the namespace");
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("setns into the test's namespace");
                body()
            });
            match worker.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Applies an nftables script (`nft -f -`) in this namespace.
    pub(crate) fn nft(&self, script: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft (Debian package nftables)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft -f - failed: {}\nscript:\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Drops `per_mille`/1000 of the packets of `leg` going `dir`, at random.
    pub(crate) fn loss(&self, leg: u16, dir: Dir, per_mille: u32) {
        self.nft(&format!(
            "add rule inet faults output tcp {} {leg} numgen random mod 1000 < {per_mille} drop\n",
            dir.field()
        ));
    }

    /// Drops every packet to and from port `leg` from now on: a peer that
    /// went silent (a cable pulled, a host that froze), with no RST and no
    /// FIN. A connect to it waits for its SYN to be answered.
    pub(crate) fn blackhole(&self, leg: u16) {
        self.nft(&format!(
            "add rule inet faults output tcp dport {leg} drop\n\
             add rule inet faults output tcp sport {leg} drop\n"
        ));
    }

    /// From now on, answers every packet sent *to* port `leg` with an RST
    /// (and drops it), as the peer on that port would: the sender's
    /// socket is reset at its next segment (data or a bare ACK).
    pub(crate) fn reset_senders_to(&self, leg: u16) {
        self.nft(&format!(
            "add rule inet faults input tcp dport {leg} reject with tcp reset\n"
        ));
    }

    /// Limits the traffic sent *from* port `leg` to `rate` (tc syntax,
    /// e.g. `8mbit`) with an `htb` class on the loopback (classified by
    /// `meta priority`); other traffic is not limited. Call once per
    /// namespace, with one port.
    pub(crate) fn rate_limit_from(&self, leg: u16, rate: &str) {
        let dev = ["-n", &self.name, "qdisc", "add", "dev", "lo", "root"];
        run(
            "tc",
            &[&dev[..], &["handle", "1:", "htb", "default", "1"]].concat(),
        );
        let class = |id: &str, rate: &str| {
            run(
                "tc",
                &[
                    "-n", &self.name, "class", "add", "dev", "lo", "parent", "1:", "classid", id,
                    "htb", "rate", rate, "ceil", rate, "quantum", "60000",
                ],
            )
        };
        class("1:1", "100gbit");
        class("1:10", rate);
        self.nft(&format!(
            "add rule inet faults output tcp sport {leg} meta priority set 1:10\n"
        ));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Every process of the test was killed by its guard already; the
        // namespace goes with its last reference.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The direction of a leg's packets, by where the port is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dir {
    /// Packets sent to the port (to the listener or the upstream).
    To,
    /// Packets sent from the port (from the listener or the upstream).
    From,
}

impl Dir {
    fn field(self) -> &'static str {
        match self {
            Dir::To => "dport",
            Dir::From => "sport",
        }
    }
}

/// Runs a command; panics with its stderr when it fails.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
