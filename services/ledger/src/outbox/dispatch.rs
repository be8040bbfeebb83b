//! Delivery bookkeeping for the dispatcher (`rollcall-notify`): claiming due rows with a lease,
//! marking them sent, recording a failed attempt (retry at a later time, or dead letter), and
//! putting a dead letter back in the queue.

use super::rows::{row_of, OutboxRow, ROW_COLS};
use crate::db::ms;
use crate::store::{audit, Store};
use crate::{LedgerError, Result};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

impl Store {
    /// Claims up to `limit` due rows for `worker` until `now + lease` (PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`; SQLite: one atomic `UPDATE … RETURNING` under the write lock).
    /// A row whose lease expired (its dispatcher died) is claimable again.
    pub async fn claim_notices(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let school = self.outbox_school()?;
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claim_until = $2, updated_at = $3 WHERE seq IN (\
             SELECT seq FROM outbox WHERE school_id = $4 AND state = 'pending' AND due_at <= $3 \
             AND (claim_until IS NULL OR claim_until < $3) ORDER BY due_at, seq LIMIT $5{lock}) RETURNING {ROW_COLS}"
        );
        let mut w = self.write().await?;
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(ms(now + lease))
            .bind(ms(now))
            .bind(&school)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(w.conn())
            .await?;
        w.commit().await?;
        let mut out = rows.iter().map(row_of).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| (r.due_at, r.id));
        Ok(out)
    }

    /// Marks a row sent (from any claimant: the provider has it). Returns false when it was no
    /// longer pending (another dispatcher already recorded it).
    pub async fn mark_notice_sent(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let school = self.outbox_school()?;
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $1, updated_at = $1, attempts = attempts + 1, claimed_by = NULL, claim_until = NULL, last_error = NULL \
             WHERE school_id = $2 AND seq = $3 AND state = 'pending'",
        )
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        w.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records a failed attempt by `worker` (ignored when its claim was lost): the row becomes
    /// due again at `retry_at`, or dead (`None`) keeping `error`. Returns whether it applied.
    pub async fn mark_notice_failed(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let school = self.outbox_school()?;
        let error: String = error.chars().take(2000).collect();
        let (state, due) = match retry_at {
            Some(t) => ("pending", Some(ms(t))),
            None => ("dead", None),
        };
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = $1, due_at = COALESCE($2, due_at), attempts = attempts + 1, last_error = $3, claimed_by = NULL, claim_until = NULL, updated_at = $4 \
             WHERE school_id = $5 AND seq = $6 AND state = 'pending' AND claimed_by = $7",
        )
        .bind(state)
        .bind(due)
        .bind(&error)
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .bind(worker)
        .execute(w.conn())
        .await?;
        if r.rows_affected() > 0 && retry_at.is_none() {
            audit(
                w.conn(),
                &school,
                worker,
                "dead_letter",
                "notice",
                &id.to_string(),
                None,
                Some(json!({"error": error})),
                ms(now),
            )
            .await?;
        }
        w.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Puts a dead-lettered row back in the queue (staff action, audited); attempts restart.
    pub async fn requeue_notice(&self, id: i64, actor: &str, now: DateTime<Utc>) -> Result<()> {
        let school = self.outbox_school()?;
        let mut w = self.write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, due_at = $1, updated_at = $1 WHERE school_id = $2 AND seq = $3 AND state = 'dead'",
        )
        .bind(ms(now))
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        if r.rows_affected() == 0 {
            return Err(LedgerError::NotFound {
                entity: "dead-lettered notice",
                id: id.to_string(),
            });
        }
        audit(
            w.conn(),
            &school,
            actor,
            "requeue",
            "notice",
            &id.to_string(),
            Some(json!({"state": "dead"})),
            Some(json!({"state": "pending"})),
            ms(now),
        )
        .await?;
        w.commit().await
    }
}
