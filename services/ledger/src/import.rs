//! CSV import of students, guardians, classes, timetable, packages and enrollments.
//!
//! All or nothing: every row is parsed first (all parse errors are reported together, each with
//! its line and field); then every row is written in one transaction, and the first row the
//! database refuses (duplicate id, unknown reference) rolls everything back and is reported.

use crate::store::*;
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::{Charge, ClassPolicy};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;

/// What a CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// `id,name`
    Campuses,
    /// `id,name[,home_campus]`
    Students,
    /// `id,student_id,name[,phone,email,language,notify]`
    Guardians,
    /// `id,course,name,campus,teacher[,absence_unexcused,absence_excused,absence_short_notice,notice_hours,early_minutes,late_grace_minutes,finalize_grace_minutes]`
    Classes,
    /// `lesson_id,class_id,start,end[,room,teacher]` (RFC 3339 times)
    Timetable,
    /// `id,student_id,lessons,unit_price_cents,bought_at,expires_at[,campus,price_paid_cents]`
    Packages,
    /// `class_id,student_id[,enrolled_at]`
    Enrollments,
}

impl std::str::FromStr for ImportKind {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "campuses" => ImportKind::Campuses,
            "students" => ImportKind::Students,
            "guardians" => ImportKind::Guardians,
            "classes" => ImportKind::Classes,
            "timetable" | "lessons" => ImportKind::Timetable,
            "packages" => ImportKind::Packages,
            "enrollments" => ImportKind::Enrollments,
            _ => {
                return Err(LedgerError::Invalid {
                    field: "kind",
                    message: format!("{s:?}: expected campuses, students, guardians, classes, timetable, packages or enrollments"),
                })
            }
        })
    }
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, field {}: {}",
            self.line, self.field, self.message
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub kind: ImportKind,
    pub rows: u64,
}

enum Parsed {
    Campus(String, String),
    Student(NewStudent),
    Guardian(NewGuardian),
    Class(NewClass),
    Lesson(NewLesson),
    Package(NewPackage),
    Enrollment(String, String, DateTime<Utc>),
}

struct Rec<'a> {
    line: u64,
    cols: &'a HashMap<String, usize>,
    rec: &'a csv::StringRecord,
    errors: Vec<RowError>,
}

impl Rec<'_> {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(RowError {
            line: self.line,
            field: field.into(),
            message: message.into(),
        });
    }
    fn opt(&self, field: &str) -> Option<String> {
        self.cols
            .get(field)
            .and_then(|i| self.rec.get(*i))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Into::into)
    }
    fn req(&mut self, field: &str) -> String {
        match self.opt(field) {
            Some(v) => v,
            None => {
                self.err(field, "required");
                String::new()
            }
        }
    }
    fn id(&mut self, field: &str) -> String {
        let v = self.req(field);
        if !v.is_empty() {
            if let Err(e) = rollcall_domain::ids::check_new_id(&v) {
                self.err(field, e.to_string());
            }
        }
        v
    }
    fn int(&mut self, field: &str, required: bool) -> Option<i64> {
        let v = if required {
            Some(self.req(field)).filter(|s| !s.is_empty())
        } else {
            self.opt(field)
        }?;
        match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(field, format!("{v:?} is not an integer"));
                None
            }
        }
    }
    fn time(&mut self, field: &str, required: bool) -> Option<DateTime<Utc>> {
        let v = if required {
            Some(self.req(field)).filter(|s| !s.is_empty())
        } else {
            self.opt(field)
        }?;
        match DateTime::parse_from_rfc3339(&v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.err(field, format!("{v:?} is not an RFC 3339 time ({e})"));
                None
            }
        }
    }
    fn charge(&mut self, field: &str, default: Charge) -> Charge {
        match self.opt(field) {
            None => default,
            Some(v) => Charge::parse(&v).unwrap_or_else(|| {
                self.err(field, format!("{v:?} is not free, half or full"));
                default
            }),
        }
    }
}

