//! Finance reports: cash received and paid back per local day, campus and payment method;
//! lessons taught per teacher with the pay statement at each teacher's stored rates (per lesson
//! held and per attending student, in effect from a school-local date on). Revenue recognised
//! is the consumption report's ([`Store::report_consumption_in`]: the paid price of each lesson
//! used) and the prepaid liability the outstanding report's ([`Store::report_outstanding_in`]).
//!
//! Every report takes the reader's [`CampusScope`]: a campus-limited account sees the money of
//! its campuses only (payments by the order's campus, refunds by the student's home campus,
//! revenue and teaching by the lesson's campus, the liability by the package's campus or, for a
//! package usable everywhere, the student's home campus).

use crate::staff::CampusScope;
use crate::store::{audit, from_ms, ms, parse_enum, Store};
use crate::{LedgerError, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_domain::ledger::{AttendanceStatus, Cents, PaymentMethod};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

/// Most a teacher's rate may be, in cents (a million a lesson).
pub const MAX_RATE_CENTS: Cents = 100_000_000;

/// A teacher's pay rates from a school-local date on (until the teacher's next rate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeacherRate {
    /// The teacher as lessons name them (`lessons.teacher`: the account's username).
    pub teacher: String,
    pub effective_from: NaiveDate,
    /// Per lesson held (at least one student attended).
    pub per_lesson_cents: Cents,
    /// Per attending student of a lesson.
    pub per_student_cents: Cents,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// The lessons of a pay statement paid at one stored rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateUsed {
    pub effective_from: NaiveDate,
    pub per_lesson_cents: Cents,
    pub per_student_cents: Cents,
    pub lessons: i64,
    pub student_lessons: i64,
    pub pay_cents: Cents,
}

/// Money in and out on one local day at one campus by one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashRow {
    pub day: NaiveDate,
    pub campus_id: Option<String>,
    pub method: PaymentMethod,
    pub received_cents: Cents,
    pub refunded_cents: Cents,
}

/// Cash received and paid back over `[from, to)`, with totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<CashRow>,
    pub received_cents: Cents,
    pub refunded_cents: Cents,
    /// Received less refunded.
    pub net_cents: Cents,
}

/// Lessons one teacher taught over a range: lessons held (at least one student attended) and
/// student-lessons (each attending student once), with the pay at the stored rates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TeachingRow {
    pub teacher: String,
    pub lessons: i64,
    pub student_lessons: i64,
    /// Each lesson at the teacher's rate in effect on its local date.
    pub pay_cents: Cents,
    /// Lessons held before the teacher's first stored rate (nothing paid for them).
    pub unrated_lessons: i64,
    /// The stored rates the lessons were paid at, oldest first.
    pub rates: Vec<RateUsed>,
}

/// Whether `campus` (none: the row belongs to no campus) is in `scope`.
fn in_scope(scope: &CampusScope, campus: Option<&str>) -> bool {
    match scope {
        CampusScope::All => true,
        CampusScope::Only(_) => campus.is_some_and(|c| scope.allows(c)),
    }
}

/// The rate in effect on `day` among a teacher's rates (sorted by date).
fn rate_on(rates: &[TeacherRate], day: NaiveDate) -> Option<&TeacherRate> {
    rates.iter().rev().find(|r| r.effective_from <= day)
}

fn rate_row(r: &sqlx::any::AnyRow) -> Result<TeacherRate> {
    let from: String = r.try_get(1)?;
    Ok(TeacherRate {
        teacher: r.try_get(0)?,
        effective_from: from
            .parse()
            .map_err(|_| LedgerError::Corrupt(format!("teacher rate date {from:?}")))?,
        per_lesson_cents: r.try_get(2)?,
        per_student_cents: r.try_get(3)?,
        set_by: r.try_get(4)?,
        set_at: from_ms(r.try_get(5)?),
    })
}

const RATE_COLUMNS: &str =
    "teacher, effective_from, per_lesson_cents, per_student_cents, set_by, set_at";

