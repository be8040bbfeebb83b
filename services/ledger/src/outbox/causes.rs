//! Notices caused outside the ledger's own transactions: one written on its own (the review
//! queue's), and the absence notices of students missing at lesson start + late grace.

use crate::db::{from_ms, ms};
use crate::notices::{absence, enqueue_at, NoticeDraft};
use crate::store::Store;
use crate::{LedgerError, Result};
use chrono::{DateTime, Duration, Utc};
use rollcall_domain::ledger::BookedLesson;
use sqlx::Row;

impl Store {
    /// Writes a notice in its own transaction (e.g. `review_needed` from the review queue, or
    /// any cause outside the ledger's own transactions). Code inside the ledger crate that has a
    /// transaction open calls [`crate::notices::enqueue`] on it instead. Returns the rows inserted.
    pub async fn enqueue_notice(&self, d: &NoticeDraft) -> Result<usize> {
        let school = self.outbox_school()?;
        if d.notice_id.is_empty() || d.notice_id.len() > 400 {
            return Err(LedgerError::Invalid {
                field: "notice_id",
                message: "must be 1..=400 characters".into(),
            });
        }
        let mut w = self.write().await?;
        let n = enqueue_at(w.conn(), &school, d, self.now()).await?;
        w.commit().await?;
        Ok(n)
    }

    /// Absence notices at lesson start + late grace: for every lesson that started at least its
    /// late grace ago and has not ended by more than `lookback`, each booked student with no
    /// attendance and no approved leave gets `absence:{student}:{lesson}` (once: the id is
    /// unique). Run periodically (the dispatcher does). Returns the rows written.
    pub async fn notify_missing(&self, now: DateTime<Utc>, lookback: Duration) -> Result<usize> {
        let school = self.outbox_school()?;
        if !self.notify_settings().await?.enabled {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l \
             JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE l.school_id = $1 AND l.finalized_at IS NULL AND l.start_ms <= $2 AND l.end_ms >= $3 ORDER BY l.start_ms, l.id",
        )
        .bind(&school)
        .bind(ms(now))
        .bind(ms(now - lookback))
        .fetch_all(&self.pool)
        .await?;
        let mut written = 0;
        for r in &rows {
            let policy: rollcall_domain::ledger::ClassPolicy =
                serde_json::from_str(&r.try_get::<String, _>(5)?)
                    .map_err(|e| LedgerError::Corrupt(format!("class policy: {e}")))?;
            let lesson = BookedLesson {
                lesson_id: r.try_get(0)?,
                class_id: r.try_get(1)?,
                campus_id: r.try_get(2)?,
                start: from_ms(r.try_get(3)?),
                end: from_ms(r.try_get(4)?),
                timing: policy.timing,
            };
            let due = lesson.start + Duration::minutes(policy.timing.late_grace_minutes.max(0));
            if due > now {
                continue;
            }
            let missing: Vec<String> = sqlx::query(
                "SELECT b.student_id FROM (SELECT student_id FROM enrollments WHERE school_id = $1 AND class_id = $2 \
                 UNION SELECT student_id FROM makeups WHERE school_id = $1 AND lesson_id = $3) b \
                 WHERE NOT EXISTS (SELECT 1 FROM attendance a WHERE a.school_id = $1 AND a.lesson_id = $3 AND a.student_id = b.student_id) \
                 AND NOT EXISTS (SELECT 1 FROM leave_requests q WHERE q.school_id = $1 AND q.lesson_id = $3 AND q.student_id = b.student_id AND q.approved <> 0) \
                 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.school_id = $1 AND o.notice_id = 'absence:' || b.student_id || ':' || $3) \
                 ORDER BY b.student_id",
            )
            .bind(&school)
            .bind(&lesson.class_id)
            .bind(&lesson.lesson_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
            for student in missing {
                let mut w = self.write().await?;
                // re-check under the write lock: a check-in may have landed meanwhile
                let attended = sqlx::query("SELECT 1 FROM attendance WHERE school_id = $1 AND lesson_id = $2 AND student_id = $3")
                    .bind(&school)
                    .bind(&lesson.lesson_id)
                    .bind(&student)
                    .fetch_optional(w.conn())
                    .await?
                    .is_some();
                if !attended {
                    written += enqueue_at(
                        w.conn(),
                        &school,
                        &absence(&student, &lesson, due),
                        self.now(),
                    )
                    .await?;
                }
                w.commit().await?;
            }
        }
        Ok(written)
    }
}
