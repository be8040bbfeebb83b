//! The timetable: classes, lessons, enrollment, make-up bookings and leave, and the lessons a
//! student is booked into (the insert helpers are also used by the CSV import).

use super::base::{audit, check_id, check_name, from_ms, ms, parse_json, require};
use super::Store;
use crate::audit::who;
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

/// What a class is: a group, or 1-on-1 slots (capacity 1; a slot is one of its lessons,
/// typically booked as a make-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassKind {
    #[default]
    Group,
    OneOnOne,
}

impl ClassKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ClassKind::Group => "group",
            ClassKind::OneOnOne => "one_on_one",
        }
    }
    pub fn parse(s: &str) -> Option<ClassKind> {
        match s {
            "group" => Some(ClassKind::Group),
            "one_on_one" => Some(ClassKind::OneOnOne),
            _ => None,
        }
    }
}

/// The most students a class may hold.
pub const MAX_CAPACITY: i64 = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewClass {
    pub id: String,
    pub course: String,
    pub name: String,
    pub campus_id: String,
    pub teacher: String,
    pub policy: ClassPolicy,
    /// The most students enrolled (make-ups count toward a lesson's); `None`: no limit. A 1-on-1
    /// class holds 1.
    #[serde(default)]
    pub capacity: Option<i64>,
    /// The class's usual room (a room of its campus).
    #[serde(default)]
    pub room_id: Option<String>,
    /// A group (default) or 1-on-1 slots.
    #[serde(default)]
    pub kind: ClassKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewLesson {
    pub id: String,
    pub class_id: String,
    pub room_id: Option<String>,
    /// Defaults to the class's teacher.
    pub teacher: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

pub(crate) async fn insert_class(
    c: &mut AnyConnection,
    school: &str,
    k: &NewClass,
    actor: &str,
    now: i64,
) -> Result<()> {
    check_id("class", &k.id)?;
    check_name("name", &k.name)?;
    require(c, "campus", school, &k.campus_id).await?;
    let capacity = match (k.kind, k.capacity) {
        (ClassKind::OneOnOne, None | Some(1)) => Some(1),
        (ClassKind::OneOnOne, Some(_)) => {
            return Err(LedgerError::Invalid {
                field: "capacity",
                message: "a 1-on-1 class holds exactly 1 student".into(),
            })
        }
        (_, Some(n)) if !(1..=MAX_CAPACITY).contains(&n) => {
            return Err(LedgerError::Invalid {
                field: "capacity",
                message: format!(
                    "a class holds 1 to {} students (empty: no limit)",
                    MAX_CAPACITY
                ),
            })
        }
        (_, cap) => cap,
    };
    if let Some(room) = &k.room_id {
        let at: Option<String> =
            sqlx::query_scalar("SELECT campus_id FROM rooms WHERE school_id = $1 AND id = $2")
                .bind(school)
                .bind(room)
                .fetch_optional(&mut *c)
                .await?;
        if at.as_deref() != Some(k.campus_id.as_str()) {
            return Err(LedgerError::Invalid {
                field: "room_id",
                message: format!("there is no room {room:?} at campus {:?}", k.campus_id),
            });
        }
    }
    let policy =
        serde_json::to_string(&k.policy).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO classes (school_id, id, course, name, campus_id, teacher, policy_json, capacity, room_id, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(school)
    .bind(&k.id)
    .bind(&k.course)
    .bind(&k.name)
    .bind(&k.campus_id)
    .bind(&k.teacher)
    .bind(policy)
    .bind(capacity)
    .bind(&k.room_id)
    .bind(k.kind.as_str())
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "class",
        &k.id,
        None,
        Some(json!(k)),
        now,
    )
    .await
}

pub(crate) async fn insert_lesson(
    c: &mut AnyConnection,
    school: &str,
    l: &NewLesson,
    actor: &str,
    now: i64,
) -> Result<()> {
    check_id("lesson", &l.id)?;
    if l.end <= l.start {
        return Err(LedgerError::Invalid {
            field: "end",
            message: "lesson must end after it starts".into(),
        });
    }
    let row =
        sqlx::query("SELECT campus_id, teacher FROM classes WHERE school_id = $1 AND id = $2")
            .bind(school)
            .bind(&l.class_id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "class",
                id: l.class_id.clone(),
            })?;
    let campus: String = row.try_get(0)?;
    let teacher: String = l
        .teacher
        .clone()
        .map(Ok)
        .unwrap_or_else(|| row.try_get(1))?;
    if let Some(room) = &l.room_id {
        require(c, "room", school, room).await?;
    }
    sqlx::query(
        "INSERT INTO lessons (school_id, id, class_id, campus_id, room_id, teacher, start_ms, end_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(school)
    .bind(&l.id)
    .bind(&l.class_id)
    .bind(&campus)
    .bind(&l.room_id)
    .bind(&teacher)
    .bind(ms(l.start))
    .bind(ms(l.end))
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "lesson",
        &l.id,
        None,
        Some(json!(l)),
        now,
    )
    .await
}

pub(crate) async fn insert_enrollment(
    c: &mut AnyConnection,
    school: &str,
    class: &str,
    student: &str,
    at: DateTime<Utc>,
    actor: &str,
) -> Result<()> {
    require(c, "student", school, student).await?;
    let cap: Option<i64> =
        sqlx::query_scalar("SELECT capacity FROM classes WHERE school_id = $1 AND id = $2")
            .bind(school)
            .bind(class)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| LedgerError::NotFound {
                entity: "class",
                id: class.into(),
            })?;
    if let Some(cap) = cap {
        let (n, me): (i64, i64) = {
            let r = sqlx::query(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN student_id = $3 THEN 1 ELSE 0 END), 0) FROM enrollments WHERE school_id = $1 AND class_id = $2",
            )
            .bind(school)
            .bind(class)
            .bind(student)
            .fetch_one(&mut *c)
            .await?;
            (r.try_get(0)?, r.try_get(1)?)
        };
        if me == 0 && n >= cap {
            return Err(LedgerError::Invalid {
                field: "class_id",
                message: format!("class {class:?} is full ({n} of {cap} places taken)"),
            });
        }
    }
    let ins = sqlx::query(
        "INSERT INTO enrollments (school_id, class_id, student_id, enrolled_at) VALUES ($1, $2, $3, $4) ON CONFLICT (school_id, class_id, student_id) DO NOTHING RETURNING enrolled_at",
    )
    .bind(school)
    .bind(class)
    .bind(student)
    .bind(ms(at))
    .fetch_optional(&mut *c)
    .await?;
    if ins.is_some() {
        audit(
            c,
            school,
            actor,
            "enroll",
            "enrollment",
            &format!("{class}/{student}"),
            None,
            None,
            ms(at),
        )
        .await?;
    }
    Ok(())
}