impl Store {
    /// Cash received (payments) and paid back (approved refunds) over `[from, to)`, per the
    /// school's local day, campus and method, of the campuses in `scope` (a payment by its
    /// order's campus, a refund by the student's home campus).
    pub async fn report_cash(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        scope: &CampusScope,
    ) -> Result<CashReport> {
        let school = self.school_id().to_string();
        let payments = sqlx::query(
            "SELECT received_at, campus_id, method, amount_cents FROM payments WHERE school_id = $1 AND received_at >= $2 AND received_at < $3",
        )
        .bind(&school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let refunds = sqlx::query(
            "SELECT r.decided_at, s.home_campus_id, r.method, r.refund_cents FROM refund_requests r \
             JOIN students s ON s.school_id = r.school_id AND s.id = r.student_id \
             WHERE r.school_id = $1 AND r.state = 'approved' AND r.decided_at >= $2 AND r.decided_at < $3",
        )
        .bind(&school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let off = Duration::minutes(self.tz_offset_minutes());
        let mut m: BTreeMap<(NaiveDate, Option<String>, PaymentMethod), (Cents, Cents)> =
            BTreeMap::new();
        for (rows, refund) in [(&payments, false), (&refunds, true)] {
            for r in rows {
                let at = from_ms(r.try_get::<i64, _>(0)?);
                let method = parse_enum(
                    &r.try_get::<String, _>(2)?,
                    PaymentMethod::parse,
                    "payment method",
                )?;
                let amount: Option<i64> = r.try_get(3)?;
                let campus: Option<String> = r.try_get(1)?;
                if !in_scope(scope, campus.as_deref()) {
                    continue;
                }
                let e = m
                    .entry(((at + off).date_naive(), campus, method))
                    .or_default();
                if refund {
                    e.1 += amount.unwrap_or(0);
                } else {
                    e.0 += amount.unwrap_or(0);
                }
            }
        }
        let rows: Vec<CashRow> = m
            .into_iter()
            .map(|((day, campus_id, method), (received, refunded))| CashRow {
                day,
                campus_id,
                method,
                received_cents: received,
                refunded_cents: refunded,
            })
            .collect();
        let received = rows.iter().map(|r| r.received_cents).sum();
        let refunded = rows.iter().map(|r| r.refunded_cents).sum();
        Ok(CashReport {
            from,
            to,
            rows,
            received_cents: received,
            refunded_cents: refunded,
            net_cents: received - refunded,
        })
    }

    /// Lessons taught per teacher over lessons starting in `[from, to)` at the campuses in
    /// `scope`: a lesson counts when at least one student attended it (present, late or left
    /// early); each is paid at its teacher's stored rate in effect on its local date.
    pub async fn report_teaching(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        scope: &CampusScope,
    ) -> Result<Vec<TeachingRow>> {
        let attended = [
            AttendanceStatus::Present,
            AttendanceStatus::Late,
            AttendanceStatus::LeftEarly,
        ];
        let rows = sqlx::query(
            "SELECT l.teacher, l.id, a.status, l.start_ms, l.campus_id FROM lessons l JOIN attendance a ON a.school_id = l.school_id AND a.lesson_id = l.id \
             WHERE l.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3",
        )
        .bind(self.school_id())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        // (teacher, lesson) -> (local date, attending students)
        let mut held: BTreeMap<(String, String), (NaiveDate, i64)> = BTreeMap::new();
        let off = Duration::minutes(self.tz_offset_minutes());
        for r in &rows {
            let status = parse_enum(
                &r.try_get::<String, _>(2)?,
                AttendanceStatus::parse,
                "attendance status",
            )?;
            let campus: String = r.try_get(4)?;
            if !attended.contains(&status) || !in_scope(scope, Some(&campus)) {
                continue;
            }
            let day = (from_ms(r.try_get(3)?) + off).date_naive();
            held.entry((r.try_get(0)?, r.try_get(1)?))
                .or_insert((day, 0))
                .1 += 1;
        }
        let mut rates: BTreeMap<String, Vec<TeacherRate>> = BTreeMap::new();
        for r in self.teacher_rates().await? {
            rates.entry(r.teacher.clone()).or_default().push(r);
        }
        let mut by: BTreeMap<String, TeachingRow> = BTreeMap::new();
        for ((teacher, _), (day, students)) in held {
            let row = by.entry(teacher.clone()).or_insert_with(|| TeachingRow {
                teacher: teacher.clone(),
                ..Default::default()
            });
            row.lessons += 1;
            row.student_lessons += students;
            let Some(rate) = rates.get(&teacher).and_then(|v| rate_on(v, day)) else {
                row.unrated_lessons += 1;
                continue;
            };
            let pay = rate.per_lesson_cents + students * rate.per_student_cents;
            row.pay_cents += pay;
            match row
                .rates
                .iter_mut()
                .find(|u| u.effective_from == rate.effective_from)
            {
                Some(u) => {
                    u.lessons += 1;
                    u.student_lessons += students;
                    u.pay_cents += pay;
                }
                None => row.rates.push(RateUsed {
                    effective_from: rate.effective_from,
                    per_lesson_cents: rate.per_lesson_cents,
                    per_student_cents: rate.per_student_cents,
                    lessons: 1,
                    student_lessons: students,
                    pay_cents: pay,
                }),
            }
        }
        Ok(by
            .into_values()
            .map(|mut r| {
                r.rates.sort_by_key(|u| u.effective_from);
                r
            })
            .collect())
    }

    /// Every stored teacher rate, by teacher and date.
    pub async fn teacher_rates(&self) -> Result<Vec<TeacherRate>> {
        let rows = sqlx::query(&format!(
            "SELECT {RATE_COLUMNS} FROM teacher_rates WHERE school_id = $1 ORDER BY teacher, effective_from"
        ))
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rate_row).collect()
    }

    /// Who teaches: the teachers named by classes and lessons, and the teachers' accounts.
    pub async fn known_teachers(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT teacher FROM classes WHERE school_id = $1 UNION SELECT teacher FROM lessons WHERE school_id = $1 \
             UNION SELECT username FROM staff_accounts WHERE school_id = $1 AND role = 'teacher'",
        )
        .bind(self.need_school()?)
        .fetch_all(&self.pool)
        .await?;
        let set: BTreeSet<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<_, _>>()?;
        Ok(set.into_iter().collect())
    }

