//! Where the accept loops and their connections run ([`Workers`]).
//!
//! - [`Workers::Current`] (`worker_model = "work-stealing"`): the runtime
//!   the proxy starts on, tokio's multi-thread one; each listener has one
//!   socket, and a connection's task may move between its threads.
//! - [`Workers::Threads`] (`worker_model = "per-thread"`, the default): one
//!   thread per worker, each running a single-threaded (`current_thread`)
//!   runtime. Each listener has one socket per worker (`SO_REUSEPORT`, so
//!   the kernel spreads new connections over the workers' accept queues),
//!   and each worker's accept loop spawns its connections on its own
//!   runtime: a connection lives on one thread from accept to close, with
//!   no work stealing and no wake-up across threads; the pipe pool's
//!   thread caches then serve each worker alone.
//!
//! The design note: README's "Worker model".

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where listeners run their accept loops (and so their connections).
#[derive(Debug, Clone, Default)]
pub(crate) enum Workers {
    /// The runtime current where a listener starts (one socket each).
    #[default]
    Current,
    /// Worker threads, each with a single-threaded runtime.
    Threads(Arc<Threads>),
}

/// Worker threads, each running a `current_thread` runtime until
/// [`Workers::shutdown`].
#[derive(Debug)]
pub(crate) struct Threads {
    handles: Vec<Handle>,
    /// Ends every worker's runtime.
    stop: CancellationToken,
    threads: Mutex<Vec<ThreadHandle<()>>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one), each with its own
    /// single-threaded runtime (timers and I/O enabled).
    ///
    /// # Errors
    /// A runtime or a thread that cannot start (`EAGAIN`, `ENOMEM`, ...).
    pub(crate) fn threads(n: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(n.max(1));
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("spliced-worker-{i}"))
                .spawn(move || {
                    runtime.block_on(stop.cancelled());
                    // Tasks still open (past the grace period) are dropped:
                    // their sockets close.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
            threads.push(thread);
        }
        Ok(Workers::Threads(Arc::new(Threads {
            handles,
            stop,
            threads: Mutex::new(threads),
        })))
    }

    /// How many workers: sockets per listener.
    pub(crate) fn len(&self) -> usize {
        match self {
            Workers::Current => 1,
            Workers::Threads(t) => t.handles.len(),
        }
    }

    /// Spawns `task` on worker `index` (on the current runtime for
    /// [`Workers::Current`]).
    ///
    /// # Panics
    /// [`Workers::Current`] outside a runtime.
    pub(crate) fn spawn<F>(&self, index: usize, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Workers::Current => tokio::spawn(task),
            Workers::Threads(t) => t.handles[index % t.handles.len()].spawn(task),
        }
    }

    /// Ends the worker threads (their tasks still open are dropped) and
    /// waits for them; nothing for [`Workers::Current`].
    pub(crate) fn shutdown(&self) {
        if let Workers::Threads(t) = self {
            t.stop.cancel();
            let threads = std::mem::take(&mut *t.threads.lock().unwrap_or_else(|e| e.into_inner()));
            for thread in threads {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each worker runs its tasks on its own thread, and shutdown ends
    /// them all.
    #[test]
    fn each_worker_is_a_thread_of_its_own() {
        let workers = Workers::threads(3).unwrap();
        assert_eq!(workers.len(), 3);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let names: Vec<String> = rt.block_on(async {
            let mut names = Vec::new();
            for i in 0..3 {
                let h = workers.spawn(i, async {
                    std::thread::current().name().unwrap_or("").to_owned()
                });
                names.push(h.await.unwrap());
            }
            names
        });
        assert_eq!(
            names,
            ["spliced-worker-0", "spliced-worker-1", "spliced-worker-2"]
        );
        workers.shutdown();
        let Workers::Threads(t) = &workers else {
            unreachable!()
        };
        assert!(t.threads.lock().unwrap().is_empty());
    }
}
