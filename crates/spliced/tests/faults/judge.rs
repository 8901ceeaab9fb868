//! The verdict: every record of every client against the upstream's.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::client::ClientRecord;
use crate::faults_common::hex;
use crate::plan::Mode;
use crate::upstream::UpShared;

/// The verdict on every record.
pub(crate) struct Report {
    pub(crate) failures: Vec<String>,
    pub(crate) summary: String,
}

/// Judges every client against the upstream's records: wrong bytes on
/// either end, hangs, SHA-256 of completed streams at both ends, and an
/// explanation for every stream that did not complete (a reset on purpose,
/// or a lifetime overlapping the upstream's restart from `down` to `back`).
pub(crate) fn judge(
    records: &[ClientRecord],
    sh: &UpShared,
    down: Instant,
    back: Instant,
    seed: u64,
) -> Report {
    let ups = sh.records.lock().unwrap();
    let mut failures: Vec<String> = sh.problems.lock().unwrap().clone();
    let mut by_mode: BTreeMap<Mode, [usize; 3]> = BTreeMap::new(); // complete, excused, total
    let mut after_restart = 0;
    let mut gap_clean = 0;
    let (mut bytes_up, mut bytes_down) = (0u64, 0u64);
    for r in records {
        let p = &r.plan;
        let what = format!(
            "id {} {:?} size {} resp {} cut {}",
            p.id, p.mode, p.size, p.resp, p.cut
        );
        let counts = by_mode.entry(p.mode).or_default();
        counts[2] += 1;
        if r.bad > 0 {
            failures.push(format!(
                "{what}: {} wrong byte(s) received by the client, first at {:?}",
                r.bad, r.first_bad
            ));
        }
        if r.hung {
            failures.push(format!(
                "{what}: the client hung (sent {}, received {})",
                r.sent, r.received
            ));
        }
        let overlapped = r.start <= back && r.end >= down;
        let up = ups.get(&p.id);
        if r.start > back {
            after_restart += 1;
        }
        if overlapped && r.start >= down && r.received == 0 && !r.complete {
            gap_clean += 1;
        }
        if r.complete {
            counts[0] += 1;
            bytes_up += r.sent;
            bytes_down += r.received;
            match up {
                // An empty answer and a clean EOF, but the upstream was
                // killed before it had the header: the proxy passed on
                // the upstream's FIN, as it should.
                None if overlapped => counts[1] += 1,
                None => failures.push(format!("{what}: complete, but the upstream has no record")),
                // Killed by the restart while still reading.
                Some(u) if u.aborted => counts[1] += 1,
                Some(u) => {
                    if !(u.eof && u.received == u64::from(p.size) && u.recv_sha == r.sent_sha) {
                        failures.push(format!(
                            "{what}: client sent {} bytes sha {}, upstream got {} sha {} (eof {}, error {:?}, aborted {})",
                            r.sent, hex(&r.sent_sha), u.received, hex(&u.recv_sha), u.eof, u.error, u.aborted
                        ));
                    }
                    if u.sent != r.received || u.sent_sha != r.recv_sha {
                        failures.push(format!(
                            "{what}: upstream sent {} bytes sha {}, client got {} sha {}",
                            u.sent,
                            hex(&u.sent_sha),
                            r.received,
                            hex(&r.recv_sha)
                        ));
                    }
                }
            }
        } else if p.mode.resets() {
            // Reset on purpose: every byte that arrived was checked.
        } else if overlapped {
            counts[1] += 1;
        } else {
            failures.push(format!(
                "{what}: LOST: incomplete without a reset or the restart (sent {}, received {}, error {:?}, upstream {:?})",
                r.sent, r.received, r.error, up
            ));
        }
    }
    for (mode, [complete, _, total]) in &by_mode {
        if !mode.resets() && *complete == 0 && *total > 0 {
            failures.push(format!("no {mode:?} connection completed out of {total}"));
        }
    }
    let mismatches = sh.mismatches.load(Relaxed) + records.iter().map(|r| r.bad).sum::<u64>();
    if after_restart < 20 {
        failures.push(format!(
            "only {after_restart} clients started after the restart"
        ));
    }
    let summary = format!(
        "faults: seed {seed:#x}: {} clients, {mismatches} mismatches; by mode [complete, excused by the restart, total]: {by_mode:?}; \
         {after_restart} started after the restart, {gap_clean} failed cleanly in the gap; \
         upstream: {} accepted, peak {} open, {} short headers; {:.1} MiB up, {:.1} MiB down in complete streams",
        records.len(),
        sh.accepted.load(Relaxed),
        sh.peak.load(Relaxed),
        sh.short_headers.load(Relaxed),
        bytes_up as f64 / (1 << 20) as f64,
        bytes_down as f64 / (1 << 20) as f64,
    );
    Report { failures, summary }
}
