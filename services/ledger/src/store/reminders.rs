//! Reminders through the outbox: the evening before a lesson, its booked students' guardians
//! are reminded of it; a few days before an instalment falls due (and while it is not paid),
//! the guardians are reminded of the fee. Each guardian's preferences (which notices, which
//! channels, quiet hours) apply as for every notice. Idempotent: a lesson reminder's notice id
//! names the student and lesson (the outbox keeps one row per recipient and channel), a fee
//! reminder is marked on its instalment.

use super::base::ms;
use super::sales::order_in;
use super::timetable::booked_from_row;
use super::Store;
use crate::db::AnyDb;
use crate::notices::{enqueue_many, fee_due, lesson_reminder, NoticeDraft};
use crate::Result;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use rollcall_domain::money::fmt_cents;
use serde::Serialize;
use sqlx::Row;

/// From this local hour on, tomorrow's lessons are reminded of.
pub const LESSON_REMINDER_HOUR: u32 = 18;
/// An instalment is reminded of this many days before it falls due (and on the day).
pub const FEE_REMINDER_DAYS: i64 = 3;

/// What a reminder run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReminderReport {
    /// Lesson reminders drafted (student × lesson) and fee reminders (instalments).
    pub lessons: usize,
    pub fees: usize,
    /// Outbox rows written.
    pub rows: usize,
}

impl Store {
    /// Writes the reminders due at `now`: from [`LESSON_REMINDER_HOUR`] (local), one per
    /// student booked into a lesson of tomorrow (not suspended, not left, no approved leave);
    /// and one per unpaid instalment due within [`FEE_REMINDER_DAYS`]. Running it again writes
    /// nothing more.
    pub async fn send_reminders(&self, now: DateTime<Utc>) -> Result<ReminderReport> {
        let school = self.need_school()?.to_string();
        let off = Duration::minutes(self.tz_offset_minutes());
        let local = now + off;
        let today = local.date_naive();
        let mut drafts: Vec<NoticeDraft> = Vec::new();
        let mut rep = ReminderReport::default();
        if local.hour() >= LESSON_REMINDER_HOUR {
            let tomorrow = today + Duration::days(1);
            let start =
                Utc.from_utc_datetime(&tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default()) - off;
            let lessons = sqlx::query(
                "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l \
                 JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
                 WHERE l.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3 ORDER BY l.start_ms, l.id",
            )
            .bind(&school)
            .bind(ms(start))
            .bind(ms(start + Duration::days(1)))
            .fetch_all(&self.pool)
            .await?;
            for r in &lessons {
                let (lesson, _) = booked_from_row(r)?;
                let students: Vec<String> = sqlx::query_scalar(
                    "SELECT b.student_id FROM (SELECT student_id FROM enrollments WHERE school_id = $1 AND class_id = $2 \
                     UNION SELECT student_id FROM makeups WHERE school_id = $1 AND lesson_id = $3) b \
                     WHERE NOT EXISTS (SELECT 1 FROM students s WHERE s.school_id = $1 AND s.id = b.student_id AND s.status IN ('suspended', 'left')) \
                     AND NOT EXISTS (SELECT 1 FROM leave_requests v WHERE v.school_id = $1 AND v.student_id = b.student_id AND v.lesson_id = $3 AND v.approved = 1) \
                     ORDER BY b.student_id",
                )
                .bind(&school)
                .bind(&lesson.class_id)
                .bind(&lesson.lesson_id)
                .fetch_all(&self.pool)
                .await?;
                let at = lesson.start + off;
                let (date, time) = (
                    at.format("%Y-%m-%d").to_string(),
                    at.format("%H:%M").to_string(),
                );
                for s in students {
                    drafts.push(lesson_reminder(&s, &lesson, &date, &time, now));
                    rep.lessons += 1;
                }
            }
        }
        let mut w = self.write().await?;
        let last = today + Duration::days(FEE_REMINDER_DAYS);
        let due = sqlx::query(
            "SELECT i.order_id, i.n, i.due_on, i.amount_cents FROM instalments i \
             WHERE i.school_id = $1 AND i.reminded_at IS NULL AND i.due_on >= $2 AND i.due_on <= $3 ORDER BY i.due_on, i.order_id, i.n",
        )
        .bind(&school)
        .bind(today.to_string())
        .bind(last.to_string())
        .fetch_all(w.conn())
        .await?;
        for r in &due {
            let (order, n, due_on, amount): (String, i64, String, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let o = order_in(w.conn(), &school, &order).await?;
            let covered = o.instalments.iter().any(|i| i.n == n && i.covered);
            if !covered && due_on.parse::<NaiveDate>().is_ok() {
                drafts.push(fee_due(
                    &o.student_id,
                    &order,
                    n,
                    &due_on,
                    &fmt_cents(amount),
                    now,
                ));
                rep.fees += 1;
            }
            // marked either way: a paid instalment needs no reminder later either
            sqlx::query(
                "UPDATE instalments SET reminded_at = $1 WHERE school_id = $2 AND order_id = $3 AND n = $4",
            )
            .bind(ms(now))
            .bind(&school)
            .bind(&order)
            .bind(n)
            .execute(w.conn())
            .await?;
        }
        rep.rows = enqueue_many(&mut AnyDb(w.conn()), &school, &drafts, now).await?;
        w.commit().await?;
        Ok(rep)
    }
}
