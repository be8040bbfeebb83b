//! Packages: purchase, balances (package state derived from the ledger), adjustments and
//! refunds.

use super::base::{append_entry, audit, check_id, from_ms, lock_student, ms, parse_enum, require};
use super::Store;
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::AnyConnection;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewPackage {
    pub id: String,
    pub student_id: String,
    /// `None`: usable on every campus.
    pub campus_id: Option<String>,
    pub lessons: i64,
    pub unit_price_cents: Cents,
    /// Defaults to `lessons × unit price`.
    pub price_paid_cents: Option<Cents>,
    pub bought_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A package with its derived balance.
#[derive(Debug, Clone, Serialize)]
pub struct PackageView {
    #[serde(flatten)]
    pub package: PackageState,
    pub balance: String,
    pub expired: bool,
}

/// A student's balance.
#[derive(Debug, Clone, Serialize)]
pub struct BalanceView {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub available_units: Units,
    pub available: String,
    pub overdraft_units: Units,
    pub packages: Vec<PackageView>,
}

pub(crate) async fn insert_package(
    c: &mut AnyConnection,
    school: &str,
    p: &NewPackage,
    actor: &str,
    now: i64,
) -> Result<()> {
    if p.lessons <= 0 || p.lessons > 10_000 {
        return Err(LedgerError::Invalid {
            field: "lessons",
            message: format!("{} is not in 1..=10000", p.lessons),
        });
    }
    if p.unit_price_cents < 0 {
        return Err(LedgerError::Invalid {
            field: "unit_price_cents",
            message: "negative".into(),
        });
    }
    let paid = match p.price_paid_cents {
        Some(v) if v >= 0 => v,
        Some(_) => {
            return Err(LedgerError::Invalid {
                field: "price_paid_cents",
                message: "negative".into(),
            })
        }
        None => p
            .unit_price_cents
            .checked_mul(p.lessons)
            .ok_or(LedgerError::Invalid {
                field: "unit_price_cents",
                message: "price overflows".into(),
            })?,
    };
    let row = PackageRow {
        package: p,
        gift_lessons: 0,
        paid_cents: paid,
        sale: None,
    };
    insert_package_row(c, school, &row, actor).await?;
    audit(
        c,
        school,
        actor,
        "purchase",
        "package",
        &p.id,
        None,
        Some(json!(p)),
        now,
    )
    .await
}

/// Where a package sold in an order came from: its order and its line's list price and
/// discount.
pub(crate) struct SaleInfo<'a> {
    pub order_id: &'a str,
    pub list_price_cents: Cents,
    pub discount_cents: Cents,
    pub discount_reason: Option<&'a str>,
}

/// Everything a package row holds.
pub(crate) struct PackageRow<'a> {
    /// Id, student, campus, paid lessons, list unit price, dates.
    pub package: &'a NewPackage,
    pub gift_lessons: i64,
    /// What the paid lessons cost after any discount.
    pub paid_cents: Cents,
    pub sale: Option<SaleInfo<'a>>,
}

