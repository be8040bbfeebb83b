//! Reads: ledger entries, attendance, check-in events and the audit row count.

use super::base::{from_ms, parse_enum};
use super::Store;
use crate::Result;
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// One stored check-in event (see [`Store::checkin_events`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInEventView {
    pub event_key: String,
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: String,
    pub camera_id: Option<String>,
    pub lesson_id: Option<String>,
    pub outcome: String,
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub note: Option<String>,
    #[serde(flatten)]
    pub entry: Entry,
}

impl Store {
    /// Ledger entries in append order, optionally of one student.
    pub async fn entries(&self, student: Option<&str>) -> Result<Vec<StoredEntry>> {
        let rows = sqlx::query(
            "SELECT seq, student_id, kind, package_id, lesson_id, units, amount_cents, idempotency_key, at, actor, note FROM ledger \
             WHERE school_id = $1 AND ($2 = '' OR student_id = $2) ORDER BY seq",
        )
        .bind(self.need_school()?)
        .bind(student.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEntry {
                    seq: r.try_get(0)?,
                    at: from_ms(r.try_get(8)?),
                    actor: r.try_get(9)?,
                    note: r.try_get(10)?,
                    entry: Entry {
                        student_id: r.try_get(1)?,
                        kind: parse_enum(
                            &r.try_get::<String, _>(2)?,
                            EntryKind::parse,
                            "entry kind",
                        )?,
                        package_id: r.try_get(3)?,
                        lesson_id: r.try_get(4)?,
                        units: r.try_get(5)?,
                        amount_cents: r.try_get(6)?,
                        idempotency_key: r.try_get(7)?,
                    },
                })
            })
            .collect()
    }

    /// Attendance records `(student, lesson, status)`, sorted.
    pub async fn attendance(&self) -> Result<Vec<(String, String, AttendanceStatus)>> {
        let rows = sqlx::query("SELECT student_id, lesson_id, status FROM attendance WHERE school_id = $1 ORDER BY student_id, lesson_id")
            .bind(self.need_school()?)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    parse_enum(
                        &r.try_get::<String, _>(2)?,
                        AttendanceStatus::parse,
                        "status",
                    )?,
                ))
            })
            .collect()
    }

    /// Number of audit rows (for tests and health checks).
    /// The newest check-in events of the school (what each reported check-in did), newest first.
    pub async fn checkin_events(&self, limit: i64) -> Result<Vec<CheckInEventView>> {
        let school = self.need_school()?.to_string();
        let rows = sqlx::query(
            "SELECT event_key, student_id, at, source, camera_id, lesson_id, outcome FROM checkin_events WHERE school_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(&school)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CheckInEventView {
                    event_key: r.try_get(0)?,
                    student_id: r.try_get(1)?,
                    at: from_ms(r.try_get(2)?),
                    source: r.try_get(3)?,
                    camera_id: r.try_get(4)?,
                    lesson_id: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                })
            })
            .collect()
    }

    pub async fn audit_count(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM audit_log WHERE school_id = $1")
                .bind(self.need_school()?)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
    }
}
