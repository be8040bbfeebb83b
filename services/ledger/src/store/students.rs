//! Students, guardians and consent (the insert helpers are also used by the CSV import, inside
//! its single transaction).

use super::base::{audit, check_id, check_name, ms, require};
use super::Store;
use crate::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{AnyConnection, Row};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewStudent {
    pub id: String,
    pub name: String,
    pub home_campus_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewGuardian {
    pub id: String,
    pub student_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: String,
    /// Comma-separated channels, e.g. `sms,email`.
    pub notify_prefs: String,
}

pub(crate) async fn insert_student(
    c: &mut AnyConnection,
    school: &str,
    s: &NewStudent,
    actor: &str,
    now: i64,
) -> Result<()> {
    check_id("student", &s.id)?;
    check_name("name", &s.name)?;
    if let Some(campus) = &s.home_campus_id {
        require(c, "campus", school, campus).await?;
    }
    sqlx::query("INSERT INTO students (school_id, id, name, home_campus_id, lock_seq, created_at) VALUES ($1, $2, $3, $4, 0, $5)")
        .bind(school)
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.home_campus_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "student",
        &s.id,
        None,
        Some(json!(s)),
        now,
    )
    .await
}

pub(crate) async fn insert_guardian(
    c: &mut AnyConnection,
    school: &str,
    g: &NewGuardian,
    actor: &str,
    now: i64,
) -> Result<()> {
    check_id("guardian", &g.id)?;
    check_name("name", &g.name)?;
    require(c, "student", school, &g.student_id).await?;
    sqlx::query(
        "INSERT INTO guardians (school_id, id, student_id, name, phone, email, language, notify_prefs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(school)
    .bind(&g.id)
    .bind(&g.student_id)
    .bind(&g.name)
    .bind(&g.phone)
    .bind(&g.email)
    .bind(&g.language)
    .bind(&g.notify_prefs)
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        actor,
        "create",
        "guardian",
        &g.id,
        None,
        Some(json!(g)),
        now,
    )
    .await
}

impl Store {
    pub async fn create_student(&self, s: &NewStudent) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_student(w.conn(), &school, s, "setup", ms(self.now())).await?;
        w.commit().await
    }

    /// Registers a student unless the school already has one with this id; returns whether it
    /// was created (enrolling more photos of a known student is normal).
    pub async fn ensure_student(&self, s: &NewStudent) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let exists = sqlx::query("SELECT 1 FROM students WHERE school_id = $1 AND id = $2")
            .bind(&school)
            .bind(&s.id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if exists {
            return Ok(false);
        }
        self.create_student(s).await?;
        Ok(true)
    }

    pub async fn add_guardian(&self, g: &NewGuardian) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        insert_guardian(w.conn(), &school, g, "setup", ms(self.now())).await?;
        w.commit().await
    }

    /// Records a consent decision (e.g. kind `face_recognition`), append-only.
    pub async fn record_consent(
        &self,
        student: &str,
        kind: &str,
        granted: bool,
        given_by: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        require(w.conn(), "student", &school, student).await?;
        sqlx::query("INSERT INTO consents (school_id, student_id, kind, granted, given_by, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&school)
            .bind(student)
            .bind(kind)
            .bind(i64::from(granted))
            .bind(given_by)
            .bind(ms(at))
            .execute(w.conn())
            .await?;
        audit(
            w.conn(),
            &school,
            given_by,
            "consent",
            "student",
            student,
            None,
            Some(json!({"kind": kind, "granted": granted})),
            ms(at),
        )
        .await?;
        w.commit().await
    }

    /// Latest consent decision of a kind, if any.
    pub async fn consent(&self, student: &str, kind: &str) -> Result<Option<bool>> {
        let r = sqlx::query("SELECT granted FROM consents WHERE school_id = $1 AND student_id = $2 AND kind = $3 ORDER BY at DESC, seq DESC LIMIT 1")
            .bind(self.need_school()?)
            .bind(student)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => Some(r.try_get::<i64, _>(0)? != 0),
            None => None,
        })
    }
}
