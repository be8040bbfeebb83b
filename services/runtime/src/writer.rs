//! The ledger writer of the live path: every accepted walk-through's check-in goes through
//! [`rollcall_ledger::GroupCommit`] (the writer `bench ledger` measures), with the ledger's own
//! error classes deciding what happens on failure:
//!
//! - [`ErrorClass::Unavailable`] (connection lost, disk full, server shutting down): retried
//!   with capped exponential backoff until the database is back; parking would need the same
//!   database, and the check-in itself is fine. `/healthz` shows the ledger as degraded
//!   meanwhile ([`WriterStats::retrying`]).
//! - [`ErrorClass::Transient`] (busy, serialization failure, deadlock, lost race): retried with
//!   backoff up to [`RetryPolicy::transient_attempts`] times, then parked.
//! - [`ErrorClass::Permanent`] (unknown student, invalid, constraint, corrupt row): parked at
//!   once.
//!
//! Parking ([`rollcall_ledger::Store::park_check_in`]) stores the check-in durably with its
//! reason and raises a `check_in_failed` alert for the front desk. Each check-in is its own task,
//! so one that keeps failing never holds up the ones behind it; the tasks in flight are bounded
//! ([`LedgerWriter::submit`] waits for a permit: back-pressure on recognition, never a drop).

use rollcall_ledger::{CheckIn, CheckInResult, ErrorClass, GroupCommit, LedgerError, Store};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Where check-ins are committed and parked. [`GroupPort`] is the product's; tests use fakes.
pub trait LedgerPort: Send + Sync + 'static {
    fn commit(
        &self,
        ci: CheckIn,
    ) -> impl Future<Output = Result<CheckInResult, LedgerError>> + Send;
    fn park(
        &self,
        ci: &CheckIn,
        reason: &'static str,
        error: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<bool, LedgerError>> + Send;
}

/// Group commit into the school's store; parking into the same store.
pub struct GroupPort {
    pub group: GroupCommit,
    pub store: Store,
}

impl GroupPort {
    /// Starts the group-commit writer task (batches of up to 64, a queue of 1024).
    pub fn spawn(store: Store) -> (GroupPort, JoinHandle<()>) {
        let (group, task) = GroupCommit::spawn(store.clone(), 64, 1024);
        (GroupPort { group, store }, task)
    }
}

impl LedgerPort for GroupPort {
    async fn commit(&self, ci: CheckIn) -> Result<CheckInResult, LedgerError> {
        self.group.check_in(ci).await
    }
    async fn park(
        &self,
        ci: &CheckIn,
        reason: &'static str,
        error: &str,
        attempts: u32,
    ) -> Result<bool, LedgerError> {
        self.store
            .park_check_in(ci, reason, error, attempts, self.store.now())
            .await
    }
}

/// Backoff and bounds.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Attempts (the first included) before a transiently failing check-in is parked.
    pub transient_attempts: u32,
    /// Check-ins in flight at once (committing, retrying or parking).
    pub in_flight: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            transient_attempts: 8,
            in_flight: 4096,
        }
    }
}

/// What became of a check-in.
#[derive(Debug)]
pub enum Committed {
    Recorded(CheckInResult),
    /// Set aside with its reason (`refused` or `retries_exhausted`).
    Parked {
        reason: &'static str,
        error: String,
    },
    /// Parking itself failed with a permanent error: logged, counted, nothing else possible.
    Lost {
        error: String,
    },
}

