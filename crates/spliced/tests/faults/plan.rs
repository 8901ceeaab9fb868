//! A connection's plan: its mode, sizes and reset points, drawn from the
//! seeded RNG and sent as the connection's first 32 bytes.

use faults_common::Rng;

use crate::faults_common;
use crate::util::word;

/// Length of the header every connection starts with.
pub(crate) const HEADER: usize = 32;

/// What a connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    Echo = 0,
    HalfClose = 1,
    ServerFirst = 2,
    SlowClient = 3,
    SlowUpstream = 4,
    ClientReset = 5,
    UpstreamReset = 6,
}

impl Mode {
    pub(crate) const ALL: [(Mode, u64); 7] = [
        (Mode::Echo, 34),
        (Mode::HalfClose, 14),
        (Mode::ServerFirst, 10),
        (Mode::SlowClient, 10),
        (Mode::SlowUpstream, 6),
        (Mode::ClientReset, 13),
        (Mode::UpstreamReset, 13),
    ];

    pub(crate) fn from_u8(b: u8) -> Option<Mode> {
        Mode::ALL.iter().map(|m| m.0).find(|m| *m as u8 == b)
    }

    pub(crate) fn resets(self) -> bool {
        matches!(self, Mode::ClientReset | Mode::UpstreamReset)
    }

    pub(crate) fn slow(self) -> bool {
        matches!(self, Mode::SlowClient | Mode::SlowUpstream)
    }
}

/// One connection's plan, sent as its header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) id: u64,
    pub(crate) mode: Mode,
    /// Bytes the client sends (all of them, unless it resets).
    pub(crate) size: u32,
    /// Bytes the upstream answers in `HalfClose` and `ServerFirst`.
    pub(crate) resp: u32,
    /// `ClientReset`/`UpstreamReset`: bytes sent/read before the reset.
    pub(crate) cut: u32,
    /// Seeds the client's chunking and pauses.
    pub(crate) seed: u64,
}

impl Plan {
    pub(crate) fn draw(rng: &mut Rng, id: u64) -> Plan {
        let total: u64 = Mode::ALL.iter().map(|m| m.1).sum();
        let mut pick = rng.below(total);
        let mut mode = Mode::Echo;
        for (m, w) in Mode::ALL {
            if pick < w {
                mode = m;
                break;
            }
            pick -= w;
        }
        let mut size = draw_size(rng, mode.slow());
        if mode == Mode::UpstreamReset {
            // It resets after at least one byte of payload, so never
            // before the wave's go.
            size = size.max(1);
        }
        let resp = match mode {
            Mode::HalfClose | Mode::ServerFirst => draw_size(rng, false),
            _ => size,
        };
        let cut = match mode {
            Mode::ClientReset => rng.below(u64::from(size) + 1) as u32,
            Mode::UpstreamReset => rng.range(1, u64::from(size)) as u32,
            _ => size,
        };
        Plan {
            id,
            mode,
            size,
            resp,
            cut,
            seed: rng.next_u64(),
        }
    }

    /// Bytes the client should receive.
    pub(crate) fn expect_down(&self) -> u64 {
        u64::from(self.resp)
    }

    fn check_word(&self) -> u64 {
        word(
            0xC4EC,
            self.id ^ (self.mode as u64) << 56 ^ u64::from(self.size) << 24,
        ) ^ word(u64::from(self.resp), u64::from(self.cut))
    }

    pub(crate) fn encode(&self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(&self.id.to_le_bytes());
        h[8] = self.mode as u8;
        h[12..16].copy_from_slice(&self.size.to_le_bytes());
        h[16..20].copy_from_slice(&self.resp.to_le_bytes());
        h[20..24].copy_from_slice(&self.cut.to_le_bytes());
        h[24..32].copy_from_slice(&self.check_word().to_le_bytes());
        h
    }

    /// `None` for a header that is not one (bytes from elsewhere).
    pub(crate) fn decode(h: &[u8; HEADER]) -> Option<Plan> {
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        let plan = Plan {
            id: u64::from_le_bytes(h[..8].try_into().unwrap()),
            mode: Mode::from_u8(h[8])?,
            size: u32_at(12),
            resp: u32_at(16),
            cut: u32_at(20),
            seed: 0,
        };
        let check = u64::from_le_bytes(h[24..32].try_into().unwrap());
        (h[9..12] == [0, 0, 0] && check == plan.check_word()).then_some(plan)
    }
}

/// 5% empty; else for slow modes 30% of 0.5-2 MiB (more than the socket
/// buffers hold, so that the proxy's pipe stays full while the reader
/// sleeps), 70% up to 96 KiB; else 1% of 1-4 MiB, 94% up to 320 KiB.
fn draw_size(rng: &mut Rng, slow: bool) -> u32 {
    let r = rng.below(100);
    let n = if r < 5 {
        0
    } else if slow && r < 35 {
        rng.range(512 << 10, 2 << 20)
    } else if slow {
        rng.range(1, 96 << 10)
    } else if r == 5 {
        rng.range(1 << 20, 4 << 20)
    } else {
        rng.range(1, 320 << 10)
    };
    n as u32
}
