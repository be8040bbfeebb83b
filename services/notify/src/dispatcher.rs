//! The dispatcher: claims due outbox rows under a lease, renders and sends them, and records the
//! outcome — sent, retry later (exponential backoff with jitter), or dead-lettered after
//! `max_attempts` (the last error is kept). Several dispatchers (tasks or processes) may run on
//! one database: claims never overlap while a lease is live, and a dispatcher that dies
//! mid-send leaves its rows to be claimed again when the lease expires. Delivery is therefore at
//! least once; the delivery key sent with each notice lets the receiver keep one copy.
//!
//! Attempts are counted when an outcome is recorded: a dispatcher killed mid-send costs the row
//! no attempt.

use crate::channel::{Channels, Outgoing, SendError};
use crate::templates::render;
use crate::NotifyError;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rollcall_ledger::{OutboxRow, Store};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Dispatcher settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatcherConfig {
    /// Claim owner name; unique per dispatcher (default: host-pid-random).
    pub worker: String,
    /// Rows claimed (and sent concurrently) per tick.
    pub batch: i64,
    /// How long a claim holds; must exceed the longest send (channel timeouts).
    pub lease_ms: u64,
    /// Attempts before a row is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `backoff_max_ms`, then "equal jitter"
    /// (a uniform draw in [delay/2, delay]).
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Sleep between ticks when the queue is drained.
    pub poll_ms: u64,
    /// Every this often, write absence notices for students missing at lesson start + grace
    /// ([`Store::notify_missing`]); 0 = never.
    pub missing_scan_ms: u64,
    /// How far back `notify_missing` looks for lessons (hours).
    pub missing_lookback_h: i64,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            worker: default_worker(),
            batch: 32,
            lease_ms: 60_000,
            max_attempts: 8,
            backoff_base_ms: 2_000,
            backoff_max_ms: 3_600_000,
            poll_ms: 500,
            missing_scan_ms: 30_000,
            missing_lookback_h: 6,
        }
    }
}

fn default_worker() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl DispatcherConfig {
    pub fn validate(&self) -> Result<(), NotifyError> {
        let bad = |field: &'static str, m: &str| {
            Err(NotifyError::Config {
                field,
                message: m.into(),
            })
        };
        if self.worker.is_empty() {
            return bad("worker", "empty");
        }
        if !(1..=10_000).contains(&self.batch) {
            return bad("batch", "must be 1..=10000");
        }
        if self.lease_ms < 100 {
            return bad("lease_ms", "at least 100");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "at least 1");
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            return bad("backoff_base_ms", "must be > 0 and <= backoff_max_ms");
        }
        Ok(())
    }
}

/// Delay before retry number `attempt` (1 = first retry) without jitter.
pub fn backoff(cfg: &DispatcherConfig, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(40);
    let d = cfg.backoff_base_ms.saturating_mul(1u64 << exp);
    Duration::from_millis(d.min(cfg.backoff_max_ms))
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    /// Outcomes that could not be recorded (the lease will expire and the row be sent again).
    pub errors: usize,
}

struct Inner {
    store: Store,
    channels: Channels,
    cfg: DispatcherConfig,
    rng: Mutex<StdRng>,
}

/// A dispatcher for the store's school. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

