//! The front desk's leave and make-up (issue 21 item 5) and attendance corrections that fix the
//! money (item 4).
//!
//! - A guardian's leave request for an upcoming lesson is entered by staff (`pending`), then
//!   approved or refused by staff; finalisation excuses an approved leave per the class's
//!   absence policy (`leave_requests.approved`, read by [`Store::finalize`]).
//! - A make-up books the student into a lesson of another class, linked to the lesson missed,
//!   on a campus one of the student's packages covers; past the school's monthly number of
//!   make-ups the booking says so (`over_limit`).
//! - A correction sets a recorded attendance status and, in the same transaction, reverses the
//!   lesson's deductions and charges what the new status costs (attended: a whole lesson;
//!   absent or excused: the class's absence policy).
//!
//! Every change writes its audit row in its own transaction; the author is the request's staff
//! member (the actor context) or `actor`.

use super::alerts::raise_alert;
use super::base::{append_entry, audit, from_ms, lock_student, ms, parse_enum};
use super::timetable::booked_from_row;
use super::Store;
use crate::audit::who;
use crate::{LedgerError, Result};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use rollcall_domain::ledger::*;
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// The school setting naming the number of make-ups a month past which a booking is flagged.
pub const MAKEUP_LIMIT_SETTING: &str = "makeups_per_month";
/// The monthly make-up number when the school has not set one.
pub const DEFAULT_MAKEUP_LIMIT: i64 = 4;
/// Longest reason or note a person may give (characters).
pub const MAX_REASON_CHARS: usize = 500;

/// Where a leave request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveState {
    Pending,
    Approved,
    Refused,
}

impl LeaveState {
    pub fn as_str(&self) -> &'static str {
        match self {
            LeaveState::Pending => "pending",
            LeaveState::Approved => "approved",
            LeaveState::Refused => "refused",
        }
    }
    pub fn parse(s: &str) -> Option<LeaveState> {
        [
            LeaveState::Pending,
            LeaveState::Approved,
            LeaveState::Refused,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A lesson as these features show it (the fields of the timetable's lesson view).
#[derive(Debug, Clone, Serialize)]
pub struct LessonBrief {
    pub id: String,
    pub class_id: String,
    pub class_name: String,
    pub campus_id: String,
    pub room_id: Option<String>,
    pub teacher: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub finalized: bool,
}

/// A leave request with its lesson and, when booked, its make-up.
#[derive(Debug, Clone, Serialize)]
pub struct LeaveView {
    pub student_id: String,
    pub student_name: String,
    pub lesson: LessonBrief,
    pub state: LeaveState,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub requested_by: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    /// The make-up lesson booked for the missed lesson, if any.
    pub makeup_lesson_id: Option<String>,
}

/// A make-up booked: the lessons, and the student's make-ups this (school-local) month against
/// the school's number.
#[derive(Debug, Clone, Serialize)]
pub struct MakeupBooking {
    pub student_id: String,
    pub missed_lesson_id: String,
    pub lesson: LessonBrief,
    pub booked_at: DateTime<Utc>,
    pub makeups_this_month: i64,
    pub monthly_limit: i64,
    /// More make-ups this month than the school's number.
    pub over_limit: bool,
}

/// What an attendance correction did.
#[derive(Debug, Clone, Serialize)]
pub struct AttendanceCorrection {
    pub lesson_id: String,
    pub student_id: String,
    /// `None`: nothing was recorded before (the lesson was not finalised yet).
    pub before: Option<AttendanceStatus>,
    pub after: AttendanceStatus,
    /// Hundredths of a lesson charged for the lesson before and after the correction.
    pub charged_before: Units,
    pub charged_after: Units,
    /// The ledger entries written (reversals, then the new deduction).
    pub entries: Vec<Entry>,
}

/// One lesson of a student's attendance history: what is recorded and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct AttendanceLine {
    pub lesson: LessonBrief,
    /// `None`: nothing recorded (yet).
    pub status: Option<AttendanceStatus>,
    /// Hundredths of a lesson charged for it (net of reversals).
    pub charged: Units,
}

const LESSON_COLS: &str =
    "l.id, l.class_id, k.name, l.campus_id, l.room_id, l.teacher, l.start_ms, l.end_ms, l.finalized_at";

/// A lesson of [`LESSON_COLS`] starting at column `i`.
fn lesson_at(r: &AnyRow, i: usize) -> Result<LessonBrief> {
    Ok(LessonBrief {
        id: r.try_get(i)?,
        class_id: r.try_get(i + 1)?,
        class_name: r.try_get(i + 2)?,
        campus_id: r.try_get(i + 3)?,
        room_id: r.try_get(i + 4)?,
        teacher: r.try_get(i + 5)?,
        start: from_ms(r.try_get(i + 6)?),
        end: from_ms(r.try_get(i + 7)?),
        finalized: r.try_get::<Option<i64>, _>(i + 8)?.is_some(),
    })
}

/// A required reason or note: trimmed, not blank, at most [`MAX_REASON_CHARS`] characters.
fn reason_text(field: &'static str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty() {
        return Err(LedgerError::Invalid {
            field,
            message: "is required".into(),
        });
    }
    optional_text(field, v).map(|o| o.unwrap_or_default())
}

/// An optional note: `None` when blank, at most [`MAX_REASON_CHARS`] characters, no control
/// characters.
fn optional_text(field: &'static str, v: &str) -> Result<Option<String>> {
    let v = v.trim();
    if v.chars().count() > MAX_REASON_CHARS {
        return Err(LedgerError::Invalid {
            field,
            message: format!("at most {MAX_REASON_CHARS} characters"),
        });
    }
    if v.chars().any(char::is_control) {
        return Err(LedgerError::Invalid {
            field,
            message: "no control characters".into(),
        });
    }
    Ok(Some(v.to_string()).filter(|v| !v.is_empty()))
}

async fn lesson_on(c: &mut AnyConnection, school: &str, id: &str) -> Result<LessonBrief> {
    let r = sqlx::query(&format!(
        "SELECT {LESSON_COLS} FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id WHERE l.school_id = $1 AND l.id = $2"
    ))
    .bind(school)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| LedgerError::NotFound {
        entity: "lesson",
        id: id.into(),
    })?;
    lesson_at(&r, 0)
}

