//! Per-worker counters: connections each worker thread accepted and
//! holds open now, so that an operator sees the balance across workers
//! (`spliced_worker_accepts_total`, `spliced_worker_connections`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Labels: the worker, numbered from 0.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WorkerLabels {
    pub(super) worker: String,
}

/// The handles of one worker, taken once when its accept loop starts so
/// that the per-connection path does no lookup (and takes no lock). Each
/// worker's counters are its own allocations: only that worker writes
/// them.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerMetrics {
    /// Connections the worker accepted (admitted or refused).
    pub(crate) accepts: Counter,
    /// Connections the worker holds open now.
    pub(crate) open: Gauge,
}

/// One connection counted in its worker's open gauge until dropped.
#[derive(Debug)]
pub(crate) struct OpenGuard(Gauge);

impl WorkerMetrics {
    /// Counts an accepted connection, open until the guard drops.
    pub(crate) fn accepted(&self) -> OpenGuard {
        self.accepts.inc();
        self.open.inc();
        OpenGuard(self.open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