    /// Stores `teacher`'s rates from the local date `from` on (replacing a rate of the same
    /// date), audited with the rate it replaced. Returns the rate stored and the one replaced.
    /// The teacher must be one classes, lessons or a teacher's account name; rates are
    /// 0..=[`MAX_RATE_CENTS`].
    pub async fn set_teacher_rate(
        &self,
        teacher: &str,
        from: NaiveDate,
        per_lesson_cents: Cents,
        per_student_cents: Cents,
        actor: &str,
    ) -> Result<(TeacherRate, Option<TeacherRate>)> {
        let teacher = teacher.trim();
        if teacher.is_empty() || teacher.chars().count() > 64 {
            return Err(LedgerError::Invalid {
                field: "teacher",
                message: "a teacher of 1 to 64 characters is required".into(),
            });
        }
        for (field, v) in [
            ("per_lesson_cents", per_lesson_cents),
            ("per_student_cents", per_student_cents),
        ] {
            if !(0..=MAX_RATE_CENTS).contains(&v) {
                return Err(LedgerError::Invalid {
                    field,
                    message: format!("{v} is not between 0 and {MAX_RATE_CENTS} cents"),
                });
            }
        }
        if !self.known_teachers().await?.iter().any(|t| t == teacher) {
            return Err(LedgerError::Invalid {
                field: "teacher",
                message: format!(
                    "{teacher:?} teaches no class or lesson and has no teacher's account"
                ),
            });
        }
        let school = self.need_school()?.to_string();
        let who = crate::audit::who(actor);
        let mut w = self.write().await?;
        let before = sqlx::query(&format!(
            "SELECT {RATE_COLUMNS} FROM teacher_rates WHERE school_id = $1 AND teacher = $2 AND effective_from = $3"
        ))
        .bind(&school)
        .bind(teacher)
        .bind(from.to_string())
        .fetch_optional(w.conn())
        .await?
        .map(|r| rate_row(&r))
        .transpose()?;
        let now = self.now();
        sqlx::query(
            "INSERT INTO teacher_rates (school_id, teacher, effective_from, per_lesson_cents, per_student_cents, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (school_id, teacher, effective_from) DO UPDATE SET per_lesson_cents = excluded.per_lesson_cents, per_student_cents = excluded.per_student_cents, set_by = excluded.set_by, set_at = excluded.set_at",
        )
        .bind(&school)
        .bind(teacher)
        .bind(from.to_string())
        .bind(per_lesson_cents)
        .bind(per_student_cents)
        .bind(&who)
        .bind(ms(now))
        .execute(w.conn())
        .await?;
        let after = TeacherRate {
            teacher: teacher.to_string(),
            effective_from: from,
            per_lesson_cents,
            per_student_cents,
            set_by: who,
            set_at: from_ms(ms(now)),
        };
        audit(
            w.conn(),
            &school,
            actor,
            "set_teacher_rate",
            "teacher",
            teacher,
            before.as_ref().map(|b| json!(b)),
            Some(json!(after)),
            ms(now),
        )
        .await?;
        w.commit().await?;
        Ok((after, before))
    }
}
