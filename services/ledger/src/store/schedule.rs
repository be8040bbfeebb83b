//! Editing the timetable (issue 21 item 6): a class's capacity, teacher, room and absence
//! policy; weekly series of lessons with an end date (skipping holidays); holidays, which
//! cancel that day's lessons; cancelling or moving one lesson (booked guardians are told
//! through the outbox); transferring a student to another class, packages untouched.
//!
//! Rules that keep the money right:
//! - A lesson with any attendance or ledger row, or one already finalised, is never cancelled
//!   or moved: its money is settled by an attendance correction instead.
//! - No series lesson, moved lesson or holiday touches the past: a lesson created in the past
//!   would be finalised at once and charge absences nobody could have attended.
//! - A cancelled lesson leaves `lessons` for `cancelled_lessons` (with who was booked and the
//!   leave and make-ups that went with it), so no check-in, finalisation, reminder or list can
//!   meet it again.
//! - A room or a teacher is never booked twice at the same time by these forms.
//!
//! Every change is one transaction with its audit rows and notices.

use super::base::{audit, check_name, from_ms, ms, parse_json, require};
use super::leave::MAX_REASON_CHARS;
use super::timetable::MAX_CAPACITY;
use super::Store;
use crate::audit::who;
use crate::db::AnyDb;
use crate::notices::{enqueue_many, lesson_changed, NoticeDraft};
use crate::{LedgerError, Result};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use rollcall_domain::ledger::ClassPolicy;
use rollcall_domain::timetable::{local_day, SeriesLesson, WeeklySeries};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeSet;

/// A class's editable settings (all of them: the form and the API send the whole set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassEdit {
    pub name: String,
    /// The class's teacher (a staff username); lessons not started yet that had the old
    /// teacher get the new one.
    pub teacher: String,
    /// The class's usual room; lessons not started yet that had the old room get the new one.
    #[serde(default)]
    pub room_id: Option<String>,
    /// The most students enrolled (make-ups count toward a lesson's); `None`: no limit.
    #[serde(default)]
    pub capacity: Option<i64>,
    pub policy: ClassPolicy,
}

/// What an edit changed beyond the class row.
#[derive(Debug, Clone, Serialize)]
pub struct ClassEdited {
    pub class_id: String,
    /// Lessons not started yet whose teacher or room followed the class.
    pub lessons_updated: usize,
}

/// A weekly series to create (school-local day and time).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSeries {
    pub class_id: String,
    /// `mon` … `sun`.
    pub weekday: String,
    /// `HH:MM`, school time.
    pub start_time: String,
    pub minutes: u32,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Defaults to the class's room.
    #[serde(default)]
    pub room_id: Option<String>,
    /// Defaults to the class's teacher.
    #[serde(default)]
    pub teacher: Option<String>,
}

/// A series as stored.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    pub id: String,
    pub class_id: String,
    pub weekday: String,
    pub start_time: String,
    pub minutes: i64,
    pub first_day: String,
    pub last_day: String,
    pub room_id: Option<String>,
    pub teacher: Option<String>,
    /// Its lessons still on the timetable.
    pub lessons: i64,
}

/// What creating or changing a series did.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesChange {
    pub series_id: String,
    /// Lessons added (ids).
    pub added: Vec<String>,
    /// Lessons cancelled (the series got shorter).
    pub cancelled: Vec<String>,
    /// Days of the series' weekday skipped as holidays.
    pub holidays_skipped: Vec<NaiveDate>,
    /// Guardian notices written.
    pub notices: usize,
}

/// A holiday (a school-local day without lessons).
#[derive(Debug, Clone, Serialize)]
pub struct HolidayView {
    pub day: String,
    pub name: String,
    pub created_by: String,
}

/// What adding a holiday did.
#[derive(Debug, Clone, Serialize)]
pub struct HolidayAdded {
    pub day: NaiveDate,
    pub name: String,
    /// That day's lessons cancelled.
    pub cancelled: Vec<String>,
    pub notices: usize,
}

/// A cancelled lesson as kept.
#[derive(Debug, Clone, Serialize)]
pub struct CancelledLessonView {
    pub id: String,
    pub class_id: String,
    pub campus_id: String,
    pub teacher: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub cancelled_by: String,
    pub cancelled_at: DateTime<Utc>,
    /// Students who were booked.
    pub students: Vec<String>,
}

/// What cancelling a lesson did.
#[derive(Debug, Clone, Serialize)]
pub struct LessonCancelled {
    pub lesson_id: String,
    /// Students who were booked (their guardians are told).
    pub students: Vec<String>,
    /// Leave requests and make-up bookings that went with the lesson.
    pub leave_dropped: usize,
    pub makeups_dropped: usize,
    pub notices: usize,
}

/// Where a lesson moves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonMove {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `None`: the room stays.
    #[serde(default)]
    pub room_id: Option<String>,
    /// `None`: the teacher stays.
    #[serde(default)]
    pub teacher: Option<String>,
    pub reason: String,
}

/// What moving a lesson did.
#[derive(Debug, Clone, Serialize)]
pub struct LessonMoved {
    pub lesson_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub students: Vec<String>,
    pub notices: usize,
}

/// What a transfer did.
#[derive(Debug, Clone, Serialize)]
pub struct Transferred {
    pub student_id: String,
    pub from_class: String,
    pub to_class: String,
    /// Leave requests for the old class's lessons still to come, dropped with the enrollment.
    pub leave_dropped: usize,
}

fn invalid(field: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::Invalid {
        field,
        message: message.into(),
    }
}

