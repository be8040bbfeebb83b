//! Corrections by staff: reversing or charging a lesson, and changing an attendance status.

use super::base::{append_entry, audit, lock_student, ms, parse_enum};
use super::timetable::booked_from_row;
use super::Store;
use crate::{LedgerError, Result};
use rollcall_domain::ledger::*;
use serde_json::json;
use sqlx::Row;

impl Store {
    /// Reverses every not-yet-reversed deduction of a lesson; returns the reversal entries.
    pub async fn reverse_lesson(
        &self,
        student: &str,
        lesson: &str,
        actor: &str,
        note: &str,
    ) -> Result<Vec<Entry>> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let rows = sqlx::query(
            "SELECT d.package_id, d.units, d.amount_cents, d.idempotency_key FROM ledger d WHERE d.school_id = $1 AND d.student_id = $2 AND d.lesson_id = $3 AND d.kind = 'deduction' ORDER BY d.seq",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::new();
        let now = ms(self.now());
        for r in &rows {
            let key: String = r.try_get(3)?;
            let e = Entry {
                student_id: student.into(),
                kind: EntryKind::Reversal,
                package_id: r.try_get(0)?,
                lesson_id: Some(lesson.into()),
                units: -r.try_get::<i64, _>(1)?,
                amount_cents: -r.try_get::<i64, _>(2)?,
                idempotency_key: reversal_key(&key),
            };
            if append_entry(&mut *c, &school, &e, now, actor, Some(note)).await? {
                out.push(e);
            }
        }
        w.commit().await?;
        Ok(out)
    }

    /// Charges `units` for a lesson the student attended or missed (e.g. after a reversal);
    /// does nothing when the lesson is already charged.
    pub async fn charge_lesson(
        &self,
        student: &str,
        lesson: &str,
        units: Units,
        actor: &str,
    ) -> Result<DeductionDecision> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let r = sqlx::query(
            "SELECT l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id WHERE l.school_id = $1 AND l.id = $2",
        )
        .bind(&school)
        .bind(lesson)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| LedgerError::NotFound { entity: "lesson", id: lesson.into() })?;
        let (bl, _) = booked_from_row(&r)?;
        let mut alerts = Vec::new();
        let d = self
            .charge(
                &mut *c,
                &school,
                student,
                &bl,
                units.clamp(0, UNITS_PER_LESSON),
                bl.start,
                actor,
                &mut alerts,
                &mut None,
                true,
            )
            .await?;
        w.commit().await?;
        Ok(d)
    }

    /// Corrects the attendance status of a recorded (student, lesson), e.g. `left_early` after
    /// a review, with the before/after in the audit log. The ledger is not touched: a charge
    /// correction is a separate [`Store::reverse_lesson`] / [`Store::charge_lesson`].
    pub async fn set_attendance_status(
        &self,
        student: &str,
        lesson: &str,
        status: AttendanceStatus,
        actor: &str,
    ) -> Result<AttendanceStatus> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let before: String = sqlx::query(
            "SELECT status FROM attendance WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .fetch_optional(w.conn())
        .await?
        .ok_or_else(|| LedgerError::NotFound { entity: "attendance", id: format!("{lesson}/{student}") })?
        .try_get(0)?;
        let before = parse_enum(&before, AttendanceStatus::parse, "attendance status")?;
        sqlx::query("UPDATE attendance SET status = $1 WHERE school_id = $2 AND student_id = $3 AND lesson_id = $4")
            .bind(status.as_str())
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "correct",
            "attendance",
            &format!("{lesson}/{student}"),
            Some(json!({"status": before})),
            Some(json!({"status": status})),
            ms(self.now()),
        )
        .await?;
        w.commit().await?;
        Ok(before)
    }
}
