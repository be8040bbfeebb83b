//! Reports over a date range. Rates are basis points (1/100 of a percent) to stay integral.

use crate::staff::CampusScope;
use crate::store::{from_ms, ms, Store};
use crate::Result;
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use rollcall_domain::ledger::{fmt_units, AttendanceStatus, Cents, Units};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// Attendance counts of one class or student.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttendanceRow {
    pub key: String,
    pub present: u64,
    pub late: u64,
    pub left_early: u64,
    pub absent: u64,
    pub excused: u64,
    /// attended / (attended + absent + excused), in basis points; 0 when nothing recorded.
    pub rate_bp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttendanceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub per_class: Vec<AttendanceRow>,
    pub per_student: Vec<AttendanceRow>,
}

/// Lessons consumed (net of reversals) and revenue recognised for one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsumptionRow {
    pub key: String,
    pub units: Units,
    pub lessons: String,
    pub revenue_cents: Cents,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumptionReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub per_class: Vec<ConsumptionRow>,
    pub per_teacher: Vec<ConsumptionRow>,
    pub per_campus: Vec<ConsumptionRow>,
}

/// What a student still holds: lessons left in unexpired packages and their value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutstandingRow {
    pub student_id: String,
    pub units: Units,
    pub lessons: String,
    /// What was paid and is not yet earned on unexpired packages (prepaid liability; gift
    /// lessons are worth nothing).
    pub value_cents: Cents,
    pub overdraft_units: Units,
}

/// Attended check-ins per (campus, weekday, hour) in the school's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeatCell {
    pub campus_id: String,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u32,
    pub hour: u32,
    pub count: u64,
}

fn rate(r: &mut AttendanceRow) {
    let attended = r.present + r.late + r.left_early;
    let total = attended + r.absent + r.excused;
    r.rate_bp = (attended * 10_000).checked_div(total).unwrap_or(0);
}