/// Whether `student` is booked into `lesson` (enrolled in its class, or a make-up).
async fn is_booked(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
    lesson: &LessonBrief,
) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM enrollments WHERE school_id = $1 AND class_id = $2 AND student_id = $3 \
         UNION SELECT 1 FROM makeups WHERE school_id = $1 AND lesson_id = $4 AND student_id = $3",
    )
    .bind(school)
    .bind(&lesson.class_id)
    .bind(student)
    .bind(&lesson.id)
    .fetch_optional(&mut *c)
    .await?
    .is_some())
}

/// The attendance status recorded for (student, lesson), if any.
async fn recorded_status(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
    lesson: &str,
) -> Result<Option<AttendanceStatus>> {
    let r = sqlx::query(
        "SELECT status FROM attendance WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3",
    )
    .bind(school)
    .bind(student)
    .bind(lesson)
    .fetch_optional(&mut *c)
    .await?;
    match r {
        Some(r) => Ok(Some(parse_enum(
            &r.try_get::<String, _>(0)?,
            AttendanceStatus::parse,
            "attendance status",
        )?)),
        None => Ok(None),
    }
}

/// The first instant of the school-local month holding `t`, and of the next month.
fn month_bounds(t: DateTime<Utc>, offset_minutes: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let off = Duration::minutes(offset_minutes);
    let local = (t + off).date_naive();
    let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or(local);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first);
    let at =
        |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()) - off;
    (at(first), at(next))
}

