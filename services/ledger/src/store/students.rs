//! Students, guardians and consent (the insert helpers are also used by the CSV import, inside
//! its single transaction).

use super::base::{audit, check_id, check_name, lock_student, ms, require};
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

// -------------------------------------------------------------------------------------------
// the front desk's student records: registration in one step, edits, suspension (休学),
// leaving the school, and what the student page and the daily lists read
// -------------------------------------------------------------------------------------------

/// Where a student stands with the school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentStatus {
    Active,
    /// 休学: kept on the books, not on the daily call lists or charged for absences; the
    /// packages' expiry is paused (see [`Store::resume_student`]).
    Suspended,
    /// Left the school: unenrolled from every class; history kept.
    Left,
}

impl StudentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            StudentStatus::Active => "active",
            StudentStatus::Suspended => "suspended",
            StudentStatus::Left => "left",
        }
    }
    pub fn parse(s: &str) -> Option<StudentStatus> {
        match s {
            "active" => Some(StudentStatus::Active),
            "suspended" => Some(StudentStatus::Suspended),
            "left" => Some(StudentStatus::Left),
            _ => None,
        }
    }
}

/// A student's status, since when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudentState {
    pub student_id: String,
    pub status: StudentStatus,
    /// When the student was suspended or left (`None` for an active student).
    pub since: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// A guardian with every contact detail (the WeChat id too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianDetail {
    pub id: String,
    pub student_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub wechat_id: Option<String>,
    /// `zh` or `en`.
    pub language: String,
    /// As stored in `guardians.notify_prefs` (see `GuardianPrefs`).
    pub notify_prefs: String,
}

/// A consent decision given at registration by one of the new guardians.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationConsent {
    pub kind: String,
    pub granted: bool,
    /// The id of one of the registration's guardians.
    pub given_by: String,
    /// The signed form's reference (required for a grant).
    pub document_ref: Option<String>,
    /// When a grant ends by itself (after the registration; `None`: until withdrawn).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Most guardians a student has through the staff app and the API, as at registration.
pub const MAX_GUARDIANS: usize = 2;

/// What resuming a suspended student did: how long the suspension lasted and each package
/// whose expiry moved by that much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resumed {
    pub student_id: String,
    pub suspended_since: DateTime<Utc>,
    pub resumed_at: DateTime<Utc>,
    pub packages: Vec<ExpiryMoved>,
}

/// A package's expiry moved by a suspension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryMoved {
    pub package_id: String,
    pub before: DateTime<Utc>,
    pub after: DateTime<Utc>,
}

/// What leaving the school did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftSchool {
    pub student_id: String,
    pub left_at: DateTime<Utc>,
    /// The classes the student was unenrolled from.
    pub classes: Vec<String>,
    /// Make-up bookings of lessons not started yet, cancelled.
    pub makeups_cancelled: Vec<String>,
}

/// A class a student is enrolled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrolledClass {
    pub class_id: String,
    pub name: String,
    pub campus_id: String,
    pub teacher: String,
    pub enrolled_at: DateTime<Utc>,
}

/// One lesson of a student's attendance history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttendanceRecord {
    pub lesson_id: String,
    pub class_id: String,
    pub class_name: String,
    pub campus_id: String,
    pub start: DateTime<Utc>,
    /// `present`, `late`, `absent`, `excused` or `left_early`.
    pub status: String,
    /// `camera`, `manual`, `qr`, … (`None`: decided when the lesson was finalised).
    pub source: Option<String>,
    pub at: DateTime<Utc>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> crate::LedgerError {
    crate::LedgerError::Invalid {
        field,
        message: message.into(),
    }
}

/// A phone number as a person types it: digits with `+`, spaces, `-` and brackets; 5–20 digits.
fn check_phone(v: &str) -> Result<()> {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let ok = v
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'))
        && (5..=20).contains(&digits);
    if ok {
        Ok(())
    } else {
        Err(invalid("phone", format!("{v:?} is not a phone number")))
    }
}

