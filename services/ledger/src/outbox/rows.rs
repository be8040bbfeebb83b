//! Outbox rows as stored: reading them (per state, per notice) and counting them per state.

use crate::db::{from_ms, ms};
use crate::notices::{NoticeKind, OutboxState, RecipientKind};
use crate::store::Store;
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

/// One stored outbox row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub delivery_key: String,
    pub notice_id: String,
    pub kind: NoticeKind,
    pub student_id: Option<String>,
    pub recipient_kind: RecipientKind,
    pub recipient_id: String,
    pub channel: String,
    pub address: String,
    pub language: String,
    pub params: Value,
    pub urgent: bool,
    pub state: OutboxState,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub claimed_by: Option<String>,
    pub claim_until: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Outbox rows per state (metrics and the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    /// Pending rows whose `due_at` has passed (a subset of `pending`).
    pub due: i64,
    /// Pending rows under a live claim (being sent now).
    pub in_flight: i64,
    pub sent: i64,
    pub dead: i64,
}

/// The columns [`row_of`] reads, in its order.
pub(super) const ROW_COLS: &str = "seq, delivery_key, notice_id, kind, student_id, recipient_kind, recipient_id, channel, address, language, params_json, urgent, state, attempts, created_at, due_at, claimed_by, claim_until, sent_at, last_error";

fn corrupt(what: &str, v: &str) -> LedgerError {
    LedgerError::Corrupt(format!("{what}: {v:?}"))
}

/// One `outbox` row read with [`ROW_COLS`].
pub(super) fn row_of(r: &AnyRow) -> Result<OutboxRow> {
    let kind: String = r.try_get(3)?;
    let rk: String = r.try_get(5)?;
    let state: String = r.try_get(12)?;
    let params: String = r.try_get(10)?;
    Ok(OutboxRow {
        id: r.try_get(0)?,
        delivery_key: r.try_get(1)?,
        notice_id: r.try_get(2)?,
        kind: NoticeKind::parse(&kind).ok_or_else(|| corrupt("notice kind", &kind))?,
        student_id: r.try_get(4)?,
        recipient_kind: RecipientKind::parse(&rk).ok_or_else(|| corrupt("recipient kind", &rk))?,
        recipient_id: r.try_get(6)?,
        channel: r.try_get(7)?,
        address: r.try_get(8)?,
        language: r.try_get(9)?,
        params: serde_json::from_str(&params)
            .map_err(|e| LedgerError::Corrupt(format!("notice params: {e}")))?,
        urgent: r.try_get::<i64, _>(11)? != 0,
        state: OutboxState::parse(&state).ok_or_else(|| corrupt("outbox state", &state))?,
        attempts: r.try_get(13)?,
        created_at: from_ms(r.try_get(14)?),
        due_at: from_ms(r.try_get(15)?),
        claimed_by: r.try_get(16)?,
        claim_until: r.try_get::<Option<i64>, _>(17)?.map(from_ms),
        sent_at: r.try_get::<Option<i64>, _>(18)?.map(from_ms),
        last_error: r.try_get(19)?,
    })
}

impl Store {
    /// Counts per state at `now` (for /metrics and the API).
    pub async fn outbox_counts(&self, now: DateTime<Utc>) -> Result<OutboxCounts> {
        let r = sqlx::query(
            "SELECT \
             CAST(COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND due_at <= $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'pending' AND claim_until IS NOT NULL AND claim_until >= $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM outbox WHERE school_id = $1",
        )
        .bind(self.outbox_school()?)
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            pending: r.try_get(0)?,
            due: r.try_get(1)?,
            in_flight: r.try_get(2)?,
            sent: r.try_get(3)?,
            dead: r.try_get(4)?,
        })
    }

    /// Outbox rows, newest first, optionally in one state (dead letters for staff:
    /// `Some(OutboxState::Dead)`), at most `limit`.
    pub async fn outbox(&self, state: Option<OutboxState>, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLS} FROM outbox WHERE school_id = $1 AND ($2 = '' OR state = $2) ORDER BY seq DESC LIMIT $3"
        ))
        .bind(self.outbox_school()?)
        .bind(state.map(|s| s.as_str()).unwrap_or(""))
        .bind(limit.clamp(1, 100_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    /// The rows of one notice (every recipient and channel).
    pub async fn notice_rows(&self, notice_id: &str) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLS} FROM outbox WHERE school_id = $1 AND notice_id = $2 ORDER BY seq"
        ))
        .bind(self.outbox_school()?)
        .bind(notice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }
}