fn reason_of(v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty() {
        return Err(invalid("reason", "a reason is required"));
    }
    if v.chars().count() > MAX_REASON_CHARS {
        return Err(invalid(
            "reason",
            format!("at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid("reason", "must not contain control characters"));
    }
    Ok(v.to_string())
}

fn check_capacity(cap: Option<i64>) -> Result<()> {
    match cap {
        Some(n) if !(1..=MAX_CAPACITY).contains(&n) => Err(invalid(
            "capacity",
            format!("a class holds 1 to {MAX_CAPACITY} students (empty: no limit)"),
        )),
        _ => Ok(()),
    }
}

/// `mon` … `sun` (also `monday`…, any case).
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    s.trim().parse::<Weekday>().ok()
}

fn weekday_str(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

fn parse_hm(s: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| {
        invalid(
            "start_time",
            format!("{s:?}: a time as HH:MM (school time)"),
        )
    })
}

/// The class's campus, teacher and room.
struct ClassRow {
    campus_id: String,
    teacher: String,
    room_id: Option<String>,
}

async fn class_row(c: &mut AnyConnection, school: &str, class: &str) -> Result<ClassRow> {
    let r = sqlx::query(
        "SELECT campus_id, teacher, room_id FROM classes WHERE school_id = $1 AND id = $2",
    )
    .bind(school)
    .bind(class)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| LedgerError::NotFound {
        entity: "class",
        id: class.into(),
    })?;
    Ok(ClassRow {
        campus_id: r.try_get(0)?,
        teacher: r.try_get(1)?,
        room_id: r.try_get(2)?,
    })
}

/// A room of the class's campus.
async fn check_room(c: &mut AnyConnection, school: &str, room: &str, campus: &str) -> Result<()> {
    let r = sqlx::query("SELECT campus_id FROM rooms WHERE school_id = $1 AND id = $2")
        .bind(school)
        .bind(room)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| invalid("room_id", format!("there is no room {room:?}")))?;
    let at: String = r.try_get(0)?;
    if at != campus {
        return Err(invalid(
            "room_id",
            format!("room {room:?} is at campus {at:?}, the class at {campus:?}"),
        ));
    }
    Ok(())
}

/// The first lesson (other than `except`) that holds `room` or `teacher` during
/// `[start, end)`, as a message naming it.
async fn clash(
    c: &mut AnyConnection,
    school: &str,
    room: Option<&str>,
    teacher: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: &str,
) -> Result<Option<(&'static str, String)>> {
    let r = sqlx::query(
        "SELECT id, room_id, teacher, start_ms FROM lessons WHERE school_id = $1 AND start_ms < $2 AND end_ms > $3 AND id <> $4 \
         AND (teacher = $5 OR room_id = $6) ORDER BY start_ms, id",
    )
    .bind(school)
    .bind(ms(end))
    .bind(ms(start))
    .bind(except)
    .bind(teacher)
    .bind(room)
    .fetch_optional(&mut *c)
    .await?;
    let Some(r) = r else { return Ok(None) };
    let (id, r_room, r_teacher): (String, Option<String>, String) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    Ok(Some(if r_teacher == teacher {
        (
            "teacher",
            format!("teacher {teacher:?} teaches lesson {id:?} at that time"),
        )
    } else {
        (
            "room_id",
            format!(
                "room {:?} is taken by lesson {id:?} at that time",
                r_room.unwrap_or_default()
            ),
        )
    }))
}

/// Students booked into `lesson` (enrolled in its class or booked as a make-up), who have not
/// left the school, by id.
async fn booked_students(
    c: &mut AnyConnection,
    school: &str,
    class: &str,
    lesson: &str,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT b.student_id FROM (SELECT student_id FROM enrollments WHERE school_id = $1 AND class_id = $2 \
         UNION SELECT student_id FROM makeups WHERE school_id = $1 AND lesson_id = $3) b \
         WHERE NOT EXISTS (SELECT 1 FROM students s WHERE s.school_id = $1 AND s.id = b.student_id AND s.status = 'left') \
         ORDER BY b.student_id",
    )
    .bind(school)
    .bind(class)
    .bind(lesson)
    .fetch_all(&mut *c)
    .await?)
}

/// A lesson as it stands, for the cancel and move rules.
struct LessonRow {
    class_id: String,
    campus_id: String,
    room_id: Option<String>,
    teacher: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    finalized: bool,
    series_id: Option<String>,
}

async fn lesson_row(c: &mut AnyConnection, school: &str, id: &str) -> Result<LessonRow> {
    let r = sqlx::query(
        "SELECT class_id, campus_id, room_id, teacher, start_ms, end_ms, finalized_at, series_id FROM lessons WHERE school_id = $1 AND id = $2",
    )
    .bind(school)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| LedgerError::NotFound {
        entity: "lesson",
        id: id.into(),
    })?;
    Ok(LessonRow {
        class_id: r.try_get(0)?,
        campus_id: r.try_get(1)?,
        room_id: r.try_get(2)?,
        teacher: r.try_get(3)?,
        start: from_ms(r.try_get(4)?),
        end: from_ms(r.try_get(5)?),
        finalized: r.try_get::<Option<i64>, _>(6)?.is_some(),
        series_id: r.try_get(7)?,
    })
}

/// Refuses to touch a lesson whose money may have moved: finalised, or with any attendance or
/// ledger row.
async fn untouched(c: &mut AnyConnection, school: &str, id: &str, l: &LessonRow) -> Result<()> {
    if l.finalized {
        return Err(LedgerError::Conflict(format!(
            "lesson {id:?} is finalised: correct its attendance instead"
        )));
    }
    let recorded = sqlx::query(
        "SELECT 1 FROM attendance WHERE school_id = $1 AND lesson_id = $2 \
         UNION ALL SELECT 1 FROM ledger WHERE school_id = $1 AND lesson_id = $2",
    )
    .bind(school)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    if recorded.is_some() {
        return Err(LedgerError::Conflict(format!(
            "lesson {id:?} has attendance recorded: correct its attendance instead"
        )));
    }
    Ok(())
}

