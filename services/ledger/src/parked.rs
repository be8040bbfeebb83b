//! Parked check-ins: a check-in the runtime could not commit (the ledger refused it, or it kept
//! failing after its retries) is stored here with its reason instead of being dropped or
//! blocking the check-ins behind it, and a `check_in_failed` alert tells the front desk (a
//! notice to staff through the outbox). Parking is idempotent on the check-in's event key: a
//! second report of the same track adds nothing.

use crate::store::{from_ms, ms, raise_alert, CheckIn, Store};
use crate::Result;
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::{AlertDraft, AlertKind};
use serde::Serialize;
use sqlx::Row;

/// A check-in set aside with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedCheckIn {
    pub seq: i64,
    pub event_key: String,
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: String,
    pub camera_id: Option<String>,
    /// `refused` (the ledger refused it: retrying cannot help) or `retries_exhausted`.
    pub reason: String,
    /// The last error, as the ledger said it.
    pub error: String,
    pub attempts: i64,
    pub parked_at: DateTime<Utc>,
}

impl Store {
    /// Parks `ci` (see the module docs) and raises its `check_in_failed` alert, in one
    /// transaction. Returns `false` when the event was parked already.
    pub async fn park_check_in(
        &self,
        ci: &CheckIn,
        reason: &str,
        error: &str,
        attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let key = ci.key();
        let mut w = self.write().await?;
        let ins = sqlx::query(
            "INSERT INTO parked_check_ins (school_id, event_key, student_id, at, source, camera_id, reason, error, attempts, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (school_id, event_key) DO NOTHING RETURNING seq",
        )
        .bind(&school)
        .bind(&key)
        .bind(&ci.student_id)
        .bind(ms(ci.at))
        .bind(ci.source.as_str())
        .bind(&ci.camera_id)
        .bind(reason)
        .bind(error)
        .bind(i64::from(attempts))
        .bind(ms(now))
        .fetch_optional(w.conn())
        .await?;
        if ins.is_none() {
            return Ok(false);
        }
        // The alert names the student in its message; its student field stays empty so that a
        // check-in of an unknown student can be parked (and reaches staff, never guardians).
        let camera = ci.camera_id.as_deref().unwrap_or("-");
        let draft = AlertDraft {
            kind: AlertKind::CheckInFailed,
            dedup_key: format!("parked:{key}"),
            student_id: String::new(),
            class_id: None,
            package_id: None,
            message: format!(
                "student {} at camera {camera} ({}): {error}",
                ci.student_id,
                ci.source.as_str()
            ),
            data: rollcall_domain::ledger::AlertData {
                student_id: Some(ci.student_id.clone()),
                camera_id: ci.camera_id.clone(),
                source: Some(ci.source.as_str().into()),
                detail: Some(error.to_string()),
                ..Default::default()
            },
        };
        let mut raised = Vec::new();
        raise_alert(w.conn(), &school, &draft, ms(now), &mut raised, self.now()).await?;
        w.commit().await?;
        Ok(true)
    }

    /// The school's parked check-ins, oldest first.
    pub async fn parked_check_ins(&self) -> Result<Vec<ParkedCheckIn>> {
        let school = self.need_school()?;
        let rows = sqlx::query(
            "SELECT seq, event_key, student_id, at, source, camera_id, reason, error, attempts, parked_at FROM parked_check_ins WHERE school_id = $1 ORDER BY seq",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ParkedCheckIn {
                    seq: r.try_get(0)?,
                    event_key: r.try_get(1)?,
                    student_id: r.try_get(2)?,
                    at: from_ms(r.try_get(3)?),
                    source: r.try_get(4)?,
                    camera_id: r.try_get(5)?,
                    reason: r.try_get(6)?,
                    error: r.try_get(7)?,
                    attempts: r.try_get(8)?,
                    parked_at: from_ms(r.try_get(9)?),
                })
            })
            .collect()
    }
}

/// A fresh, empty PostgreSQL database next to `admin_url`'s (for benchmarks and tests that
/// need a ledger of their own on a shared server). Returns its URL and name.
pub async fn create_scratch_database(admin_url: &str, prefix: &str) -> Result<(String, String)> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::AnyConnection::connect(admin_url).await?;
    c.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    c.close().await?;
    let base = admin_url.split('?').next().unwrap_or(admin_url);
    let (base, _) = base.rsplit_once('/').ok_or(crate::LedgerError::Invalid {
        field: "database url",
        message: format!("{admin_url} has no database path"),
    })?;
    Ok((format!("{base}/{name}"), name))
}

/// Drops a database made by [`create_scratch_database`] (its connections are ended first).
pub async fn drop_scratch_database(admin_url: &str, name: &str) -> Result<()> {
    use sqlx::{Connection, Executor};
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(crate::LedgerError::Invalid {
            field: "database name",
            message: name.to_string(),
        });
    }
    let mut c = sqlx::AnyConnection::connect(admin_url).await?;
    c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    c.close().await?;
    Ok(())
}