/// Writes a package row and its purchase entry (paid and gift units, the price paid); the
/// caller audits.
pub(crate) async fn insert_package_row(
    c: &mut AnyConnection,
    school: &str,
    r: &PackageRow<'_>,
    actor: &str,
) -> Result<()> {
    let p = r.package;
    check_id("package", &p.id)?;
    require(c, "student", school, &p.student_id).await?;
    if let Some(campus) = &p.campus_id {
        require(c, "campus", school, campus).await?;
    }
    if p.expires_at <= p.bought_at {
        return Err(LedgerError::Invalid {
            field: "expires_at",
            message: "package expires before it is bought".into(),
        });
    }
    sqlx::query(
        "INSERT INTO packages (school_id, id, student_id, campus_id, lessons_bought, unit_price_cents, price_paid_cents, bought_at, expires_at, gift_lessons, order_id, list_price_cents, discount_cents, discount_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(school)
    .bind(&p.id)
    .bind(&p.student_id)
    .bind(&p.campus_id)
    .bind(p.lessons)
    .bind(p.unit_price_cents)
    .bind(r.paid_cents)
    .bind(ms(p.bought_at))
    .bind(ms(p.expires_at))
    .bind(r.gift_lessons)
    .bind(r.sale.as_ref().map(|s| s.order_id))
    .bind(r.sale.as_ref().map(|s| s.list_price_cents))
    .bind(r.sale.as_ref().map_or(0, |s| s.discount_cents))
    .bind(r.sale.as_ref().and_then(|s| s.discount_reason))
    .execute(&mut *c)
    .await?;
    let e = Entry {
        student_id: p.student_id.clone(),
        kind: EntryKind::Purchase,
        package_id: Some(p.id.clone()),
        lesson_id: None,
        units: (p.lessons + r.gift_lessons) * UNITS_PER_LESSON,
        amount_cents: r.paid_cents,
        idempotency_key: format!("purchase:{}", p.id),
    };
    append_entry(c, school, &e, ms(p.bought_at), actor, None).await?;
    Ok(())
}

/// Packages of a student with their derived balances, and the overdraft debt (one round trip).
pub(crate) async fn load_packages(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
) -> Result<(Vec<PackageState>, Units)> {
    Ok(
        load_packages_of(&mut crate::db::AnyDb(c), school, &[student])
            .await?
            .remove(student)
            .unwrap_or_default(),
    )
}

/// [`load_packages`] of several students in one round trip, by student (a student without
/// packages or debt has no entry).
pub(crate) async fn load_packages_of(
    db: &mut dyn crate::db::Db,
    school: &str,
    students: &[&str],
) -> Result<HashMap<String, (Vec<PackageState>, Units)>> {
    Ok(packages_and_lesson_rows(db, school, students, &[]).await?.0)
}

/// Each student's packages with their balances, and the overdraft debt.
pub(crate) type StudentPackages = HashMap<String, (Vec<PackageState>, Units)>;

/// The ledger rows (kind, units) of some (student, lesson) pairs.
pub(crate) type LessonRows = HashMap<(String, String), Vec<(EntryKind, Units)>>;

/// [`load_packages_of`], and in the same statement the ledger rows of `students` for
/// `lessons` (what a charge needs to know whether the lesson is paid already).
pub(crate) async fn packages_and_lesson_rows(
    db: &mut dyn crate::db::Db,
    school: &str,
    students: &[&str],
    lessons: &[&str],
) -> Result<(StudentPackages, LessonRows)> {
    match packages_stmt(school, students, lessons) {
        Some(s) => parse_packages(db.fetch(&s.sql, s.args).await?),
        None => Ok(Default::default()),
    }
}

/// The statement of [`packages_and_lesson_rows`] (`None`: no students, nothing to read).
pub(crate) fn packages_stmt(
    school: &str,
    students: &[&str],
    lessons: &[&str],
) -> Option<crate::db::Stmt> {
    if students.is_empty() {
        return None;
    }
    let ids = crate::db::list_marks(students.len(), 2);
    // column 0 tells the row apart: 'p' package, 'o' overdraft debt, 'l' a lesson's entry
    let mut sql = format!(
        "SELECT 'p', p.student_id, p.id, p.campus_id, p.lessons_bought, p.unit_price_cents, p.price_paid_cents, p.bought_at, p.expires_at, \
         CAST(COALESCE((SELECT SUM(e.units) FROM ledger e WHERE e.school_id = p.school_id AND e.package_id = p.id), 0) AS BIGINT), \
         p.gift_lessons, \
         CAST(COALESCE((SELECT -SUM(u.units) FROM ledger u WHERE u.school_id = p.school_id AND u.package_id = p.id AND u.kind IN ('deduction', 'reversal')), 0) AS BIGINT) \
         FROM packages p WHERE p.school_id = $1 AND p.student_id IN ({ids}) \
         UNION ALL SELECT 'o', o.student_id, NULL, NULL, 0, 0, 0, 0, 0, CAST(SUM(o.units) AS BIGINT), 0, 0 FROM ledger o \
         WHERE o.school_id = $1 AND o.student_id IN ({ids}) AND o.package_id IS NULL GROUP BY o.student_id"
    );
    if !lessons.is_empty() {
        let ls = crate::db::list_marks(lessons.len(), 2 + students.len());
        sql.push_str(&format!(
            " UNION ALL SELECT 'l', l.student_id, l.lesson_id, l.kind, 0, 0, 0, 0, 0, l.units, 0, 0 FROM ledger l \
             WHERE l.school_id = $1 AND l.student_id IN ({ids}) AND l.lesson_id IN ({ls})"
        ));
    }
    let mut args: Vec<crate::db::Arg> = vec![school.into()];
    args.extend(students.iter().map(|s| crate::db::Arg::from(*s)));
    args.extend(lessons.iter().map(|l| crate::db::Arg::from(*l)));
    Some(crate::db::Stmt::new(sql, args, 12))
}

/// The rows of [`packages_stmt`]: each student's packages (sorted by expiry) with the
/// overdraft debt, and the lessons' ledger rows.
pub(crate) fn parse_packages(rows: Vec<crate::db::Row>) -> Result<(StudentPackages, LessonRows)> {
    let mut out: HashMap<String, (Vec<PackageState>, Units)> = HashMap::new();
    let mut rows_of: LessonRows = HashMap::new();
    for r in rows {
        let student = r.text(1)?;
        match r.text(0)?.as_str() {
            "l" => {
                let kind = parse_enum(&r.text(3)?, EntryKind::parse, "entry kind")?;
                rows_of
                    .entry((student, r.text(2)?))
                    .or_default()
                    .push((kind, r.int(9)?));
            }
            "o" => out.entry(student).or_default().1 -= r.int(9)?,
            _ => out.entry(student).or_default().0.push(PackageState {
                package_id: r.text(2)?,
                campus_id: r.opt_text(3)?,
                lessons_bought: r.int(4)?,
                unit_price_cents: r.int(5)?,
                price_paid_cents: r.int(6)?,
                bought_at: from_ms(r.int(7)?),
                expires_at: from_ms(r.int(8)?),
                balance_units: r.int(9)?,
                gift_lessons: r.int(10)?,
                used_units: r.int(11)?,
            }),
        }
    }
    for (pkgs, od) in out.values_mut() {
        pkgs.sort_by(|a, b| {
            a.expires_at
                .cmp(&b.expires_at)
                .then(a.package_id.cmp(&b.package_id))
        });
        *od = (*od).max(0);
    }
    Ok((out, rows_of))
}

impl Store {
    /// Buys a package (package row + purchase entry, same transaction).
    pub async fn purchase(&self, p: &NewPackage) -> Result<()> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, &p.student_id).await?;
        insert_package(w.conn(), &school, p, "staff", ms(self.now())).await?;
        w.commit().await
    }

    /// A manual adjustment (signed units) with its own idempotency key.
    pub async fn adjust(
        &self,
        student: &str,
        package: Option<&str>,
        units: Units,
        key: &str,
        actor: &str,
        note: &str,
    ) -> Result<bool> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        if let Some(p) = package {
            // one of this student's packages: another child's would move their balance
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT student_id FROM packages WHERE school_id = $1 AND id = $2",
            )
            .bind(&school)
            .bind(p)
            .fetch_optional(w.conn())
            .await?;
            match owner {
                None => {
                    return Err(LedgerError::NotFound {
                        entity: "package",
                        id: p.into(),
                    })
                }
                Some(o) if o != student => {
                    return Err(LedgerError::Invalid {
                        field: "package_id",
                        message: format!("package {p:?} is not one of student {student:?}'s"),
                    })
                }
                Some(_) => {}
            }
        }
        let e = Entry {
            student_id: student.into(),
            kind: EntryKind::Adjustment,
            package_id: package.map(Into::into),
            lesson_id: None,
            units,
            amount_cents: 0,
            idempotency_key: format!("adjust:{key}"),
        };
        let done = append_entry(w.conn(), &school, &e, ms(self.now()), actor, Some(note)).await?;
        w.commit().await?;
        Ok(done)
    }

    /// Available balance of a student at `at` (packages not expired, minus overdraft).
    pub async fn balance(&self, student: &str, at: DateTime<Utc>) -> Result<BalanceView> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        require(&mut c, "student", &school, student).await?;
        let (pkgs, overdraft) = load_packages(&mut c, &school, student).await?;
        Ok(balance_view(student, at, pkgs, overdraft))
    }

    /// [`Store::balance`] of many students at once, by student: one grouped query per
    /// [`BALANCES_PER_QUERY`] students (each package's balance and lessons used summed from the
    /// ledger with `GROUP BY`, each student's overdraft debt likewise), where `balance` reads
    /// one student at a time. A student without packages or debt (or unknown) has an empty
    /// balance.
    pub async fn balances(
        &self,
        students: &[&str],
        at: DateTime<Utc>,
    ) -> Result<HashMap<String, BalanceView>> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        let mut found: StudentPackages = HashMap::new();
        for chunk in students.chunks(BALANCES_PER_QUERY) {
            let s = balances_stmt(&school, chunk);
            let rows = crate::db::Db::fetch(&mut crate::db::AnyDb(&mut c), &s.sql, s.args).await?;
            found.extend(parse_packages(rows)?.0);
        }
        Ok(students
            .iter()
            .map(|st| {
                let (pkgs, overdraft) = found.remove(*st).unwrap_or_default();
                (st.to_string(), balance_view(st, at, pkgs, overdraft))
            })
            .collect())
    }
}