/// One row of `kind`; `now` is an enrolment's time when the row gives none.
fn parse_row(kind: ImportKind, r: &mut Rec<'_>, now: DateTime<Utc>) -> Option<Parsed> {
    let p = match kind {
        ImportKind::Campuses => Parsed::Campus(r.id("id"), r.req("name")),
        ImportKind::Students => Parsed::Student(NewStudent {
            id: r.id("id"),
            name: r.req("name"),
            home_campus_id: r.opt("home_campus"),
        }),
        ImportKind::Guardians => Parsed::Guardian(NewGuardian {
            id: r.id("id"),
            student_id: r.id("student_id"),
            name: r.req("name"),
            phone: r.opt("phone"),
            email: r.opt("email").inspect(|e| {
                if !e.contains('@') {
                    r.err("email", format!("{e:?} is not an e-mail address"));
                }
            }),
            language: r.opt("language").unwrap_or_else(|| "en".into()),
            notify_prefs: r.opt("notify").unwrap_or_default(),
        }),
        ImportKind::Classes => {
            let mut policy = ClassPolicy::default();
            policy.absence.unexcused = r.charge("absence_unexcused", policy.absence.unexcused);
            policy.absence.excused = r.charge("absence_excused", policy.absence.excused);
            policy.absence.short_notice =
                r.charge("absence_short_notice", policy.absence.short_notice);
            for (field, slot) in [
                ("notice_hours", &mut policy.absence.notice_hours),
                ("early_minutes", &mut policy.timing.early_minutes),
                ("late_grace_minutes", &mut policy.timing.late_grace_minutes),
                (
                    "finalize_grace_minutes",
                    &mut policy.timing.finalize_grace_minutes,
                ),
            ] {
                if let Some(v) = r.int(field, false) {
                    if !(0..=720).contains(&v) {
                        r.err(field, format!("{v} is not in 0..=720"));
                    }
                    *slot = v;
                }
            }
            Parsed::Class(NewClass {
                id: r.id("id"),
                course: r.req("course"),
                name: r.req("name"),
                campus_id: r.id("campus"),
                teacher: r.req("teacher"),
                policy,
                capacity: None,
                room_id: None,
                kind: Default::default(),
            })
        }
        ImportKind::Timetable => {
            let id = r.id("lesson_id");
            let class_id = r.id("class_id");
            let start = r.time("start", true);
            let end = r.time("end", true);
            if let (Some(s), Some(e)) = (start, end) {
                if e <= s {
                    r.err("end", "lesson must end after it starts");
                }
            }
            Parsed::Lesson(NewLesson {
                id,
                class_id,
                room_id: r.opt("room"),
                teacher: r.opt("teacher"),
                start: start.unwrap_or_default(),
                end: end.unwrap_or_default(),
            })
        }
        ImportKind::Packages => {
            let id = r.id("id");
            let student_id = r.id("student_id");
            let lessons = r.int("lessons", true).unwrap_or(0);
            if r.errors.iter().all(|e| e.field != "lessons") && !(1..=10_000).contains(&lessons) {
                r.err("lessons", format!("{lessons} is not in 1..=10000"));
            }
            let unit_price_cents = r.int("unit_price_cents", true).unwrap_or(0);
            if unit_price_cents < 0 {
                r.err("unit_price_cents", "negative");
            }
            let bought_at = r.time("bought_at", true);
            let expires_at = r.time("expires_at", true);
            if let (Some(b), Some(e)) = (bought_at, expires_at) {
                if e <= b {
                    r.err("expires_at", "package expires before it is bought");
                }
            }
            Parsed::Package(NewPackage {
                id,
                student_id,
                campus_id: r.opt("campus"),
                lessons,
                unit_price_cents,
                price_paid_cents: r.int("price_paid_cents", false),
                bought_at: bought_at.unwrap_or_default(),
                expires_at: expires_at.unwrap_or_default(),
            })
        }
        ImportKind::Enrollments => {
            let class = r.id("class_id");
            let student = r.id("student_id");
            let at = r.time("enrolled_at", false).unwrap_or(now);
            Parsed::Enrollment(class, student, at)
        }
    };
    r.errors.is_empty().then_some(p)
}

/// The field a store error is about, for row reports.
fn field_of(kind: ImportKind, e: &LedgerError) -> String {
    match e {
        LedgerError::Invalid { field, .. } => (*field).into(),
        LedgerError::NotFound { entity, .. } => match (*entity, kind) {
            ("campus", ImportKind::Students) => "home_campus".into(),
            ("campus", _) => "campus".into(),
            ("student", _) => "student_id".into(),
            ("class", _) => "class_id".into(),
            ("room", _) => "room".into(),
            (other, _) => other.into(),
        },
        e if e.is_unique_violation() => match kind {
            ImportKind::Timetable => "lesson_id".into(),
            ImportKind::Enrollments => "student_id".into(),
            _ => "id".into(),
        },
        _ => "row".into(),
    }
}

impl Store {
    /// Imports a CSV file (with a header row); all rows or none.
    pub async fn import_csv(&self, kind: ImportKind, input: impl Read) -> Result<ImportSummary> {
        let school = self.school_id().to_string();
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        let headers = rdr
            .headers()
            .map_err(|e| LedgerError::Csv(e.to_string()))?
            .clone();
        let cols: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().to_lowercase(), i))
            .collect();
        let mut errors = Vec::new();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    errors.push(RowError {
                        line,
                        field: "row".into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let mut r = Rec {
                line,
                cols: &cols,
                rec: &rec,
                errors: Vec::new(),
            };
            match parse_row(kind, &mut r, self.now()) {
                Some(p) => rows.push((line, p)),
                None => errors.append(&mut r.errors),
            }
        }
        if !errors.is_empty() {
            return Err(LedgerError::Import(errors));
        }
        let now = ms(self.now());
        let mut w = self.write().await?;
        for (line, p) in &rows {
            let c = w.conn();
            let res = match p {
                Parsed::Campus(id, name) => {
                    insert_campus(c, &school, id, name, "import", now).await
                }
                Parsed::Student(s) => insert_student(c, &school, s, "import", now).await,
                Parsed::Guardian(g) => insert_guardian(c, &school, g, "import", now).await,
                Parsed::Class(k) => insert_class(c, &school, k, "import", now).await,
                Parsed::Lesson(l) => insert_lesson(c, &school, l, "import", now).await,
                Parsed::Package(p) => insert_package(c, &school, p, "import", now).await,
                Parsed::Enrollment(class, student, at) => {
                    insert_enrollment(c, &school, class, student, *at, "import").await
                }
            };
            if let Err(e) = res {
                let field = field_of(kind, &e);
                drop(w); // rolls back
                return Err(LedgerError::Import(vec![RowError {
                    line: *line,
                    field,
                    message: e.to_string(),
                }]));
            }
        }
        w.commit().await?;
        Ok(ImportSummary {
            kind,
            rows: rows.len() as u64,
        })
    }
}
