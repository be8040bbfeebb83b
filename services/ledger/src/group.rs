//! Group commit of check-ins: many callers, one transaction per batch.
//!
//! [`GroupCommit`] owns a task that takes the check-ins waiting in its queue (up to
//! `max_batch`) and commits them with [`Store::check_in_batch`]. A lone check-in is committed
//! at once, exactly as [`Store::check_in`] would (no timer, no added wait); when check-ins
//! arrive faster than transactions commit, the ones that queued up during a commit share the
//! next one. Every caller gets its own result. The queue is bounded: a caller waits for room
//! rather than a check-in being dropped.

use crate::store::{Backend, CheckIn, CheckInResult, Store};
use crate::{LedgerError, Result};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

type Job = (CheckIn, oneshot::Sender<Result<CheckInResult>>);

/// Batch writers on PostgreSQL. One: a batch costs about the same few round trips whatever
/// its size, so one writer taking everything that waits commits more, and sooner, than
/// several splitting it (measured with `bench ledger --pg-writers N` on 2 vCPUs: 1 writer
/// had the best throughput and p99, 4 the worst; see BENCHMARKS.md).
pub const PG_WRITERS: usize = 1;

/// Handle on a group-commit writer. Cheap to clone; the writer task ends when every handle is
/// dropped and the queue is drained.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on the current tokio runtime. `max_batch` (at least 1) caps the
    /// check-ins of one transaction; `queue` (at least 1) bounds the waiting ones.
    ///
    /// SQLite has one writer, so one task commits; on PostgreSQL, where transactions of
    /// different students run in parallel, [`PG_WRITERS`] tasks take batches from the same
    /// queue (each batch locks its students in id order, so batches cannot deadlock).
    pub fn spawn(store: Store, max_batch: usize, queue: usize) -> (GroupCommit, JoinHandle<()>) {
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => PG_WRITERS,
        };
        GroupCommit::spawn_writers(store, max_batch, queue, writers)
    }

    /// [`GroupCommit::spawn`] with `writers` batch writers (at least 1; SQLite always has 1).
    pub fn spawn_writers(
        store: Store,
        max_batch: usize,
        queue: usize,
        writers: usize,
    ) -> (GroupCommit, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => writers.max(1),
        };
        let tasks: Vec<JoinHandle<()>> = (0..writers)
            .map(|_| tokio::spawn(writer(store.clone(), rx.clone(), max_batch.max(1))))
            .collect();
        let task = tokio::spawn(async move {
            for t in tasks {
                let _ = t.await;
            }
        });
        (GroupCommit { tx }, task)
    }

    /// Commits `ci` (in a batch with whatever else is waiting) and returns its result.
    pub async fn check_in(&self, ci: CheckIn) -> Result<CheckInResult> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send((ci, done))
            .await
            .map_err(|_| LedgerError::Corrupt("group-commit writer has stopped".into()))?;
        rx.await
            .map_err(|_| LedgerError::Corrupt("group-commit writer dropped a check-in".into()))?
    }
}

async fn writer(store: Store, rx: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        let cis: Vec<CheckIn> = jobs.iter().map(|(ci, _)| ci.clone()).collect();
        let results = store.check_in_batch(&cis).await;
        for ((_, done), r) in jobs.drain(..).zip(results) {
            // A caller that gave up waiting does not undo its committed check-in.
            let _ = done.send(r);
        }
    }
}