pub(super) fn booked_from_row(r: &AnyRow) -> Result<(BookedLesson, ClassPolicy)> {
    booked(
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        &r.try_get::<String, _>(5)?,
    )
}

fn booked(
    lesson_id: String,
    class_id: String,
    campus_id: String,
    start: i64,
    end: i64,
    policy_json: &str,
) -> Result<(BookedLesson, ClassPolicy)> {
    let policy: ClassPolicy = parse_json(policy_json, "class policy")?;
    Ok((
        BookedLesson {
            lesson_id,
            class_id,
            campus_id,
            start: from_ms(start),
            end: from_ms(end),
            timing: policy.timing,
        },
        policy,
    ))
}

/// The statement reading the lessons each of `students` is booked into (enrolled class or
/// make-up) overlapping `[from, to]` (`None`: no students, nothing to read).
pub(crate) fn booked_lessons_stmt(
    school: &str,
    students: &[&str],
    from: i64,
    to: i64,
) -> Option<crate::db::Stmt> {
    if students.is_empty() {
        return None;
    }
    let ids = crate::db::list_marks(students.len(), 4);
    let cols = "l.id, l.class_id, l.campus_id, l.start_ms, l.end_ms, k.policy_json";
    let sql = format!(
        "SELECT {cols}, e.student_id FROM lessons l \
         JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
         JOIN enrollments e ON e.school_id = l.school_id AND e.class_id = l.class_id \
         WHERE l.school_id = $1 AND l.start_ms <= $2 AND l.end_ms >= $3 AND e.student_id IN ({ids}) \
         UNION SELECT {cols}, m.student_id FROM lessons l \
         JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
         JOIN makeups m ON m.school_id = l.school_id AND m.lesson_id = l.id \
         WHERE l.school_id = $1 AND l.start_ms <= $2 AND l.end_ms >= $3 AND m.student_id IN ({ids})"
    );
    let mut args: Vec<crate::db::Arg> = vec![school.into(), to.into(), from.into()];
    args.extend(students.iter().map(|s| crate::db::Arg::from(*s)));
    Some(crate::db::Stmt::new(sql, args, 7))
}