impl Store {
    /// The school's monthly make-up number (the setting, else [`DEFAULT_MAKEUP_LIMIT`]).
    pub async fn makeup_limit(&self) -> Result<i64> {
        let school = self.need_school()?;
        let r = sqlx::query(
            "SELECT value_json FROM school_settings WHERE school_id = $1 AND name = $2",
        )
        .bind(school)
        .bind(MAKEUP_LIMIT_SETTING)
        .fetch_optional(&self.pool)
        .await?;
        match r {
            Some(r) => {
                let v: String = r.try_get(0)?;
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| LedgerError::Corrupt(format!("{MAKEUP_LIMIT_SETTING}: {v:?}")))
            }
            None => Ok(DEFAULT_MAKEUP_LIMIT),
        }
    }

    /// Sets the school's monthly make-up number (0–100), audited with the value before.
    pub async fn set_makeup_limit(&self, limit: i64) -> Result<i64> {
        if !(0..=100).contains(&limit) {
            return Err(LedgerError::Invalid {
                field: "makeups_per_month",
                message: "a whole number from 0 to 100".into(),
            });
        }
        let school = self.need_school()?.to_string();
        let before = self.makeup_limit().await?;
        let now = ms(self.now());
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO school_settings (school_id, name, value_json, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (school_id, name) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at",
        )
        .bind(&school)
        .bind(MAKEUP_LIMIT_SETTING)
        .bind(limit.to_string())
        .bind(now)
        .execute(w.conn())
        .await?;
        audit(
            w.conn(),
            &school,
            &who("staff"),
            "update",
            "setting",
            MAKEUP_LIMIT_SETTING,
            Some(json!({ "value": before })),
            Some(json!({ "value": limit })),
            now,
        )
        .await?;
        w.commit().await?;
        Ok(limit)
    }

    /// Leave requests, newest lesson first: those in `state` (all when `None`), of `student`
    /// (all when `None`).
    pub async fn leave_requests(
        &self,
        state: Option<LeaveState>,
        student: Option<&str>,
    ) -> Result<Vec<LeaveView>> {
        let school = self.need_school()?;
        let rows = sqlx::query(&format!(
            "SELECT q.student_id, s.name, q.state, q.reason, q.requested_at, q.requested_by, q.decided_by, q.decided_at, q.decision_note, \
             (SELECT MIN(m.lesson_id) FROM makeups m WHERE m.school_id = q.school_id AND m.student_id = q.student_id AND m.missed_lesson_id = q.lesson_id), \
             {LESSON_COLS} FROM leave_requests q \
             JOIN students s ON s.school_id = q.school_id AND s.id = q.student_id \
             JOIN lessons l ON l.school_id = q.school_id AND l.id = q.lesson_id \
             JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE q.school_id = $1 AND ($2 = '' OR q.state = $2) AND ($3 = '' OR q.student_id = $3) \
             ORDER BY l.start_ms DESC, q.student_id"
        ))
        .bind(school)
        .bind(state.map_or("", |s| s.as_str()))
        .bind(student.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(leave_from_row).collect()
    }

    /// One leave request.
    pub async fn leave_request(&self, student: &str, lesson: &str) -> Result<LeaveView> {
        self.leave_requests(None, Some(student))
            .await?
            .into_iter()
            .find(|l| l.lesson.id == lesson)
            .ok_or_else(|| LedgerError::NotFound {
                entity: "leave request",
                id: format!("{lesson}/{student}"),
            })
    }

    /// Enters a guardian's leave request for an upcoming lesson the student is booked into:
    /// pending until a staff member decides. A refused request may be entered again.
    pub async fn enter_leave(
        &self,
        student: &str,
        lesson: &str,
        reason: &str,
    ) -> Result<LeaveView> {
        let reason = reason_text("reason", reason)?;
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let l = lesson_on(&mut *c, &school, lesson).await?;
        if l.start <= now {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!("lesson {lesson} has started already: leave is asked for before a lesson (correct its attendance instead)"),
            });
        }
        if !is_booked(&mut *c, &school, student, &l).await? {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!("student {student} is not booked into lesson {lesson}"),
            });
        }
        let before = sqlx::query("SELECT state FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .fetch_optional(&mut *c)
            .await?;
        let before = match before {
            Some(r) => Some(parse_enum(
                &r.try_get::<String, _>(0)?,
                LeaveState::parse,
                "leave state",
            )?),
            None => None,
        };
        if let Some(s @ (LeaveState::Pending | LeaveState::Approved)) = before {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!(
                    "a leave request for lesson {lesson} is {} already",
                    s.as_str()
                ),
            });
        }
        sqlx::query(
            "INSERT INTO leave_requests (school_id, student_id, lesson_id, requested_at, approved, reason, state, requested_by, decided_by, decided_at, decision_note) \
             VALUES ($1, $2, $3, $4, 0, $5, 'pending', $6, NULL, NULL, NULL) \
             ON CONFLICT (school_id, student_id, lesson_id) DO UPDATE SET requested_at = excluded.requested_at, approved = 0, reason = excluded.reason, \
             state = 'pending', requested_by = excluded.requested_by, decided_by = NULL, decided_at = NULL, decision_note = NULL",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .bind(ms(now))
        .bind(&reason)
        .bind(&actor)
        .execute(&mut *c)
        .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "request",
            "leave",
            &format!("{lesson}/{student}"),
            before.map(|s| json!({ "state": s })),
            Some(json!({ "state": LeaveState::Pending, "reason": reason })),
            ms(now),
        )
        .await?;
        w.commit().await?;
        self.leave_request(student, lesson).await
    }

    /// Approves or refuses a pending leave request (before its lesson is finalised), with an
    /// optional note. An approved leave excuses the absence per the class's policy.
    pub async fn decide_leave(
        &self,
        student: &str,
        lesson: &str,
        approve: bool,
        note: &str,
    ) -> Result<LeaveView> {
        let note = optional_text("note", note)?;
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let l = lesson_on(&mut *c, &school, lesson).await?;
        let r = sqlx::query("SELECT state FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "leave request",
                id: format!("{lesson}/{student}"),
            })?;
        let state = parse_enum(
            &r.try_get::<String, _>(0)?,
            LeaveState::parse,
            "leave state",
        )?;
        if state != LeaveState::Pending {
            return Err(LedgerError::Invalid {
                field: "decision",
                message: format!("this leave request is {} already", state.as_str()),
            });
        }
        if l.finalized {
            return Err(LedgerError::Invalid {
                field: "decision",
                message: format!(
                    "lesson {lesson} is finalised already: correct its attendance instead"
                ),
            });
        }
        let after = if approve {
            LeaveState::Approved
        } else {
            LeaveState::Refused
        };
        sqlx::query(
            "UPDATE leave_requests SET state = $1, approved = $2, decided_by = $3, decided_at = $4, decision_note = $5 \
             WHERE school_id = $6 AND student_id = $7 AND lesson_id = $8",
        )
        .bind(after.as_str())
        .bind(i64::from(approve))
        .bind(&actor)
        .bind(ms(now))
        .bind(&note)
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .execute(&mut *c)
        .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            if approve { "approve" } else { "refuse" },
            "leave",
            &format!("{lesson}/{student}"),
            Some(json!({ "state": state })),
            Some(json!({ "state": after, "note": note })),
            ms(now),
        )
        .await?;
        w.commit().await?;
        self.leave_request(student, lesson).await
    }

    /// Upcoming lessons of `student` (enrolled or make-up) starting in `[from, to)`, by start.
    pub async fn booked_lessons(
        &self,
        student: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LessonBrief>> {
        let school = self.need_school()?;
        let rows = sqlx::query(&format!(
            "SELECT {LESSON_COLS} FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE l.school_id = $1 AND l.start_ms >= $3 AND l.start_ms < $4 AND ( \
               EXISTS (SELECT 1 FROM enrollments e WHERE e.school_id = l.school_id AND e.class_id = l.class_id AND e.student_id = $2) \
               OR EXISTS (SELECT 1 FROM makeups m WHERE m.school_id = l.school_id AND m.lesson_id = l.id AND m.student_id = $2)) \
             ORDER BY l.start_ms, l.id"
        ))
        .bind(school)
        .bind(student)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| lesson_at(r, 0)).collect()
    }

    /// The lessons `student` could make `missed` up in: lessons of other classes (a group's or
    /// a 1-on-1 slot) not over by `from`, starting before `to`, not full, the student is not
    /// booked into, on a campus one of the student's packages covers (a package for every campus, or for that campus, not expired
    /// at the lesson's start).
    pub async fn makeup_choices(
        &self,
        student: &str,
        missed: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LessonBrief>> {
        let school = self.need_school()?;
        let m = self.lesson(missed).await?;
        let rows = sqlx::query(&format!(
            "SELECT {LESSON_COLS} FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE l.school_id = $1 AND l.class_id <> $3 AND l.end_ms > $4 AND l.start_ms < $5 \
               AND NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.school_id = l.school_id AND e.class_id = l.class_id AND e.student_id = $2) \
               AND NOT EXISTS (SELECT 1 FROM makeups x WHERE x.school_id = l.school_id AND x.lesson_id = l.id AND x.student_id = $2) \
               AND EXISTS (SELECT 1 FROM packages p WHERE p.school_id = l.school_id AND p.student_id = $2 \
                           AND (p.campus_id IS NULL OR p.campus_id = l.campus_id) AND p.expires_at > l.start_ms) \
               AND (k.capacity IS NULL OR k.capacity > \
                    (SELECT COUNT(*) FROM enrollments e WHERE e.school_id = l.school_id AND e.class_id = l.class_id) \
                    + (SELECT COUNT(*) FROM makeups x WHERE x.school_id = l.school_id AND x.lesson_id = l.id)) \
             ORDER BY l.start_ms, l.id"
        ))
        .bind(school)
        .bind(student)
        .bind(&m.class_id)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| lesson_at(r, 0)).collect()
    }

    /// Books `student` into `lesson` (another class's, not over) to make up `missed` (a lesson
    /// the student was booked into and did not attend), on a campus one of the student's
    /// packages covers; one make-up per missed lesson. Says how many make-ups the student has
    /// booked this school-local month against the school's number.
    pub async fn book_makeup_for(
        &self,
        student: &str,
        missed: &str,
        lesson: &str,
    ) -> Result<MakeupBooking> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        let limit = self.makeup_limit().await?;
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, student).await?;
        let missed_l = lesson_on(&mut *c, &school, missed)
            .await
            .map_err(|e| match e {
                LedgerError::NotFound { .. } => LedgerError::Invalid {
                    field: "missed_lesson_id",
                    message: format!("there is no lesson {missed}"),
                },
                e => e,
            })?;
        let l = lesson_on(&mut *c, &school, lesson)
            .await
            .map_err(|e| match e {
                LedgerError::NotFound { .. } => LedgerError::Invalid {
                    field: "lesson_id",
                    message: format!("there is no lesson {lesson}"),
                },
                e => e,
            })?;
        if !is_booked(&mut *c, &school, student, &missed_l).await? {
            return Err(LedgerError::Invalid {
                field: "missed_lesson_id",
                message: format!("student {student} was not booked into lesson {missed}"),
            });
        }
        if recorded_status(&mut *c, &school, student, missed)
            .await?
            .is_some_and(|s| s.attended())
        {
            return Err(LedgerError::Invalid {
                field: "missed_lesson_id",
                message: format!("student {student} attended lesson {missed}: nothing to make up"),
            });
        }
        let booked = sqlx::query("SELECT lesson_id FROM makeups WHERE school_id = $1 AND student_id = $2 AND missed_lesson_id = $3")
            .bind(&school)
            .bind(student)
            .bind(missed)
            .fetch_optional(&mut *c)
            .await?;
        if let Some(r) = booked {
            let other: String = r.try_get(0)?;
            return Err(LedgerError::Invalid {
                field: "missed_lesson_id",
                message: format!("lesson {missed} is made up already (in lesson {other})"),
            });
        }
        if l.class_id == missed_l.class_id {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: "a make-up is a lesson of another class".into(),
            });
        }
        if l.end <= now {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!("lesson {lesson} is over"),
            });
        }
        if is_booked(&mut *c, &school, student, &l).await? {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!("student {student} is booked into lesson {lesson} already"),
            });
        }
        let covered = sqlx::query(
            "SELECT 1 FROM packages WHERE school_id = $1 AND student_id = $2 AND (campus_id IS NULL OR campus_id = $3) AND expires_at > $4",
        )
        .bind(&school)
        .bind(student)
        .bind(&l.campus_id)
        .bind(ms(l.start))
        .fetch_optional(&mut *c)
        .await?
        .is_some();
        if !covered {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!(
                    "lesson {lesson} is at campus {}, which no package of student {student} covers",
                    l.campus_id
                ),
            });
        }
        // a full lesson (the class's capacity: its enrolled students and make-ups so far)
        let full = sqlx::query(
            "SELECT k.capacity, (SELECT COUNT(*) FROM enrollments e WHERE e.school_id = k.school_id AND e.class_id = k.id) \
             + (SELECT COUNT(*) FROM makeups m WHERE m.school_id = k.school_id AND m.lesson_id = $3) \
             FROM classes k WHERE k.school_id = $1 AND k.id = $2",
        )
        .bind(&school)
        .bind(&l.class_id)
        .bind(lesson)
        .fetch_one(&mut *c)
        .await?;
        let (cap, taken): (Option<i64>, i64) = (full.try_get(0)?, full.try_get(1)?);
        if let Some(cap) = cap.filter(|cap| taken >= *cap) {
            return Err(LedgerError::Invalid {
                field: "lesson_id",
                message: format!("lesson {lesson} is full ({taken} of {cap} places taken)"),
            });
        }
        sqlx::query(
            "INSERT INTO makeups (school_id, student_id, lesson_id, booked_at, missed_lesson_id, booked_by) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .bind(ms(now))
        .bind(missed)
        .bind(&actor)
        .execute(&mut *c)
        .await?;
        let (first, next) = month_bounds(now, self.tz_offset_minutes());
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM makeups WHERE school_id = $1 AND student_id = $2 AND booked_at >= $3 AND booked_at < $4",
        )
        .bind(&school)
        .bind(student)
        .bind(ms(first))
        .bind(ms(next))
        .fetch_one(&mut *c)
        .await?
        .try_get(0)?;
        let over_limit = count > limit;
        if over_limit {
            // one alert per student and school-local month, for the staff
            let month = (first + Duration::minutes(self.tz_offset_minutes())).format("%Y-%m");
            let a = AlertDraft {
                kind: AlertKind::ManyMakeups,
                dedup_key: format!("makeups:{student}:{month}"),
                student_id: student.into(),
                class_id: Some(l.class_id.clone()),
                package_id: None,
                message: format!(
                    "student {student} has {count} make-ups booked in {month}, more than the school's {limit}"
                ),
                data: AlertData {
                    count: Some(count),
                    limit: Some(limit),
                    month: Some(month.to_string()),
                    ..AlertData::default()
                },
            };
            raise_alert(&mut *c, &school, &a, ms(now), &mut Vec::new(), now).await?;
        }
        audit(
            &mut *c,
            &school,
            &actor,
            "book",
            "makeup",
            &format!("{lesson}/{student}"),
            None,
            Some(json!({
                "missed_lesson_id": missed,
                "lesson_id": lesson,
                "makeups_this_month": count,
                "monthly_limit": limit,
                "over_limit": over_limit,
            })),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok(MakeupBooking {
            student_id: student.into(),
            missed_lesson_id: missed.into(),
            lesson: l,
            booked_at: now,
            makeups_this_month: count,
            monthly_limit: limit,
            over_limit,
        })
    }

    /// The lessons `student` is booked into (or has a record of) starting in `[from, to)`,
    /// newest first, with the status recorded and the net charge.
    pub async fn attendance_lines(
        &self,
        student: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttendanceLine>> {
        let school = self.need_school()?;
        let rows = sqlx::query(&format!(
            "SELECT {LESSON_COLS}, a.status, \
             (SELECT CAST(COALESCE(SUM(g.units), 0) AS BIGINT) FROM ledger g WHERE g.school_id = l.school_id AND g.student_id = $2 AND g.lesson_id = l.id AND g.kind IN ('deduction', 'reversal')) \
             FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             LEFT JOIN attendance a ON a.school_id = l.school_id AND a.lesson_id = l.id AND a.student_id = $2 \
             WHERE l.school_id = $1 AND l.start_ms >= $3 AND l.start_ms < $4 AND (a.status IS NOT NULL \
               OR EXISTS (SELECT 1 FROM enrollments e WHERE e.school_id = l.school_id AND e.class_id = l.class_id AND e.student_id = $2) \
               OR EXISTS (SELECT 1 FROM makeups m WHERE m.school_id = l.school_id AND m.lesson_id = l.id AND m.student_id = $2)) \
             ORDER BY l.start_ms DESC, l.id"
        ))
        .bind(school)
        .bind(student)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status = match r.try_get::<Option<String>, _>(9)? {
                    Some(s) => Some(parse_enum(
                        &s,
                        AttendanceStatus::parse,
                        "attendance status",
                    )?),
                    None => None,
                };
                Ok(AttendanceLine {
                    lesson: lesson_at(r, 0)?,
                    status,
                    charged: -r.try_get::<i64, _>(10)?,
                })
            })
            .collect()
    }

    /// The lessons `student` has a make-up booked for (the missed lessons' ids).
    pub async fn makeups_of(&self, student: &str) -> Result<Vec<String>> {
        let school = self.need_school()?;
        let rows = sqlx::query("SELECT missed_lesson_id FROM makeups WHERE school_id = $1 AND student_id = $2 AND missed_lesson_id IS NOT NULL ORDER BY missed_lesson_id")
            .bind(school)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The make-ups `student` booked in the school-local month holding `at`.
    pub async fn makeups_in_month(&self, student: &str, at: DateTime<Utc>) -> Result<i64> {
        let school = self.need_school()?;
        let (first, next) = month_bounds(at, self.tz_offset_minutes());
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM makeups WHERE school_id = $1 AND student_id = $2 AND booked_at >= $3 AND booked_at < $4",
        )
        .bind(school)
        .bind(student)
        .bind(ms(first))
        .bind(ms(next))
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Corrects the attendance of `student` at a started `lesson` they are booked into (or have
    /// a record of) to `status`, and in the same transaction fixes the money: when the lesson's
    /// net charge differs from what `status` costs (attended: a whole lesson; absent: the
    /// class's unexcused charge; excused: the class's excused or short-notice charge per the
    /// approved leave, else the excused charge), its deductions are reversed and the new
    /// charge is made. `reason` is required; one audit row holds before and after.
    pub async fn correct_attendance(
        &self,
        student: &str,
        lesson: &str,
        status: AttendanceStatus,
        reason: &str,
        actor: &str,
    ) -> Result<AttendanceCorrection> {
        let reason = reason_text("reason", reason)?;
        let school = self.need_school()?.to_string();
        let now = self.now();
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
        .ok_or_else(|| LedgerError::NotFound {
            entity: "lesson",
            id: lesson.into(),
        })?;
        let (bl, policy) = booked_from_row(&r)?;
        let lv = lesson_on(&mut *c, &school, lesson).await?;
        if bl.start > now {
            return Err(LedgerError::Invalid {
                field: "lesson",
                message: format!(
                    "lesson {lesson} has not started: enter a leave request for an upcoming lesson"
                ),
            });
        }
        let before = recorded_status(&mut *c, &school, student, lesson).await?;
        if before.is_none() && !is_booked(&mut *c, &school, student, &lv).await? {
            return Err(LedgerError::Invalid {
                field: "student",
                message: format!("student {student} is not booked into lesson {lesson}"),
            });
        }
        if before == Some(status) {
            return Err(LedgerError::Invalid {
                field: "status",
                message: format!(
                    "the attendance is {} already: nothing to correct",
                    status.as_str()
                ),
            });
        }
        // what the new status costs
        let target = if status.attended() {
            UNITS_PER_LESSON
        } else if status == AttendanceStatus::Excused {
            let leave = sqlx::query("SELECT requested_at FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3 AND approved <> 0")
                .bind(&school)
                .bind(student)
                .bind(lesson)
                .fetch_optional(&mut *c)
                .await?;
            match leave {
                Some(q) => {
                    let l = Leave {
                        approved: true,
                        requested_at: from_ms(q.try_get(0)?),
                    };
                    finalize_absence(&bl, &policy.absence, Some(&l), bl.finalize_at())
                        .map_or(policy.absence.excused.units(), |o| o.charge.units())
                }
                None => policy.absence.excused.units(),
            }
        } else {
            policy.absence.unexcused.units()
        };
        // what the lesson costs now (deductions are negative, reversals positive)
        let rows = sqlx::query(
            "SELECT kind, units, package_id, amount_cents, idempotency_key FROM ledger WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3 ORDER BY seq",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .fetch_all(&mut *c)
        .await?;
        let mut charged_before: Units = 0;
        let mut deductions = Vec::new();
        for r in &rows {
            let kind = parse_enum(&r.try_get::<String, _>(0)?, EntryKind::parse, "entry kind")?;
            let units: i64 = r.try_get(1)?;
            match kind {
                EntryKind::Deduction => {
                    charged_before -= units;
                    deductions.push((
                        r.try_get::<Option<String>, _>(2)?,
                        units,
                        r.try_get::<i64, _>(3)?,
                        r.try_get::<String, _>(4)?,
                    ));
                }
                EntryKind::Reversal => charged_before -= units,
                _ => {}
            }
        }
        // the status
        match before {
            Some(_) => {
                sqlx::query("UPDATE attendance SET status = $1 WHERE school_id = $2 AND student_id = $3 AND lesson_id = $4")
                    .bind(status.as_str())
                    .bind(&school)
                    .bind(student)
                    .bind(lesson)
                    .execute(&mut *c)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO attendance (school_id, student_id, lesson_id, status, source, camera_id, at) VALUES ($1, $2, $3, $4, 'manual', NULL, $5)",
                )
                .bind(&school)
                .bind(student)
                .bind(lesson)
                .bind(status.as_str())
                .bind(ms(now))
                .execute(&mut *c)
                .await?;
            }
        }
        // the money
        let mut entries = Vec::new();
        let mut charged_after = charged_before;
        if charged_before != target {
            for (package_id, units, amount, key) in deductions {
                let e = Entry {
                    student_id: student.into(),
                    kind: EntryKind::Reversal,
                    package_id,
                    lesson_id: Some(lesson.into()),
                    units: -units,
                    amount_cents: -amount,
                    idempotency_key: reversal_key(&key),
                };
                if append_entry(&mut *c, &school, &e, ms(now), actor, Some(&reason)).await? {
                    entries.push(e);
                }
            }
            charged_after = charged_before - entries.iter().map(|e| e.units).sum::<Units>();
            if target > 0 {
                let mut alerts = Vec::new();
                let d = self
                    .charge(
                        &mut *c,
                        &school,
                        student,
                        &bl,
                        target,
                        bl.start,
                        actor,
                        &mut alerts,
                        &mut None,
                        true,
                    )
                    .await?;
                charged_after += d.deducted_units();
                let last = sqlx::query(
                    "SELECT package_id, units, amount_cents, idempotency_key FROM ledger WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3 AND kind = 'deduction' ORDER BY seq DESC LIMIT 1",
                )
                .bind(&school)
                .bind(student)
                .bind(lesson)
                .fetch_optional(&mut *c)
                .await?;
                if let (Some(r), true) = (last, d.deducted_units() > 0) {
                    entries.push(Entry {
                        student_id: student.into(),
                        kind: EntryKind::Deduction,
                        package_id: r.try_get(0)?,
                        lesson_id: Some(lesson.into()),
                        units: r.try_get(1)?,
                        amount_cents: r.try_get(2)?,
                        idempotency_key: r.try_get(3)?,
                    });
                }
            }
        }
        audit(
            &mut *c,
            &school,
            actor,
            "correct",
            "attendance",
            &format!("{lesson}/{student}"),
            Some(json!({ "status": before, "charged_units": charged_before })),
            Some(json!({ "status": status, "charged_units": charged_after, "reason": reason })),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok(AttendanceCorrection {
            lesson_id: lesson.into(),
            student_id: student.into(),
            before,
            after: status,
            charged_before,
            charged_after,
            entries,
        })
    }
}

fn leave_from_row(r: &AnyRow) -> Result<LeaveView> {
    Ok(LeaveView {
        student_id: r.try_get(0)?,
        student_name: r.try_get(1)?,
        state: parse_enum(
            &r.try_get::<String, _>(2)?,
            LeaveState::parse,
            "leave state",
        )?,
        reason: r.try_get(3)?,
        requested_at: from_ms(r.try_get(4)?),
        requested_by: r.try_get(5)?,
        decided_by: r.try_get(6)?,
        decided_at: r.try_get::<Option<i64>, _>(7)?.map(from_ms),
        decision_note: r.try_get(8)?,
        makeup_lesson_id: r.try_get(9)?,
        lesson: lesson_at(r, 10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_the_schools_local_month() {
        // 2026-03-31 20:00 UTC is already April 1st at +08:00
        let t = Utc.with_ymd_and_hms(2026, 3, 31, 20, 0, 0).unwrap();
        let (a, b) = month_bounds(t, 480);
        assert_eq!(a, Utc.with_ymd_and_hms(2026, 3, 31, 16, 0, 0).unwrap());
        assert_eq!(b, Utc.with_ymd_and_hms(2026, 4, 30, 16, 0, 0).unwrap());
        let (a, b) = month_bounds(Utc.with_ymd_and_hms(2026, 12, 5, 0, 0, 0).unwrap(), 0);
        assert_eq!(a, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        assert_eq!(b, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(reason_text("reason", "  ").is_err());
        assert_eq!(reason_text("reason", " ill ").unwrap(), "ill");
        assert!(reason_text("reason", &"x".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert!(reason_text("reason", "a\u{7}b").is_err());
        assert_eq!(optional_text("note", " ").unwrap(), None);
    }
}