fn check_email(v: &str) -> Result<()> {
    let ok = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && v.split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(invalid("email", format!("{v:?} is not an e-mail address")))
    }
}

/// A WeChat id: 1–64 letters, digits, `_` or `-`.
fn check_wechat(v: &str) -> Result<()> {
    let ok = (1..=64).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "wechat_id",
            format!("{v:?}: 1–64 letters, digits, _ or -"),
        ))
    }
}

/// A guardian's details as entered: name, contacts in their formats, language `zh` or `en`,
/// and at least one way to reach them.
pub(crate) fn check_guardian(g: &GuardianDetail) -> Result<()> {
    check_id("guardian", &g.id)?;
    check_name("guardian name", &g.name)?;
    if let Some(p) = &g.phone {
        check_phone(p)?;
    }
    if let Some(e) = &g.email {
        check_email(e)?;
    }
    if let Some(w) = &g.wechat_id {
        check_wechat(w)?;
    }
    if !matches!(g.language.as_str(), "zh" | "en") {
        return Err(invalid("language", format!("{:?}: zh or en", g.language)));
    }
    if g.phone.is_none() && g.email.is_none() && g.wechat_id.is_none() {
        return Err(invalid(
            "phone",
            "a guardian needs a phone number, an e-mail address or a WeChat id",
        ));
    }
    if g.notify_prefs.len() > 1000 {
        return Err(invalid("notify_prefs", "at most 1000 characters"));
    }
    Ok(())
}

async fn insert_guardian_detail(
    c: &mut AnyConnection,
    school: &str,
    g: &GuardianDetail,
    now: i64,
) -> Result<()> {
    check_guardian(g)?;
    require(c, "student", school, &g.student_id).await?;
    sqlx::query(
        "INSERT INTO guardians (school_id, id, student_id, name, phone, email, language, notify_prefs, wechat_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(school)
    .bind(&g.id)
    .bind(&g.student_id)
    .bind(&g.name)
    .bind(&g.phone)
    .bind(&g.email)
    .bind(&g.language)
    .bind(&g.notify_prefs)
    .bind(&g.wechat_id)
    .execute(&mut *c)
    .await?;
    audit(
        c,
        school,
        "setup",
        "create",
        "guardian",
        &g.id,
        None,
        Some(json!(g)),
        now,
    )
    .await
}

fn guardian_from_row(r: &sqlx::any::AnyRow) -> Result<GuardianDetail> {
    Ok(GuardianDetail {
        id: r.try_get(0)?,
        student_id: r.try_get(1)?,
        name: r.try_get(2)?,
        phone: r.try_get(3)?,
        email: r.try_get(4)?,
        wechat_id: r.try_get(5)?,
        language: r.try_get(6)?,
        notify_prefs: r.try_get(7)?,
    })
}

const GUARDIAN_COLS: &str = "id, student_id, name, phone, email, wechat_id, language, notify_prefs";

async fn state_of(c: &mut AnyConnection, school: &str, student: &str) -> Result<StudentState> {
    let r = sqlx::query(
        "SELECT status, status_since, status_reason FROM students WHERE school_id = $1 AND id = $2",
    )
    .bind(school)
    .bind(student)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| crate::LedgerError::NotFound {
        entity: "student",
        id: student.into(),
    })?;
    state_from_row(
        student.to_string(),
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
    )
}

fn state_from_row(
    student_id: String,
    status: String,
    since: Option<i64>,
    reason: Option<String>,
) -> Result<StudentState> {
    Ok(StudentState {
        student_id,
        status: super::base::parse_enum(&status, StudentStatus::parse, "student status")?,
        since: since.map(super::base::from_ms),
        reason,
    })
}