/// The rows of [`booked_lessons_stmt`], by student.
pub(crate) fn parse_booked_lessons(
    rows: Vec<crate::db::Row>,
) -> Result<HashMap<String, Vec<BookedLesson>>> {
    let mut out: HashMap<String, Vec<BookedLesson>> = HashMap::new();
    for r in rows {
        let (lesson, _) = booked(
            r.text(0)?,
            r.text(1)?,
            r.text(2)?,
            r.int(3)?,
            r.int(4)?,
            &r.text(5)?,
        )?;
        out.entry(r.text(6)?).or_default().push(lesson);
    }
    Ok(out)
}

impl Store {
    pub async fn create_class(&self, k: &NewClass) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_class(w.conn(), &school, k, &who("setup"), ms(self.now())).await?;
        w.commit().await
    }

    pub async fn add_lesson(&self, l: &NewLesson) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_lesson(w.conn(), &school, l, &who("setup"), ms(self.now())).await?;
        w.commit().await
    }

    /// Adds many lessons in one transaction.
    pub async fn add_lessons(&self, ls: &[NewLesson]) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        for l in ls {
            insert_lesson(w.conn(), &school, l, &who("setup"), ms(self.now())).await?;
        }
        w.commit().await
    }

    pub async fn enroll(&self, class: &str, student: &str, at: DateTime<Utc>) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_enrollment(w.conn(), &school, class, student, at, &who("setup")).await?;
        w.commit().await
    }

    /// Books a student into one lesson of another class (make-up).
    pub async fn book_makeup(&self, student: &str, lesson: &str, at: DateTime<Utc>) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        require(w.conn(), "lesson", &school, lesson).await?;
        sqlx::query("INSERT INTO makeups (school_id, student_id, lesson_id, booked_at) VALUES ($1, $2, $3, $4) ON CONFLICT (school_id, student_id, lesson_id) DO NOTHING")
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .bind(ms(at))
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            "staff",
            "book_makeup",
            "lesson",
            lesson,
            None,
            Some(json!({"student": student})),
            ms(at),
        )
        .await?;
        w.commit().await
    }

    /// Records (or updates) a leave request for one lesson.
    pub async fn request_leave(
        &self,
        student: &str,
        lesson: &str,
        requested_at: DateTime<Utc>,
        approved: bool,
        reason: Option<&str>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        require(w.conn(), "lesson", &school, lesson).await?;
        let before = sqlx::query("SELECT requested_at, approved FROM leave_requests WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
            .bind(&school)
            .bind(student)
            .bind(lesson)
            .fetch_optional(w.conn())
            .await?;
        let before = match before {
            Some(r) => Some(
                json!({"requested_at": r.try_get::<i64, _>(0)?, "approved": r.try_get::<i64, _>(1)? != 0}),
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO leave_requests (school_id, student_id, lesson_id, requested_at, approved, reason, state) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (school_id, student_id, lesson_id) DO UPDATE SET approved = excluded.approved, reason = excluded.reason, state = excluded.state",
        )
        .bind(&school)
        .bind(student)
        .bind(lesson)
        .bind(ms(requested_at))
        .bind(i64::from(approved))
        .bind(reason)
        // the staff app's state (migration 8): an approved request, else one waiting
        .bind(if approved { "approved" } else { "pending" })
        .execute(w.conn())
        .await?;
        let after =
            json!({"requested_at": ms(requested_at), "approved": approved, "reason": reason});
        audit(
            w.conn(),
            &school,
            "staff",
            "leave",
            "lesson",
            &format!("{lesson}/{student}"),
            before,
            Some(after),
            ms(requested_at),
        )
        .await?;
        w.commit().await
    }
}
