//! Read models for the staff API and web app: students, classes, lessons, the attendance board,
//! cameras, campus membership (for campus scoping). Reads only; no audit rows.

use crate::store::{from_ms, ms};
use crate::{LedgerError, Result, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize)]
pub struct StudentView {
    pub id: String,
    pub name: String,
    pub home_campus_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Home campus and the campuses of the classes the student is enrolled in.
    pub campuses: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GuardianView {
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    pub notify_prefs: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    pub kind: String,
    pub granted: bool,
    pub given_by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassView {
    pub id: String,
    pub course: String,
    pub name: String,
    pub campus_id: String,
    pub teacher: String,
    pub students: Vec<String>,
    /// `None`: no limit.
    pub capacity: Option<i64>,
    pub room_id: Option<String>,
    /// `group` or `one_on_one`.
    pub kind: String,
    pub policy: rollcall_domain::ledger::ClassPolicy,
}

#[derive(Debug, Clone, Serialize)]
pub struct LessonView {
    pub id: String,
    pub class_id: String,
    pub class_name: String,
    pub campus_id: String,
    pub room_id: Option<String>,
    pub teacher: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub finalized: bool,
    /// The weekly series the lesson belongs to.
    pub series_id: Option<String>,
}

/// One booked student of a lesson on the board.
#[derive(Debug, Clone, Serialize)]
pub struct BoardStudent {
    pub student_id: String,
    pub name: String,
    /// `present`, `late`, `absent`, `excused`, `left_early` or `not_yet`.
    pub status: String,
    pub source: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BoardLesson {
    #[serde(flatten)]
    pub lesson: LessonView,
    pub students: Vec<BoardStudent>,
    pub counts: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraView {
    pub id: String,
    pub campus_id: String,
    pub door: String,
}

fn lesson_from_row(r: &sqlx::any::AnyRow) -> Result<LessonView> {
    Ok(LessonView {
        id: r.try_get(0)?,
        class_id: r.try_get(1)?,
        class_name: r.try_get(2)?,
        campus_id: r.try_get(3)?,
        room_id: r.try_get(4)?,
        teacher: r.try_get(5)?,
        start: from_ms(r.try_get(6)?),
        end: from_ms(r.try_get(7)?),
        finalized: r.try_get::<Option<i64>, _>(8)?.is_some(),
        series_id: r.try_get(9)?,
    })
}

const LESSON_COLS: &str = "l.id, l.class_id, k.name, l.campus_id, l.room_id, l.teacher, l.start_ms, l.end_ms, l.finalized_at, l.series_id";

impl Store {
    /// The school's campuses: (id, name), by id.
    pub async fn campuses(&self) -> Result<Vec<(String, String)>> {
        let school = self.need_school()?;
        let rows = sqlx::query("SELECT id, name FROM campuses WHERE school_id = $1 ORDER BY id")
            .bind(school)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
            .collect()
    }

    /// Campuses a student belongs to (home campus and the campuses of enrolled classes).
    pub async fn student_campuses(&self, student: &str) -> Result<Vec<String>> {
        let school = self.need_school()?;
        let rows = sqlx::query(
            "SELECT home_campus_id FROM students WHERE school_id = $1 AND id = $2 AND home_campus_id IS NOT NULL \
             UNION SELECT k.campus_id FROM enrollments e JOIN classes k ON k.school_id = e.school_id AND k.id = e.class_id WHERE e.school_id = $1 AND e.student_id = $2",
        )
        .bind(school)
        .bind(student)
        .fetch_all(&self.pool)
        .await?;
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<_, _>>()?;
        v.sort();
        v.dedup();
        Ok(v)
    }

    pub async fn students(&self) -> Result<Vec<StudentView>> {
        let school = self.need_school()?;
        let rows = sqlx::query(
            "SELECT id, name, home_campus_id, created_at FROM students WHERE school_id = $1 ORDER BY id",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let links = sqlx::query(
            "SELECT e.student_id, k.campus_id FROM enrollments e JOIN classes k ON k.school_id = e.school_id AND k.id = e.class_id WHERE e.school_id = $1",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for l in &links {
            by.entry(l.try_get(0)?).or_default().push(l.try_get(1)?);
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let home: Option<String> = r.try_get(2)?;
                let mut campuses = by.remove(&id).unwrap_or_default();
                campuses.extend(home.clone());
                campuses.sort();
                campuses.dedup();
                Ok(StudentView {
                    id,
                    name: r.try_get(1)?,
                    home_campus_id: home,
                    created_at: from_ms(r.try_get(3)?),
                    campuses,
                })
            })
            .collect()
    }

    pub async fn student(&self, id: &str) -> Result<StudentView> {
        let r = sqlx::query(
            "SELECT id, name, home_campus_id, created_at FROM students WHERE school_id = $1 AND id = $2",
        )
        .bind(self.need_school()?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "student",
            id: id.into(),
        })?;
        Ok(StudentView {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            home_campus_id: r.try_get(2)?,
            created_at: from_ms(r.try_get(3)?),
            campuses: self.student_campuses(id).await?,
        })
    }

    pub async fn guardians(&self, student: &str) -> Result<Vec<GuardianView>> {
        let rows = sqlx::query("SELECT id, name, phone, email, language, notify_prefs FROM guardians WHERE school_id = $1 AND student_id = $2 ORDER BY id")
            .bind(self.need_school()?)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GuardianView {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    phone: r.try_get(2)?,
                    email: r.try_get(3)?,
                    language: r.try_get(4)?,
                    notify_prefs: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn consents(&self, student: &str) -> Result<Vec<ConsentView>> {
        let rows = sqlx::query("SELECT kind, granted, given_by, at FROM consents WHERE school_id = $1 AND student_id = $2 ORDER BY at, seq")
            .bind(self.need_school()?)
            .bind(student)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentView {
                    kind: r.try_get(0)?,
                    granted: r.try_get::<i64, _>(1)? != 0,
                    given_by: r.try_get(2)?,
                    at: from_ms(r.try_get(3)?),
                })
            })
            .collect()
    }

    pub async fn classes(&self) -> Result<Vec<ClassView>> {
        let school = self.need_school()?;
        let rows = sqlx::query("SELECT id, course, name, campus_id, teacher, capacity, room_id, kind, policy_json FROM classes WHERE school_id = $1 ORDER BY id")
            .bind(school)
            .fetch_all(&self.pool)
            .await?;
        let en = sqlx::query(
            "SELECT class_id, student_id FROM enrollments WHERE school_id = $1 ORDER BY student_id",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for e in &en {
            by.entry(e.try_get(0)?).or_default().push(e.try_get(1)?);
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                Ok(ClassView {
                    students: by.remove(&id).unwrap_or_default(),
                    id,
                    course: r.try_get(1)?,
                    name: r.try_get(2)?,
                    campus_id: r.try_get(3)?,
                    teacher: r.try_get(4)?,
                    capacity: r.try_get(5)?,
                    room_id: r.try_get(6)?,
                    kind: r.try_get(7)?,
                    policy: serde_json::from_str(&r.try_get::<String, _>(8)?)
                        .map_err(|e| LedgerError::Corrupt(format!("class policy: {e}")))?,
                })
            })
            .collect()
    }

    /// Lessons starting in `[from, to)`, by start time.
    pub async fn lessons_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LessonView>> {
        let rows = sqlx::query(&format!(
            "SELECT {LESSON_COLS} FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id WHERE l.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3 ORDER BY l.start_ms, l.id"
        ))
        .bind(self.need_school()?)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(lesson_from_row).collect()
    }

    pub async fn lesson(&self, id: &str) -> Result<LessonView> {
        let r = sqlx::query(&format!(
            "SELECT {LESSON_COLS} FROM lessons l JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id WHERE l.school_id = $1 AND l.id = $2"
        ))
        .bind(self.need_school()?)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "lesson",
            id: id.into(),
        })?;
        lesson_from_row(&r)
    }

    /// The attendance board: every lesson starting in `[from, to)` with its booked students
    /// (enrolled or make-up) and their status (`not_yet` when nothing is recorded). Three
    /// queries whatever the number of lessons.
    pub async fn board(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<BoardLesson>> {
        let school = self.need_school()?;
        let lessons = self.lessons_between(from, to).await?;
        let roster = sqlx::query(
            "SELECT l.id, s.id, s.name FROM lessons l JOIN enrollments e ON e.school_id = l.school_id AND e.class_id = l.class_id JOIN students s ON s.school_id = e.school_id AND s.id = e.student_id WHERE l.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3 \
             UNION SELECT l.id, s.id, s.name FROM lessons l JOIN makeups m ON m.school_id = l.school_id AND m.lesson_id = l.id JOIN students s ON s.school_id = m.school_id AND s.id = m.student_id WHERE l.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3",
        )
        .bind(school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let att = sqlx::query(
            "SELECT a.lesson_id, a.student_id, a.status, a.source, a.at FROM attendance a JOIN lessons l ON l.school_id = a.school_id AND l.id = a.lesson_id WHERE a.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3",
        )
        .bind(school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        type Key = (String, String);
        let mut seen: std::collections::HashMap<Key, (String, Option<String>, i64)> =
            Default::default();
        for a in &att {
            seen.insert(
                (a.try_get(0)?, a.try_get(1)?),
                (a.try_get(2)?, a.try_get(3)?, a.try_get(4)?),
            );
        }
        let mut by: std::collections::HashMap<String, Vec<BoardStudent>> = Default::default();
        for r in &roster {
            let lesson: String = r.try_get(0)?;
            let sid: String = r.try_get(1)?;
            let rec = seen.remove(&(lesson.clone(), sid.clone()));
            by.entry(lesson).or_default().push(BoardStudent {
                name: r.try_get(2)?,
                status: rec
                    .as_ref()
                    .map(|x| x.0.clone())
                    .unwrap_or_else(|| "not_yet".into()),
                source: rec.as_ref().and_then(|x| x.1.clone()),
                at: rec.as_ref().map(|x| from_ms(x.2)),
                student_id: sid,
            });
        }
        Ok(lessons
            .into_iter()
            .map(|l| {
                let mut students = by.remove(&l.id).unwrap_or_default();
                students.sort_by(|a, b| a.name.cmp(&b.name).then(a.student_id.cmp(&b.student_id)));
                let mut counts = std::collections::BTreeMap::new();
                for s in &students {
                    *counts.entry(s.status.clone()).or_insert(0) += 1;
                }
                BoardLesson {
                    lesson: l,
                    students,
                    counts,
                }
            })
            .collect())
    }

    pub async fn cameras(&self) -> Result<Vec<CameraView>> {
        let rows =
            sqlx::query("SELECT id, campus_id, door FROM cameras WHERE school_id = $1 ORDER BY id")
                .bind(self.need_school()?)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(CameraView {
                    id: r.try_get(0)?,
                    campus_id: r.try_get(1)?,
                    door: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Campus of a class, if it exists.
    pub async fn class_campus(&self, class: &str) -> Result<Option<String>> {
        let r = sqlx::query("SELECT campus_id FROM classes WHERE school_id = $1 AND id = $2")
            .bind(self.need_school()?)
            .bind(class)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The school's time-zone offset in minutes (for "today").
    pub fn tz_offset_minutes(&self) -> i64 {
        self.tz_offset_minutes
    }
}
