//! Finalisation: lessons past their end and grace become absent or excused and are charged per
//! class policy; the expiry sweep and the streak, balance and expiry alert rules.

use super::alerts::raise_alert;
use super::base::{audit, from_ms, lock_student, ms, parse_enum};
use super::packages::load_packages;
use super::timetable::booked_from_row;
use super::Store;
use crate::notices::enqueue_absence;
use crate::Result;
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

/// What a finalisation run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FinalizeReport {
    pub until: Option<DateTime<Utc>>,
    pub lessons_finalized: u64,
    pub absent: u64,
    pub excused: u64,
    pub charged_units: Units,
    pub alerts: Vec<String>,
}

impl Store {
    /// Finalises every lesson due by `until` (end + grace): booked students without attendance
    /// (suspended students, 休学, excepted) become absent or excused and are charged per class
    /// policy; streak, balance and expiry alert rules run. Idempotent: running it again (or
    /// concurrently) changes nothing more.
    pub async fn finalize(&self, until: DateTime<Utc>) -> Result<FinalizeReport> {
        let school = self.need_school()?.to_string();
        let mut rep = FinalizeReport {
            until: Some(until),
            ..Default::default()
        };
        let rows = sqlx::query(
            "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l \
             JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE l.school_id = $1 AND l.finalized_at IS NULL AND l.end_ms <= $2 ORDER BY l.start_ms, l.id",
        )
        .bind(&school)
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let (lesson, policy) = booked_from_row(r)?;
            if lesson.finalize_at() > until {
                continue;
            }
            let students: Vec<String> = sqlx::query(
                "SELECT b.student_id FROM (SELECT student_id FROM enrollments WHERE school_id = $1 AND class_id = $2 \
                 UNION SELECT student_id FROM makeups WHERE school_id = $1 AND lesson_id = $3) b \
                 WHERE NOT EXISTS (SELECT 1 FROM students s WHERE s.school_id = $1 AND s.id = b.student_id AND s.status = 'suspended')",
            )
            .bind(&school)
            .bind(&lesson.class_id)
            .bind(&lesson.lesson_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
            for student in students {
                let mut w = self.write().await?;
                let c = w.conn();
                lock_student(&mut *c, &school, &student).await?;
                let leave = sqlx::query("SELECT approved, requested_at FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
                    .bind(&school)
                    .bind(&student)
                    .bind(&lesson.lesson_id)
                    .fetch_optional(&mut *c)
                    .await?;
                let leave = match leave {
                    Some(r) => Some(Leave {
                        approved: r.try_get::<i64, _>(0)? != 0,
                        requested_at: from_ms(r.try_get(1)?),
                    }),
                    None => None,
                };
                let Some(out) = finalize_absence(&lesson, &policy.absence, leave.as_ref(), until)
                else {
                    continue;
                };
                let ins = sqlx::query(
                    "INSERT INTO attendance (school_id, student_id, lesson_id, status, source, camera_id, at) VALUES ($1, $2, $3, $4, NULL, NULL, $5) \
                     ON CONFLICT (school_id, student_id, lesson_id) DO NOTHING RETURNING at",
                )
                .bind(&school)
                .bind(&student)
                .bind(&lesson.lesson_id)
                .bind(out.status.as_str())
                .bind(ms(lesson.finalize_at()))
                .fetch_optional(&mut *c)
                .await?;
                if ins.is_none() {
                    continue; // attended (or finalised by a concurrent run)
                }
                audit(
                    &mut *c,
                    &school,
                    "finalize",
                    "absence",
                    "attendance",
                    &format!("{}/{student}", lesson.lesson_id),
                    None,
                    Some(json!({"status": out.status, "charge": out.charge})),
                    ms(until),
                )
                .await?;
                enqueue_absence(
                    &mut *c,
                    &school,
                    &student,
                    &lesson,
                    out.status,
                    until,
                    self.now(),
                )
                .await?;
                match out.status {
                    AttendanceStatus::Excused => rep.excused += 1,
                    _ => rep.absent += 1,
                }
                let d = self
                    .charge(
                        &mut *c,
                        &school,
                        &student,
                        &lesson,
                        out.charge.units(),
                        lesson.start,
                        "finalize",
                        &mut rep.alerts,
                        &mut None,
                        true,
                    )
                    .await?;
                rep.charged_units += d.deducted_units();
                if let DeductionDecision::Insufficient { reason, .. } = d {
                    raise_alert(
                        &mut *c,
                        &school,
                        &zero_balance_alert(&student, &lesson.class_id, &lesson.lesson_id, reason),
                        ms(until),
                        &mut rep.alerts,
                        self.now(),
                    )
                    .await?;
                }
                let hist = sqlx::query(
                    "SELECT l.id, a.status FROM attendance a JOIN lessons l ON l.school_id = a.school_id AND l.id = a.lesson_id \
                     WHERE a.school_id = $1 AND a.student_id = $2 AND l.class_id = $3 ORDER BY l.start_ms, l.id",
                )
                .bind(&school)
                .bind(&student)
                .bind(&lesson.class_id)
                .fetch_all(&mut *c)
                .await?;
                let mut history = Vec::with_capacity(hist.len());
                for h in &hist {
                    history.push((
                        h.try_get::<String, _>(0)?,
                        parse_enum(
                            &h.try_get::<String, _>(1)?,
                            AttendanceStatus::parse,
                            "status",
                        )?,
                    ));
                }
                for s in absence_streaks(&history, self.policy.alerts.absence_streak) {
                    raise_alert(
                        &mut *c,
                        &school,
                        &streak_alert(&student, &lesson.class_id, &s),
                        ms(until),
                        &mut rep.alerts,
                        self.now(),
                    )
                    .await?;
                }
                w.commit().await?;
            }
            let mut w = self.write().await?;
            let done = sqlx::query("UPDATE lessons SET finalized_at = $1 WHERE school_id = $2 AND id = $3 AND finalized_at IS NULL")
                .bind(ms(until))
                .bind(&school)
                .bind(&lesson.lesson_id)
                .execute(w.conn())
                .await?;
            if done.rows_affected() > 0 {
                audit(
                    w.conn(),
                    &school,
                    "finalize",
                    "finalize",
                    "lesson",
                    &lesson.lesson_id,
                    None,
                    None,
                    ms(until),
                )
                .await?;
                rep.lessons_finalized += 1;
            }
            w.commit().await?;
        }
        self.expiry_sweep(until, &mut rep.alerts).await?;
        Ok(rep)
    }

    /// Raises an alert for each package expiring within the warning period with lessons left.
    async fn expiry_sweep(&self, now: DateTime<Utc>, raised: &mut Vec<String>) -> Result<()> {
        let school = self.need_school()?.to_string();
        let horizon = now + chrono::Duration::days(self.policy.alerts.expiry_warning_days.max(0));
        let students: Vec<String> = sqlx::query("SELECT DISTINCT student_id FROM packages WHERE school_id = $1 AND expires_at > $2 AND expires_at <= $3")
            .bind(&school)
            .bind(ms(now))
            .bind(ms(horizon))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for s in students {
            let mut w = self.write().await?;
            let (pkgs, _) = load_packages(w.conn(), &school, &s).await?;
            for p in &pkgs {
                if let Some(a) = expiring_alert(&s, p, now, &self.policy.alerts) {
                    raise_alert(w.conn(), &school, &a, ms(now), raised, self.now()).await?;
                }
            }
            w.commit().await?;
        }
        Ok(())
    }
}