/// Students per query of [`Store::balances`].
pub const BALANCES_PER_QUERY: usize = 500;

/// The grouped statement of [`Store::balances`], in [`packages_stmt`]'s columns (so
/// [`parse_packages`] reads both): a row per package with its balance and lessons used (`GROUP
/// BY` over its ledger rows), a row per student with overdraft debt.
fn balances_stmt(school: &str, students: &[&str]) -> crate::db::Stmt {
    let ids = crate::db::list_marks(students.len(), 2);
    let sql = format!(
        "SELECT 'p', p.student_id, p.id, p.campus_id, p.lessons_bought, p.unit_price_cents, p.price_paid_cents, p.bought_at, p.expires_at, \
         CAST(COALESCE(SUM(e.units), 0) AS BIGINT), p.gift_lessons, \
         CAST(COALESCE(SUM(CASE WHEN e.kind IN ('deduction', 'reversal') THEN -e.units ELSE 0 END), 0) AS BIGINT) \
         FROM packages p LEFT JOIN ledger e ON e.school_id = p.school_id AND e.package_id = p.id \
         WHERE p.school_id = $1 AND p.student_id IN ({ids}) \
         GROUP BY p.student_id, p.id, p.campus_id, p.lessons_bought, p.unit_price_cents, p.price_paid_cents, p.bought_at, p.expires_at, p.gift_lessons \
         UNION ALL SELECT 'o', o.student_id, NULL, NULL, 0, 0, 0, 0, 0, CAST(SUM(o.units) AS BIGINT), 0, 0 FROM ledger o \
         WHERE o.school_id = $1 AND o.student_id IN ({ids}) AND o.package_id IS NULL GROUP BY o.student_id"
    );
    let mut args: Vec<crate::db::Arg> = vec![school.into()];
    args.extend(students.iter().map(|s| crate::db::Arg::from(*s)));
    crate::db::Stmt::new(sql, args, 12)
}

/// A student's balance at `at` from their packages (sorted by expiry) and overdraft debt.
fn balance_view(
    student: &str,
    at: DateTime<Utc>,
    pkgs: Vec<PackageState>,
    overdraft: Units,
) -> BalanceView {
    let avail = available_units(&pkgs, overdraft, at);
    BalanceView {
        student_id: student.into(),
        at,
        available_units: avail,
        available: fmt_units(avail),
        overdraft_units: overdraft,
        packages: pkgs
            .into_iter()
            .map(|p| PackageView {
                balance: fmt_units(p.balance_units),
                expired: p.expired(at),
                package: p,
            })
            .collect(),
    }
}