/// The school-local date and time of `t` as text.
fn local_text(t: DateTime<Utc>, off: i64) -> (String, String) {
    let at = t + Duration::minutes(off);
    (
        at.format("%Y-%m-%d").to_string(),
        at.format("%H:%M").to_string(),
    )
}

/// Cancels lesson `id` inside the caller's transaction (see the module's rules); `notify`:
/// the booked students' guardians are told (lessons still to come).
#[allow(clippy::too_many_arguments)]
async fn cancel_in(
    c: &mut AnyConnection,
    school: &str,
    id: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
    off: i64,
    drafts: &mut Vec<NoticeDraft>,
) -> Result<LessonCancelled> {
    let l = lesson_row(&mut *c, school, id).await?;
    untouched(&mut *c, school, id, &l).await?;
    let students = booked_students(&mut *c, school, &l.class_id, id).await?;
    let leave: Vec<(String, String)> = sqlx::query(
        "SELECT student_id, state FROM leave_requests WHERE school_id = $1 AND lesson_id = $2 ORDER BY student_id",
    )
    .bind(school)
    .bind(id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Result<_>>()?;
    let makeups: Vec<(String, Option<String>)> = sqlx::query(
        "SELECT student_id, missed_lesson_id FROM makeups WHERE school_id = $1 AND lesson_id = $2 ORDER BY student_id",
    )
    .bind(school)
    .bind(id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Result<_>>()?;
    let booked = json!({
        "students": students,
        "leave": leave.iter().map(|(s, st)| json!({"student_id": s, "state": st})).collect::<Vec<_>>(),
        "makeups": makeups.iter().map(|(s, m)| json!({"student_id": s, "missed_lesson_id": m})).collect::<Vec<_>>(),
    });
    for sql in [
        "DELETE FROM leave_requests WHERE school_id = $1 AND lesson_id = $2",
        "DELETE FROM makeups WHERE school_id = $1 AND lesson_id = $2",
    ] {
        sqlx::query(sql)
            .bind(school)
            .bind(id)
            .execute(&mut *c)
            .await?;
    }
    sqlx::query(
        "INSERT INTO cancelled_lessons (school_id, id, class_id, campus_id, room_id, teacher, start_ms, end_ms, series_id, reason, cancelled_by, cancelled_at, booked_json) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(school)
    .bind(id)
    .bind(&l.class_id)
    .bind(&l.campus_id)
    .bind(&l.room_id)
    .bind(&l.teacher)
    .bind(ms(l.start))
    .bind(ms(l.end))
    .bind(&l.series_id)
    .bind(reason)
    .bind(actor)
    .bind(ms(now))
    .bind(booked.to_string())
    .execute(&mut *c)
    .await?;
    sqlx::query("DELETE FROM lessons WHERE school_id = $1 AND id = $2")
        .bind(school)
        .bind(id)
        .execute(&mut *c)
        .await?;
    audit(
        &mut *c,
        school,
        actor,
        "cancel",
        "lesson",
        id,
        Some(json!({"class_id": l.class_id, "start": l.start, "end": l.end, "room_id": l.room_id, "teacher": l.teacher})),
        Some(json!({"reason": reason, "booked": booked})),
        ms(now),
    )
    .await?;
    let before = drafts.len();
    if l.end > now {
        let (date, time) = local_text(l.start, off);
        for s in &students {
            drafts.push(lesson_changed(
                s,
                &l.class_id,
                id,
                "cancelled",
                (&date, &time),
                None,
                reason,
                now,
            ));
        }
    }
    Ok(LessonCancelled {
        lesson_id: id.into(),
        students,
        leave_dropped: leave.len(),
        makeups_dropped: makeups.len(),
        notices: drafts.len() - before,
    })
}

/// The school's holidays as a set of days.
async fn holiday_set(c: &mut AnyConnection, school: &str) -> Result<BTreeSet<NaiveDate>> {
    let days: Vec<String> = sqlx::query_scalar("SELECT day FROM holidays WHERE school_id = $1")
        .bind(school)
        .fetch_all(&mut *c)
        .await?;
    Ok(days.iter().filter_map(|d| d.parse().ok()).collect())
}

/// Inserts the lessons of series `sid` for `days` of `lessons` (clash-checked), with ids
/// `{sid}-{yyyymmdd}`.
#[allow(clippy::too_many_arguments)]
async fn insert_series_lessons(
    c: &mut AnyConnection,
    school: &str,
    sid: &str,
    class: &str,
    k: &ClassRow,
    room: Option<&str>,
    teacher: &str,
    lessons: &[SeriesLesson],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut added = Vec::new();
    for l in lessons {
        let id = format!("{sid}-{}", l.day.format("%Y%m%d"));
        if let Some((field, m)) = clash(&mut *c, school, room, teacher, l.start, l.end, &id).await?
        {
            return Err(invalid(field, format!("{}: {m}", l.day)));
        }
        let taken = sqlx::query("SELECT 1 FROM lessons WHERE school_id = $1 AND id = $2")
            .bind(school)
            .bind(&id)
            .fetch_optional(&mut *c)
            .await?;
        if taken.is_some() {
            return Err(LedgerError::Conflict(format!(
                "lesson {id:?} exists already"
            )));
        }
        sqlx::query(
            "INSERT INTO lessons (school_id, id, class_id, campus_id, room_id, teacher, start_ms, end_ms, series_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(school)
        .bind(&id)
        .bind(class)
        .bind(&k.campus_id)
        .bind(room)
        .bind(teacher)
        .bind(ms(l.start))
        .bind(ms(l.end))
        .bind(sid)
        .execute(&mut *c)
        .await?;
        added.push(id);
    }
    if !added.is_empty() {
        audit(
            &mut *c,
            school,
            actor,
            "create",
            "lessons",
            sid,
            None,
            Some(json!({"lessons": added})),
            ms(now),
        )
        .await?;
    }
    Ok(added)
}

impl Store {
    /// Changes a class's settings; lessons not started yet follow a new teacher or room (those
    /// that had the class's old one).
    pub async fn edit_class(&self, class: &str, e: &ClassEdit) -> Result<ClassEdited> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        check_name("name", &e.name)?;
        check_name("teacher", &e.teacher)?;
        check_capacity(e.capacity)?;
        let mut w = self.write().await?;
        let c = w.conn();
        let r = sqlx::query(
            "SELECT name, teacher, room_id, capacity, kind, policy_json, campus_id FROM classes WHERE school_id = $1 AND id = $2",
        )
        .bind(&school)
        .bind(class)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "class",
            id: class.into(),
        })?;
        let (name, teacher, room, capacity, kind, policy, campus): (
            String,
            String,
            Option<String>,
            Option<i64>,
            String,
            String,
            String,
        ) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
        );
        if kind == super::timetable::ClassKind::OneOnOne.as_str() && e.capacity != Some(1) {
            return Err(invalid(
                "capacity",
                "a 1-on-1 class holds exactly 1 student",
            ));
        }
        if let Some(room) = &e.room_id {
            check_room(&mut *c, &school, room, &campus).await?;
        }
        if let Some(cap) = e.capacity {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM enrollments WHERE school_id = $1 AND class_id = $2",
            )
            .bind(&school)
            .bind(class)
            .fetch_one(&mut *c)
            .await?;
            if n > cap {
                return Err(invalid(
                    "capacity",
                    format!("{n} students are enrolled: transfer some before lowering the capacity to {cap}"),
                ));
            }
        }
        let policy_json =
            serde_json::to_string(&e.policy).map_err(|x| LedgerError::Corrupt(x.to_string()))?;
        sqlx::query(
            "UPDATE classes SET name = $1, teacher = $2, room_id = $3, capacity = $4, policy_json = $5 WHERE school_id = $6 AND id = $7",
        )
        .bind(e.name.trim())
        .bind(e.teacher.trim())
        .bind(&e.room_id)
        .bind(e.capacity)
        .bind(&policy_json)
        .bind(&school)
        .bind(class)
        .execute(&mut *c)
        .await?;
        let mut updated = 0;
        if teacher != e.teacher.trim() {
            updated += sqlx::query(
                "UPDATE lessons SET teacher = $1 WHERE school_id = $2 AND class_id = $3 AND teacher = $4 AND start_ms > $5 AND finalized_at IS NULL",
            )
            .bind(e.teacher.trim())
            .bind(&school)
            .bind(class)
            .bind(&teacher)
            .bind(ms(now))
            .execute(&mut *c)
            .await?
            .rows_affected() as usize;
        }
        if room != e.room_id {
            let q = match &room {
                Some(_) => "UPDATE lessons SET room_id = $1 WHERE school_id = $2 AND class_id = $3 AND room_id = $4 AND start_ms > $5 AND finalized_at IS NULL",
                None => "UPDATE lessons SET room_id = $1 WHERE school_id = $2 AND class_id = $3 AND (room_id IS NULL OR room_id = $4) AND start_ms > $5 AND finalized_at IS NULL",
            };
            updated += sqlx::query(q)
                .bind(&e.room_id)
                .bind(&school)
                .bind(class)
                .bind(room.clone().unwrap_or_default())
                .bind(ms(now))
                .execute(&mut *c)
                .await?
                .rows_affected() as usize;
        }
        let old_policy: serde_json::Value = parse_json(&policy, "class policy")?;
        audit(
            &mut *c,
            &school,
            &actor,
            "edit",
            "class",
            class,
            Some(json!({"name": name, "teacher": teacher, "room_id": room, "capacity": capacity, "policy": old_policy})),
            Some(json!({"edit": e, "lessons_updated": updated})),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok(ClassEdited {
            class_id: class.into(),
            lessons_updated: updated,
        })
    }

    /// Creates a weekly series and its lessons (holidays skipped), refusing a day in the past,
    /// a clash of room or teacher, and an existing lesson id.
    pub async fn create_series(&self, s: &NewSeries) -> Result<SeriesChange> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let off = self.tz_offset_minutes();
        let actor = who("staff");
        let weekday = parse_weekday(&s.weekday)
            .ok_or_else(|| invalid("weekday", format!("{:?}: mon, tue, … sun", s.weekday)))?;
        let series = WeeklySeries {
            weekday,
            start: parse_hm(&s.start_time)?,
            minutes: s.minutes,
            first_day: s.first_day,
            last_day: s.last_day,
        };
        series
            .check()
            .map_err(|e| invalid(e.field(), e.to_string()))?;
        let mut w = self.write().await?;
        let c = w.conn();
        let k = class_row(&mut *c, &school, &s.class_id).await?;
        let room = s.room_id.clone().or(k.room_id.clone());
        if let Some(r) = &room {
            check_room(&mut *c, &school, r, &k.campus_id).await?;
        }
        let teacher = s.teacher.clone().unwrap_or(k.teacher.clone());
        check_name("teacher", &teacher)?;
        let holidays = holiday_set(&mut *c, &school).await?;
        let lessons = series
            .lessons(&holidays, off)
            .map_err(|e| invalid(e.field(), e.to_string()))?;
        if let Some(first) = lessons.first() {
            if first.start <= now {
                return Err(invalid(
                    "first_day",
                    format!(
                        "the first lesson ({}) would be in the past: start the series from a later day",
                        first.day
                    ),
                ));
            }
        } else {
            return Err(invalid(
                "last_day",
                "no lesson falls between the first and the last day (weekday or holidays)",
            ));
        }
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM lesson_series WHERE school_id = $1 AND class_id = $2",
        )
        .bind(&school)
        .bind(&s.class_id)
        .fetch_one(&mut *c)
        .await?;
        let sid = format!("{}-s{}", s.class_id, n + 1);
        let hm = series.start.format("%H:%M").to_string();
        sqlx::query(
            "INSERT INTO lesson_series (school_id, id, class_id, weekday, start_local, minutes, first_day, last_day, room_id, teacher, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&school)
        .bind(&sid)
        .bind(&s.class_id)
        .bind(i64::from(weekday.number_from_monday()))
        .bind(&hm)
        .bind(i64::from(s.minutes))
        .bind(s.first_day.to_string())
        .bind(s.last_day.to_string())
        .bind(&room)
        .bind(&teacher)
        .bind(&actor)
        .bind(ms(now))
        .execute(&mut *c)
        .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "create",
            "series",
            &sid,
            None,
            Some(json!(s)),
            ms(now),
        )
        .await?;
        let added = insert_series_lessons(
            &mut *c,
            &school,
            &sid,
            &s.class_id,
            &k,
            room.as_deref(),
            &teacher,
            &lessons,
            &actor,
            now,
        )
        .await?;
        let holidays_skipped = skipped(&series, &holidays);
        w.commit().await?;
        Ok(SeriesChange {
            series_id: sid,
            added,
            cancelled: Vec::new(),
            holidays_skipped,
            notices: 0,
        })
    }

    /// Moves a series' last day: earlier cancels its lessons after it (guardians told), later
    /// adds lessons up to it (holidays skipped, clashes refused). Days already past stay as
    /// they are.
    pub async fn set_series_end(
        &self,
        sid: &str,
        last_day: NaiveDate,
        reason: &str,
    ) -> Result<SeriesChange> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let off = self.tz_offset_minutes();
        let actor = who("staff");
        let reason = reason_of(reason)?;
        let mut w = self.write().await?;
        let c = w.conn();
        let r = sqlx::query(
            "SELECT class_id, weekday, start_local, minutes, first_day, last_day, room_id, teacher FROM lesson_series WHERE school_id = $1 AND id = $2",
        )
        .bind(&school)
        .bind(sid)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "series",
            id: sid.into(),
        })?;
        let class: String = r.try_get(0)?;
        let wd: i64 = r.try_get(1)?;
        let weekday = Weekday::try_from((wd - 1).clamp(0, 6) as u8)
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let first: NaiveDate = parse_day(&r.try_get::<String, _>(4)?)?;
        let old_last: NaiveDate = parse_day(&r.try_get::<String, _>(5)?)?;
        let series = WeeklySeries {
            weekday,
            start: parse_hm(&r.try_get::<String, _>(2)?)?,
            minutes: u32::try_from(r.try_get::<i64, _>(3)?)
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?,
            first_day: first,
            last_day,
        };
        series
            .check()
            .map_err(|e| invalid(e.field(), e.to_string()))?;
        let today = local_day(now, off);
        if last_day < today {
            return Err(invalid(
                "last_day",
                format!("{last_day} is in the past: a series ends today ({today}) at the earliest"),
            ));
        }
        let room: Option<String> = r.try_get(6)?;
        let teacher: Option<String> = r.try_get(7)?;
        let mut drafts = Vec::new();
        let mut cancelled = Vec::new();
        let mut added = Vec::new();
        let holidays = holiday_set(&mut *c, &school).await?;
        if last_day < old_last {
            let after = rollcall_domain::timetable::local_instant(
                last_day + Duration::days(1),
                NaiveTime::MIN,
                off,
            );
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM lessons WHERE school_id = $1 AND series_id = $2 AND start_ms >= $3 ORDER BY start_ms",
            )
            .bind(&school)
            .bind(sid)
            .bind(ms(after.max(now)))
            .fetch_all(&mut *c)
            .await?;
            for id in ids {
                cancel_in(
                    &mut *c,
                    &school,
                    &id,
                    &reason,
                    &actor,
                    now,
                    off,
                    &mut drafts,
                )
                .await?;
                cancelled.push(id);
            }
        } else if last_day > old_last {
            let k = class_row(&mut *c, &school, &class).await?;
            let more = WeeklySeries {
                first_day: (old_last + Duration::days(1)).max(today),
                ..series
            };
            let lessons: Vec<SeriesLesson> = more
                .lessons(&holidays, off)
                .map_err(|e| invalid(e.field(), e.to_string()))?
                .into_iter()
                .filter(|l| l.start > now)
                .collect();
            added = insert_series_lessons(
                &mut *c,
                &school,
                sid,
                &class,
                &k,
                room.as_deref(),
                &teacher.clone().unwrap_or(k.teacher.clone()),
                &lessons,
                &actor,
                now,
            )
            .await?;
        }
        sqlx::query("UPDATE lesson_series SET last_day = $1 WHERE school_id = $2 AND id = $3")
            .bind(last_day.to_string())
            .bind(&school)
            .bind(sid)
            .execute(&mut *c)
            .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "set_end",
            "series",
            sid,
            Some(json!({"last_day": old_last})),
            Some(json!({"last_day": last_day, "reason": reason, "added": added, "cancelled": cancelled})),
            ms(now),
        )
        .await?;
        let notices = enqueue_many(&mut AnyDb(&mut *c), &school, &drafts, now).await?;
        w.commit().await?;
        Ok(SeriesChange {
            series_id: sid.into(),
            added,
            cancelled,
            holidays_skipped: skipped(&series, &holidays),
            notices,
        })
    }

    /// The school's rooms: (id, campus, name), by campus and id.
    pub async fn rooms(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT id, campus_id, name FROM rooms WHERE school_id = $1 ORDER BY campus_id, id",
        )
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Adds one lesson (a slot) to a class at `start` for `minutes`, in `room` (default: the
    /// class's): still to come, clash-checked, id `{class}-{yyyymmddHHMM}` (school time).
    pub async fn add_slot(
        &self,
        class: &str,
        start: DateTime<Utc>,
        minutes: u32,
        room: Option<&str>,
    ) -> Result<String> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        if !(rollcall_domain::timetable::MIN_LESSON_MINUTES
            ..=rollcall_domain::timetable::MAX_LESSON_MINUTES)
            .contains(&minutes)
        {
            return Err(invalid("minutes", "a lesson lasts 10 to 600 minutes"));
        }
        if start <= now {
            return Err(invalid("start", "a lesson still to come"));
        }
        let end = start + Duration::minutes(i64::from(minutes));
        let mut w = self.write().await?;
        let c = w.conn();
        let k = class_row(&mut *c, &school, class).await?;
        let room = room.map(String::from).or(k.room_id.clone());
        if let Some(r) = &room {
            check_room(&mut *c, &school, r, &k.campus_id).await?;
        }
        if let Some((field, m)) = clash(
            &mut *c,
            &school,
            room.as_deref(),
            &k.teacher,
            start,
            end,
            "",
        )
        .await?
        {
            return Err(invalid(field, m));
        }
        let local = start + Duration::minutes(self.tz_offset_minutes());
        let id = format!("{class}-{}", local.format("%Y%m%d%H%M"));
        let taken = sqlx::query("SELECT 1 FROM lessons WHERE school_id = $1 AND id = $2")
            .bind(&school)
            .bind(&id)
            .fetch_optional(&mut *c)
            .await?;
        if taken.is_some() {
            return Err(invalid("start", format!("lesson {id:?} exists already")));
        }
        sqlx::query(
            "INSERT INTO lessons (school_id, id, class_id, campus_id, room_id, teacher, start_ms, end_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&school)
        .bind(&id)
        .bind(class)
        .bind(&k.campus_id)
        .bind(&room)
        .bind(&k.teacher)
        .bind(ms(start))
        .bind(ms(end))
        .execute(&mut *c)
        .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "create",
            "lesson",
            &id,
            None,
            Some(json!({"class_id": class, "start": start, "end": end, "room_id": room, "teacher": k.teacher})),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok(id)
    }

    /// The class of series `id`.
    pub async fn series_class(&self, id: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT class_id FROM lesson_series WHERE school_id = $1 AND id = $2",
        )
        .bind(self.need_school()?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A class's series, by id.
    pub async fn series_of(&self, class: &str) -> Result<Vec<SeriesView>> {
        let school = self.need_school()?;
        let rows = sqlx::query(
            "SELECT s.id, s.class_id, s.weekday, s.start_local, s.minutes, s.first_day, s.last_day, s.room_id, s.teacher, \
             (SELECT COUNT(*) FROM lessons l WHERE l.school_id = s.school_id AND l.series_id = s.id) \
             FROM lesson_series s WHERE s.school_id = $1 AND s.class_id = $2 ORDER BY s.id",
        )
        .bind(school)
        .bind(class)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let wd: i64 = r.try_get(2)?;
                Ok(SeriesView {
                    id: r.try_get(0)?,
                    class_id: r.try_get(1)?,
                    weekday: Weekday::try_from((wd - 1).clamp(0, 6) as u8)
                        .map(weekday_str)
                        .unwrap_or("mon")
                        .into(),
                    start_time: r.try_get(3)?,
                    minutes: r.try_get(4)?,
                    first_day: r.try_get(5)?,
                    last_day: r.try_get(6)?,
                    room_id: r.try_get(7)?,
                    teacher: r.try_get(8)?,
                    lessons: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Cancels one lesson: refused once anything is recorded on it; the booked students'
    /// guardians are told; its leave requests and make-up bookings go with it.
    pub async fn cancel_lesson(&self, id: &str, reason: &str) -> Result<LessonCancelled> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        let reason = reason_of(reason)?;
        let mut w = self.write().await?;
        let c = w.conn();
        let mut drafts = Vec::new();
        let mut out = cancel_in(
            &mut *c,
            &school,
            id,
            &reason,
            &actor,
            now,
            self.tz_offset_minutes(),
            &mut drafts,
        )
        .await?;
        out.notices = enqueue_many(&mut AnyDb(&mut *c), &school, &drafts, now).await?;
        w.commit().await?;
        Ok(out)
    }

    /// Moves a lesson not started yet to another time (and room or teacher), clash-checked;
    /// the booked students' guardians are told.
    pub async fn move_lesson(&self, id: &str, m: &LessonMove) -> Result<LessonMoved> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let off = self.tz_offset_minutes();
        let actor = who("staff");
        let reason = reason_of(&m.reason)?;
        if m.end <= m.start {
            return Err(invalid("end", "a lesson ends after it starts"));
        }
        let minutes = (m.end - m.start).num_minutes();
        if minutes > i64::from(rollcall_domain::timetable::MAX_LESSON_MINUTES) {
            return Err(invalid("end", "a lesson lasts at most 600 minutes"));
        }
        if m.start <= now {
            return Err(invalid("start", "a lesson moves to a time still to come"));
        }
        let mut w = self.write().await?;
        let c = w.conn();
        let l = lesson_row(&mut *c, &school, id).await?;
        untouched(&mut *c, &school, id, &l).await?;
        if l.start <= now {
            return Err(LedgerError::Conflict(format!(
                "lesson {id:?} has started: it can be cancelled, not moved"
            )));
        }
        let room = m.room_id.clone().or(l.room_id.clone());
        if let Some(r) = &m.room_id {
            check_room(&mut *c, &school, r, &l.campus_id).await?;
        }
        let teacher = m.teacher.clone().unwrap_or(l.teacher.clone());
        check_name("teacher", &teacher)?;
        if let Some((field, msg)) = clash(
            &mut *c,
            &school,
            room.as_deref(),
            &teacher,
            m.start,
            m.end,
            id,
        )
        .await?
        {
            return Err(invalid(field, msg));
        }
        sqlx::query(
            "UPDATE lessons SET start_ms = $1, end_ms = $2, room_id = $3, teacher = $4 WHERE school_id = $5 AND id = $6",
        )
        .bind(ms(m.start))
        .bind(ms(m.end))
        .bind(&room)
        .bind(&teacher)
        .bind(&school)
        .bind(id)
        .execute(&mut *c)
        .await?;
        let students = booked_students(&mut *c, &school, &l.class_id, id).await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "move",
            "lesson",
            id,
            Some(json!({"start": l.start, "end": l.end, "room_id": l.room_id, "teacher": l.teacher})),
            Some(json!({"start": m.start, "end": m.end, "room_id": room, "teacher": teacher, "reason": reason})),
            ms(now),
        )
        .await?;
        let (d0, t0) = local_text(l.start, off);
        let (d1, t1) = local_text(m.start, off);
        let drafts: Vec<NoticeDraft> = students
            .iter()
            .map(|s| {
                lesson_changed(
                    s,
                    &l.class_id,
                    id,
                    "moved",
                    (&d0, &t0),
                    Some((&d1, &t1)),
                    &reason,
                    now,
                )
            })
            .collect();
        let notices = enqueue_many(&mut AnyDb(&mut *c), &school, &drafts, now).await?;
        w.commit().await?;
        Ok(LessonMoved {
            lesson_id: id.into(),
            from: l.start,
            to: m.start,
            students,
            notices,
        })
    }

    /// Cancelled lessons that were to start in `[from, to)`, by start.
    pub async fn cancelled_lessons(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CancelledLessonView>> {
        let rows = sqlx::query(
            "SELECT id, class_id, campus_id, teacher, start_ms, end_ms, reason, cancelled_by, cancelled_at, booked_json FROM cancelled_lessons \
             WHERE school_id = $1 AND start_ms >= $2 AND start_ms < $3 ORDER BY start_ms, id",
        )
        .bind(self.need_school()?)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let booked: serde_json::Value = parse_json(&r.try_get::<String, _>(9)?, "booked")?;
                Ok(CancelledLessonView {
                    id: r.try_get(0)?,
                    class_id: r.try_get(1)?,
                    campus_id: r.try_get(2)?,
                    teacher: r.try_get(3)?,
                    start: from_ms(r.try_get(4)?),
                    end: from_ms(r.try_get(5)?),
                    reason: r.try_get(6)?,
                    cancelled_by: r.try_get(7)?,
                    cancelled_at: from_ms(r.try_get(8)?),
                    students: booked["students"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The school's holidays from `from` on, by day.
    pub async fn holidays(&self, from: NaiveDate) -> Result<Vec<HolidayView>> {
        let rows = sqlx::query(
            "SELECT day, name, created_by FROM holidays WHERE school_id = $1 AND day >= $2 ORDER BY day",
        )
        .bind(self.need_school()?)
        .bind(from.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HolidayView {
                    day: r.try_get(0)?,
                    name: r.try_get(1)?,
                    created_by: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Declares a holiday (today or later): no series makes a lesson on it, and that day's
    /// lessons still to come are cancelled (guardians told). A lesson with attendance recorded
    /// refuses the whole holiday.
    pub async fn add_holiday(&self, day: NaiveDate, name: &str) -> Result<HolidayAdded> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let off = self.tz_offset_minutes();
        let actor = who("staff");
        check_name("name", name)?;
        let today = local_day(now, off);
        if day < today {
            return Err(invalid("day", format!("{day} is in the past")));
        }
        let mut w = self.write().await?;
        let c = w.conn();
        let exists = sqlx::query("SELECT name FROM holidays WHERE school_id = $1 AND day = $2")
            .bind(&school)
            .bind(day.to_string())
            .fetch_optional(&mut *c)
            .await?;
        if exists.is_some() {
            return Err(invalid("day", format!("{day} is a holiday already")));
        }
        sqlx::query(
            "INSERT INTO holidays (school_id, day, name, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&school)
        .bind(day.to_string())
        .bind(name.trim())
        .bind(&actor)
        .bind(ms(now))
        .execute(&mut *c)
        .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "create",
            "holiday",
            &day.to_string(),
            None,
            Some(json!({"name": name.trim()})),
            ms(now),
        )
        .await?;
        let from = rollcall_domain::timetable::local_instant(day, NaiveTime::MIN, off);
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM lessons WHERE school_id = $1 AND start_ms >= $2 AND start_ms < $3 ORDER BY start_ms, id",
        )
        .bind(&school)
        .bind(ms(from.max(now)))
        .bind(ms(from + Duration::days(1)))
        .fetch_all(&mut *c)
        .await?;
        let why = format!("holiday: {}", name.trim());
        let mut drafts = Vec::new();
        let mut cancelled = Vec::new();
        for id in ids {
            cancel_in(&mut *c, &school, &id, &why, &actor, now, off, &mut drafts).await?;
            cancelled.push(id);
        }
        let notices = enqueue_many(&mut AnyDb(&mut *c), &school, &drafts, now).await?;
        w.commit().await?;
        Ok(HolidayAdded {
            day,
            name: name.trim().into(),
            cancelled,
            notices,
        })
    }

    /// Removes a holiday (today or later). Lessons it cancelled stay cancelled: extend or add
    /// them again if the day is a school day after all.
    pub async fn remove_holiday(&self, day: NaiveDate) -> Result<()> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        if day < local_day(now, self.tz_offset_minutes()) {
            return Err(invalid("day", format!("{day} is in the past")));
        }
        let mut w = self.write().await?;
        let c = w.conn();
        let r = sqlx::query("SELECT name FROM holidays WHERE school_id = $1 AND day = $2")
            .bind(&school)
            .bind(day.to_string())
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "holiday",
                id: day.to_string(),
            })?;
        let name: String = r.try_get(0)?;
        sqlx::query("DELETE FROM holidays WHERE school_id = $1 AND day = $2")
            .bind(&school)
            .bind(day.to_string())
            .execute(&mut *c)
            .await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "delete",
            "holiday",
            &day.to_string(),
            Some(json!({"name": name})),
            None,
            ms(now),
        )
        .await?;
        w.commit().await
    }

    /// Moves `student` from class `from` to class `to` (within the new class's capacity); the
    /// packages are the student's and stay as they are, but one must cover the new class's
    /// campus when the student has any unexpired package. Leave requests for the old class's
    /// lessons still to come go with the enrollment.
    pub async fn transfer_student(
        &self,
        student: &str,
        from: &str,
        to: &str,
        reason: &str,
    ) -> Result<Transferred> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let actor = who("staff");
        let reason = reason_of(reason)?;
        if from == to {
            return Err(invalid("to_class", "the new class is the class itself"));
        }
        let mut w = self.write().await?;
        let c = w.conn();
        super::base::lock_student(&mut *c, &school, student).await?;
        require(&mut *c, "class", &school, from).await?;
        let k = class_row(&mut *c, &school, to)
            .await
            .map_err(|_| invalid("to_class", format!("there is no class {to:?}")))?;
        let enrolled = sqlx::query(
            "SELECT 1 FROM enrollments WHERE school_id = $1 AND class_id = $2 AND student_id = $3",
        )
        .bind(&school)
        .bind(from)
        .bind(student)
        .fetch_optional(&mut *c)
        .await?;
        if enrolled.is_none() {
            return Err(invalid(
                "from_class",
                format!("student {student:?} is not enrolled in class {from:?}"),
            ));
        }
        let already = sqlx::query(
            "SELECT 1 FROM enrollments WHERE school_id = $1 AND class_id = $2 AND student_id = $3",
        )
        .bind(&school)
        .bind(to)
        .bind(student)
        .fetch_optional(&mut *c)
        .await?;
        if already.is_some() {
            return Err(invalid(
                "to_class",
                format!("student {student:?} is enrolled in class {to:?} already"),
            ));
        }
        let (live, covering): (i64, i64) = {
            let r = sqlx::query(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN campus_id IS NULL OR campus_id = $3 THEN 1 ELSE 0 END), 0) \
                 FROM packages WHERE school_id = $1 AND student_id = $2 AND expires_at > $4",
            )
            .bind(&school)
            .bind(student)
            .bind(&k.campus_id)
            .bind(ms(now))
            .fetch_one(&mut *c)
            .await?;
            (r.try_get(0)?, r.try_get(1)?)
        };
        if live > 0 && covering == 0 {
            return Err(invalid(
                "to_class",
                format!(
                    "class {to:?} is at campus {:?}, which none of the student's packages covers",
                    k.campus_id
                ),
            ));
        }
        let gone: Vec<String> = sqlx::query_scalar(
            "SELECT v.lesson_id FROM leave_requests v JOIN lessons l ON l.school_id = v.school_id AND l.id = v.lesson_id \
             WHERE v.school_id = $1 AND v.student_id = $2 AND l.class_id = $3 AND l.start_ms > $4 ORDER BY v.lesson_id",
        )
        .bind(&school)
        .bind(student)
        .bind(from)
        .bind(ms(now))
        .fetch_all(&mut *c)
        .await?;
        for lesson in &gone {
            sqlx::query(
                "DELETE FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3",
            )
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .execute(&mut *c)
            .await?;
        }
        sqlx::query(
            "DELETE FROM enrollments WHERE school_id = $1 AND class_id = $2 AND student_id = $3",
        )
        .bind(&school)
        .bind(from)
        .bind(student)
        .execute(&mut *c)
        .await?;
        super::timetable::insert_enrollment(&mut *c, &school, to, student, now, &actor).await?;
        audit(
            &mut *c,
            &school,
            &actor,
            "transfer",
            "enrollment",
            student,
            Some(json!({"class_id": from})),
            Some(json!({"class_id": to, "reason": reason, "leave_dropped": gone})),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok(Transferred {
            student_id: student.into(),
            from_class: from.into(),
            to_class: to.into(),
            leave_dropped: gone.len(),
        })
    }
}

fn parse_day(s: &str) -> Result<NaiveDate> {
    s.parse()
        .map_err(|_| LedgerError::Corrupt(format!("stored day {s:?}")))
}

/// The days of `s`'s weekday in its range that are holidays.
fn skipped(s: &WeeklySeries, holidays: &BTreeSet<NaiveDate>) -> Vec<NaiveDate> {
    let all = s.days(&BTreeSet::new()).unwrap_or_default();
    all.into_iter().filter(|d| holidays.contains(d)).collect()
}