async fn set_state(
    c: &mut AnyConnection,
    school: &str,
    before: &StudentState,
    after: &StudentState,
    action: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE students SET status = $1, status_since = $2, status_reason = $3 WHERE school_id = $4 AND id = $5")
        .bind(after.status.as_str())
        .bind(after.since.map(ms))
        .bind(&after.reason)
        .bind(school)
        .bind(&after.student_id)
        .execute(&mut *c)
        .await?;
    audit(
        c,
        school,
        "setup",
        action,
        "student",
        &after.student_id,
        Some(json!(before)),
        Some(json!(after)),
        now,
    )
    .await
}

/// A reason as given (trimmed; empty is none), at most 500 characters.
fn reason(r: Option<&str>) -> Result<Option<String>> {
    let r = r.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = r {
        if r.chars().count() > 500 || r.chars().any(char::is_control) {
            return Err(invalid("reason", "at most 500 characters, one line"));
        }
    }
    Ok(r.map(str::to_string))
}

impl Store {
    /// Registers a student with their guardians (1 or 2) and, when given, the consent decision
    /// one of them made: all in one transaction, each row audited; nothing is written when any
    /// part is refused.
    pub async fn register_student(
        &self,
        s: &NewStudent,
        guardians: &[GuardianDetail],
        consent: Option<&RegistrationConsent>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        if guardians.is_empty() || guardians.len() > 2 {
            return Err(invalid("guardians", "one or two guardians"));
        }
        for g in guardians {
            if g.student_id != s.id {
                return Err(invalid("guardians", "a guardian of another student"));
            }
            check_guardian(g)?;
        }
        if guardians.len() == 2 && guardians[0].id == guardians[1].id {
            return Err(invalid("guardians", "two guardians with the same id"));
        }
        if let Some(c) = consent {
            if c.kind.trim().is_empty() || c.kind.len() > 64 {
                return Err(invalid("consent kind", "1–64 characters"));
            }
            if !guardians.iter().any(|g| g.id == c.given_by) {
                return Err(invalid(
                    "given_by",
                    "the consent must be given by one of the student's guardians",
                ));
            }
            if c.granted
                && c.document_ref
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or("")
                    .is_empty()
            {
                return Err(invalid(
                    "document_ref",
                    "a consent grant needs the reference of the signed form",
                ));
            }
            if let Some(e) = c.expires_at {
                if !c.granted {
                    return Err(invalid("expires_at", "only a consent grant has an expiry"));
                }
                if e <= self.now() {
                    return Err(invalid(
                        "expires_at",
                        "the consent would expire before it is given",
                    ));
                }
            }
        }
        let now = ms(self.now());
        let mut w = self.write().await?;
        insert_student(w.conn(), &school, s, "setup", now).await?;
        for g in guardians {
            insert_guardian_detail(w.conn(), &school, g, now).await?;
        }
        if let Some(c) = consent {
            sqlx::query("INSERT INTO consents (school_id, student_id, kind, granted, given_by, at, document_ref, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&school)
                .bind(&s.id)
                .bind(&c.kind)
                .bind(i64::from(c.granted))
                .bind(&c.given_by)
                .bind(now)
                .bind(&c.document_ref)
                .bind(c.expires_at.map(ms))
                .execute(w.conn())
                .await?;
            audit(
                w.conn(),
                &school,
                &c.given_by,
                if c.granted {
                    "consent"
                } else {
                    "consent_refused"
                },
                "student",
                &s.id,
                None,
                Some(json!(c)),
                now,
            )
            .await?;
        }
        w.commit().await
    }

    /// A new student id: `S-0001`, `S-0002`, … the first not taken.
    pub async fn next_student_id(&self) -> Result<String> {
        let school = self.need_school()?;
        let n = sqlx::query("SELECT COUNT(*) FROM students WHERE school_id = $1")
            .bind(school)
            .fetch_one(&self.pool)
            .await?
            .try_get::<i64, _>(0)?;
        for k in (n + 1)..(n + 1000) {
            let id = format!("S-{k:04}");
            let taken = sqlx::query("SELECT 1 FROM students WHERE school_id = $1 AND id = $2")
                .bind(school)
                .bind(&id)
                .fetch_optional(&self.pool)
                .await?
                .is_some();
            if !taken {
                return Ok(id);
            }
        }
        Err(crate::LedgerError::Conflict(
            "no free student id; give one".into(),
        ))
    }

    /// Changes a student's name and home campus (`None`: unchanged); audited before/after.
    pub async fn update_student(
        &self,
        id: &str,
        name: Option<&str>,
        home_campus_id: Option<&str>,
    ) -> Result<()> {
        let school = self.need_school()?.to_string();
        if let Some(n) = name {
            check_name("name", n)?;
        }
        let now = ms(self.now());
        let mut w = self.write().await?;
        let c = w.conn();
        if let Some(campus) = home_campus_id {
            require(&mut *c, "campus", &school, campus).await?;
        }
        let r = sqlx::query(
            "SELECT name, home_campus_id FROM students WHERE school_id = $1 AND id = $2",
        )
        .bind(&school)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| crate::LedgerError::NotFound {
            entity: "student",
            id: id.into(),
        })?;
        let (old_name, old_home): (String, Option<String>) = (r.try_get(0)?, r.try_get(1)?);
        let new_name = name.map_or(old_name.clone(), str::to_string);
        let new_home = home_campus_id.map(str::to_string).or(old_home.clone());
        sqlx::query(
            "UPDATE students SET name = $1, home_campus_id = $2 WHERE school_id = $3 AND id = $4",
        )
        .bind(&new_name)
        .bind(&new_home)
        .bind(&school)
        .bind(id)
        .execute(&mut *c)
        .await?;
        audit(
            c,
            &school,
            "setup",
            "update",
            "student",
            id,
            Some(json!({"name": old_name, "home_campus_id": old_home})),
            Some(json!({"name": new_name, "home_campus_id": new_home})),
            now,
        )
        .await?;
        w.commit().await
    }

