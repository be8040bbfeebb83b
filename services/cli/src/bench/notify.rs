//! Dispatcher benchmark against a healthy local webhook receiver ([`crate::receiver`], the one `rollcall notify receiver` runs):
//! 1. backlog: `n` notices enqueued first, then one dispatcher drains them (notices/s);
//! 2. paced: notices enqueued at `rate`/s while the dispatcher runs; delay from the outbox row's
//!    `created_at` (the cause's commit) to the receiver's arrival, p50/p99/max.

use crate::receiver::Receiver;
use anyhow::Result;
use chrono::Utc;
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_ledger::{NoticeDraft, NoticeKind, NotifySettings, StaffRecipient, Store};
use rollcall_notify::{Channels, DispatcherConfig, WebhookChannel};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct NotifyBench {
    pub backend: String,
    pub backlog: usize,
    pub batch: i64,
    pub drain_s: f64,
    pub dispatched_per_s: f64,
    pub paced: usize,
    pub paced_rate_per_s: f64,
    pub poll_ms: u64,
    pub delay_p50_ms: f64,
    pub delay_p99_ms: f64,
    pub delay_max_ms: f64,
    pub redeliveries: u64,
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Runs the benchmark on `store` (a school whose notification settings are replaced: use a
/// scratch database).
pub async fn bench_dispatch(
    store: &Store,
    backlog: usize,
    paced: usize,
    rate: f64,
    batch: i64,
    poll_ms: u64,
) -> Result<NotifyBench> {
    let secret = b"bench-secret-0123456789";
    let rx = Receiver::start(secret, 300).await?;
    store
        .set_notify_settings(
            &NotifySettings {
                enabled: true,
                staff: vec![StaffRecipient {
                    id: "desk".into(),
                    channel: "webhook".into(),
                    address: "desk".into(),
                    language: "en".into(),
                    events: None,
                }],
                ..Default::default()
            },
            "bench",
        )
        .await?;
    let channels = Channels {
        webhook: Some(Arc::new(WebhookChannel::new(
            &rx.url(),
            secret,
            Duration::from_secs(10),
        )?)),
        ..Default::default()
    };
    let cfg = DispatcherConfig {
        batch,
        poll_ms,
        missing_scan_ms: 0,
        ..Default::default()
    };
    let run = SystemClock.now().timestamp_millis();
    let draft = |i: usize| NoticeDraft {
        notice_id: format!("bench:{run}:{i}"),
        kind: NoticeKind::ReviewNeeded,
        student_id: None,
        class_id: None,
        params: json!({"message": format!("bench item {i}")}),
        at: SystemClock.now(),
    };
    // 1. backlog
    for i in 0..backlog {
        store.enqueue_notice(&draft(i)).await?;
    }
    let t0 = Instant::now();
    let d = rollcall_notify::spawn_dispatcher(store.clone(), channels.clone(), cfg.clone())?;
    while rx.counts().1 < backlog {
        if t0.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain_s = t0.elapsed().as_secs_f64();
    // 2. paced
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let start = Instant::now();
    for i in 0..paced {
        let due = start + gap * i as u32;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(w).await;
        }
        store.enqueue_notice(&draft(backlog + i)).await?;
    }
    let t1 = Instant::now();
    while rx.counts().1 < backlog + paced && t1.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.shutdown().await;
    let mut delays: Vec<f64> = rx
        .received()
        .iter()
        .filter_map(|r| {
            let id = r.body.get("notice_id")?.as_str()?;
            let i: usize = id.rsplit(':').next()?.parse().ok()?;
            if i < backlog {
                return None;
            }
            let created: chrono::DateTime<Utc> =
                serde_json::from_value(r.body.get("created_at")?.clone()).ok()?;
            Some((r.received_at - created).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let (raw, distinct, _) = rx.counts();
    Ok(NotifyBench {
        backend: format!("{:?}", store.backend()).to_lowercase(),
        backlog,
        batch,
        drain_s,
        dispatched_per_s: backlog as f64 / drain_s.max(1e-9),
        paced: delays.len(),
        paced_rate_per_s: rate,
        poll_ms,
        delay_p50_ms: pct(&delays, 0.5),
        delay_p99_ms: pct(&delays, 0.99),
        delay_max_ms: delays.last().copied().unwrap_or(0.0),
        redeliveries: raw.saturating_sub(distinct as u64),
    })
}