enum Outcome {
    Sent,
    Retried,
    Dead,
    Error,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        channels: Channels,
        cfg: DispatcherConfig,
    ) -> Result<Dispatcher, NotifyError> {
        Self::with_seed(store, channels, cfg, rand::random())
    }

    /// Jitter drawn from a seeded generator (tests).
    pub fn with_seed(
        store: Store,
        channels: Channels,
        cfg: DispatcherConfig,
        seed: u64,
    ) -> Result<Dispatcher, NotifyError> {
        cfg.validate()?;
        if store.school_id().is_empty() {
            return Err(NotifyError::Config {
                field: "school",
                message: "the store must be scoped to a school".into(),
            });
        }
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                channels,
                cfg,
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
            }),
        })
    }

    pub fn config(&self) -> &DispatcherConfig {
        &self.inner.cfg
    }

    /// Claims the rows due at `now` (one batch), sends them concurrently and records each
    /// outcome. Retries are scheduled from `now`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<TickReport, NotifyError> {
        let cfg = &self.inner.cfg;
        let (store, worker, batch) = (self.inner.store.clone(), cfg.worker.clone(), cfg.batch);
        let lease = chrono::Duration::milliseconds(cfg.lease_ms as i64);
        let rows =
            detached(async move { store.claim_notices(&worker, now, lease, batch).await }).await?;
        let mut rep = TickReport {
            claimed: rows.len(),
            ..Default::default()
        };
        let mut set = JoinSet::new();
        for row in rows {
            let this = self.clone();
            set.spawn(async move { this.deliver(row, now).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Outcome::Sent) => rep.sent += 1,
                Ok(Outcome::Retried) => rep.retried += 1,
                Ok(Outcome::Dead) => rep.dead += 1,
                Ok(Outcome::Error) | Err(_) => rep.errors += 1,
            }
        }
        Ok(rep)
    }

    async fn deliver(&self, row: OutboxRow, now: DateTime<Utc>) -> Outcome {
        let inner = &self.inner;
        let school = inner.store.school_id().to_string();
        let sent = match render(row.kind, &row.language, &row.params) {
            Err(e) => Err(SendError::Permanent(e.to_string())),
            Ok(r) => {
                let out = Outgoing::new(&school, &row, r);
                match inner.channels.route(&row.channel) {
                    Ok(ch) => ch.send(&out).await,
                    Err(e) => Err(e),
                }
            }
        };
        let store = inner.store.clone();
        let id = row.id;
        let recorded = match sent {
            Ok(()) => detached(async move { store.mark_notice_sent(id, now).await })
                .await
                .map(|_| Outcome::Sent),
            Err(e) => {
                let attempt = u32::try_from(row.attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1);
                let retry_at = match &e {
                    SendError::Transient(_) if attempt < inner.cfg.max_attempts => {
                        let d = backoff(&inner.cfg, attempt).as_millis() as i64;
                        let half = d / 2;
                        let j = match inner.rng.lock() {
                            Ok(mut g) => g.gen_range(0..=half),
                            Err(_) => half,
                        };
                        Some(now + chrono::Duration::milliseconds(d - half + j))
                    }
                    _ => None,
                };
                tracing::debug!(key = %row.delivery_key, attempt, error = %e, "notice not delivered");
                let dead = retry_at.is_none();
                let (worker, error) = (inner.cfg.worker.clone(), e.to_string());
                detached(async move {
                    store
                        .mark_notice_failed(id, &worker, &error, now, retry_at)
                        .await
                })
                .await
                .map(|_| {
                    if dead {
                        Outcome::Dead
                    } else {
                        Outcome::Retried
                    }
                })
            }
        };
        match recorded {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(key = %row.delivery_key, error = %e, "could not record a notice outcome");
                Outcome::Error
            }
        }
    }

    /// Runs ticks until `stop` turns true (the current tick finishes first). Also writes
    /// absence notices at lesson start + grace every `missing_scan_ms`.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let cfg = self.inner.cfg.clone();
        let mut last_scan: Option<std::time::Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.inner.store.now();
            if cfg.missing_scan_ms > 0
                && last_scan
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(cfg.missing_scan_ms))
            {
                last_scan = Some(std::time::Instant::now());
                let store = self.inner.store.clone();
                let back = chrono::Duration::hours(cfg.missing_lookback_h.max(1));
                if let Err(e) = detached(async move { store.notify_missing(now, back).await }).await
                {
                    tracing::warn!(error = %e, "absence scan failed");
                }
            }
            let full = match self.run_once(now).await {
                Ok(r) => r.claimed as i64 >= cfg.batch,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher tick failed");
                    false
                }
            };
            if full {
                continue; // a backlog: no sleep
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(cfg.poll_ms)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Runs a store operation on its own task, so that it completes (commits or rolls back) even
/// when the dispatcher is cancelled mid-call: a sqlx transaction abandoned between `BEGIN` and
/// its end can leave a pooled connection inside the transaction (on SQLite, holding the write
/// lock). A cancelled dispatcher thus stops between store operations, as a crash after a commit
/// would; rows it claimed are sent again when their lease expires.
async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, rollcall_ledger::LedgerError>> + Send + 'static,
) -> Result<T, NotifyError> {
    match tokio::spawn(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(NotifyError::Task(e.to_string())),
    }
}

/// A running dispatcher task.
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
}

impl DispatcherHandle {
    /// Asks the loop to stop after its current tick and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.join.await;
    }
    /// Kills the task at its next await point (as a crash would).
    pub fn abort(&self) {
        self.join.abort();
    }
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

/// Spawns [`Dispatcher::run`] on the current tokio runtime (`rollcall serve` calls this).
pub fn spawn_dispatcher(
    store: Store,
    channels: Channels,
    cfg: DispatcherConfig,
) -> Result<DispatcherHandle, NotifyError> {
    let d = Dispatcher::new(store, channels, cfg)?;
    let (stop, rx) = watch::channel(false);
    let join = tokio::spawn(async move { d.run(rx).await });
    Ok(DispatcherHandle { stop, join })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = DispatcherConfig {
            backoff_base_ms: 1000,
            backoff_max_ms: 10_000,
            ..Default::default()
        };
        let got: Vec<u64> = (1..=6)
            .map(|a| backoff(&cfg, a).as_millis() as u64)
            .collect();
        assert_eq!(got, vec![1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(backoff(&cfg, 200).as_millis(), 10_000);
        assert!(DispatcherConfig {
            batch: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(DispatcherConfig {
            backoff_max_ms: 1,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(DispatcherConfig::default().validate().is_ok());
    }
}