    /// Adds a guardian with every contact detail (audited).
    pub async fn add_guardian_detail(&self, g: &GuardianDetail) -> Result<()> {
        let school = self.need_school()?.to_string();
        let now = ms(self.now());
        let mut w = self.write().await?;
        let n =
            sqlx::query("SELECT COUNT(*) FROM guardians WHERE school_id = $1 AND student_id = $2")
                .bind(&school)
                .bind(&g.student_id)
                .fetch_one(w.conn())
                .await?
                .try_get::<i64, _>(0)?;
        if n >= MAX_GUARDIANS as i64 {
            return Err(invalid(
                "guardians",
                format!("at most {MAX_GUARDIANS} guardians per student, as at registration"),
            ));
        }
        insert_guardian_detail(w.conn(), &school, g, now).await?;
        w.commit().await
    }

    /// Removes one of a student's guardians (a student keeps at least one); audited with the
    /// guardian's details. Consent decisions they gave stay in the record. Returns what was
    /// removed.
    pub async fn remove_guardian(&self, student: &str, guardian: &str) -> Result<GuardianDetail> {
        let school = self.need_school()?.to_string();
        let now = ms(self.now());
        let mut w = self.write().await?;
        let c = w.conn();
        require(&mut *c, "student", &school, student).await?;
        let row = sqlx::query(&format!(
            "SELECT {GUARDIAN_COLS} FROM guardians WHERE school_id = $1 AND id = $2 AND student_id = $3"
        ))
        .bind(&school)
        .bind(guardian)
        .bind(student)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| crate::LedgerError::NotFound {
            entity: "guardian",
            id: guardian.into(),
        })?;
        let before = guardian_from_row(&row)?;
        let n =
            sqlx::query("SELECT COUNT(*) FROM guardians WHERE school_id = $1 AND student_id = $2")
                .bind(&school)
                .bind(student)
                .fetch_one(&mut *c)
                .await?
                .try_get::<i64, _>(0)?;
        if n <= 1 {
            return Err(invalid(
                "guardians",
                "a student keeps at least one guardian: add another before removing this one",
            ));
        }
        sqlx::query("DELETE FROM guardians WHERE school_id = $1 AND id = $2 AND student_id = $3")
            .bind(&school)
            .bind(guardian)
            .bind(student)
            .execute(&mut *c)
            .await?;
        audit(
            c,
            &school,
            "setup",
            "remove",
            "guardian",
            guardian,
            Some(json!(before)),
            None,
            now,
        )
        .await?;
        w.commit().await?;
        Ok(before)
    }

    /// Replaces a guardian's details (the id and the student stay); audited before/after.
    pub async fn update_guardian(&self, g: &GuardianDetail) -> Result<()> {
        let school = self.need_school()?.to_string();
        check_guardian(g)?;
        let now = ms(self.now());
        let mut w = self.write().await?;
        let c = w.conn();
        let before = sqlx::query(&format!(
            "SELECT {GUARDIAN_COLS} FROM guardians WHERE school_id = $1 AND id = $2 AND student_id = $3"
        ))
        .bind(&school)
        .bind(&g.id)
        .bind(&g.student_id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| crate::LedgerError::NotFound {
            entity: "guardian",
            id: g.id.clone(),
        })?;
        let before = guardian_from_row(&before)?;
        sqlx::query("UPDATE guardians SET name = $1, phone = $2, email = $3, wechat_id = $4, language = $5, notify_prefs = $6 WHERE school_id = $7 AND id = $8")
            .bind(&g.name)
            .bind(&g.phone)
            .bind(&g.email)
            .bind(&g.wechat_id)
            .bind(&g.language)
            .bind(&g.notify_prefs)
            .bind(&school)
            .bind(&g.id)
            .execute(&mut *c)
            .await?;
        audit(
            c,
            &school,
            "setup",
            "update",
            "guardian",
            &g.id,
            Some(json!(before)),
            Some(json!(g)),
            now,
        )
        .await?;
        w.commit().await
    }

    /// A student's guardians with every contact detail, by id.
    pub async fn guardian_details(&self, student: &str) -> Result<Vec<GuardianDetail>> {
        let rows = sqlx::query(&format!(
            "SELECT {GUARDIAN_COLS} FROM guardians WHERE school_id = $1 AND student_id = $2 ORDER BY id"
        ))
        .bind(self.need_school()?)
        .bind(student)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(guardian_from_row).collect()
    }

    /// Every guardian of the school, by student (one query, for the lists).
    pub async fn guardians_by_student(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<GuardianDetail>>> {
        let rows = sqlx::query(&format!(
            "SELECT {GUARDIAN_COLS} FROM guardians WHERE school_id = $1 ORDER BY student_id, id"
        ))
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        let mut by: std::collections::HashMap<String, Vec<GuardianDetail>> = Default::default();
        for r in &rows {
            let g = guardian_from_row(r)?;
            by.entry(g.student_id.clone()).or_default().push(g);
        }
        Ok(by)
    }

    /// A student's status.
    pub async fn student_state(&self, student: &str) -> Result<StudentState> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        state_of(&mut c, &school, student).await
    }

    /// Every student's status, by id (one query, for the lists).
    pub async fn student_states(&self) -> Result<std::collections::HashMap<String, StudentState>> {
        let rows = sqlx::query(
            "SELECT id, status, status_since, status_reason FROM students WHERE school_id = $1",
        )
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let s = state_from_row(id.clone(), r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)?;
                Ok((id, s))
            })
            .collect()
    }

    /// Suspends an active student (休学) from now: off the daily call lists, not charged for
    /// absences while suspended; their packages' expiry pauses until [`Store::resume_student`].
    /// Audited.
    pub async fn suspend_student(&self, student: &str, why: Option<&str>) -> Result<StudentState> {
        let school = self.need_school()?.to_string();
        let why = reason(why)?;
        let now = self.now();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let before = state_of(w.conn(), &school, student).await?;
        if before.status != StudentStatus::Active {
            return Err(crate::LedgerError::Conflict(format!(
                "student {student:?} is {}, not active",
                before.status.as_str()
            )));
        }
        let after = StudentState {
            student_id: student.into(),
            status: StudentStatus::Suspended,
            since: Some(now),
            reason: why,
        };
        set_state(w.conn(), &school, &before, &after, "suspend", ms(now)).await?;
        w.commit().await?;
        Ok(after)
    }

    /// Resumes a suspended student. The suspension paused the packages' expiry: every package
    /// that had not expired when the student was suspended gets its `expires_at` moved later by
    /// the time the suspension lasted (each move audited with before and after).
    pub async fn resume_student(&self, student: &str) -> Result<Resumed> {
        let school = self.need_school()?.to_string();
        let now = self.now();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let before = state_of(w.conn(), &school, student).await?;
        let since = match (before.status, before.since) {
            (StudentStatus::Suspended, Some(s)) => s,
            _ => {
                return Err(crate::LedgerError::Conflict(format!(
                    "student {student:?} is {}, not suspended",
                    before.status.as_str()
                )))
            }
        };
        let paused = (ms(now) - ms(since)).max(0);
        let rows = sqlx::query("SELECT id, expires_at FROM packages WHERE school_id = $1 AND student_id = $2 AND expires_at > $3 ORDER BY id")
            .bind(&school)
            .bind(student)
            .bind(ms(since))
            .fetch_all(w.conn())
            .await?;
        let mut moved = Vec::new();
        for r in &rows {
            let (id, old): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            let new = old.saturating_add(paused);
            sqlx::query("UPDATE packages SET expires_at = $1 WHERE school_id = $2 AND id = $3")
                .bind(new)
                .bind(&school)
                .bind(&id)
                .execute(w.conn())
                .await?;
            audit(
                w.conn(),
                &school,
                "setup",
                "expiry_paused",
                "package",
                &id,
                Some(json!({"expires_at": super::base::from_ms(old)})),
                Some(json!({"expires_at": super::base::from_ms(new), "suspended_since": since, "resumed_at": now})),
                ms(now),
            )
            .await?;
            moved.push(ExpiryMoved {
                package_id: id,
                before: super::base::from_ms(old),
                after: super::base::from_ms(new),
            });
        }
        let after = StudentState {
            student_id: student.into(),
            status: StudentStatus::Active,
            since: None,
            reason: None,
        };
        set_state(w.conn(), &school, &before, &after, "resume", ms(now)).await?;
        w.commit().await?;
        Ok(Resumed {
            student_id: student.into(),
            suspended_since: since,
            resumed_at: now,
            packages: moved,
        })
    }

    /// The student leaves the school: unenrolled from every class, make-up bookings of lessons
    /// not started yet cancelled, marked left (history, packages and ledger kept). Their face
    /// data is erased on the privacy rules' schedule (the retention job's inactivity rule, or
    /// at once through an erasure). Audited.
    pub async fn leave_school(&self, student: &str, why: Option<&str>) -> Result<LeftSchool> {
        let school = self.need_school()?.to_string();
        let why = reason(why)?;
        let now = self.now();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let before = state_of(w.conn(), &school, student).await?;
        if before.status == StudentStatus::Left {
            return Err(crate::LedgerError::Conflict(format!(
                "student {student:?} has already left"
            )));
        }
        let classes: Vec<String> = sqlx::query(
            "SELECT class_id FROM enrollments WHERE school_id = $1 AND student_id = $2 ORDER BY class_id",
        )
        .bind(&school)
        .bind(student)
        .fetch_all(w.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        sqlx::query("DELETE FROM enrollments WHERE school_id = $1 AND student_id = $2")
            .bind(&school)
            .bind(student)
            .execute(w.conn())
            .await?;
        let makeups: Vec<String> = sqlx::query(
            "SELECT m.lesson_id FROM makeups m JOIN lessons l ON l.school_id = m.school_id AND l.id = m.lesson_id \
             WHERE m.school_id = $1 AND m.student_id = $2 AND l.start_ms > $3 ORDER BY m.lesson_id",
        )
        .bind(&school)
        .bind(student)
        .bind(ms(now))
        .fetch_all(w.conn())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        for l in &makeups {
            sqlx::query(
                "DELETE FROM makeups WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3",
            )
            .bind(&school)
            .bind(student)
            .bind(l)
            .execute(w.conn())
            .await?;
        }
        audit(
            w.conn(),
            &school,
            "setup",
            "unenroll",
            "student",
            student,
            Some(json!({"classes": classes, "makeups": makeups})),
            Some(json!({"classes": [], "makeups": []})),
            ms(now),
        )
        .await?;
        let after = StudentState {
            student_id: student.into(),
            status: StudentStatus::Left,
            since: Some(now),
            reason: why,
        };
        set_state(w.conn(), &school, &before, &after, "leave_school", ms(now)).await?;
        w.commit().await?;
        Ok(LeftSchool {
            student_id: student.into(),
            left_at: now,
            classes,
            makeups_cancelled: makeups,
        })
    }

    /// The classes a student is enrolled in, by class id.
    pub async fn enrolled_classes(&self, student: &str) -> Result<Vec<EnrolledClass>> {
        let rows = sqlx::query(
            "SELECT k.id, k.name, k.campus_id, k.teacher, e.enrolled_at FROM enrollments e JOIN classes k ON k.school_id = e.school_id AND k.id = e.class_id \
             WHERE e.school_id = $1 AND e.student_id = $2 ORDER BY k.id",
        )
        .bind(self.need_school()?)
        .bind(student)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EnrolledClass {
                    class_id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    campus_id: r.try_get(2)?,
                    teacher: r.try_get(3)?,
                    enrolled_at: super::base::from_ms(r.try_get(4)?),
                })
            })
            .collect()
    }

    /// Every student's classes' names, by student (one query, for the student list).
    pub async fn class_names_by_student(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<String>>> {
        let rows = sqlx::query(
            "SELECT e.student_id, k.name FROM enrollments e JOIN classes k ON k.school_id = e.school_id AND k.id = e.class_id WHERE e.school_id = $1 ORDER BY e.student_id, k.name",
        )
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        let mut by: std::collections::HashMap<String, Vec<String>> = Default::default();
        for r in &rows {
            by.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
        Ok(by)
    }

    /// A student's attendance of lessons starting in `[from, to)`, newest first.
    pub async fn attendance_history(
        &self,
        student: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AttendanceRecord>> {
        let rows = sqlx::query(
            "SELECT l.id, l.class_id, k.name, l.campus_id, l.start_ms, a.status, a.source, a.at FROM attendance a \
             JOIN lessons l ON l.school_id = a.school_id AND l.id = a.lesson_id \
             JOIN classes k ON k.school_id = l.school_id AND k.id = l.class_id \
             WHERE a.school_id = $1 AND a.student_id = $2 AND l.start_ms >= $3 AND l.start_ms < $4 \
             ORDER BY l.start_ms DESC, l.id",
        )
        .bind(self.need_school()?)
        .bind(student)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttendanceRecord {
                    lesson_id: r.try_get(0)?,
                    class_id: r.try_get(1)?,
                    class_name: r.try_get(2)?,
                    campus_id: r.try_get(3)?,
                    start: super::base::from_ms(r.try_get(4)?),
                    status: r.try_get(5)?,
                    source: r.try_get(6)?,
                    at: super::base::from_ms(r.try_get(7)?),
                })
            })
            .collect()
    }
}