/// Counters of the writer (behind `/metrics` and `/healthz`).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub committed: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    pub parked: AtomicU64,
    /// Parking failed permanently (never expected; an alert for operators).
    pub lost: AtomicU64,
    /// Check-ins waiting in a retry right now (the ledger is degraded while > 0).
    pub retrying: AtomicU64,
    /// Check-ins in flight right now.
    pub in_flight: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl WriterStats {
    fn note_error(&self, e: &LedgerError) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// See the module docs. Cheap to clone.
pub struct LedgerWriter<P: LedgerPort> {
    port: Arc<P>,
    policy: RetryPolicy,
    permits: Arc<Semaphore>,
    pub stats: Arc<WriterStats>,
}

impl<P: LedgerPort> Clone for LedgerWriter<P> {
    fn clone(&self) -> Self {
        Self {
            port: self.port.clone(),
            policy: self.policy,
            permits: self.permits.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<P: LedgerPort> LedgerWriter<P> {
    pub fn new(port: P, policy: RetryPolicy) -> Self {
        Self {
            port: Arc::new(port),
            policy,
            permits: Arc::new(Semaphore::new(policy.in_flight.max(1))),
            stats: Arc::new(WriterStats::default()),
        }
    }

    pub fn port(&self) -> &P {
        &self.port
    }

    /// Commits `ci` in a task of its own and returns its handle; waits only for a permit when
    /// [`RetryPolicy::in_flight`] check-ins are already in flight.
    pub async fn submit(&self, ci: CheckIn) -> JoinHandle<Committed> {
        let permit = self.permits.clone().acquire_owned().await;
        let me = self.clone();
        tokio::spawn(async move {
            let r = me.commit(ci).await;
            drop(permit);
            r
        })
    }

    /// Waits until every submitted check-in is recorded or parked.
    pub async fn drain(&self) {
        let n = self.policy.in_flight.max(1) as u32;
        if let Ok(all) = self.permits.acquire_many(n).await {
            drop(all);
        }
    }

    /// Commits `ci`, retrying and parking per the module docs.
    pub async fn commit(&self, ci: CheckIn) -> Committed {
        let s = &self.stats;
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut attempts = 0u32;
        let mut delay = self.policy.first_delay;
        let mut retrying = false;
        let out = loop {
            attempts += 1;
            let e = match self.port.commit(ci.clone()).await {
                Ok(r) => {
                    s.committed.fetch_add(1, Ordering::Relaxed);
                    break Committed::Recorded(r);
                }
                Err(e) => e,
            };
            s.note_error(&e);
            let class = e.class();
            let park = match class {
                ErrorClass::Permanent => Some("refused"),
                ErrorClass::Transient if attempts >= self.policy.transient_attempts => {
                    Some("retries_exhausted")
                }
                _ => None,
            };
            if let Some(reason) = park {
                tracing::error!(student = %ci.student_id, key = %ci.key(), error = %e, attempts, reason, "check-in parked");
                break self.park(&ci, reason, &e.to_string(), attempts).await;
            }
            tracing::warn!(student = %ci.student_id, error = %e, attempts, ?class, "check-in failed; retrying");
            s.retries.fetch_add(1, Ordering::Relaxed);
            if !retrying {
                retrying = true;
                s.retrying.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.policy.max_delay);
        };
        if retrying {
            s.retrying.fetch_sub(1, Ordering::Relaxed);
        }
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
        out
    }

    /// Parks `ci`; a retryable parking failure (the database went away) is retried like a
    /// check-in until it succeeds.
    async fn park(
        &self,
        ci: &CheckIn,
        reason: &'static str,
        error: &str,
        attempts: u32,
    ) -> Committed {
        let s = &self.stats;
        let mut delay = self.policy.first_delay;
        loop {
            match self.port.park(ci, reason, error, attempts).await {
                Ok(_) => {
                    s.parked.fetch_add(1, Ordering::Relaxed);
                    return Committed::Parked {
                        reason,
                        error: error.to_string(),
                    };
                }
                Err(e) if e.is_retryable() => {
                    s.note_error(&e);
                    s.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.policy.max_delay);
                }
                Err(e) => {
                    s.note_error(&e);
                    s.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(student = %ci.student_id, key = %ci.key(), error = %e, "a check-in could not be parked");
                    return Committed::Lost {
                        error: e.to_string(),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_domain::ledger::{AttendanceSource, CheckInOutcome};
    use std::collections::HashMap;

    /// Fails each student's check-in per a script of error classes, then records it.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<HashMap<String, Vec<ErrorClass>>>,
        calls: AtomicU64,
        parked: Mutex<Vec<(String, &'static str, u32)>>,
        park_failures: Mutex<u32>,
    }

    fn err(c: ErrorClass) -> LedgerError {
        match c {
            ErrorClass::Unavailable => LedgerError::Unavailable("connection refused".into()),
            ErrorClass::Transient => LedgerError::Busy("database is locked".into()),
            ErrorClass::Permanent => LedgerError::NotFound {
                entity: "student",
                id: "x".into(),
            },
        }
    }

    impl LedgerPort for Scripted {
        async fn commit(&self, ci: CheckIn) -> Result<CheckInResult, LedgerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = {
                let mut s = self.script.lock().unwrap();
                s.get_mut(&ci.student_id)
                    .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
            };
            if let Some(c) = next {
                return Err(err(c));
            }
            Ok(CheckInResult {
                student_id: ci.student_id.clone(),
                at: ci.at,
                source: ci.source,
                camera_id: ci.camera_id.clone(),
                outcome: CheckInOutcome::Unscheduled,
                balance_units: 0,
                balance: "0".into(),
                alerts: Vec::new(),
            })
        }
        async fn park(
            &self,
            ci: &CheckIn,
            reason: &'static str,
            _error: &str,
            attempts: u32,
        ) -> Result<bool, LedgerError> {
            {
                let mut f = self.park_failures.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return Err(err(ErrorClass::Unavailable));
                }
            }
            self.parked
                .lock()
                .unwrap()
                .push((ci.student_id.clone(), reason, attempts));
            Ok(true)
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            transient_attempts: 4,
            in_flight: 64,
        }
    }

    fn ci(s: &str) -> CheckIn {
        CheckIn::new(s, chrono::Utc::now(), AttendanceSource::Face)
    }

    fn writer(script: &[(&str, Vec<ErrorClass>)]) -> LedgerWriter<Scripted> {
        let port = Scripted::default();
        for (s, v) in script {
            port.script.lock().unwrap().insert(s.to_string(), v.clone());
        }
        LedgerWriter::new(port, fast())
    }

    #[tokio::test]
    async fn a_permanent_failure_is_parked_at_once_and_the_next_ten_commit() {
        let w = writer(&[("bad", vec![ErrorClass::Permanent; 100])]);
        let mut handles = vec![w.submit(ci("bad")).await];
        for i in 0..10 {
            handles.push(w.submit(ci(&format!("s{i}"))).await);
        }
        let mut outcomes = Vec::new();
        for h in handles {
            outcomes.push(h.await.unwrap());
        }
        assert!(
            matches!(
                outcomes[0],
                Committed::Parked {
                    reason: "refused",
                    ..
                }
            ),
            "{:?}",
            outcomes[0]
        );
        for o in &outcomes[1..] {
            assert!(matches!(o, Committed::Recorded(_)), "{o:?}");
        }
        assert_eq!(
            *w.port().parked.lock().unwrap(),
            vec![("bad".to_string(), "refused", 1)]
        );
        assert_eq!(w.stats.committed.load(Ordering::Relaxed), 10);
        assert_eq!(w.stats.parked.load(Ordering::Relaxed), 1);
        assert_eq!(w.stats.in_flight.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_parked_after_the_bound() {
        let w = writer(&[
            ("flaky", vec![ErrorClass::Transient; 2]),
            ("stuck", vec![ErrorClass::Transient; 100]),
        ]);
        let a = w.submit(ci("flaky")).await;
        let b = w.submit(ci("stuck")).await;
        assert!(matches!(a.await.unwrap(), Committed::Recorded(_)));
        assert!(matches!(
            b.await.unwrap(),
            Committed::Parked {
                reason: "retries_exhausted",
                ..
            }
        ));
        assert_eq!(
            *w.port().parked.lock().unwrap(),
            vec![("stuck".to_string(), "retries_exhausted", 4)]
        );
        assert_eq!(w.stats.retries.load(Ordering::Relaxed), 2 + 3);
    }

    #[tokio::test]
    async fn an_unavailable_database_is_waited_for_not_parked() {
        // 30 failures at ≤ 4 ms each: far past the transient bound, yet recorded in the end
        let w = writer(&[("s", vec![ErrorClass::Unavailable; 30])]);
        let h = w.submit(ci("s")).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            w.stats.retrying.load(Ordering::Relaxed),
            1,
            "degraded while retrying"
        );
        assert!(matches!(h.await.unwrap(), Committed::Recorded(_)));
        assert!(w.port().parked.lock().unwrap().is_empty());
        assert_eq!(w.stats.retrying.load(Ordering::Relaxed), 0);
        assert!(w.stats.last_error().unwrap().contains("connection refused"));
    }

    #[tokio::test]
    async fn parking_waits_for_the_database_too() {
        let w = writer(&[("bad", vec![ErrorClass::Permanent])]);
        *w.port().park_failures.lock().unwrap() = 5;
        let r = w.commit(ci("bad")).await;
        assert!(matches!(r, Committed::Parked { .. }), "{r:?}");
        assert_eq!(w.port().parked.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn submit_waits_for_a_permit_when_the_bound_is_reached() {
        let port = Scripted::default();
        port.script
            .lock()
            .unwrap()
            .insert("slow".into(), vec![ErrorClass::Unavailable; 20]);
        let w = LedgerWriter::new(
            port,
            RetryPolicy {
                in_flight: 1,
                ..fast()
            },
        );
        let first = w.submit(ci("slow")).await;
        // the second submit cannot start until the first is done
        let w2 = w.clone();
        let second = tokio::spawn(async move {
            let h = w2.submit(ci("next")).await;
            h.await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!second.is_finished(), "bounded: waits for the first");
        assert!(matches!(first.await.unwrap(), Committed::Recorded(_)));
        assert!(matches!(second.await.unwrap(), Committed::Recorded(_)));
        w.drain().await;
        assert_eq!(w.stats.in_flight.load(Ordering::Relaxed), 0);
    }
}