impl Store {
    /// Attendance rate per class and per student for lessons starting in `[from, to)`.
    pub async fn report_attendance(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<AttendanceReport> {
        let rows = sqlx::query(
            "SELECT l.class_id, a.student_id, a.status, COUNT(*) FROM attendance a \
             JOIN lessons l ON l.school_id = a.school_id AND l.id = a.lesson_id \
             WHERE a.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3 GROUP BY l.class_id, a.student_id, a.status",
        )
        .bind(self.school_id())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let mut per_class: BTreeMap<String, AttendanceRow> = BTreeMap::new();
        let mut per_student: BTreeMap<String, AttendanceRow> = BTreeMap::new();
        for r in &rows {
            let class: String = r.try_get(0)?;
            let student: String = r.try_get(1)?;
            let status = AttendanceStatus::parse(&r.try_get::<String, _>(2)?);
            let n = r.try_get::<i64, _>(3)?.max(0) as u64;
            for (map, key) in [
                (&mut per_class, class.clone()),
                (&mut per_student, student.clone()),
            ] {
                let row = map.entry(key.clone()).or_insert_with(|| AttendanceRow {
                    key,
                    ..Default::default()
                });
                match status {
                    Some(AttendanceStatus::Present) => row.present += n,
                    Some(AttendanceStatus::Late) => row.late += n,
                    Some(AttendanceStatus::LeftEarly) => row.left_early += n,
                    Some(AttendanceStatus::Absent) => row.absent += n,
                    Some(AttendanceStatus::Excused) => row.excused += n,
                    None => {}
                }
            }
        }
        let finish = |m: BTreeMap<String, AttendanceRow>| -> Vec<AttendanceRow> {
            m.into_values()
                .map(|mut r| {
                    rate(&mut r);
                    r
                })
                .collect()
        };
        Ok(AttendanceReport {
            from,
            to,
            per_class: finish(per_class),
            per_student: finish(per_student),
        })
    }

    /// Lessons consumed and revenue recognised for lessons starting in `[from, to)`.
    pub async fn report_consumption(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ConsumptionReport> {
        self.report_consumption_in(from, to, &CampusScope::All)
            .await
    }

    /// [`Store::report_consumption`] of the lessons at the campuses in `scope`.
    pub async fn report_consumption_in(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        scope: &CampusScope,
    ) -> Result<ConsumptionReport> {
        let rows = sqlx::query(
            "SELECT l.class_id, l.teacher, l.campus_id, CAST(COALESCE(SUM(e.units), 0) AS BIGINT), CAST(COALESCE(SUM(e.amount_cents), 0) AS BIGINT) \
             FROM ledger e JOIN lessons l ON l.school_id = e.school_id AND l.id = e.lesson_id \
             WHERE e.school_id = $1 AND e.kind IN ('deduction', 'reversal') AND l.start_ms >= $2 AND l.start_ms < $3 \
             GROUP BY l.class_id, l.teacher, l.campus_id",
        )
        .bind(self.school_id())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let mut maps: [BTreeMap<String, ConsumptionRow>; 3] = Default::default();
        for r in &rows {
            let keys: [String; 3] = [r.try_get(0)?, r.try_get(1)?, r.try_get(2)?];
            if !scope.allows(&keys[2]) {
                continue;
            }
            let units = -r.try_get::<i64, _>(3)?;
            let revenue = -r.try_get::<i64, _>(4)?;
            for (m, k) in maps.iter_mut().zip(keys) {
                let row = m.entry(k.clone()).or_insert_with(|| ConsumptionRow {
                    key: k,
                    ..Default::default()
                });
                row.units += units;
                row.revenue_cents += revenue;
            }
        }
        let [a, b, c] = maps.map(|m| {
            m.into_values()
                .map(|mut r| {
                    r.lessons = fmt_units(r.units);
                    r
                })
                .collect::<Vec<_>>()
        });
        Ok(ConsumptionReport {
            from,
            to,
            per_class: a,
            per_teacher: b,
            per_campus: c,
        })
    }

    /// Outstanding balances at `at`, one row per student with packages or debt.
    pub async fn report_outstanding(&self, at: DateTime<Utc>) -> Result<Vec<OutstandingRow>> {
        self.report_outstanding_in(at, &CampusScope::All).await
    }

    /// [`Store::report_outstanding`] of the campuses in `scope`: a package counts at its
    /// campus, a package usable everywhere (and a debt) at the student's home campus.
    pub async fn report_outstanding_in(
        &self,
        at: DateTime<Utc>,
        scope: &CampusScope,
    ) -> Result<Vec<OutstandingRow>> {
        let limited = matches!(scope, CampusScope::Only(_));
        let counts = |campus: Option<String>| -> bool {
            !limited || campus.is_some_and(|c| scope.allows(&c))
        };
        let rows = sqlx::query(
            "SELECT p.student_id, p.price_paid_cents, p.expires_at, \
             CAST(COALESCE((SELECT SUM(e.units) FROM ledger e WHERE e.school_id = p.school_id AND e.package_id = p.id), 0) AS BIGINT), \
             p.lessons_bought, p.gift_lessons, \
             CAST(COALESCE((SELECT -SUM(u.units) FROM ledger u WHERE u.school_id = p.school_id AND u.package_id = p.id AND u.kind IN ('deduction', 'reversal')), 0) AS BIGINT), \
             COALESCE(p.campus_id, s.home_campus_id) \
             FROM packages p JOIN students s ON s.school_id = p.school_id AND s.id = p.student_id WHERE p.school_id = $1 ORDER BY p.student_id",
        )
        .bind(self.school_id())
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<String, OutstandingRow> = BTreeMap::new();
        for r in &rows {
            if !counts(r.try_get(7)?) {
                continue;
            }
            let student: String = r.try_get(0)?;
            let paid: i64 = r.try_get(1)?;
            let expires = from_ms(r.try_get(2)?);
            let bal: i64 = r.try_get::<i64, _>(3)?.max(0);
            let money = rollcall_domain::money::PackageMoney {
                paid_units: r.try_get::<i64, _>(4)? * rollcall_domain::ledger::UNITS_PER_LESSON,
                gift_units: r.try_get::<i64, _>(5)?.max(0)
                    * rollcall_domain::ledger::UNITS_PER_LESSON,
                paid_cents: paid,
            };
            let used: i64 = r.try_get(6)?;
            let row = out
                .entry(student.clone())
                .or_insert_with(|| OutstandingRow {
                    student_id: student,
                    units: 0,
                    lessons: String::new(),
                    value_cents: 0,
                    overdraft_units: 0,
                });
            if at < expires && bal > 0 {
                row.units += bal;
                // what was paid and is not yet earned (gifts are worth nothing)
                row.value_cents += money.unearned(used).max(0);
            }
        }
        let debts = sqlx::query(
            "SELECT l.student_id, CAST(COALESCE(SUM(l.units), 0) AS BIGINT), MAX(s.home_campus_id) FROM ledger l \
             JOIN students s ON s.school_id = l.school_id AND s.id = l.student_id \
             WHERE l.school_id = $1 AND l.package_id IS NULL GROUP BY l.student_id",
        )
        .bind(self.school_id())
        .fetch_all(&self.pool)
        .await?;
        for r in &debts {
            if !counts(r.try_get(2)?) {
                continue;
            }
            let student: String = r.try_get(0)?;
            let d = (-r.try_get::<i64, _>(1)?).max(0);
            if d > 0 {
                let row = out
                    .entry(student.clone())
                    .or_insert_with(|| OutstandingRow {
                        student_id: student,
                        units: 0,
                        lessons: String::new(),
                        value_cents: 0,
                        overdraft_units: 0,
                    });
                row.overdraft_units = d;
            }
        }
        Ok(out
            .into_values()
            .map(|mut r| {
                r.lessons = fmt_units(r.units - r.overdraft_units);
                r
            })
            .collect())
    }

    /// Attendance heat map: attended check-ins in `[from, to)` by campus × weekday × hour, in
    /// the school's local time (fixed UTC offset of the school).
    pub async fn report_heatmap(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HeatCell>> {
        let rows = sqlx::query(
            "SELECT l.campus_id, a.at FROM attendance a JOIN lessons l ON l.school_id = a.school_id AND l.id = a.lesson_id \
             WHERE a.school_id = $1 AND a.status IN ('present', 'late', 'left_early') AND a.at >= $2 AND a.at < $3",
        )
        .bind(self.school_id())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let mut cells: BTreeMap<(String, u32, u32), u64> = BTreeMap::new();
        for r in &rows {
            let campus: String = r.try_get(0)?;
            let local = from_ms(r.try_get(1)?) + Duration::minutes(self.tz_offset_minutes);
            *cells
                .entry((campus, local.weekday().num_days_from_monday(), local.hour()))
                .or_default() += 1;
        }
        Ok(cells
            .into_iter()
            .map(|((campus_id, weekday, hour), count)| HeatCell {
                campus_id,
                weekday,
                hour,
                count,
            })
            .collect())
    }
}
