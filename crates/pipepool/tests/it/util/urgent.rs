//! The urgent-data (`MSG_OOB`) cases that the synchronous and the async
//! copies are both tested against (tests/it/urgent.rs, tests/it/tokio_urgent.rs).

use std::time::Duration;

/// The urgent byte; the in-band data never needs it to be told apart (the
/// received length would differ).
pub(crate) const URGENT: u8 = 0xAB;

/// One step of what the client sends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    /// In-band bytes (the next ones of the test pattern).
    Data(usize),
    /// One byte sent with `MSG_OOB`. When an urgent byte was sent before,
    /// the client first waits until the far end has every in-band byte
    /// sent so far (so the copy is past the earlier mark, and TCP does not
    /// turn the earlier urgent byte into an in-band one: the expected
    /// result is exact).
    Urgent,
    /// Wait until the far end has every in-band byte sent so far, without
    /// the FIN: a copy stalled at a mark fails here.
    AwaitAll,
    /// Pause, the connection idle (for the CPU bound).
    Pause(Duration),
}

use Part::{AwaitAll, Data, Urgent};

/// The cases of the issue: urgent byte at the start, in the middle, as the
/// last byte before the FIN, several, and one with no FIN until
/// everything arrived.
pub(crate) fn cases() -> Vec<(&'static str, Vec<Part>)> {
    vec![
        ("at the start", vec![Urgent, Data(200_000)]),
        ("in the middle", vec![Data(200_000), Urgent, Data(300_000)]),
        ("last before FIN", vec![Data(200_000), Urgent]),
        (
            "several",
            vec![
                Data(100_000),
                Urgent,
                Data(100_000),
                Urgent,
                Data(1),
                Urgent,
                Data(50_000),
            ],
        ),
        (
            "no FIN until all arrived",
            vec![Data(200_000), Urgent, Data(300_000), AwaitAll],
        ),
    ]
}
